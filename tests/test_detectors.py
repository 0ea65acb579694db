"""Behaviour of every detector: ranking real anomalies, conventions, options, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.metrics import roc_auc_score

from conftest import fast_autoencoder, shared_clean_split
from oddkit import (
    GaussianDetector,
    IsolationForestDetector,
    KNNDetector,
    LOFDetector,
    OneClassSVMDetector,
    PCADetector,
    default_detector,
)
from oddkit.exceptions import (
    ColumnMismatchError,
    EmptyDataError,
    NonFiniteError,
    ParameterError,
    TooFewRowsError,
    UnseenCategoryError,
)

FACTORIES = {
    "autoencoder": fast_autoencoder,
    "gaussian": GaussianDetector,
    "pca": PCADetector,
    "ocsvm": OneClassSVMDetector,
    "iforest": lambda **kw: IsolationForestDetector(random_state=0, **kw),
    "knn": KNNDetector,
    "lof": LOFDetector,
    "default": lambda **kw: default_detector(random_state=0, **kw),
}
ALL = pytest.mark.parametrize("name", list(FACTORIES))

# Lowest test AUROC each detector must reach when trained on normal rows only. Measured with these
# settings (seed 0): breast cancer AE 0.965, Gaussian 0.968, PCA 0.926, OCSVM 0.959, IForest 0.963;
# cardio 0.934, 0.939, 0.881, 0.956, 0.961; thyroid 0.966, 0.976, 0.709, 0.983, 0.987; LOF 0.953 on
# breast cancer, 0.915 on cardio, 0.951 on thyroid. The bounds
# leave about 0.03 for platform differences in floating point, not room for regressions.
BREAST_CANCER_BOUNDS = {"autoencoder": 0.94, "gaussian": 0.94, "pca": 0.9, "ocsvm": 0.93, "iforest": 0.93, "knn": 0.93,
                        "lof": 0.92, "default": 0.93}
SHARED_BOUNDS = {
    "adbench_cardio": {"autoencoder": 0.9, "gaussian": 0.91, "pca": 0.85, "ocsvm": 0.93, "iforest": 0.93, "knn": 0.9,
                       "lof": 0.885, "default": 0.91},
    "adbench_thyroid": {"autoencoder": 0.93, "gaussian": 0.95, "pca": 0.68, "ocsvm": 0.95, "iforest": 0.95,
                        "knn": 0.95, "lof": 0.92, "default": 0.95},
}


@ALL
def test_ranks_malignant_above_benign(name, breast_cancer_split):
    X_train, X_test, y_test = breast_cancer_split
    detector = FACTORIES[name]().fit(X_train)
    auroc = roc_auc_score(y_test, detector.decision_function(X_test))
    assert auroc >= BREAST_CANCER_BOUNDS[name], f"{name}: AUROC {auroc:.3f}"


@pytest.mark.parametrize("dataset", list(SHARED_BOUNDS))
@ALL
def test_ranks_anomalies_on_shared_data(name, dataset):
    X_train, X_test, y_test = shared_clean_split(dataset)
    detector = FACTORIES[name]().fit(X_train)
    auroc = roc_auc_score(y_test, detector.decision_function(X_test))
    assert auroc >= SHARED_BOUNDS[dataset][name], f"{name} on {dataset}: AUROC {auroc:.3f}"


@ALL
def test_conventions(name, breast_cancer_split):
    X_train, X_test, _ = breast_cancer_split
    detector = FACTORIES[name](contamination=0.05).fit(X_train)
    assert detector.n_features_in_ == X_train.shape[1]
    assert list(detector.feature_names_in_) == list(X_train.columns)
    assert detector.decision_scores_.shape == (len(X_train),)
    # contamination sets the threshold: about 5% of the training rows are flagged.
    assert abs(detector.labels_.mean() - 0.05) < 0.02
    if name not in ("knn", "lof", "default"):  # KNN and LOF leave a training row out of its own neighbours
        np.testing.assert_array_equal(detector.labels_, detector.predict(X_train))
    scores = detector.decision_function(X_test)
    assert scores.dtype == np.float64 and np.all(np.isfinite(scores))
    np.testing.assert_array_equal(detector.predict(X_test), (scores >= detector.threshold_).astype(int))
    proba = detector.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    order = np.argsort(scores)
    assert np.all(np.diff(proba[order, 1]) >= -1e-12), "probability of anomaly must grow with the score"
    np.testing.assert_array_equal(FACTORIES[name](contamination=0.05).fit_predict(X_train), detector.labels_)
    # y is ignored by fit.
    again = FACTORIES[name](contamination=0.05).fit(X_train, y=np.ones(len(X_train)))
    np.testing.assert_allclose(again.decision_function(X_test), scores)


def test_calibrated_probabilities_follow_dev_labels(breast_cancer_split):
    X_train, X_test, y_test = breast_cancer_split
    detector = GaussianDetector().fit(X_train).calibrate(X_test, y_test)
    proba = detector.predict_proba(X_test)[:, 1]
    # Platt scaling: the mean predicted probability matches the dev anomaly rate, and the
    # probabilities are closer to the truth (Brier score) than the label-free "unify" ones.
    assert abs(proba.mean() - y_test.mean()) < 0.02
    unify = detector.predict_proba(X_test, method="unify")[:, 1]
    assert np.mean((proba - y_test) ** 2) < np.mean((unify - y_test) ** 2)
    assert proba[y_test == 1].mean() > 0.75 and proba[y_test == 0].mean() < 0.3


@ALL
def test_single_row_and_degenerate_columns(name, mixed_frame):
    detector = FACTORIES[name]().fit(mixed_frame)
    one = detector.decision_function(mixed_frame.iloc[[0]])
    assert one.shape == (1,) and np.isfinite(one).all()
    shifted = mixed_frame.assign(constant=7.0, amount_copy=mixed_frame["amount"] * 3)
    assert np.isfinite(detector.decision_function(shifted)).all()


def test_random_state_repeats_and_matters():
    X = np.random.default_rng(0).normal(size=(300, 6))
    a = fast_autoencoder(epochs=5, random_state=3).fit(X).decision_function(X)
    b = fast_autoencoder(epochs=5, random_state=3).fit(X).decision_function(X)
    c = fast_autoencoder(epochs=5, random_state=4).fit(X).decision_function(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_autoencoder_architecture_embedding_and_history():
    X = np.random.default_rng(0).normal(size=(400, 12))
    detector = fast_autoencoder(epochs=200, patience=3).fit(X)
    assert detector.hidden_sizes_ == (24,) and detector.latent_dim_ == 3
    assert detector.transform(X).shape == (400, 3)
    history = detector.history_
    assert history["stopped_early"] and len(history["val_loss"]) < 200
    assert history["val_loss"][history["best_epoch"]] == min(history["val_loss"])
    custom = fast_autoencoder(epochs=2, hidden_sizes=(16, 8), latent_dim=4).fit(X)
    assert custom.transform(X[:5]).shape == (5, 4)


@pytest.mark.parametrize("noise", ["gaussian", "mask"])
def test_denoising_autoencoder(noise, breast_cancer_split):
    X_train, X_test, y_test = breast_cancer_split
    detector = fast_autoencoder(noise=noise, noise_level=0.2).fit(X_train)
    plain = fast_autoencoder().fit(X_train)
    assert not np.allclose(detector.decision_function(X_test), plain.decision_function(X_test))
    assert roc_auc_score(y_test, detector.decision_function(X_test)) >= 0.93


def test_explain_sums_one_hot_groups_back(mixed_frame):
    detector = fast_autoencoder(epochs=10).fit(mixed_frame)
    odd = mixed_frame.iloc[:5].assign(hour=500)
    shares = detector.explain(odd)
    assert list(shares.columns) == list(mixed_frame.columns)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-6)
    # The column that was made absurd carries most of the error.
    assert (shares.idxmax(axis=1) == "hour").all()


def test_gaussian_matches_scipy_logpdf():
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([1.0, -2.0, 5.0], [[4, 1, 0.5], [1, 2, 0.3], [0.5, 0.3, 1]], size=500)
    X_new = rng.normal(size=(20, 3)) * 3
    detector = GaussianDetector(ridge=0.0).fit(X)
    mean, cov = X.mean(axis=0), np.cov(X, rowvar=False, bias=True)
    # rtol 1e-6: oddkit's preprocessing hands detectors float32, scipy works in float64 throughout.
    np.testing.assert_allclose(detector.decision_function(X_new), -multivariate_normal(mean, cov).logpdf(X_new),
                               rtol=1e-6)


def test_gaussian_shrinkage_handles_more_columns_than_rows():
    X = np.random.default_rng(0).normal(size=(10, 40))
    for shrinkage in ("ledoit_wolf", "oas", 0.3):
        detector = GaussianDetector(shrinkage=shrinkage).fit(X)
        assert 0 < detector.shrinkage_ <= 1
        assert np.isfinite(detector.decision_function(X)).all()


def test_pca_matches_sklearn_reconstruction():
    from sklearn.decomposition import PCA

    X = np.random.default_rng(0).normal(size=(200, 6)) @ np.random.default_rng(1).normal(size=(6, 6))
    detector = PCADetector(n_components=3).fit(X)
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    pca = PCA(n_components=3).fit(Z)
    expected = np.mean((Z - pca.inverse_transform(pca.transform(Z))) ** 2, axis=1)
    np.testing.assert_allclose(detector.decision_function(X), expected, rtol=1e-5, atol=1e-9)
    assert PCADetector(n_components=0.5).fit(X).n_components_ <= 3


def test_pca_always_leaves_a_residual_to_score():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))  # independent columns: 0.9 of the variance needs all three axes
    for n_components in (0.9, 3, 10):
        detector = PCADetector(n_components=n_components).fit(X)
        assert detector.n_components_ == 2
        # A real residual (about a third of a unit variance), not rounding noise (about 1e-32).
        assert np.median(detector.decision_function(X)) > 0.01
    one_column = PCADetector().fit(X[:, :1])
    assert one_column.n_components_ == 0
    assert one_column.decision_function([[10.0]])[0] > one_column.decision_function([[0.0]])[0]


def test_knn_matches_brute_force_neighbours():
    rng = np.random.default_rng(0)
    X, X_new = rng.normal(size=(80, 4)), rng.normal(size=(10, 4)) * 2
    mean, std = X.mean(axis=0), X.std(axis=0)
    Z, Z_new = (X - mean) / std, (X_new - mean) / std
    to_train = np.sqrt(((Z_new[:, None] - Z[None]) ** 2).sum(-1))
    among_train = np.sqrt(((Z[:, None] - Z[None]) ** 2).sum(-1))
    np.fill_diagonal(among_train, np.inf)  # a training row is not its own neighbour
    for method, reduce in [("largest", lambda d: d[:, 4]), ("mean", lambda d: d[:, :5].mean(1)),
                           ("median", lambda d: np.median(d[:, :5], 1))]:
        detector = KNNDetector(n_neighbors=5, method=method).fit(X)
        np.testing.assert_allclose(detector.decision_function(X_new), reduce(np.sort(to_train, 1)), rtol=1e-5)
        np.testing.assert_allclose(detector.decision_scores_, reduce(np.sort(among_train, 1)), rtol=1e-5)


# -- bad input -----------------------------------------------------------------------------------

@ALL
def test_nan_names_column_and_rows_and_impute_fixes_it(name, mixed_frame):
    broken = mixed_frame.copy()
    broken.loc[[3, 7], "hour"] = np.nan
    with pytest.raises(NonFiniteError, match=r"hour.*3, 7.*impute"):
        FACTORIES[name]().fit(broken)
    detector = FACTORIES[name](impute="median").fit(broken)
    assert np.isfinite(detector.decision_function(broken)).all()
    with pytest.raises(NonFiniteError, match="amount"):
        FACTORIES[name]().fit(mixed_frame).decision_function(mixed_frame.assign(amount=np.inf))


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")  # the width case passes an array
def test_column_mismatch_messages_are_one_line_and_name_the_fix(mixed_frame):
    """scikit-learn's refusals run over several lines; oddkit's say it in one, with the fix. Columns
    in another order are refused (Python does not guess), and the fix the message gives works."""
    detector = GaussianDetector().fit(mixed_frame)
    reordered = mixed_frame[mixed_frame.columns[::-1]]
    cases = {
        "reordered": (reordered, r"^X has the training columns in another order \(column 0 is 'channel', in training "
                                 r"'amount'\); reorder them as in training: X\[detector\.feature_names_in_\]$"),
        "missing and new": (mixed_frame.rename(columns={"hour": "hr"}),
                            r"^X's columns differ from training \(missing 'hour'; new 'hr'\); pass every training "
                            r"column, in the training order: 'amount', 'amount_copy', 'hour', 'constant', 'channel'$"),
        "new": (mixed_frame.assign(note=1.0), r"\(new 'note'\); keep the training columns, in the training order: "
                                              r"X\[detector\.feature_names_in_\]$"),
        "width": (mixed_frame.to_numpy()[:, :3], r"^X has 3 features, but GaussianDetector is expecting 5 features as "
                                                 r"input; pass the same columns, in the same order, as in training: "),
    }
    for name, (X, message) in cases.items():
        with pytest.raises(ColumnMismatchError, match=message) as caught:
            detector.decision_function(X)
        assert "\n" not in str(caught.value), name
    np.testing.assert_array_equal(detector.decision_function(reordered[detector.feature_names_in_]),
                                  detector.decision_function(mixed_frame))


def test_column_mismatch_unseen_category_and_sizes(mixed_frame):
    detector = GaussianDetector().fit(mixed_frame)
    with pytest.raises(ColumnMismatchError, match="hour"):
        detector.decision_function(mixed_frame.drop(columns="hour"))
    with pytest.raises(ColumnMismatchError, match="extra"):
        detector.decision_function(mixed_frame.assign(extra=1.0))
    with pytest.raises(ColumnMismatchError, match="features"):
        GaussianDetector().fit(np.ones((5, 3)) * np.arange(5)[:, None]).decision_function(np.ones((2, 4)))
    odd = mixed_frame.iloc[:3].assign(channel="fax")
    with pytest.raises(UnseenCategoryError, match=r"channel.*fax.*ignore"):
        detector.decision_function(odd)
    lenient = GaussianDetector(unknown_categories="ignore").fit(mixed_frame)
    assert np.isfinite(lenient.decision_function(odd)).all()
    with pytest.raises(TooFewRowsError, match="2 rows"):
        GaussianDetector().fit(mixed_frame.iloc[:1])
    with pytest.raises(EmptyDataError):
        GaussianDetector().fit(mixed_frame.iloc[:0])
    with pytest.raises(EmptyDataError) as empty:
        GaussianDetector().fit(np.empty((0, 3)))
    assert ".." not in str(empty.value) and str(empty.value).endswith("(rows x columns).")


def _contaminated_blob():
    """Normal rows on a tilted plane in 6-D, plus a tight cluster of anomalies off it (7% of the
    training rows): a detector that fits them learns to call them normal."""
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 6))
    normal = rng.normal(size=(1100, 3)) @ basis + 0.1 * rng.normal(size=(1100, 6))
    anomalies = rng.normal(size=(160, 6)) * 0.3 + 4.0
    train = np.vstack([normal[:800], anomalies[:60]])
    test = np.vstack([normal[800:], anomalies[60:]])
    return train, test, np.r_[np.zeros(300), np.ones(100)]


def test_robust_gaussian_ignores_hidden_anomalies():
    # Standard normal rows and 8% of the training rows in a tight cluster at (3, 3): fitted with
    # them, the Gaussian's mean and covariance lean towards the cluster and its rows look less odd.
    rng = np.random.default_rng(0)
    cluster = 3.0 + 0.3 * rng.normal(size=(200, 2))
    train = np.vstack([rng.normal(size=(920, 2)), cluster[:80]])
    test, y = np.vstack([rng.normal(size=(500, 2)), cluster[80:]]), np.r_[np.zeros(500), np.ones(120)]
    plain = GaussianDetector().fit(train)
    robust = GaussianDetector(robust=True).fit(train)
    assert roc_auc_score(y, robust.decision_function(test)) > 0.99 > roc_auc_score(y, plain.decision_function(test))
    # Its mean is the normal rows' (about 0, here in standardised units of the training data).
    clean_mean = (0.0 - plain.preprocessor_.center_) / plain.preprocessor_.scale_
    np.testing.assert_allclose(robust.location_, clean_mean, atol=0.1)


def test_robust_autoencoder_ignores_hidden_anomalies():
    train, test, y = _contaminated_blob()
    plain = fast_autoencoder(robust=False).fit(train)
    robust = fast_autoencoder(robust=True).fit(train)
    assert roc_auc_score(y, robust.decision_function(test)) >= max(0.95, roc_auc_score(y, plain.decision_function(test)))


def test_autoencoder_error_weightings():
    """"covariance" whitens residuals with their training covariance; "columns" divides by each
    column's mean squared error; None is the plain mean squared error (all in standardised units)."""
    X = np.random.default_rng(1).normal(size=(400, 5)) @ np.random.default_rng(2).normal(size=(5, 5))
    rows = X[:7]
    # One untrimmed network: the residual covariance of every training row (a robust fit leaves out
    # the worst), and a score that is that network's error (several members average theirs).
    detectors = {w: fast_autoencoder(epochs=5, normalize_errors=w, robust=False, n_estimators=1).fit(X)
                 for w in ("covariance", "columns", None)}
    Z = detectors[None]._prepare(rows, reset=False)
    residuals = Z - detectors[None].reconstruct(rows)
    np.testing.assert_allclose(detectors[None].decision_function(rows), (residuals ** 2).mean(axis=1), rtol=1e-4)
    d = detectors["covariance"]
    residuals = d._prepare(rows, reset=False) - d.reconstruct(rows)
    whitened = (residuals - d.residual_mean_[0]) @ d.residual_whitener_[0].T
    np.testing.assert_allclose(d.decision_function(rows), (whitened ** 2).mean(axis=1), rtol=1e-4)
    # The whitener inverts the residual covariance (with its small ridge).
    training = d._prepare(X, reset=False) - d.reconstruct(X)
    covariance = np.cov(training, rowvar=False, bias=True)
    covariance[np.diag_indices(5)] += 1e-3 * np.trace(covariance) / 5 + 1e-6
    np.testing.assert_allclose(d.residual_whitener_[0].T @ d.residual_whitener_[0] @ covariance, np.eye(5), atol=1e-3)
    assert detectors["columns"].residual_whitener_ is None
    # The training scores reuse the residuals of that fit-time pass: the same as scoring the rows.
    for detector in (d, fast_autoencoder(epochs=2, robust=True).fit(X)):
        np.testing.assert_array_equal(detector.decision_scores_, detector.decision_function(X))
    # Over more rows than one scoring chunk, the fit-time pass goes chunk by chunk as scoring does.
    from oddkit.detectors.autoencoder import SCORE_CHUNK_ROWS

    many = np.random.default_rng(3).normal(size=(2 * SCORE_CHUNK_ROWS + 17, 3))
    big = fast_autoencoder(epochs=1).fit(many)
    assert big.residual_whitener_ is not None and big.n_estimators_ > 1
    np.testing.assert_array_equal(big.decision_scores_, big.decision_function(many))
    # A robust fit whitens by its kept rows, passed as a mask (one member copied at a time): the same
    # as whitening the kept rows' residuals themselves.
    from oddkit.detectors.autoencoder import _residual_whitening

    residuals = np.random.default_rng(4).normal(size=(3, 50, 4)).astype(np.float32)
    kept = np.arange(50) % 3 != 0
    for masked, copied in zip(_residual_whitening(residuals, kept), _residual_whitening(residuals[:, kept])):
        np.testing.assert_array_equal(masked, copied)
    assert not np.allclose(_residual_whitening(residuals)[0], _residual_whitening(residuals, kept)[0])
    with pytest.raises(ParameterError, match="normalize_errors"):
        fast_autoencoder(epochs=1, normalize_errors="diagonal").fit(X)
