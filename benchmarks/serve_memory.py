"""Peak memory of one request to 'oddkit serve': reading, scoring and writing the answer.

Models: a Gaussian and an auto-encoder (3 epochs) fitted on 2,000 rows of a table of three numeric and two
categorical columns. Requests: 100,000 and 300,000 rows of the same table (one of them holding a category
never seen in training), as a CSV body, JSON records and JSON columns, with and without ``?explain=true``.
Each request runs in its own Python process, which loads the model, answers one small request (so that
the libraries are loaded), then reads the body and answers it as the service does
(``oddkit.serve._read_request`` and ``score_payload``, without HTTP); the figure is the process's peak
resident memory during the request (``VmHWM``, reset through ``/proc/self/clear_refs`` just before it;
Linux only) minus its resident memory just before it. The service's row cap
(``--max-rows``, 100,000 by default) is what keeps this bounded; the 300,000-row requests show the growth.

    python benchmarks/serve_memory.py [--rows 100000 300000] [--out benchmarks/SERVE_MEMORY.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

FORMS = {"CSV": "csv", "JSON records": "rows.json", "JSON columns": "cols.json"}


def table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"amount": rng.normal(100, 15, n).round(2), "hour": rng.integers(0, 24, n).astype(float),
                         "age": rng.normal(40, 10, n).round(1), "channel": rng.choice(["web", "shop", "phone"], n),
                         "region": rng.choice(["n", "s", "e", "w"], n)})


def prepare(folder: Path, row_counts: list[int]) -> None:
    """Fit and save the two models, and write every request body."""
    import oddkit

    oddkit.GaussianDetector().fit(table(2000, 0)).save(folder / "gaussian")
    oddkit.AutoEncoderDetector(epochs=3, random_state=0, verbose=0).fit(table(2000, 0)).save(folder / "autoencoder")
    for n in row_counts:
        rows = table(n, 1)
        rows.loc[5, "channel"] = "fax"  # a category never seen in training
        rows.to_csv(folder / f"b{n}.csv", index=False)
        (folder / f"b{n}.rows.json").write_text(json.dumps({"rows": rows.to_dict(orient="records")}))
        (folder / f"b{n}.cols.json").write_text(json.dumps({"columns": rows.to_dict(orient="list")}))


def one_request(model: str, body: str, explain: bool) -> dict:
    """Run in a fresh process: the peak memory of answering the request in ``body``."""
    import oddkit
    from oddkit import serve

    kind = "text/csv" if body.endswith(".csv") else "application/json"
    detector = oddkit.load(model)
    small = (b"amount,hour,age,channel,region\n1,2,3,web,n\n" if kind == "text/csv" else
             b'{"rows": [{"amount": 1, "hour": 2, "age": 3, "channel": "web", "region": "n"}]}')
    serve.score_payload(detector, serve._read_request(detector, small, kind, None), explain=explain)
    held = [Path(body).read_bytes()]
    before = _resident_mib("VmRSS")
    # Reset the peak to what is resident now (Linux: ru_maxrss would also carry the parent's peak, which
    # a child inherits across fork and exec).
    Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    answer = serve.score_payload(detector, serve._read_request(detector, held.pop(), kind, None), explain=explain)
    seconds = time.perf_counter() - start
    return {"answer_mib": len(answer) / 2**20, "peak_mib": _resident_mib("VmHWM") - before, "seconds": seconds}


def _resident_mib(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("SERVE_MEMORY.md"))
    parser.add_argument("--case", nargs=3, metavar=("MODEL", "BODY", "EXPLAIN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(one_request(args.case[0], args.case[1], args.case[2] == "1")))
        return
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        prepare(folder, args.rows)
        for model in ("gaussian", "autoencoder"):
            for n in args.rows:
                for form, suffix in FORMS.items():
                    body = folder / f"b{n}.{suffix}"
                    for explain in (False, True):
                        done = subprocess.run([sys.executable, __file__, "--case", str(folder / model), str(body),
                                               "1" if explain else "0"], capture_output=True, text=True, check=True)
                        result = json.loads(done.stdout.strip().splitlines()[-1])
                        line = (f"| {model} | {n:,} | {form}{', `?explain=true`' if explain else ''} | "
                                f"{body.stat().st_size / 2**20:.1f} | {result['answer_mib']:.1f} | "
                                f"{result['peak_mib']:.0f} | {result['seconds']:.2f} |")
                        print(line, flush=True)
                        lines.append(line)
    import oddkit

    head = [
        "# Memory of one request to the scoring service",
        "",
        f"Written by `python benchmarks/serve_memory.py` (oddkit {oddkit.__version__}, Python "
        f"{platform.python_version()}, {platform.machine()}, {time.strftime('%Y-%m-%d')}). Method: the script's "
        "docstring. MiB; seconds: the request's wall time, one process, on a shared machine (indicative only).",
        "",
        "| model | rows | request | body | answer | peak above idle | seconds |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    args.out.write_text("\n".join(head + lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
