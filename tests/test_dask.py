"""oddkit.dask on a LocalCluster: scores equal single-process scores exactly; the folder is verified on
the workers; signed models; errors. Skips without dask.distributed."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe", reason="dask is not installed (pip install 'oddkit[dask]')")
distributed = pytest.importorskip("dask.distributed", reason="dask.distributed is not installed")

from conftest import fast_autoencoder  # noqa: E402
from oddkit import GaussianDetector  # noqa: E402
from oddkit.exceptions import ColumnMismatchError, DataError, ModelFileError  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def _rows(seed: int, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 5)), columns=[f"x{i}" for i in range(5)])
    frame.iloc[:20] += 6.0
    return frame


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    train = _rows(0)
    gaussian = GaussianDetector().fit(train)
    gaussian.save(root / "gaussian")
    autoencoder = fast_autoencoder(epochs=5).fit(train)
    autoencoder.save(root / "autoencoder")
    return {"gaussian": (gaussian, root / "gaussian"), "autoencoder": (autoencoder, root / "autoencoder")}


def _frame() -> pd.DataFrame:
    rows = _rows(1)
    return rows[rows.columns[::-1]].assign(id=np.arange(len(rows)))


@pytest.mark.parametrize("name", ["gaussian", "autoencoder"])
def test_scores_equal_single_process(client, models, name):
    from oddkit.dask import score

    detector, folder = models[name]
    frame = _frame()
    scored = score(dd.from_pandas(frame, npartitions=4), folder)
    assert list(scored.columns) == [*frame.columns, "score", "label"]
    got = scored.compute().sort_values("id")
    assert got["score"].dtype == np.float64 and got["label"].dtype == np.int32
    features = [f"x{i}" for i in range(5)]
    np.testing.assert_array_equal(got["score"].to_numpy(), detector.decision_function(frame[features]))
    np.testing.assert_array_equal(got["label"].to_numpy(), detector.predict(frame[features]))
    assert 0 < got["label"].sum() < len(got)


def test_integrity_checked_on_the_worker(client, models, tmp_path):
    from oddkit.dask import score

    _, folder = models["gaussian"]
    copy = shutil.copytree(folder, tmp_path / "model")
    lazy = score(dd.from_pandas(_frame(), npartitions=2), copy)
    weights = copy / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        lazy.compute()


def test_signed_model_and_errors(client, models, tmp_path, monkeypatch):
    from oddkit.dask import score

    detector, folder = models["gaussian"]
    detector.save(tmp_path / "signed", key="s3cret")
    ddf = dd.from_pandas(_frame(), npartitions=2)
    monkeypatch.setenv("ODDKIT_MODEL_KEY", "s3cret")
    got = score(ddf, tmp_path / "signed").compute().sort_values("id")
    np.testing.assert_array_equal(got["score"].to_numpy(), detector.decision_function(_frame()[[f"x{i}" for i in range(5)]]))
    with pytest.raises(ModelFileError):
        score(ddf, folder)  # unsigned, with a key configured
    monkeypatch.delenv("ODDKIT_MODEL_KEY")
    with pytest.raises(ColumnMismatchError, match="x0"):
        score(ddf.drop(columns="x0"), folder)
    with pytest.raises(DataError, match="label"):
        score(ddf.assign(label=1), folder)
