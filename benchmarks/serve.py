"""Throughput and latency of 'oddkit serve' on loopback, and onnxruntime's scoring speed against oddkit's.

Service: an auto-encoder (10 numeric columns + 1 categorical, 5 epochs on 5,000 rows) behind
'oddkit serve' (one uvicorn worker) on 127.0.0.1; clients are threads holding keep-alive connections
(http.client). For each request size (1 row, 1,000 rows) and each number of concurrent clients (1, 8, 32)
the clients send requests until REQUESTS have been answered or SECONDS have passed, whichever is first.

Export (``--onnx``): the same model and a Gaussian and a PCA model exported by 'oddkit export --format onnx',
scored in-process on 1 row and 10,000 rows by oddkit (``decision_function``) and by onnxruntime.

    python benchmarks/serve.py [--requests 400] [--seconds 15] [--onnx] [--out benchmarks/results/serve.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 10)), columns=[f"x{i}" for i in range(10)])
    frame["channel"] = rng.choice(["web", "shop", "phone"], n)
    return frame


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("ODDKIT_API_KEY", None)
    process = subprocess.Popen([sys.executable, "-m", "oddkit.cli", "serve", str(folder), "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the service did not start")


def load(port: int, body: bytes, clients: int, max_requests: int, seconds: float) -> dict:
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    sent = [0]
    deadline = time.monotonic() + seconds

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if sent[0] >= max_requests or time.monotonic() > deadline:
                    break
                sent[0] += 1
            start = time.perf_counter()
            connection.request("POST", "/score", body=body, headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                failures[0] += answer.status != 200
        connection.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {"requests": len(latencies), "non_200": failures[0], "seconds": round(wall, 2),
            "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def bench_service(folder: Path, max_requests: int, seconds: float) -> list[dict]:
    process, port = start_service(folder)
    results = []
    try:
        for n_rows in (1, 1000):
            body = json.dumps({"rows": table(n_rows, 7).to_dict(orient="records")}).encode()
            load(port, body, 2, 10, 5)  # warm-up
            for clients in (1, 8, 32):
                result = {"rows_per_request": n_rows, "clients": clients,
                          **load(port, body, clients, max_requests, seconds)}
                result["rows_per_s"] = round(result["requests_per_s"] * n_rows, 1)
                print(json.dumps(result), flush=True)
                results.append(result)
    finally:
        process.terminate()
        process.wait()
    return results


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_onnx(folders: dict[str, Path], out: Path) -> list[dict]:
    import onnxruntime

    import oddkit
    from oddkit.export import export_onnx, onnx_inputs

    results = []
    for name, folder in folders.items():
        detector = oddkit.load(folder)
        path = out / f"{name}.onnx"
        export_onnx(detector, path)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for n_rows in (1, 10_000):
            X = table(n_rows, 11)
            feeds = onnx_inputs(detector, X)
            ours = detector.decision_function(X)
            theirs = session.run(["score"], feeds)[0]
            repeat = 200 if n_rows == 1 else 10
            oddkit_s = best_time(lambda: detector.decision_function(X), repeat)
            ort_s = best_time(lambda: session.run(["score"], feeds), repeat)
            feeds_s = best_time(lambda: onnx_inputs(detector, X), repeat)
            result = {"detector": name, "rows": n_rows, "oddkit_ms": round(oddkit_s * 1000, 3),
                      "onnxruntime_ms": round(ort_s * 1000, 3), "onnx_inputs_ms": round(feeds_s * 1000, 3),
                      "speedup": round(oddkit_s / ort_s, 2),
                      "max_rel_diff": float(np.max(np.abs(theirs - ours) / np.maximum(np.abs(ours), 1e-12)))}
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="most requests per configuration")
    parser.add_argument("--seconds", type=float, default=15.0, help="most seconds per configuration")
    parser.add_argument("--onnx", action="store_true", help="also compare onnxruntime with oddkit")
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve.json")
    args = parser.parse_args()

    from oddkit import AutoEncoderDetector, GaussianDetector, PCADetector

    command = " ".join(["python", *sys.argv])
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
              "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train = table(5000, 0)
        folders = {"autoencoder": tmp / "autoencoder", "gaussian": tmp / "gaussian", "pca": tmp / "pca"}
        AutoEncoderDetector(epochs=5, robust=False, n_estimators=1, random_state=0, verbose=0).fit(train).save(folders["autoencoder"])
        if not args.skip_service:
            report["service"] = {"command": command,
                                 "results": bench_service(folders["autoencoder"], args.requests, args.seconds)}
        if args.onnx:
            GaussianDetector().fit(train).save(folders["gaussian"])
            PCADetector().fit(train).save(folders["pca"])
            report["onnx"] = {"command": command, "results": bench_onnx(folders, tmp)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**previous, **report}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
