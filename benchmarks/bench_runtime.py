"""Process settings every benchmark script applies first, so that timings compare like with like.

Thread pools (OpenMP, MKL/OpenBLAS, numba, torch) are sized when their library is first loaded,
so the environment variables must be set before numpy, scikit-learn, PyOD or torch is imported:
each script parses its arguments, calls :func:`limit_threads`, and only then imports the modules
that pull those libraries in. Every detector, oddkit's or a peer's, then runs with the same
number of threads.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

VERSIONED_PACKAGES = ("oddkit", "pyod", "scikit-learn", "torch", "numpy", "scipy")


def limit_threads(n_threads: int) -> None:
    """Give every thread pool ``n_threads`` threads (call before importing numpy or torch)."""
    if n_threads < 1:
        raise SystemExit(f"--threads must be at least 1, got {n_threads}")
    late = [name for name in ("numpy", "torch", "numba") if name in sys.modules]
    if late:
        print(f"warning: {', '.join(late)} imported before the thread limit was set", file=sys.stderr)
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n_threads)
    import torch

    torch.set_num_threads(n_threads)


def _oddkit_modules() -> list[tuple[str, Path]] | None:
    """oddkit's Python files, sorted, with their paths inside the package (None: not installed).
    Located, not imported: threads may not be set yet."""
    spec = importlib.util.find_spec("oddkit")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    return [(path.relative_to(root).as_posix(), path) for path in sorted(root.rglob("*.py"))]


def _short_hash(modules: list[tuple[str, Path]] | None, content) -> str | None:
    if modules is None:
        return None
    digest = hashlib.sha256()
    for name, path in modules:
        digest.update(name.encode() + b"\0" + content(path) + b"\0")
    return digest.hexdigest()[:12]


def _code_without_docstrings(path: Path) -> bytes:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


def oddkit_source_hash() -> str | None:
    """A short hash of oddkit's Python sources: its version number does not change with every edit,
    and results measured on different code must not be silently mixed."""
    return _short_hash(_oddkit_modules(), Path.read_bytes)


def oddkit_code_hash() -> str | None:
    """Like :func:`oddkit_source_hash`, but of the code only: each module's syntax tree without
    its docstrings (comments never reach the tree), so editing documentation does not mark
    results measured on the same code as stale."""
    return _short_hash(_oddkit_modules(), _code_without_docstrings)


def _oddkit_root() -> Path | None:
    spec = importlib.util.find_spec("oddkit")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _module_file(root: Path, module: str) -> Path | None:
    """The file of an ``oddkit.*`` module (a package's ``__init__.py``), or None."""
    parts = module.split(".")[1:]
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _imports_of(root: Path, path: Path) -> set[str]:
    """The ``oddkit`` modules a file imports anywhere (imports inside functions too: oddkit imports
    its heavy parts where they are used). ``from oddkit.pkg import name`` counts the submodule
    ``oddkit.pkg.name`` when there is one, else the module that defines ``name`` for the package
    (followed through the package's own imports), so a detector does not depend on every module a
    package's ``__init__`` re-exports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "oddkit")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "oddkit":
            for alias in node.names:
                found.add(_defining_module(root, node.module, alias.name))
    return found


def _defining_module(root: Path, package: str, name: str, depth: int = 0) -> str:
    """Where ``from package import name`` finds ``name``: a submodule, a re-export, or the package."""
    if _module_file(root, f"{package}.{name}") is not None:
        return f"{package}.{name}"
    init = _module_file(root, package)
    if init is None or init.name != "__init__.py" or depth > 5:
        return package
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and any((a.asname or a.name) == name for a in node.names):
            source = next(a.name for a in node.names if (a.asname or a.name) == name)
            return _defining_module(root, node.module, source, depth + 1)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets) \
                and isinstance(node.value, ast.Dict):  # oddkit's own lazy table: name -> module
            for key, value in zip(node.value.keys, node.value.values):
                if getattr(key, "value", None) == name and isinstance(getattr(value, "value", None), str):
                    return _defining_module(root, value.value, name, depth + 1)
    return package


def oddkit_dependencies(module: str) -> list[tuple[str, Path]] | None:
    """The oddkit modules ``module`` depends on, itself included: the closure of its imports
    (:func:`_imports_of`), sorted (None: oddkit not installed). Located, not imported."""
    root = _oddkit_root()
    if root is None:
        return None
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(root, name)
        if name in seen or path is None:
            continue
        seen[name] = path
        todo.extend(_imports_of(root, path) - set(seen))
    return [(path.relative_to(root).as_posix(), path) for _, path in sorted(seen.items())]


@functools.cache
def detector_code_hash(module: str) -> str | None:
    """Like :func:`oddkit_code_hash`, over only the modules a detector's code depends on
    (:func:`oddkit_dependencies` of the module that defines it), so that a change elsewhere in
    oddkit does not mark its results stale. Cached per process, as :func:`versions` is."""
    return _short_hash(oddkit_dependencies(module), _code_without_docstrings)


@functools.cache
def _versions_at_start() -> tuple[tuple[str, str | None], ...]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    found["oddkit-source"] = oddkit_source_hash()
    found["oddkit-code"] = oddkit_code_hash()
    return tuple(found.items())


def versions() -> dict[str, str | None]:
    """Installed versions of what the results depend on (None: not installed). Measured once per
    process: the code a run executes is the code it loaded, even if a file is edited meanwhile
    (and hashing the sources for every record of a long study cost 0.2 s each)."""
    return dict(_versions_at_start())


def command_line() -> str:
    """The command that started this process, as it would be typed from the repository root."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO_ROOT)
    return shlex.join([".venv/bin/python", script, *sys.argv[1:]])


def append_record(path: Path, record: dict) -> None:
    """Append one JSON line and flush it to disk, so an interrupted run loses at most one job."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab+") as f:  # appends always go to the end, whatever was read
        size = f.seek(0, 2)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":  # a killed run left half a line: start a fresh one
                f.write(b"\n")
        f.write(json.dumps(record).encode() + b"\n")
        f.flush()


def record_in_processes(fn, jobs: list, processes: int, path: Path):
    """``fn`` of each job in ``processes`` worker processes, each returned record appended to ``path``
    the moment it arrives (so a killed run resumes from the file); yields the records. Workers inherit
    the caller's thread limit (:func:`limit_threads` before this)."""
    from multiprocessing import Pool

    with Pool(processes) as pool:
        for record in pool.imap_unordered(fn, jobs):
            append_record(path, record)
            yield record


def git_state(source: str, key: str) -> dict:
    """The commit checked out (``git_head``) and, under ``key``, whether the file ``source`` (relative to
    the repository) differs from it; None where git is unavailable. A benchmark of one module records it
    beside its results, so that a result of uncommitted code says so."""
    import subprocess

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    changed = git("status", "--porcelain", "--", source)
    return {"git_head": git("rev-parse", "--short", "HEAD"), key: None if changed is None else bool(changed)}


def read_records(path: Path) -> list[dict]:
    """Every record of a JSON-lines results file, in order ([] when there is none yet); a torn
    last line from an interrupted run is skipped."""
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def recorded_jobs(path: Path, key: tuple[str, ...]) -> set[tuple]:
    """The ``key`` values of every job already recorded in a JSON-lines results file, so that a
    rerun resumes where the last one stopped."""
    return {tuple(record[k] for k in key) for record in read_records(path) if all(k in record for k in key)}


def study_parser(doc: str, results: Path):
    """The command line shared by the resumable studies on the tabular datasets
    (``contamination.py``, ``known_anomalies.py``): which datasets and seeds, threads, a time budget,
    the results file, and --report-only."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-seconds", type=float)
    parser.add_argument("--results", type=Path, default=results)
    parser.add_argument("--report-only", action="store_true")
    return parser


def run_study(args, run, report, report_file: Path) -> None:
    """Run a study (unless --report-only), resuming from its results file, then write its report."""
    limit_threads(args.threads)
    if not args.report_only:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        run(args)
    if args.results.exists():
        report(args.results, report_file)
