"""Choosing the summary auto-encoder's settings on training messages only.

The settings of :class:`oddkit.TextSummaryAutoEncoder` that ``benchmarks/text_summary.py`` runs
with (its defaults) are chosen here, without the benchmark's held-out messages: the 1,000 training
messages of the benchmark's seed 0 are split into the first 700 (fit) and the last 300
(validation), in the benchmark's own random order. A bigram model for readability is fitted on the
700 (its smoothing chosen on 200 of them, as the benchmark does), and each candidate is fitted on
the 700 and measured on the 300 with the benchmark's measures (``text_summary.Judge``).

Candidates, one change at a time from a base (Gumbel temperature 0.5, repetition penalty 1.0, 2
epochs of pre-training, then 18 with the discriminator of weight 0.3, as in the benchmark):
temperature 1.0 (the old default) and 0.25, no repetition penalty, no pre-training, a stronger
discriminator (weight 1.0; added after the first six runs, to see whether it buys readability),
and for reference the base without the discriminator (not a candidate: the benchmark runs both).

Rule, fixed before any run: among the candidates whose summaries have a lower bigram perplexity
than random words of the same lengths (readable at all), the one with the highest token accuracy
of messages rebuilt from their summaries; if none qualifies, the lowest perplexity.

    .venv/bin/python benchmarks/text_summary_selection.py                       # every candidate
    .venv/bin/python benchmarks/text_summary_selection.py --candidates base t1  # some, e.g. in parallel
    .venv/bin/python benchmarks/text_summary_selection.py --report-only         # the report from results
    .venv/bin/python benchmarks/text_summary_selection.py --decoding            # the chosen one's decoding

Writes ``benchmarks/results/text_summary_selection_<name>.json`` per candidate and
``benchmarks/TEXT_SUMMARY_SELECTION.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from text_summary import SMS, Judge, sms_split

HERE = Path(__file__).resolve().parent
BASE = {"temperature": 0.5, "repetition_weight": 1.0, "pretrain_epochs": 2, "epochs": 18, "adversarial_weight": 0.3}
CANDIDATES = {
    "base": {},
    "t1": {"temperature": 1.0},
    "t0.25": {"temperature": 0.25},
    "no-repetition": {"repetition_weight": 0.0},
    "no-pretrain": {"pretrain_epochs": 0, "epochs": 20},
    "no-discriminator": {"adversarial_weight": 0.0},
    "adv1": {"adversarial_weight": 1.0},
}
REFERENCE_ONLY = {"no-discriminator"}


def run_candidate(name: str, fit: list[str], validation: list[str]) -> dict:
    import torch

    from oddkit import TextSummaryAutoEncoder

    torch.set_num_threads(1)
    params = {**BASE, **CANDIDATES[name]}
    started = time.perf_counter()
    model = TextSummaryAutoEncoder(max_length=20, random_state=0, **params).fit(fit)
    seconds = time.perf_counter() - started
    judge = Judge(model.preprocessor_.tokenizer_, fit, 200, 0)
    measures, summaries, rebuilt = judge.measure(model, validation)
    row = {"name": name, "params": params, **measures, "fit_s": seconds, "k": judge.k,
           "real_ppl": judge.bigram.perplexity(judge.tok.encode(validation)),
           "baseline_accuracy": judge.baseline_accuracy(validation),
           "examples": [validation[:4], summaries[:4], rebuilt[:4]]}
    print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    return row


def run_decoding(name: str, fit: list[str], validation: list[str], sizes=(0, 2, 3)) -> dict:
    """Refit candidate ``name`` (same seed: the same model) and measure the token accuracy of its
    rebuilt messages when greedy decoding may not repeat an n-gram of each size (0: plain)."""
    import torch

    from oddkit import TextSummaryAutoEncoder

    torch.set_num_threads(1)
    model = TextSummaryAutoEncoder(max_length=20, random_state=0, **{**BASE, **CANDIDATES[name]}).fit(fit)
    judge = Judge(model.preprocessor_.tokenizer_, fit, 200, 0)
    row = {"name": name, "accuracy": {}, "examples": {}}
    for size in sizes:
        measures, summaries, rebuilt = judge.measure(model, validation, no_repeat_ngram=size)
        row["accuracy"][str(size)] = measures["accuracy"]
        row["examples"][str(size)] = rebuilt[:4]
    print(f"decoding of {name}: {row['accuracy']}", flush=True)
    return row


def choose(rows: list[dict]) -> dict:
    candidates = [r for r in rows if r["name"] not in REFERENCE_ONLY]
    readable = [r for r in candidates if r["ppl"] < r["random_ppl"]]
    if readable:
        return max(readable, key=lambda r: r["accuracy"])
    return min(candidates, key=lambda r: r["ppl"])


def write_markdown(rows: list[dict], path: Path, notes: Path | None = None) -> None:
    chosen = choose(rows)
    lines = [
        "# Choosing the summary auto-encoder's settings (training messages only)",
        "",
        "Produced by `.venv/bin/python benchmarks/text_summary_selection.py`. The benchmark's seed-0 training "
        "messages (1,000 SMS ham of 3 to 20 word tokens) are split into 700 to fit and 300 to validate on; the "
        "benchmark's held-out messages are never read. Each candidate changes one setting of the base "
        f"({', '.join(f'{k}={v}' for k, v in BASE.items())}); all use seed 0. Rule, fixed before the runs: among "
        "the candidates whose summaries' bigram perplexity is below that of random words of the same lengths, the "
        "highest token accuracy of messages rebuilt from their summaries. CPU, 1 torch thread, shared machine.",
        "",
        "| candidate | change | token accuracy | perplexity | random words | copied | repeated | fit (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        change = ", ".join(f"{k}={v}" for k, v in CANDIDATES[r["name"]].items()) or "(base)"
        mark = " (chosen)" if r is chosen else " (reference, not a candidate)" if r["name"] in REFERENCE_ONLY else ""
        lines.append(f"| {r['name']}{mark} | {change} | {r['accuracy']:.3f} | {r['ppl']:.0f} | {r['random_ppl']:.0f} | "
                     f"{r['copy']:.3f} | {r['repeated']:.3f} | {r['fit_s']:.0f} |")
    any_row = rows[0]
    lines += ["", f"References on the 300 validation messages: the bigram model on the messages themselves, perplexity "
                  f"{any_row['real_ppl']:.1f} (k = {any_row['k']}); the commonest training token at each position, "
                  f"token accuracy {any_row['baseline_accuracy']:.3f}.", "",
              f"Chosen: **{chosen['name']}** ({', '.join(f'{k}={v}' for k, v in chosen['params'].items())})."]
    decoding_path = path.parent / "results" / "text_summary_selection_decoding.json"
    if decoding_path.exists():
        decoding = json.loads(decoding_path.read_text())
        lines += ["", f"## Decoding: no repeated n-grams ({decoding['name']}, the same model refitted)", "",
                  "Greedy decoding tends to loop on the summary's last words. `decode_text(summaries, "
                  "no_repeat_ngram=n)` forbids a token that would repeat an n-gram of the rebuilt message:", "",
                  "| no_repeat_ngram | token accuracy |", "|---|---|"]
        lines += [f"| {size} | {acc:.3f} |" for size, acc in decoding["accuracy"].items()]
    if notes is not None and notes.exists():
        lines += ["", notes.read_text().strip()]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--report-only", action="store_true", help="write the report from the results, fitting nothing")
    parser.add_argument("--decoding", action="store_true",
                        help="refit the chosen candidate and measure decoding without repeated n-grams")
    parser.add_argument("--out", type=Path, default=HERE / "TEXT_SUMMARY_SELECTION.md")
    parser.add_argument("--notes", type=Path, default=HERE / "text_summary_selection_notes.md",
                        help="hand-written reading of the results appended to the report, if the file exists")
    args = parser.parse_args(argv)
    if not SMS.exists():
        print(f"{SMS} is missing; this selection needs the SMS Spam Collection", file=sys.stderr)
        return 1
    train, _, _ = sms_split(0, 1000, 300, 20)  # the benchmark's seed-0 training messages; its test part unused
    fit, validation = train[:700], train[700:]
    if args.decoding:
        args.results.mkdir(parents=True, exist_ok=True)
        row = run_decoding(choose([json.loads(p.read_text()) for p in args.results.glob("text_summary_selection_*.json")
                                   if p.stem != "text_summary_selection_decoding"])["name"], fit, validation)
        (args.results / "text_summary_selection_decoding.json").write_text(json.dumps(row, indent=1))
    elif not args.report_only:
        args.results.mkdir(parents=True, exist_ok=True)
        for name in args.candidates:
            row = run_candidate(name, fit, validation)
            (args.results / f"text_summary_selection_{name}.json").write_text(json.dumps(row, indent=1))
    rows = [json.loads(p.read_text()) for name in CANDIDATES
            if (p := args.results / f"text_summary_selection_{name}.json").exists()]
    if not rows:
        print("no results yet: run without --report-only first", file=sys.stderr)
        return 1
    write_markdown(rows, args.out, args.notes)
    print(f"wrote {args.out} ({len(rows)} of {len(CANDIDATES)} candidates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
