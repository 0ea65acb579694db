"""Text as the representation, on real SMS messages: how well a message is rebuilt from its
summary, and how readable the summaries are, with and without the discriminator.

Data: the ham messages of the SMS Spam Collection (../shared/data/sms_spam_collection.tsv) of 3 to
20 word tokens; per seed a random 1,000 train, 300 held out (and 300 of the training messages are
held out of the n-gram model's fit to choose its smoothing). Two
:class:`oddkit.TextSummaryAutoEncoder` are trained on the same messages, with the same seed, with
the discriminator (``adversarial_weight=0.3``, the default) and without it (``0``).

Measured on the held-out messages:

- token accuracy: the message is summarised, the summary decoded greedily, and each position of
  the message's tokens compared with the decoded token at that position (a decoded message that is
  too short counts its missing tokens as errors);
- readability: perplexity of a word bigram model with add-k smoothing fitted on the training
  messages (k chosen by perplexity on 300 training messages left out of that fit), evaluated on
  the summaries; beside it, the same model on the held-out messages themselves and on random word
  sequences of the summaries' lengths drawn from the training messages' unigram distribution;
- copy rate: the share of summary words that occur in the message;
- AUROC of the score (reconstruction loss) for held-out ham against all spam, for the record.

Run: ``.venv/bin/python benchmarks/text_summary.py`` (CPU, minutes); writes benchmarks/TEXT_SUMMARY.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SMS = HERE.parent.parent / "shared" / "data" / "sms_spam_collection.tsv"


class BigramModel:
    """A word bigram model with add-k smoothing over a fixed vocabulary, with start/end markers."""

    def __init__(self, vocab_size: int, k: float):
        self.vocab_size, self.k = vocab_size, k

    def fit(self, sentences: list[list[int]]) -> BigramModel:
        self.pairs, self.contexts = Counter(), Counter()
        for sentence in sentences:
            padded = [-1, *sentence, -2]
            self.pairs.update(zip(padded[:-1], padded[1:]))
            self.contexts.update(padded[:-1])
        return self

    def perplexity(self, sentences: list[list[int]]) -> float:
        total, count = 0.0, 0
        for sentence in sentences:
            padded = [-1, *sentence, -2]
            for a, b in zip(padded[:-1], padded[1:]):
                total += math.log((self.pairs[(a, b)] + self.k) / (self.contexts[a] + self.k * (self.vocab_size + 1)))
                count += 1
        return math.exp(-total / count)


def token_accuracy(inputs: list[list[int]], decoded: list[list[int]]) -> float:
    right = sum(sum(1 for i, t in enumerate(x) if i < len(d) and d[i] == t) for x, d in zip(inputs, decoded))
    return right / sum(len(x) for x in inputs)


def copy_rate(inputs: list[list[int]], summaries: list[list[int]]) -> float:
    hits = sum(sum(1 for w in s if w in set(x)) for x, s in zip(inputs, summaries))
    return hits / sum(len(s) for s in summaries)


def run(seeds, n_train: int, n_test: int, epochs: int, max_words: int):
    import torch
    from sklearn.metrics import roc_auc_score

    from oddkit import TextSummaryAutoEncoder
    from oddkit.data.text import TextTokenizer, read_texts

    torch.set_num_threads(1)
    texts, labels = read_texts(SMS)
    counter = TextTokenizer(kind="word").fit(texts)  # only to count tokens when filtering by length
    lengths = np.array([len(r) for r in counter.encode(texts)])
    ham = [t for t, y, n in zip(texts, labels, lengths) if y == 0 and 3 <= n <= max_words]
    spam = [t for t, y in zip(texts, labels) if y == 1]
    rows, examples = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(ham))
        train = [ham[i] for i in order[:n_train]]
        test = [ham[i] for i in order[n_train:n_train + n_test]]
        models = {}
        for name, weight in (("with discriminator", 0.3), ("without discriminator", 0.0)):
            started = time.perf_counter()
            models[name] = TextSummaryAutoEncoder(adversarial_weight=weight, max_length=max_words, epochs=epochs,
                                                  random_state=seed, verbose=1).fit(train)
            models[name].fit_seconds_ = time.perf_counter() - started
        tok = models["with discriminator"].preprocessor_.tokenizer
        train_ids, test_ids = tok.encode(train), tok.encode(test)
        # choose k on training messages left out of the n-gram fit (never on the summaries)
        fit_part, choose_part = train_ids[300:], train_ids[:300]
        ks = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
        k = min(ks, key=lambda k: BigramModel(tok.vocab_size_, k).fit(fit_part).perplexity(choose_part))
        bigram = BigramModel(tok.vocab_size_, k).fit(train_ids)
        unigram = Counter(w for s in train_ids for w in s)
        words, weights = zip(*unigram.items())
        weights = np.array(weights, dtype=float) / sum(weights)
        row = {"seed": seed, "k": k, "real_ppl": bigram.perplexity(test_ids)}
        for name, model in models.items():
            summaries = model.encode_text(test)
            summary_ids = tok.encode(summaries)
            decoded = tok.encode([d if d.strip() else "[UNK]" for d in model.decode_text(summaries)])
            random_ids = [list(rng.choice(words, size=len(s), p=weights)) for s in summary_ids]
            scores = model.decision_function(test + spam)
            row[name] = {
                "accuracy": token_accuracy(test_ids, decoded),
                "ppl": bigram.perplexity(summary_ids),
                "random_ppl": bigram.perplexity(random_ids),
                "copy": copy_rate(test_ids, summary_ids),
                "length": float(np.mean([len(s) for s in summary_ids]) / np.mean([len(x) for x in test_ids])),
                "auroc": roc_auc_score(np.r_[np.zeros(len(test)), np.ones(len(spam))], scores),
                "fit_s": model.fit_seconds_,
            }
            if seed == seeds[0]:
                examples.append((name, test[:8], summaries[:8], model.decode_text(summaries[:8])))
        rows.append(row)
        print(f"seed {seed}: k={k}, real ppl {row['real_ppl']:.1f}; " + "; ".join(
            f"{n}: " + ", ".join(f"{m} {v:.3f}" for m, v in row[n].items()) for n in models), flush=True)
    return rows, examples


def write_markdown(rows, examples, args, path: Path):
    names = ["with discriminator", "without discriminator"]
    metrics = [("accuracy", "token accuracy (rebuilt from summary)"), ("ppl", "bigram perplexity of summaries"),
               ("random_ppl", "bigram perplexity of random words (same lengths)"),
               ("copy", "summary words found in the message"), ("length", "summary length / message length"),
               ("auroc", "AUROC held-out ham vs spam"), ("fit_s", "fit time (s)")]
    lines = [
        "# Text as the representation: summaries of SMS messages",
        "",
        f"Produced by `.venv/bin/python benchmarks/text_summary.py` (seeds {args.seeds}; {args.n_train} training and "
        f"{args.n_test} held-out ham messages of 3 to {args.max_words} word tokens per seed; {args.epochs} epochs; "
        "other parameters at their defaults). CPU, 1 torch thread, on a 2-core machine shared with five other jobs: "
        "timings are noisy; the other numbers are what matter.",
        "",
        "The discriminator uses the standard (non-saturating) GAN loss on one-hot word sequences, not the paper's "
        "WGAN with gradient penalty; its real examples are the first words of other training messages, cut to the "
        "summaries' lengths. The bigram model's smoothing k was chosen per seed by perplexity on 300 training "
        "messages left out of its fit. Mean ± standard deviation over the seeds:",
        "",
        "| measure | " + " | ".join(names) + " |",
        "|---|---|---|",
    ]
    for key, label in metrics:
        cells = []
        for name in names:
            values = [r[name][key] for r in rows]
            cells.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}" if key != "fit_s" else f"{np.mean(values):.0f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    real = [r["real_ppl"] for r in rows]
    lines += ["", f"Reference: the same bigram model on the held-out messages themselves: perplexity "
                  f"{np.mean(real):.1f} ± {np.std(real):.1f} (k = {', '.join(str(r['k']) for r in rows)}).", ""]
    lines += ["| seed | " + " | ".join(f"{n}: accuracy / perplexity / copy" for n in names) + " |", "|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | " + " | ".join(
            f"{r[n]['accuracy']:.3f} / {r[n]['ppl']:.1f} / {r[n]['copy']:.3f}" for n in names) + " |")
    for name, texts, summaries, decoded in examples:
        lines += ["", f"## Examples, {name} (seed {rows[0]['seed']}, held-out messages)", "",
                  "| message | summary | rebuilt from the summary |", "|---|---|---|"]
        lines += [f"| {t.replace('|', '/')} | {s.replace('|', '/')} | {d.replace('|', '/')} |"
                  for t, s, d in zip(texts, summaries, decoded)]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--max-words", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HERE / "TEXT_SUMMARY.md")
    args = parser.parse_args(argv)
    if not SMS.exists():
        print(f"{SMS} is missing; this benchmark needs the SMS Spam Collection", file=sys.stderr)
        return 1
    rows, examples = run(args.seeds, args.n_train, args.n_test, args.epochs, args.max_words)
    write_markdown(rows, examples, args, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
