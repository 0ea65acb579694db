"""Streamed training against in-memory training on one generated table: peak RSS, time, AUROC.

A table of ``--rows`` rows x 20 float64 columns is written as Parquet with pyarrow, a million rows
at a time (files of ``--rows-per-file`` rows, row groups of 131,072 rows): normal rows lie near a
5-dimensional non-linear surface (``tanh`` of a random projection of 5 latent factors, plus noise).
A separate test set holds 20,000 normal rows and 1,000 planted anomalies (normal rows pushed off
the surface by noise of standard deviation 0.35 in every column). Each fit runs in its own
subprocess, so its peak resident memory (``ru_maxrss``) is its own:

- ``stream``: ``AutoEncoderDetector().fit_stream(TableSource(folder))`` (batches of 65,536 rows);
- ``memory``: ``pandas.read_parquet(folder)`` then ``AutoEncoderDetector().fit(frame)``.

Both use the same parameters (``--epochs``, ``random_state=0``, ``n_threads``) and are scored on
the same test set. Results go to ``benchmarks/results/stream_fit.json``.

Usage::

    python benchmarks/stream_fit.py --rows 10000000 --epochs 3 --workdir /tmp/stream_bench
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_COLUMNS, N_FACTORS = 20, 5
CHUNK_ROWS = 1_000_000
ROW_GROUP_ROWS = 131_072
RESULTS = Path(__file__).resolve().parent / "results" / "stream_fit.json"


def _mixing() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(12345)
    return rng.normal(size=(N_FACTORS, N_COLUMNS)) / np.sqrt(N_FACTORS), rng.normal(size=N_COLUMNS) * 0.3


def _normal_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    mixing, bias = _mixing()
    return np.tanh(rng.normal(size=(n, N_FACTORS)) @ mixing + bias) * 2.0 + 0.05 * rng.normal(size=(n, N_COLUMNS))


def generate(folder: Path, rows: int, rows_per_file: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    names = [f"x{j:02d}" for j in range(N_COLUMNS)]
    rng = np.random.default_rng(0)
    written, part = 0, 0
    while written < rows:
        n_file = min(rows_per_file, rows - written)
        with pq.ParquetWriter(folder / f"part-{part:04d}.parquet", pa.schema([(n, pa.float64()) for n in names])) as w:
            done = 0
            while done < n_file:
                n = min(CHUNK_ROWS, n_file - done)
                block = _normal_rows(rng, n)
                w.write_table(pa.table({name: block[:, j] for j, name in enumerate(names)}),
                              row_group_size=ROW_GROUP_ROWS)
                done += n
        written += n_file
        part += 1
    test_rng = np.random.default_rng(1)
    normal = _normal_rows(test_rng, 20_000)
    anomalies = _normal_rows(test_rng, 1_000) + test_rng.normal(scale=0.35, size=(1_000, N_COLUMNS))
    np.savez(folder.parent / "test.npz", X=np.vstack([normal, anomalies]), y=np.r_[np.zeros(20_000), np.ones(1_000)],
             names=np.asarray(names))


def child(mode: str, folder: Path, epochs: int, threads: int) -> None:
    """One fit in this process; prints a JSON line."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from oddkit import AutoEncoderDetector
    from oddkit.data.stream import TableSource

    test = np.load(folder.parent / "test.npz")
    X_test = pd.DataFrame(test["X"], columns=[str(n) for n in test["names"]])
    params = dict(epochs=epochs, robust=False, n_estimators=1, random_state=0, verbose=0, n_threads=threads)
    started = time.perf_counter()
    read_s = 0.0
    if mode == "stream":
        model = AutoEncoderDetector(**params).fit_stream(TableSource(folder))
        extra = {"stream_info": model.stream_info_}
    else:
        frame = pd.read_parquet(folder)
        read_s = time.perf_counter() - started
        model = AutoEncoderDetector(**params).fit(frame)
        extra = {"rows": len(frame)}
        del frame
    fit_s = time.perf_counter() - started
    scores = model.decision_function(X_test)
    print(json.dumps({
        "mode": mode, "seconds": round(fit_s, 1), "read_seconds": round(read_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "auroc": round(float(roc_auc_score(test["y"], scores)), 4), "threshold": model.threshold_,
        "epochs_run": len(model.history_["train_loss"]), "val_loss": model.history_["val_loss"], **extra}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rows-per-file", type=int, default=2_500_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/oddkit_stream_bench"))
    parser.add_argument("--modes", default="stream,memory")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = args.workdir / f"rows-{args.rows}"
    if args.child:
        return child(args.child, folder, args.epochs, args.threads)
    if not (folder.parent / "test.npz").exists() or not folder.exists():
        started = time.perf_counter()
        generate(folder, args.rows, args.rows_per_file)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    size_mb = sum(p.stat().st_size for p in folder.glob("*.parquet")) / 2 ** 20
    runs = []
    for mode in args.modes.split(","):
        done = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--epochs", str(args.epochs),
                               "--threads", str(args.threads), "--workdir", str(args.workdir), "--child", mode],
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    import torch

    result = {"rows": args.rows, "columns": N_COLUMNS, "parquet_mb": round(size_mb, 1), "epochs": args.epochs,
              "threads": args.threads, "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                                                  f"torch {torch.__version__}", "runs": runs,
              "command": " ".join(["python", "benchmarks/stream_fit.py", *sys.argv[1:]])}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
