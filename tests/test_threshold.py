from __future__ import annotations

import json
import time
from fractions import Fraction

import numpy as np
import pytest

from oddkit.exceptions import DataError, LabelError
from oddkit.threshold import (
    CostGoal,
    F1Goal,
    FPRGoal,
    RecallGoal,
    ThresholdChoice,
    choose_threshold,
    contamination_threshold,
    parse_goal,
)

# Hand-made dev set with a tie at 0.4 between an anomaly and a normal.
#   P = 4 anomalies, N = 6 normals. Candidates (rows flagged are score >= t):
#   t       tp fp  recall  fpr   F1 = 2tp/(tp+fp+P)   fp + 20*fn   fp + fn
#   >0.9     0  0   0      0     0                    80           4
#   0.9      1  0   .25    0     2/5  = .400          60           3
#   0.8      2  0   .50    0     4/6  = .667          40           2   <- tie, higher t
#   0.7      2  1   .50    1/6   4/7  = .571          41           3
#   0.6      3  1   .75    1/6   6/8  = .750  <- best 21           2   <- tie
#   0.5      3  2   .75    2/6   6/9  = .667          22           3
#   0.4      4  3   1      3/6   8/11 = .727           3  <- best  3
#   0.3      4  4   1      4/6   8/12 = .667           4           4
#   0.2      4  5   1      5/6                         5           5
#   0.1      4  6   1      1                           6           6
SCORES = np.array([0.1, 0.2, 0.3, 0.4, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
Y = np.array([0, 0, 0, 1, 0, 0, 1, 0, 1, 1])


def test_f1_picks_hand_computed_threshold() -> None:
    c = choose_threshold(SCORES, Y, "f1")
    assert c.threshold == 0.6
    assert (c.precision, c.recall, c.f1, c.fpr, c.n_flagged) == (0.75, 0.75, 0.75, 1 / 6, 4)
    assert c.feasible and c.expected_cost is None and c.goal == "f1"


def test_f1_ties_go_to_higher_threshold() -> None:
    # P = 2.  t=0.9: tp1 fp0 -> F1 2/3;  0.8: tp1 fp1 -> 1/2;  0.7: tp1 fp2 -> 2/5;
    #         t=0.6: tp2 fp2 -> 4/6 = 2/3 (tie);  0.1: tp2 fp3 -> 4/7.  Take 0.9, fewer alarms.
    c = choose_threshold([0.9, 0.8, 0.7, 0.6, 0.1], [1, 0, 0, 1, 0], "f1")
    assert c.threshold == 0.9
    assert c.f1 == 2 / 3 and c.n_flagged == 1


@pytest.mark.parametrize(
    ("goal", "threshold", "n_flagged", "fpr"),
    [
        ("fpr:0", 0.8, 2, 0.0),  # lowest t with no false alarm
        ("fpr:0.2", 0.6, 4, 1 / 6),
        ("fpr:0.4", 0.5, 5, 2 / 6),
        # fpr 3/6 = 0.5 is allowed (<=); t = 0.4 flags both tied 0.4 rows, the normal one included.
        ("fpr:0.5", 0.4, 7, 0.5),
        ("fpr:1", 0.1, 10, 1.0),
    ],
)
def test_fpr_goal_lowest_threshold_within_budget(
    goal: str, threshold: float, n_flagged: int, fpr: float
) -> None:
    c = choose_threshold(SCORES, Y, goal)
    assert (c.threshold, c.n_flagged, c.fpr, c.feasible) == (threshold, n_flagged, fpr, True)


@pytest.mark.parametrize(
    ("goal", "threshold", "recall"),
    [
        ("recall:0.25", 0.9, 0.25),
        ("recall:0.5", 0.8, 0.5),  # 0.8 and 0.7 both reach .5: take the higher one
        ("recall:0.75", 0.6, 0.75),
        ("recall:0.8", 0.4, 1.0),  # the tie group at 0.4 is flagged as a whole
        ("recall:1", 0.4, 1.0),
    ],
)
def test_recall_goal_highest_threshold_reaching_target(goal: str, threshold: float, recall: float) -> None:
    c = choose_threshold(SCORES, Y, goal)
    assert (c.threshold, c.recall, c.feasible) == (threshold, recall, True)


def test_cost_goal_uses_dev_prevalence_by_default() -> None:
    # cost per row = (fp + 20 fn) / 10; minimum 3/10 at t = 0.4 (table above).
    c = choose_threshold(SCORES, Y, "cost:1,20")
    assert c.threshold == 0.4
    assert c.expected_cost == pytest.approx(0.3)
    assert c.goal == "cost:1,20"


def test_cost_ties_go_to_higher_threshold() -> None:
    # fp + fn is 2 at both t = 0.8 and t = 0.6: the higher threshold raises fewer alarms.
    c = choose_threshold(SCORES, Y, CostGoal(false_alarm=1, miss=1))
    assert c.threshold == 0.8
    assert c.expected_cost == pytest.approx(0.2)


def test_cost_production_anomaly_rate_changes_the_answer() -> None:
    # p = 0.001: cost = (fp/6)*0.999 + 20*(fn/4)*0.001
    #   >0.9: 0.02   0.9: 0.015   0.8: 0.01   0.7: 0.1665+0.01   ...   0.4: 0.4995
    # so with rare anomalies in production the best is t = 0.8, not 0.4 as with the dev rate.
    c = choose_threshold(SCORES, Y, "cost:1,20,0.001")
    assert c.threshold == 0.8
    assert c.expected_cost == pytest.approx(0.01)
    assert c.goal == "cost:1,20,0.001"
    # With p equal to the dev prevalence the re-weighted formula agrees with the default.
    same = choose_threshold(SCORES, Y, CostGoal(1, 20, anomaly_rate=0.4))
    assert same.threshold == 0.4 and same.expected_cost == pytest.approx(0.3)


def test_cost_can_choose_to_flag_nothing_with_json_safe_threshold() -> None:
    # Top row is normal. cost:1,1,0.001: flag nothing costs 1*0.001 = 0.001; t = 0.9 costs
    # 0.5*0.999 + 0.001, every other threshold costs more than that.
    c = choose_threshold([0.1, 0.2, 0.3, 0.9], [1, 0, 1, 0], "cost:1,1,0.001")
    assert c.threshold == np.nextafter(0.9, np.inf) and c.threshold > 0.9
    assert c.n_flagged == 0 and c.feasible
    assert c.precision == 0.0 and c.recall == 0.0
    json.dumps(c.to_dict(), allow_nan=False)


def test_infeasible_fpr_returns_flag_nothing_threshold() -> None:
    # The highest score (0.9) is normal, so any threshold flagging something has fpr >= 1/2.
    scores, y = [0.1, 0.2, 0.3, 0.9], [1, 0, 1, 0]
    c = choose_threshold(scores, y, "fpr:0.1")
    assert not c.feasible
    assert c.threshold == np.nextafter(0.9, np.inf)
    assert c.n_flagged == 0 and c.fpr == 0.0
    assert "flags nothing" in c.note
    d = c.to_dict()
    assert d["feasible"] is False
    json.dumps(d, allow_nan=False)
    # fpr <= 0.5 allows one false alarm: the lowest such threshold is 0.3 (tp 1, fp 1).
    ok = choose_threshold(scores, y, "fpr:0.5")
    assert (ok.threshold, ok.feasible, ok.recall) == (0.3, True, 0.5)


def test_fpr_goal_works_without_labelled_anomalies() -> None:
    c = choose_threshold([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0], "fpr:0.25")
    # Without dev anomalies precision, recall and F1 are undefined: None, not 0.
    assert (c.threshold, c.fpr, c.recall, c.precision, c.f1) == (0.4, 0.25, None, None, None)


def test_fpr_note_when_dev_normals_too_few() -> None:
    c = choose_threshold(SCORES, Y, "fpr:0.01")  # 6 normals: 0.01 can only mean 0 false alarms
    assert c.threshold == 0.8 and c.feasible
    assert "6 dev normals" in c.note


def test_threshold_choice_is_frozen_and_serialisable() -> None:
    c = choose_threshold(SCORES, Y, "recall:0.75")
    assert isinstance(c, ThresholdChoice)
    with pytest.raises(AttributeError):
        c.threshold = 1.0  # type: ignore[misc]
    d = c.to_dict()
    assert set(d) >= {
        "threshold",
        "goal",
        "precision",
        "recall",
        "f1",
        "fpr",
        "expected_cost",
        "n_flagged",
        "feasible",
    }
    assert json.loads(json.dumps(d)) == d


# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "goal", "canonical"),
    [
        ("f1", F1Goal(), "f1"),
        (" F1 ", F1Goal(), "f1"),
        ("fpr:0.01", FPRGoal(max_fpr=0.01), "fpr:0.01"),
        ("fpr:1%", FPRGoal(max_fpr=0.01), "fpr:0.01"),
        ("recall:0.95", RecallGoal(min_recall=0.95), "recall:0.95"),
        ("cost:1,20", CostGoal(false_alarm=1, miss=20, anomaly_rate=None), "cost:1,20"),
        ("cost: 1, 20, 0.001", CostGoal(1, 20, 0.001), "cost:1,20,0.001"),
        ("cost:0.5,20", CostGoal(0.5, 20), "cost:0.5,20"),
    ],
)
def test_parse_goal(text: str, goal: object, canonical: str) -> None:
    parsed = parse_goal(text)
    assert parsed == goal
    assert str(parsed) == canonical
    assert parse_goal(str(parsed)) == parsed
    assert parse_goal(parsed) is parsed


@pytest.mark.parametrize(
    "text",
    [
        "f2",
        "",
        "fpr",
        "fpr:",
        "fpr:abc",
        "fpr:0.1,0.2,0.3",
        "recall",
        "cost:1",
        "cost:1,2,3,4",
        "cost:a,b",
        "auc:0.9",
    ],
)
def test_parse_goal_unknown_forms(text: str) -> None:
    with pytest.raises(DataError, match="unknown threshold goal.*f1.*fpr:0.01.*recall:0.95.*cost:1,20"):
        parse_goal(text)


@pytest.mark.parametrize(
    "text",
    [
        "fpr:1.5",
        "fpr:-0.1",
        "recall:0",
        "recall:1.1",
        "cost:0,0",
        "cost:-1,2",
        "cost:1,2,1.5",
        "cost:1,2,0",
        "fpr:nan",
    ],
)
def test_parse_goal_out_of_range(text: str) -> None:
    with pytest.raises(DataError):
        parse_goal(text)


def test_goal_must_be_string() -> None:
    with pytest.raises(DataError, match="string or Goal"):
        choose_threshold(SCORES, Y, 0.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize("goal", ["f1", "recall:0.9", "cost:1,20"])
def test_goals_needing_anomalies_reject_dev_set_without_them(goal: str) -> None:
    with pytest.raises(LabelError, match="needs labelled anomalies"):
        choose_threshold([0.1, 0.2, 0.3], [0, 0, 0], goal)


@pytest.mark.parametrize("goal", ["f1", "fpr:0.1", "cost:1,20"])
def test_dev_set_without_normals_rejected(goal: str) -> None:
    with pytest.raises(LabelError, match="needs labelled normal rows"):
        choose_threshold([0.1, 0.2, 0.3], [1, 1, 1], goal)


@pytest.mark.parametrize(
    "y",
    [
        ["normal", "fraud", "normal"],
        np.array(["0", "1", "0"]),
        [0, 2, 1],
        [0.0, 0.5, 1.0],
        [0, np.nan, 1],
        [0, None, 1],
    ],
)
def test_bad_labels(y: list) -> None:
    with pytest.raises(LabelError):
        choose_threshold([0.1, 0.2, 0.3], y, "f1")


def test_labels_as_bool_and_float_accepted() -> None:
    a = choose_threshold(SCORES, Y.astype(bool), "f1")
    b = choose_threshold(SCORES, Y.astype(float), "f1")
    assert a == b == choose_threshold(SCORES, Y, "f1")


def test_length_mismatch_and_bad_scores() -> None:
    with pytest.raises(DataError, match="3 labels but scores has 2"):
        choose_threshold([0.1, 0.2], [0, 1, 0], "f1")
    with pytest.raises(DataError, match="NaN"):
        choose_threshold([0.1, np.nan, 0.3], [0, 1, 0], "f1")
    with pytest.raises(DataError, match="NaN or infinite"):
        choose_threshold([0.1, np.inf, 0.3], [0, 1, 0], "f1")
    with pytest.raises(DataError, match="empty"):
        choose_threshold([], [], "fpr:0.1")


# ---------------------------------------------------------------------------- brute-force oracle


def _oracle(scores: np.ndarray, y: np.ndarray, goal: str) -> float:
    """Naive loop over every candidate threshold, exact arithmetic, ties to the higher threshold."""
    candidates = sorted(set(scores.tolist()), reverse=True)
    candidates.insert(0, float(np.nextafter(scores.max(), np.inf)))
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    rows = []
    for t in candidates:
        tp = fp = 0
        for s, label in zip(scores.tolist(), y.tolist()):
            if s >= t:
                tp += label
                fp += 1 - label
        rows.append((t, tp, fp))
    kind, _, arg = goal.partition(":")
    if kind == "f1":
        return max(rows, key=lambda r: (Fraction(2 * r[1], r[1] + r[2] + n_pos), r[0]))[0]
    if kind == "fpr":
        target = float(arg)
        return min(r[0] for r in rows if r[2] / n_neg <= target)
    if kind == "recall":
        target = float(arg)
        return max(r[0] for r in rows if r[1] / n_pos >= target)
    costs = [float(v) for v in arg.split(",")]
    if len(costs) == 2:
        # Exact with the dev prevalence: cost per row = (c_fp fp + c_fn fn) / n.
        c_fp, c_fn = Fraction(costs[0]), Fraction(costs[1])

        def cost(r: tuple[float, int, int]) -> object:
            return (c_fp * r[2] + c_fn * (n_pos - r[1])) / len(y)

    else:
        # With a float rate, evaluate the same float formula as the implementation so rounding
        # cannot make the two disagree on near-ties.
        c_fp, c_fn, p = costs

        def cost(r: tuple[float, int, int]) -> object:
            return c_fp * (r[2] / n_neg) * (1 - p) + c_fn * ((n_pos - r[1]) / n_pos) * p

    best = min(cost(r) for r in rows)
    return max(r[0] for r in rows if cost(r) == best)


ORACLE_GOALS = [
    "f1",
    "fpr:0",
    "fpr:0.05",
    "fpr:0.2",
    "fpr:0.5",
    "recall:0.3",
    "recall:0.8",
    "recall:1",
    "cost:1,1",
    "cost:1,5",
    "cost:1,20",
    "cost:3,2",
    "cost:1,20,0.01",
    "cost:1,100,0.2",
]


@pytest.mark.parametrize("seed", range(8))
def test_matches_brute_force_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 80))
    y = (rng.random(n) < rng.uniform(0.1, 0.5)).astype(int)
    y[:2] = [0, 1]  # both classes present
    # Coarse scores so that ties, including mixed-label ties, are common.
    levels = int(rng.integers(3, 30))
    scores = np.round(rng.integers(0, levels, n) / levels + 0.3 * y * rng.random(n), 2)
    for goal in ORACLE_GOALS:
        got = choose_threshold(scores, y, goal)
        assert got.threshold == _oracle(scores, y, goal), goal
        flagged = scores >= got.threshold
        assert got.n_flagged == int(flagged.sum())
        tp = int((flagged & (y == 1)).sum())
        assert got.recall == tp / int(y.sum())


def test_fast_on_a_million_rows() -> None:
    rng = np.random.default_rng(0)
    n = 1_000_000
    y = (rng.random(n) < 0.01).astype(np.int8)
    scores = rng.normal(size=n) + 2 * y
    start = time.perf_counter()
    for goal in ("f1", "fpr:0.01", "recall:0.9", "cost:1,20,0.001"):
        c = choose_threshold(scores, y, goal)
        assert c.feasible
    assert time.perf_counter() - start < 8.0
    c = choose_threshold(scores, y, "fpr:0.01")
    assert c.fpr <= 0.01
    # One more flagged normal would break the budget: the next lower score is a normal row
    # whose inclusion pushes fpr above 0.01, or an anomaly (then the threshold could go lower).
    n_neg = int((y == 0).sum())
    below = scores[scores < c.threshold]
    next_score = below.max()
    fp_next = int(((scores >= next_score) & (y == 0)).sum())
    assert fp_next / n_neg > 0.01


# ---------------------------------------------------------------------------- contamination


def test_contamination_threshold_flags_about_that_fraction() -> None:
    scores = np.random.default_rng(1).permutation(np.arange(100.0))
    t = contamination_threshold(scores, 0.1)
    assert t == 90.0
    assert int((scores >= t).sum()) == 10
    big = np.random.default_rng(2).normal(size=10_000)
    t = contamination_threshold(big, 0.05)
    assert int((big >= t).sum()) == 500
    assert contamination_threshold(big, 0.5) == np.quantile(big, 0.5, method="higher")


def test_contamination_threshold_does_not_flag_a_tie_wholesale() -> None:
    # 90 tied scores at the 90% quantile: flagging them all (100%) is further from 10% than none.
    scores = np.r_[np.full(90, 1.0), np.arange(2.0, 12.0)]
    t = contamination_threshold(scores, 0.1)
    assert t == 2.0 and int((scores >= t).sum()) == 10
    tied_top = np.r_[np.zeros(80), np.ones(20)]
    assert contamination_threshold(tied_top, 0.1) == 1.0  # 20% and 0% are equally far from 10%: flagged
    identical = np.full(50, 3.0)
    t = contamination_threshold(identical, 0.1)
    assert t > 3.0 and not (identical >= t).any()  # identical rows are all normal
    small_tie = np.r_[np.arange(89.0), [89.0, 89.0], np.arange(90.0, 99.0)]  # two rows tied at the quantile
    assert contamination_threshold(small_tie, 0.1) == 89.0  # 11 flagged is as near 10% as 9: kept together


def test_detectors_do_not_flag_every_duplicate_row() -> None:
    import pandas as pd

    import oddkit

    rng = np.random.default_rng(0)
    table = pd.DataFrame({c: rng.choice(["a", "b", "c"], 300) for c in "pqr"})
    for detector in (oddkit.KNNDetector(), oddkit.default_detector(random_state=0)):
        share = detector.fit(table).labels_.mean()
        assert 0.0 < share <= 0.15, (type(detector).__name__, share)
    identical = np.full((60, 3), 2.0)
    for detector in (oddkit.GaussianDetector(), oddkit.KNNDetector(), oddkit.IsolationForestDetector(random_state=0)):
        detector.fit(identical)
        assert detector.labels_.sum() == 0 and detector.predict(identical[:1])[0] == 0
        if not isinstance(detector, oddkit.IsolationForestDetector):  # no split isolates anything here
            assert detector.predict(identical[:1] + 5.0)[0] == 1


@pytest.mark.parametrize("contamination", [0, -0.1, 0.6, 1.0, float("nan"), "0.1", True])
def test_contamination_out_of_range(contamination: object) -> None:
    with pytest.raises(DataError, match="contamination"):
        contamination_threshold([0.1, 0.2, 0.3], contamination)  # type: ignore[arg-type]


def test_contamination_rejects_nan_scores() -> None:
    with pytest.raises(DataError, match="NaN"):
        contamination_threshold([0.1, np.nan, 0.3], 0.1)


# --- Per-row miss costs: a missed anomaly costs its own amount -------------------------------------------------
#   20 anomalies: 10 cheap ones (amount 1) score 0.9, 10 dear ones (amount 1,000) score 0.5, among 100 normals of
#   which 20 score 0.55 and 80 score 0.1. With "cost:5,1" a false alarm costs 5.
#   t       fp  missed rows  missed amount  cost (count)   cost (amount)
#   0.9      0  10           10,000         10             10,000
#   0.5     20   0                0         100            100          <- only worth it when priced by amount


def _amount_dev_set() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.r_[np.ones(20, int), np.zeros(100, int)]
    scores = np.r_[np.full(10, 0.9), np.full(10, 0.5), np.full(20, 0.55), np.full(80, 0.1)]
    amount = np.r_[np.ones(10), np.full(10, 1000.0), np.full(100, 7.0)]  # normals' amounts are never used
    return y, scores, amount


def test_miss_costs_move_the_threshold_to_catch_the_dear_anomalies() -> None:
    y, scores, amount = _amount_dev_set()
    by_count = choose_threshold(scores, y, "cost:5,1")
    by_amount = choose_threshold(scores, y, "cost:5,1", miss_costs=amount)
    assert by_count.threshold == 0.9 and by_count.recall == 0.5
    assert by_amount.threshold == 0.5 and by_amount.recall == 1.0
    assert by_count.expected_cost == pytest.approx(10 / 120)
    assert by_amount.expected_cost == pytest.approx(20 * 5 / 120)
    assert by_amount.dev_expected_cost == pytest.approx(by_amount.expected_cost)


def test_miss_costs_of_one_change_nothing() -> None:
    y, scores, _ = _amount_dev_set()
    for goal in ("cost:5,1", "cost:1,20,0.01"):
        plain = choose_threshold(scores, y, goal)
        ones = choose_threshold(scores, y, goal, miss_costs=np.ones(y.size))
        assert ones.threshold == plain.threshold
        assert ones.expected_cost == pytest.approx(plain.expected_cost)
        assert ones.production_expected_cost == pytest.approx(plain.production_expected_cost)


def test_miss_costs_at_a_stated_prevalence_use_the_missed_amount_per_anomaly() -> None:
    y, scores, amount = _amount_dev_set()
    p = 0.0017
    c = choose_threshold(scores, y, f"cost:5,1,{p}", miss_costs=amount)
    # At 0.9: 10,000 missed over 20 anomalies = 500 per anomaly -> 500 * p = 0.85 per row;
    # at 0.5: 20/100 false alarms x 5 x (1 - p) = 0.998 per row. So the dear frauds are let go.
    assert c.threshold == 0.9
    assert c.expected_cost == pytest.approx(500 * p)
    assert c.production_expected_cost == pytest.approx(c.expected_cost)
    # Ten times dearer frauds tip the balance back.
    c10 = choose_threshold(scores, y, f"cost:5,10,{p}", miss_costs=amount)
    assert c10.threshold == 0.5
    assert c10.production_expected_cost == pytest.approx(5 * 0.2 * (1 - p))


def test_miss_costs_are_checked() -> None:
    y, scores, amount = _amount_dev_set()
    with pytest.raises(DataError, match="needs a cost goal"):
        choose_threshold(scores, y, "f1", miss_costs=amount)
    with pytest.raises(DataError, match="one miss cost per row"):
        choose_threshold(scores, y, "cost:5,1", miss_costs=amount[:-1])
    with pytest.raises(DataError, match=r"must be >= 0, got -3 at row 4"):
        choose_threshold(scores, y, "cost:5,1", miss_costs=np.r_[amount[:4], -3.0, amount[5:]])
    with pytest.raises(DataError, match="NaN"):
        choose_threshold(scores, y, "cost:5,1", miss_costs=np.r_[np.nan, amount[1:]])


def test_cli_threshold_and_evaluate_price_misses_by_a_column(tmp_path, monkeypatch, capsys) -> None:
    import pandas as pd

    from conftest import run_cli

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y, scores, amount = _amount_dev_set()
    # Dev rows whose distance from the training centre follows the hand-made scores' order.
    radius = np.interp(scores, [0.1, 0.9], [0.5, 6.0])
    dev = pd.DataFrame({"a": radius, "b": np.zeros_like(radius), "Amount": amount, "y": y})
    train.to_csv(tmp_path / "train.csv", index=False)
    dev.to_csv(tmp_path / "dev.csv", index=False)
    model = tmp_path / "model"
    assert run_cli(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--detector", "gaussian", "--out", model)[0] == 0
    thresholds = {}
    for name, extra in (("count", []), ("amount", ["--miss-cost-col", "Amount"])):
        code, out, err = run_cli(monkeypatch, capsys, "threshold", model, tmp_path / "dev.csv", "--goal", "cost:5,1",
                                 "--id-col", "Amount", "--out", tmp_path / name, *extra)
        assert code == 0, err
        from oddkit import load

        thresholds[name] = load(tmp_path / name).threshold_
    assert thresholds["amount"] < thresholds["count"]  # moved down to catch the dear anomalies
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", tmp_path / "count", tmp_path / "dev.csv", "--id-col",
                             "Amount", "--miss-cost-col", "Amount", "--out", tmp_path / "m.json",
                             "--plots", tmp_path / "plots")
    assert code == 0, err
    numbers = json.loads((tmp_path / "m.json").read_text())
    assert numbers["miss_costs"]["missed"] == pytest.approx(10_000)
    assert numbers["data"]["expected_cost"] == pytest.approx(10_000 / 120)
