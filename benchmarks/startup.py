"""Start-up time of ``import oddkit``, ``oddkit --help`` and ``oddkit --version``, before and after.

Each command runs in a fresh Python process; its wall time is the best of N runs (default 5) on a
shared machine, where the best run is the one least disturbed by other work. Each is also run once
under ``python -X importtime``, and the table names the modules with the largest cumulative import
time (what the command waited for). "Before" is the source tree at a git commit (default 3bb1084,
the last commit before the command line became a package and ``import oddkit`` became lazy),
extracted with ``git archive``; "after" is this checkout's ``src``. Both run with the same Python
(this interpreter, with its installed dependencies).

    .venv/bin/python benchmarks/startup.py                      # writes benchmarks/STARTUP.md
    .venv/bin/python benchmarks/startup.py --repeats 3 --out /tmp/startup.md
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ROWS = ROOT / "examples" / "breast_cancer"
COMMANDS = {
    "import oddkit": ["-c", "import oddkit"],
    "oddkit --help": ["-m", "oddkit.cli", "--help"],
    "oddkit --version": ["-m", "oddkit.cli", "--version"],
    "oddkit info GAUSSIAN": ["-m", "oddkit.cli", "info", "{models}/gaussian"],
    "oddkit score GAUSSIAN test.csv": ["-m", "oddkit.cli", "score", "{models}/gaussian", str(ROWS / "test.csv"),
                                       "--id-col", "case", "--out", "{models}/gaussian.csv", "--force"],
    "oddkit score DEFAULT test.csv": ["-m", "oddkit.cli", "score", "{models}/default", str(ROWS / "test.csv"),
                                      "--id-col", "case", "--out", "{models}/default.csv", "--force"],
}
"""What is timed: Python arguments. ``python -m oddkit.cli`` runs what the ``oddkit`` script runs. The
model commands use folders each source tree fits itself (:func:`fit_models`) on the breast-cancer
example: a Gaussian, and the default (on a table, neighbour and Gaussian members: no network)."""

HEAVY = ("torch", "sklearn", "pandas", "skops", "scipy", "numpy")


def source_at(commit: str, into: Path) -> Path:
    """The ``src`` folder of ``commit``, extracted into ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit, "src"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def wall_times(src: Path, args: list[str], repeats: int) -> list[float] | None:
    """Wall times of ``repeats`` runs, or None when the command fails there (e.g. an option it lacks)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            return None
    return times


def import_profile(src: Path, args: list[str]) -> tuple[list[tuple[str, float]], list[str]]:
    """Top-level modules by cumulative import time (seconds), and which heavy libraries were imported."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    result = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, capture_output=True, text=True)
    cumulative: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cum, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if not cum.isdigit():
            continue
        top = name.split(".")[0]
        if name == top and not top.startswith("_"):  # a package's own line: its cumulative time
            cumulative[top] = max(cumulative.get(top, 0.0), int(cum) / 1e6)
    heavy = [m for m in HEAVY if m in cumulative]
    ranked = sorted(cumulative.items(), key=lambda item: -item[1])
    return ranked[:4], heavy


def fit_models(src: Path, into: Path) -> None:
    """``oddkit fit`` of the Gaussian and the default on the example's training rows, with ``src``'s code."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    for detector in ("gaussian", "default"):
        done = subprocess.run([sys.executable, "-m", "oddkit.cli", "fit", str(ROWS / "train.csv"), "--id-col", "case",
                               "--detector", detector, "--out", str(into / detector)], env=env, capture_output=True,
                              text=True)
        if done.returncode != 0:  # its commands then show as "did not run"
            print(f"warning: {src} could not fit {detector}: {done.stderr.strip()[-300:]}", file=sys.stderr)


def measure(src: Path, repeats: int) -> dict[str, dict]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="oddkit-startup-") as folder:
        fit_models(src, Path(folder))
        for name, args in COMMANDS.items():
            args = [arg.format(models=folder) for arg in args]
            times = wall_times(src, args, repeats)
            if times is None:
                results[name] = None
                continue
            top, heavy = import_profile(src, args)
            results[name] = {"best": min(times), "times": times, "top": top, "heavy": heavy}
    return results


def table(before: dict, after: dict, commit: str, head: str, repeats: int) -> str:
    lines = [
        "# Start-up time",
        "",
        f"Written by `benchmarks/startup.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"Python {platform.python_version()} on {platform.machine()} ({os.cpu_count()} cores, shared with other "
        f"work), wall time of a fresh process, best of {repeats}; the modules are the largest cumulative import "
        "times under `python -X importtime` (one run).",
        f"Before: commit {commit}. After: commit {head} (this tree).",
        "",
        "| command | before (s) | after (s) | heavy libraries imported before | after | slowest imports after |",
        "|---|---:|---:|---|---|---|",
    ]
    for name in COMMANDS:
        b, a = before[name], after[name]
        slowest = ", ".join(f"{module} {seconds:.2f} s" for module, seconds in a["top"][:3])
        b_time, b_heavy = ("did not run", "") if b is None else (f"{b['best']:.2f}", ", ".join(b["heavy"]) or "none")
        lines.append(f"| `{name}` | {b_time} | {a['best']:.2f} | {b_heavy} | {', '.join(a['heavy']) or 'none'} | "
                     f"{slowest} |")
    lines += ["", "Targets: `oddkit --help` under 0.5 s, `import oddkit` under 1 s. Torch, scikit-learn, pandas, "
              "skops and numpy are imported by the command that needs them (`fit`, `score`, ...), and by "
              "`import oddkit` only when a public name such as `oddkit.AutoEncoderDetector` is first used. "
              "A model with no network (a Gaussian, PCA, the default on a table) is read and scored without "
              "torch. `GAUSSIAN` and `DEFAULT` are folders each tree fitted itself on "
              "`examples/breast_cancer/train.csv`; `score` scores the example's 178 test rows.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="3bb1084", help="Git commit to compare with.")
    parser.add_argument("--repeats", type=int, default=5, help="Runs per command; the best is reported.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "STARTUP.md")
    options = parser.parse_args()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as folder:
        before = measure(source_at(options.before, Path(folder)), options.repeats)
    after = measure(ROOT / "src", options.repeats)
    text = table(before, after, options.before, head, options.repeats)
    options.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
