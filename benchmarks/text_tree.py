"""A tree as the embedding: does DIORA's latent tree find the grammar's constituents?

Corpus: sentences sampled from a small probabilistic context-free grammar (below), whose gold
trees are known. A :class:`oddkit.TreeAutoEncoder` (DIORA) is trained on the sentences alone
(no trees) and parses held-out sentences; its trees are compared with the gold trees by unlabelled
bracketing F1, beside right-branching, left-branching and random binary trees. Three seeds (corpus,
model and random trees all change with the seed). Then examples of trees on real SMS messages.

Run: ``.venv/bin/python benchmarks/text_tree.py`` (CPU, a few minutes); writes benchmarks/TEXT_TREE.md.

F1 convention: unlabelled spans, sentence-level (F1 of each sentence, averaged over sentences, as
Kim et al. 2019 report it), trivial spans left out (single words and the whole sentence); sentences
of fewer than 3 words have no other span and are not counted. Every tree compared is binary, and
so is every gold tree, so each holds n - 2 non-trivial spans and a sentence's precision, recall
and F1 are equal.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SMS = HERE.parent.parent / "shared" / "data" / "sms_spam_collection.tsv"

# A small English-like grammar with both left- and right-branching constituents: the subject NP
# closes before the verb phrase (against right-branching), prepositional phrases attach to noun
# and verb phrases (left-recursive NP -> NP PP and VP -> VP PP), adjectives stack inside the noun.
# Unary rules (NP -> Name, Nbar -> N, VP -> Vi) are collapsed in the gold trees.
GRAMMAR = {
    "S": [(("NP", "VP"), 1.0)],
    "NP": [(("Det", "Nbar"), 0.6), (("NP", "PP"), 0.15), (("Name",), 0.25)],
    "Nbar": [(("Adj", "Nbar"), 0.3), (("N",), 0.7)],
    "VP": [(("V", "NP"), 0.5), (("Vi",), 0.25), (("VP", "PP"), 0.25)],
    "PP": [(("P", "NP"), 1.0)],
    "Det": [(("the",), 0.4), (("a",), 0.3), (("every",), 0.15), (("this",), 0.15)],
    "N": [((w,), 1.0) for w in ("dog", "cat", "man", "woman", "park", "telescope", "ball", "house", "river", "car")],
    "Adj": [((w,), 1.0) for w in ("big", "small", "red", "old", "happy", "quiet")],
    "V": [((w,), 1.0) for w in ("saw", "liked", "chased", "took", "found", "watched")],
    "Vi": [((w,), 1.0) for w in ("slept", "ran", "laughed", "waited", "sang")],
    "P": [((w,), 1.0) for w in ("in", "with", "near", "on", "behind")],
    "Name": [((w,), 1.0) for w in ("john", "mary", "sue", "peter")],
}


def sample_tree(rng: np.random.Generator, symbol: str = "S", depth: int = 0, max_depth: int = 7):
    """A tree sampled from GRAMMAR: a word (str) or a pair of subtrees (unary rules collapsed).
    Beyond ``max_depth`` only the non-recursive rules are drawn, so sentences stay short."""
    if symbol not in GRAMMAR:
        return symbol
    rules = GRAMMAR[symbol]
    if depth >= max_depth:
        rules = [r for r in rules if symbol not in r[0]] or rules
    p = np.array([w for _, w in rules], dtype=float)
    rhs = rules[rng.choice(len(rules), p=p / p.sum())][0]
    children = [sample_tree(rng, s, depth + 1, max_depth) for s in rhs]
    return children[0] if len(children) == 1 else tuple(children)


def leaves(tree) -> list[str]:
    return [tree] if isinstance(tree, str) else [w for child in tree for w in leaves(child)]


def sample_corpus(n: int, rng: np.random.Generator, min_words: int = 3, max_words: int = 12):
    """``n`` gold trees of sentences of ``min_words`` to ``max_words`` words."""
    trees = []
    while len(trees) < n:
        tree = sample_tree(rng)
        if min_words <= len(leaves(tree)) <= max_words:
            trees.append(tree)
    return trees


def spans(tree, start: int = 0) -> tuple[set, int]:
    """The (start, end) word spans (end exclusive) of every constituent of ``tree``, and its length."""
    if not isinstance(tree, tuple):  # a word or a word's position
        return {(start, start + 1)}, 1
    out, position = set(), start
    for child in tree:
        child_spans, width = spans(child, position)
        out |= child_spans
        position += width
    out.add((start, position))
    return out, position - start


def nontrivial_spans(tree) -> set:
    found, n = spans(tree)
    return {(i, j) for i, j in found if 1 < j - i < n}


def sentence_f1(predicted, gold) -> float | None:
    """Unlabelled F1 of one sentence's non-trivial spans; None when the gold tree has none."""
    g, p = nontrivial_spans(gold), nontrivial_spans(predicted)
    if not g:
        return None
    overlap = len(g & p)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(p), overlap / len(g)
    return 2 * precision * recall / (precision + recall)


def mean_f1(predicted: list, gold: list) -> float:
    values = [f for f in (sentence_f1(p, g) for p, g in zip(predicted, gold)) if f is not None]
    return float(np.mean(values))


def right_branching(n: int, start: int = 0):
    return start if n == 1 else (start, right_branching(n - 1, start + 1))


def left_branching(n: int):
    tree = 0
    for i in range(1, n):
        tree = (tree, i)
    return tree


def random_tree(n: int, rng: np.random.Generator, start: int = 0):
    """A binary tree made by splitting at a uniformly random point, recursively."""
    if n == 1:
        return start
    k = int(rng.integers(1, n))
    return (random_tree(k, rng, start), random_tree(n - k, rng, start + k))


def parse_brackets(text: str):
    """A bracketed string "((a b) c)" -> nested tuples of word positions ((0, 1), 2)."""
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    position = 0

    def read(i):
        nonlocal position
        if tokens[i] == "(":
            children, i = [], i + 1
            while tokens[i] != ")":
                child, i = read(i)
                children.append(child)
            return (children[0] if len(children) == 1 else tuple(children)), i + 1
        position += 1
        return position - 1, i + 1

    tree, end = read(0)
    if end != len(tokens):
        raise ValueError(f"trailing tokens in {text!r}")
    return tree


def as_positions(tree, start: int = 0):
    """A gold tree of words -> the same tree of word positions."""
    if isinstance(tree, str):
        return start, start + 1
    out, position = [], start
    for child in tree:
        sub, position = as_positions(child, position)
        out.append(sub)
    return tuple(out), position


def run(seeds, n_train: int, n_test: int, epochs: int, sms_examples: int):
    import torch

    from oddkit import TreeAutoEncoder

    torch.set_num_threads(1)
    rows = []
    examples = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        train = sample_corpus(n_train, rng)
        test = sample_corpus(n_test, rng)
        gold = [as_positions(t)[0] for t in test]
        sentences = [" ".join(leaves(t)) for t in test]
        started = time.perf_counter()
        model = TreeAutoEncoder(epochs=epochs, random_state=seed, verbose=0).fit([" ".join(leaves(t)) for t in train])
        fit_seconds = time.perf_counter() - started
        parsed = model.parse(sentences)
        learnt = [parse_brackets(p) for p in parsed]
        lengths = [len(leaves(t)) for t in test]
        f1 = {
            "DIORA (TreeAutoEncoder)": mean_f1(learnt, gold),
            "right-branching": mean_f1([right_branching(n) for n in lengths], gold),
            "left-branching": mean_f1([left_branching(n) for n in lengths], gold),
            "random": mean_f1([random_tree(n, rng) for n in lengths], gold),
        }
        rows.append({"seed": seed, "fit_s": fit_seconds, **f1})
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in f1.items()) + f" (fit {fit_seconds:.0f} s)",
              flush=True)
        if seed == seeds[0]:
            for tree, text in zip(test[:6], parsed[:6]):
                examples.append((_bracket(tree), text))
    sms = []
    if SMS.exists() and sms_examples:
        from oddkit.data.text import read_texts

        texts, labels = read_texts(SMS)
        ham = [t for t, y in zip(texts, labels) if y == 0]
        started = time.perf_counter()
        model = TreeAutoEncoder(max_length=12, epochs=max(2, epochs // 2), random_state=0, verbose=0).fit(ham[:2000])
        fit_seconds = time.perf_counter() - started
        short = [t for t in ham[2000:] if 5 <= len(t.split()) <= 10][:sms_examples]
        sms = list(zip(short, model.parse(short)))
        sms_fit = fit_seconds
    else:
        sms_fit = None
    return rows, examples, sms, sms_fit


def _bracket(tree) -> str:
    return tree if isinstance(tree, str) else "(" + " ".join(_bracket(c) for c in tree) + ")"


def write_markdown(rows, examples, sms, sms_fit, args, path: Path):
    names = [k for k in rows[0] if k not in ("seed", "fit_s")]
    lines = [
        "# A tree as the embedding: unlabelled bracketing F1 on a toy grammar",
        "",
        f"Produced by `.venv/bin/python benchmarks/text_tree.py` (seeds {args.seeds}, {args.n_train} training and "
        f"{args.n_test} test sentences per seed, {args.epochs} epochs). CPU, 1 torch thread, on a 2-core machine shared "
        "with five other jobs: timings are noisy; the F1 values are what matter.",
        "",
        "Corpus: sentences of 3 to 12 words sampled from the probabilistic context-free grammar in the script "
        "(`GRAMMAR`: S -> NP VP, NP -> Det Nbar | NP PP | Name, Nbar -> Adj Nbar | N, VP -> V NP | Vi | VP PP, "
        "PP -> P NP; 48 words). The model sees the sentences only, never the trees.",
        "",
        "F1: unlabelled spans, sentence-level (each sentence's F1, averaged), without trivial spans (single "
        "words and the whole sentence). All trees here are binary, so precision = recall = F1 per sentence. "
        "Random trees split each span at a uniformly random point.",
        "",
        "| seed | " + " | ".join(names) + " | fit (s) |",
        "|---" * (len(names) + 2) + "|",
    ]
    for row in rows:
        lines.append(f"| {row['seed']} | " + " | ".join(f"{row[n]:.3f}" for n in names) + f" | {row['fit_s']:.0f} |")
    means = {n: np.mean([r[n] for r in rows]) for n in names}
    stds = {n: np.std([r[n] for r in rows]) for n in names}
    lines.append("| **mean ± sd** | " + " | ".join(f"**{means[n]:.3f}** ± {stds[n]:.3f}" for n in names) + " | |")
    lines += ["", "## Examples (seed %d, held-out sentences)" % rows[0]["seed"], "",
              "| gold | DIORA |", "|---|---|"]
    lines += [f"| `{g}` | `{p}` |" for g, p in examples]
    if sms:
        lines += ["", f"## Examples on SMS (trained on the first 2,000 ham messages cut to 12 tokens, {args.epochs // 2} epochs, {sms_fit:.0f} s; held-out ham)", "",
                  "| message | tree |", "|---|---|"]
        lines += [f"| {m.replace('|', '/')} | `{t}` |" for m, t in sms]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--sms-examples", type=int, default=8)
    parser.add_argument("--out", type=Path, default=HERE / "TEXT_TREE.md")
    args = parser.parse_args(argv)
    rows, examples, sms, sms_fit = run(args.seeds, args.n_train, args.n_test, args.epochs, args.sms_examples)
    if args.out:
        write_markdown(rows, examples, sms, sms_fit, args, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
