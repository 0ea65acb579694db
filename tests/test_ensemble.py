"""The default ensemble: members, score normalisation, and its validation."""

from __future__ import annotations

import numpy as np
import pytest

import oddkit
from oddkit import EnsembleDetector
from oddkit.detectors.ensemble import normalise_scores
from oddkit.exceptions import ParameterError

X = np.random.default_rng(0).normal(size=(300, 4))


def test_default_detector_members_and_ranking():
    detector = oddkit.default_detector(random_state=0).fit(X)
    assert [type(m).__name__ for m in detector.members_] == ["KNNDetector", "KNNDetector", "GaussianDetector"]
    assert [(m.n_neighbors, m.max_samples) for m in detector.members_[:2]] == [(1, None), (1, 16)]
    assert detector.members_[1].subsamples_.shape == (50, 16)
    assert detector.members_[2].robust and detector.members_[2].contamination == 0.25
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
    assert normalise_scores(np.array([median]), detector.member_quantiles_[0])[0] == pytest.approx(0.5, abs=0.01)
    above = normalise_scores(np.array([training.max() * 2]), detector.member_quantiles_[0])[0]
    assert above > 1.0


def test_normalised_ties_get_the_share_scoring_lower():
    from oddkit.detectors.ensemble import score_quantiles

    # 90% of training rows tie at 0 (duplicates: a neighbour distance of 0), then 1..10.
    quantiles = score_quantiles(np.r_[np.zeros(90), np.arange(1.0, 11.0)])
    tied, between, top, beyond = normalise_scores(np.array([0.0, 0.5, 10.0, 20.0]), quantiles)
    assert tied == 0.0  # no training row scores lower than a duplicate: the most normal, not the 90th percentile
    assert 0.89 < between < 0.91 and top == 1.0 and beyond == 2.0
    continuous = score_quantiles(np.arange(100.0))
    assert list(normalise_scores(np.array([0.0, 49.5, 99.0, 198.0]), continuous)) == [0.0, 0.5, 1.0, 2.0]


def test_combine_takes_the_largest_or_the_mean_normalised_score():
    members = ("knn", "gaussian")
    largest = EnsembleDetector(members=members).fit(X)
    mean = EnsembleDetector(members=members, combine="mean").fit(X)
    rows = np.array([[0.0, 0, 0, 0], [4, 0, 0, 0], [3, 3, 3, 3]])
    Z = largest._prepare(rows, reset=False)  # members see the ensemble's preprocessed rows
    normalised = np.array([normalise_scores(m.decision_function(Z), q)
                           for m, q in zip(largest.members_, largest.member_quantiles_)])
    np.testing.assert_allclose(largest.decision_function(rows), normalised.max(axis=0))
    np.testing.assert_allclose(mean.decision_function(rows), normalised.mean(axis=0))
    with pytest.raises(ParameterError, match="combine"):
        EnsembleDetector(members=members, combine="vote").fit(X)


def test_members_share_the_ensembles_contamination():
    detector = EnsembleDetector(members=("knn1", "gaussian-robust"), contamination=0.05).fit(X)
    assert [m.contamination for m in detector.members_] == [0.05, 0.05]


def test_unknown_member_is_a_clear_error():
    with pytest.raises(ParameterError, match="members"):
        EnsembleDetector(members=("knn", "nope")).fit(X)
    with pytest.raises(ParameterError, match="members"):
        EnsembleDetector(members=()).fit(X)


def test_images_reach_image_members_as_images_and_the_others_as_pixels(tmp_path):
    from sklearn.metrics import roc_auc_score

    from test_transforms import corner_shapes, crosses

    rng = np.random.default_rng(0)
    train, test = corner_shapes(rng, 150), np.concatenate([corner_shapes(rng, 30), crosses(rng, 15)])
    ensemble = EnsembleDetector(members=("knn1", "pca", "vae"), combine="mean", random_state=0).fit(train)
    knn, pca, vae = ensemble.members_
    assert pca.n_features_in_ == 144 and not pca._fitted_on_images()
    assert knn.image_shape_ == (1, 12, 12)  # KNNDetector takes images: raw pixel distances
    assert vae.image_shape_ == (1, 12, 12) and ensemble.image_shape_ == (1, 12, 12)
    assert roc_auc_score(np.r_[np.zeros(30), np.ones(15)], ensemble.decision_function(test)) >= 0.95
    ensemble.save(tmp_path / "model")
    np.testing.assert_array_equal(oddkit.load(tmp_path / "model").decision_function(test),
                                  ensemble.decision_function(test))
