"""Known anomalies for the auto-encoders: the margin loss, its options, persistence, the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from conftest import fast_autoencoder, run_cli
from oddkit import VAEDetector, VQVAEDetector, load
from oddkit.exceptions import ColumnMismatchError, EmptyDataError, ParameterError


def ring_and_hole():
    """Normal rows on a ring of a 2-D plane in 6-D; anomalies in the ring's empty centre, on the
    same plane. 10 anomalies to show the detector, 100 more to test on."""
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, 6))

    def on_plane(radius):
        angle = rng.uniform(0, 2 * np.pi, size=len(radius))
        return np.c_[radius * np.cos(angle), radius * np.sin(angle)] @ basis + 0.05 * rng.normal(size=(len(radius), 6))

    normal = on_plane(rng.uniform(1.5, 2.5, size=1300))
    hole = on_plane(rng.uniform(0.0, 0.4, size=110))
    return normal[:1000], hole[:10], np.vstack([normal[1000:], hole[10:]]), np.r_[np.zeros(300), np.ones(100)]


def mean_squared_error(detector, rows) -> float:
    return float(((detector._prepare(rows, reset=False) - detector.reconstruct(rows)) ** 2).mean())


@pytest.fixture(scope="module")
def ring_models():
    X, known, test, y = ring_and_hole()
    plain = fast_autoencoder(epochs=25).fit(X)
    exposed = fast_autoencoder(epochs=25).fit(X, known_anomalies=known)
    return X, known, test, y, plain, exposed


def test_known_anomalies_are_pushed_past_the_margin(ring_models):
    X, known, test, y, plain, exposed = ring_models
    # The hinge asks for at least exposure_margin (2) times the normal rows' loss; measured: the
    # plain network reconstructs the centre 7x worse than normal rows, the exposed one 30x worse.
    ratio_plain = mean_squared_error(plain, known) / mean_squared_error(plain, X)
    ratio_exposed = mean_squared_error(exposed, known) / mean_squared_error(exposed, X)
    assert ratio_exposed >= max(2.0, 2 * ratio_plain)
    # Unseen anomalies of the same kind rank higher too, and normal rows barely suffer.
    auroc_plain = roc_auc_score(y, plain.decision_function(test))
    auroc_exposed = roc_auc_score(y, exposed.decision_function(test))
    assert auroc_exposed >= max(0.995, auroc_plain)
    assert mean_squared_error(exposed, X) < 2 * mean_squared_error(plain, X)


def test_known_anomalies_are_not_training_rows(ring_models):
    X, known, _, _, plain, exposed = ring_models
    # The threshold and training scores come from X alone.
    assert exposed.decision_scores_.shape == (len(X),)
    np.testing.assert_array_equal(exposed.decision_scores_, exposed.decision_function(X))


def test_zero_weight_ignores_known_anomalies():
    X, known, test, _ = ring_and_hole()
    plain = fast_autoencoder(epochs=3).fit(X)
    ignored = fast_autoencoder(epochs=3, exposure_weight=0.0).fit(X, known_anomalies=known)
    np.testing.assert_array_equal(plain.decision_function(test), ignored.decision_function(test))


def test_saved_model_trained_with_known_anomalies_scores_identically(tmp_path):
    X, known, test, _ = ring_and_hole()
    detector = fast_autoencoder(epochs=3, exposure_margin=3.0).fit(X, known_anomalies=known)
    detector.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded.exposure_margin == 3.0
    np.testing.assert_array_equal(loaded.decision_function(test), detector.decision_function(test))


@pytest.mark.parametrize("cls", [VAEDetector, VQVAEDetector])
def test_vae_and_vqvae_learn_from_known_anomalies(cls):
    X, known, test, y = ring_and_hole()
    plain = cls(epochs=25, random_state=0, verbose=0).fit(X)
    exposed = cls(epochs=25, random_state=0, verbose=0).fit(X, known_anomalies=known)
    # Their loss (negative ELBO; reconstruction + commitment) on the known anomalies goes up.
    assert mean_squared_error(exposed, known) > 2 * mean_squared_error(plain, known)
    assert roc_auc_score(y, exposed.decision_function(test)) >= roc_auc_score(y, plain.decision_function(test)) - 0.005


def test_bad_known_anomalies_raise_documented_errors():
    X, known, _, _ = ring_and_hole()
    with pytest.raises(ColumnMismatchError):
        fast_autoencoder(epochs=1).fit(X, known_anomalies=known[:, :4])
    with pytest.raises(EmptyDataError):
        fast_autoencoder(epochs=1).fit(X, known_anomalies=known[:0])
    for bad in ({"exposure_weight": -1.0}, {"exposure_margin": 0.0}):
        with pytest.raises(ParameterError, match=next(iter(bad))):
            fast_autoencoder(epochs=1, **bad).fit(X, known_anomalies=known)
    images = np.random.default_rng(0).random((64, 8, 8), dtype=np.float32)
    with pytest.raises(ColumnMismatchError, match="8x8 pixels"):
        fast_autoencoder(epochs=1).fit(images, known_anomalies=np.zeros((3, 9, 9), dtype=np.float32))


def test_images_with_known_anomalies():
    rng = np.random.default_rng(0)
    # Normal: dark images with a bright top half; anomalies: a bright bottom half instead.
    normal = rng.uniform(0.0, 0.2, size=(220, 8, 8)).astype(np.float32)
    normal[:, :4] += 0.7
    odd = rng.uniform(0.0, 0.2, size=(40, 8, 8)).astype(np.float32)
    odd[:, 4:] += 0.7
    plain = fast_autoencoder(epochs=15).fit(normal[:200])
    exposed = fast_autoencoder(epochs=15).fit(normal[:200], known_anomalies=odd[:5])
    test, y = np.concatenate([normal[200:], odd[5:]]), np.r_[np.zeros(20), np.ones(35)]
    assert roc_auc_score(y, exposed.decision_function(test)) >= max(0.95, roc_auc_score(y, plain.decision_function(test)))


def test_cli_fit_with_known_anomalies(tmp_path, monkeypatch, capsys):
    X, known, test, y = ring_and_hole()
    columns = [f"f{i}" for i in range(6)]
    pd.DataFrame(X, columns=columns).assign(row=range(len(X))).to_csv(tmp_path / "train.csv", index=False)
    # Columns in another order, plus an id column: matched by name, the id dropped.
    pd.DataFrame(known, columns=columns)[columns[::-1]].assign(row=0).to_csv(tmp_path / "known.csv", index=False)
    code, out, err = run_cli(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--id-col", "row", "--epochs", "3",
                             "--known-anomalies", tmp_path / "known.csv", "--out", tmp_path / "model", "-q")
    assert code == 0, err
    assert "with 10 known anomalies" in out
    code, _, err = run_cli(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--id-col", "row", "--detector",
                           "gaussian", "--known-anomalies", tmp_path / "known.csv", "--out", tmp_path / "g")
    assert code == 2 and "cannot learn from --known-anomalies" in err
    pd.DataFrame(known[:, :5], columns=columns[:5]).to_csv(tmp_path / "narrow.csv", index=False)
    code, _, err = run_cli(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--id-col", "row", "--epochs", "1",
                           "--known-anomalies", tmp_path / "narrow.csv", "--out", tmp_path / "m2")
    assert code == 2 and "missing ['f5']" in err
    # Tables without column names (.npy) are matched by width.
    np.save(tmp_path / "train.npy", X)
    np.save(tmp_path / "known.npy", known)
    code, out, err = run_cli(monkeypatch, capsys, "fit", tmp_path / "train.npy", "--epochs", "1",
                             "--known-anomalies", tmp_path / "known.npy", "--out", tmp_path / "npy", "-q")
    assert code == 0 and "with 10 known anomalies" in out, err
