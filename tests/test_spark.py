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

from conftest import run_cli, scoring_frame  # noqa: E402
from oddkit.exceptions import ColumnMismatchError, DataError, ModelFileError, OddkitError  # noqa: E402
from oddkit.persist import seal  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"),  # pyspark on pandas 3 says it is untested
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

@pytest.fixture(scope="module")
def spark():
    from oddkit.spark import local_session

    session = local_session("local[2]", app_name="oddkit-tests", conf={
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "400",  # several Arrow batches per partition
        "spark.ui.showConsoleProgress": "false"})
    yield session
    session.stop()


@pytest.mark.parametrize("name", ["gaussian", "autoencoder"])
@pytest.mark.parametrize("ship", ["path", "addFile"])
def test_scores_equal_single_process(spark, scoring_models, name, ship):
    from oddkit.spark import score

    detector, folder, columns = scoring_models[name]
    frame = scoring_frame(columns)
    scored = score(spark.createDataFrame(frame).repartition(3), folder, ship=ship)
    fields = {f.name: f.dataType.simpleString() for f in scored.schema.fields}
    assert list(fields) == [*frame.columns, "score", "label", "unseen_category"]
    assert (fields["score"], fields["label"], fields["unseen_category"]) == ("double", "int", "boolean")
    got = scored.toPandas().sort_values("id").reset_index(drop=True)
    expected = detector.decision_function(frame[columns])
    np.testing.assert_array_equal(got["score"].to_numpy(), expected)  # exactly, not approximately
    np.testing.assert_array_equal(got["label"].to_numpy(), detector.predict(frame[columns]))
    assert 0 < got["label"].sum() < len(got)
    pd.testing.assert_frame_equal(got[frame.columns.tolist()], frame, check_dtype=False)
    assert not got["unseen_category"].any()


def test_unseen_categories_scored_as_anomalies_flagged_and_counted(spark, scoring_models):
    """As 'oddkit score' does: the rows with an unseen category score what oddkit.scoring.score_rows gives
    them (at least the out-of-range score), are flagged and counted; strict_categories=True fails the job."""
    from oddkit.scoring import score_rows
    from oddkit.spark import UnseenCounts, score

    detector, folder, columns = scoring_models["autoencoder"]
    frame = scoring_frame(columns, unseen_every=7)
    counts = spark.sparkContext.accumulator({}, UnseenCounts())
    got = score(spark.createDataFrame(frame).repartition(3), folder, counts=counts).toPandas().sort_values("id")
    expected = score_rows(detector, frame[columns])
    assert expected.unseen.sum() == (frame["kind"] == "c").sum() > 0
    np.testing.assert_array_equal(got["unseen_category"].to_numpy(), expected.unseen)
    np.testing.assert_array_equal(got["score"].to_numpy(), expected.scores)
    assert (got["score"][expected.unseen] >= detector.out_of_range_score()).all()
    assert (got["label"][expected.unseen] == 1).all()
    seen = ~expected.unseen  # the other rows keep the library's scores exactly
    np.testing.assert_array_equal(got["score"].to_numpy()[seen], detector.decision_function(frame[columns][seen]))
    assert counts.value["rows"] == expected.unseen.sum() and set(counts.value["columns"]) == {"kind"}
    strict = score(spark.createDataFrame(frame), folder, strict_categories=True)
    with pytest.raises(Exception, match="never seen in training"):
        strict.collect()


def test_integrity_checked_on_the_executor(spark, scoring_models, tmp_path):
    """The driver's check passes; the folder is damaged before the job runs: the executors refuse it."""
    from oddkit.spark import score

    detector, folder, columns = scoring_models["gaussian"]
    copy = shutil.copytree(folder, tmp_path / "model")
    scored = score(spark.createDataFrame(scoring_frame(columns)), copy)  # verified here, on the driver
    weights = copy / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(Exception, match="ModelFileError|sha256|checksum"):
        scored.collect()


def test_signed_model(spark, scoring_models, tmp_path, monkeypatch):
    from oddkit.spark import score

    detector, _, columns = scoring_models["gaussian"]
    detector.save(tmp_path / "signed", key="s3cret")
    detector.save(tmp_path / "unsigned")
    frame = spark.createDataFrame(scoring_frame(columns))
    monkeypatch.setenv("ODDKIT_MODEL_KEY", "s3cret")
    got = score(frame, tmp_path / "signed").toPandas().sort_values("id")
    np.testing.assert_array_equal(got["score"].to_numpy(), detector.decision_function(scoring_frame(columns)[columns]))
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


def test_errors(spark, scoring_models):
    from oddkit.spark import score

    _, folder, columns = scoring_models["gaussian"]
    frame = scoring_frame(columns)
    with pytest.raises(ColumnMismatchError, match="x0"):
        score(spark.createDataFrame(frame.drop(columns="x0")), folder)
    with pytest.raises(DataError, match="score"):
        score(spark.createDataFrame(frame.assign(score=1.0)), folder)
    with pytest.raises(OddkitError, match="ship"):
        score(spark.createDataFrame(frame), folder, ship="scp")


def test_cli_engine_spark(spark, scoring_models, tmp_path, monkeypatch, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    detector, folder, columns = scoring_models["autoencoder"]
    frame = scoring_frame(columns)
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

    # a category never seen in training: scored as an anomaly and counted, or refused with --strict-categories
    odd = tmp_path / "odd.parquet"
    scoring_frame(columns, unseen_every=10).to_parquet(odd)
    n_unseen = int((pd.read_parquet(odd)["kind"] == "c").sum())
    code, stdout, stderr = run_cli(monkeypatch, capsys, "score", folder, odd, "--engine", "spark", "--spark-master",
                                   "local[2]", "--out", out, "--force")
    assert code == 0, stderr
    assert f"{n_unseen:,} row(s) hold categories never seen in training, in 'kind'" in stderr
    code, stdout, stderr = run_cli(monkeypatch, capsys, "score", folder, odd, "--engine", "spark", "--spark-master",
                                   "local[2]", "--out", out, "--force", "--strict-categories")
    assert code != 0 and "never seen in training" in stderr and "drop --strict-categories" in stderr
    assert "Traceback" not in stderr
    code, _, stderr = run_cli(monkeypatch, capsys, "score", folder, data, "--engine", "spark",
                              "--out", tmp_path / "scores.csv")
    assert code != 0 and "Parquet" in stderr
    code, _, stderr = run_cli(monkeypatch, capsys, "score", folder, data, "--engine", "flink", "--out", out)
    assert code != 0 and "local or spark" in stderr


def test_cli_engine_spark_refuses_bad_input_as_the_local_engine_does(scoring_models, tmp_path, monkeypatch, capsys):
    """An empty folder, a column missing, CSV files: the same one-line error and exit code 2 from both
    engines, found before Spark starts (no Java stack trace)."""
    _, folder, columns = scoring_models["gaussian"]
    empty = tmp_path / "empty"
    empty.mkdir()
    lacking = tmp_path / "lacking"
    lacking.mkdir()
    scoring_frame(columns).drop(columns="x2").to_parquet(lacking / "part-0.parquet")
    as_csv = tmp_path / "as_csv"
    as_csv.mkdir()
    scoring_frame(columns).to_csv(as_csv / "part-0.csv", index=False)
    for data, expected in [(empty, "holds no Parquet"), (lacking, "missing ['x2']")]:
        local = run_cli(monkeypatch, capsys, "score", folder, data, "--id-col", "id", "--out", tmp_path / "l.csv")
        spark = run_cli(monkeypatch, capsys, "score", folder, data, "--id-col", "id", "--engine", "spark",
                        "--spark-master", "local[2]", "--out", tmp_path / "s.parquet")
        assert local[0] == spark[0] == 2
        assert spark[2] == local[2] and spark[2].count("\n") == 1 and expected in spark[2], (spark, local)
    code, _, stderr = run_cli(monkeypatch, capsys, "score", folder, as_csv, "--engine", "spark",
                              "--out", tmp_path / "s.parquet")
    assert code == 2 and stderr.count("\n") == 1 and "--engine local" in stderr


def test_score_files_raises_oddkit_errors(spark, scoring_models, tmp_path):
    """From Python: oddkit's error types with one-line messages (oddkit.spark.score's own are in
    test_errors); Spark's analysis errors translated; a dotted column name is a name."""
    from oddkit.exceptions import EmptyDataError
    from oddkit.spark import _read_parquet, score_files

    _, folder, columns = scoring_models["gaussian"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyDataError, match="holds no Parquet"):
        score_files(folder, tmp_path / "empty", tmp_path / "out.parquet")
    frame = scoring_frame(columns)
    frame.drop(columns="x0").to_parquet(tmp_path / "lacking.parquet")
    with pytest.raises(ColumnMismatchError, match=r"missing \['x0'\], extra \['id'\]"):
        score_files(folder, tmp_path / "lacking.parquet", tmp_path / "out.parquet")
    dotted = tmp_path / "dotted.parquet"
    frame.rename(columns={"id": "row.id"}).to_parquet(dotted)
    assert _read_parquet(spark, dotted, ["row.id", "x0"]).columns == ["row.id", "x0"]  # a name, not a field path
    with pytest.raises(DataError, match=r"Spark cannot read .*UNRESOLVED_COLUMN") as caught:
        _read_parquet(spark, dotted, ["nowhere"])
    assert "\n" not in str(caught.value)
