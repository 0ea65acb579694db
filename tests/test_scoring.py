"""oddkit.scoring: rows with a category never seen in training are scored as anomalies, flagged and counted
(or refused under strict_categories), without ever changing the model, even with threads scoring at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from oddkit import GaussianDetector
from oddkit.exceptions import UnseenCategoryError
from oddkit.scoring import add_counts, score_rows, tolerant, with_hint


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"amount": rng.normal(100, 15, n), "channel": rng.choice(["web", "shop"], n),
                         "region": rng.choice(["north", "south"], n)})


@pytest.fixture(scope="module")
def detector():
    return GaussianDetector().fit(_table(300, 0))


def test_without_unseen_categories_the_scores_are_decision_functions(detector):
    X = _table(40, 1)
    got = score_rows(detector, X)
    np.testing.assert_array_equal(got.scores, detector.decision_function(X))
    assert not got.unseen.any() and got.columns == {}


def test_unseen_rows_are_anomalies_flagged_and_counted(detector):
    X = _table(40, 1)
    X.loc[[2, 5, 9], "channel"] = ["fax", "fax", "telex"]
    X.loc[9, "region"] = "east"
    got = score_rows(detector, X)
    assert np.flatnonzero(got.unseen).tolist() == [2, 5, 9]
    assert got.columns == {"channel": 2, "region": 1}
    seen = ~got.unseen
    np.testing.assert_array_equal(got.scores[seen], detector.decision_function(X[seen]))
    floor = detector.out_of_range_score()
    assert floor > detector.threshold_ and (got.scores[got.unseen] >= floor).all()
    assert np.isfinite(got.scores).all()
    assert detector.preprocessor_.unknown_categories == "error"  # the model itself is unchanged
    with pytest.raises(UnseenCategoryError):
        detector.decision_function(X)
    assert add_counts(add_counts({}, got.unseen, got.columns), got.unseen, got.columns) == {
        "rows": 6, "columns": {"channel": 4, "region": 2}}


def test_strict_categories_raise_with_the_callers_hint(detector):
    X = _table(5, 2)
    X.loc[1, "channel"] = "fax"
    with pytest.raises(UnseenCategoryError, match="unknown_categories='ignore'") as library:
        score_rows(detector, X, strict_categories=True)
    with pytest.raises(UnseenCategoryError) as hinted:
        score_rows(detector, X, strict_categories=True, hint="drop --strict-categories to score them")
    message = str(hinted.value)
    assert "'fax'" in message and message.endswith("; drop --strict-categories to score them")
    assert "Pass unknown_categories" not in message
    # a hint replaces an earlier hint too (an error carried back from a Spark executor)
    base = message.split("; drop")[0]
    assert str(with_hint(hinted.value, "leave out it")) == base + "; leave out it"
    assert str(library.value).startswith(base)


def test_tolerant_twin_shares_the_weights_and_leaves_the_model_alone(detector):
    twin = tolerant(detector)
    assert twin is not detector and twin.preprocessor_ is not detector.preprocessor_
    assert twin.preprocessor_.unknown_categories == "ignore" and detector.preprocessor_.unknown_categories == "error"
    assert twin.covariance_ is detector.covariance_  # learned values shared, not copied
    X = _table(20, 5)
    np.testing.assert_array_equal(twin.decision_function(X), detector.decision_function(X))
    ignoring = GaussianDetector(unknown_categories="ignore").fit(_table(100, 3))
    assert tolerant(ignoring) is ignoring


def test_strict_and_tolerant_calls_in_threads_do_not_leak_into_each_other(detector):
    X = _table(200, 4)
    X.loc[::7, "channel"] = "fax"

    def call(strict: bool) -> str:
        try:
            score_rows(detector, X, strict_categories=strict)
        except UnseenCategoryError:
            return "refused"
        return "scored"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(call, [True, False] * 40))
    assert outcomes == ["refused", "scored"] * 40


def test_explanations_of_rows_raised_by_an_unseen_category_blame_that_column():
    from oddkit import KNNDetector
    from oddkit.scoring import explain_rows, unseen_values

    knn = KNNDetector().fit(_table(300, 0))
    X = _table(30, 3)
    X.loc[[4, 7], "channel"] = ["fax", "telex"]
    X.loc[7, "region"] = "east"
    X.loc[11, "amount"] = 400.0  # an anomaly by its amount: explained by the detector itself
    got = score_rows(knn, X)
    assert np.flatnonzero(got.unseen).tolist() == [4, 7]
    assert (tolerant(knn).decision_function(X.iloc[[4, 7]]) < knn.out_of_range_score()).all()  # raised
    shares = explain_rows(knn, X)
    assert shares.loc[4].to_dict() == {"amount": 0.0, "channel": 1.0, "region": 0.0}
    assert shares.loc[7].to_dict() == {"amount": 0.0, "channel": 0.5, "region": 0.5}
    others = [i for i in range(30) if i not in (4, 7)]
    pd.testing.assert_frame_equal(shares.iloc[others], tolerant(knn).explain(X).iloc[others])
    assert shares.loc[11].idxmax() == "amount"
    assert unseen_values(knn, X) == {"channel": ["fax", "telex"], "region": ["east"]}
    with pytest.raises(UnseenCategoryError, match="no unseen here"):
        explain_rows(knn, X, strict_categories=True, hint="no unseen here")
    clean = X.drop(index=[4, 7])
    pd.testing.assert_frame_equal(explain_rows(knn, clean), knn.explain(clean))


@pytest.mark.parametrize("value", [np.array(3.0), 3.0])
def test_score_rows_refuses_a_single_value_with_oddkits_error(value) -> None:
    """A scalar or 0-d array is not rows: oddkit's DataError, not len()'s TypeError."""
    from oddkit.exceptions import DataError

    detector = GaussianDetector().fit(np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(DataError, match="not a table|not rows"):
        score_rows(detector, value)
