"""How long TextAutoEncoderDetector takes to fit on SMS ham: this checkout beside an older one.

The same fit (a seed's training ham of ``benchmarks/text_anomaly.py``: 2,896 messages, the
detector's defaults, ``epochs`` epochs with early stopping off, one torch thread) is timed with
the code of each source tree in a fresh subprocess, the trees taking turns (before, after, before,
after, ...) so that a machine whose load changes over the run slows both alike. Each run also
records the mean score (per-token loss) of the seed's validation ham, lower = a better model of
normal messages, and the AUROC and AUPRC on its test set (1,448 ham, 747 spam), so a faster fit
that learned less would show.

The older tree is any oddkit ``src`` folder, e.g. the commit before the speed-up::

    git archive 7143f6f src | tar -x -C /tmp/before
    .venv/bin/python benchmarks/text_fit_speed.py --before /tmp/before/src --epochs 2 --repeats 3

The rows ``this checkout, bucketing`` of TEXT_FIT_SPEED.md were measured at commit a0d7c14,
whose ``fit_module`` could batch texts of similar length together (``sizes=``); the detector never
used it (worse held-out loss, lower AUROC on one seed), and the option was removed after.

Results: one JSON line per fit appended to benchmarks/results/text_fit_speed.jsonl; the table of
the last invocation goes to benchmarks/TEXT_FIT_SPEED.md.
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
texts, y = read_texts(SMS)
texts = np.asarray(texts, dtype=object)
train, val, test = split(y, {seed})
detector = TextAutoEncoderDetector(random_state={seed}, epochs={epochs}, patience=None, n_threads=1)
start = time.perf_counter()
detector.fit(list(texts[train]))
fit = time.perf_counter() - start
start = time.perf_counter()
scores = detector.decision_function(list(texts[test]))
score = time.perf_counter() - start
print(json.dumps(dict(fit_seconds=fit, score_seconds=score, val_loss=detector.history_["val_loss"],
                      validation_ham_loss=float(detector.decision_function(list(texts[val])).mean()),
                      **metrics(y[test], scores))))
"""


def run(src: Path, epochs: int, seed: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = CHILD.format(bench=str(REPO / "benchmarks"), epochs=epochs, seed=seed)
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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="splits and model seeds, each run in turn")
    args = parser.parse_args()
    runs = [(args.before_name, args.before), ("this checkout", REPO / "src")]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    results: list[dict] = []
    RAW.parent.mkdir(parents=True, exist_ok=True)
    for repeat in range(args.repeats):
        for seed in args.seeds:
            for name, src in runs:
                load = load_average()
                row = dict(code=name, src=str(src), variant=None, epochs=args.epochs, seed=seed,
                           repeat=repeat, commit=commit, load_average_before=load,
                           when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           **run(src, args.epochs, seed))
                results.append(row)
                with open(RAW, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    write_table(results, args, [name for name, _ in runs])


def write_table(results: list[dict], args, names: list[str]) -> None:
    loads = [r["load_average_before"] for r in results]
    lines = [
        "# TextAutoEncoderDetector: fit time on SMS ham, before and after",
        "",
        f"Written by `benchmarks/text_fit_speed.py` (protocol in its docstring) at commit `{results[0]['commit']}`, "
        f"{results[0]['when'][:10]}: {args.epochs} epochs (early stopping off) on the 2,896 training ham messages "
        f"of seeds {', '.join(map(str, args.seeds))} of `benchmarks/text_anomaly.py` (10% of them held out for "
        f"the training loop's validation loss), one torch thread, each fit in a fresh process, the code versions "
        f"taking turns, {args.repeats} time(s) per seed. Machine: {platform.machine()}, {os.cpu_count()} CPUs "
        f"shared with other jobs (1-minute load average {min(loads):.1f} to {max(loads):.1f} before the fits), "
        "so the times are noisy; the speed-up compares mean fit times of runs that took turns.",
        "",
        "| code | seed | fit (s), each run | fit mean (s) | speed-up | scoring 2,195 texts (s) | validation-ham loss "
        "| AUROC | AUPRC |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for seed in args.seeds:
        base = np.mean([r["fit_seconds"] for r in results if r["code"] == names[0] and r["seed"] == seed])
        for name in names:
            rows = [r for r in results if r["code"] == name and r["seed"] == seed]
            fits = [r["fit_seconds"] for r in rows]
            lines.append(
                f"| {name} | {seed} | {', '.join(f'{f:.1f}' for f in fits)} | {np.mean(fits):.1f} | "
                f"{base / np.mean(fits):.2f}x | {np.mean([r['score_seconds'] for r in rows]):.1f} | "
                f"{rows[0]['validation_ham_loss']:.4f} | {rows[0]['auroc']:.3f} | {rows[0]['auprc']:.3f} |")
    lines += [
        "",
        "A fit's time includes learning the BPE vocabulary and the validation loss after each epoch. Losses, AUROC "
        "and AUPRC are those of the first run of each code and seed (a seed gives the same values on every run). "
        "Validation-ham loss: the mean score of the seed's validation ham (10% of the ham, never trained on), "
        "lower = a better model of normal messages.",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
