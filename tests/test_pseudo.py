"""Pseudo-anomalies made from the training data (issue 23): their shape, range and novelty, the
detectors trained with them, persistence, and 'oddkit generate'."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from oddkit import AutoEncoderDetector, ClassifierConfidenceDetector, PseudoAnomalies, VAEDetector, load
from oddkit.detectors.pseudo import METHODS
from oddkit.exceptions import DataError, ParameterError


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one thread is fastest, and on a busy machine more threads only spin
    (measured on the shared, busy 2-core machine: this module took 54 s of CPU and 162 s wall with
    torch's default threads, 11 s of CPU with one)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


def two_blobs(n: int = 240):
    """A table of two classes, 4 correlated columns."""
    rng = np.random.default_rng(0)
    classes = np.repeat(["left", "right"], n // 2)
    centre = np.where(classes[:, None] == "left", -2.0, 2.0)
    base = rng.normal(size=(n, 2)) + centre[:, :2]
    return np.c_[base, base @ [[1.0, 0.5], [0.5, 1.0]] + 0.1 * rng.normal(size=(n, 2))], classes


def digit_like_images(n: int = 120):
    """Binary 12x12 images of two classes: a vertical or a horizontal bar at a random place."""
    rng = np.random.default_rng(1)
    X = np.zeros((n, 12, 12), dtype=np.float32)
    classes = np.arange(n) % 2
    for i, (c, at) in enumerate(zip(classes, rng.integers(2, 9, size=n))):
        if c:
            X[i, 2:10, at:at + 2] = 1.0
        else:
            X[i, at:at + 2, 2:10] = 1.0
    return X, classes


def fast(method: str, n: int = 50) -> PseudoAnomalies:
    return PseudoAnomalies(method, n_samples=n, epochs=3, random_state=0)


def nearest_distance(generated: np.ndarray, training: np.ndarray) -> np.ndarray:
    """Each generated row's distance to the nearest training row (brute force)."""
    g, t = generated.reshape(len(generated), -1), training.reshape(len(training), -1)
    return np.sqrt(((g[:, None, :] - t[None, :, :]) ** 2).sum(axis=2)).min(axis=1)


@pytest.mark.parametrize("method", METHODS)
def test_table_pseudo_anomalies_have_the_shape_and_range_and_copy_no_row(method):
    X, classes = two_blobs()
    G = fast(method).generate(X, classes)
    assert G.shape == (50, X.shape[1]) and np.isfinite(G).all()
    # Within each column's training range (the float32 round trip of the standardisation aside).
    assert (G >= X.min(axis=0) - 1e-4).all() and (G <= X.max(axis=0) + 1e-4).all()
    assert nearest_distance(G, X).min() > 1e-6


@pytest.mark.parametrize("method", METHODS)
def test_image_pseudo_anomalies_have_the_shape_and_range_and_copy_no_image(method):
    X, classes = digit_like_images()
    G = fast(method).generate(X, classes)
    assert G.shape == (50, 12, 12) and G.dtype == np.float32
    assert G.min() >= 0.0 and G.max() <= 1.0
    assert nearest_distance(G, X).min() > 1e-6


def test_permute_breaks_the_columns_dependence_and_shuffles_tiles():
    # Tables: columns drawn from different rows no longer follow each other.
    rng = np.random.default_rng(0)
    a = rng.normal(size=500)
    X = np.c_[a, a]
    G = fast("permute", 200).generate(X)
    assert np.corrcoef(X.T)[0, 1] > 0.999 and abs(np.corrcoef(G.T)[0, 1]) < 0.3
    # Images: each is a training image with its 3x3 tiles moved (4x4 grid of a 12x12 image), so
    # it keeps that image's pixels, and no bar is whole any more.
    images, _ = digit_like_images()
    G = fast("permute", 40).generate(images)
    sorted_training = {np.sort(x.ravel()).tobytes() for x in images}
    assert all(np.sort(g.ravel()).tobytes() in sorted_training for g in G)
    assert not any((g == x).all() for g in G for x in images)


def integer_scores(n: int = 300, d: int = 9):
    """A table like the Wisconsin breast-cancer data: d scores from 1 to 10, mostly 1."""
    rng = np.random.default_rng(0)
    return np.where(rng.random((n, d)) < 0.85, 1, rng.integers(2, 11, size=(n, d))).astype(float)


def test_permute_makes_new_rows_from_few_valued_integer_columns():
    # Recombined, such columns give back one of the training rows over half the time (the
    # breastw table of the tabular benchmark: about 40%); the copies are replaced, however many.
    X = integer_scores()
    seen = {row.tobytes() for row in X}
    recombined = X[np.random.default_rng(0).integers(len(X), size=(2000, X.shape[1])), np.arange(X.shape[1])]
    assert np.mean([row.tobytes() in seen for row in recombined]) > 0.5
    G = PseudoAnomalies("permute", n_samples=300, random_state=0).generate(X)
    assert G.shape == (300, X.shape[1])
    assert nearest_distance(G, X).min() > 0.5  # integer scores: a new row is a whole step away
    # Each value is one of its column's training values (the standardisation's round trip aside).
    rounded = np.round(G)
    np.testing.assert_allclose(G, rounded, atol=1e-4)
    assert all(set(rounded[:, j]) <= set(X[:, j]) for j in range(X.shape[1]))


def test_vae_between_mixes_classes_into_shapes_of_neither():
    X, classes = digit_like_images()
    G = PseudoAnomalies("vae-between", n_samples=40, epochs=15, random_state=0).generate(X, classes)
    # A bar of either class has 16 lit pixels in one 2-pixel-wide row or column band; a shape
    # between a horizontal and a vertical bar lights fewer in any single band and spreads the rest.
    def best_band(images):
        lit = images > 0.5
        rows = np.stack([lit[:, i:i + 2, :].sum(axis=(1, 2)) for i in range(11)], axis=1)
        columns = np.stack([lit[:, :, i:i + 2].sum(axis=(1, 2)) for i in range(11)], axis=1)
        return np.maximum(rows.max(axis=1), columns.max(axis=1))

    assert (best_band(X) == 16).all()
    assert np.mean(best_band(G) < 16) >= 0.8
    assert nearest_distance(G, X).min() > 1.0


def test_options_are_checked():
    X, _ = two_blobs()
    with pytest.raises(ParameterError, match="method must be"):
        PseudoAnomalies("gan").generate(X)
    with pytest.raises(ParameterError, match="n_samples must be a positive integer"):
        PseudoAnomalies(n_samples=0).generate(X)
    with pytest.raises(ParameterError, match="'generate' or a PseudoAnomalies"):
        AutoEncoderDetector(epochs=1, verbose=0).fit(X, known_anomalies="generated")
    # Nothing new can be made by recombining identical rows, or rows that differ in one column.
    with pytest.raises(DataError, match="vary too little"):
        PseudoAnomalies("permute", n_samples=5).generate(np.ones((20, 3)))
    with pytest.raises(DataError, match="0 of 500 drawn differed from every training row"):
        PseudoAnomalies("permute", n_samples=5).generate(np.c_[np.arange(20.0), np.ones((20, 2))])


def test_the_same_seed_gives_the_same_pseudo_anomalies():
    X, classes = two_blobs()
    np.testing.assert_array_equal(fast("vae-between").generate(X, classes), fast("vae-between").generate(X, classes))
    assert not np.array_equal(fast("permute").generate(X), PseudoAnomalies("permute", 50, random_state=1).generate(X))


def test_classifier_trained_on_generated_anomalies_distrusts_them_and_saves(tmp_path):
    X, classes = two_blobs()
    # The energy loss: on these two blobs, many recombined rows fall inside a blob, and the
    # logistic loss on the energy gap separates the rest best (measured: AUROC 0.864 -> 0.913; the
    # default cutmix mixture 0.874).
    params = dict(n_estimators=1, epochs=15, hidden_sizes=(32, 32), exposure_loss="energy", random_state=0,
                  verbose=0)
    plain = ClassifierConfidenceDetector(**params).fit(X, classes)
    spec = PseudoAnomalies("permute", n_samples=300, random_state=0)
    exposed = ClassifierConfidenceDetector(**params).fit(X, classes, known_anomalies=spec)
    fresh = PseudoAnomalies("permute", n_samples=300, random_state=5).generate(X)
    # Taught on pseudo-anomalies, the classifier ranks unseen ones of the same kind higher.
    def ranking(detector):
        from sklearn.metrics import roc_auc_score

        scores = detector.decision_function(np.vstack([X, fresh]))
        return roc_auc_score(np.r_[np.zeros(len(X)), np.ones(len(fresh))], scores)

    assert ranking(exposed) > ranking(plain) + 0.03
    exposed.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.decision_function(X), exposed.decision_function(X))
    # "generate" is the default PseudoAnomalies, and seeded like the detector.
    once = ClassifierConfidenceDetector(**params).fit(X, classes, known_anomalies="generate")
    again = ClassifierConfidenceDetector(**params).fit(X, classes, known_anomalies="generate")
    np.testing.assert_array_equal(once.decision_function(X), again.decision_function(X))


@pytest.mark.parametrize("cls", [AutoEncoderDetector, VAEDetector])
def test_autoencoders_train_with_generated_anomalies_and_save(cls, tmp_path):
    images, _ = digit_like_images()
    detector = cls(epochs=3, random_state=0, verbose=0).fit(images, known_anomalies=fast("permute", 60))
    detector.save(tmp_path / "model")
    np.testing.assert_array_equal(load(tmp_path / "model").decision_function(images), detector.decision_function(images))


def test_vae_generates_from_its_prior_tail():
    X, _ = two_blobs()
    vae = VAEDetector(epochs=5, random_state=0, verbose=0).fit(X)
    codes = vae.transform(vae.generate(200, random_state=0, tail=True))
    prior = vae.transform(vae.generate(200, random_state=0))
    # Decoded from far out, the samples sit further from the code's centre than the prior's do.
    assert np.linalg.norm(codes, axis=1).mean() > np.linalg.norm(prior, axis=1).mean()


def test_cli_generate_writes_a_table_and_an_image_grid(tmp_path, monkeypatch, capsys):
    X, classes = two_blobs()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(kind=classes)
    frame.to_csv(tmp_path / "train.csv", index=False)
    out = tmp_path / "pseudo.csv"
    code, stdout, _ = run_cli(monkeypatch, capsys, "generate", tmp_path / "train.csv", "--out", out,
                              "--method", "vae-between", "--class-col", "kind", "-n", "7", "--epochs", "2")
    assert code == 0 and "generated 7 pseudo-anomalies (vae-between)" in " ".join(stdout.split())
    written = pd.read_csv(out)
    assert list(written.columns) == ["a", "b", "c", "d"] and len(written) == 7
    assert nearest_distance(written.to_numpy(), X).min() > 1e-6
    code, _, err = run_cli(monkeypatch, capsys, "generate", tmp_path / "train.csv", "--out", out)
    assert code == 2 and "--force" in err
    code, stdout, err = run_cli(monkeypatch, capsys, "generate", tmp_path / "train.csv", "--out", "-",
                                "--method", "permute", "-n", "3")
    assert code == 0 and len(pd.read_csv(__import__("io").StringIO(stdout))) == 3 and "wrote -" in err

    images, labels = digit_like_images()
    np.savez(tmp_path / "images.npz", X=(images * 255).astype(np.uint8), labels=labels)
    code, _, _ = run_cli(monkeypatch, capsys, "generate", tmp_path / "images.npz", "--out", tmp_path / "grid.png",
                         "--method", "permute", "-n", "16")
    from PIL import Image

    assert code == 0 and Image.open(tmp_path / "grid.png").size == (4 * 14 + 2, 4 * 14 + 2)


def test_cli_fit_with_generated_anomalies_then_generate_from_the_model(tmp_path, monkeypatch, capsys):
    X, classes = two_blobs()
    pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(kind=classes).to_csv(tmp_path / "train.csv", index=False)
    code, stdout, _ = run_cli(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--out", tmp_path / "clf",
                              "--detector", "classifier", "--class-col", "kind", "--known-anomalies", "generate",
                              "--epochs", "2", "-p", "n_estimators=1", "-q")
    assert code == 0 and "with generated pseudo-anomalies (outlier exposure)" in " ".join(stdout.split())
    assert load(tmp_path / "clf").decision_function(X).shape == (len(X),)
    run_cli(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--out", tmp_path / "vae", "--detector", "vae",
            "--id-col", "kind", "--epochs", "2", "-q")
    code, _, _ = run_cli(monkeypatch, capsys, "generate", tmp_path / "vae", "--out", tmp_path / "tail.csv",
                         "--method", "vae-tail", "-n", "5")
    assert code == 0 and list(pd.read_csv(tmp_path / "tail.csv").columns) == ["a", "b", "c", "d"]
    code, _, err = run_cli(monkeypatch, capsys, "generate", tmp_path / "vae", "--out", tmp_path / "p.csv",
                           "--method", "permute")
    assert code == 2 and "pass the data file" in err
