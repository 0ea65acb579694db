"""The applications under examples/ run end to end (with --quick) and write their outputs.

Fraud and intrusion read ../shared/data and skip without it; cancer needs only scikit-learn.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from oddkit.data.datasets import shared_dataset_path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# The oddkit detector's test ROC AUC must clear this floor even on the --quick subsample
# (the full runs measure 0.95 / 0.93 / 0.94; chance is 0.5).
CASES = [("fraud", "creditcard_fraud", 0.9), ("intrusion", "nslkdd", 0.85), ("cancer", None, 0.85)]


def _run(app: str, out: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "examples" / app / "run.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("app, dataset, floor", CASES, ids=[c[0] for c in CASES])
def test_application_runs_and_writes_its_outputs(app, dataset, floor, tmp_path):
    pytest.importorskip("pyod", reason="the applications compare against PyOD's KNN: pip install oddkit[examples]")
    if dataset is not None and shared_dataset_path(dataset) is None:
        pytest.skip(f"../shared/data/{dataset}.npz is not available")
    result = _run(app, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("results.csv", "results.md", "report.html"):
        assert (tmp_path / name).is_file(), f"{app} did not write {name}"
    table = pd.read_csv(tmp_path / "results.csv", index_col="detector")
    assert list(table.index) == ["oddkit default_detector", "sklearn IsolationForest", "sklearn LOF (novelty)",
                                 "PyOD KNN"]
    assert table.loc["oddkit default_detector", "ROC AUC"] > floor
    assert table[["ROC AUC", "PR AUC", "precision", "recall"]].apply(lambda c: c.between(0, 1)).all().all()
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="model-card"' in html
    if app == "fraud":  # the production rate and the Amount-priced cost, in the table and in the report
        assert {"precision @ prod", "cost /row @ prod"} <= set(table.columns)
        cost = re.search(r'<td>expected cost per row</td><td class="num">([^<]*)</td><td class="num">([^<]*)</td>', html)
        assert cost, "the report shows no expected cost"
        assert float(cost.group(2)) == pytest.approx(table.loc["oddkit default_detector", "cost /row @ prod"], rel=1e-3)
        assert "its own miss cost" in html
        # the drift checks: the random split's test rows are like its dev rows; day 2 is not like day 1
        drift = (tmp_path / "drift.txt").read_text(encoding="utf-8").splitlines()
        assert drift[0].startswith("test split, normal rows, against the dev split's: no drift")
        assert drift[1].startswith("day 2 against day 1, with Time: DRIFT") and "most: Time (" in drift[1]
        assert '<section id="drift">' in html and "No drift found" in html
    if app == "intrusion":  # the breakdown by attack type, unseen types apart, also in the report
        by_type = pd.read_csv(tmp_path / "by_attack_type.csv", index_col=0)
        assert any(name.endswith("(unseen)") for name in by_type.index)
        assert table.loc["oddkit default_detector", "recall unseen types"] > 0.3
        assert "(unseen)" in html


def test_applications_skip_cleanly_without_the_shared_data(tmp_path):
    result = _run("fraud", tmp_path / "out", {"ODDKIT_SHARED_DATA": str(tmp_path / "nowhere")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped: creditcard_fraud.npz is not in the shared data folder" in result.stdout
    assert not (tmp_path / "out").exists()
