"""contamination="auto": the share estimators, the threshold they set, and who refuses it."""

from __future__ import annotations

import numpy as np
import pytest

import oddkit
from oddkit.detectors.base import DETECTORS
from oddkit.detectors.contamination import METHODS, estimate_contamination
from oddkit.exceptions import DataError, ParameterError

RNG = np.random.default_rng(0)
# 950 normal rows and 50 far away, scattered (not each other's neighbours): 5% anomalies that stand apart.
_directions = RNG.normal(size=(50, 4))
X = np.r_[RNG.normal(size=(950, 4)),
          _directions / np.linalg.norm(_directions, axis=1, keepdims=True) * RNG.uniform(10, 15, size=(50, 1))]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_finds_a_tail_that_stands_apart(method):
    scores = np.r_[RNG.normal(size=1900), RNG.normal(loc=25.0, size=100)]
    assert estimate_contamination(scores, method) == pytest.approx(0.05, abs=0.01)


def test_estimates_are_clipped_and_bad_scores_refused():
    assert estimate_contamination(np.ones(100)) == 0.001  # nothing stands apart
    assert estimate_contamination(RNG.normal(size=1000), "mad") < 0.01  # a plain Gaussian has no tail
    with pytest.raises(DataError, match="finite"):
        estimate_contamination([1.0, np.nan, 2.0])
    with pytest.raises(DataError, match="at least 2"):
        estimate_contamination([1.0])
    with pytest.raises(DataError, match="unknown contamination estimate"):
        estimate_contamination([1.0, 2.0], "median")


@pytest.mark.parametrize("make", [
    lambda: oddkit.KNNDetector(n_neighbors=5, contamination="auto"),
    lambda: oddkit.GaussianDetector(robust=True, contamination="auto"),
    lambda: oddkit.IsolationForestDetector(contamination="auto", random_state=0),
])
def test_auto_threshold_flags_the_estimated_share(make, tmp_path):
    detector = make().fit(X)
    share = estimate_contamination(detector.decision_scores_)
    assert detector.threshold_goal_ == f"contamination:auto={share:.4g}"
    assert detector.labels_.mean() == pytest.approx(share, abs=0.002)
    assert 0.03 <= share <= 0.08
    assert detector.labels_[950:].mean() > 0.9  # the far rows are the ones flagged
    detector.save(tmp_path / "m")
    loaded = oddkit.load(tmp_path / "m")
    assert loaded.contamination == "auto"
    assert (loaded.threshold_, loaded.threshold_goal_) == (detector.threshold_, detector.threshold_goal_)


def test_ensemble_takes_the_median_of_its_members_estimates():
    detector = oddkit.EnsembleDetector(members=("knn", "gaussian", "iforest"), contamination="auto",
                                       random_state=0).fit(X)
    shares = [estimate_contamination(m.decision_scores_) for m in detector.members_]
    assert detector.threshold_goal_ == f"contamination:auto={np.median(shares):.4g}"
    assert detector.labels_[950:].mean() > 0.9


def test_auto_auto_encoder_and_fixed_share_unchanged():
    auto = oddkit.AutoEncoderDetector(epochs=3, contamination="auto", random_state=0, verbose=0).fit(X)
    assert auto.threshold_goal_.startswith("contamination:auto=")
    fixed = oddkit.KNNDetector(contamination=0.2).fit(X)
    assert fixed.threshold_goal_ == "contamination:0.2"
    assert fixed.labels_.mean() == pytest.approx(0.2, abs=0.002)


def test_detectors_that_set_their_own_threshold_refuse_auto():
    refusing = [cls for cls in DETECTORS.values()
                if "contamination" in cls().get_params() and not getattr(cls.fit, "_sets_auto_contamination", False)]
    assert refusing, "expected some detector with its own fit (e.g. the text auto-encoders)"
    for cls in refusing:
        with pytest.raises(ParameterError, match="contamination='auto' is not supported"):
            cls(contamination="auto")._validate_params()
