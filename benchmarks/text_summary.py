"""Text as the representation, on real SMS messages: how well a message is rebuilt from its
summary, and how readable the summaries are, with and without the discriminator.

Data: the ham messages of the SMS Spam Collection (../shared/data/sms_spam_collection.tsv) of 3 to
20 word tokens; per seed a random 1,000 train, 300 held out (and 300 of the training messages are
held out of the n-gram model's fit to choose its smoothing). Two
:class:`oddkit.TextSummaryAutoEncoder` are trained on the same messages, with the same seed, with
the discriminator (``adversarial_weight=0.3``, the default) and without it (``0``), each for 2
epochs of pre-training and 18 more (20 in all).

Measured on the held-out messages:

- token accuracy: the message is summarised, the summary decoded greedily, and each position of
  the message's tokens compared with the decoded token at that position (a decoded message that is
  too short counts its missing tokens as errors); the strict token accuracy also counts every
  decoded token past the message's end as an error (its denominator is the longer of the two), so
  a decoder that runs on cannot hide it, and the rebuilt length / message length is reported beside it;
- readability: perplexity of a word bigram model with add-k smoothing fitted on the training
  messages (k chosen by perplexity on 300 training messages left out of that fit), evaluated on
  the summaries; beside it, the same model on the held-out messages themselves and on random word
  sequences of the summaries' lengths drawn from the training messages' unigram distribution;
- copy rate: the share of summary words that occur in the message; repeated share: the share of
  summary words that repeat an earlier word of the same summary;
- a baseline for token accuracy that sees no summary: the commonest training token at each position;
- AUROC of the score (reconstruction loss) for held-out ham against all spam, for the record.

Run: ``.venv/bin/python benchmarks/text_summary.py`` (CPU; the report gives each fit's time); writes ``benchmarks/results/text_summary_seed<N>.json`` per seed and benchmarks/TEXT_SUMMARY.md.
Seeds can run as separate processes (``--seeds 0``, ``--seeds 1``, ...) and the report be written
from their results with ``--report-only``.
"""

from __future__ import annotations

import argparse
import json
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


def token_accuracy(inputs: list[list[int]], decoded: list[list[int]], strict: bool = False) -> float:
    """Share of the messages' tokens that the decoded message holds at the same position.

    With ``strict``, decoded tokens past a message's end count as errors too (the denominator of each
    message is the longer of the two), so a decoder that runs on is not rewarded for it.
    """
    right = sum(sum(1 for i, t in enumerate(x) if i < len(d) and d[i] == t) for x, d in zip(inputs, decoded))
    return right / sum(max(len(x), len(d)) if strict else len(x) for x, d in zip(inputs, decoded))


def copy_rate(inputs: list[list[int]], summaries: list[list[int]]) -> float:
    hits = sum(sum(1 for w in s if w in set(x)) for x, s in zip(inputs, summaries))
    return hits / sum(len(s) for s in summaries)


def repeated_share(summaries: list[list[int]]) -> float:
    """Share of summary words that repeat an earlier word of the same summary."""
    repeats = sum(len(s) - len(set(s)) for s in summaries)
    return repeats / sum(len(s) for s in summaries)


def sms_split(seed: int, n_train: int, n_test: int, max_words: int):
    """The benchmark's messages for ``seed``: training ham, held-out ham, all spam."""
    from oddkit.data.text import TextTokenizer, read_texts

    texts, labels = read_texts(SMS)
    counter = TextTokenizer(kind="word").fit(texts)  # only to count tokens when filtering by length
    lengths = np.array([len(r) for r in counter.encode(texts)])
    ham = [t for t, y, n in zip(texts, labels, lengths) if y == 0 and 3 <= n <= max_words]
    spam = [t for t, y in zip(texts, labels) if y == 1]
    order = np.random.default_rng(seed).permutation(len(ham))
    return [ham[i] for i in order[:n_train]], [ham[i] for i in order[n_train:n_train + n_test]], spam


class Judge:
    """Readability and reconstruction measures of summaries, with a bigram model fitted on ``real``
    messages (its smoothing k chosen by perplexity on the first ``n_choose`` of them, left out of
    that choice's fit) and random word sequences drawn from their unigram distribution."""

    KS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]

    def __init__(self, tokenizer, real: list[str], n_choose: int, seed: int):
        self.tok = tokenizer
        ids = tokenizer.encode(real)
        fit_part, choose_part = ids[n_choose:], ids[:n_choose]
        self.k = min(self.KS, key=lambda k: BigramModel(tokenizer.vocab_size_, k).fit(fit_part).perplexity(choose_part))
        self.bigram = BigramModel(tokenizer.vocab_size_, self.k).fit(ids)
        unigram = Counter(w for s in ids for w in s)
        self.words, weights = zip(*unigram.items())
        self.weights = np.array(weights, dtype=float) / sum(weights)
        self.rng = np.random.default_rng(seed)
        longest = max(len(s) for s in ids)
        self.commonest = [Counter(s[i] for s in ids if len(s) > i).most_common(1)[0][0] for i in range(longest)]

    def baseline_accuracy(self, messages: list[str]) -> float:
        """Token accuracy of a 'rebuilt' message that is the commonest training token at each position.

        The baseline is given each message's length (it stops there), so its strict and plain accuracies agree.
        """
        ids = self.tok.encode(messages)
        return token_accuracy(ids, [self.commonest[:len(x)] for x in ids], strict=True)

    def measure(self, model, messages: list[str], no_repeat_ngram: int = 0) -> tuple[dict, list[str], list[str]]:
        """The measures of ``model`` on ``messages``, with the summaries and the rebuilt messages."""
        summaries = model.encode_text(messages)
        rebuilt = model.decode_text(summaries, no_repeat_ngram=no_repeat_ngram)
        message_ids, summary_ids = self.tok.encode(messages), self.tok.encode(summaries)
        decoded = self.tok.encode([d if d.strip() else "[UNK]" for d in rebuilt])
        random_ids = [list(self.rng.choice(self.words, size=len(s), p=self.weights)) for s in summary_ids]
        return {
            "accuracy": token_accuracy(message_ids, decoded),
            "strict_accuracy": token_accuracy(message_ids, decoded, strict=True),
            "rebuilt_length": float(np.mean([len(d) for d in decoded]) / np.mean([len(x) for x in message_ids])),
            "ppl": self.bigram.perplexity(summary_ids),
            "random_ppl": self.bigram.perplexity(random_ids),
            "copy": copy_rate(message_ids, summary_ids),
            "repeated": repeated_share(summary_ids),
            "length": float(np.mean([len(s) for s in summary_ids]) / np.mean([len(x) for x in message_ids])),
        }, summaries, rebuilt


def run_seed(seed: int, args) -> dict:
    import torch
    from sklearn.metrics import roc_auc_score

    from oddkit import TextSummaryAutoEncoder

    torch.set_num_threads(1)
    train, test, spam = sms_split(seed, args.n_train, args.n_test, args.max_words)
    models = {}
    for name, weight in (("with discriminator", 0.3), ("without discriminator", 0.0)):
        started = time.perf_counter()
        models[name] = TextSummaryAutoEncoder(adversarial_weight=weight, max_length=args.max_words, epochs=args.epochs,
                                              pretrain_epochs=args.pretrain_epochs, random_state=seed,
                                              verbose=1).fit(train)
        models[name].fit_seconds_ = time.perf_counter() - started
    judge = Judge(models["with discriminator"].preprocessor_.tokenizer_, train, 300, seed)
    row = {"seed": seed, "k": judge.k, "real_ppl": judge.bigram.perplexity(judge.tok.encode(test)),
           "baseline_accuracy": judge.baseline_accuracy(test), "examples": {}}
    for name, model in models.items():
        measures, summaries, rebuilt = judge.measure(model, test)
        scores = model.decision_function(test + spam)
        measures["auroc"] = roc_auc_score(np.r_[np.zeros(len(test)), np.ones(len(spam))], scores)
        measures["fit_s"] = model.fit_seconds_
        measures["final_train_loss"] = model.history_["train_loss"][-1]
        row[name] = measures
        row["examples"][name] = [test[:8], summaries[:8], rebuilt[:8]]
    print(f"seed {seed}: k={row['k']}, real ppl {row['real_ppl']:.1f}; " + "; ".join(
        f"{n}: " + ", ".join(f"{m} {v:.3f}" for m, v in row[n].items()) for n in models), flush=True)
    return row


def _mean_sd(values) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def write_markdown(rows, args, path: Path):
    names = ["with discriminator", "without discriminator"]
    metrics = [("accuracy", "token accuracy (rebuilt from summary)"),
               ("strict_accuracy", "strict token accuracy (tokens past the message's end count as errors)"),
               ("rebuilt_length", "rebuilt length / message length"), ("ppl", "bigram perplexity of summaries"),
               ("random_ppl", "bigram perplexity of random words (same lengths)"),
               ("copy", "summary words found in the message"),
               ("repeated", "summary words repeating an earlier one"), ("length", "summary length / message length"),
               ("auroc", "AUROC held-out ham vs spam"), ("final_train_loss", "last epoch's training loss (nats/token)"),
               ("fit_s", "fit time (s)")]
    mean = {n: {key: float(np.mean([r[n][key] for r in rows])) for key, _ in metrics} for n in names}
    real = float(np.mean([r["real_ppl"] for r in rows]))
    baseline = float(np.mean([r["baseline_accuracy"] for r in rows]))
    seeds = [r["seed"] for r in rows]
    lines = [
        "# Text as the representation: summaries of SMS messages",
        "",
        f"Produced by `.venv/bin/python benchmarks/text_summary.py` (seeds {seeds}; {args.n_train} training and "
        f"{args.n_test} held-out ham messages of 3 to {args.max_words} word tokens per seed; "
        f"{args.pretrain_epochs} epochs of pre-training as a plain auto-encoder, then {args.epochs} with the "
        "discriminator, the same 20 epochs in all without it; other parameters at their defaults, among them "
        "the Gumbel temperature 0.5 and the repetition penalty 1.0 chosen on training messages only, see "
        "[TEXT_SUMMARY_SELECTION.md](TEXT_SUMMARY_SELECTION.md)). CPU, 1 torch thread, on a 2-core machine "
        "shared with other jobs: timings are noisy; the other numbers are what matter.".replace(
            "the same 20 epochs", f"the same {args.pretrain_epochs + args.epochs} epochs"),
        "",
        "Both sequence-to-sequence models copy (pointer-generators): the summariser copies words of the message "
        "forward only, the reconstructor copies words of the summary. The discriminator judges every prefix of a "
        "word sequence with the standard (non-saturating) GAN loss on one-hot words, not the paper's WGAN with "
        "gradient penalty; its real examples are the first words of other training messages, cut to the "
        "summaries' lengths. Readability is the perplexity of a word bigram model with add-k smoothing fitted on "
        "the training messages (k chosen per seed by perplexity on 300 training messages left out of its fit). "
        "Mean ± standard deviation over the seeds:",
        "",
        "| measure | " + " | ".join(names) + " |",
        "|---|---|---|",
    ]
    for key, label in metrics:
        cells = []
        for name in names:
            values = [r[name][key] for r in rows]
            cells.append(_mean_sd(values) if key != "fit_s" else f"{np.mean(values):.0f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "References on the same held-out messages: the bigram model's perplexity of the messages themselves "
                  f"{real:.1f} ± {np.std([r['real_ppl'] for r in rows]):.1f} (k = "
                  f"{', '.join(str(r['k']) for r in rows)}); token accuracy of the commonest training token at each "
                  f"position up to the message's length (no summary at all) {_mean_sd([r['baseline_accuracy'] for r in rows])}.", ""]
    lines += ["| seed | " + " | ".join(f"{n}: strict accuracy / perplexity / copied / repeated" for n in names) + " |",
              "|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | " + " | ".join(
            f"{r[n]['strict_accuracy']:.3f} / {r[n]['ppl']:.1f} / {r[n]['copy']:.3f} / {r[n]['repeated']:.3f}"
            for n in names) + " |")
    w, wo = mean["with discriminator"], mean["without discriminator"]
    better = sum(r["with discriminator"]["ppl"] < r["without discriminator"]["ppl"] for r in rows)

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    lines += [
        "",
        "## Goals",
        "",
        f"- Rebuilt from the summary alone, a message beats knowing no summary at all (the commonest token at "
        f"each position, given the message's length): {verdict(w['strict_accuracy'] > baseline)} with the "
        f"discriminator, strict token accuracy {w['strict_accuracy']:.3f} against {baseline:.3f} "
        f"({w['strict_accuracy'] - baseline:+.3f}); without it {wo['strict_accuracy']:.3f}.",
        f"- Summaries read more like messages than random words do: {verdict(w['ppl'] < w['random_ppl'])} with the "
        f"discriminator, perplexity {w['ppl']:.0f} against {w['random_ppl']:.0f} for random words of the same "
        f"lengths ({w['ppl'] / w['random_ppl']:.2f} times); the held-out messages themselves score {real:.0f}, "
        f"{w['ppl'] / real:.1f} times lower than the summaries.",
        f"- The discriminator makes summaries more readable: {verdict(w['ppl'] < wo['ppl'])} on the mean over seeds, "
        f"and on {better} of {len(rows)} seeds; perplexity "
        f"{w['ppl']:.0f} with it against {wo['ppl']:.0f} without it ({(w['ppl'] - wo['ppl']) / wo['ppl']:+.0%}), "
        f"for a strict token accuracy {w['strict_accuracy'] - wo['strict_accuracy']:+.3f} from the reconstructor.",
        f"- Summary words taken from the message: {w['copy']:.0%} with the discriminator, {wo['copy']:.0%} "
        f"without; words repeating an earlier word of their summary: {w['repeated']:.1%} and {wo['repeated']:.1%}.",
    ]
    first = rows[0]
    for name in names:
        texts, summaries, decoded = first["examples"][name]
        lines += ["", f"## Examples, {name} (seed {first['seed']}, held-out messages)", "",
                  "| message | summary | rebuilt from the summary |", "|---|---|---|"]
        lines += [f"| {t.replace('|', '/')} | {s.replace('|', '/')} | {d.replace('|', '/')} |"
                  for t, s, d in zip(texts, summaries, decoded)]
    if args.notes and args.notes.exists():
        lines += ["", args.notes.read_text().strip()]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=18, help="epochs after the pre-training")
    parser.add_argument("--max-words", type=int, default=20)
    parser.add_argument("--results", type=Path, default=HERE / "results",
                        help="folder of the per-seed results (text_summary_seed<N>.json)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the report from the per-seed results already in --results, fitting nothing")
    parser.add_argument("--notes", type=Path, default=HERE / "text_summary_notes.md",
                        help="hand-written reading of the results appended to the report, if the file exists")
    parser.add_argument("--out", type=Path, default=HERE / "TEXT_SUMMARY.md")
    args = parser.parse_args(argv)
    if not SMS.exists():
        print(f"{SMS} is missing; this benchmark needs the SMS Spam Collection", file=sys.stderr)
        return 1
    rows = []
    for seed in args.seeds:
        path = args.results / f"text_summary_seed{seed}.json"
        if not args.report_only:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(run_seed(seed, args), indent=1))
        if not path.exists():
            print(f"{path} is missing: run without --report-only for seed {seed} first", file=sys.stderr)
            return 1
        rows.append(json.loads(path.read_text()))
    write_markdown(rows, args, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
