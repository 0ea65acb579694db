from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from oddkit.exceptions import DataError, LabelError
from oddkit.metrics import (
    Evaluation,
    check_labels,
    confusion_at,
    evaluate,
    pr_auc,
    roc_auc,
)

# Same hand-made set as in test_threshold.py: a tie at 0.4 between an anomaly and a normal.
SCORES = np.array([0.1, 0.2, 0.3, 0.4, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
Y = np.array([0, 0, 0, 1, 0, 0, 1, 0, 1, 1])


@pytest.mark.parametrize("seed", range(5))
def test_aucs_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.2).astype(int)
    scores = np.round(rng.normal(size=300) + y, 1)  # rounded: ties included
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-15)
    assert pr_auc(y, scores) == pytest.approx(average_precision_score(y, scores), abs=1e-15)


def test_aucs_by_hand() -> None:
    # Pairs (anomaly, normal) ranked correctly: 0.8 beats both normals, 0.35 beats 0.1 only -> 3/4.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # AP: recall .5 at precision 1, then recall 1 at precision 2/3 -> .5 + .5 * 2/3.
    assert pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_confusion_by_hand_with_tie() -> None:
    # t = 0.4 flags 0.4 (anomaly), 0.4 (normal), 0.5, 0.6 (anomaly), 0.7, 0.8 (anomaly), 0.9 (anomaly).
    c = confusion_at(Y, SCORES, 0.4)
    assert (c["tp"], c["fp"], c["tn"], c["fn"]) == (4, 3, 3, 0)
    assert c["precision"] == 4 / 7
    assert c["recall"] == 1.0
    assert c["f1"] == 8 / 11
    assert c["fpr"] == 0.5
    # t = 0.65 flags 0.7 (normal), 0.8, 0.9.
    c = confusion_at(Y, SCORES, 0.65)
    assert (c["tp"], c["fp"], c["tn"], c["fn"]) == (2, 1, 5, 2)
    assert (c["precision"], c["recall"], c["fpr"]) == (2 / 3, 0.5, 1 / 6)


def test_confusion_zero_denominators_give_zero_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nothing = confusion_at(Y, SCORES, 1.0)
        assert (nothing["tp"], nothing["fp"], nothing["tn"], nothing["fn"]) == (0, 0, 6, 4)
        assert nothing["precision"] == nothing["recall"] == nothing["f1"] == nothing["fpr"] == 0.0
        only_normals = confusion_at([0, 0], [0.1, 0.2], 0.15)
        assert only_normals["recall"] == 0.0 and only_normals["fpr"] == 0.5
        only_anomalies = confusion_at([1, 1], [0.1, 0.2], 0.15)
        assert only_anomalies["fpr"] == 0.0 and only_anomalies["precision"] == 1.0


def test_confusion_rejects_nan_threshold() -> None:
    with pytest.raises(DataError, match="threshold"):
        confusion_at(Y, SCORES, float("nan"))


def test_evaluate_with_and_without_threshold() -> None:
    ev = evaluate(Y, SCORES)
    assert isinstance(ev, Evaluation)
    assert (ev.n, ev.n_anomalies) == (10, 4)
    assert ev.roc_auc == roc_auc_score(Y, SCORES)
    assert ev.pr_auc == average_precision_score(Y, SCORES)
    assert ev.threshold is None and ev.tp is None and ev.fpr is None
    assert [name for name, _ in ev.as_rows()] == [
        "rows",
        "anomalies",
        "ROC AUC",
        "PR AUC (average precision)",
    ]

    ev = evaluate(Y, SCORES, threshold=0.6)
    assert (ev.threshold, ev.tp, ev.fp, ev.tn, ev.fn) == (0.6, 3, 1, 5, 1)
    assert (ev.precision, ev.recall, ev.f1, ev.fpr) == (0.75, 0.75, 0.75, 1 / 6)
    d = ev.to_dict()
    assert d["tp"] == 3 and d["roc_auc"] == ev.roc_auc
    assert json.loads(json.dumps(d)) == d
    rows = dict(ev.as_rows())
    assert rows["threshold"] == 0.6 and rows["recall"] == 0.75 and rows["false-positive rate"] == 1 / 6
    assert len(ev.as_rows()) == 13


def test_check_labels_normalises_inputs() -> None:
    y, s = check_labels(np.array([[True], [False]]), [[1], [2]])
    assert y.dtype == np.int64 and y.tolist() == [1, 0]
    assert s.dtype == np.float64 and s.tolist() == [1.0, 2.0]
    y, _ = check_labels(np.array([0, 1], dtype=object), [0.1, 0.2])
    assert y.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (["a", "b", "a"], "text"),
        (np.array([b"0", b"1", b"0"]), "text"),
        ([0, 2, 1], "found 2"),
        ([0, -1, 1], "found -1"),
        ([0, np.nan, 1], "missing"),
        ([0, None, 1], "missing"),
        ([[0, 1, 0], [1, 0, 1]], "one-dimensional"),
    ],
)
def test_label_errors(y: object, match: str) -> None:
    with pytest.raises(LabelError, match=match):
        confusion_at(y, [0.1, 0.2, 0.3], 0.2)


def test_aucs_need_both_classes() -> None:
    with pytest.raises(LabelError, match="ROC AUC needs labelled anomalies"):
        roc_auc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(LabelError, match="PR AUC needs labelled normal rows"):
        pr_auc([1, 1], [0.1, 0.2])
    with pytest.raises(LabelError, match="evaluation needs labelled anomalies"):
        evaluate([0, 0], [0.1, 0.2], threshold=0.1)


def test_score_errors() -> None:
    with pytest.raises(DataError, match="2 labels but scores has 3"):
        roc_auc([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="NaN or infinite"):
        roc_auc([0, 1], [0.1, np.nan])
    with pytest.raises(DataError, match="numeric"):
        roc_auc([0, 1], ["x", "y"])
    with pytest.raises(DataError, match="empty"):
        confusion_at([], [], 0.5)


# --- honest metrics: precision, F1, alerts and cost at a stated production prevalence ---------

from oddkit.metrics import at_prevalence, operating_report, write_metrics  # noqa: E402
from oddkit.threshold import choose_threshold  # noqa: E402


def _enriched_dev_set() -> tuple[np.ndarray, np.ndarray]:
    """1,000 frauds among 5,000 rows (20%): at threshold 10, 800 caught (recall 0.8) and 4 of
    4,000 normals flagged (FPR 0.001); the other 200 frauds tie with the normals at 0."""
    y = np.r_[np.ones(1000, int), np.zeros(4000, int)]
    scores = np.r_[np.full(800, 10.0), np.zeros(200), np.full(4, 10.0), np.zeros(3996)]
    return y, scores


def test_at_prevalence_hand_computed() -> None:
    # flag rate = 0.8 * 0.0017 + 0.001 * 0.9983 = 0.0023583; precision = 0.00136 / 0.0023583
    m = at_prevalence(0.8, 0.001, 0.0017, costs=(1, 50))
    assert m["flag_rate"] == pytest.approx(0.0023583)
    assert m["alerts_per_10000"] == pytest.approx(23.583)
    assert m["precision"] == pytest.approx(0.5766865963)
    assert m["f1"] == pytest.approx(0.6702313777)
    # cost per row = 1 * 0.001 * 0.9983 + 50 * 0.2 * 0.0017
    assert m["expected_cost"] == pytest.approx(0.0179983)
    assert at_prevalence(0.8, 0.001, 0.0017)["expected_cost"] is None


def test_at_prevalence_flags_nothing_and_refuses_bad_rates() -> None:
    m = at_prevalence(0.0, 0.0, 0.01, costs=(1, 50))
    assert (m["precision"], m["f1"], m["alerts_per_10000"]) == (0.0, 0.0, 0.0)
    assert m["expected_cost"] == pytest.approx(0.5)
    with pytest.raises(DataError, match="prevalence .* between 0 and 1 \\(exclusive\\)"):
        at_prevalence(0.5, 0.1, 0.0)
    with pytest.raises(DataError, match="recall must be between 0 and 1"):
        at_prevalence(1.5, 0.1, 0.1)
    with pytest.raises(DataError, match="costs must be finite and >= 0"):
        at_prevalence(0.5, 0.1, 0.1, costs=(-1, 5))
    with pytest.raises(DataError, match="costs must be a pair"):
        at_prevalence(0.5, 0.1, 0.1, costs=(1,))


def test_operating_report_beside_the_data_prevalence() -> None:
    y, scores = _enriched_dev_set()
    r = operating_report(y, scores, threshold=10.0, prevalence=0.0017, costs=(1, 50))
    assert r["confusion"] == {"tp": 800, "fp": 4, "tn": 3996, "fn": 200}
    assert r["data"]["prevalence"] == pytest.approx(0.2)
    assert r["data"]["precision"] == pytest.approx(800 / 804)  # 0.995 on the enriched file
    assert r["data"]["alerts_per_10000"] == pytest.approx(10_000 * 804 / 5000)
    assert r["data"]["expected_cost"] == pytest.approx((4 * 1 + 200 * 50) / 5000)
    assert r["production"]["precision"] == pytest.approx(0.5766865963)  # 0.58 in production
    assert r["production"]["expected_cost"] == pytest.approx(0.0179983)
    assert operating_report(y, scores, threshold=10.0)["production"] is None


def test_choose_threshold_reports_the_stated_prevalence() -> None:
    y, scores = _enriched_dev_set()
    c = choose_threshold(scores, y, "cost:1,50,0.0017")
    assert c.threshold == 10.0
    assert c.precision == pytest.approx(0.995, abs=1e-3)
    assert c.dev_anomaly_rate == pytest.approx(0.2)
    assert c.alerts_per_10000 == pytest.approx(1608.0)
    assert c.production_anomaly_rate == 0.0017
    assert c.production_precision == pytest.approx(0.5766865963)
    assert c.production_f1 == pytest.approx(0.6702313777)
    assert c.production_alerts_per_10000 == pytest.approx(23.583)
    assert c.production_expected_cost == pytest.approx(c.expected_cost)
    assert c.dev_expected_cost == pytest.approx(10_004 / 5000)
    # A prevalence stated apart from the goal reports there without changing the choice.
    f = choose_threshold(scores, y, "f1", prevalence=0.0017)
    assert f.production_precision == pytest.approx(0.5766865963)
    assert f.production_expected_cost is None and f.dev_expected_cost is None
    assert choose_threshold(scores, y, "f1").production_precision is None
    json.dumps(c.to_dict(), allow_nan=False)


def test_write_metrics_json_and_csv(tmp_path) -> None:
    y, scores = _enriched_dev_set()
    r = operating_report(y, scores, threshold=10.0, prevalence=0.0017)
    assert json.loads(write_metrics(r, tmp_path / "m.json").read_text()) == r
    lines = write_metrics(r, tmp_path / "sub" / "m.csv").read_text().splitlines()
    assert lines[0] == "metric,value"
    assert "confusion.tp,800" in lines
    assert "production.expected_cost," in lines  # no costs given: left empty
    assert any(line.startswith("production.precision,0.576") for line in lines)
    assert json.loads(write_metrics(evaluate(y, scores, 10.0), tmp_path / "e.json").read_text())["tp"] == 800
    with pytest.raises(DataError, match=r"ending in \.json or \.csv"):
        write_metrics(r, tmp_path / "m.txt")


def test_operating_report_prices_each_missed_anomaly_by_its_amount() -> None:
    y, scores = _enriched_dev_set()
    # The 200 missed frauds cost 10 each, the 800 caught ones 1,000: 2,000 missed in all.
    amount = np.r_[np.full(800, 1000.0), np.full(200, 10.0), np.full(4000, 3.0)]
    r = operating_report(y, scores, threshold=10.0, prevalence=0.0017, costs=(1, 2), miss_costs=amount)
    assert r["miss_costs"] == {"total": 802_000.0, "caught": 800_000.0, "missed": 2_000.0, "missed_per_anomaly": 2.0}
    assert r["data"]["expected_cost"] == pytest.approx((4 * 1 + 2 * 2_000) / 5000)
    # In production the missed amount per anomaly (2.0) replaces the missed share (0.2).
    assert r["production"]["expected_cost"] == pytest.approx(1 * 0.001 * (1 - 0.0017) + 2 * 2.0 * 0.0017)
    assert r["production"] == at_prevalence(0.8, 0.001, 0.0017, costs=(1, 2), missed_cost_per_anomaly=2.0)
    plain = operating_report(y, scores, threshold=10.0, prevalence=0.0017, costs=(1, 2))
    assert plain["miss_costs"] is None
    assert plain["production"]["expected_cost"] == pytest.approx(1 * 0.001 * (1 - 0.0017) + 2 * 0.2 * 0.0017)
    with pytest.raises(DataError, match="needs costs too"):
        operating_report(y, scores, threshold=10.0, miss_costs=amount)
    with pytest.raises(DataError, match="missed_cost_per_anomaly"):
        at_prevalence(0.8, 0.001, 0.0017, costs=(1, 2), missed_cost_per_anomaly=-1)


def test_metric_intervals_are_exact_for_rates_and_delong_for_the_auc():
    from scipy.stats import beta, norm

    from oddkit.metrics import _roc_auc_interval, metric_intervals

    y = np.r_[np.zeros(90, dtype=int), np.ones(10, dtype=int)]
    intervals = metric_intervals(y, np.arange(100.0), threshold=95)
    assert intervals["roc_auc"] == _roc_auc_interval(y, np.arange(100.0), 0.95)
    # 5 of 10 anomalies caught, 0 of 90 normals flagged, 5 of 5 flagged rows anomalies: Clopper-Pearson.
    assert intervals["recall"] == pytest.approx((beta.ppf(0.025, 5, 6), beta.ppf(0.975, 6, 5)))
    assert intervals["fpr"] == pytest.approx((0.0, beta.ppf(0.975, 1, 90)))
    assert intervals["precision"] == pytest.approx((beta.ppf(0.025, 5, 1), 1.0))
    # DeLong's interval centres on the AUC (ties count half) and covers the true AUC about 95% of the time.
    rng = np.random.default_rng(0)
    truth, covered = norm.cdf(1 / np.sqrt(2)), 0
    labels = np.r_[np.zeros(200, dtype=int), np.ones(40, dtype=int)]
    for _ in range(300):
        scores = np.r_[rng.normal(size=200), rng.normal(1, 1, size=40)].round(1)  # rounded: ties
        low, high = _roc_auc_interval(labels, scores, 0.95)  # metric_intervals' ROC AUC interval, alone
        assert (low + high) / 2 == pytest.approx(roc_auc_score(labels, scores)) or low == 0 or high == 1
        covered += low <= truth <= high
    assert 0.9 <= covered / 300 <= 0.99
    assert metric_intervals(y, np.arange(100.0), threshold=1000)["precision"] is None  # nothing flagged
    for level in (0, 1, "x", True):
        with pytest.raises(DataError, match="level must be a number between 0 and 1"):
            metric_intervals(y, np.arange(100.0), 95, level=level)
    with pytest.raises(LabelError):
        metric_intervals(np.zeros(10, dtype=int), np.arange(10.0), 5)


def test_the_pr_auc_interval_is_the_logit_interval_and_covers_the_population_value():
    from scipy.special import expit, logit
    from scipy.stats import norm

    from oddkit.metrics import _pr_auc_interval, metric_intervals

    y = np.r_[np.zeros(90, dtype=int), np.ones(10, dtype=int)]
    scores = np.random.default_rng(1).normal(size=100) + y
    ap = average_precision_score(y, scores)
    half = norm.ppf(0.975) / np.sqrt(10 * ap * (1 - ap))
    assert metric_intervals(y, scores, 0.0)["pr_auc"] == pytest.approx((expit(logit(ap) - half),
                                                                         expit(logit(ap) + half)))
    assert metric_intervals(y, np.arange(100.0), 95)["pr_auc"] == (1.0, 1.0)  # a perfect ranking
    # Binormal scores, 40 anomalies among 240 rows: the population PR AUC by integrating precision over recall.
    t = np.linspace(-8, 10, 200_001)
    recall, fpr = norm.sf(t - 1.0)[::-1], norm.sf(t)[::-1]
    truth = np.trapezoid(recall / 6 / (recall / 6 + fpr * 5 / 6), recall)
    rng, covered = np.random.default_rng(0), 0
    labels = np.r_[np.zeros(200, dtype=int), np.ones(40, dtype=int)]
    for _ in range(300):  # the interval alone (metric_intervals computes every other interval too)
        low, high = _pr_auc_interval(labels, np.r_[rng.normal(size=200), rng.normal(1, 1, size=40)], 0.95)
        covered += low <= truth <= high
    assert 0.9 <= covered / 300 <= 0.995
