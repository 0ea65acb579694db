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

pytestmark = pytest.mark.usefixtures("detector_registry_as_it_was")  # search_members registers detectors


def names(module):
    return {name for name, _ in bench_runtime.oddkit_dependencies(module)}


def test_dependencies_follow_imports_but_not_package_re_exports():
    knn = names("oddkit.detectors.knn")
    assert {"detectors/knn.py", "detectors/base.py", "threshold.py"} <= knn
    # detectors/__init__.py re-exports every detector: knn must not depend on the auto-encoder through it.
    assert "detectors/autoencoder.py" not in knn and "detectors/__init__.py" not in knn
    # The ensemble builds its members through the registry and names their classes under TYPE_CHECKING:
    # those imports count.
    assert {"detectors/autoencoder.py", "detectors/knn.py", "detectors/gaussian.py",
            "detectors/lof.py"} <= names("oddkit.detectors.ensemble")


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


def test_repeats_keep_the_fastest_fit_and_score_and_the_report_says_so(tmp_path, monkeypatch):
    """--repeats N fits and scores each job N times, records the fastest fit and the fastest score, and
    RESULTS.md's time ratio names the fewest repeats of the two detectors' jobs."""
    import numpy as np
    import pandas as pd
    import report

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)), (np.arange(60) < 10).astype(int)
    np.savez(tmp_path / "tiny.npz", X=X + 6 * y[:, None], y=y)  # planted anomalies, far from the rest
    clock = iter([0.0, 5.0, 5.0, 6.0, 10.0, 12.0, 12.0, 16.0, 20.0, 29.0, 29.0, 29.5])  # fits 5, 2, 9; scores 1, 4, .5
    monkeypatch.setattr(run_tabular, "perf_counter", lambda: next(clock))
    results = tmp_path / "results.jsonl"
    run_tabular.run(run_tabular.parse_args(["--data-dir", str(tmp_path), "--results", str(results), "--detectors",
                                            "oddkit-KNN", "--seeds", "0", "--protocols", "clean", "--repeats", "3"]))
    record = pd.read_json(results, lines=True).iloc[0]
    assert (record["fit_seconds"], record["score_seconds"], record["repeats"]) == (2.0, 0.5, 3)
    assert not record["failed"] and record["roc_auc"] > 0.9
    runs = pd.DataFrame({"detector": ["oddkit-default", "oddkit-KNN", "oddkit-KNN"], "repeats": [3, 3, None]})
    assert report.repeats_note(runs, ("oddkit-default",)) == ("; each job's time the fastest of 3 fits and the "
                                                               "fastest of 3 scores")
    assert report.repeats_note(runs, ("oddkit-default", "oddkit-KNN")) == ""  # an older record timed once
    named = report.repeated_timings(runs, ["oddkit-default", "oddkit-KNN"])
    assert "`oddkit-default` (3)" in named and "KNN" not in named
    assert report.repeated_timings(runs.drop(columns="repeats"), ["oddkit-default"]) == ""
    with pytest.raises(SystemExit, match="--repeats"):
        run_tabular.main(["--repeats", "0", "--report-only"])


def test_records_from_worker_processes_reach_the_file_as_they_come(tmp_path):
    import json

    path = tmp_path / "records.jsonl"
    jobs = [json.dumps({"job": n}) for n in range(5)]
    seen = list(bench_runtime.record_in_processes(json.loads, jobs, 2, path))
    assert sorted(r["job"] for r in seen) == list(range(5))
    assert sorted(r["job"] for r in bench_runtime.read_records(path)) == list(range(5))


def clustered_contamination(seed=0):
    """300 normal rows with correlated columns and a tight cluster of 60 anomalies off their axis."""
    import numpy as np

    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(300, 4)) @ np.array([[1, 0.9, 0, 0], [0, 0.4, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    cluster = rng.normal(scale=0.05, size=(60, 4)) + np.array([2.0, -2.0, 0.0, 0.0])
    return np.vstack([normal, cluster]), np.r_[np.zeros(300), np.ones(60)]


def test_detmcd_starts_keep_the_subset_with_the_smallest_determinant():
    import numpy as np
    import search_members

    X, y = clustered_contamination()
    full = search_members.DeterministicMCDGaussian(starts="full")
    detmcd = search_members.DeterministicMCDGaussian(starts="detmcd")
    Z = X / X.std(axis=0)
    starts = [np.arange(len(Z))] + detmcd._detmcd_starts(Z)
    assert len(starts) == 6 and all(len(s) == (len(Z) + 1) // 2 for s in starts[1:])
    h = int(np.ceil(0.75 * len(Z)))
    found = [detmcd._concentrate(Z, s, h) for s in starts]
    assert min(f[0] for f in found) <= found[0][0]  # at least as small as the full-data start's
    assert y[found[0][1]].sum() == 60, "from the full data the steps keep the cluster (the failure DetMCD fixes)"
    chosen = min(found, key=lambda f: f[0])[1]
    assert not y[chosen].any(), "the smallest determinant leaves the whole cluster out"
    scores = detmcd.fit(X).decision_function(X)
    assert np.isfinite(scores).all() and scores[y == 1].min() > np.median(scores[y == 0])
    again = search_members.DeterministicMCDGaussian(starts="detmcd").fit(X).decision_function(X)
    assert np.array_equal(scores, again)  # no random starts: the same fit every time
    trapped = full.fit(X).decision_function(X)
    assert np.isfinite(trapped).all() and trapped[y == 1].mean() < trapped[y == 0].mean()


def test_quantile_member_scores_the_far_row_highest_and_stays_finite():
    import numpy as np
    import search_members

    from oddkit import KNNDetector

    X = np.random.default_rng(1).lognormal(size=(200, 3))
    member = search_members.QuantileMember(lambda: KNNDetector(n_neighbors=1)).fit(X)
    test = np.vstack([np.median(X, axis=0), X.max(axis=0) * 10, [1e300, 1e300, 1e300]])
    scores = member.decision_function(test)
    assert np.isfinite(scores).all() and scores[0] < scores[1]
    assert scores[1] == scores[2]  # beyond the training range every value sits at its end
