"""The command line never prints a traceback for a user's mistake: one line ``error: ...``, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli as run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 200-row table, a labelled copy, a small image stack and a fitted Gaussian model."""
    folder = tmp_path_factory.mktemp("cli-errors")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 4)), columns=list("abcd"))
    frame.to_csv(folder / "train.csv", index=False)
    frame.assign(cls=np.arange(200) % 3).to_csv(folder / "classes.csv", index=False)
    np.savez(folder / "images.npz", X=rng.integers(0, 256, size=(20, 8, 8), dtype=np.uint8))
    from oddkit import GaussianDetector

    GaussianDetector().fit(frame).save(folder / "gaussian")
    frame.assign(label=np.arange(200) % 10 == 0).astype({"label": int}).to_csv(folder / "labelled.csv", index=False)
    (folder / "ragged.csv").write_text("a,b,c,d\n1,2,3,4\n1,2,3,4,5,6\n")
    (folder / "huge.csv").write_text("a,b,c,d\n1" + "0" * 400 + ",2,3,4\n")
    return folder


def test_a_failed_score_leaves_no_partial_table_and_keeps_the_old_one(files, monkeypatch, capsys):
    bad = pd.read_csv(files / "train.csv")
    bad.loc[150, "a"] = np.nan
    bad.to_csv(files / "bad.csv", index=False)
    out = files / "scores.csv"
    assert run(monkeypatch, capsys, "score", files / "gaussian", files / "train.csv", "--out", out, "-q")[0] == 0
    before = out.read_bytes()
    for target in (out, files / "new.parquet"):
        code, _, err = run(monkeypatch, capsys, "score", files / "gaussian", files / "bad.csv", "--out", target,
                           "--force", "--batch-rows", "50", "-q")
        assert code == 2 and "NaN" in err
    assert out.read_bytes() == before and not (files / "new.parquet").exists()
    assert not list(files.glob(".*partial"))


def fit_args(folder: Path, *extra) -> list:
    return ["fit", folder / "train.csv", "--out", folder / "model", "--quiet", "--force", *extra]


CASES = {
    # The list.
    "hidden-sizes abc": (["--hidden-sizes", "abc"], "hidden_sizes must be a non-empty list of positive integers"),
    "hidden-sizes 0": (["--hidden-sizes", "0"], "hidden_sizes must be a non-empty list of positive integers"),
    "latent-dim 0": (["--latent-dim", "0"], "latent_dim must be an integer >= 1 or None, got 0"),
    "lr abc": (["-p", "lr=abc"], "lr must be a number > 0, got 'abc'"),
    "ocsvm nu 5": (["--detector", "ocsvm", "-p", "nu=5"], "nu must be a number in (0, 1), got 5"),
    "iforest max_samples -3": (["--detector", "iforest", "-p", "max_samples=-3"], "max_samples must be one of"),
    # Other options' bad values, found by trying each.
    "contamination 2": (["--contamination", "2"], "contamination must be a number in (0, 0.5] or one of 'auto', got 2.0"),
    "impute mean": (["--impute", "mean"], "impute must be one of 'median' or None, got 'mean'"),
    "unknown-categories": (["--unknown-categories", "skip"], "unknown_categories must be one of 'error', 'ignore'"),
    "noise blur": (["--noise", "blur"], "noise must be one of 'gaussian', 'mask', 'salt_pepper' or None"),
    "device gpu": (["--device", "gpu"], "device must be 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto', got 'gpu'"),
    "n-threads 0": (["--n-threads", "0"], "--n-threads must be at least 1, got 0"),
    "epochs 0": (["--epochs", "0"], "epochs must be an integer >= 1, got 0"),
    "epochs inf": (["-p", "lr=Infinity"], "lr must be a number > 0, got inf"),
    "mask noise level": (["--noise", "mask", "-p", "noise_level=1"], "noise_level must be below 1"),
    "knn n_neighbors 0": (["--detector", "knn", "-p", "n_neighbors=0"], "n_neighbors must be an integer >= 1"),
    "pca n_components": (["--detector", "pca", "-p", "n_components=1.5"], "n_components must be"),
    "gaussian shrinkage": (["--detector", "gaussian", "-p", "shrinkage=lw"], "shrinkage must be"),
    "default members": (["--detector", "default", "-p", "members=knn,nope"], "members must be a non-empty list"),
    "default combine": (["--detector", "default", "-p", "combine=vote"], "combine must be one of 'max', 'mean'"),
    "vqvae codebook": (["--detector", "vqvae", "-p", "codebook_size=1"], "codebook_size must be an integer in [2,"),
    "vae beta": (["--detector", "vae", "-p", "beta=-1"], "beta must be a number >= 0, got -1"),
    "unknown detector": (["--detector", "nope"], "unknown detector 'nope'"),
    "unknown param": (["--detector", "knn", "-p", "foo=1"], "expected NAME=VALUE with NAME one of"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_fit_options_give_one_line_errors(case, files, monkeypatch, capsys):
    extra, message = CASES[case]
    code, out, err = run(monkeypatch, capsys, *fit_args(files, *extra))
    assert code == 2
    assert err.startswith("error: ") and message in err, err
    assert err.strip().count("\n") == 0, err
    assert "Traceback" not in out + err
    assert not (files / "model").exists()


@pytest.mark.parametrize("args, message", [
    (["compress", "{gaussian}", "{train}"], "holds a GaussianDetector, which has no code to compress with"),
    (["decompress", "{gaussian}", "{train}", "--out", "{folder}/d.csv"], "which has no code to decompress with"),
    (["embed", "{gaussian}", "{train}"], "which has no embedding"),
    (["generate", "{gaussian}"], "which cannot generate"),
    (["swap", "{gaussian}", "{train}", "{train}"], "whose code has no class and style parts"),
    (["score", "{gaussian}", "{train}", "--batch-rows", "0"], "batch_rows must be a positive integer"),
    (["threshold", "{gaussian}", "{train}", "--force"], "has no anomaly label column"),
    (["score", "{folder}/missing", "{train}"], "is not a saved oddkit model"),
    (["serve", "{gaussian}", "--max-body-mb", "inf"], "--max-body-mb must be a finite number"),
    (["serve", "{gaussian}", "--max-body-mb", "1e-9"], "--max-body-mb must be a finite number"),
    (["evaluate", "{gaussian}", "{labelled}", "--group-col", "nope", "--plots", "{folder}/p"],
     "(id, group or cost columns) not found"),
    (["score", "{gaussian}", "{ragged}"], "save it as comma-separated"),
    (["score", "{gaussian}", "{huge}"], "NaN/inf"),
    (["fit", "{folder}/images.npz", "--out", "{folder}/model", "--image-size", "abc"], "--image-size 'abc'"),
    (["fit", "{folder}/images.npz", "--out", "{folder}/model", "--image-size", "0"], "size must be positive"),
    (["fit", "{folder}/classes.csv", "--out", "{folder}/model", "--detector", "disentangled", "--class-col", "cls",
      "-p", "latent_dim=1"], "latent_dim must be at least 2"),
    (["fit", "{folder}/classes.csv", "--out", "{folder}/model", "--detector", "classifier", "--class-col", "cls",
      "-p", "classifier=svm"], "classifier must be one of 'auto', 'cnn', 'mlp'"),
])
def test_other_commands_give_one_line_errors(args, message, files, monkeypatch, capsys):
    paths = {"gaussian": files / "gaussian", "train": files / "train.csv", "folder": files,
             "labelled": files / "labelled.csv", "ragged": files / "ragged.csv", "huge": files / "huge.csv"}
    code, out, err = run(monkeypatch, capsys, *[a.format(**paths) for a in args])
    assert code == 2
    assert err.startswith("error: ") and message in err, err
    assert err.strip().count("\n") == 0, err
    assert "Traceback" not in out + err


def test_too_many_neighbours_is_a_one_line_warning(files, monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, *fit_args(files, "--detector", "knn", "-p", "n_neighbors=1000"))
    assert code == 0, err
    assert err.strip() == ("warning: KNNDetector: n_neighbors=1000 but the training data has 200 rows, so each "
                           "training row has only 199 others; using n_neighbors_=199. Pass -p n_neighbors=199 or less (or "
                           "more rows) to silence this")
    assert "saved to" in out


def test_the_installed_entry_point_prints_no_traceback(files):
    # A real process, as a user runs it: the message and the exit code, nothing from Python's internals.
    result = subprocess.run(
        [sys.executable, "-m", "oddkit.cli", *map(str, fit_args(files, "--latent-dim", "0"))],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip() == ("error: AutoEncoderDetector: latent_dim must be an integer >= 1 or None, "
                                     "got 0")
