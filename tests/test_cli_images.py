"""The command line with images and codes, end to end: fit on images, embed, generate, compress,
decompress (tiny data, one or two epochs)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import run_cli as run
from oddkit import load
from oddkit.data.images import read_images


def strokes(rng, n: int, horizontal: bool, size: int = 8) -> np.ndarray:
    """Tiny uint8 images: a bright bar, horizontal or vertical, at a random place."""
    X = rng.integers(0, 30, size=(n, size, size)).astype(np.uint8)
    for i, at in enumerate(rng.integers(1, size - 1, size=n)):
        if horizontal:
            X[i, at, :] = 255
        else:
            X[i, :, at] = 255
    return X


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """A folder with two class sub-folders of 8x8 PNGs, and the same images as an .npz."""
    folder = tmp_path_factory.mktemp("cli-images")
    rng = np.random.default_rng(0)
    X = np.concatenate([strokes(rng, 24, True), strokes(rng, 8, False)])
    labels = np.array([0] * 24 + [1] * 8)
    root = folder / "bars"
    for name, cls in (("horizontal", 0), ("vertical", 1)):
        (root / name).mkdir(parents=True)
        for i in np.flatnonzero(labels == cls):
            Image.fromarray(X[i]).save(root / name / f"{i:02d}.png")
    np.savez(folder / "bars.npz", X=X, labels=labels)
    return folder, root


@pytest.fixture(scope="module")
def table_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-codes")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 3)) @ rng.normal(size=(3, 8))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]).assign(row=[f"r{i}" for i in range(120)])
    frame.to_csv(folder / "train.csv", index=False)
    return folder


def test_table_embed_compress_decompress(table_files, monkeypatch, capsys):
    folder = table_files
    model = folder / "ae"
    code, out, err = run(monkeypatch, capsys, "fit", folder / "train.csv", "--id-col", "row", "--epochs", "3",
                         "--latent-dim", "3", "--quiet", "--out", model)
    assert code == 0, err

    code, out, err = run(monkeypatch, capsys, "embed", model, folder / "train.csv", "--id-col", "row",
                         "--out", folder / "emb.parquet")
    assert code == 0, err
    emb = pd.read_parquet(folder / "emb.parquet")
    assert list(emb.columns) == ["row", "z0", "z1", "z2"] and len(emb) == 120
    assert emb["row"].iloc[5] == "r5"

    code, out, err = run(monkeypatch, capsys, "compress", model, folder / "train.csv", "--id-col", "row",
                         "--bits", "6", "--out", folder / "train.oddz")
    assert code == 0, err
    assert "smaller than float32" in out
    assert (folder / "train.oddz").stat().st_size < 120 * 8 * 4

    code, out, err = run(monkeypatch, capsys, "decompress", model, folder / "train.oddz", "--out", folder / "back.csv")
    assert code == 0, err
    back = pd.read_csv(folder / "back.csv")
    assert list(back.columns) == [f"f{i}" for i in range(8)] and len(back) == 120

    # Another model cannot read the file; a non-generative model cannot generate.
    other = folder / "ae-other"
    assert run(monkeypatch, capsys, "fit", folder / "train.csv", "--id-col", "row", "--epochs", "1", "--quiet",
               "--random-state", "5", "--out", other)[0] == 0
    code, out, err = run(monkeypatch, capsys, "decompress", other, folder / "train.oddz", "--out", folder / "x.csv")
    assert code == 2 and "another model" in err
    code, out, err = run(monkeypatch, capsys, "generate", model, "-n", "4", "--out", folder / "s.csv")
    assert code == 2 and "cannot generate" in err
    code, out, err = run(monkeypatch, capsys, "decompress", model, folder / "train.csv", "--out", folder / "y.csv")
    assert code == 2 and "not an oddkit compressed blob" in err
    code, out, err = run(monkeypatch, capsys, "decompress", model, folder / "train.oddz")  # no --out: a usage error
    assert code == 2 and "Missing option" in err + out


def test_fit_on_image_folder_then_embed_compress_decompress(image_files, monkeypatch, capsys):
    folder, root = image_files
    model = folder / "conv-ae"
    code, out, err = run(monkeypatch, capsys, "fit", root / "horizontal", "--epochs", "2", "--quiet", "--out", model)
    assert code == 0, err
    assert "24 images of 1x8x8" in out
    config = json.loads((model / "config.json").read_text())
    assert config["class"] == "AutoEncoderDetector"

    code, out, err = run(monkeypatch, capsys, "embed", model, root, "--out", folder / "emb.csv")
    assert code == 0, err
    emb = pd.read_csv(folder / "emb.csv")
    assert list(emb.columns[:2]) == ["image", "class"] and len(emb) == 32
    assert emb["image"].iloc[0] == "horizontal/00.png" and set(emb["class"]) == {"horizontal", "vertical"}

    code, out, err = run(monkeypatch, capsys, "compress", model, folder / "bars.npz", "--out", folder / "bars.oddz")
    assert code == 0, err
    assert (folder / "bars.oddz").stat().st_size < 32 * 64 * 4
    code, out, err = run(monkeypatch, capsys, "decompress", model, folder / "bars.oddz", "--out", folder / "back")
    assert code == 0, err
    back = read_images(folder / "back")
    assert back.X.shape == (32, 1, 8, 8)
    code, out, err = run(monkeypatch, capsys, "decompress", model, folder / "bars.oddz", "--out", folder / "back.npz")
    assert code == 0, err
    assert np.load(folder / "back.npz")["X"].shape == (32, 1, 8, 8)

    code, out, err = run(monkeypatch, capsys, "score", model, root, "--out", folder / "scores.csv")
    assert code == 0, err
    scored = pd.read_csv(folder / "scores.csv")
    assert list(scored.columns) == ["image", "score", "label"] and len(scored) == 32
    vertical = scored["image"].str.startswith("vertical/")
    assert scored.loc[vertical, "score"].mean() > scored.loc[~vertical, "score"].mean()

    # A table is refused by an image model, with the reason.
    pd.DataFrame({"a": [1.0, 2.0]}).to_csv(folder / "t.csv", index=False)
    code, out, err = run(monkeypatch, capsys, "embed", model, folder / "t.csv", "--out", folder / "e.csv")
    assert code == 2 and "trained on images" in err


def test_fit_images_of_mixed_sizes_needs_image_size(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(2)
    for i in range(6):
        side = 8 if i % 2 else 10
        Image.fromarray(rng.integers(0, 255, (side, side), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    code, out, err = run(monkeypatch, capsys, "fit", tmp_path, "--epochs", "1", "--quiet", "--out", tmp_path / "m")
    assert code == 2 and "--image-size" in err
    code, out, err = run(monkeypatch, capsys, "fit", tmp_path, "--epochs", "1", "--quiet", "--image-size", "8",
                         "--out", tmp_path / "m")
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "fit", tmp_path, "--epochs", "1", "--quiet", "--image-size", "big",
                         "--out", tmp_path / "m2")
    assert code == 2 and "--image-size" in err


def test_fit_images_of_mixed_modes_needs_image_channels(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(3)
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(6):
        pixels = rng.integers(0, 255, (8, 8), dtype=np.uint8)
        Image.fromarray(pixels if i % 2 else np.stack([pixels] * 3, axis=-1)).save(folder / f"{i}.png")
    code, _, err = run(monkeypatch, capsys, "fit", folder, "--epochs", "1", "--quiet", "--out", tmp_path / "m")
    assert code == 2 and "--image-channels 1 or 3 to fit" in err and "channels=" not in err
    for channels in ("1", "3"):
        code, _, err = run(monkeypatch, capsys, "fit", folder, "--epochs", "1", "--quiet", "--image-channels",
                           channels, "--out", tmp_path / f"m{channels}")
        assert code == 0, err
        assert load(tmp_path / f"m{channels}").image_shape_[0] == int(channels)
    code, _, err = run(monkeypatch, capsys, "fit", folder, "--image-channels", "2", "--out", tmp_path / "m2")
    assert code == 2 and "choose 1 (grayscale) or 3 (RGB)" in err
    pd.DataFrame({"a": rng.normal(size=20)}).to_csv(tmp_path / "t.csv", index=False)
    code, _, err = run(monkeypatch, capsys, "fit", tmp_path / "t.csv", "--image-channels", "1", "--out", tmp_path / "t")
    assert code == 2 and "holds none" in err


def test_vae_generates_images_and_tables(image_files, table_files, monkeypatch, capsys):
    folder, _ = image_files
    model = folder / "vae"
    code, out, err = run(monkeypatch, capsys, "fit", folder / "bars.npz", "--detector", "vae", "--epochs", "1",
                         "--quiet", "--out", model)
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "generate", model, "-n", "6", "--out", folder / "samples.png")
    assert code == 0, err
    with Image.open(folder / "samples.png") as grid:
        assert grid.mode == "L" and grid.size == (3 * 10 + 2, 2 * 10 + 2)  # 3 x 2 grid of 8x8, 2-pixel gaps
    code, out, err = run(monkeypatch, capsys, "generate", model, "-n", "5", "--out", folder / "samples.npz")
    assert code == 0, err
    assert np.load(folder / "samples.npz")["X"].shape == (5, 1, 8, 8)

    tables = table_files
    code, out, err = run(monkeypatch, capsys, "fit", tables / "train.csv", "--id-col", "row", "--detector", "vae",
                         "--epochs", "2", "--quiet", "--out", tables / "vae")
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "generate", tables / "vae", "-n", "7", "--out", tables / "fake.parquet")
    assert code == 0, err
    fake = pd.read_parquet(tables / "fake.parquet")
    assert fake.shape == (7, 8) and list(fake.columns) == [f"f{i}" for i in range(8)]


def test_vq_vae_compress_on_the_command_line(image_files, monkeypatch, capsys):
    folder, root = image_files
    model = folder / "vq"
    code, out, err = run(monkeypatch, capsys, "fit", root, "--detector", "vqvae", "--epochs", "1", "--quiet",
                         "--out", model)
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "compress", model, root, "--out", folder / "vq.oddz")
    assert code == 0, err
    assert "bits" in out
    code, out, err = run(monkeypatch, capsys, "decompress", model, folder / "vq.oddz", "--out", folder / "vq-back.npz")
    assert code == 0, err
    assert np.load(folder / "vq-back.npz")["X"].shape == (32, 1, 8, 8)


def test_evaluate_and_threshold_on_labelled_images(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(1)
    normal, odd = strokes(rng, 120, True), strokes(rng, 30, False)
    np.savez(tmp_path / "train.npz", X=normal[:80])
    np.savez(tmp_path / "dev.npz", X=np.concatenate([normal[80:], odd]), y=np.r_[np.zeros(40), np.ones(30)])
    for name, images in (("normal", normal[80:100]), ("anomaly", odd[:10])):
        (tmp_path / "test" / name).mkdir(parents=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(tmp_path / "test" / name / f"{i:02d}.png")
    code, _, err = run(monkeypatch, capsys, "fit", tmp_path / "train.npz", "--epochs", "30", "-q",
                       "--out", tmp_path / "model")
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "threshold", tmp_path / "model", tmp_path / "dev.npz", "--goal", "f1", "--force")
    assert code == 0, err
    assert load(tmp_path / "model").threshold_goal_ == "f1"
    code, out, err = run(monkeypatch, capsys, "evaluate", tmp_path / "model", tmp_path / "test",
                         "--plots", tmp_path / "plots")
    assert code == 0, err
    assert "ROC AUC" in out and (tmp_path / "plots" / "roc.png").exists()
    # Labels must be there, and be 0/1.
    code, _, err = run(monkeypatch, capsys, "evaluate", tmp_path / "model", tmp_path / "train.npz")
    assert code == 2 and "no anomaly labels" in err
    np.savez(tmp_path / "bad.npz", X=normal[:5], y=np.arange(5))
    code, _, err = run(monkeypatch, capsys, "evaluate", tmp_path / "model", tmp_path / "bad.npz")
    assert code == 2 and "0 (normal) or 1" in err


@pytest.fixture(scope="module")
def planted_square_files(tmp_path_factory):
    """train/: 60 normal 16x16 images (horizontal bars in the lower half); test/: three more, one with a
    bright square planted at columns 10-13, rows 1-4 (planted.png) and the same image saved at 32x24
    (planted-big.png: read back at the model's 16x16, with a warning)."""
    from synthetic_images import bar_images

    folder = tmp_path_factory.mktemp("cli-explain-images")
    images = [x for x in bar_images(200, size=16, seed=1) if np.flatnonzero(x.mean(axis=1) > 100).min() >= 7]
    (folder / "train").mkdir()
    (folder / "test").mkdir()
    for i, x in enumerate(images[:60]):
        Image.fromarray(x).save(folder / "train" / f"{i:03d}.png")
    for i, x in enumerate(images[60:63]):
        Image.fromarray(x).save(folder / "test" / f"normal{i}.png")
    planted = images[63].copy()
    planted[1:5, 10:14] = 255
    Image.fromarray(planted).save(folder / "test" / "planted.png")
    Image.fromarray(planted).resize((32, 24), Image.Resampling.NEAREST).save(folder / "test" / "planted-big.png")
    code, _, err = run_quiet("fit", folder / "train", "--detector", "default", "--out", folder / "model")
    assert code == 0, err
    return folder


def run_quiet(*args):
    """'oddkit ARGS' in a fresh interpreter (for a module-scoped fixture, which cannot use capsys)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "oddkit", *map(str, args)], capture_output=True, text=True)
    return result.returncode, result.stdout, result.stderr


def test_explain_images_gives_regions_and_heat_maps(planted_square_files, tmp_path, monkeypatch, capsys):
    folder = planted_square_files
    out, maps = tmp_path / "explained.csv", tmp_path / "maps"
    code, stdout, err = run(monkeypatch, capsys, "explain", folder / "model", folder / "test", "--top", "2",
                            "--regions", "2", "--maps", maps, "--out", out)
    assert code == 0, err
    # The resized file is announced on stderr, in one line: how many, from what size, to what.
    [note] = [line for line in err.splitlines() if "resized" in line]
    assert note.startswith("warning: resized 1 of 5 images in ")
    assert "to 16x16 pixels (height x width): 1 from 24x32" in note
    summary = " ".join(stdout.split())  # the console may fold the line
    assert "explained the 2 highest-scoring of 5 images of test with EnsembleDetector (gradient-cells: " in summary
    assert "by its one member GradientKNNDetector" in summary and "and 2 heat-maps in" in summary
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["image", "row", "score", "label", "region", "left", "top", "right", "bottom",
                                   "share", "note", "map"]
    assert sorted(frame["image"].unique()) == ["planted-big.png", "planted.png"]  # the two highest scores
    assert frame["region"].tolist() == [1, 2, 1, 2] and (frame["label"] == 1).all()
    assert frame["score"].is_monotonic_decreasing and frame["share"].between(0, 1).all()
    first = frame[frame["region"] == 1].set_index("image")
    # The top region overlaps the planted square, in each file's own pixels (the big one: x2 wide, x1.5 high).
    squares = {"planted.png": (10, 1, 14, 5), "planted-big.png": (20, 1.5, 28, 7.5)}
    for name, (left, top, right, bottom) in squares.items():
        box = first.loc[name]
        assert box.left < right and left < box.right and box.top < bottom and top < box.bottom, (name, box)
    assert first.loc["planted-big.png", "right"] <= 32 and first.loc["planted-big.png", "bottom"] <= 24
    pictures = sorted(p.name for p in maps.iterdir())
    assert len(pictures) == 2 and set(frame["map"].map(lambda p: p.rsplit("/", 1)[-1])) == set(pictures)
    with Image.open(maps / pictures[0]) as picture:
        assert picture.mode == "RGB" and picture.size[1] >= 128 and picture.size[0] > 2 * picture.size[1]

    # The same maps folder again: refused without --force; occlusion on demand, to standard output.
    code, _, err = run(monkeypatch, capsys, "explain", folder / "model", folder / "test", "--maps", maps,
                       "--out", tmp_path / "again.csv")
    assert code == 2 and "--force" in err and not (tmp_path / "again.csv").exists()
    code, stdout, err = run(monkeypatch, capsys, "explain", folder / "model", folder / "test", "--top", "1",
                            "--method", "occlusion", "--patch-size", "4", "--out", "-")
    assert code == 0, err
    [row] = pd.read_csv(io.StringIO(stdout)).to_dict("records")
    assert row["right"] - row["left"] == 4 or row["image"] == "planted-big.png"
    assert "map" not in row


def test_explain_images_refuses_options_that_do_not_apply(planted_square_files, tmp_path, monkeypatch, capsys):
    folder = planted_square_files
    for extra, expected in ((["--by", "band"], "--by"), (["--method", "shap"], "--method must be auto or occlusion"),
                            (["--regions", "0"], "--regions"), (["--patch-size", "0"], "--patch-size")):
        code, _, err = run(monkeypatch, capsys, "explain", folder / "model", folder / "test", *extra,
                           "--out", tmp_path / "e.csv")
        assert code == 2 and expected in err, (extra, err)
    pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) % 7}).to_csv(tmp_path / "t.csv", index=False)
    code, _, err = run(monkeypatch, capsys, "fit", tmp_path / "t.csv", "--detector", "knn", "--out", tmp_path / "tm")
    assert code == 0, err
    code, _, err = run(monkeypatch, capsys, "explain", tmp_path / "tm", tmp_path / "t.csv", "--maps", tmp_path / "mp",
                       "--out", tmp_path / "e.csv")
    assert code == 2 and "--maps explain models trained on images" in err


def test_scoring_images_of_another_size_says_so(planted_square_files, tmp_path, monkeypatch, capsys):
    folder = planted_square_files
    code, _, err = run(monkeypatch, capsys, "score", folder / "model", folder / "test", "--out", tmp_path / "s.csv")
    assert code == 0, err
    assert "warning: resized 1 of 5 images in" in err and "1 from 24x32; 1 of them changed aspect ratio" in err
    assert len(pd.read_csv(tmp_path / "s.csv")) == 5
    code, _, err = run(monkeypatch, capsys, "score", folder / "model", folder / "train", "--out", tmp_path / "t.csv")
    assert code == 0 and "resized" not in err
