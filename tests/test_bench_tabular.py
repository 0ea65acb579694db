"""The tabular benchmark's staleness rule: a detector's results hang on the oddkit modules its
code depends on, not on all of oddkit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if not (BENCHMARKS / "run_tabular.py").exists():
    pytest.skip("benchmarks/ is not beside the tests", allow_module_level=True)
sys.path.insert(0, str(BENCHMARKS))

import bench_runtime  # noqa: E402
import run_tabular  # noqa: E402


def names(module):
    return {name for name, _ in bench_runtime.oddkit_dependencies(module)}


def test_dependencies_follow_imports_but_not_package_re_exports():
    knn = names("oddkit.detectors.knn")
    assert {"detectors/knn.py", "detectors/base.py", "threshold.py"} <= knn
    # detectors/__init__.py re-exports every detector: knn must not depend on the auto-encoder through it.
    assert "detectors/autoencoder.py" not in knn and "detectors/__init__.py" not in knn
    # The ensemble builds its members inside a function: those imports count.
    assert {"detectors/autoencoder.py", "detectors/knn.py", "detectors/gaussian.py"} <= names("oddkit.detectors.ensemble")


def test_a_job_is_stale_only_when_its_own_code_changed():
    current = {"numpy": "2", "oddkit-code": "all-new", run_tabular.DETECTOR_CODE: "mine"}
    same = {"numpy": "2", "oddkit-code": "all-old", run_tabular.DETECTOR_CODE: "mine"}
    assert not run_tabular.is_stale("oddkit-KNN", same, current)
    assert run_tabular.is_stale("oddkit-KNN", {**same, run_tabular.DETECTOR_CODE: "other"}, current)
    assert run_tabular.is_stale("oddkit-KNN", {**same, "numpy": "1"}, current)
    # Older records without the per-detector hash fall back to the hash of all of oddkit's code.
    assert run_tabular.is_stale("oddkit-KNN", {"numpy": "2", "oddkit-code": "all-old"}, current)
    # A peer's result never depends on oddkit's code.
    assert not run_tabular.is_stale("pyod-KNN", {"numpy": "2", "oddkit-code": "x"}, {"numpy": "2", "oddkit-code": "y"})


def test_job_versions_add_the_detector_hash_for_oddkit_only():
    from bench_detectors import registry

    specs = registry()
    base = {"numpy": "2"}
    knn = run_tabular.job_versions(specs["oddkit-KNN"], base)
    assert knn[run_tabular.DETECTOR_CODE] == bench_runtime.detector_code_hash("oddkit.detectors.knn")
    assert run_tabular.job_versions(specs["pyod-KNN"], base) == base


def test_the_time_ratio_says_same_run_only_when_it_was_one():
    """RESULTS.md's default / KNN time ratio claims "the same run" only for records of one command
    whose times overlap; another command, or one run after the other, reads as different runs."""
    import pandas as pd
    import report

    def runs(rows):
        return pd.DataFrame([{"detector": d, "command": c, "finished": f} for d, c, f in rows])

    together = [("oddkit-default", "a", "T1"), ("oddkit-KNN", "a", "T2"), ("oddkit-default", "a", "T3")]
    assert report.timed_together(runs(together), "oddkit-default", "oddkit-KNN")
    assert not report.timed_together(runs([("oddkit-default", "a", "T1"), ("oddkit-KNN", "b", "T1")]),
                                      "oddkit-default", "oddkit-KNN")
    assert not report.timed_together(runs([("oddkit-default", "a", "T1"), ("oddkit-KNN", "a", "T5")]),
                                      "oddkit-default", "oddkit-KNN")
    assert not report.timed_together(pd.DataFrame({"detector": ["oddkit-KNN"]}), "oddkit-default", "oddkit-KNN")


def test_rerun_runs_recorded_jobs_again(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", X=rng.normal(size=(60, 3)), y=(np.arange(60) < 10).astype(int))
    results = tmp_path / "results.jsonl"
    command = ["--data-dir", str(tmp_path), "--results", str(results), "--detectors", "oddkit-KNN",
               "--seeds", "0", "--protocols", "clean", "--threads", "1"]
    for extra, lines in (([], 1), ([], 1), (["--rerun"], 2)):
        run_tabular.run(run_tabular.parse_args(command + extra))
        assert len(results.read_text().splitlines()) == lines


def test_records_from_worker_processes_reach_the_file_as_they_come(tmp_path):
    import json

    path = tmp_path / "records.jsonl"
    jobs = [json.dumps({"job": n}) for n in range(5)]
    seen = list(bench_runtime.record_in_processes(json.loads, jobs, 2, path))
    assert sorted(r["job"] for r in seen) == list(range(5))
    assert sorted(r["job"] for r in bench_runtime.read_records(path)) == list(range(5))
