"""LOFDetector: scikit-learn's LocalOutlierFactor as the oracle, local density against KNN, finite
scores on duplicates, saving and hostile saved state, parameters, explanations and images."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.neighbors import LocalOutlierFactor

import oddkit
from oddkit import EnsembleDetector, KNNDetector, LOFDetector
from oddkit.exceptions import ModelFileError, OddkitWarning, ParameterError
from oddkit.persist import seal

RNG = np.random.default_rng(0)
X = RNG.normal(size=(120, 4)) * [1.0, 10.0, 0.1, 3.0] + [0.0, 50.0, -2.0, 1.0]
NEW = RNG.normal(size=(40, 4)) * [2.0, 20.0, 0.2, 6.0] + [0.0, 50.0, -2.0, 1.0]


def _oracle(detector, k):
    """scikit-learn's LOF (novelty) on the detector's own standardised rows, in float64."""
    Z = detector.preprocessor_.transform(X).astype(np.float64)
    return LocalOutlierFactor(n_neighbors=k, novelty=True).fit(Z), detector.preprocessor_.transform(NEW)


@pytest.mark.parametrize("k", [1, 5, 20])
@pytest.mark.parametrize("algorithm", ["auto", "brute"])
def test_scores_equal_scikit_learns_local_outlier_factor(k, algorithm):
    detector = LOFDetector(n_neighbors=k, algorithm=algorithm).fit(X)
    reference, Z_new = _oracle(detector, k)
    np.testing.assert_allclose(detector.decision_function(NEW), -reference.score_samples(Z_new.astype(np.float64)),
                               rtol=1e-12, atol=0)
    np.testing.assert_allclose(detector.decision_scores_, -reference.negative_outlier_factor_, rtol=1e-12, atol=0)
    np.testing.assert_allclose(detector.densities_, reference._lrd, rtol=1e-12)
    assert detector.n_neighbors_ == reference.n_neighbors_ == k
    # scikit-learn fitted on the float32 rows themselves computes its distances in float32: float precision.
    float32 = LocalOutlierFactor(n_neighbors=k, novelty=True).fit(detector.preprocessor_.transform(X))
    np.testing.assert_allclose(detector.decision_function(NEW), -float32.score_samples(Z_new), rtol=1e-5)


def test_default_is_twenty_neighbours_as_in_scikit_learn_and_pyod():
    assert LOFDetector().n_neighbors == LocalOutlierFactor().n_neighbors == 20


def test_planted_anomalies_rank_above_the_normal_rows():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(200, 3))
    normal, planted = rng.normal(size=(50, 3)), rng.normal(size=(5, 3)) + [6.0, -6.0, 6.0]
    detector = LOFDetector().fit(train)
    scores = detector.decision_function(np.r_[normal, planted])
    assert scores[50:].min() > scores[:50].max()
    assert detector.predict(planted).tolist() == [1] * 5


def _two_densities(seed=0):
    """A dense and a sparse cluster, test rows from both, and anomalies just outside the dense one."""
    rng = np.random.default_rng(seed)
    dense = rng.normal(0.0, 0.1, size=(150, 2))
    sparse = rng.normal(0.0, 2.0, size=(150, 2)) + [8.0, 8.0]
    train = np.r_[dense, sparse]
    normal = np.r_[rng.normal(0.0, 0.1, size=(40, 2)), rng.normal(0.0, 2.0, size=(40, 2)) + [8.0, 8.0]]
    angles = np.linspace(0.0, 2 * np.pi, 8, endpoint=False)
    anomalies = 0.7 * np.c_[np.cos(angles), np.sin(angles)]  # 7 standard deviations of the dense cluster
    return train, normal, anomalies


def test_local_density_lof_finds_what_the_distance_misses():
    train, normal, anomalies = _two_densities()
    rows = np.r_[normal, anomalies]
    truth = np.r_[np.zeros(len(normal)), np.ones(len(anomalies))]
    from sklearn.metrics import roc_auc_score

    lof = LOFDetector().fit(train).decision_function(rows)
    knn = KNNDetector(n_neighbors=20).fit(train).decision_function(rows)
    assert lof[len(normal):].min() > lof[:len(normal)].max()  # every anomaly above every normal row
    assert roc_auc_score(truth, lof) == 1.0
    # The distance to the 20th neighbour ranks them among the sparse cluster's ordinary rows.
    assert roc_auc_score(truth, knn) < 0.8
    assert knn[len(normal):].max() < knn[40:len(normal)].max()


def test_duplicates_and_constant_columns_give_finite_scores():
    base = np.random.default_rng(2).normal(size=(30, 3))
    # 40 copies of one row (more than k), a constant column, and ordinary rows.
    train = np.c_[np.r_[np.repeat(base[:1], 40, axis=0), base], np.full(70, 5.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by zero, no non-finite score replaced
        detector = LOFDetector().fit(train)
        queries = np.r_[train[:3], train[40:45], [[9.0, 9.0, 9.0, 5.0], [0.0, 0.0, 0.0, 5.0]]]
        scores = detector.decision_function(queries)
    assert np.isfinite(detector.decision_scores_).all() and np.isfinite(scores).all()
    assert np.isfinite(detector.densities_).all() and detector.densities_.max() <= 1e10
    assert scores[:3].tolist() == [1.0, 1.0, 1.0]  # identical to many training rows: as dense as they are
    reference = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(detector.preprocessor_.transform(train)
                                                                     .astype(np.float64))
    Z = detector.preprocessor_.transform(queries).astype(np.float64)
    np.testing.assert_allclose(scores, -reference.score_samples(Z), rtol=1e-12)
    # Every training row the same: each density is 1e10 and every score 1.
    same = LOFDetector(n_neighbors=3).fit(np.ones((10, 2)))
    assert same.decision_scores_.tolist() == [1.0] * 10
    assert same.decision_function(np.array([[1.0, 1.0], [2.0, 0.0]]))[0] == 1.0
    assert np.isfinite(same.decision_function(np.array([[2.0, 0.0]]))).all()


def test_too_few_rows_clamp_k_with_knns_warning():
    with pytest.warns(OddkitWarning, match=r"LOFDetector: n_neighbors=20 but the training data has 8 rows.*"
                                           r"n_neighbors_=7\. Pass n_neighbors <= 7"):
        clamped = LOFDetector().fit(X[:8])
    assert clamped.n_neighbors_ == 7
    np.testing.assert_array_equal(clamped.decision_scores_, LOFDetector(n_neighbors=7).fit(X[:8]).decision_scores_)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OddkitWarning)
        LOFDetector(n_neighbors=7).fit(X[:8])
        EnsembleDetector(members=("lof",)).fit(X[:8])  # the ensemble picks k quietly, as for "knn"


@pytest.mark.parametrize("params, name", [
    ({"n_neighbors": 0}, "n_neighbors"), ({"n_neighbors": 2.5}, "n_neighbors"), ({"n_neighbors": True}, "n_neighbors"),
    ({"algorithm": "annoy"}, "algorithm"), ({"n_jobs": 0}, "n_jobs"), ({"contamination": 0.9}, "contamination"),
])
def test_bad_parameters_are_a_parameter_error(params, name):
    with pytest.raises(ParameterError, match=name):
        LOFDetector(**params).fit(X)


def test_saved_and_loaded_scores_identically(tmp_path):
    detector = LOFDetector(n_neighbors=7).fit(X)
    detector.save(tmp_path / "m")
    loaded = oddkit.load(tmp_path / "m")
    assert isinstance(loaded, LOFDetector) and loaded.get_params() == detector.get_params()
    np.testing.assert_array_equal(loaded.decision_function(NEW), detector.decision_function(NEW))
    np.testing.assert_array_equal(loaded.decision_scores_, detector.decision_scores_)
    np.testing.assert_array_equal(loaded.densities_, detector.densities_)
    np.testing.assert_array_equal(loaded.explain(NEW[:3]), detector.explain(NEW[:3]))
    assert loaded.n_neighbors_ == 7


def _spoiled(tmp_path, change):
    from safetensors.numpy import load, save

    folder = tmp_path / "m"
    LOFDetector(n_neighbors=5).fit(X).save(folder)
    arrays = load((folder / "weights.safetensors").read_bytes())
    change(arrays)
    (folder / "weights.safetensors").write_bytes(save({k: np.ascontiguousarray(v) for k, v in arrays.items()}))
    seal(folder)
    return folder


def _set(name, value):
    def change(arrays):
        arrays[f"model.{name}"] = value(arrays[f"model.{name}"].copy())
    return change


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("model.densities"), "lacks its densities"),
    (lambda a: a.pop("model.training_rows"), "lacks its training_rows"),
    (_set("densities", lambda v: np.r_[v, 1.0]), "densities are not one finite number per training row"),
    (_set("k_distances", lambda v: v.astype(np.int64)), "k_distances are not one finite number"),
    (_set("training_rows", lambda v: v[:, :3]), "training rows are malformed"),
    (_set("training_rows", lambda v: v[:1]), "training rows are malformed"),
    (_set("densities", lambda v: np.where(np.arange(len(v)) == 3, 0.0, v)), "densities are not what"),
    (_set("densities", lambda v: -v), "densities are not what"),
    (_set("densities", lambda v: v * 1e300), "densities are not what"),
    (_set("densities", lambda v: np.full_like(v, 1e-30)), "densities are not what"),
    (_set("k_distances", lambda v: -v), "k_distances are negative"),
    (_set("k_distances", lambda v: v * 1e200), "k_distances are negative or longer"),
    (_set("k_distances", lambda v: np.where(np.arange(len(v)) == 0, np.nan, v)), "NaN or infinite"),
], ids=["no-densities", "no-rows", "densities-length", "k-distances-integers", "rows-width", "one-row",
        "density-zero", "densities-negative", "densities-huge", "densities-tiny", "k-distances-negative",
        "k-distances-huge", "k-distance-nan"])
def test_hostile_saved_state_is_refused(change, message, tmp_path):
    folder = _spoiled(tmp_path, change)
    with pytest.raises(ModelFileError, match=message):
        oddkit.load(folder)


def test_a_hostile_n_neighbors_is_refused(tmp_path):
    folder = tmp_path / "m"
    LOFDetector().fit(X).save(folder)
    for value in (0, -3, "20", 2.5):
        config = json.loads((folder / "config.json").read_text())
        config["params"]["n_neighbors"] = value
        (folder / "config.json").write_text(json.dumps(config))
        seal(folder)
        with pytest.raises(ModelFileError, match="n_neighbors"):
            oddkit.load(folder)


def test_explain_splits_the_mean_squared_difference_to_the_k_nearest():
    detector = LOFDetector(n_neighbors=5).fit(X)
    shares = detector.explain(NEW[:6])
    assert shares.shape == (6, 4)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-9)
    assert (shares.to_numpy() >= 0).all()
    Z = detector.preprocessor_.transform(NEW[:6]).astype(np.float64)
    training = detector.preprocessor_.transform(X).astype(np.float64)
    nearest = np.argsort(((Z[:, None, :] - training[None]) ** 2).sum(axis=2), axis=1)[:, :5]  # brute force
    expected = ((Z[:, None, :] - training[nearest]) ** 2).mean(axis=1)
    np.testing.assert_allclose(shares.to_numpy(), expected / expected.sum(axis=1, keepdims=True), rtol=1e-9)
    far = NEW[:1].copy()
    far[0, 2] += 5.0  # 25 standard deviations out in the third column
    assert detector.explain(far).to_numpy().argmax() == 2


def test_images_are_raw_pixel_distances():
    rng = np.random.default_rng(3)
    images = rng.uniform(0.2, 0.4, size=(30, 6, 6))
    detector = LOFDetector(n_neighbors=5).fit(images)
    assert detector.image_shape_ == (1, 6, 6)
    odd = images[:2].copy()
    odd[1, 2:4, 2:4] = 1.0
    scores = detector.decision_function(odd)
    assert np.isfinite(scores).all() and scores[1] > scores[0]
    flat = images.reshape(30, -1)
    reference = LocalOutlierFactor(n_neighbors=5, novelty=True).fit(flat)
    np.testing.assert_allclose(scores, -reference.score_samples(odd.reshape(2, -1).astype(np.float32)
                                                                .astype(np.float64)), rtol=1e-6)


def test_registered_for_the_command_line_the_ensemble_and_export():
    from oddkit.cli._common import DETECTOR_NAMES
    from oddkit.detectors import DETECTORS
    from oddkit.export import ExportError, export_onnx

    assert DETECTOR_NAMES["lof"] == "LOFDetector" and DETECTORS["LOFDetector"] is LOFDetector
    ensemble = EnsembleDetector(members=("lof", "knn1"), random_state=0).fit(X)
    assert type(ensemble.members_[0]) is LOFDetector and ensemble.members_[0].n_neighbors == 20
    with pytest.raises(ExportError, match="LOFDetector cannot be exported to ONNX .*neighbours"):
        export_onnx(LOFDetector().fit(X), "unused.onnx")
