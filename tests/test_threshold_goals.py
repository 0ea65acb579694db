"""The precision goal, the miss-cost column a cost-goal threshold remembers, and threshold provenance:
choose_threshold against brute force, set_threshold, save/load (hostile folders included) and the
'threshold', 'evaluate' and 'info' commands on small synthetic tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import oddkit
from conftest import run_cli as run
from oddkit import GaussianDetector
from oddkit.exceptions import DataError, ModelFileError
from oddkit.metrics import at_prevalence
from oddkit.persist import seal
from oddkit.threshold import (
    PrecisionGoal,
    ThresholdChoice,
    ThresholdProvenance,
    choose_threshold,
    miss_cost_column,
    parse_goal,
    prevalence_and_costs_from_goal,
)


def _dev(seed: int, n: int = 400, share: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping scores (so that precision and recall trade off) with ties."""
    rng = np.random.default_rng(seed)
    k = int(n * share)
    y = np.r_[np.zeros(n - k, dtype=int), np.ones(k, dtype=int)]
    scores = np.round(np.r_[rng.normal(0, 1, n - k), rng.normal(1.5, 1, k)], 1)
    return scores, y


def _brute_force(scores, y, min_precision, rate=None):
    """Every candidate threshold by hand: (recall, -flags, threshold) of the best qualifying one, and
    the best precision reachable."""
    best, top = None, -1.0
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    for t in np.unique(scores):
        flagged = scores >= t
        tp, fp = int((flagged & (y == 1)).sum()), int((flagged & (y == 0)).sum())
        if rate is None:
            precision = tp / (tp + fp)
        else:
            precision = at_prevalence(tp / n_pos, fp / n_neg, rate)["precision"]
        top = max(top, precision)
        if precision >= min_precision:
            key = (tp, -(tp + fp), t)
            best = key if best is None or key > best else best
    return best, top


# ---------------------------------------------------------------------------- precision goal


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("target", [0.6, 0.75, 0.9])
def test_precision_goal_is_the_highest_recall_threshold_meeting_it(seed, target) -> None:
    scores, y = _dev(seed)
    best, _ = _brute_force(scores, y, target)
    if best is None:
        with pytest.raises(DataError):
            choose_threshold(scores, y, f"precision:{target}")
        return
    c = choose_threshold(scores, y, f"precision:{target}")
    flagged = scores >= c.threshold
    tp, fp = int((flagged & (y == 1)).sum()), int((flagged & (y == 0)).sum())
    assert tp / (tp + fp) >= target and c.precision == tp / (tp + fp)
    assert (tp, -(tp + fp), c.threshold) == best  # most recall; of those, fewest flags
    assert c.feasible and c.goal == f"precision:{target}"


@pytest.mark.parametrize("seed", range(3))
def test_precision_goal_at_a_production_rate_uses_bayes_rule(seed) -> None:
    scores, y = _dev(seed)
    rate = 0.05
    best, _ = _brute_force(scores, y, 0.5, rate)
    c = choose_threshold(scores, y, "precision:0.5", prevalence=rate)
    assert c.goal == "precision:0.5,0.05"  # the rate travels with the goal, and so with a saved model
    assert c.production_anomaly_rate == rate and c.production_precision >= 0.5
    assert (round(c.recall * y.sum()), -c.n_flagged, c.threshold) == best
    same = choose_threshold(scores, y, "precision:0.5,0.05")
    assert same == c
    # The dev share (20%) flatters precision: the same target at the dev share takes more recall.
    assert choose_threshold(scores, y, "precision:0.5").recall >= c.recall


def test_unreachable_precision_raises_naming_the_best_reachable() -> None:
    scores, y = _dev(0)
    scores, y = np.r_[scores, 10.0], np.r_[y, 0]  # the highest score is a normal row
    _, top = _brute_force(scores, y, 2.0, 0.001)
    with pytest.raises(DataError, match=r"no threshold reaches precision 0\.999 on the dev data at the anomaly rate "
                                        r"0\.001: the best reachable is") as info:
        choose_threshold(scores, y, "precision:0.999,0.001")
    assert f"best reachable is {top:.4g} " in str(info.value) and "\n" not in str(info.value)
    # The highest score is a normal row: precision 0, 1/2, 2/3 as the threshold drops; never 1.
    with pytest.raises(DataError, match=r"best reachable is 0\.6667 \(recall 1\)"):
        choose_threshold([0.1, 0.5, 0.9], [1, 1, 0], "precision:1")


@pytest.mark.parametrize("text", ["precision:0", "precision:1.5", "precision:nan", "precision:abc", "precision:",
                                  "precision:0.9,0", "precision:0.9,1", "precision:0.9,0.1,3", "precision:-0.1"])
def test_bad_precision_goal_raises_data_error(text) -> None:
    scores, y = _dev(0)
    with pytest.raises(DataError) as info:
        choose_threshold(scores, y, text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", [0, 1.5, math.nan, math.inf, "0.9", True, None])
def test_bad_precision_goal_object_raises_data_error(value) -> None:
    with pytest.raises(DataError):
        PrecisionGoal(value)


def test_precision_goal_parsing_and_rates() -> None:
    assert parse_goal(" Precision: 90% ") == PrecisionGoal(0.9)
    assert str(parse_goal("precision:0.9,0.0017")) == "precision:0.9,0.0017"
    assert parse_goal(str(PrecisionGoal(0.123456789, 0.001))) == PrecisionGoal(0.123456789, 0.001)
    assert prevalence_and_costs_from_goal("precision:0.9,0.0017") == (0.0017, None)
    assert prevalence_and_costs_from_goal("precision:0.9") == (None, None)
    scores, y = _dev(1)
    with pytest.raises(DataError, match="states the production anomaly rate 0.01 but prevalence is 0.02"):
        choose_threshold(scores, y, "precision:0.5,0.01", prevalence=0.02)


def test_precision_goal_notes_a_coarse_false_positive_rate() -> None:
    # 20 normals, all below the anomalies: FPR 0, but one more false alarm would sink precision at 0.1%.
    scores = np.r_[np.linspace(0, 1, 20), np.linspace(2, 3, 10)]
    y = np.r_[np.zeros(20, dtype=int), np.ones(10, dtype=int)]
    c = choose_threshold(scores, y, "precision:0.9", prevalence=0.001)
    assert c.recall == 1.0 and c.fpr == 0.0 and "20 dev normals" in c.note


def test_precision_goal_survives_save_and_load(tmp_path) -> None:
    rng = np.random.default_rng(0)
    detector = GaussianDetector().fit(rng.normal(size=(200, 3)))
    X_dev = np.r_[rng.normal(size=(160, 3)), rng.normal(1.5, 1, size=(40, 3))]
    y_dev = np.r_[np.zeros(160, dtype=int), np.ones(40, dtype=int)]
    choice = choose_threshold(detector.decision_function(X_dev), y_dev, "precision:0.8,0.05", data_name="dev.csv")
    detector.set_threshold(choice).save(tmp_path / "m")
    loaded = oddkit.load(tmp_path / "m")
    assert loaded.threshold_goal_ == "precision:0.8,0.05" and loaded.threshold_ == choice.threshold
    assert loaded.threshold_provenance_ == choice.provenance()
    assert loaded.threshold_provenance_.data_name == "dev.csv"
    assert (loaded.threshold_provenance_.n_rows, loaded.threshold_provenance_.n_anomalies) == (200, 40)


# ---------------------------------------------------------------------------- undefined rates


def test_rates_without_dev_anomalies_are_none_not_zero() -> None:
    c = choose_threshold([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0], "fpr:0.25")
    assert (c.precision, c.recall, c.f1, c.fpr) == (None, None, None, 0.25)
    d = json.loads(json.dumps(c.to_dict(), allow_nan=False))
    assert d["precision"] is None and d["recall"] is None and d["f1"] is None
    assert str(c.provenance()).endswith("precision n/a, recall n/a, false-positive rate 0.25")


# ---------------------------------------------------------------------------- provenance and miss-cost column


def test_choice_records_provenance_and_the_miss_cost_column() -> None:
    scores, y = _dev(2)
    amounts = pd.Series(np.linspace(1, 100, y.size), name="Amount")
    c = choose_threshold(scores, y, "cost:5,1", miss_costs=amounts, data_name="dev.parquet")
    assert c.miss_cost_col == "Amount" and c.n_rows == y.size and c.n_anomalies == int(y.sum())
    p = c.provenance()
    assert p == ThresholdProvenance("dev.parquet", y.size, int(y.sum()), c.precision, c.recall, c.fpr)
    assert choose_threshold(scores, y, "cost:5,1", miss_costs=amounts.to_numpy()).miss_cost_col is None
    named = choose_threshold(scores, y, "cost:5,1", miss_costs=amounts.to_numpy(), miss_cost_col="Fee")
    assert named.miss_cost_col == "Fee"
    with pytest.raises(DataError, match="but none were given"):
        choose_threshold(scores, y, "cost:5,1", miss_cost_col="Amount")
    with pytest.raises(DataError, match="data_name"):
        choose_threshold(scores, y, "f1", data_name="two\nlines")
    # A choice built by hand (no dev counts) has no provenance.
    assert ThresholdChoice(0.5, "f1", 1.0, 1.0, 1.0, 0.0, None, 1, True).provenance() is None


def test_set_threshold_keeps_or_clears_the_record() -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(120, 2)), columns=["a", "b"])
    detector = GaussianDetector().fit(X)
    assert detector.threshold_provenance_ is None and detector.threshold_miss_cost_col_ is None
    scores, y = detector.decision_function(X), (np.arange(120) < 12).astype(int)
    choice = choose_threshold(scores, y, "cost:5,1", miss_costs=pd.Series(np.ones(120), name="Amount"))
    detector.set_threshold(choice)
    assert detector.threshold_miss_cost_col_ == "Amount" and detector.threshold_provenance_ == choice.provenance()
    assert miss_cost_column(detector, columns=["a", "Amount"]) == "Amount"
    assert miss_cost_column(detector, given="Fee", columns=["a"]) == "Fee"
    with pytest.raises(DataError, match="'Amount', which test.csv lacks"):
        miss_cost_column(detector, columns=["a", "b"], data_name="test.csv")
    detector.set_threshold(1.0)  # by hand: nothing to record
    assert detector.threshold_provenance_ is None and detector.threshold_miss_cost_col_ is None
    assert miss_cost_column(detector, columns=["a"]) is None
    detector.set_threshold(choice, goal="manual")  # another goal: the column no longer prices it
    assert detector.threshold_miss_cost_col_ is None and detector.threshold_provenance_ is not None
    detector.set_threshold(choice)
    detector.fit(X)  # refitting sets the threshold from contamination again
    assert detector.threshold_provenance_ is None and detector.threshold_miss_cost_col_ is None


@pytest.mark.parametrize(("record", "message"), [
    ({"data_name": "d", "n_rows": 10, "n_anomalies": 11, "precision": 0.5, "recall": 0.5, "fpr": 0.1}, "11 anomalies"),
    ({"data_name": "d", "n_rows": 0, "n_anomalies": 0, "precision": 0.5, "recall": 0.5, "fpr": 0.1}, "dev rows"),
    ({"data_name": "d", "n_rows": True, "n_anomalies": 0, "precision": 0.5, "recall": 0.5, "fpr": 0.1}, "dev rows"),
    ({"data_name": "d", "n_rows": 10, "n_anomalies": 1, "precision": 1.5, "recall": 0.5, "fpr": 0.1}, "precision"),
    ({"data_name": "d", "n_rows": 10, "n_anomalies": 1, "precision": 0.5, "recall": "x", "fpr": 0.1}, "recall"),
    ({"data_name": 7, "n_rows": 10, "n_anomalies": 1, "precision": 0.5, "recall": 0.5, "fpr": 0.1}, "name"),
    ({"data_name": "d", "n_rows": 10}, "exactly the fields"),
    ([1, 2], "exactly the fields"),
])
def test_provenance_record_is_validated(record, message) -> None:
    with pytest.raises(DataError, match=message):
        ThresholdProvenance.from_dict(record)


# ---------------------------------------------------------------------------- saved folders


@pytest.fixture
def tuned(tmp_path):
    """A Gaussian whose cost-goal threshold was chosen with per-row miss costs from column Amount, saved."""
    rng = np.random.default_rng(3)
    detector = GaussianDetector().fit(pd.DataFrame(rng.normal(size=(150, 2)), columns=["a", "b"]))
    scores, y = _dev(3, n=150)
    choice = choose_threshold(scores, y, "cost:5,1,0.01", miss_costs=pd.Series(np.full(150, 3.0), name="Amount"),
                              data_name="dev.csv")
    detector.set_threshold(choice).save(tmp_path / "m")
    return tmp_path / "m", choice


def test_round_trip_keeps_the_column_and_the_provenance(tuned) -> None:
    folder, choice = tuned
    loaded = oddkit.load(folder)
    assert loaded.threshold_goal_ == "cost:5,1,0.01"
    assert loaded.threshold_miss_cost_col_ == "Amount"
    assert loaded.threshold_provenance_ == choice.provenance()


def test_folders_saved_before_the_record_load_with_none(tuned) -> None:
    folder, _ = tuned
    config = json.loads((folder / "config.json").read_text())
    del config["detector"]["threshold_provenance"], config["detector"]["threshold_miss_cost_col"]
    (folder / "config.json").write_text(json.dumps(config))
    seal(folder)
    loaded = oddkit.load(folder)
    assert loaded.threshold_provenance_ is None and loaded.threshold_miss_cost_col_ is None


HOSTILE = {
    "column-not-text": (lambda d: d.update(threshold_miss_cost_col=["Amount"]), "threshold_miss_cost_col"),
    "column-empty": (lambda d: d.update(threshold_miss_cost_col=""), "threshold_miss_cost_col"),
    "column-control-characters": (lambda d: d.update(threshold_miss_cost_col="A\x1b[2Jb"), "printable"),
    "column-huge": (lambda d: d.update(threshold_miss_cost_col="A" * 100_000), "at most 1000"),
    "provenance-list": (lambda d: d.update(threshold_provenance=[1, 2]), "exactly the fields"),
    "provenance-extra-field": (lambda d: d["threshold_provenance"].update(code="x"), "exactly the fields"),
    "provenance-rows-negative": (lambda d: d["threshold_provenance"].update(n_rows=-5), "dev rows"),
    "provenance-rows-400-digits": (lambda d: d["threshold_provenance"].update(n_anomalies=10**400), "anomalies"),
    "provenance-recall-nan": (lambda d: d["threshold_provenance"].update(recall=1.25e-321), "finite"),
    "provenance-fpr-string": (lambda d: d["threshold_provenance"].update(fpr="0.1"), "fpr"),
    "provenance-name-newline": (lambda d: d["threshold_provenance"].update(data_name="a\nb"), "name"),
}


@pytest.mark.parametrize("edit", list(HOSTILE))
def test_edited_threshold_record_is_refused_sealed_or_not(edit, tuned) -> None:
    folder, _ = tuned
    change, message = HOSTILE[edit]
    config = json.loads((folder / "config.json").read_text())
    change(config["detector"])
    (folder / "config.json").write_text(json.dumps(config).replace("1.25e-321", "1e400"))
    with pytest.raises(ModelFileError, match="config.json does not match its checksum"):
        oddkit.load(folder)
    seal(folder)
    with pytest.raises(ModelFileError, match=message) as info:
        oddkit.load(folder)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------- the command line


@pytest.fixture
def tables(tmp_path):
    """A saved Gaussian on columns a, b; dev and test tables with labels y and a non-feature Amount."""
    rng = np.random.default_rng(5)

    def table(n, k, seed):
        r = np.random.default_rng(seed)
        X = np.r_[r.normal(size=(n - k, 2)), r.normal(1.8, 1, size=(k, 2))]
        return pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "Amount": r.uniform(1, 200, n).round(2),
                             "y": np.r_[np.zeros(n - k, dtype=int), np.ones(k, dtype=int)]})

    GaussianDetector().fit(pd.DataFrame(rng.normal(size=(300, 2)), columns=["a", "b"])).save(tmp_path / "m")
    table(300, 60, 6).to_csv(tmp_path / "dev.csv", index=False)
    test = table(300, 30, 7)
    test.to_csv(tmp_path / "test.csv", index=False)
    test.drop(columns="Amount").to_csv(tmp_path / "test_no_amount.csv", index=False)
    test.drop(columns="Amount").assign(y=0).iloc[:100].to_csv(tmp_path / "normals.csv", index=False)
    return tmp_path


def test_cli_precision_goal(monkeypatch, capsys, tables) -> None:
    code, out, err = run(monkeypatch, capsys, "threshold", tables / "m", tables / "dev.csv", "--id-col", "Amount",
                         "--goal", "precision:0.8", "--prevalence", "0.05", "--out", tables / "m2")
    assert code == 0, err
    assert "precision:0.8,0.05" in out
    loaded = oddkit.load(tables / "m2")
    assert loaded.threshold_goal_ == "precision:0.8,0.05"
    assert loaded.threshold_provenance_.data_name == "dev.csv"
    dev = pd.read_csv(tables / "dev.csv")
    dev.loc[0, ["a", "b", "y"]] = [50.0, 50.0, 0]  # the highest score is a normal row: precision 1 is out of reach
    dev.to_csv(tables / "dev_top_normal.csv", index=False)
    code, out, err = run(monkeypatch, capsys, "threshold", tables / "m", tables / "dev_top_normal.csv", "--id-col",
                         "Amount", "--goal", "precision:1", "--out", tables / "m3")
    assert code != 0 and "best reachable is" in err and len(err.strip().splitlines()) == 1
    code, out, err = run(monkeypatch, capsys, "threshold", tables / "m", tables / "dev.csv", "--id-col", "Amount",
                         "--goal", "precision:0", "--out", tables / "m3")
    assert code != 0 and "precision target" in err


def test_cli_cost_goal_table_labels_and_remembered_column(monkeypatch, capsys, tables) -> None:
    code, out, err = run(monkeypatch, capsys, "threshold", tables / "m", tables / "dev.csv", "--goal",
                         "cost:5,1,0.01", "--miss-cost-col", "Amount", "--out", tables / "mc")
    assert code == 0, err
    names = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") == 3]
    assert "production_expected_cost" in names and "dev_expected_cost" in names
    assert "expected_cost" not in names  # the ambiguous copy of one of the two
    assert oddkit.load(tables / "mc").threshold_miss_cost_col_ == "Amount"

    def expected_costs(*extra):
        code, out, err = run(monkeypatch, capsys, "evaluate", tables / "mc", tables / "test.csv", "--out",
                             tables / "metrics.json", "--force", *extra)
        assert code == 0, err
        return json.loads((tables / "metrics.json").read_text()), out

    remembered, out = expected_costs()
    assert "each miss priced by Amount" in " ".join(out.split())
    explicit, _ = expected_costs("--miss-cost-col", "Amount")
    assert remembered == explicit and remembered["miss_costs"] is not None
    assert remembered["production"]["expected_cost"] == explicit["production"]["expected_cost"]
    code, out, err = run(monkeypatch, capsys, "evaluate", tables / "mc", tables / "test_no_amount.csv", "--force")
    assert code != 0 and "'Amount', which test_no_amount.csv lacks" in err and len(err.strip().splitlines()) == 1

    code, out, err = run(monkeypatch, capsys, "info", tables / "mc")
    assert code == 0, err
    flat = " ".join(out.split())
    assert "threshold miss costs" in flat and "column Amount" in flat
    assert "dev.csv: 300 rows, 60 anomalies" in flat.replace("│ │", "")


def test_cli_fpr_goal_on_normals_prints_na(monkeypatch, capsys, tables) -> None:
    code, out, err = run(monkeypatch, capsys, "threshold", tables / "m", tables / "normals.csv", "--goal", "fpr:0.1",
                         "--out", tables / "mf")
    assert code == 0, err
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines()
            if line.count("│") == 3}
    assert rows["precision"] == rows["recall"] == rows["f1"] == "n/a"
    assert oddkit.load(tables / "mf").threshold_provenance_.recall is None
    code, out, err = run(monkeypatch, capsys, "info", tables / "m")
    assert "contamination" in " ".join(out.split())


def test_fpr_goal_with_confidence_holds_the_rate_on_new_normals() -> None:
    # Dev and production normals from one distribution: the plain goal's threshold lets through more than 5%
    # of new normals about half the time; at 95% confidence, at most 5% of the time (less: the counts are
    # whole, so the bound has slack), for some recall.
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    over = {"fpr:0.05": 0, "fpr:0.05,0.95": 0}
    for _ in range(400):
        normals = rng.normal(size=300)
        for goal in over:
            choice = choose_threshold(normals, np.zeros(300, dtype=int), goal)
            over[goal] += norm.sf(choice.threshold) > 0.05
    assert over["fpr:0.05,0.95"] / 400 <= 0.05 < 0.3 < over["fpr:0.05"] / 400
    scores = np.r_[rng.normal(size=400), rng.normal(2.5, 1, size=200)]
    y = np.r_[np.zeros(400, dtype=int), np.ones(200, dtype=int)]
    plain, sure = choose_threshold(scores, y, "fpr:0.05"), choose_threshold(scores, y, "fpr:0.05,0.95")
    assert sure.threshold > plain.threshold and sure.recall < plain.recall and sure.feasible
    # Flagging m dev normals of n, the lowest of them at the threshold: P(Binomial(n, 0.05) <= m - 1) <= 0.05,
    # and one normal more would break it.
    from scipy.stats import binom

    m = round(sure.fpr * 400)
    assert np.min(scores[y == 0][scores[y == 0] >= sure.threshold]) == sure.threshold
    assert binom.cdf(m - 1, 400, 0.05) <= 0.05 < binom.cdf(m, 400, 0.05)
    assert f"{m} of 400 dev normals flagged" in sure.note


def test_fpr_goal_with_confidence_parses_names_and_says_how_many_normals_it_needs(tmp_path) -> None:
    assert str(parse_goal("FPR: 5%, 95%")) == "fpr:0.05,0.95" == str(parse_goal("fpr:0.05,0.95"))
    assert parse_goal("fpr:0.05").confidence is None
    for bad in ("fpr:0.05,1", "fpr:0.05,0", "fpr:0.05,1.5", "fpr:0.05,0.9,0.1"):
        with pytest.raises(DataError):
            parse_goal(bad)
    few = choose_threshold(np.arange(40.0), np.r_[np.zeros(30, dtype=int), np.ones(10, dtype=int)], "fpr:0.05,0.95")
    assert not few.feasible and few.n_flagged == 0
    assert "needs at least 59 dev normals, there are 30" in few.note
    rng = np.random.default_rng(1)
    detector = GaussianDetector().fit(rng.normal(size=(200, 2)))
    dev = np.r_[rng.normal(size=(300, 2)), rng.normal(3, 1, size=(50, 2))]
    detector.set_threshold(choose_threshold(detector.decision_function(dev), np.r_[np.zeros(300), np.ones(50)],
                                            "fpr:0.02,0.9"))
    detector.save(tmp_path / "m")
    assert oddkit.load(tmp_path / "m").threshold_goal_ == "fpr:0.02,0.9"


def test_cli_fpr_goal_with_confidence_notes_the_bound_and_warns_when_out_of_reach(monkeypatch, capsys, tables):
    code, out, err = run(monkeypatch, capsys, "threshold", tables / "m", tables / "dev.csv", "--id-col", "Amount",
                         "--goal", "fpr:0.05,0.95", "--out", tables / "mc")
    assert code == 0, err
    assert err.startswith("note: ") and "with 0.95 confidence (one-sided Clopper-Pearson bound)" in err
    assert oddkit.load(tables / "mc").threshold_goal_ == "fpr:0.05,0.95"
    # Scoring says what the threshold flagged on dev beside what it flags now.
    code, out, err = run(monkeypatch, capsys, "score", tables / "mc", tables / "test.csv", "--id-col", "Amount",
                         "--label-col", "y", "--out", tables / "scores.csv")
    assert code == 0, err
    dev = oddkit.load(tables / "mc").threshold_provenance_
    flagged = int(pd.read_csv(tables / "scores.csv")["label"].sum())
    assert (f"scored 300 rows: {flagged} flagged as anomalies ({flagged / 300:.1%}; threshold" in " ".join(out.split())
            and f"on dev.csv it flagged {dev.fpr:.1%} of the normal rows and {dev.recall:.1%} of the anomalies"
            in " ".join(out.split()))
    code, out, err = run(monkeypatch, capsys, "threshold", tables / "m", tables / "dev.csv", "--id-col", "Amount",
                         "--goal", "fpr:0.001,0.95", "--out", tables / "mc2")
    assert code == 0, err
    assert err.startswith("warning: ") and "needs at least 2,995 dev normals, there are 240" in " ".join(err.split())
