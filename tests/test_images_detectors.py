"""Every auto-encoder detector on images: convolutional networks chosen from the input's shape,
scaling, shapes of codes and reconstructions, saving, and clear errors for bad images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import oddkit
from oddkit import AutoEncoderDetector, VAEDetector, VQVAEDetector
from oddkit.exceptions import ColumnMismatchError, DataError, ImageShapeError, NonFiniteError, TooFewRowsError
from oddkit.nn.conv import default_image_architecture
from synthetic_images import bar_images, bar_split

CLASSES = {"autoencoder": AutoEncoderDetector, "vae": VAEDetector, "vqvae": VQVAEDetector}
FAST = {"epochs": 5, "lr": 3e-3, "random_state": 0, "verbose": 0, "n_threads": 1}
# Lowest AUROC of horizontal-bar training images against vertical-bar anomalies (200 training
# images, 5 epochs). Measured (seed 0): 1.0 for all three; the bound leaves room for platforms.
AUROC_BOUND = 0.9


def fast(name, **params):
    return CLASSES[name](**{**FAST, **params})


@pytest.fixture(scope="module")
def bars():
    return bar_split()


@pytest.fixture(scope="module")
def fitted(bars):
    train, _, _ = bars
    return {name: fast(name).fit(train) for name in CLASSES}


ALL = pytest.mark.parametrize("name", list(CLASSES))


@ALL
def test_ranks_a_different_pattern_above_normal_images(name, fitted, bars):
    _, test, y = bars
    detector = fitted[name]
    scores = detector.decision_function(test)
    assert scores.shape == (len(test),) and scores.dtype == np.float64
    assert roc_auc_score(y, scores) >= AUROC_BOUND
    assert detector.image_shape_ == (1, 28, 28) and detector.n_features_in_ == 784
    assert not hasattr(detector, "feature_names_in_")
    np.testing.assert_array_equal(detector.predict(test), (scores >= detector.threshold_).astype(int))


@ALL
def test_codes_and_reconstructions_in_input_space(name, fitted, bars):
    _, test, _ = bars
    detector = fitted[name]
    codes = detector.transform(test[:5])
    assert codes.dtype == np.float32 and codes.ndim == 2 and codes.shape[0] == 5
    back = detector.inverse_transform(codes)
    assert back.shape == (5, 28, 28) and back.dtype == np.float32
    assert back.min() >= 0.0 and back.max() <= 1.0
    # The decoded codes are the reconstructions (up to float rounding between batch sizes).
    np.testing.assert_allclose(back.reshape(5, -1), detector.reconstruct(test[:5]), atol=1e-5)


@ALL
def test_saved_image_model_scores_identically(name, fitted, bars, tmp_path):
    _, test, _ = bars
    detector = fitted[name]
    detector.save(tmp_path / "m")
    loaded = oddkit.load(tmp_path / "m")
    assert type(loaded) is type(detector) and loaded.image_shape_ == (1, 28, 28)
    np.testing.assert_array_equal(loaded.decision_function(test), detector.decision_function(test))
    np.testing.assert_array_equal(loaded.transform(test), detector.transform(test))
    np.testing.assert_array_equal(loaded.inverse_transform(detector.transform(test[:3])),
                                  detector.inverse_transform(detector.transform(test[:3])))
    assert loaded.threshold_ == detector.threshold_


@ALL
def test_bad_images_raise_clear_errors(name, fitted, bars):
    _, test, _ = bars
    detector = fitted[name]
    with pytest.raises(ColumnMismatchError, match=r"\(1, 28, 28\).*\(1, 32, 32\)"):
        detector.decision_function(bar_images(3, size=32))
    with pytest.raises(ColumnMismatchError, match="3 channel|channel"):
        detector.decision_function(bar_images(3, channels=3))
    with pytest.raises(ColumnMismatchError, match="images"):
        detector.decision_function(test.reshape(len(test), -1))
    broken = test[:4].astype(np.float32) / 255
    broken[2, 5, 5] = np.nan
    with pytest.raises(NonFiniteError, match=r"\[2\]"):
        detector.decision_function(broken)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        detector.decision_function(test[:4].astype(np.float32))  # 0-255 floats, not scaled
    with pytest.raises(DataError, match="dtype"):
        detector.decision_function(test[:4].astype(np.int64))
    with pytest.raises(TooFewRowsError):
        fast(name).fit(test[:1])


def test_float_images_in_unit_range_score_like_uint8(fitted, bars):
    _, test, _ = bars
    detector = fitted["autoencoder"]
    np.testing.assert_array_equal(detector.decision_function(test.astype(np.float32) / np.float32(255)),
                                  detector.decision_function(test))
    # (n, 1, H, W) is the same images as (n, H, W).
    np.testing.assert_array_equal(detector.decision_function(test[:, None]), detector.decision_function(test))


def test_image_score_is_mean_squared_error_per_image(fitted, bars):
    _, test, _ = bars
    detector = fitted["autoencoder"]
    pixels = test.reshape(len(test), -1).astype(np.float32) / np.float32(255)
    expected = ((detector.reconstruct(test).astype(np.float64) - pixels) ** 2).mean(axis=1)
    np.testing.assert_allclose(detector.decision_function(test), expected, rtol=1e-5)
    shares = detector.explain(test[:3])
    assert shares.shape == (3, 28, 28)
    np.testing.assert_allclose(shares.reshape(3, -1).sum(axis=1), 1.0, rtol=1e-5)


def test_color_images_of_any_size():
    # 64x64 RGB: three stages down to 8x8; 30x20 does not divide by 4 and is padded, then cropped.
    assert default_image_architecture((3, 64, 64)) == ((32, 64, 128), 56)
    assert default_image_architecture((1, 28, 28)) == ((32, 64), 16)
    for shape in [(3, 64, 64), (3, 30, 20)]:
        X = np.random.default_rng(0).integers(0, 256, size=(24, *shape), dtype=np.uint8)
        for cls in CLASSES.values():
            detector = cls(epochs=1, hidden_sizes=(8, 16), random_state=0, verbose=0, n_threads=1).fit(X)
            assert detector.image_shape_ == shape
            assert np.isfinite(detector.decision_function(X[:3])).all()
            assert detector.inverse_transform(detector.transform(X[:2])).shape == (2, *shape)


def test_channels_last_images_are_refused_with_the_fix():
    X = np.zeros((10, 28, 28, 3), dtype=np.uint8)
    with pytest.raises(ImageShapeError, match="transpose"):
        AutoEncoderDetector(epochs=1, verbose=0).fit(X)


@pytest.mark.parametrize("noise", ["gaussian", "mask", "salt_pepper"])
def test_denoising_on_images(noise, bars):
    train, test, y = bars
    plain = fast("autoencoder", epochs=2).fit(train[:100])
    for name in CLASSES:
        detector = fast(name, epochs=2, noise=noise, noise_level=0.1).fit(train[:100])
        assert np.isfinite(detector.decision_function(test)).all()
        if name == "autoencoder":
            assert not np.allclose(detector.decision_function(test), plain.decision_function(test))


def test_members_on_images_and_refitting_between_kinds(bars):
    train, test, _ = bars
    detector = AutoEncoderDetector(n_estimators=2, epochs=1, random_state=0, verbose=0, n_threads=1)
    detector.fit(train[:64])
    # The members score together; the first one's code is the embedding, and its decoder decodes it.
    codes = detector.transform(test[:3])
    assert codes.shape == (3, detector.latent_dim_)
    Z = torch.from_numpy(detector._prepare(test[:3], reset=False))
    with torch.inference_mode():
        np.testing.assert_array_equal(codes, detector.model_.encode(Z)[0].numpy())
        first = detector.model_(Z)[0].numpy().reshape(3, 28, 28)
    np.testing.assert_allclose(detector.inverse_transform(codes), first, atol=1e-6)
    # The same estimator refitted on a table forgets the images, and the other way round.
    table = np.random.default_rng(0).normal(size=(50, 4))
    detector.fit(table)
    assert not hasattr(detector, "image_shape_") and detector.n_features_in_ == 4
    with pytest.raises(ColumnMismatchError, match="table"):
        detector.decision_function(test)
    detector.fit(train[:64])
    assert detector.image_shape_ == (1, 28, 28)


def test_other_detectors_still_refuse_image_arrays(bars):
    train, _, _ = bars
    with pytest.raises(DataError):
        oddkit.GaussianDetector().fit(train)


def test_edited_image_shape_in_a_saved_model_is_refused(fitted, tmp_path):
    import json

    from oddkit.exceptions import ModelFileError
    from oddkit.persist import seal

    fitted["autoencoder"].save(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["preprocessor"]["image_shape"] == [1, 28, 28]
    config["preprocessor"]["image_shape"] = [1, 27, 28]  # same 7x7 grid, so the weights would fit
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="checksum"):
        oddkit.load(tmp_path / "m")
    seal(tmp_path / "m")  # with the checksum recomputed, the check of the shape itself
    with pytest.raises(ModelFileError, match="inputs"):
        oddkit.load(tmp_path / "m")
    config["preprocessor"]["image_shape"] = "28x28"
    config_path.write_text(json.dumps(config))
    seal(tmp_path / "m")
    with pytest.raises(ModelFileError, match="image shape"):
        oddkit.load(tmp_path / "m")
