"""Rows per second scoring a generated Parquet folder: one process against Spark local[2], same models.

Data: ROWS rows x 20 float64 columns (``f0`` .. ``f19``, standard normal, 0.1% of rows shifted by 5),
written with pyarrow in files of 500,000 rows (memory bounded by one file), under --workdir.
Models: a GaussianDetector and an AutoEncoderDetector (5 epochs) trained on 50,000 rows of the same
distribution, saved as folders.

For each model, in the same run and on the same files:

- **one process**: the command line, ``oddkit score MODEL FOLDER --out OUT.parquet --batch-rows 100000``
  (run in the worker process through ``oddkit.cli.main``): it streams the folder's files one after
  the other, 100,000 rows at a time, and writes ``score`` and ``label`` to one Parquet file. Timed from
  the start of a fresh Python process (imports and model load included).
- **Spark local[2]**: ``oddkit.spark.score`` on ``spark.read.parquet(folder)``, ``score`` and
  ``label`` written as a Parquet folder. Timed from the start of a fresh Python process too (JVM and
  session start included), and the job alone (after the session is up) reported beside it.

Each mode runs in its own subprocess, one after the other (never at the same time).

    python benchmarks/spark.py [--rows 10000000] [--workdir /tmp/oddkit-spark-bench] [--out benchmarks/results/spark.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_FEATURES = 20
FILE_ROWS = 500_000
BATCH_ROWS = 100_000


def generate(folder: Path, rows: int, seed: int = 0) -> None:
    """ROWS rows in FILE_ROWS-row Parquet files; only one file's rows in memory at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    names = [f"f{i}" for i in range(N_FEATURES)]
    for index, start in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - start)
        rng = np.random.default_rng([seed, index])
        X = rng.standard_normal((n, N_FEATURES))
        X[rng.random(n) < 0.001] += 5.0
        pq.write_table(pa.table({name: X[:, j] for j, name in enumerate(names)}), folder / f"part-{index:05d}.parquet")


def train(models: Path) -> None:
    import numpy as np
    import pandas as pd

    from oddkit import AutoEncoderDetector, GaussianDetector

    rng = np.random.default_rng(12345)
    X = pd.DataFrame(rng.standard_normal((50_000, N_FEATURES)), columns=[f"f{i}" for i in range(N_FEATURES)])
    GaussianDetector().fit(X).save(models / "gaussian")
    AutoEncoderDetector(epochs=5, robust=False, n_estimators=1, random_state=0, verbose=0).fit(X).save(models / "autoencoder")


def worker_single(model: Path, data: Path, out: Path) -> dict:
    """The command line itself, in this process: 'oddkit score MODEL DATA --out OUT --batch-rows 100000'."""
    import pyarrow.parquet as pq

    from oddkit import cli

    argv = sys.argv
    sys.argv = ["oddkit", "score", str(model), str(data), "--out", str(out), "--batch-rows", str(BATCH_ROWS), "--quiet"]
    try:
        cli.main()
    except SystemExit as exc:
        if exc.code:
            raise
    finally:
        sys.argv = argv
    labels = pq.read_table(out, columns=["label"]).column("label")
    return {"rows": len(labels), "flagged": int(labels.to_numpy().sum())}


def worker_spark(model: Path, data: Path, out: Path) -> dict:
    from pyspark.sql import functions as F

    from oddkit.spark import local_session, score

    started = time.perf_counter()
    spark = local_session("local[2]", app_name="oddkit-bench", conf={"spark.ui.showConsoleProgress": "false"})
    session_s = time.perf_counter() - started
    started = time.perf_counter()
    score(spark.read.parquet(str(data)), model).select("score", "label").write.mode("overwrite").parquet(str(out))
    job_s = time.perf_counter() - started
    counts = spark.read.parquet(str(out)).agg(F.count("*").alias("n"), F.sum("label").alias("k")).first()
    spark.stop()
    return {"rows": int(counts["n"]), "flagged": int(counts["k"]), "session_s": session_s, "job_s": job_s}


def run_worker(mode: str, model: Path, data: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--worker", mode, "--model", str(model), "--data", str(data),
                           "--out", str(out)], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{mode} worker failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def machine() -> dict:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    import pyspark

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "pyspark": pyspark.__version__, "java": java,
            "note": "2 CPU cores shared with other work (noisy); figures are single runs"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/oddkit-spark-bench"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "spark.json")
    parser.add_argument("--models", nargs="+", default=["gaussian", "autoencoder"])
    parser.add_argument("--worker", choices=["single", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = (worker_single if args.worker == "single" else worker_spark)(args.model, args.data, args.out)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    data = args.workdir / f"rows-{args.rows}"
    if not (data / "_DONE").exists():
        started = time.perf_counter()
        generate(data, args.rows)
        (data / "_DONE").write_text("")
        print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    models = args.workdir / "models"
    if not (models / "autoencoder").exists():
        train(models)
    results = []
    for name in args.models:
        for mode in ("single", "spark"):
            out = args.workdir / f"out-{name}-{mode}.parquet"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            result = {"model": name, "engine": "one process" if mode == "single" else "spark local[2]",
                      **run_worker(mode, models / name, data, out)}
            result["rows_per_s"] = result["rows"] / result["wall_s"]
            if "job_s" in result:
                result["job_rows_per_s"] = result["rows"] / result["job_s"]
            results.append(result)
            print(json.dumps(result), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": args.rows, "features": N_FEATURES, "machine": machine(),
                                    "command": " ".join(["python", "benchmarks/spark.py", *sys.argv[1:]]),
                                    "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
