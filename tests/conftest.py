"""Shared fixtures: small real data that always exists, and the team's shared datasets when present."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oddkit.data.datasets import load_breast_cancer, shared_dataset_path


def fast_autoencoder(**params):
    """The auto-encoder with its library defaults except fewer epochs, seeded and silent."""
    from oddkit import AutoEncoderDetector

    params = {"epochs": 40, "random_state": 0, "verbose": 0, **params}
    return AutoEncoderDetector(**params)


@pytest.fixture(scope="session")
def breast_cancer_split():
    """Train on 60% of the benign cases; test on the other benign cases and every malignant one."""
    X, y = load_breast_cancer()
    rng = np.random.default_rng(0)
    benign = rng.permutation(np.flatnonzero(y == 0))
    n_train = int(0.6 * len(benign))
    test = np.concatenate([benign[n_train:], np.flatnonzero(y == 1)])
    return X.iloc[benign[:n_train]], X.iloc[test], y[test]


def shared_clean_split(name: str, seed: int = 0, max_rows: int = 5000):
    """A clean (novelty) split of a ../shared/data set: 70% of its normal rows to train, the rest of
    the normals and all anomalies to test. Skips the test when ../shared is absent."""
    path = shared_dataset_path(name)
    if path is None:
        pytest.skip(f"../shared/data/{name}.npz is not available")
    with np.load(path, allow_pickle=False) as data:
        X, y = data["X"].astype(np.float64), data["y"].astype(int)
    rng = np.random.default_rng(seed)
    if len(y) > max_rows:
        keep = rng.choice(len(y), max_rows, replace=False)
        X, y = X[keep], y[keep]
    normal = rng.permutation(np.flatnonzero(y == 0))
    n_train = int(0.7 * len(normal))
    test = np.concatenate([normal[n_train:], np.flatnonzero(y == 1)])
    return X[normal[:n_train]], X[test], y[test]


@pytest.fixture
def mixed_frame():
    """A small table with numeric, categorical, constant and duplicate columns."""
    rng = np.random.default_rng(1)
    n = 120
    amount = rng.normal(100, 15, n)
    return pd.DataFrame({
        "amount": amount,
        "amount_copy": amount,
        "hour": rng.integers(0, 24, n),
        "constant": np.full(n, 3.0),
        "channel": rng.choice(["web", "shop", "phone"], n),
    })


def load_script(name: str):
    """A script of scripts/ imported as a module (``load_script("check_doc_commands")``)."""
    import importlib.util
    import sys
    from pathlib import Path

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_cli(monkeypatch, capsys, *args):
    """Run ``oddkit ARGS`` through the real entry point; return (exit code, stdout, stderr)."""
    monkeypatch.setattr("sys.argv", ["oddkit", *map(str, args)])
    code = 0
    try:
        from oddkit import cli

        cli.main()
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def scoring_rows(seed: int, n: int = 3000, n_features: int = 6) -> pd.DataFrame:
    """Normal rows x0..x5, the first 30 shifted far out (clear anomalies, so both labels occur)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, n_features)), columns=[f"x{i}" for i in range(n_features)])
    frame.iloc[:30] += 6.0
    return frame


@pytest.fixture(scope="session")
def scoring_models(tmp_path_factory):
    """For the distributed scoring tests (Spark, Dask): a Gaussian (numbers only) and an auto-encoder with a
    categorical column 'kind' (values 'a', 'b'), fitted and saved: {name: (detector, folder, columns)}."""
    from oddkit import GaussianDetector

    root = tmp_path_factory.mktemp("scoring-models")
    train = scoring_rows(0)
    gaussian = GaussianDetector().fit(train)
    gaussian.save(root / "gaussian")
    mixed = train.assign(kind=np.where(np.arange(len(train)) % 3 == 0, "a", "b"))
    autoencoder = fast_autoencoder(epochs=5).fit(mixed)
    autoencoder.save(root / "autoencoder")
    return {"gaussian": (gaussian, root / "gaussian", train.columns.tolist()),
            "autoencoder": (autoencoder, root / "autoencoder", mixed.columns.tolist())}


MESSAGES = ["see you at noon", "meeting moved to three", "lunch tomorrow?", "call me when you land",
            "ok see you then", "running late, ten minutes", "can you pick up milk", "happy birthday!"]
"""Ordinary short messages: the text model of :func:`scoring_text_model` learns these."""


@pytest.fixture(scope="session")
def scoring_text_model(tmp_path_factory):
    """For the distributed scoring tests: a text auto-encoder fitted on :data:`MESSAGES` (from the column
    'message' of a DataFrame), saved; (detector, folder), and texts to score, ordinary and odd."""
    from oddkit import TextAutoEncoderDetector

    folder = tmp_path_factory.mktemp("scoring-text") / "model"
    detector = TextAutoEncoderDetector(text_col="message", tokenizer="word", epochs=3, embedding_dim=16,
                                       hidden_size=32, code_size=8, random_state=0)
    detector.fit(pd.DataFrame({"message": MESSAGES * 6})).save(folder)
    texts = [*MESSAGES, "WIN A FREE PRIZE!!! CLAIM NOW at http://x.example", "zzzzqqqq 0800 777 777"] * 3
    return detector, folder, texts


def scoring_frame(columns: list[str], unseen_every: int | None = None) -> pd.DataFrame:
    """Rows to score: the model's columns in reverse order plus an 'id' and a label 'y' that are carried,
    not scored. With ``unseen_every`` every such row's 'kind' is 'c', a category never seen in training."""
    rows = scoring_rows(1)
    if "kind" in columns:
        rows["kind"] = np.where(np.arange(len(rows)) % 2 == 0, "a", "b")
        if unseen_every:
            rows.loc[rows.index % unseen_every == 1, "kind"] = "c"
    return rows[columns[::-1]].assign(id=np.arange(len(rows)), y=(np.arange(len(rows)) < 30).astype(int))


@pytest.fixture
def detector_registry_as_it_was():
    """Every BaseDetector subclass registers itself in oddkit's registry (as a user's would), and the
    benchmark's search_members defines some: take them out again after the test, so later tests see
    oddkit's own detectors only."""
    from oddkit.detectors import DETECTORS

    saved = dict(DETECTORS)
    yield
    DETECTORS.clear()
    DETECTORS.update(saved)
