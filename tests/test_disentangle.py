"""Feature disentanglement: the class part holds the class, the style part the rest, and swaps
move one without the other — on tables and on images; saving, parameters and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

import oddkit
from oddkit import DisentangledAutoEncoderDetector
from oddkit.exceptions import DataError, LabelError, ParameterError
from oddkit.nn import mlp_autoencoder
from oddkit.nn.disentangle import disentangling_losses, same_class_partners, split_code_autoencoder
from synthetic_images import bar_images

N_CLASSES, N_TABLE_COLUMNS = 4, 6


def class_and_style_table(n: int, seed: int = 0):
    """Rows = a class centre + a 2-D style seen through a fixed mixing in 6 columns, plus the style
    itself in 2 more columns; returns X, classes, style and what the generator needs to decode."""
    rng = np.random.default_rng(0)
    centres, mixing = rng.normal(size=(N_CLASSES, N_TABLE_COLUMNS)) * 3, rng.normal(size=(2, N_TABLE_COLUMNS))
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, N_CLASSES, size=n)
    style = rng.normal(size=(n, 2))
    X = np.c_[centres[classes] + style @ mixing + 0.1 * rng.normal(size=(n, N_TABLE_COLUMNS)), style]
    return X, classes, centres, mixing


def fast_disentangler(**params):
    return DisentangledAutoEncoderDetector(**{"latent_dim": 5, "class_dim": 2, "epochs": 60, "random_state": 0,
                                              "verbose": 0, "n_threads": 1, **params})


@pytest.fixture(scope="module")
def table():
    X, classes, centres, mixing = class_and_style_table(2600)
    return X[:2000], classes[:2000], X[2000:], classes[2000:], centres, mixing


@pytest.fixture(scope="module")
def disentangler(table):
    X, classes, *_ = table
    return fast_disentangler().fit(X, classes)


def probe_accuracy(part, X_train, c_train, X_test, c_test) -> float:
    return LogisticRegression(max_iter=2000).fit(part(X_train), c_train).score(part(X_test), c_test)


def test_the_class_part_holds_the_class_and_the_style_part_does_not(disentangler, table):
    X, classes, X_test, c_test, *_ = table
    assert probe_accuracy(disentangler.class_code, X, classes, X_test, c_test) >= 0.97
    # Chance is about 0.25 with 4 classes; measured 0.31 (0.94 without the adversary, below).
    assert probe_accuracy(disentangler.style_code, X, classes, X_test, c_test) <= 0.45


def test_a_swap_takes_the_class_of_one_row_and_the_style_of_another(disentangler, table):
    _, _, X_test, c_test, centres, mixing = table
    class_source, style_source = X_test[:300], X_test[300:600]
    swapped = disentangler.swap(class_source, style_source)
    style = swapped[:, N_TABLE_COLUMNS:]
    # The class of a swap: the centre nearest to it once its own style's share is taken out.
    centred = swapped[:, :N_TABLE_COLUMNS] - style @ mixing
    nearest_centre = np.argmin(((centred[:, None] - centres) ** 2).sum(-1), axis=1)
    assert np.mean(nearest_centre == c_test[:300]) >= 0.95
    for k in range(2):
        assert np.corrcoef(style[:, k], style_source[:, N_TABLE_COLUMNS + k])[0, 1] >= 0.9


def test_without_the_adversary_the_style_part_carries_the_class_too(table):
    X, classes, X_test, c_test, *_ = table
    leaky = fast_disentangler(adversary_weight=0.0).fit(X, classes)
    assert probe_accuracy(leaky.style_code, X, classes, X_test, c_test) >= 0.7


def test_a_single_row_is_paired_with_every_row_of_the_other_side(disentangler, table):
    _, _, X_test, *_ = table
    one_class_many_styles = disentangler.swap(X_test[:1], X_test[1:6])
    many_classes_one_style = disentangler.swap(X_test[1:6], X_test[:1])
    assert one_class_many_styles.shape == many_classes_one_style.shape == (5, X_test.shape[1])
    np.testing.assert_allclose(one_class_many_styles[2], disentangler.swap(X_test[:1], X_test[3:4])[0], rtol=1e-5,
                               atol=1e-5)


def test_parts_split_the_embedding(disentangler, table):
    _, _, X_test, *_ = table
    codes = disentangler.transform(X_test[:10])
    np.testing.assert_array_equal(np.hstack([disentangler.class_code(X_test[:10]),
                                             disentangler.style_code(X_test[:10])]), codes)
    assert disentangler.class_dim_ == 2 and codes.shape == (10, 5)


def test_it_still_scores_anomalies(disentangler, table):
    _, _, X_test, *_ = table
    far = X_test[:50] + 8.0
    assert np.mean(disentangler.decision_function(far) > np.median(disentangler.decision_function(X_test))) >= 0.95


def test_save_and_load_give_identical_scores_codes_and_swaps(tmp_path, table):
    X, classes, X_test, *_ = table
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    names = np.array(["ant", "bee", "cat", "dog"])[classes]
    model = fast_disentangler(epochs=5).fit(frame, names)
    model.save(tmp_path / "model")
    loaded = oddkit.load(tmp_path / "model")
    test = pd.DataFrame(X_test[:40], columns=frame.columns)
    np.testing.assert_array_equal(loaded.decision_function(test), model.decision_function(test))
    np.testing.assert_array_equal(loaded.class_code(test), model.class_code(test))
    pd.testing.assert_frame_equal(loaded.swap(test[:20], test[20:]), model.swap(test[:20], test[20:]))
    assert list(loaded.classes_) == ["ant", "bee", "cat", "dog"] and loaded.class_dim_ == 2


def left_half_bars(n: int, size: int, seed: int) -> np.ndarray:
    """Horizontal bars cut at the middle: the right half of each image is black."""
    images = bar_images(n, size=size, seed=seed)
    images[:, :, size // 2:] = 0
    return images


def bar_height(images: np.ndarray) -> np.ndarray:
    """The brightness-weighted mean row of each image (a bar 4 rows thick has no single brightest row)."""
    profile = images.astype(np.float64).mean(axis=2)
    return (profile * np.arange(images.shape[1])).sum(axis=1) / profile.sum(axis=1)


def test_on_images_the_swap_keeps_the_shape_and_takes_the_height():
    # The class is the bar's shape (full width or left half), the style its height, which means the
    # same thing in both classes. (Horizontal against vertical bars, as this test once had, cannot be
    # judged this way: nothing in the data says which column of a vertical bar answers to which row
    # of a horizontal one, and models learnt either way from seed to seed.)
    size = 16
    images = np.concatenate([bar_images(300, size=size, seed=1), left_half_bars(300, size, seed=2)])
    shape = np.r_[np.zeros(300, int), np.ones(300, int)]
    model = DisentangledAutoEncoderDetector(epochs=40, random_state=0, verbose=0, n_threads=1).fit(images, shape)
    for class_source, style_source, half in [(left_half_bars(40, size, seed=3), bar_images(40, size=size, seed=4), True),
                                             (bar_images(40, size=size, seed=5), left_half_bars(40, size, seed=6), False)]:
        swapped = model.swap(class_source, style_source)
        assert swapped.shape == (40, size, size)
        right, left = swapped[:, :, size // 2:].mean(axis=(1, 2)), swapped[:, :, :size // 2].mean(axis=(1, 2))
        assert np.mean((right < 0.5 * left) == half) >= 0.9
        # Measured 0.9-1.0 over seeds 0-3, as for plain reconstructions of the style sources.
        assert np.mean(np.abs(bar_height(swapped) - bar_height(style_source)) <= 1) >= 0.8


def test_image_models_save_and_load(tmp_path):
    images = np.concatenate([bar_images(40, size=8, seed=1), bar_images(40, vertical=True, size=8, seed=2)])
    model = DisentangledAutoEncoderDetector(epochs=2, random_state=0, verbose=0).fit(images, np.r_[[0] * 40, [1] * 40])
    model.save(tmp_path / "images")
    loaded = oddkit.load(tmp_path / "images")
    np.testing.assert_array_equal(loaded.swap(images[:5], images[40:45]), model.swap(images[:5], images[40:45]))


def test_parameters_follow_the_estimator_contract():
    params = DisentangledAutoEncoderDetector().get_params()
    assert {"class_dim", "swap_weight", "adversary_weight", "latent_dim"} <= set(params)
    assert not {"n_estimators", "exposure_weight", "exposure_margin"} & set(params)
    assert clone(DisentangledAutoEncoderDetector(class_dim=3)).class_dim == 3


def test_the_default_code_is_large_enough_to_split(table):
    X, classes, *_ = table
    model = DisentangledAutoEncoderDetector(epochs=1, random_state=0, verbose=0).fit(X, classes)
    assert model.latent_dim_ == 4 and model.class_dim_ == 2  # the auto-encoder's default for 8 columns is 2


@pytest.mark.parametrize("classes, message", [
    (None, "needs the class of each training row"),
    (np.zeros(100), "single class"),
    (np.arange(99) % 2, "100 rows"),
])
def test_bad_classes_raise_label_errors(classes, message):
    with pytest.raises(LabelError, match=message):
        fast_disentangler(epochs=1).fit(np.random.default_rng(0).normal(size=(100, 4)), classes)


@pytest.mark.parametrize("params, message", [
    ({"class_dim": 5}, "class_dim must be between 1 and latent_dim - 1"),
    ({"class_dim": 0}, "class_dim must be an integer >= 1 or None, got 0"),
    ({"latent_dim": 1, "class_dim": None}, "latent_dim must be at least 2"),
    ({"swap_weight": -1.0}, "swap_weight must be a number >= 0"),
    ({"adversary_weight": float("nan")}, "adversary_weight must be a number >= 0"),
])
def test_bad_parameters_raise_parameter_errors(params, message):
    X = np.random.default_rng(0).normal(size=(100, 4))
    with pytest.raises(ParameterError, match=message):
        fast_disentangler(epochs=1, **params).fit(X, np.arange(100) % 2)


def test_swapping_unequal_numbers_of_rows_is_an_error(disentangler, table):
    _, _, X_test, *_ = table
    with pytest.raises(DataError, match="X_class has 3 rows and X_style 2"):
        disentangler.swap(X_test[:3], X_test[3:5])


def test_partners_share_the_class_and_differ_from_the_row():
    classes = torch.tensor([0, 1, 0, 2, 1, 0, 3, 3])
    partners = same_class_partners(classes, torch.Generator().manual_seed(0))
    assert torch.equal(classes[partners], classes)
    alone = classes == 2
    assert torch.equal(partners[alone], torch.arange(8)[alone])
    assert bool((partners != torch.arange(8))[~alone].all())


def test_the_encoder_term_does_not_train_the_adversary():
    """The adversary learns only from its own cross-entropy: its gradients are the same whatever the
    weight of the encoder's term that keeps it guessing."""
    x, classes = torch.randn(16, 10), torch.arange(16) % 4

    def adversary_gradients(weight):
        torch.manual_seed(0)
        module = split_code_autoencoder(mlp_autoencoder(10, (16,), 4), 4, 2, 4).train()
        disentangling_losses(module, x, x, classes, torch.Generator().manual_seed(0), swap_weight=1.0,
                             adversary_weight=weight).mean().backward()
        return [p.grad.clone() for p in module.adversary.parameters()], module.encoder[0].weight.grad.clone()

    (adversary_1, encoder_1), (adversary_5, encoder_5) = adversary_gradients(1.0), adversary_gradients(5.0)
    for a, b in zip(adversary_1, adversary_5):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(encoder_1, encoder_5)


def test_cli_fit_with_classes_then_swap_and_embed(tmp_path, monkeypatch, capsys, table):
    from test_cli import run

    X, classes, X_test, *_ = table
    columns = [f"c{i}" for i in range(X.shape[1])]
    pd.DataFrame(X, columns=columns).assign(kind=classes, row=np.arange(len(X))).to_csv(tmp_path / "train.csv",
                                                                                        index=False)
    pd.DataFrame(X_test[:30], columns=columns).to_csv(tmp_path / "classes.csv", index=False)
    pd.DataFrame(X_test[30:60], columns=columns).to_csv(tmp_path / "styles.csv", index=False)
    code, out, err = run(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--detector", "disentangled",
                         "--class-col", "kind", "--id-col", "row", "--latent-dim", "5", "-p", "class_dim=2",
                         "--epochs", "5", "--quiet", "--out", tmp_path / "model")
    assert code == 0, err
    assert f"{N_CLASSES} classes" in out
    model = oddkit.load(tmp_path / "model")
    assert model.class_dim_ == 2 and "kind" not in model.feature_names_in_ and "row" not in model.feature_names_in_

    code, out, err = run(monkeypatch, capsys, "swap", tmp_path / "model", tmp_path / "classes.csv",
                         tmp_path / "styles.csv", "--out", tmp_path / "swapped.csv")
    assert code == 0, err
    swapped = pd.read_csv(tmp_path / "swapped.csv")
    expected = model.swap(pd.read_csv(tmp_path / "classes.csv"), pd.read_csv(tmp_path / "styles.csv"))
    assert list(swapped.columns) == columns
    np.testing.assert_allclose(swapped.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-5)

    code, _, err = run(monkeypatch, capsys, "embed", tmp_path / "model", tmp_path / "classes.csv",
                       "--out", tmp_path / "codes.csv")
    assert code == 0, err
    assert pd.read_csv(tmp_path / "codes.csv").shape == (30, 5)


def test_cli_refuses_what_it_cannot_do(tmp_path, monkeypatch, capsys, table):
    from test_cli import run

    X, classes, *_ = table
    pd.DataFrame(X[:200]).assign(kind=classes[:200]).to_csv(tmp_path / "train.csv", index=False)
    code, _, err = run(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--detector", "disentangled",
                       "--out", tmp_path / "m")
    assert code == 2 and "--detector disentangled needs --class-col" in err
    code, _, err = run(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--detector", "disentangled",
                       "--class-col", "kind", "--known-anomalies", tmp_path / "train.csv", "--out", tmp_path / "m")
    assert code == 2 and "cannot learn from --known-anomalies" in err
    code, _, err = run(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--detector", "gaussian",
                       "--out", tmp_path / "gaussian")
    assert code == 0, err
    code, _, err = run(monkeypatch, capsys, "swap", tmp_path / "gaussian", tmp_path / "train.csv",
                       tmp_path / "train.csv")
    assert code == 2 and "no class and style parts" in err
