"""GradientKNNDetector and gradient_histograms: the features against a per-pixel loop, ranking
unlike images, saving, bad input, the image default of the ensemble and the CLI; KNNDetector's raw
pixel distances on images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from sklearn.metrics import roc_auc_score

from conftest import run_cli
from oddkit import EnsembleDetector, GradientKNNDetector, KNNDetector, default_detector, load
from oddkit.detectors.gradients import gradient_histograms
from oddkit.detectors.ensemble import DEFAULT_MEMBERS
from oddkit.exceptions import ColumnMismatchError, DataError, ModelFileError, ParameterError


def loop_histograms(images, cell_size, n_bins, sigma):
    """The oracle: gradient_histograms written pixel by pixel, straight from its docstring."""
    n, channels, height, width = images.shape
    cell_h, cell_w = min(cell_size, height), min(cell_size, width)
    cells_h, cells_w = height // cell_h, width // cell_w
    out = np.zeros((n, cells_h * cells_w * n_bins))
    for i in range(n):
        smooth = [gaussian_filter(images[i, c].astype(np.float64), sigma, mode="nearest") if sigma else
                  images[i, c].astype(np.float64) for c in range(channels)]
        grads = [np.gradient(s) for s in smooth]  # (d/drow, d/dcol) per channel
        hist = np.zeros((cells_h, cells_w, n_bins))
        for r in range(cells_h * cell_h):
            for col in range(cells_w * cell_w):
                mags = [np.hypot(g[0][r, col], g[1][r, col]) for g in grads]
                c = int(np.argmax(mags))
                angle = np.arctan2(grads[c][0][r, col], grads[c][1][r, col]) % np.pi
                position = angle / np.pi * n_bins
                low = int(np.floor(position))
                share = position - low
                hist[r // cell_h, col // cell_w, low % n_bins] += mags[c] * (1 - share)
                hist[r // cell_h, col // cell_w, (low + 1) % n_bins] += mags[c] * share
        row = np.sqrt(hist.ravel())
        out[i] = row / np.linalg.norm(row) if np.linalg.norm(row) > 0 else row
    return out


@pytest.mark.parametrize("shape, cell_size, n_bins, sigma", [
    ((3, 1, 9, 10), 4, 8, 0.5),   # sides not a multiple of the cell: the remainder is left out
    ((2, 3, 8, 8), 3, 6, 0.0),    # colour: the strongest channel at each pixel
    ((2, 1, 3, 12), 4, 9, 1.0),   # a side shorter than the cell: one cell along it
])
def test_histograms_match_a_pixel_by_pixel_loop(shape, cell_size, n_bins, sigma):
    images = np.random.default_rng(0).random(shape).astype(np.float32)
    fast = gradient_histograms(images, cell_size, n_bins, sigma)
    np.testing.assert_allclose(fast, loop_histograms(images, cell_size, n_bins, sigma), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, rtol=1e-5)


def test_histograms_ignore_contrast_and_see_orientation():
    rng = np.random.default_rng(1)
    images = rng.random((4, 1, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(gradient_histograms(images * 0.3), gradient_histograms(images), atol=1e-5)
    assert not gradient_histograms(np.zeros((2, 1, 12, 12), dtype=np.float32)).any()  # blank: no gradient
    flat_bar = np.zeros((1, 1, 12, 12), dtype=np.float32)
    flat_bar[0, 0, 6, 2:10] = 1.0
    bins = gradient_histograms(flat_bar, sigma=0).reshape(3, 3, 8).sum(axis=(0, 1))
    # A horizontal bar's gradient points up and down (90 degrees): bin 4 of 8 over 0..180 degrees.
    assert bins.argmax() == 4
    upright = gradient_histograms(flat_bar.transpose(0, 1, 3, 2), sigma=0).reshape(3, 3, 8).sum(axis=(0, 1))
    assert upright.argmax() == 0


def bars(rng, n, size=16, upright=False):
    """Normal: horizontal strokes of varying length, row and thickness; anomalies: the same upright."""
    X = rng.uniform(0, 0.1, size=(n, 1, size, size)).astype(np.float32)
    for i in range(n):
        row, start, length, thick = rng.integers(3, 11), rng.integers(1, 5), rng.integers(6, 10), rng.integers(1, 3)
        X[i, 0, row:row + thick, start:start + length] = rng.uniform(0.6, 1.0)
    return X.transpose(0, 1, 3, 2).copy() if upright else X


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    train = bars(rng, 150)
    test = np.concatenate([bars(rng, 40), bars(rng, 20, upright=True)])
    return GradientKNNDetector().fit(train), train, test, np.r_[np.zeros(40), np.ones(20)]


def test_ranks_unlike_shapes_above_the_normal_ones(fitted):
    detector, _, test, y = fitted
    scores = detector.decision_function(test)
    assert np.isfinite(scores).all() and detector.image_shape_ == (1, 16, 16)
    assert roc_auc_score(y, scores) >= 0.99
    assert detector.predict(test[40:]).mean() > 0.9
    assert detector.cell_size_ == 2 and detector.neighbors_._fit_X.shape == (150, 8 * 8 * 8)


def test_scores_are_the_mean_histogram_distance_to_the_k_nearest(fitted):
    detector, train, test, _ = fitted
    # spatial_binning=True: the detector's default since issue 22's fifth round (benchmarks/IMAGES.md)
    features = gradient_histograms(test, cell_size=2, spatial_binning=True)
    train_features = gradient_histograms(train, cell_size=2, spatial_binning=True)
    distances = np.sort(np.linalg.norm(features[:, None] - train_features[None], axis=2), axis=1)
    assert detector.method == "mean"  # the default since issue 22's second round (benchmarks/IMAGES.md)
    np.testing.assert_allclose(detector.decision_function(test), distances[:, :5].mean(axis=1), rtol=1e-4, atol=1e-5)
    largest = GradientKNNDetector(method="largest").fit(train)
    np.testing.assert_allclose(largest.decision_function(test), distances[:, 4], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["mean", "largest", "median"])
def test_every_method_round_trips_through_save_and_load(method, tmp_path):
    rng = np.random.default_rng(5)
    train, test = bars(rng, 40), np.concatenate([bars(rng, 6), bars(rng, 6, upright=True)])
    detector = GradientKNNDetector(n_neighbors=3, method=method).fit(train)
    detector.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded.method == method and loaded.get_params() == detector.get_params()
    np.testing.assert_array_equal(loaded.decision_function(test), detector.decision_function(test))
    assert loaded.threshold_ == detector.threshold_


def test_a_bad_method_is_refused_at_fit_and_in_a_saved_model(fitted):
    images = bars(np.random.default_rng(0), 10)
    with pytest.raises(ParameterError, match="method"):
        GradientKNNDetector(method="sum").fit(images)
    detector = fitted[0]
    saved = GradientKNNDetector(**{**detector.get_params(), "method": "sum"})
    saved.preprocessor_, saved.image_shape_ = detector.preprocessor_, detector.image_shape_
    with pytest.raises(ModelFileError, match="method"):
        saved._set_model_state({"training_rows": detector.neighbors_._fit_X}, {}, {})


def test_save_and_load_give_identical_scores(fitted, tmp_path):
    detector, _, test, _ = fitted
    detector.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert isinstance(loaded, GradientKNNDetector) and loaded.get_params() == detector.get_params()
    np.testing.assert_array_equal(loaded.decision_function(test), detector.decision_function(test))
    assert loaded.threshold_ == detector.threshold_


def test_saved_histograms_that_do_not_fit_the_settings_are_refused(fitted):
    detector, _, _, _ = fitted
    rows = detector.neighbors_._fit_X
    for bad in (rows[:, :-8], -rows, rows[:1]):
        with pytest.raises(ModelFileError, match="histograms"):
            detector._set_model_state({"training_rows": bad}, {}, {})
    with pytest.raises(ModelFileError, match="lacks"):
        detector._set_model_state({}, {}, {})


def test_tables_other_sizes_and_bad_settings_are_refused(fitted):
    detector, _, _, _ = fitted
    with pytest.raises(DataError, match="images.*KNNDetector"):
        GradientKNNDetector().fit(np.random.default_rng(0).random((50, 4)))
    with pytest.raises(ColumnMismatchError):
        detector.decision_function(np.zeros((3, 1, 10, 10), dtype=np.float32))
    images = bars(np.random.default_rng(0), 10)
    for name, value in (("cell_size", 0), ("n_bins", 1), ("sigma", -0.5)):
        with pytest.raises(ParameterError, match=name):
            GradientKNNDetector(**{name: value}).fit(images)


def test_knn_on_images_uses_raw_pixels_not_standardised_ones():
    rng = np.random.default_rng(2)
    train, test = bars(rng, 60)[:, 0], bars(rng, 5, upright=True)[:, 0]  # (n, H, W)
    scores = KNNDetector(n_neighbors=3).fit(train).decision_function(test)
    flat_train, flat_test = train.reshape(60, -1), test.reshape(5, -1)
    distances = np.sort(np.linalg.norm(flat_test[:, None] - flat_train[None], axis=2), axis=1)
    np.testing.assert_allclose(scores, distances[:, 2], rtol=1e-4)
    # The same pixels as a table are standardised, column by column: other distances.
    table_scores = KNNDetector(n_neighbors=3).fit(flat_train).decision_function(flat_test)
    assert not np.allclose(table_scores, scores, rtol=1e-2)


def test_the_default_on_images_is_gradient_knn_and_on_tables_unchanged(fitted):
    _, train, test, y = fitted
    detector = default_detector(random_state=0).fit(train)
    assert [type(m).__name__ for m in detector.members_] == ["GradientKNNDetector"]
    assert roc_auc_score(y, detector.decision_function(test)) >= 0.99
    table = default_detector(random_state=0, verbose=0).fit(np.random.default_rng(0).normal(size=(80, 3)))
    assert len(table.members_) == len(DEFAULT_MEMBERS) and "GradientKNNDetector" not in [type(m).__name__ for m in table.members_]
    named = EnsembleDetector(members=("gradient-knn", "knn"), random_state=0).fit(train)
    assert [type(m).__name__ for m in named.members_] == ["GradientKNNDetector", "KNNDetector"]


def test_cli_fit_default_on_images_and_score(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "train.npz", X=(bars(rng, 60)[:, 0] * 255).astype(np.uint8))
    np.savez(tmp_path / "test.npz", X=(np.concatenate([bars(rng, 5), bars(rng, 5, upright=True)])[:, 0] * 255)
             .astype(np.uint8))
    code, _, err = run_cli(monkeypatch, capsys, "fit", tmp_path / "train.npz", "--detector", "default", "-q",
                           "--out", tmp_path / "model")
    assert code == 0, err
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert "GradientKNNDetector" in json.dumps(config)
    code, out, err = run_cli(monkeypatch, capsys, "score", tmp_path / "model", tmp_path / "test.npz",
                             "--out", tmp_path / "scores.csv")
    assert code == 0 and "scored 10 images" in out, err
    import pandas as pd

    scores = pd.read_csv(tmp_path / "scores.csv")["score"].to_numpy()
    assert scores[5:].min() > scores[:5].max()


@pytest.mark.parametrize("side, cell", [(8, 2), (28, 4), (64, 9)])
def test_the_cells_default_to_a_seventh_of_the_shorter_side(side, cell):
    images = np.random.default_rng(4).random((6, 1, side, side + 3)).astype(np.float32)
    detector = GradientKNNDetector(n_neighbors=2).fit(images)
    assert detector.cell_size_ == cell
    assert detector.neighbors_._fit_X.shape[1] == (side // cell) * ((side + 3) // cell) * 8
    assert GradientKNNDetector(n_neighbors=2, cell_size=3).fit(images).cell_size_ == 3


def loop_spatial_histograms(images, cell_size, n_bins, sigma):
    """The oracle for spatial binning, pixel by pixel: each vote split bilinearly between the cells
    whose centres are nearest (all of it to the outer cell beyond the outermost centres)."""
    n, channels, height, width = images.shape
    cells_h, cells_w = height // cell_size, width // cell_size
    out = np.zeros((n, cells_h * cells_w * n_bins))

    def split(position, cells):  # [(cell, share)] along one side
        u = min(max((position + 0.5) / cell_size - 0.5, 0.0), cells - 1)
        low = int(np.floor(u))
        high = min(low + 1, cells - 1)
        return [(low, 1 - (u - low)), (high, u - low)]

    for i in range(n):
        smooth = gaussian_filter(images[i, 0].astype(np.float64), sigma, mode="nearest") if sigma else \
            images[i, 0].astype(np.float64)
        g_row, g_col = np.gradient(smooth)
        hist = np.zeros((cells_h, cells_w, n_bins))
        for r in range(cells_h * cell_size):
            for col in range(cells_w * cell_size):
                mag = np.hypot(g_row[r, col], g_col[r, col])
                position = (np.arctan2(g_row[r, col], g_col[r, col]) % np.pi) / np.pi * n_bins
                low = int(np.floor(position))
                for b, share in ((low % n_bins, 1 - (position - low)), ((low + 1) % n_bins, position - low)):
                    for ci, si in split(r, cells_h):
                        for cj, sj in split(col, cells_w):
                            hist[ci, cj, b] += mag * share * si * sj
        row = np.sqrt(hist.ravel())
        out[i] = row / np.linalg.norm(row) if np.linalg.norm(row) > 0 else row
    return out


@pytest.mark.parametrize("shape, cell_size, n_bins, sigma", [((3, 1, 12, 12), 4, 8, 0.5), ((2, 1, 9, 13), 3, 6, 0.0)])
def test_spatial_binning_matches_a_pixel_by_pixel_loop(shape, cell_size, n_bins, sigma):
    images = np.random.default_rng(7).random(shape).astype(np.float32)
    spatial = gradient_histograms(images, cell_size, n_bins, sigma, spatial_binning=True)
    np.testing.assert_allclose(spatial, loop_spatial_histograms(images, cell_size, n_bins, sigma), rtol=1e-4,
                               atol=1e-5)
    assert not np.allclose(spatial, gradient_histograms(images, cell_size, n_bins, sigma), atol=1e-3)


def test_spatial_binning_is_the_benchmarks_variant_to_the_bit(monkeypatch):
    """The library's spatial binning gives the very numbers issue 22's selection measured
    (benchmarks/images.py, variant_histograms(spatial=True))."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "images.py"
    if not path.exists():
        pytest.skip("benchmarks/ is not beside the tests")
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location("images_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    images = np.random.default_rng(8).random((20, 1, 28, 28)).astype(np.float32)
    images[images < 0.6] = 0.0
    np.testing.assert_array_equal(gradient_histograms(images, spatial_binning=True),
                                  bench.variant_histograms(images, spatial=True))
    np.testing.assert_array_equal(gradient_histograms(images), bench.variant_histograms(images))


def _saved_with_param(detector, folder, name, value):
    """Save ``detector`` to ``folder`` with one parameter of its config.json set to ``value``, sealed again
    (as a hostile or hand-edited folder would be)."""
    from oddkit.persist import seal

    detector.save(folder)
    config = json.loads((folder / "config.json").read_text())
    config["params"][name] = value
    (folder / "config.json").write_text(json.dumps(config))
    seal(folder)


def _strip_saved_param(folder, name, member=None):
    """Remove a parameter from a saved model's config.json, as a model saved before the parameter
    existed lacks it, and seal the folder again (the format allows it: no code is involved)."""
    from oddkit.persist import seal

    config = json.loads((folder / "config.json").read_text())
    params = config["params"] if member is None else config["model"]["members"][member]["params"]
    del params[name]
    (folder / "config.json").write_text(json.dumps(config))
    seal(folder)


def test_spatial_binning_is_the_default():
    assert GradientKNNDetector().spatial_binning is True
    assert GradientKNNDetector._saved_param_defaults["spatial_binning"] is False


def test_a_model_saved_before_spatial_binning_loads_as_it_was_fitted(fitted, tmp_path):
    _, train, test, _ = fitted
    # A model fitted before the parameter existed was fitted without spatial binning (the old behaviour).
    detector = GradientKNNDetector(spatial_binning=False).fit(train)
    before = detector.decision_function(test)
    detector.save(tmp_path / "old")
    _strip_saved_param(tmp_path / "old", "spatial_binning")
    assert "spatial_binning" not in json.loads((tmp_path / "old" / "config.json").read_text())["params"]
    # The constructor's default is now True; the old model keeps the binning it was fitted with.
    assert GradientKNNDetector().spatial_binning is True
    loaded = load(tmp_path / "old")
    assert loaded.spatial_binning is False
    np.testing.assert_array_equal(loaded.decision_function(test), before)
    assert loaded.threshold_ == detector.threshold_
    # The check can fail: spatial binning does change the scores.
    assert not np.allclose(GradientKNNDetector().fit(train).decision_function(test), before)


def test_an_image_default_saved_before_spatial_binning_loads_as_it_was_fitted(fitted, tmp_path, monkeypatch):
    _, train, test, _ = fitted
    assert default_detector(random_state=0).fit(train).members_[0].spatial_binning is True
    # The image default as it was before spatial binning became the default.
    with monkeypatch.context() as patch:
        patch.setattr(GradientKNNDetector.__init__, "__defaults__",
                      tuple(False if v is True else v for v in GradientKNNDetector.__init__.__defaults__))
        ensemble = default_detector(random_state=0).fit(train)
    assert ensemble.members_[0].spatial_binning is False
    assert GradientKNNDetector().spatial_binning is True
    before = ensemble.decision_function(test)
    ensemble.save(tmp_path / "old")
    _strip_saved_param(tmp_path / "old", "spatial_binning", member=0)
    loaded = load(tmp_path / "old")
    assert loaded.members_[0].spatial_binning is False
    np.testing.assert_array_equal(loaded.decision_function(test), before)


@pytest.mark.parametrize("spatial", [False, True])
def test_spatial_binning_round_trips_through_save_and_load(spatial, tmp_path):
    rng = np.random.default_rng(9)
    train, test = bars(rng, 40), np.concatenate([bars(rng, 6), bars(rng, 6, upright=True)])
    detector = GradientKNNDetector(n_neighbors=3, spatial_binning=spatial).fit(train)
    detector.save(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["params"]["spatial_binning"] is spatial
    loaded = load(tmp_path / "model")
    assert loaded.spatial_binning is spatial and loaded.get_params() == detector.get_params()
    np.testing.assert_array_equal(loaded.decision_function(test), detector.decision_function(test))


def test_a_bad_spatial_binning_is_refused_at_fit_and_in_a_saved_model(fitted, tmp_path):
    images = bars(np.random.default_rng(0), 10)
    for bad in ("yes", 1, None):
        with pytest.raises(ParameterError, match="spatial_binning"):
            GradientKNNDetector(spatial_binning=bad).fit(images)
    _saved_with_param(fitted[0], tmp_path / "model", "spatial_binning", "yes")
    with pytest.raises(ModelFileError, match="spatial_binning"):
        load(tmp_path / "model")


# -- the intensity guard: brightness and contrast, which the histograms ignore ----------------------------

def test_faint_bright_inverted_and_blank_copies_are_anomalies_only_with_the_guard(fitted):
    guarded, train, test, _ = fitted
    normal = test[:40]
    copies = {"faint": normal[:10] * 0.2, "inverted": 1 - normal[:10], "washed out": np.clip(normal[:10] + 0.5, 0, 1),
              "blank": np.zeros_like(normal[:2]), "white": np.ones_like(normal[:2])}
    blind = GradientKNNDetector(intensity_guard=False).fit(train)
    assert blind.intensity_bounds_ is None and not blind.out_of_intensity_range(copies["faint"]).any()
    # Without the guard a faint copy is as normal as its original: the histograms ignore contrast.
    np.testing.assert_allclose(blind.decision_function(copies["faint"]), blind.decision_function(normal[:10]),
                               rtol=1e-4)
    assert not blind.predict(copies["faint"]).any()
    floor = guarded.out_of_range_score()
    for name, images in copies.items():
        assert guarded.out_of_intensity_range(images).all(), name
        assert (guarded.decision_function(images) >= floor).all() and guarded.predict(images).all(), name
    # Normal images are in range, and their scores are those of the detector without the guard, to the bit.
    assert not guarded.out_of_intensity_range(normal).any()
    np.testing.assert_array_equal(guarded.decision_function(test), blind.decision_function(test))


def test_the_bounds_are_the_training_range_widened_by_half_of_it():
    from oddkit.detectors.gradients import INTENSITY_MARGIN, intensity_statistics

    rng = np.random.default_rng(3)
    train = bars(rng, 60)
    detector = GradientKNNDetector().fit(train)
    statistics = intensity_statistics(train)
    low, high = statistics.min(axis=0), statistics.max(axis=0)
    np.testing.assert_allclose(detector.intensity_bounds_, [low - 0.5 * (high - low), high + 0.5 * (high - low)])
    assert INTENSITY_MARGIN == 0.5
    # Just inside and just outside the widened range: brightness added to one training image.
    image = train[np.argmax(statistics[:, 0])][None]
    step = 0.5 * (high[0] - low[0])
    assert not detector.out_of_intensity_range(image + 0.9 * step).any()
    assert detector.out_of_intensity_range(np.clip(image + 1.2 * step, 0, 1)).all()


def test_training_images_all_black_make_any_other_brightness_an_anomaly():
    black = np.zeros((20, 1, 12, 12), dtype=np.float32)
    detector = GradientKNNDetector().fit(black)
    white, grey = np.ones((1, 1, 12, 12), dtype=np.float32), np.full((1, 1, 12, 12), 0.5, dtype=np.float32)
    assert detector.predict(white).all() and detector.predict(grey).all()
    assert not detector.predict(black[:3]).any()


def test_colour_images_are_guarded_channel_by_channel():
    rng = np.random.default_rng(4)
    train = np.repeat(bars(rng, 40), 3, axis=1)
    detector = GradientKNNDetector().fit(train)
    assert detector.intensity_bounds_.shape == (2, 6)
    tinted = train[:5].copy()
    tinted[:, 2] = np.clip(tinted[:, 2] + 0.5, 0, 1)  # a blue cast: one channel brighter
    assert detector.out_of_intensity_range(tinted).all() and not detector.out_of_intensity_range(train[:5]).any()


def test_the_guard_round_trips_and_a_model_saved_before_it_loads_without_it(fitted, tmp_path):
    guarded, train, test, _ = fitted
    images = np.concatenate([test, 1 - test[:5]])
    guarded.save(tmp_path / "guarded")
    loaded = load(tmp_path / "guarded")
    assert loaded.intensity_guard is True
    np.testing.assert_array_equal(loaded.intensity_bounds_, guarded.intensity_bounds_)
    np.testing.assert_array_equal(loaded.decision_function(images), guarded.decision_function(images))
    # Saved before the parameter existed: no bounds and no parameter; it loads as it was fitted.
    old = GradientKNNDetector(intensity_guard=False).fit(train)
    old.save(tmp_path / "old")
    _strip_saved_param(tmp_path / "old", "intensity_guard")
    loaded = load(tmp_path / "old")
    assert loaded.intensity_guard is False and loaded.intensity_bounds_ is None
    np.testing.assert_array_equal(loaded.decision_function(images), old.decision_function(images))


@pytest.mark.parametrize("change, message", [
    (lambda b: b * np.nan, "NaN or infinite"),
    (lambda b: b[:, :1], "shape"),
    (lambda b: b[::-1].copy(), "low bound"),
    (lambda b: b.astype(np.int64), "floats"),
    (None, "missing"),
])
def test_hostile_intensity_bounds_are_refused(fitted, tmp_path, change, message):
    from safetensors.numpy import load_file, save_file

    from oddkit.persist import seal

    fitted[0].save(tmp_path / "model")
    weights = tmp_path / "model" / "weights.safetensors"
    arrays = load_file(weights)
    if change is None:
        del arrays["model.intensity_bounds"]
    else:
        arrays["model.intensity_bounds"] = np.ascontiguousarray(change(arrays["model.intensity_bounds"]))
    save_file(arrays, weights)
    seal(tmp_path / "model")
    with pytest.raises(ModelFileError, match=message):
        load(tmp_path / "model")


def test_bounds_saved_with_the_guard_off_are_refused(fitted, tmp_path):
    _saved_with_param(fitted[0], tmp_path / "model", "intensity_guard", False)
    with pytest.raises(ModelFileError, match="intensity_guard=False"):
        load(tmp_path / "model")


def test_an_out_of_range_image_keeps_its_edge_map_scaled_to_its_raised_score(fitted):
    from oddkit.image_explanations import explain_images

    detector, _, test, _ = fitted
    images = np.concatenate([test[:2], 1 - test[:1], np.zeros_like(test[:1])])
    assert detector.out_of_intensity_range(images).tolist() == [False, False, True, True]
    explanation = explain_images(detector, images)
    maps = np.asarray(explanation.maps)
    scores = detector.decision_function(images)
    assert (scores[2:] >= detector.out_of_range_score()).all()
    np.testing.assert_allclose(maps.reshape(4, -1).sum(axis=1), scores, rtol=1e-6)
    # The negative's map is its edges', as without the guard, scaled up to the raised score.
    blind = GradientKNNDetector(intensity_guard=False).fit(fitted[1])
    unguarded = np.asarray(explain_images(blind, images[2:3]).maps[0])
    np.testing.assert_allclose(maps[2] / maps[2].sum(), unguarded / unguarded.sum(), rtol=1e-6, atol=1e-12)


def test_an_image_raised_for_its_intensities_is_noted_in_explanations_the_cli_and_the_report(fitted, tmp_path,
                                                                                             monkeypatch, capsys):
    from conftest import run_cli
    from PIL import Image

    from oddkit.image_explanations import explain_images, intensity_notes

    detector, train, test, _ = fitted
    negative = 1 - test[:1]
    notes = explain_images(default_detector(random_state=0).fit(train), np.concatenate([test[:1], negative])).notes
    assert notes[0] is None and notes[1].startswith("brightness (mean) 0.9")
    assert "out of the training images' range" in notes[1] and "heat map (edges only) does not show" in notes[1]
    assert intensity_notes(GradientKNNDetector(intensity_guard=False).fit(train), negative) == [None]
    assert intensity_notes(KNNDetector().fit(train), negative) == [None]
    # The command line's CSV and the HTML report carry the note.
    detector.save(tmp_path / "model")
    (tmp_path / "data").mkdir()
    for name, image in (("normal", test[0, 0]), ("negative", negative[0, 0])):
        Image.fromarray((image * 255).round().astype(np.uint8)).save(tmp_path / "data" / f"{name}.png")
    code, _, err = run_cli(monkeypatch, capsys, "explain", tmp_path / "model", tmp_path / "data", "--top", "2",
                           "--out", tmp_path / "explained.csv")
    assert code == 0, err
    import pandas as pd

    frame = pd.read_csv(tmp_path / "explained.csv", keep_default_na=False).set_index("image")
    assert frame.loc["negative.png", "note"].startswith("brightness (mean)") and frame.loc["normal.png", "note"] == ""
    code, _, err = run_cli(monkeypatch, capsys, "report", tmp_path / "model", tmp_path / "data", "--out",
                           tmp_path / "report.html")
    assert code == 0, err
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count("<strong>Note:</strong> brightness (mean)") == 1
