"""Write train.tsv and test.tsv: sentences of oddkit's toy language (label 0) and malformed ones
(label 1: shuffled words, foreign tokens), from oddkit.data.text.synthetic_corpus.

Run from the repository root: .venv/bin/python examples/messages/make_messages.py
"""

from pathlib import Path

import pandas as pd

from oddkit.data.text import synthetic_corpus

HERE = Path(__file__).resolve().parent
for name, (n_normal, n_odd, seed) in {"train": (300, 30, 7), "test": (60, 20, 8)}.items():
    texts, y = synthetic_corpus(n_normal, n_odd, random_state=seed)
    ids = [f"{name[:2]}{i:03d}" for i in range(len(texts))]
    pd.DataFrame({"id": ids, "y": y, "text": texts}).to_csv(HERE / f"{name}.tsv", sep="\t", index=False)
