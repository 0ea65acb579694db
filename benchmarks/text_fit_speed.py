"""How long TextAutoEncoderDetector takes to fit on SMS ham: this checkout beside an older one.

The same fit (seed 0's training ham of ``benchmarks/text_anomaly.py``: 2,896 messages, the
detector's defaults, ``epochs`` epochs with early stopping off, one torch thread) is timed with
the code of each source tree in a fresh subprocess, the trees taking turns (before, after, before,
after, ...) so that a machine whose load changes over the run slows both alike. Each run also
scores the test set (1,448 ham, 747 spam) and records the AUROC and AUPRC, so a faster fit that
learned less would show.

The older tree is any oddkit ``src`` folder, e.g. the commit before the speed-up::

    git archive 7143f6f src | tar -x -C /tmp/before
    .venv/bin/python benchmarks/text_fit_speed.py --before /tmp/before/src --epochs 2 --repeats 3

``--variant`` adds a run of this checkout with a named part of the speed-up switched off
(``no-bucketing``: batches of shuffled rows of any length, as before). Results: one JSON line per
fit appended to benchmarks/results/text_fit_speed.jsonl; the table of the last invocation goes to
benchmarks/TEXT_FIT_SPEED.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "TEXT_FIT_SPEED.md"
RAW = REPO / "benchmarks" / "results" / "text_fit_speed.jsonl"

CHILD = r"""
import json, sys, time
import numpy as np, torch
sys.path.insert(0, {bench!r})
torch.set_num_threads(1)
from text_anomaly import SMS, metrics, split
from oddkit.data.text import read_texts
from oddkit import TextAutoEncoderDetector
if {variant!r} == "no-bucketing":
    import oddkit.detectors.text as module
    real = module.fit_module
    module.fit_module = lambda *args, sizes=None, **kwargs: real(*args, **kwargs)
texts, y = read_texts(SMS)
texts = np.asarray(texts, dtype=object)
train, val, test = split(y, 0)
detector = TextAutoEncoderDetector(random_state=0, epochs={epochs}, patience=None, n_threads=1)
start = time.perf_counter()
detector.fit(list(texts[train]))
fit = time.perf_counter() - start
start = time.perf_counter()
scores = detector.decision_function(list(texts[test]))
score = time.perf_counter() - start
print(json.dumps(dict(fit_seconds=fit, score_seconds=score, val_loss=detector.history_["val_loss"],
                      **metrics(y[test], scores))))
"""


def run(src: Path, variant: str, epochs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = CHILD.format(bench=str(REPO / "benchmarks"), variant=variant, epochs=epochs)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_average() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the older oddkit src folder")
    parser.add_argument("--before-name", default="before", help="its name in the table")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", action="append", default=[], choices=["no-bucketing"])
    args = parser.parse_args()
    runs = [(args.before_name, args.before, "")] + [(f"this checkout, {v}", REPO / "src", v) for v in args.variant]
    runs.append(("this checkout", REPO / "src", ""))
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    results: list[dict] = []
    RAW.parent.mkdir(parents=True, exist_ok=True)
    for repeat in range(args.repeats):
        for name, src, variant in runs:
            load = load_average()
            row = dict(code=name, src=str(src), variant=variant or None, epochs=args.epochs, repeat=repeat,
                       commit=commit, load_average_before=load, when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       **run(src, variant, args.epochs))
            results.append(row)
            with open(RAW, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    write_table(results, args, [name for name, _, _ in runs])


def write_table(results: list[dict], args, names: list[str]) -> None:
    loads = [r["load_average_before"] for r in results]
    lines = [
        "# TextAutoEncoderDetector: fit time on SMS ham, before and after",
        "",
        f"Written by `benchmarks/text_fit_speed.py` (protocol in its docstring) at commit `{results[0]['commit']}`, "
        f"{results[0]['when'][:10]}: {args.epochs} epochs (early stopping off) on seed 0's 2,896 training ham "
        f"messages (10% of them held out for the validation loss), one torch thread, each fit in a fresh process, "
        f"the code versions taking turns, {args.repeats} times each. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs shared with other jobs (1-minute load average {min(loads):.1f} to {max(loads):.1f} "
        "before the fits), so the times are noisy; compare the columns of one row of runs.",
        "",
        "| code | fit (s), each run | fit mean (s) | speed-up | scoring 2,195 texts (s) | last validation loss | AUROC | AUPRC |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = np.mean([r["fit_seconds"] for r in results if r["code"] == names[0]])
    for name in names:
        rows = [r for r in results if r["code"] == name]
        fits = [r["fit_seconds"] for r in rows]
        lines.append(
            f"| {name} | {', '.join(f'{f:.1f}' for f in fits)} | {np.mean(fits):.1f} | {base / np.mean(fits):.2f}x | "
            f"{np.mean([r['score_seconds'] for r in rows]):.1f} | {rows[0]['val_loss'][-1]:.4f} | "
            f"{rows[0]['auroc']:.3f} | {rows[0]['auprc']:.3f} |")
    lines += [
        "",
        "A fit's time includes learning the BPE vocabulary and the validation loss after each epoch. The losses "
        "and AUROC are those of the first run of each code (the same seed gives the same values on every run).",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
