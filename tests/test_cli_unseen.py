"""Categories never seen in training through the command line: 'score', 'explain', 'report' and
'evaluate --report' all score such rows as anomalies, flag them, count their distinct values once
however the file is batched, and explain them by the columns that hold them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli as run


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"txn": [f"t{seed}-{i}" for i in range(n)], "amount": rng.normal(100, 15, n),
                         "hour": rng.normal(12, 3, n), "channel": rng.choice(["web", "shop"], n)})


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("unseen")
    _rows(400, 0).to_csv(root / "train.csv", index=False)
    test = _rows(120, 1)
    test["y"] = 0
    test.loc[[5, 50, 95], "channel"] = ["fax", "fax", "telex"]  # in three batches of 40 rows
    test.loc[[5, 50, 95, 100], "y"] = 1
    test.loc[100, "amount"] = 400.0
    test.to_csv(root / "test.csv", index=False)
    return root


@pytest.fixture(scope="module")
def model(files, tmp_path_factory):
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("unseen_model") / "m"
    done = subprocess.run([sys.executable, "-m", "oddkit", "fit", str(files / "train.csv"), "--detector", "knn",
                           "--id-col", "txn", "--out", str(folder), "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return folder


def test_score_flags_unseen_rows_and_counts_values_once_across_batches(monkeypatch, capsys, files, model, tmp_path):
    out = tmp_path / "s.csv"
    code, _, err = run(monkeypatch, capsys, "score", model, files / "test.csv", "--id-col", "txn", "--label-col", "y",
                       "--batch-rows", 40, "--out", out)
    assert code == 0
    assert "3 row(s) hold categories never seen in training, in 'channel' (2 values)" in " ".join(err.split())
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["txn", "score", "label", "unseen_category"]
    assert np.flatnonzero(scores["unseen_category"]).tolist() == [5, 50, 95]
    assert (scores.loc[[5, 50, 95], "label"] == 1).all()


def test_explain_blames_the_column_holding_the_unseen_category(monkeypatch, capsys, files, model, tmp_path):
    out = tmp_path / "e.csv"
    code, _, _ = run(monkeypatch, capsys, "explain", model, files / "test.csv", "--id-col", "txn", "--label-col", "y",
                     "--top", 4, "--out", out)
    assert code == 0
    shares = pd.read_csv(out).set_index("row")
    assert sorted(shares.index) == [5, 50, 95, 100]
    assert shares.loc[[5, 50, 95], "unseen_category"].all() and not shares.loc[100, "unseen_category"]
    assert (shares.loc[[5, 50, 95], "top_column"] == "channel").all()
    assert (shares.loc[[5, 50, 95], "share_channel"] == 1.0).all()
    assert shares.loc[100, "top_column"] == "amount"


def test_report_and_evaluate_report_carry_on_with_ids_and_marks(monkeypatch, capsys, files, model, tmp_path):
    page = tmp_path / "r.html"
    code, _, err = run(monkeypatch, capsys, "report", model, files / "test.csv", "--id-col", "txn", "--label-col", "y",
                       "--out", page)
    assert code == 0, err
    html = page.read_text()
    assert "<th>id</th>" in html and "t1-5" in html and "t1-100" in html
    # The three rows score alike (the out-of-range score) with the same label: one entry of 3 rows.
    assert html.count("(unseen category)") == 1 and "&times; 3 rows with this score" in html
    assert "3 row(s), in channel (2 values)" in html
    code, _, err = run(monkeypatch, capsys, "evaluate", model, files / "test.csv", "--id-col", "txn", "--label-col",
                       "y", "--report", tmp_path / "e.html", "--plots", tmp_path / "plots")
    assert code == 0, err
    assert (tmp_path / "e.html").read_text().count("(unseen category)") == 1
    code, _, err = run(monkeypatch, capsys, "report", model, files / "test.csv", "--id-col", "txn", "--label-col", "y",
                       "--out", tmp_path / "strict.html", "--strict-categories")
    assert code == 2 and "'fax'" in err and not (tmp_path / "strict.html").exists()
