"""Training and scoring speed, and memory, of oddkit's auto-encoder against PyOD's.

Both fit the same synthetic rows (standard normal, float32, 30 columns, fixed seed) for the same
number of epochs with the same number of threads:

- oddkit: ``AutoEncoderDetector()`` with its defaults except ``epochs=E, patience=None`` (no early
  stop, so it trains exactly E epochs), ``verbose=0, random_state=0``;
- PyOD: ``AutoEncoder()`` with its defaults except ``epoch_num=E``, ``verbose=0, random_state=0``.

Each library runs in its own fresh subprocess, so the peak resident memory (``ru_maxrss``) is its
own, torch's C++ allocations included, and neither run warms the other. (tracemalloc is not used:
it sees only Python allocations, not torch's tensors, and it slows down the training it times.)
Training throughput is rows x epochs / fit seconds, whatever each library does inside an epoch
(oddkit holds 10% of the rows out for validation by default, and both differ in batch size);
scoring throughput is rows / seconds of a warm ``decision_function`` call on all rows (the median
of five). Both libraries first fit the same rows for one epoch, so one-time costs (torch's lazy
imports, about 1 s at the first optimiser of a process, and the allocator's growth to full-size
batches) are paid outside the timed fit.
E defaults to 5: enough for the per-epoch cost to dominate setup, few enough for minutes.
The whole measurement is repeated R times (default 3), the two libraries' processes taking turns,
and each figure is the median over repeats: on a shared machine a single fit of about a second
varies by half from run to run.

    .venv/bin/python benchmarks/speed.py                       # 100,000 rows, 5 epochs, 2 threads
    .venv/bin/python benchmarks/speed.py --rows 20000 --epochs 2 --out /tmp/speed.json   # quick check
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import statistics
import time
from pathlib import Path

from bench_runtime import command_line, limit_threads, versions

SPEED_FILE = Path(__file__).resolve().parent / "results" / "speed.json"
N_FEATURES = 30
LIBRARIES = ("oddkit", "pyod")
MIB = 1024 * 1024


def build(library: str, epochs: int):
    if library == "oddkit":
        from oddkit import AutoEncoderDetector

        return AutoEncoderDetector(epochs=epochs, patience=None, verbose=0, random_state=0)
    from pyod.models.auto_encoder import AutoEncoder

    return AutoEncoder(epoch_num=epochs, verbose=0, random_state=0)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(library: str, rows: int, epochs: int, threads: int) -> dict:
    """Fit and score in this process (the worker side); returns timings and memory."""
    limit_threads(threads)
    import warnings

    import numpy as np

    warnings.simplefilter("ignore")
    X = np.random.default_rng(0).standard_normal((rows, N_FEATURES), dtype=np.float32)
    # Warm-up, one epoch on the same rows: torch imports most of its optimiser machinery (about
    # 1 s) on the first Adam of a process, and its allocator grows to the full batch shapes on the
    # first fit that uses them; neither is a cost of training.
    build(library, 1).fit(X)
    detector = build(library, epochs)
    baseline = peak_rss_mib()
    start = time.perf_counter()
    detector.fit(X)
    fit_seconds = time.perf_counter() - start
    detector.decision_function(X)  # warm-up: first-call allocations and lazy initialisation
    # The median of five calls: the machine is shared, and single calls of ~0.1 s are noisy.
    score_seconds = float(np.median([_seconds(detector.decision_function, X) for _ in range(5)]))
    peak = peak_rss_mib()
    return {"fit_seconds": fit_seconds, "score_seconds": score_seconds,
            "train_rows_per_second": rows * epochs / fit_seconds, "score_rows_per_second": rows / score_seconds,
            "peak_rss_mib": peak, "rss_increase_mib": peak - baseline}


def _seconds(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def run_worker(library: str, args: argparse.Namespace) -> dict:
    """:func:`measure` in a fresh interpreter, so its peak memory is its own."""
    command = [sys.executable, __file__, "--worker", library, "--rows", str(args.rows),
               "--epochs", str(args.epochs), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{library} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed_markdown(data: dict) -> str:
    """The speed table RESULTS.md includes."""
    odd, peer, ratio = data["results"]["oddkit"], data["results"]["pyod"], data["ratios"]
    rows = [("training throughput (rows x epochs / s)", "train_rows_per_second", "{:,.0f}"),
            ("scoring throughput (rows / s, warm)", "score_rows_per_second", "{:,.0f}"),
            ("fit seconds", "fit_seconds", "{:.2f}"),
            ("score seconds", "score_seconds", "{:.3f}"),
            ("peak resident memory (MiB)", "peak_rss_mib", "{:,.0f}"),
            ("peak memory added by the timed fit + score, after the warm-up (MiB)", "rss_increase_mib", "{:,.0f}")]
    lines = [f"{data['rows']:,} x {data['features']} standard-normal float32 rows, {data['epochs']} epochs, "
             f"{data['threads']} threads, each library in its own process, medians of {data.get('repeats', 1)} "
             f"runs (`{data['command']}`). "
             "oddkit: `AutoEncoderDetector(epochs=E, patience=None)`, otherwise defaults; "
             "PyOD: `AutoEncoder(epoch_num=E)`, otherwise defaults. "
             "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ".", "",
             "| | oddkit | PyOD | oddkit / PyOD |", "|---|---|---|---|"]
    for label, key, spec in rows:
        lines.append(f"| {label} | {spec.format(odd[key])} | {spec.format(peer[key])} | {ratio[key]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="medians over this many runs of each library")
    parser.add_argument("--out", type=Path, default=SPEED_FILE)
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args.rows, args.epochs, args.threads)))
        return
    runs = {library: [] for library in LIBRARIES}
    for _ in range(args.repeats):
        for library in LIBRARIES:
            runs[library].append(run_worker(library, args))
    results = {library: {key: statistics.median(run[key] for run in done) for key in done[0]}
               for library, done in runs.items()}
    data = {"rows": args.rows, "features": N_FEATURES, "epochs": args.epochs, "threads": args.threads,
            "repeats": args.repeats,
            "command": command_line(), "versions": versions(), "results": results,
            "ratios": {key: results["oddkit"][key] / results["pyod"][key] for key in results["oddkit"]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(speed_markdown(data))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
