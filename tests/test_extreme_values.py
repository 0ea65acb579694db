"""Extreme values (1e300, -1e300, 1e30, 1e-300) at fit and at score time: every score is finite, a
far-out row is an anomaly ranked above every normal row, and what cannot be used is a clear error."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from oddkit import (
    AutoEncoderDetector,
    ClassifierConfidenceDetector,
    DisentangledAutoEncoderDetector,
    GaussianDetector,
    IsolationForestDetector,
    KNNDetector,
    LOFDetector,
    OneClassSVMDetector,
    PCADetector,
    TransformationDetector,
    VAEDetector,
    VQVAEDetector,
    default_detector,
)
from oddkit.data import TablePreprocessor
from oddkit.data.image_preprocess import ImagePreprocessor
from oddkit.data.preprocess import FAR_BOUND, MAX_TRAINING_MAGNITUDE, STANDARDIZED_BOUND
from oddkit.exceptions import DataError, NonFiniteError, OddkitError
from oddkit.metrics import evaluate, roc_auc
from oddkit.threshold import choose_threshold

FAST = {"epochs": 3, "random_state": 0, "verbose": 0}
# Detectors fitted with class labels (open-set recognition, disentangling) take them as `classes`.
TABLE_FACTORIES = {
    "autoencoder": lambda: AutoEncoderDetector(hidden_sizes=(8,), latent_dim=2, **FAST),
    "vae": lambda: VAEDetector(hidden_sizes=(8,), latent_dim=2, **FAST),
    "vqvae": lambda: VQVAEDetector(hidden_sizes=(8,), codebook_size=8, **FAST),
    "classifier": lambda: ClassifierConfidenceDetector(hidden_sizes=(8,), n_estimators=1, **FAST),
    "disentangled": lambda: DisentangledAutoEncoderDetector(hidden_sizes=(8,), latent_dim=3, **FAST),
    "gaussian": GaussianDetector,
    "pca": PCADetector,
    "ocsvm": OneClassSVMDetector,
    "iforest": lambda: IsolationForestDetector(n_estimators=50, random_state=0),
    "knn": KNNDetector,
    "lof": LOFDetector,
    "default": lambda: default_detector(random_state=0),
}
WITH_CLASSES = {"classifier", "disentangled"}
FAR_VALUES = [1e300, -1e300, 1e30, -1e30]


def _normal_table(n: int = 150, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])


def _fit(name: str, X, seed: int = 0):
    detector = TABLE_FACTORIES[name]()
    if name in WITH_CLASSES:
        classes = (np.asarray(X)[:, 0] > 0).astype(int) if not hasattr(X, "iloc") else (X["a"] > 0).astype(int)
        return detector.fit(X, np.asarray(classes))
    return detector.fit(X)


@pytest.fixture(scope="module")
def fitted_tables():
    X = _normal_table()
    return {name: _fit(name, X) for name in TABLE_FACTORIES}


@pytest.mark.parametrize("name", list(TABLE_FACTORIES))
@pytest.mark.parametrize("value", FAR_VALUES)
def test_far_value_at_score_time_is_a_finite_top_ranked_anomaly(fitted_tables, name, value):
    detector = fitted_tables[name]
    rows = _normal_table(n=30, seed=1)
    rows.iloc[7, 1] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow anywhere, no fallback needed
        scores = detector.decision_function(rows)
        labels = detector.predict(rows)
    assert np.isfinite(scores).all()
    assert labels[7] == 1
    assert scores[7] > np.delete(scores, 7).max()
    assert scores[7] >= detector.out_of_range_score() > detector.threshold_


@pytest.mark.parametrize("name", list(TABLE_FACTORIES))
@pytest.mark.parametrize("sign", [1, -1])
def test_a_value_far_out_but_below_the_clipping_bound_is_an_anomaly(fitted_tables, name, sign):
    """Twenty thousand standard deviations out is not clipped (STANDARDIZED_BOUND is a million), yet
    far beyond any training value: labelled an anomaly even where the detector's own score levels
    off (a classifier's confidence labelled such a row normal)."""
    detector = fitted_tables[name]
    train = _normal_table()
    rows = _normal_table(n=30, seed=1)
    rows.iloc[7, 0] = train["a"].mean() + sign * 2 * FAR_BOUND * train["a"].std(ddof=0)
    scores = detector.decision_function(rows)
    assert detector.predict(rows)[7] == 1
    assert scores[7] >= detector.out_of_range_score() > detector.threshold_


def test_a_value_below_the_far_bound_keeps_the_detectors_own_score():
    """Rows short of FAR_BOUND (ordinary data: the benchmark's test rows reach about 700 standard
    deviations) are scored by the detector alone, never raised."""
    train = _normal_table()
    detector = GaussianDetector().fit(train)
    rows = _normal_table(n=5, seed=1)
    rows.iloc[0, 0] = train["a"].mean() + 0.9 * FAR_BOUND * train["a"].std(ddof=0)
    Z = detector.preprocessor_.transform(rows)
    assert not detector.preprocessor_.out_of_range_rows(Z).any()
    np.testing.assert_array_equal(detector.decision_function(rows), detector._score_array(Z))


@pytest.mark.parametrize("make", [lambda: IsolationForestDetector(n_estimators=50, random_state=0),
                                  lambda: ClassifierConfidenceDetector(hidden_sizes=(8,), n_estimators=1, **FAST)],
                         ids=["iforest", "classifier"])
def test_a_column_constant_in_training_far_off_its_value_is_an_anomaly(make):
    """An isolation forest never splits on a constant column: any value there scored as the constant
    did, and 1e5 in a column that always held 5 was labelled normal."""
    train = _normal_table()
    train["c"] = 5.0
    detector = make()
    detector.fit(train, (train["a"] > 0).astype(int).to_numpy()) if "Classifier" in type(detector).__name__ \
        else detector.fit(train)
    rows = train.head(4).copy()
    rows.loc[1, "c"] = 5.0 + 2 * FAR_BOUND
    rows.loc[2, "c"] = 5.0 - 2 * FAR_BOUND
    labels = detector.predict(rows)
    assert labels[1] == labels[2] == 1
    assert detector.decision_function(rows)[1:3].min() >= detector.out_of_range_score()


@pytest.mark.parametrize("name", list(TABLE_FACTORIES))
def test_tiny_value_scores_like_zero(fitted_tables, name):
    detector = fitted_tables[name]
    rows = _normal_table(n=6, seed=2)
    zero, tiny = rows.copy(), rows.copy()
    zero.iloc[0, 2] = 0.0
    tiny.iloc[0, 2] = 1e-300
    scores = detector.decision_function(tiny)
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores, detector.decision_function(zero), rtol=1e-6, atol=1e-9)


def test_every_row_of_a_batch_far_out_in_every_column(fitted_tables):
    rows = pd.DataFrame(np.full((3, 4), 1e300), columns=["a", "b", "c", "d"])
    rows.iloc[1] = -1e300
    for name, detector in fitted_tables.items():
        scores = detector.decision_function(rows)
        assert np.isfinite(scores).all(), name
        assert (detector.predict(rows) == 1).all(), name


def test_standardised_values_are_clipped_at_the_documented_bound():
    pre = TablePreprocessor().fit(np.array([[0.0], [1.0], [2.0]]))
    Z = pre.transform(np.array([[1e300], [-1e300], [1e30], [1.0]]))
    assert Z.dtype == np.float32 and np.isfinite(Z).all()
    assert Z[:3, 0].tolist() == [STANDARDIZED_BOUND, -STANDARDIZED_BOUND, STANDARDIZED_BOUND]
    assert pre.out_of_range_rows(Z).tolist() == [True, True, True, False]


def test_a_tiny_training_scale_does_not_overflow():
    # A column whose spread is 1e-300: a scoring value of 1e300 divided by it overflows float64.
    pre = TablePreprocessor().fit(np.array([[0.0], [1e-300], [2e-300]]))
    Z = pre.transform(np.array([[1e300], [1e-300]]))
    assert np.isfinite(Z).all() and Z[0, 0] == STANDARDIZED_BOUND and Z[1, 0] == 0.0


def test_a_non_finite_score_never_leaves_and_is_labelled_an_anomaly(fitted_tables, monkeypatch):
    detector = GaussianDetector().fit(_normal_table())
    real = detector._score_array

    def broken(Z):
        scores = real(Z)
        scores[[1, 3]] = [np.nan, -np.inf]
        scores[4] = np.inf
        return scores

    monkeypatch.setattr(detector, "_score_array", broken)
    rows = _normal_table(n=6, seed=3)
    with pytest.warns(RuntimeWarning, match=r"3 non-finite score\(s\) \(rows \[1, 3, 4\]\)"):
        scores = detector.decision_function(rows)
    assert np.isfinite(scores).all()
    assert (scores[[1, 3, 4]] == detector.out_of_range_score()).all()
    with pytest.warns(RuntimeWarning):
        assert detector.predict(rows)[[1, 3, 4]].tolist() == [1, 1, 1]


def test_out_of_range_score_stays_above_a_raised_threshold(fitted_tables):
    detector = GaussianDetector().fit(_normal_table())
    detector.set_threshold(detector.score_max_ * 10)
    rows = _normal_table(n=4, seed=4)
    rows.iloc[2, 0] = 1e300
    assert detector.predict(rows)[2] == 1


# -- fit time ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [1e300, -1e300, 1e200])
@pytest.mark.parametrize("name", ["gaussian", "autoencoder", "iforest", "default"])
def test_a_huge_training_value_is_refused_naming_column_row_and_value(name, value):
    X = _normal_table(n=60)
    X.iloc[17, 2] = value
    with pytest.raises(DataError) as caught:
        _fit(name, X)
    message = str(caught.value)
    assert not isinstance(caught.value, NonFiniteError)
    assert "'c'" in message and "row(s) 17" in message and f"{value:g}".replace("+", "") in message.replace("+", "")
    assert "NaN" in message  # the fix names impute, not a NaN that is not there
    assert "impute='median'" in message


def test_the_huge_value_set_to_nan_with_impute_then_fits():
    X = _normal_table(n=60)
    X.iloc[17, 2] = np.nan
    scores = GaussianDetector(impute="median").fit(X).decision_scores_
    assert np.isfinite(scores).all()


def test_large_but_plausible_training_values_fit_with_stable_statistics():
    rng = np.random.default_rng(5)
    X = np.c_[rng.normal(size=200) * 1e149, rng.normal(size=200) * 1e-200, rng.normal(size=200)]
    pre = TablePreprocessor().fit(X)
    assert np.isfinite(pre.center_).all() and np.isfinite(pre.scale_).all()
    np.testing.assert_allclose(pre.scale_[0] / 1e149, (X[:, 0] / 1e149).std(), rtol=1e-12)
    Z = pre.transform(X)
    assert np.isfinite(Z).all() and np.abs(Z).max() < 20
    scores = GaussianDetector().fit(X).decision_scores_
    assert np.isfinite(scores).all()
    assert MAX_TRAINING_MAGNITUDE == 1e150


# -- images -----------------------------------------------------------------------------------------

def _images(n: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 0.4, size=(n, 8, 8)).astype(np.float64)


IMAGE_FACTORIES = {
    "autoencoder": lambda: AutoEncoderDetector(hidden_sizes=(4,), latent_dim=2, **FAST),
    "vae": lambda: VAEDetector(hidden_sizes=(4,), latent_dim=2, **FAST),
    "transforms": lambda: TransformationDetector(conv_channels=(4,), hidden=8, epochs=1, random_state=0, verbose=0),
}


@pytest.mark.parametrize("value", [1e300, -1e300, 1e30, -1.0])
def test_extreme_pixels_are_a_clear_error_not_a_nan_complaint(value):
    pre = ImagePreprocessor().fit(_images())
    images = _images(n=5, seed=1)
    images[3, 2, 2] = value
    with pytest.raises(DataError) as caught:
        pre.transform(images)
    assert not isinstance(caught.value, NonFiniteError)
    assert "[0, 1]" in str(caught.value) and "index [3]" in str(caught.value)


@pytest.mark.parametrize("name", list(IMAGE_FACTORIES))
def test_image_detectors_score_extreme_pixels_finitely_or_refuse_them(name):
    detector = IMAGE_FACTORIES[name]().fit(_images())
    images = _images(n=6, seed=2)
    images[1, 0, 0] = 1e-300
    scores = detector.decision_function(images)
    assert np.isfinite(scores).all()
    white = np.ones((1, 8, 8))  # the brightest image possible: an anomaly with a finite score
    assert np.isfinite(detector.decision_function(white)).all()
    images[4, 4, 4] = 1e300
    with pytest.raises(DataError, match=r"index \[4\]"):
        detector.decision_function(images)


# -- scores supplied by users -----------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_threshold_and_metrics_refuse_non_finite_scores_naming_rows(bad):
    scores = np.array([0.1, 0.2, bad, 0.4, bad])
    y = np.array([0, 0, 1, 1, 0])
    for call in (lambda: choose_threshold(scores, y, "f1"), lambda: choose_threshold(scores, y, "fpr:0.1"),
                 lambda: roc_auc(y, scores), lambda: evaluate(y, scores, threshold=0.3)):
        with pytest.raises(DataError, match=r"row\(s\) 2, 4;") as caught:
            call()
        assert isinstance(caught.value, OddkitError)


@pytest.mark.parametrize("name", ["gaussian", "knn", "default"])
def test_an_infinity_never_seen_in_training_is_an_anomaly_even_with_impute(name, tmp_path):
    """impute='median' fills missing values, not values far outside the training range: +inf in a
    column that never held it scores at least out_of_range_score() and is labelled an anomaly; an
    infinity of the sign a column did hold in training (e.g. a ratio over zero) is imputed, as NaN is.
    Saved and loaded, the model scores the same."""
    from oddkit import default_detector, load

    X = _normal_table(n=80)
    X.iloc[[3, 40], 1] = np.inf  # column 1 takes +inf in training; column 0 never does
    make = {"gaussian": lambda: GaussianDetector(impute="median"),
            "knn": lambda: KNNDetector(impute="median"),
            "default": lambda: default_detector(random_state=0, impute="median")}[name]
    detector = make().fit(X)
    assert np.isfinite(detector.decision_scores_).all()
    rows = X.iloc[:4].copy()
    rows.iloc[0, 0] = np.inf        # never seen: out of range
    rows.iloc[1, 0] = -np.inf       # never seen: out of range
    rows.iloc[2, 1] = np.inf        # seen in training: the median, as NaN
    rows.iloc[3, 1] = np.nan
    scores = detector.decision_function(rows)
    floor = detector.out_of_range_score()
    assert np.isfinite(scores).all() and (scores[:2] >= floor).all()
    assert detector.predict(rows).tolist()[:2] == [1, 1]
    as_median = rows.iloc[2:4].copy()
    as_median.iloc[:, 1] = detector.preprocessor_.medians_[1]
    np.testing.assert_allclose(scores[2:], detector.decision_function(as_median), rtol=1e-6)
    detector.save(tmp_path / "m")
    np.testing.assert_array_equal(load(tmp_path / "m").decision_function(rows), scores)


def test_a_model_saved_before_infinities_were_recorded_imputes_every_infinity():
    X = _normal_table(n=60)
    pre = TablePreprocessor(impute="median").fit(X)
    arrays, meta = pre.get_state()
    np.testing.assert_array_equal(arrays["infinities_seen"], np.zeros(X.shape[1]))
    old = {k: v for k, v in arrays.items() if k != "infinities_seen"}
    back = TablePreprocessor.from_state(old, meta)
    row = X.iloc[:1].copy()
    row.iloc[0, 0] = np.inf
    median_row = row.copy()
    median_row.iloc[0, 0] = pre.medians_[0]
    np.testing.assert_array_equal(back.transform(row), pre.transform(median_row))  # as such folders scored
    assert pre.transform(row)[0, 0] == STANDARDIZED_BOUND  # a new fit: out of range
    with pytest.raises(Exception, match="infinities_seen"):
        TablePreprocessor.from_state({**arrays, "infinities_seen": np.full(X.shape[1], 5.0)}, meta)
