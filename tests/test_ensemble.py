"""The default ensemble: members, score normalisation, and its validation."""

from __future__ import annotations

import numpy as np
import pytest

import oddkit
from oddkit import EnsembleDetector
from oddkit.exceptions import DataError

X = np.random.default_rng(0).normal(size=(300, 4))


def test_default_detector_members_and_ranking():
    detector = oddkit.default_detector(random_state=0).fit(X)
    assert [type(m).__name__ for m in detector.members_] == [
        "KNNDetector", "IsolationForestDetector", "AutoEncoderDetector", "GaussianDetector"]
    far = np.array([[0.0, 0, 0, 0], [3, 3, 3, 3], [6, 6, 6, 6], [12, 12, 12, 12]])
    scores = detector.decision_function(far)
    # Rows beyond every training score keep their order instead of tying at the top.
    assert np.all(np.diff(scores) > 0)


def test_normalised_scores_are_training_quantiles_inside_the_range():
    detector = EnsembleDetector(members=("knn",)).fit(X)
    member = detector.members_[0]
    training = member.decision_scores_
    median = np.median(training)
    # Inside the training range a score maps to the share of training scores below it.
    assert detector._normalise(np.array([median]), detector.member_quantiles_[0])[0] == pytest.approx(0.5, abs=0.01)
    above = detector._normalise(np.array([training.max() * 2]), detector.member_quantiles_[0])[0]
    assert above > 1.0


def test_unknown_member_is_a_clear_error():
    with pytest.raises(DataError, match="members"):
        EnsembleDetector(members=("knn", "nope")).fit(X)
    with pytest.raises(DataError, match="members"):
        EnsembleDetector(members=()).fit(X)
