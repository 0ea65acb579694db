"""oddkit.spark and 'oddkit score --engine spark': Spark local[2] scores equal single-process scores,
bit for bit; the folder is verified on the executors; signed models; errors. Skips without pyspark
or Java."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'oddkit[spark]')")
if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
    pytest.skip("Spark needs a Java runtime (17 or later); none found", allow_module_level=True)

from conftest import fast_autoencoder, run_cli  # noqa: E402
from oddkit import GaussianDetector  # noqa: E402
from oddkit.exceptions import ColumnMismatchError, DataError, ModelFileError, OddkitError  # noqa: E402
from oddkit.persist import seal  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"),  # pyspark on pandas 3 says it is untested
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

N_ROWS, N_FEATURES = 3000, 6


@pytest.fixture(scope="module")
def spark():
    from oddkit.spark import local_session

    session = local_session("local[2]", app_name="oddkit-tests", conf={
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "400",  # several Arrow batches per partition
        "spark.ui.showConsoleProgress": "false"})
    yield session
    session.stop()


def _rows(seed: int, n: int = N_ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, N_FEATURES)), columns=[f"x{i}" for i in range(N_FEATURES)])
    frame.iloc[:30] += 6.0  # a few clear anomalies, so both labels occur
    return frame


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A Gaussian (numbers only) and an auto-encoder with a categorical column, saved."""
    root = tmp_path_factory.mktemp("models")
    train = _rows(0)
    gaussian = GaussianDetector().fit(train)
    gaussian.save(root / "gaussian")
    mixed = train.assign(kind=np.where(np.arange(len(train)) % 3 == 0, "a", "b"))
    autoencoder = fast_autoencoder(epochs=5).fit(mixed)
    autoencoder.save(root / "autoencoder")
    return {"gaussian": (gaussian, root / "gaussian", train.columns.tolist()),
            "autoencoder": (autoencoder, root / "autoencoder", mixed.columns.tolist())}


def _test_frame(columns: list[str]) -> pd.DataFrame:
    rows = _rows(1)
    if "kind" in columns:
        rows["kind"] = np.where(np.arange(len(rows)) % 2 == 0, "a", "b")
    # the model's columns in another order, plus an id and a label that are carried, not scored
    return rows[columns[::-1]].assign(id=np.arange(len(rows)), y=(np.arange(len(rows)) < 30).astype(int))


@pytest.mark.parametrize("name", ["gaussian", "autoencoder"])
@pytest.mark.parametrize("ship", ["path", "addFile"])
def test_scores_equal_single_process(spark, models, name, ship):
    from oddkit.spark import score

    detector, folder, columns = models[name]
    frame = _test_frame(columns)
    scored = score(spark.createDataFrame(frame).repartition(3), folder, ship=ship)
    fields = {f.name: f.dataType.simpleString() for f in scored.schema.fields}
    assert list(fields) == [*frame.columns, "score", "label"]
    assert (fields["score"], fields["label"]) == ("double", "int")
    got = scored.toPandas().sort_values("id").reset_index(drop=True)
    expected = detector.decision_function(frame[columns])
    np.testing.assert_array_equal(got["score"].to_numpy(), expected)  # exactly, not approximately
    np.testing.assert_array_equal(got["label"].to_numpy(), detector.predict(frame[columns]))
    assert 0 < got["label"].sum() < len(got)
    pd.testing.assert_frame_equal(got[frame.columns.tolist()], frame, check_dtype=False)


def test_integrity_checked_on_the_executor(spark, models, tmp_path):
    """The driver's check passes; the folder is damaged before the job runs: the executors refuse it."""
    from oddkit.spark import score

    detector, folder, columns = models["gaussian"]
    copy = shutil.copytree(folder, tmp_path / "model")
    scored = score(spark.createDataFrame(_test_frame(columns)), copy)  # verified here, on the driver
    weights = copy / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(Exception, match="ModelFileError|sha256|checksum"):
        scored.collect()


def test_signed_model(spark, models, tmp_path, monkeypatch):
    from oddkit.spark import score

    detector, _, columns = models["gaussian"]
    detector.save(tmp_path / "signed", key="s3cret")
    detector.save(tmp_path / "unsigned")
    frame = spark.createDataFrame(_test_frame(columns))
    monkeypatch.setenv("ODDKIT_MODEL_KEY", "s3cret")
    got = score(frame, tmp_path / "signed").toPandas().sort_values("id")
    np.testing.assert_array_equal(got["score"].to_numpy(), detector.decision_function(_test_frame(columns)[columns]))
    with pytest.raises(ModelFileError):
        score(frame, tmp_path / "unsigned")  # refused on the driver
    monkeypatch.delenv("ODDKIT_MODEL_KEY")
    with pytest.raises(ModelFileError):
        score(frame, tmp_path / "signed", key="another key")
    # signed when the driver checked it, re-sealed without a signature before the job: executors refuse it
    lazy = score(frame, tmp_path / "signed", key="s3cret")
    seal(tmp_path / "signed")
    with pytest.raises(Exception, match="ModelFileError|signature|signed"):
        lazy.collect()


def test_errors(spark, models):
    from oddkit.spark import score

    _, folder, columns = models["gaussian"]
    frame = _test_frame(columns)
    with pytest.raises(ColumnMismatchError, match="x0"):
        score(spark.createDataFrame(frame.drop(columns="x0")), folder)
    with pytest.raises(DataError, match="score"):
        score(spark.createDataFrame(frame.assign(score=1.0)), folder)
    with pytest.raises(OddkitError, match="ship"):
        score(spark.createDataFrame(frame), folder, ship="scp")


def test_cli_engine_spark(spark, models, tmp_path, monkeypatch, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    detector, folder, columns = models["autoencoder"]
    frame = _test_frame(columns)
    data = tmp_path / "rows"
    data.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 3)):  # a folder of three Parquet files
        pq.write_table(pa.Table.from_pandas(frame.iloc[part], preserve_index=False), data / f"part-{i}.parquet")
    out = tmp_path / "scores.parquet"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "score", folder, data, "--engine", "spark",
                                   "--spark-master", "local[2]", "--id-col", "id", "--out", out)
    assert code == 0, stderr
    assert f"scored {len(frame):,} rows on Spark" in stdout
    got = pd.read_parquet(out).sort_values("id").reset_index(drop=True)
    assert list(got.columns) == ["id", "score", "label"]
    np.testing.assert_array_equal(got["id"].to_numpy(), frame["id"].to_numpy())
    np.testing.assert_array_equal(got["score"].to_numpy(), detector.decision_function(frame[columns]))
    assert f"{int(got['label'].sum()):,} flagged" in stdout

    code, _, stderr = run_cli(monkeypatch, capsys, "score", folder, data, "--engine", "spark", "--out", out)
    assert code != 0 and "--force" in stderr
    code, _, stderr = run_cli(monkeypatch, capsys, "score", folder, data, "--engine", "spark",
                              "--out", tmp_path / "scores.csv")
    assert code != 0 and "Parquet" in stderr
    code, _, stderr = run_cli(monkeypatch, capsys, "score", folder, data, "--engine", "flink", "--out", out)
    assert code != 0 and "local or spark" in stderr
