"""Explanations (oddkit.explain and every detector's explain): planted anomalies, index, one-hot
groups, save/load."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from oddkit import (
    AutoEncoderDetector,
    DisentangledAutoEncoderDetector,
    GaussianDetector,
    IsolationForestDetector,
    KNNDetector,
    LOFDetector,
    OneClassSVMDetector,
    PCADetector,
    VAEDetector,
    VQVAEDetector,
    default_detector,
    load,
)
from oddkit.exceptions import ExplainError, MissingDependencyError, ModelFileError, OddkitError
from oddkit.explain import mahalanobis_contributions, shares_from_contributions

NUMERIC = ["a", "b", "c", "d", "e", "f"]
SHIFT = 6.0


def _table(n: int, seed: int) -> pd.DataFrame:
    """Six numeric columns (two correlated pairs, two independent) and a categorical one."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 4))
    numeric = np.c_[base[:, 0], 0.6 * base[:, 0] + 0.8 * base[:, 1], base[:, 2],
                    0.6 * base[:, 2] + 0.8 * base[:, 3], rng.normal(size=n), rng.normal(size=n)]
    frame = pd.DataFrame(numeric, columns=NUMERIC)
    frame["kind"] = rng.choice(["x", "y", "z"], size=n)
    return frame


TRAIN = _table(300, seed=0)
HELD_OUT = _table(60, seed=1)


def _planted() -> tuple[pd.DataFrame, np.ndarray]:
    """Each held-out row with one numeric column (in turn) shifted by +6 training standard
    deviations; an index of strings, as a user's table might have."""
    rows = HELD_OUT.copy()
    shifted = np.array([NUMERIC[i % len(NUMERIC)] for i in range(len(rows))])
    for i, column in enumerate(shifted):
        rows.loc[i, column] += SHIFT * TRAIN[column].std()
    rows.index = [f"txn-{i}" for i in range(len(rows))]
    return rows, shifted


def _fast(cls, **params):
    return cls(epochs=60, random_state=0, verbose=0, n_threads=1, **params)


DETECTORS = {
    "autoencoder": lambda: _fast(AutoEncoderDetector),
    "autoencoder-columns": lambda: _fast(AutoEncoderDetector, normalize_errors="columns"),
    "vae": lambda: _fast(VAEDetector),
    "vqvae": lambda: _fast(VQVAEDetector),
    "disentangled": lambda: _fast(DisentangledAutoEncoderDetector),
    "gaussian": lambda: GaussianDetector(),
    # Three components: the default (90% of the variance: six of the nine preprocessed columns) keeps
    # the directions of the independent columns e and f, so a shift there does not raise its score.
    "pca": lambda: PCADetector(n_components=3),
    "knn": lambda: KNNDetector(),
    "knn-mean": lambda: KNNDetector(n_neighbors=4, method="median"),
    "lof": lambda: LOFDetector(),
    "iforest": lambda: IsolationForestDetector(random_state=0),
    "ocsvm": lambda: OneClassSVMDetector(),
    "ensemble": lambda: default_detector(random_state=0),
}

_fitted: dict = {}
_explained: dict = {}


def fitted(name: str):
    if name not in _fitted:
        if name == "ensemble-mean":
            # combine only changes how the fitted members' scores (and explanations) are joined:
            # the fitted ensemble, set to "mean", saves fitting the four members again.
            _fitted[name] = copy.deepcopy(fitted("ensemble")).set_params(combine="mean")
            return _fitted[name]
        detector = DETECTORS[name]()
        if name == "disentangled":
            detector.fit(TRAIN, TRAIN["kind"].to_numpy())
        else:
            detector.fit(TRAIN)
        _fitted[name] = detector
    return _fitted[name]


def explained(name: str) -> pd.DataFrame:
    """The explanation of the planted rows (computed once per detector)."""
    if name not in _explained:
        _explained[name] = fitted(name).explain(_planted()[0])
    return _explained[name]


@pytest.mark.parametrize("name", [*DETECTORS, "ensemble-mean"])
def test_the_shifted_column_carries_the_largest_share(name):
    rows, shifted = _planted()
    shares = explained(name)
    assert list(shares.columns) == list(TRAIN.columns)
    assert list(shares.index) == list(rows.index)
    assert np.isfinite(shares.to_numpy()).all()
    hits = (shares.idxmax(axis=1).to_numpy() == shifted).mean()
    assert hits >= 0.9, f"{name}: the shifted column has the largest share in only {hits:.0%} of the rows"


@pytest.mark.parametrize("name", ["autoencoder-columns", "vae", "knn", "knn-mean", "lof"])
def test_squared_error_splits_are_non_negative_and_sum_to_one(name):
    shares = explained(name)
    assert (shares.to_numpy() >= 0).all()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-9)


@pytest.mark.parametrize("name", ["iforest", "ocsvm"])
def test_shapley_shares_have_absolute_values_summing_to_one(name):
    shares = explained(name)
    np.testing.assert_allclose(shares.abs().sum(axis=1), 1.0, rtol=1e-9)


def test_pca_shares_sum_to_one():
    np.testing.assert_allclose(explained("pca").sum(axis=1), 1.0, rtol=1e-9)


def test_gaussian_contributions_add_up_to_its_score():
    detector = fitted("gaussian")
    rows, _ = _planted()
    Z = detector._prepare(rows, reset=False)
    contributions, exact = detector._explain_contributions(Z)
    assert exact
    np.testing.assert_allclose(contributions.sum(axis=1) + detector._log_normaliser,
                               detector.decision_function(rows), rtol=1e-9)
    shares = detector.explain(rows)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-9)


@pytest.mark.parametrize("name", ["autoencoder", "autoencoder-columns", "pca"])
def test_reconstruction_contributions_add_up_to_the_score(name):
    detector = fitted(name)
    rows, _ = _planted()
    contributions, _ = detector._explain_contributions(detector._prepare(rows, reset=False))
    np.testing.assert_allclose(contributions.sum(axis=1), detector.decision_function(rows), rtol=1e-4)


def test_knn_contributions_are_the_squared_distance_the_score_uses():
    detector = fitted("knn")
    rows, _ = _planted()
    contributions, _ = detector._explain_contributions(detector._prepare(rows, reset=False))
    np.testing.assert_allclose(np.sqrt(contributions.sum(axis=1)), detector.decision_function(rows), rtol=1e-5)


def test_one_hot_columns_are_summed_back_into_their_column():
    detector = fitted("gaussian")
    rows = HELD_OUT.iloc[:10].copy()
    rows["kind"] = ["x", "y"] * 5
    contributions, _ = detector._explain_contributions(detector._prepare(rows, reset=False))
    assert contributions.shape[1] == 6 + 3  # three one-hot outputs for "kind"
    expected = shares_from_contributions(np.c_[contributions[:, :6], contributions[:, 6:].sum(axis=1)])
    shares = detector.explain(rows)
    np.testing.assert_allclose(shares.to_numpy(), expected)


def test_one_class_svm_kernel_scores_match_scikit_learn():
    detector = fitted("ocsvm")
    Z = detector._prepare(_planted()[0], reset=False)
    np.testing.assert_allclose(detector._kernel_scores(Z), detector._score_array(Z), rtol=1e-6, atol=1e-9)


def test_numpy_input_gets_a_range_index_and_its_column_names():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    shares = PCADetector(n_components=1).fit(X).explain(X[:5])
    assert list(shares.index) == [0, 1, 2, 3, 4]
    assert shares.shape == (5, 3)


@pytest.mark.parametrize("name", ["autoencoder", "knn", "iforest", "ocsvm", "ensemble"])
def test_explanations_survive_save_and_load(name, tmp_path):
    detector = fitted(name)
    rows = _planted()[0].iloc[:12]
    detector.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    # Saving changes nothing: the same rows explain identically before and after.
    pd.testing.assert_frame_equal(loaded.explain(rows), detector.explain(rows), check_exact=True)
    # A 12-row batch against the whole frame: float32 networks may differ in the last bit with the
    # batch size (BLAS picks other kernels), the other detectors not at all.
    pd.testing.assert_frame_equal(loaded.explain(rows), explained(name).iloc[:12], check_exact=False, rtol=1e-5)


def test_a_tampered_background_is_refused(tmp_path):
    from safetensors.numpy import load_file, save_file

    detector = fitted("ocsvm")
    folder = tmp_path / "model"
    detector.save(folder)
    saved = load_file(folder / "weights.safetensors")
    assert saved["model.explain_background"].shape == (32, 9)
    # An edited folder fails its integrity check first; the shape check stands behind it.
    saved["model.explain_background"] = saved["model.explain_background"][:, :3].copy()
    save_file(saved, folder / "weights.safetensors")
    with pytest.raises(ModelFileError):
        load(folder)
    arrays, meta, files = detector._get_model_state()
    for bad in (arrays["explain_background"][:, :3], np.full((4, 9), np.nan, dtype=np.float32)):
        copy = OneClassSVMDetector()
        copy.preprocessor_ = detector.preprocessor_
        with pytest.raises(ModelFileError, match="explain_background"):
            copy._set_model_state({**arrays, "explain_background": bad}, meta, files)


def test_a_model_saved_without_a_background_says_to_refit():
    detector = fitted("ocsvm")
    arrays, meta, files = detector._get_model_state()
    del arrays["explain_background"]
    older = OneClassSVMDetector()
    older.preprocessor_ = detector.preprocessor_
    older._set_model_state(arrays, meta, files)
    older.__dict__.update({k: v for k, v in detector.__dict__.items() if k.endswith("_") and k != "explain_background_"})
    with pytest.raises(ExplainError, match="refit"):
        older.explain(HELD_OUT)


def test_missing_shap_names_the_install_command(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_shap(name, *args, **kwargs):
        if name == "shap" or name.startswith("shap."):
            raise ImportError("No module named 'shap'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_shap)
    with pytest.raises(MissingDependencyError, match=r'pip install "oddkit\[explain\]"'):
        fitted("iforest").explain(HELD_OUT.iloc[:3])
    assert issubclass(MissingDependencyError, ImportError) and issubclass(MissingDependencyError, OddkitError)


def test_images_are_refused_by_table_only_detectors():
    rng = np.random.default_rng(0)
    images = rng.random((30, 8, 8))
    detector = default_detector(random_state=0, members=("knn1",)).fit(images)
    with pytest.raises(ExplainError, match="images.*explain_images"):  # the error names what does explain them
        detector.explain(images[:2])


def test_shares_helpers():
    contributions = np.array([[3.0, 1.0], [0.0, 0.0], [2.0, -1.0]])
    np.testing.assert_allclose(shares_from_contributions(contributions), [[0.75, 0.25], [0, 0], [2.0, -1.0]])
    np.testing.assert_allclose(shares_from_contributions(contributions, signed=False),
                               [[0.75, 0.25], [0, 0], [2 / 3, -1 / 3]])
    z = np.array([[1.0, 2.0]])
    precision = np.array([[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(mahalanobis_contributions(z, precision).sum(), (z @ precision @ z.T).item())


def _reference_kernel_scores(svm, rows: np.ndarray) -> np.ndarray:
    """The one-class SVM's score from scikit-learn's own kernel (oddkit's implementation before the
    fused RBF product): the oracle for the fast path."""
    from sklearn.metrics.pairwise import pairwise_kernels

    settings = {"rbf": {"gamma": svm._gamma}, "poly": {"gamma": svm._gamma, "degree": svm.degree, "coef0": svm.coef0}}
    kernel = pairwise_kernels(np.asarray(rows, dtype=np.float64), svm.support_vectors_.astype(np.float64),
                              metric=svm.kernel, **settings[svm.kernel])
    return -(kernel @ svm.dual_coef_.astype(np.float64).ravel() + svm.intercept_[0] + svm.offset_[0])


@pytest.mark.parametrize("kernel", ["rbf", "poly"])
def test_one_class_svm_explanation_equals_kernel_shap_on_scikit_learns_kernel(kernel):
    """The fast path (distinct coalition rows only, the fused RBF product) gives the Shapley values
    shap's KernelExplainer gives on scikit-learn's kernel, row for row: 13 preprocessed columns
    (sampled coalitions), a one-hot and a mostly-zero column (repeated coalition rows)."""
    import shap

    from oddkit.explain import COALITIONS, EXPLAIN_SEED

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(160, 9)), columns=[f"x{i}" for i in range(9)])
    frame["flag"] = np.where(rng.random(160) < 0.9, 0.0, 1.0)
    frame["kind"] = rng.choice(["a", "b", "c"], size=160)
    detector = OneClassSVMDetector(kernel=kernel, nu=0.3).fit(frame)
    rows = frame.iloc[:4].copy()
    rows.loc[rows.index[0], "x3"] += 5.0
    Z = detector._prepare(rows, reset=False)
    assert Z.shape[1] == 13 > 9  # Kernel SHAP samples its coalitions: the seeded path

    contributions, signed = detector._explain_contributions(Z)
    explainer = shap.KernelExplainer(lambda r: _reference_kernel_scores(detector.estimator_, r),
                                     detector.explain_background_)
    state = np.random.get_state()
    np.random.seed(EXPLAIN_SEED)
    expected = explainer.shap_values(Z.astype(np.float32), nsamples=COALITIONS, l1_reg=False, silent=True)
    np.random.set_state(state)
    expected = np.asarray(expected, dtype=np.float64).reshape(Z.shape)
    assert not signed
    np.testing.assert_allclose(contributions, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    shares = detector.explain(rows)
    assert abs(shares["x3"].iloc[0]) == shares.iloc[0].abs().max()  # the shifted column weighs most


def test_kernel_shap_scores_each_distinct_row_once():
    from oddkit.explain import _score_distinct_rows

    rows = np.array([[0, 1], [2, 3], [0, 1], [0, 1], [2, 3], [-0.0, 1]], dtype=np.float32)
    seen = []

    def score(batch):
        seen.append(batch.copy())
        return batch[:, 0] * 10 + batch[:, 1]

    np.testing.assert_array_equal(_score_distinct_rows(score, rows), [1, 23, 1, 1, 23, 1])
    assert len(seen) == 1 and len(seen[0]) == 3  # -0.0 differs from 0.0 bit for bit: scored apart, the same


# -- images: per-pixel maps (oddkit.image_explanations.explain_images) -------------------------------------------

SIDE = 16
SQUARE = (10, 1, 14, 5)
"""The planted bright square: (left, top, right, bottom), columns 10-13, rows 1-4 (the top right,
where no training image has anything but noise)."""


def _overlaps(region, box=SQUARE) -> bool:
    left, top, right, bottom = box
    return region.left < right and left < region.right and region.top < bottom and top < region.bottom


@pytest.fixture(scope="module")
def square_images():
    """Training images (horizontal bars, 16x16 uint8) and test images: normal ones whose bar lies in the
    lower half, each with a bright 4x4 square planted at SQUARE."""
    from synthetic_images import bar_images

    train = bar_images(150, size=SIDE, seed=1)
    candidates = bar_images(60, size=SIDE, seed=2)
    low = [x for x in candidates if np.flatnonzero(x.mean(axis=1) > 100).min() >= 7][:4]
    test = np.stack(low)
    left, top, right, bottom = SQUARE
    test[:, top:bottom, left:right] = 255
    return train, test


IMAGE_DETECTORS = {
    "knn": lambda: KNNDetector(),
    "gradient-knn": lambda: default_detector(),  # oddkit's default for images: GradientKNNDetector
    "autoencoder": lambda: AutoEncoderDetector(epochs=15, random_state=0, verbose=0, n_threads=1),
    "vae": lambda: VAEDetector(epochs=15, random_state=0, verbose=0, n_threads=1),
    "vqvae": lambda: VQVAEDetector(epochs=10, random_state=0, verbose=0, n_threads=1),
    "ensemble": lambda: default_detector(members=("gradient-knn", "knn", "pca"), combine="mean"),
}


@pytest.fixture(scope="module")
def image_models(square_images):
    train, _ = square_images
    return {name: make().fit(train) for name, make in IMAGE_DETECTORS.items()}


@pytest.mark.parametrize("name", list(IMAGE_DETECTORS))
def test_the_top_region_of_an_image_covers_its_planted_square(name, image_models, square_images):
    from oddkit.image_explanations import explain_images, top_regions

    _, test = square_images
    detector = image_models[name]
    explanation = explain_images(detector, test)
    assert explanation.maps.shape == (len(test), SIDE, SIDE) and np.isfinite(explanation.maps).all()
    np.testing.assert_allclose(explanation.scores, detector.decision_function(test))
    assert explanation.patch_size == 2  # a seventh of 16, at least 2
    for heat in explanation.maps:
        [region] = top_regions(heat, explanation.patch_size)
        assert _overlaps(region), (name, region)
        assert region.right - region.left == region.bottom - region.top == 2
    # Occlusion, for any detector, finds it too (patches of 4 pixels here: 49 positions per image).
    occluded = explain_images(detector, test[:2], method="occlusion", patch_size=4)
    assert occluded.method == "occlusion" and occluded.patch_size == 4
    for heat in occluded.maps:
        assert _overlaps(top_regions(heat, 4)[0]), name


@pytest.mark.parametrize("name", ["knn", "gradient-knn", "autoencoder", "vqvae", "ensemble"])
def test_exact_image_maps_sum_to_the_score(name, image_models, square_images):
    from oddkit.image_explanations import explain_images

    _, test = square_images
    explanation = explain_images(image_models[name], test)
    assert explanation.method != "occlusion"
    if name != "ensemble":  # (its PCA member's split z_j r_j may be negative)
        assert (explanation.maps >= -1e-12).all()  # squared errors and distances: nothing negative
    np.testing.assert_allclose(explanation.maps.sum(axis=(1, 2)), explanation.scores, rtol=1e-5)


def test_vae_map_is_the_score_less_its_kl_term(image_models, square_images):
    """The oracle: the closed-form KL of the code, computed apart; pixels carry the rest of the score."""
    import torch

    from oddkit.image_explanations import explain_images
    from oddkit.nn.vae import gaussian_kl

    _, test = square_images
    detector = image_models["vae"]
    explanation = explain_images(detector, test)
    Z = torch.from_numpy(detector._prepare(test, reset=False))
    with torch.inference_mode():
        mean, log_var = detector.model_.encode_distribution(Z)
        kl = (detector.beta * gaussian_kl(mean, log_var)).double().mean(dim=0).numpy()
    np.testing.assert_allclose(explanation.maps.sum(axis=(1, 2)) + kl, explanation.scores, rtol=1e-4)
    assert (explanation.maps >= -1e-6).all()  # a Bernoulli KL per pixel


def test_knn_pixel_map_against_brute_force(image_models, square_images):
    """KNN's map: squared pixel differences to the k-th nearest training image, found by brute force."""
    from oddkit.image_explanations import explain_images

    train, test = square_images
    detector = image_models["knn"]
    pixels, rows = train.reshape(len(train), -1) / 255.0, test.reshape(len(test), -1) / 255.0
    distances = np.sqrt(((rows[:, None] - pixels[None]) ** 2).sum(axis=2))
    kth = pixels[np.argsort(distances, axis=1, kind="stable")[:, detector.n_neighbors_ - 1]]
    expected = ((rows - kth) ** 2).reshape(test.shape)
    expected *= (np.sort(distances, axis=1)[:, detector.n_neighbors_ - 1] / expected.sum(axis=(1, 2)))[:, None, None]
    np.testing.assert_allclose(explain_images(detector, test).maps, expected, rtol=1e-4, atol=1e-9)


def test_transformation_detector_is_explained_by_occlusion(square_images):
    """No per-pixel term to split: occlusion, each pixel the mean score drop of the patches over it."""
    from oddkit.detectors.transforms import TransformationDetector
    from oddkit.image_explanations import explain_images

    train, test = square_images
    detector = TransformationDetector(epochs=1, conv_channels=(4, 8), hidden=16, random_state=0, verbose=0,
                                      n_threads=1).fit(train[:40])
    explanation = explain_images(detector, test[:1], patch_size=8)
    assert explanation.method == "occlusion" and explanation.maps.shape == (1, SIDE, SIDE)
    # Patches of 8 moved by 4: 3 x 3 positions; the corner pixel lies under one patch only.
    painted = test[:1].astype(np.float32) / 255
    painted[0, :8, :8] = np.median(painted[0])
    drop = explanation.scores[0] - detector.decision_function(painted)[0]
    np.testing.assert_allclose(explanation.maps[0, 0, 0], drop, rtol=1e-5, atol=1e-9)


def test_top_regions_pick_the_heaviest_patches_without_overlap():
    from oddkit.image_explanations import top_regions

    heat = np.zeros((6, 8))
    heat[1:3, 5:7] = 2.0    # mass 8: the first region
    heat[4, 0] = 3.0        # mass 3
    heat[0, 0] = -5.0       # negative values count as nothing
    first, second, third = top_regions(heat, 2, n_regions=3)
    assert (first.left, first.top, first.right, first.bottom) == (5, 1, 7, 3) and first.share == pytest.approx(8 / 11)
    assert second.share == pytest.approx(3 / 11) and second.left == 0 and second.top in (3, 4)
    assert not (third.left < first.right and first.left < third.right and third.top < first.bottom
                and first.top < third.bottom)
    assert len(top_regions(heat, 6, n_regions=5)) == 1  # one 6x6 patch of a 6x8 map overlaps every other
    [empty] = top_regions(np.zeros((4, 4)), 3)
    assert (empty.left, empty.top, empty.share) == (0, 0, 0.0)


def test_explain_images_refuses_what_it_cannot_explain(image_models, square_images):
    from oddkit.exceptions import ColumnMismatchError, ParameterError
    from oddkit.image_explanations import explain_images

    _, test = square_images
    table_model = KNNDetector().fit(np.random.default_rng(0).normal(size=(30, 3)))
    with pytest.raises(ExplainError, match="not fitted on images"):
        explain_images(table_model, test)
    with pytest.raises(ParameterError, match="method"):
        explain_images(image_models["knn"], test, method="gradients")
    with pytest.raises(ParameterError, match="patch_size"):
        explain_images(image_models["knn"], test, patch_size=0)
    with pytest.raises(ColumnMismatchError):
        explain_images(image_models["knn"], test[:, :8, :8])
