"""TransformationDetector: the symmetries, ranking unlike images, saving, bad input, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from conftest import run_cli
from oddkit import TransformationDetector, load
from oddkit.detectors.transforms import dihedral_transforms
from oddkit.exceptions import ColumnMismatchError, DataError


def corner_shapes(rng, n: int, size: int = 12) -> np.ndarray:
    """Normal images: an "L" of two bright bars meeting in the top-left corner, jittered; its
    rotations and mirrors all look different, so they can be told apart."""
    X = rng.uniform(0.0, 0.15, size=(n, 1, size, size)).astype(np.float32)
    for i, (r, c) in enumerate(rng.integers(1, 3, size=(n, 2))):
        X[i, 0, r, c:c + 7] = 1.0
        X[i, 0, r:r + 5, c] = 1.0
    return X


def crosses(rng, n: int, size: int = 12) -> np.ndarray:
    """Anomalies: a centred plus sign, the same under every rotation and mirror."""
    X = rng.uniform(0.0, 0.15, size=(n, 1, size, size)).astype(np.float32)
    X[:, 0, size // 2, 2:-2] = 1.0
    X[:, 0, 2:-2, size // 2] = 1.0
    return X


def fast(**params) -> TransformationDetector:
    params = {"conv_channels": (8, 16), "hidden": 32, "epochs": 8, "random_state": 0, "verbose": 0, **params}
    return TransformationDetector(**params)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    train, test = corner_shapes(rng, 200), np.concatenate([corner_shapes(rng, 40), crosses(rng, 20)])
    return fast().fit(train), test, np.r_[np.zeros(40), np.ones(20)]


def test_dihedral_transforms_are_the_square_symmetries():
    image = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    wide = dihedral_transforms(image)
    assert len(wide) == 4 and all(t.shape == image.shape for t in wide)
    np.testing.assert_array_equal(wide[0], image)
    square = np.random.default_rng(0).random((2, 1, 5, 5)).astype(np.float32)
    eight = dihedral_transforms(square)
    assert len(eight) == 8 and len({t.tobytes() for t in eight}) == 8
    for t in eight:  # each only moves pixels
        np.testing.assert_allclose(np.sort(t.ravel()), np.sort(square.ravel()))
    np.testing.assert_array_equal(eight[2], square[..., ::-1, ::-1])  # the half turn


def test_ranks_symmetric_images_above_the_normal_shape(fitted):
    detector, test, y = fitted
    assert detector.n_transforms_ == 8 and detector.image_shape_ == (1, 12, 12)
    # Telling the transformations apart is the task: the classifier learns no rotations besides.
    assert not detector.classifier_._learns_rotations()
    assert roc_auc_score(y, detector.decision_function(test)) >= 0.95
    assert detector.predict(test[40:]).mean() > 0.9


def test_save_and_load_give_identical_scores(fitted, tmp_path):
    detector, test, _ = fitted
    detector.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.decision_function(test), detector.decision_function(test))
    assert loaded.threshold_ == detector.threshold_


def test_tables_and_other_shapes_are_refused(fitted):
    detector, _, _ = fitted
    with pytest.raises(DataError, match="images"):
        fast(epochs=1).fit(np.random.default_rng(0).random((50, 4)))
    with pytest.raises(ColumnMismatchError):
        detector.decision_function(np.zeros((3, 1, 10, 10), dtype=np.float32))


def test_cli_fit_and_score(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "train.npz", X=corner_shapes(rng, 60))
    np.savez(tmp_path / "test.npz", X=np.concatenate([corner_shapes(rng, 5), crosses(rng, 5)]))
    code, _, err = run_cli(monkeypatch, capsys, "fit", tmp_path / "train.npz", "--detector", "transforms",
                           "-p", "epochs=2", "-p", "conv_channels=4,8", "-q", "--out", tmp_path / "model")
    assert code == 0, err
    code, out, err = run_cli(monkeypatch, capsys, "score", tmp_path / "model", tmp_path / "test.npz",
                             "--out", tmp_path / "scores.csv")
    assert code == 0 and "scored 10 images" in out, err
