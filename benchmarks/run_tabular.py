"""Run oddkit's detectors and PyOD's side by side on the team's tabular datasets.

One job = one (dataset, protocol, seed, detector): fit, score the test split, and append one JSON
line with ROC AUC, PR AUC and timings to ``benchmarks/results/tabular.jsonl`` as soon as it is
known. A full run takes hours, so the runner is resumable: it skips every job already in the
results file, and ``--max-seconds`` stops it cleanly before a budget runs out. A detector that
raises or returns NaN/inf scores is recorded as a flagged failure with AUROC 0.5 and PR AUC equal
to the test anomaly rate (what a random score would get), so that it is penalised rather than
silently dropped from the averages.

    .venv/bin/python benchmarks/run_tabular.py                    # everything, resuming
    .venv/bin/python benchmarks/run_tabular.py --datasets adbench_wbc adbench_glass --seeds 0
    .venv/bin/python benchmarks/run_tabular.py --report-only      # rewrite RESULTS.md only

See benchmarks/README.md for the protocols.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from time import perf_counter
import warnings
from contextlib import contextmanager
from pathlib import Path

from bench_runtime import append_record, command_line, detector_code_hash, limit_threads, versions

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS_FILE = RESULTS_DIR / "tabular.jsonl"
DEFAULT_SEEDS = (0, 1, 2)
JOB_KEY = ("dataset", "protocol", "seed", "detector")


class JobTimeout(Exception):
    pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", metavar="NAME", help="dataset names (file stems; default: all)")
    parser.add_argument("--detectors", nargs="+", metavar="NAME", help="detector names (default: all; see --list)")
    parser.add_argument("--protocols", nargs="+", choices=("clean", "contaminated"), default=["clean", "contaminated"])
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    parser.add_argument("--max-seconds", type=float, help="start no new job after this many seconds")
    parser.add_argument("--job-timeout", type=float,
                        help="fail a job after this many seconds (best effort: checked whenever the detector "
                             "returns to Python, so a long call inside compiled code finishes first)")
    parser.add_argument("--rerun-stale", action="store_true",
                        help="also rerun jobs recorded under other versions (e.g. after oddkit's code changed)")
    parser.add_argument("--rerun", action="store_true",
                        help="rerun the selected jobs even where recorded (to time detectors side by side in one "
                             "run; the report keeps each job's last record)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fit and score each job this many times and record the fastest fit and the fastest "
                             "score (default 1): the minimum is the time least disturbed by other work on a shared "
                             "machine; AUROC is the first repeat's")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="JSONL results file")
    parser.add_argument("--data-dir", type=Path, help="folder of .npz datasets (default: ../shared/data)")
    parser.add_argument("--report-only", action="store_true", help="write RESULTS.md and the plot, run nothing")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite RESULTS.md after running")
    parser.add_argument("--list", action="store_true", help="list datasets and detectors, run nothing")
    return parser.parse_args(argv)


def read_done(path: Path) -> dict[tuple, dict]:
    """The jobs already in the results file, each with the versions it ran under (a torn last
    line is ignored; a job recorded twice keeps its last record, as the report does)."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
                done[tuple(record[key] for key in JOB_KEY)] = record.get("versions", {})
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return done


DETECTOR_CODE = "oddkit-detector-code"
"""The versions key holding the hash of the oddkit modules a detector depends on."""


def job_versions(spec, current: dict) -> dict:
    """The versions a job of ``spec`` records: the run's, plus for an oddkit detector the hash of
    the oddkit modules its code depends on (``bench_runtime.detector_code_hash``)."""
    if spec.library != "oddkit" or spec.module is None:
        return current
    return {**current, DETECTOR_CODE: detector_code_hash(spec.module)}


def is_stale(detector: str, recorded: dict, current: dict) -> bool:
    """Whether a recorded job ran under other versions than now. A peer's result does not depend on
    oddkit's code, so oddkit's version and code are compared for oddkit's detectors only: by the
    hash of the modules the detector depends on where the record has one (``current`` from
    :func:`job_versions`), else (older records) by the hash of all of oddkit's code without
    docstrings, or of the whole source."""
    if not detector.startswith("oddkit"):
        ignored = {"oddkit", "oddkit-source", "oddkit-code", DETECTOR_CODE}
    elif DETECTOR_CODE in recorded:
        ignored = {"oddkit", "oddkit-source", "oddkit-code"}
    else:
        ignored = {"oddkit-source", DETECTOR_CODE} if "oddkit-code" in recorded else {"oddkit-code", DETECTOR_CODE}
    return any(recorded.get(key) != value for key, value in current.items() if key not in ignored)


@contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`JobTimeout` in the main thread after ``seconds`` (None: no limit)."""
    if not seconds:
        yield
        return

    def expire(signum, frame):
        raise JobTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_job(spec, split, protocol: str, seed: int, timeout: float | None, repeats: int = 1) -> dict:
    """Fit one detector on the protocol's training rows and score the test split; with ``repeats`` above 1,
    build, fit and score it that many times and keep the fastest fit and the fastest score (the scores
    and AUROC are the first repeat's). ``timeout`` applies to each repeat."""
    import numpy as np
    from bench_data import standardise
    from sklearn.metrics import average_precision_score, roc_auc_score

    X_fit, X_test = split.fit_rows(protocol), split.X_test
    if spec.library == "pyod":
        X_fit, X_test = standardise(X_fit, X_test)
    y_test = split.y_test
    result = {"n_fit": len(X_fit), "n_test": len(y_test), "n_features": int(X_fit.shape[1]),
              "test_anomaly_rate": float(y_test.mean()), "fit_seconds": None, "score_seconds": None,
              "failed": False, "error": None, "repeats": repeats}
    try:
        fit_seconds, score_seconds, scores = [], [], None
        for _ in range(repeats):
            with warnings.catch_warnings(), time_limit(timeout):
                warnings.simplefilter("ignore")
                detector = spec.build(seed, X_fit.shape[1])
                start = perf_counter()
                detector.fit(X_fit)
                fit_seconds.append(perf_counter() - start)
                start = perf_counter()
                repeat_scores = detector.decision_function(X_test)
                score_seconds.append(perf_counter() - start)
            scores = repeat_scores if scores is None else scores
        result["fit_seconds"], result["score_seconds"] = min(fit_seconds), min(score_seconds)
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if scores.shape != y_test.shape:
            raise ValueError(f"{scores.size} scores for {y_test.size} test rows")
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"non-finite scores ({np.count_nonzero(~np.isfinite(scores))} of {scores.size})")
        result["roc_auc"] = float(roc_auc_score(y_test, scores))
        result["pr_auc"] = float(average_precision_score(y_test, scores))
    except Exception as exc:  # noqa: BLE001 - any failure of a detector is a result, not a crash
        result.update(failed=True, error=f"{type(exc).__name__}: {exc}"[:500],
                      roc_auc=0.5, pr_auc=float(y_test.mean()))
    return result


def select(names: list[str] | None, available: list[str], what: str) -> list[str]:
    if names is None:
        return available
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; available: {', '.join(available)}")
    return [name for name in available if name in names]


def run(args: argparse.Namespace) -> None:
    """Run every selected job not yet in the results file (or only list them with --list)."""
    from bench_data import DATA_DIR, SUBSAMPLED_NOTE, list_datasets, make_split
    from bench_detectors import registry

    datasets = {info.name: info for info in list_datasets(args.data_dir or DATA_DIR)}
    specs = registry()
    if args.list:
        for info in datasets.values():
            mark = " " + SUBSAMPLED_NOTE if info.subsampled else ""
            print(f"dataset  {info.name}: {info.n_rows} x {info.n_features}, {info.anomaly_rate:.2%} anomalies{mark}")
        for name, spec in specs.items():
            print(f"detector {name} ({spec.library})")
        return
    dataset_names = select(args.datasets, list(datasets), "datasets")
    detector_names = select(args.detectors, list(specs), "detectors")

    context = {"versions": versions(), "threads": args.threads, "command": command_line()}
    done = read_done(args.results)
    stale = {key for key, recorded in done.items()
             if is_stale(key[3], recorded, job_versions(specs[key[3]], context["versions"]) if key[3] in specs
                         else context["versions"])}
    skip = set() if args.rerun else set(done) - stale if args.rerun_stale else set(done)
    jobs = [(seed, name, protocol, detector) for seed in args.seeds for name in dataset_names
            for protocol in args.protocols for detector in detector_names
            if (name, protocol, seed, detector) not in skip]
    print(f"{len(jobs)} jobs to run ({len(done)} already in {args.results})", flush=True)
    if stale and not args.rerun_stale:
        print(f"warning: {len(stale)} recorded jobs ran under other versions than now (oddkit's code or a "
              "library changed); --rerun-stale reruns them", flush=True)
    started = time.monotonic()
    split_key, split = None, None
    for number, (seed, name, protocol, detector) in enumerate(jobs, 1):
        if args.max_seconds is not None and time.monotonic() - started > args.max_seconds:
            print(f"--max-seconds {args.max_seconds:g} reached: stopping with {len(jobs) - number + 1} jobs left "
                  "(run the same command again to continue)", flush=True)
            break
        info = datasets[name]
        if split_key != (name, seed):  # jobs are ordered so each split is made once
            split_key, split = (name, seed), make_split(info, seed)
        result = run_job(specs[detector], split, protocol, seed, args.job_timeout, args.repeats)
        record = {"dataset": name, "protocol": protocol, "seed": seed, "detector": detector,
                  "roc_auc": result.pop("roc_auc"), "pr_auc": result.pop("pr_auc"), **result,
                  "n_rows_original": info.n_rows, "subsampled": info.subsampled, **context,
                  "versions": job_versions(specs[detector], context["versions"]),
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        append_record(args.results, record)
        flag = f"  FAILED {record['error']}" if record["failed"] else ""
        fit = f"{record['fit_seconds']:.2f}s" if record["fit_seconds"] is not None else "-"
        print(f"[{number}/{len(jobs)}] {name} {protocol} seed={seed} {detector}: AUROC {record['roc_auc']:.3f} "
              f"PR {record['pr_auc']:.3f} fit {fit}{flag}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be at least 1; got {args.repeats}")
    limit_threads(args.threads)
    if not args.report_only:
        run(args)
    if not (args.no_report or args.list):
        import report

        report.write_report(args.results, data_dir=args.data_dir)


if __name__ == "__main__":
    sys.exit(main())
