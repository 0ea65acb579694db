"""KNNDetector's subsampling ensemble (max_samples, n_estimators): scores against a brute-force
oracle, resistance to a tight group of hidden anomalies, and saving."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import oddkit
from oddkit import KNNDetector
from oddkit.exceptions import ModelFileError

RNG = np.random.default_rng(0)
X = RNG.normal(size=(400, 3))


def brute_force(detector: KNNDetector, Z: np.ndarray, training: bool) -> np.ndarray:
    """The mean over subsamples of the k-th nearest distance, by a full distance matrix."""
    rows = detector.neighbors_._fit_X.astype(np.float64)
    total = np.zeros(len(Z))
    for subsample in detector.subsamples_:
        distances = np.linalg.norm(Z[:, None, :] - rows[subsample][None], axis=2)
        if training:  # Z is the kept rows' table: a row in the subsample leaves itself out
            for j, i in enumerate(subsample):
                distances[i, j] = np.inf
        total += np.sort(distances, axis=1)[:, detector.n_neighbors_ - 1]
    return total / len(detector.subsamples_)


def test_subsampled_scores_match_a_brute_force_oracle():
    detector = KNNDetector(n_neighbors=2, max_samples=40, n_estimators=7, random_state=0).fit(X)
    assert detector.subsamples_.shape == (7, 40)
    # Standardised new rows, scored against each subsample by a full distance matrix.
    new = RNG.normal(size=(25, 3))
    Z = detector.preprocessor_.transform(new).astype(np.float64)
    np.testing.assert_allclose(detector.decision_function(new), brute_force(detector, Z, False), rtol=1e-5)
    # Training rows: those the subsamples hold are the kept rows; each leaves itself out.
    kept_rows = detector.neighbors_._fit_X.astype(np.float64)
    kept = np.unique(np.arange(len(kept_rows)))
    assert len(kept) == len(kept_rows)
    expected_kept = brute_force(detector, kept_rows, True)
    Z_train = detector.preprocessor_.transform(X).astype(np.float64)
    # Map each kept row back to its training row by exact match.
    match = [int(np.flatnonzero((Z_train == row).all(axis=1))[0]) for row in kept_rows.astype(Z_train.dtype)]
    np.testing.assert_allclose(detector.decision_scores_[match], expected_kept, rtol=1e-5)


def test_subsampling_finds_a_tight_group_of_hidden_anomalies_that_full_knn_misses():
    normal = RNG.normal(size=(1960, 4))
    group = RNG.normal(loc=4.0, scale=0.05, size=(40, 4))  # 2% anomalies, each other's neighbours
    data, y = np.r_[normal, group], np.r_[np.zeros(1960), np.ones(40)]
    full = KNNDetector(n_neighbors=1).fit(data)
    sub = KNNDetector(n_neighbors=1, max_samples=64, random_state=0).fit(data)
    assert roc_auc_score(y, full.decision_scores_) < 0.1
    assert roc_auc_score(y, sub.decision_scores_) > 0.95
    test = np.r_[RNG.normal(size=(200, 4)), RNG.normal(loc=4.0, scale=0.05, size=(20, 4))]
    assert roc_auc_score(np.r_[np.zeros(200), np.ones(20)], sub.decision_function(test)) > 0.95


def test_subsampling_is_seeded_and_off_when_the_subsample_holds_every_row():
    a = KNNDetector(n_neighbors=1, max_samples=50, random_state=3).fit(X)
    b = KNNDetector(n_neighbors=1, max_samples=50, random_state=3).fit(X)
    np.testing.assert_array_equal(a.decision_function(X[:20]), b.decision_function(X[:20]))
    whole = KNNDetector(n_neighbors=1, max_samples=len(X), random_state=3).fit(X)
    plain = KNNDetector(n_neighbors=1).fit(X)
    assert whole.subsamples_ is None
    np.testing.assert_array_equal(whole.decision_scores_, plain.decision_scores_)
    # Refitted without subsampling, nothing of the subsampled fit is left.
    a.set_params(max_samples=None).fit(X)
    assert a.subsamples_ is None
    np.testing.assert_array_equal(a.decision_scores_, plain.decision_scores_)


def test_the_same_rows_in_another_order_give_the_same_scores():
    # Subsamples are drawn in the rows' sorted order: a shuffled table (or a folder listed in another
    # order) is the same training data and gets the same model, up to rounding in the standardisation.
    order = np.random.default_rng(1).permutation(len(X))
    new = RNG.normal(size=(30, 3))
    a = KNNDetector(n_neighbors=1, max_samples=16, random_state=3).fit(X)
    b = KNNDetector(n_neighbors=1, max_samples=16, random_state=3).fit(X[order])
    np.testing.assert_allclose(a.decision_function(new), b.decision_function(new), rtol=1e-12)
    np.testing.assert_allclose(a.decision_scores_[order], b.decision_scores_, rtol=1e-12)
    ensemble = oddkit.default_detector(random_state=0)
    np.testing.assert_allclose(ensemble.fit(X).decision_function(new),
                               oddkit.default_detector(random_state=0).fit(X[order]).decision_function(new),
                               rtol=1e-12)


def test_subsampled_model_saves_loads_and_explains(tmp_path):
    detector = KNNDetector(n_neighbors=3, method="mean", max_samples=30, n_estimators=5, random_state=1).fit(X)
    detector.save(tmp_path / "m")
    loaded = oddkit.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.subsamples_, detector.subsamples_)
    np.testing.assert_array_equal(loaded.decision_function(X[:30]), detector.decision_function(X[:30]))
    shares = detector.explain(X[:5]).to_numpy()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-6)


def test_malformed_saved_subsamples_are_refused():
    detector = KNNDetector(n_neighbors=1, max_samples=30, n_estimators=4, random_state=0).fit(X)
    arrays, meta, files = detector._get_model_state()
    arrays["subsamples"] = arrays["subsamples"] + 10_000
    with pytest.raises(ModelFileError, match="subsamples"):
        detector._set_model_state(arrays, meta, files)
