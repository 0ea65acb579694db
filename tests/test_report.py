"""The HTML report: its content (escaping, numbers, offline) and, in headless Chromium, that every
section shows, every plot decodes and the console stays clean."""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator

from oddkit import AutoEncoderDetector, GaussianDetector
from oddkit.exceptions import DataError
from oddkit.metrics import at_prevalence, operating_report
from oddkit.report import build_report, write_report
from oddkit.report.html import distinct_top, histogram_range, one_hot_groups, precision_recall_at_prevalence
from oddkit.threshold import choose_threshold

COLUMNS = ["amount", "<b>age</b>", "duration"]
LABELLED_SECTIONS = {"summary", "drift", "metrics", "curves", "histogram", "confusion", "anomalies", "groups",
                     "model-card"}
UNLABELLED_SECTIONS = {"summary", "drift", "metrics", "histogram", "anomalies", "model-card"}


@pytest.fixture(scope="module")
def fitted():
    """An auto-encoder (it has ``explain``) trained on normal rows, with a cost threshold stating
    a production anomaly rate of 0.17%, and labelled test rows whose anomalies are shifted in
    ``amount``."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(300, 3)), columns=COLUMNS)
    detector = AutoEncoderDetector(epochs=5, random_state=0, verbose=0).fit(train)
    X = pd.DataFrame(np.r_[rng.normal(size=(190, 3)), rng.normal(size=(10, 3)) + [6.0, 0.0, 0.0]],
                     columns=COLUMNS, index=[f"tx-{i}" for i in range(200)])
    y = np.r_[np.zeros(190, int), np.ones(10, int)]
    detector.set_threshold(choose_threshold(detector.decision_function(X), y, "cost:1,50,0.0017"))
    groups = np.where(y == 1, "attack<script>alert(1)</script>", "normal")
    return detector, X, y, groups


# --- content, no browser ------------------------------------------------------------------------


def test_report_is_self_contained_and_escaped(fitted, tmp_path) -> None:
    detector, X, y, groups = fitted
    out = write_report(detector, X, y, tmp_path / "nested" / "report.html", groups=groups, data_name="<i>dev</i>.csv")
    text = out.read_text(encoding="utf-8")
    # Nothing to fetch: no scripts, no external URLs, every image inline, a CSP that forbids fetching.
    assert "<script" not in text
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)
    sources = re.findall(r'<img[^>]*src="([^"]*)"', text)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "default-src 'none'" in text
    # User strings are escaped wherever they appear.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;age&lt;/b&gt;" in text and "<b>age</b>" not in text
    assert "&lt;i&gt;dev&lt;/i&gt;.csv" in text
    for section in LABELLED_SECTIONS:
        assert f'<section id="{section}">' in text


def test_report_metrics_at_the_production_prevalence(fitted) -> None:
    detector, X, y, _ = fitted
    text, metrics = build_report(detector, X, y)
    # The production rate and costs come from the detector's cost goal.
    assert metrics["production"]["prevalence"] == 0.0017
    assert metrics["costs"] == {"false_alarm": 1.0, "miss": 50.0}
    expected = at_prevalence(metrics["data"]["recall"], metrics["data"]["fpr"], 0.0017, costs=(1, 50))
    assert metrics["production"] == pytest.approx(expected)
    assert "at the production anomaly rate (0.17%)" in text
    assert "at this data's anomaly rate (5%)" in text
    assert "alerts per 10,000 rows" in text and "expected cost per row" in text
    # Beside the ROC AUC and the rates, their 95% intervals (oddkit.metrics.metric_intervals).
    from oddkit.metrics import metric_intervals
    from oddkit.report.html import _fmt

    intervals = metric_intervals(y, detector.decision_function(X), detector.threshold_)
    for key in ("roc_auc", "recall", "fpr"):
        low, high = intervals[key]
        assert low <= high and f"(95%: {_fmt(low)} to {_fmt(high)})" in text
    assert "DeLong" in text
    # A stated prevalence wins over the goal's.
    _, other = build_report(detector, X, y, prevalence=0.01)
    assert other["production"]["prevalence"] == 0.01


def test_report_draws_explanations_of_the_top_anomalies(fitted) -> None:
    detector, X, y, _ = fitted
    text, _ = build_report(detector, X, y, top=7)
    rows = re.findall(r'<tr>\s*<td class="num">(\d+)</td><td>([^<]*)</td>', text)
    assert [int(rank) for rank, _ in rows] == list(range(1, 8))
    scores = pd.Series(detector.decision_function(X), index=X.index)
    assert [row for _, row in rows] == list(scores.sort_values(ascending=False, kind="stable").index[:7])
    assert text.count('class="bar-row"') == 7 * 3  # three columns, each drawn as a bar
    # The shifted column carries the largest share in the top rows: the first bar of each row.
    first_bars = re.findall(r'<td class="bars">\s*<div class="bar-row"><span class="bar-label" title="([^"]*)"', text)
    assert first_bars.count("amount") >= 6


class _NoExplain(BaseEstimator):
    """A fitted detector without ``explain``, as a third-party one may be."""

    def __init__(self, inner=None) -> None:
        self.inner = inner
        self.threshold_ = inner.threshold_
        self.threshold_goal_ = inner.threshold_goal_
        self.decision_scores_ = inner.decision_scores_

    def fit(self, X, y=None):
        return self

    def decision_function(self, X):
        return self.inner.decision_function(X)

    def __sklearn_is_fitted__(self) -> bool:
        return True


def test_report_without_explain_or_labels(tmp_path) -> None:
    rng = np.random.default_rng(1)
    detector = _NoExplain(GaussianDetector().fit(rng.normal(size=(100, 2))))
    text, metrics = build_report(detector, rng.normal(size=(50, 2)), groups=np.repeat(["a", "b"], 25))
    assert metrics is None
    assert "No labels were given" in text
    assert '<section id="curves">' not in text and '<section id="confusion">' not in text
    assert "_NoExplain has no explain method" in text and 'class="bar-row"' not in text
    assert '<section id="groups">' in text and "<td>a</td>" in text


def test_model_card_fingerprints(fitted, tmp_path) -> None:
    detector, X, y, _ = fitted
    folder = tmp_path / "model"
    detector.save(folder)
    integrity = hashlib.sha256((folder / "integrity.json").read_bytes()).hexdigest()
    text, _ = build_report(detector, X, y, model_folder=folder)
    assert integrity in text and "integrity.json" in text
    assert "AutoEncoderDetector" in text and "random_state" in text and "scikit-learn" in text
    assert "<td>300</td>" in text  # training rows
    text, _ = build_report(detector, X, y, model_folder=folder, training_fingerprint="ab" * 32)
    assert "ab" * 32 in text and integrity not in text


def test_group_column_by_name_and_bad_input(fitted) -> None:
    detector, X, y, groups = fitted
    with_groups = X.assign(kind=np.where(y == 1, "smurf", "normal"))
    text, _ = build_report(detector, with_groups, y, groups="kind")
    assert "<td>smurf</td>" in text
    with pytest.raises(DataError, match="group column 'nope' is not a column"):
        build_report(detector, X, y, groups="nope")
    with pytest.raises(DataError, match="y has 3 labels but the data has 200 rows"):
        build_report(detector, X, [0, 1, 0])
    with pytest.raises(DataError, match="groups has 2 values"):
        build_report(detector, X, y, groups=["a", "b"])
    with pytest.raises(DataError, match="prevalence"):
        build_report(detector, X, y, prevalence=2.0)


class _Stub(BaseEstimator):
    """A fitted stand-in whose score is the first column and whose explanation, when given, is
    the same shares for every row: it pins down what the report draws."""

    def __init__(self, shares=None, threshold=0.5) -> None:
        self.shares = shares
        self.threshold = threshold
        self.threshold_ = threshold
        self.threshold_goal_ = "manual"

    def fit(self, X, y=None):
        return self

    def decision_function(self, X):
        return np.asarray(X, dtype=float)[:, 0]

    def explain(self, X):
        return pd.DataFrame([self.shares] * len(X), index=X.index, columns=X.columns)

    def __sklearn_is_fitted__(self) -> bool:
        return True


def _section(text: str, name: str) -> str:
    return text.split(f'<section id="{name}">', 1)[1].split("</section>", 1)[0]


def test_report_prices_each_missed_anomaly_by_its_own_cost(fitted) -> None:
    detector, X, y, _ = fitted
    amounts = np.abs(X["amount"].to_numpy()) * 100
    scores = detector.decision_function(X)
    threshold = float(np.sort(scores[y == 1])[4])  # misses four anomalies
    kwargs = {"threshold": threshold, "costs": (1, 50), "prevalence": 0.0017}
    text, metrics = build_report(detector, X, y, miss_costs=amounts, **kwargs)
    expected = operating_report(y, scores, threshold, prevalence=0.0017, costs=(1, 50), miss_costs=amounts)
    assert metrics["miss_costs"] == pytest.approx(expected["miss_costs"])
    assert metrics["miss_costs"]["missed"] == pytest.approx(np.sort(amounts[y == 1][np.argsort(scores[y == 1])][:4]).sum())
    assert metrics["production"]["expected_cost"] == pytest.approx(expected["production"]["expected_cost"])
    # The per-row costs change the figure: it is not the flat 50 per missed anomaly.
    _, flat = build_report(detector, X, y, **kwargs)
    assert metrics["data"]["expected_cost"] != pytest.approx(flat["data"]["expected_cost"])
    assert "its own miss cost" in text
    cost_row = re.search(r"<td>expected cost per row</td><td class=\"num\">([^<]*)</td><td class=\"num\">([^<]*)</td>",
                         text)
    assert cost_row and "–" not in cost_row.groups()
    # By column name: taken out of the features (the detector was not trained on it), same numbers.
    _, by_name = build_report(detector, X.assign(value=amounts), y, miss_costs="value", **kwargs)
    assert by_name["production"] == pytest.approx(metrics["production"])
    with pytest.raises(DataError, match="miss cost column 'nope' is not a column"):
        build_report(detector, X, y, miss_costs="nope")
    with pytest.raises(DataError, match="miss_costs has 2 values"):
        build_report(detector, X, y, miss_costs=[1.0, 2.0])
    with pytest.raises(DataError, match="needs costs too"):
        build_report(detector, X, y, miss_costs=amounts, threshold=1.0)


def test_explanation_bars_show_signed_shares_within_the_cell() -> None:
    X = pd.DataFrame({"a": np.linspace(0, 1, 20), "b": 0.0, "c": 0.0})
    text, _ = build_report(_Stub(shares=[1.5, -0.6, 0.1]), X, top=2)
    bars = re.findall(r'<span class="bar-fill( negative)?" style="display:block;width:([0-9.]+)%"></span></span>\s*'
                      r'<span class="bar-value">([^<]*)</span>', text)
    assert len(bars) == 6
    first_row = bars[:3]
    # Largest in absolute value first; lengths are parts of |1.5| + |-0.6| + |0.1| = 2.2.
    assert [b[2] for b in first_row] == ["+150%", "-60%", "+10%"]
    assert [float(b[1]) for b in first_row] == pytest.approx([68.2, 27.3, 4.5], abs=0.05)
    assert [bool(b[0]) for b in first_row] == [False, True, False]
    assert sum(float(b[1]) for b in first_row) <= 100.05
    assert "summed absolute shares" in text


def test_histogram_axis_survives_one_extreme_outlier(fitted) -> None:
    rng = np.random.default_rng(3)
    plain = rng.normal(size=500)
    assert histogram_range(plain, 2.0) == (plain.min(), plain.max(), 0)
    extreme = np.r_[plain, 1e9]
    low, high, beyond = histogram_range(extreme, 2.0)
    assert low == plain.min() and beyond == 1 and plain.max() <= high < 10
    # The threshold stays on the axis even when it is above the 99th percentile.
    assert histogram_range(extreme, 50.0)[1] >= 50.0
    detector, X, y, _ = fitted
    X = X.copy()
    X.iloc[0, 0] = 1e5
    text, _ = build_report(detector, X, y)
    note = re.search(r'<p class="note" id="histogram-note">([^<]*)</p>', text)
    assert note and note.group(1).startswith("1 row scores above") and "(0 labelled anomalies, 1 normal)" in note.group(1)
    assert not re.search(r"rows? scores? above", build_report(detector, fitted[1], y)[0])
    # Positive scores over orders of magnitude: a logarithmic axis, said so.
    wide = pd.DataFrame({"s": np.r_[rng.uniform(0.01, 0.05, 90), rng.uniform(5, 50, 10)]})
    note = re.search(r'<p class="note" id="histogram-note">([^<]*)</p>', build_report(_Stub(), wide, top=1)[0])
    assert note and note.group(1).startswith("The score axis is logarithmic")


def test_data_summary_collapses_one_hot_columns() -> None:
    rng = np.random.default_rng(4)
    services = rng.choice([f"s{i:03d}" for i in range(120)], size=300)
    services[:150] = "http"
    X = pd.concat([pd.DataFrame({"score": rng.normal(size=300), "bytes": rng.exponential(size=300)}),
                   pd.get_dummies(pd.Series(services, name="service"), prefix="service", prefix_sep="=",
                                  dtype=float)], axis=1)
    text, _ = build_report(_Stub(), X, top=1)
    summary = _section(text, "summary")
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td>", summary)
    assert [name for name, _ in rows] == ["score", "bytes", f"service=… ({X.shape[1] - 2} columns)"]
    assert rows[2][1] == "one-hot 0/1" and "most common: http (50%)" in summary
    assert f"{X.shape[1] - 2} one-hot columns are summarised as 1 categorical columns" in summary
    # pandas' own dummy names group too; independent 0/1 flags (both 1 in a row) stay apart.
    frame = pd.get_dummies(pd.DataFrame({"proto": ["tcp", "udp", "icmp", "tcp"]}), dtype=int)
    frame["is_a"], frame["is_b"] = [1, 1, 0, 0], [1, 0, 1, 0]
    assert one_hot_groups(frame) == {"proto_": ["proto_icmp", "proto_tcp", "proto_udp"]}
    # Many ordinary columns: the first ones, then a count and their names.
    wide = pd.DataFrame(rng.normal(size=(50, 55)), columns=[f"c{i}" for i in range(55)])
    more = re.search(r'<p class="note" id="more-columns">([^<]*)</p>', build_report(_Stub(), wide, top=1)[0])
    assert more and more.group(1) == "… and 5 more columns: c50, c51, c52, c53, c54"


def test_pr_curve_at_the_production_prevalence(fitted) -> None:
    from sklearn.metrics import precision_recall_curve

    detector, X, y, _ = fitted
    scores = detector.decision_function(X)
    # At the data's own rate the re-weighted curve is the ordinary one (the oracle: scikit-learn).
    recall, precision = precision_recall_at_prevalence(y, scores, y.mean())
    p_ref, r_ref, _ = precision_recall_curve(y, scores)
    assert set(zip(np.round(recall, 9), np.round(precision, 9))) >= set(zip(np.round(r_ref[:-1], 9),
                                                                            np.round(p_ref[:-1], 9)))
    # At 0.17% the threshold's point (recall, precision there) lies on the re-weighted curve.
    threshold = float(np.sort(scores[y == 0])[-10])  # ten false alarms
    text, metrics = build_report(detector, X, y, threshold=threshold, prevalence=0.0017)
    prod = metrics["production"]
    assert prod["precision"] < metrics["data"]["precision"]
    r_prod, p_prod = precision_recall_at_prevalence(y, scores, 0.0017)
    assert (np.isclose(r_prod, prod["recall"]) & np.isclose(p_prod, prod["precision"])).any()
    curves = _section(text, "curves")
    assert "dashed precision-recall curve is the same detector at the production anomaly rate (0.17%)" in curves
    assert f"precision is {round(metrics['production']['precision'], 4):g}" in curves
    # Without a production rate: no second curve, no sentence.
    plain = _NoExplain(detector)
    plain.threshold_goal_ = "f1"
    assert "production anomaly rate" not in _section(build_report(plain, X, y)[0], "curves")


def test_top_anomalies_list_identical_rows_once() -> None:
    keys = np.array([7, 7, 3, 7, 5, 1])
    scores = np.array([9.0, 9.0, 8.0, 9.0, 1.0, 8.5])
    assert [list(e) for e in distinct_top(keys, scores, 3)] == [[0, 1, 3], [5], [2]]
    # Different rows with the same score join the entry above them when their context (label,
    # group) matches too.
    same = np.array([5.0, 5.0, 5.0, 1.0])
    assert [list(e) for e in distinct_top(np.arange(4), same, 3, np.array(["a", "a", "b", "b"]))] == [[0, 1], [2], [3]]
    assert [list(e) for e in distinct_top(np.arange(4), same, 3)] == [[0, 1, 2], [3]]
    # Same score means equal to a relative 1e-6 (float32 models differ in the last bits), not closer.
    near = np.array([5.0, 5.0 * (1 - 3e-7), 5.0 * (1 - 3e-5)])
    assert [list(e) for e in distinct_top(np.arange(3), near, 3)] == [[0, 1], [2]]
    X = pd.DataFrame({"a": np.r_[np.full(6, 9.0), 5.0, 5.0, 4.0, np.linspace(0, 1, 30)], "b": 1.0},
                     index=[f"r{i}" for i in range(39)])
    X.loc["r7", "b"] = 2.0  # near-identical to r6: same score, another value
    y = np.r_[np.ones(9, int), np.zeros(30, int)]
    y[5] = 0  # one of the identical rows is labelled normal
    text, _ = build_report(_Stub(shares=[0.9, 0.1]), X, y, top=3)
    anomalies = _section(text, "anomalies")
    ranked = re.findall(r'<tr>\s*<td class="num">(\d+)</td><td>([^<]*)', anomalies)
    assert [(int(rank), row.strip()) for rank, row in ranked] == [(1, "r0"), (2, "r6"), (3, "r8")]
    assert "&times; 6 identical rows (also r1, r2, r3, …)" in anomalies
    assert "5 of 6 are 1" in anomalies
    assert "&times; 2 rows with this score, label (also r7)" in anomalies
    assert "Top 3 anomalies (9 rows: identical rows, and rows the detector scores alike, are listed once)" in anomalies
    assert anomalies.count('class="bar-row"') == 3 * 2  # one explanation per entry


def test_cli_report_and_evaluate_price_misses_by_a_column(tmp_path, monkeypatch, capsys) -> None:
    from conftest import run_cli

    rng = np.random.default_rng(5)
    pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)}).to_csv(tmp_path / "train.csv", index=False)
    y = np.r_[np.zeros(80, int), np.ones(20, int)]
    a = np.r_[rng.normal(size=80), np.linspace(1.0, 6.0, 20)]  # the mildest anomalies will be missed
    amount = np.r_[np.full(80, 10.0), np.full(20, 100.0)]
    pd.DataFrame({"a": a, "b": 0.0, "Amount": amount, "y": y}).to_csv(tmp_path / "test.csv", index=False)
    model = tmp_path / "model"
    assert run_cli(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--detector", "gaussian", "--out", model)[0] == 0
    code, _, err = run_cli(monkeypatch, capsys, "threshold", model, tmp_path / "test.csv", "--goal", "cost:5,1,0.01",
                           "--id-col", "Amount", "--out", tmp_path / "costed")
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, "report", tmp_path / "costed", tmp_path / "test.csv", "--id-col",
                           "Amount", "--miss-cost-col", "Amount", "--out", tmp_path / "report.html")
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", tmp_path / "costed", tmp_path / "test.csv", "--id-col",
                           "Amount", "--miss-cost-col", "Amount", "--out", tmp_path / "m.json", "--report",
                           tmp_path / "evaluated.html", "--plots", tmp_path / "plots")
    assert code == 0, err
    numbers = json.loads((tmp_path / "m.json").read_text())
    missed = numbers["miss_costs"]["missed"]
    assert missed == pytest.approx(100.0 * numbers["confusion"]["fn"]) and numbers["confusion"]["fn"] > 0
    for name in ("report.html", "evaluated.html"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "its own miss cost" in text and f"{missed:,.0f} missed" in text
        cost = re.search(r"<td>expected cost per row</td><td class=\"num\">([^<]*)</td><td class=\"num\">([^<]*)</td>",
                         text)
        assert float(cost.group(1)) == pytest.approx(numbers["data"]["expected_cost"], rel=1e-3)
        assert float(cost.group(2)) == pytest.approx(numbers["production"]["expected_cost"], rel=1e-3)
    # Without a cost goal there is no MISS to multiply: the message says which command sets one.
    code, _, err = run_cli(monkeypatch, capsys, "report", model, tmp_path / "test.csv", "--id-col", "Amount",
                           "--miss-cost-col", "Amount", "--out", tmp_path / "other.html")
    assert code == 2 and "--goal cost:FALSE_ALARM,MISS" in err and "threshold goal is 'contamination" in err


def test_cli_side_columns_need_no_id_col(tmp_path, monkeypatch, capsys) -> None:
    """--miss-cost-col and --group-col on columns the model was not trained on are set aside by
    themselves (no --id-col needed) in threshold, evaluate and report; on a column that is a feature
    they read it and leave it a feature."""
    from conftest import run_cli

    rng = np.random.default_rng(6)
    pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)}).to_csv(tmp_path / "train.csv", index=False)
    y = np.r_[np.zeros(80, int), np.ones(20, int)]
    test = pd.DataFrame({"a": np.r_[rng.normal(size=80), np.linspace(1.0, 6.0, 20)], "b": rng.normal(size=100),
                         "Amount": np.r_[np.full(80, 10.0), np.full(20, 100.0)],
                         "site": np.where(np.arange(100) % 2, "north", "south"), "y": y})
    test.drop(columns="site").to_csv(tmp_path / "dev.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    model, costed = tmp_path / "model", tmp_path / "costed"
    assert run_cli(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--detector", "gaussian", "--out", model)[0] == 0
    code, _, err = run_cli(monkeypatch, capsys, "threshold", model, tmp_path / "dev.csv", "--goal", "cost:5,1,0.01",
                           "--miss-cost-col", "Amount", "--out", costed)
    assert code == 0, err
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", costed, tmp_path / "test.csv", "--miss-cost-col",
                             "Amount", "--group-col", "site", "--out", tmp_path / "m.json", "--report",
                             tmp_path / "evaluated.html", "--plots", tmp_path / "plots")
    assert code == 0, err
    assert "by site" in out and "north" in out
    numbers = json.loads((tmp_path / "m.json").read_text())
    assert numbers["miss_costs"]["missed"] == pytest.approx(100.0 * numbers["confusion"]["fn"])
    code, _, err = run_cli(monkeypatch, capsys, "report", costed, tmp_path / "test.csv", "--miss-cost-col", "Amount",
                           "--group-col", "site", "--out", tmp_path / "report.html")
    assert code == 0, err
    for name in ("report.html", "evaluated.html"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "its own miss cost" in text and 'id="groups"' in text and "north" in text
    # A feature as the group column: still a feature, and its values are the groups.
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", costed, tmp_path / "dev.csv", "--miss-cost-col", "Amount",
                             "--group-col", "b", "--plots", tmp_path / "plots-b")
    assert code == 0, err
    assert "by b" in out and out.count(" rows, ") == 100
    # A column the command was not told about is still refused, naming the flag that sets it aside; the
    # column the threshold was chosen with (Amount) is set aside by itself.
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", costed, tmp_path / "test.csv", "--plots", tmp_path / "p3")
    assert code == 2 and "extra ['site']" in err and "--id-col" in err
    code, _, err = run_cli(monkeypatch, capsys, "report", costed, tmp_path / "test.csv", "--group-col", "site",
                           "--out", tmp_path / "remembered.html")
    assert code == 0, err
    text = (tmp_path / "remembered.html").read_text(encoding="utf-8")
    assert "its own miss cost" in text and "each missed anomaly priced by its Amount" in text
    assert "chosen on dev.csv: 100 rows, 20 anomalies" in text


# --- in a real browser --------------------------------------------------------------------------

_PROBE = r"""<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    errors.push('error: ' + (e.message || (t && (t.src || t.href)) || 'a resource failed to load'));
  }, true);
  document.addEventListener('securitypolicyviolation', function (e) {
    errors.push('content security policy: ' + e.violatedDirective + ' blocked ' + e.blockedURI);
  });
  ['error', 'warn'].forEach(function (level) {
    var original = console[level];
    console[level] = function () {
      errors.push(level + ': ' + Array.prototype.join.call(arguments, ' '));
      original.apply(console, arguments);
    };
  });
  window.addEventListener('load', function () {
    var sections = {};
    document.querySelectorAll('section').forEach(function (s) {
      var r = s.getBoundingClientRect(), st = getComputedStyle(s);
      sections[s.id] = {visible: r.width > 0 && r.height > 0 && st.display !== 'none' &&
                                 st.visibility !== 'hidden' && parseFloat(st.opacity) > 0,
                        heading: (s.querySelector('h2') || {}).textContent || ''};
    });
    var images = [];
    document.querySelectorAll('img').forEach(function (i) {
      images.push({id: i.id, decoded: i.complete && i.naturalWidth > 0, width: i.getBoundingClientRect().width});
    });
    var out = document.createElement('pre');
    out.id = 'probe-result';
    out.textContent = JSON.stringify({sections: sections, images: images, errors: errors});
    document.body.appendChild(out);
  });
})();
</script>
"""
"""Injected before the report's Content-Security-Policy (a meta CSP covers only what follows it):
records errors, CSP violations and console errors/warnings, then, once loaded, whether each
section is laid out and visible and each image decoded."""


def _chromium() -> str | None:
    candidates = [os.environ.get("ODDKIT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
                  "google-chrome-stable"]
    for name in candidates:
        if name and (path := shutil.which(name)):
            return path
    return None


def _run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    binary = _chromium()
    if binary is None:
        pytest.skip("no Chromium found (install Debian's chromium, as .ci/run does, or set ODDKIT_CHROMIUM)")
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def _check_in_browser(report: Path, tmp_path: Path, sections: set[str]) -> dict:
    """Open the report in headless Chromium; assert sections visible, images decoded, no console
    messages; save a screenshot. Returns the probe's findings."""
    # 1. The report as written: the page has no scripts, so any console line is an error or warning
    #    (a blocked fetch, a broken image, a CSP violation).
    plain = _run_chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", report.as_uri())
    console = [line for line in plain.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert '<section id="model-card">' in plain.stdout
    # 2. A copy with the probe, for layout, visibility and decoding as the browser sees them.
    probed = report.with_name("probed.html")
    probed.write_text(report.read_text(encoding="utf-8").replace("<head>", "<head>\n" + _PROBE, 1), encoding="utf-8")
    dom = _run_chromium(tmp_path, "--dump-dom", probed.as_uri()).stdout
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run in Chromium"
    result = json.loads(html_lib.unescape(found.group(1)))
    assert result["errors"] == []
    assert set(result["sections"]) == sections
    hidden = [name for name, s in result["sections"].items() if not s["visible"] or not s["heading"].strip()]
    assert hidden == []
    assert result["images"] and all(i["decoded"] and i["width"] > 100 for i in result["images"]), result["images"]
    # 3. A screenshot, for a person to look at.
    shot = tmp_path / "report.png"
    _run_chromium(tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", report.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    return result


def test_report_in_chromium(fitted, tmp_path) -> None:
    detector, X, y, groups = fitted
    report = write_report(detector, X, y, tmp_path / "report.html", groups=groups, data_name="dev.csv")
    result = _check_in_browser(report, tmp_path, LABELLED_SECTIONS)
    assert {i["id"] for i in result["images"]} == {"roc-curve", "pr-curve", "score-histogram"}


def test_unlabelled_report_in_chromium(fitted, tmp_path) -> None:
    detector, X, _, _ = fitted
    report = write_report(detector, X, out=tmp_path / "report.html")
    result = _check_in_browser(report, tmp_path, UNLABELLED_SECTIONS)
    assert [i["id"] for i in result["images"]] == ["score-histogram"]


def test_python_report_prices_misses_by_the_column_the_threshold_was_chosen_with(tmp_path) -> None:
    from oddkit import GaussianDetector
    from oddkit.exceptions import DataError
    from oddkit.report import build_report
    from oddkit.threshold import choose_threshold

    rng = np.random.default_rng(7)
    train = pd.DataFrame({"a": rng.normal(size=300), "Amount": rng.gamma(2.0, 10.0, 300)})
    dev = pd.DataFrame({"a": np.r_[rng.normal(size=90), rng.normal(4.0, 1.0, 10)],
                        "Amount": np.r_[rng.gamma(2.0, 10.0, 90), np.full(10, 500.0)]})
    y = np.r_[np.zeros(90, int), np.ones(10, int)]
    detector = GaussianDetector().fit(train)
    detector.set_threshold(choose_threshold(detector.decision_function(dev), y, "cost:1,1,0.01",
                                            miss_costs=dev["Amount"], data_name="dev.csv"))
    assert detector.threshold_miss_cost_col_ == "Amount"
    _, remembered = build_report(detector, dev, y)
    _, explicit = build_report(detector, dev, y, miss_costs="Amount")
    assert remembered["miss_costs"] == explicit["miss_costs"] and remembered["miss_costs"] is not None
    html, _ = build_report(detector, dev, y)
    assert "chosen on dev.csv: 100 rows, 10 anomalies" in html and "priced by its Amount" in html
    with pytest.raises(DataError, match="Amount"):
        build_report(detector, dev.drop(columns="Amount").assign(b=0.0), y)


# --- images -------------------------------------------------------------------------------------


def _image_folder(root: Path, classes: dict[str, np.ndarray]) -> Path:
    from PIL import Image

    for name, X in classes.items():
        folder = root / name if name else root
        folder.mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(X):
            Image.fromarray(pixels).save(folder / f"{name or 'img'}-{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    """A saved GradientKNN model (oddkit's default for images) fitted on 16x16 horizontal bars, a
    labelled test folder (sub-folders normal and anomaly: vertical bars) and an unlabelled one."""
    from synthetic_images import bar_images

    root = tmp_path_factory.mktemp("report-images")
    _image_folder(root / "train", {"": bar_images(40, size=16, seed=1)})
    _image_folder(root / "test", {"normal": bar_images(12, size=16, seed=2),
                                  "anomaly": bar_images(4, vertical=True, size=16, seed=3)})
    # Two of the unlabelled images are larger: the report says they were resized to the model's size.
    _image_folder(root / "unlabelled", {"": np.concatenate([bar_images(5, size=16, seed=4),
                                                            bar_images(1, vertical=True, size=16, seed=5)])})
    for i, X in enumerate(bar_images(2, size=24, seed=6)):
        from PIL import Image

        Image.fromarray(X).save(root / "unlabelled" / f"big-{i}.png")
    from oddkit import GradientKNNDetector
    from oddkit.data.images import read_images
    from oddkit.persist import save

    model = save(GradientKNNDetector().fit(read_images(root / "train").X), root / "model")
    return root, model


def test_cli_report_on_an_image_model(image_model, monkeypatch, capsys) -> None:
    from conftest import run_cli

    root, model = image_model
    out = root / "images.html"
    code, _, err = run_cli(monkeypatch, capsys, "report", model, root / "test", "--out", out, "--top", "5",
                           "--force")
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    # Metrics, curves, histogram and confusion matrix, as for a table; the data summary counts images.
    assert "ROC AUC" in text and 'id="roc-curve"' in text and 'id="pr-curve"' in text and 'id="confusion"' in text
    assert "16 images, 16×16 pixels (height × width), grayscale" in text
    assert "none: every image is 16×16" in text and "anomaly (4), normal (12)" in text
    assert "1 × 16 × 16 (channels × height × width)" in text  # the model card
    # One heat-map per top image, inline, with its file name, and the anomalies ranked first.
    anomalies = _section(text, "anomalies")
    heatmaps = re.findall(r'<img class="heatmap" alt="([^"]*)" src="(data:image/png;base64,[^"]+)"', anomalies)
    assert len(heatmaps) == 5
    assert all(name.startswith("anomaly/") for name, _ in heatmaps[:4])
    assert "top region" in anomalies and "of the map's positive mass" in anomalies
    assert len(text) < 400_000  # thumbnails stay small
    # Nothing fetched: every image is a data URL.
    assert all(s.startswith("data:") for s in re.findall(r'src="([^"]*)"', text))


def test_cli_report_on_unlabelled_images(image_model, monkeypatch, capsys) -> None:
    from conftest import run_cli

    root, model = image_model
    out = root / "unlabelled.html"
    code, _, err = run_cli(monkeypatch, capsys, "report", model, root / "unlabelled", "--out", out, "--force")
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert "No labels were given" in text and 'id="roc-curve"' not in text
    assert "8 images" in text and "2 of 8 resized to the model&#39;s 16×16; they were 24×24 (2)" in text
    # Top 20, but only 8 images; the two resized ones have thinner bars, less bright than any training image,
    # so the intensity guard gives both its floor score, and the report lists the tie once.
    assert len(re.findall(r'<img class="heatmap"', text)) == 7
    # Table options make no sense for images: a clear error.
    code, _, err = run_cli(monkeypatch, capsys, "report", model, root / "unlabelled", "--id-col", "x", "--out",
                           root / "x.html")
    assert code == 2 and "images have none" in err


def test_image_report_in_chromium_and_from_an_npz(image_model, tmp_path, monkeypatch, capsys) -> None:
    """The Python API takes an ImageSet; the page shows every heat-map decoded in Chromium; an .npz with
    labels in ``y`` gives the metrics through the CLI."""
    from conftest import run_cli
    from oddkit import load
    from oddkit.data.images import read_images

    root, model = image_model
    images = read_images(root / "test", size=(16, 16), channels=1)
    y = (np.asarray(images.class_names)[images.labels] == "anomaly").astype(int)
    np.savez(tmp_path / "test.npz", X=(images.X[:, 0] * 255).round().astype(np.uint8), y=y)
    code, _, err = run_cli(monkeypatch, capsys, "report", model, tmp_path / "test.npz", "--top", "3", "--out",
                           tmp_path / "npz.html")
    assert code == 0, err
    text = (tmp_path / "npz.html").read_text(encoding="utf-8")
    assert "ROC AUC" in text and len(re.findall(r'<img class="heatmap"', text)) == 3 and "test.npz[" in text
    if _chromium() is None:
        pytest.skip("no Chromium to open the report in")
    report = write_report(load(model), images, y, tmp_path / "report.html", top=4, data_name="test")
    result = _check_in_browser(report, tmp_path, LABELLED_SECTIONS - {"groups"})
    assert sum(1 for i in result["images"] if not i["id"]) == 4


def test_image_report_refuses_broken_or_hostile_data_with_oddkits_error(image_model, tmp_path, monkeypatch,
                                                                        capsys) -> None:
    """Sub-folders that are not labels, labels other than 0/1, a pickled .npz and an unreadable image
    each end the command with one oddkit error (exit 2), and no report is written."""
    from conftest import run_cli
    from synthetic_images import bar_images

    root, model = image_model
    _image_folder(tmp_path / "pets", {"cats": bar_images(2, size=16, seed=7), "dogs": bar_images(2, size=16, seed=8)})
    images = bar_images(3, size=16, seed=9)
    np.savez(tmp_path / "labels.npz", X=images, y=np.array([0, 2, 1]))
    np.savez(tmp_path / "pickled.npz", X=images, y=np.array([{"a": 1}, 0, 1], dtype=object))
    broken = _image_folder(tmp_path / "broken", {"": images})
    (broken / "zz-not-an-image.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cases = {tmp_path / "pets": "'normal' and 'anomaly'", tmp_path / "labels.npz": "must be 0 \\(normal\\) or 1",
             tmp_path / "pickled.npz": "", broken: ""}
    messages = []
    for data, expected in cases.items():
        out = tmp_path / f"{data.stem}.html"
        code, _, err = run_cli(monkeypatch, capsys, "report", model, data, "--out", out)
        assert code == 2, (data, err)
        assert err.startswith("error:") and "Traceback" not in err, err
        assert re.search(expected, err), err
        assert not out.exists()
        messages.append(err)
    assert "pickle" in messages[2].lower() or "object" in messages[2].lower(), messages[2]
    assert "zz-not-an-image.png" in messages[3], messages[3]
