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


def test_columns_besides_the_features_are_carried_and_a_nameless_model_counts_them(spark, scoring_models, tmp_path):
    """oddkit.spark.score is a transformation: columns the model was not fitted on are not scored but carried
    to the result (ids reach it so); a model fitted without names scores every column, so a DataFrame with
    another number of columns is refused on the driver, not on an executor."""
    from oddkit import GaussianDetector
    from oddkit.spark import score

    _, folder, columns = scoring_models["gaussian"]
    frame = scoring_frame(columns).assign(note="carried")
    got = score(spark.createDataFrame(frame), folder).toPandas()
    assert list(got.columns) == [*frame.columns, "score", "label", "unseen_category"]
    assert (got["note"] == "carried").all()
    nameless = GaussianDetector().fit(frame[columns].to_numpy())
    nameless.save(tmp_path / "nameless")
    with pytest.raises(ColumnMismatchError, match=r"without column names, on 6 columns, and the DataFrame has 9"):
        score(spark.createDataFrame(frame), tmp_path / "nameless")
    scored = score(spark.createDataFrame(frame), tmp_path / "nameless", features=columns).toPandas()
    np.testing.assert_array_equal(scored["score"].to_numpy(), nameless.decision_function(frame[columns].to_numpy()))


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
                                   "local[2]", "--id-col", "id", "--out", out, "--force")
    assert code == 0, stderr
    assert f"{n_unseen:,} row(s) hold categories never seen in training, in 'kind'" in stderr
    code, stdout, stderr = run_cli(monkeypatch, capsys, "score", folder, odd, "--engine", "spark", "--spark-master",
                                   "local[2]", "--id-col", "id", "--out", out, "--force", "--strict-categories")
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
    extra = tmp_path / "extra"  # a column neither the model's, an --id-col nor the label: refused, not dropped
    extra.mkdir()
    scoring_frame(columns).assign(note="x").to_parquet(extra / "part-0.parquet")
    for data, expected in [(empty, "holds no Parquet"), (lacking, "missing ['x2']"),
                           (extra, "missing [], extra ['note']; pass extra columns as --id-col")]:
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


def test_score_files_refuses_extra_columns_but_not_partition_columns(spark, scoring_models, tmp_path):
    """A column of the files that is no feature, id or label is refused as the local engine refuses it; a
    partition column (a key=value folder, which the local engine does not read) is not one of them."""
    from oddkit.spark import score_files

    detector, folder, columns = scoring_models["gaussian"]
    frame = scoring_frame(columns)
    frame.assign(note="x").to_parquet(tmp_path / "extra.parquet")
    with pytest.raises(ColumnMismatchError, match=r"missing \[\], extra \['note'\]; pass extra columns as --id-col"):
        score_files(folder, tmp_path / "extra.parquet", tmp_path / "out.parquet", id_cols=("id",))
    assert not (tmp_path / "out.parquet").exists()
    (tmp_path / "days" / "day=1").mkdir(parents=True)
    frame.to_parquet(tmp_path / "days" / "day=1" / "part-0.parquet")
    n, _, _, _ = score_files(folder, tmp_path / "days", tmp_path / "out.parquet", id_cols=("id",))
    got = pd.read_parquet(tmp_path / "out.parquet").sort_values("id")
    assert n == len(frame) and list(got.columns) == ["id", "score", "label"]
    np.testing.assert_array_equal(got["score"].to_numpy(), detector.decision_function(frame[columns]))


def test_cli_a_failing_job_is_one_line(spark, scoring_models, tmp_path, monkeypatch, capsys):
    """An exception inside the scoring function on an executor (here induced: the function Spark ships raises)
    reaches the command line as one line naming it, exit code 2, no traceback; the Spark exception is kept
    as the error's cause."""
    import oddkit.spark

    def failing(batches, **kwargs):  # pickled by value with the job: the executors run it
        for _ in batches:
            raise ValueError("induced failure inside the scoring function")
        yield from ()

    _, folder, columns = scoring_models["gaussian"]
    scoring_frame(columns).to_parquet(tmp_path / "rows.parquet")
    monkeypatch.setattr(oddkit.spark, "_score_batches", failing)
    code, stdout, stderr = run_cli(monkeypatch, capsys, "score", folder, tmp_path / "rows.parquet", "--id-col", "id",
                                   "--engine", "spark", "--spark-master", "local[2]", "--out", tmp_path / "s.parquet")
    assert code == 2, stderr
    assert stderr == ("error: the Spark job failed: ValueError: induced failure inside the scoring function "
                      "(oddkit --debug shows the full traceback)\n")
    with pytest.raises(oddkit.spark.SparkJobError, match="ValueError: induced failure") as caught:
        oddkit.spark.score_files(folder, tmp_path / "rows.parquet", tmp_path / "s.parquet", id_cols=("id",),
                                 force=True)
    assert "Traceback" in str(caught.value.__cause__)
    assert spark.sparkContext.getConf() is not None  # the session survives the failed job


JAVA_FAILURE = """An error occurred while calling o60.parquet.
: org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 1.0 failed 1 times, \
most recent failure: Lost task 0.0 in stage 1.0 (TID 1) (192.0.2.2 executor driver): \
org.apache.spark.SparkException: Python worker exited unexpectedly (crashed).
\tat org.apache.spark.api.python.BasePythonRunner$ReaderIterator.read(PythonRunner.scala:612)
\tat scala.collection.Iterator$$anon$10.hasNext(Iterator.scala:594)
Caused by: java.io.EOFException
\tat java.base/java.io.DataInputStream.readInt(DataInputStream.java:386)
"""

PYTHON_FAILURE = """An exception was thrown from the Python worker:
Traceback (most recent call last):
  File "/work/oddkit/spark.py", line 130, in _score_batches
    yield score_frame(detector, frame, features, strict_categories, counts)
KeyError: 'x0'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/work/oddkit/spark.py", line 131, in _score_batches
    raise RuntimeError("boom")
RuntimeError: boom
 SQLSTATE: 38000
"""


@pytest.mark.parametrize(("text", "cause"), [
    (PYTHON_FAILURE, "RuntimeError: boom"),
    (JAVA_FAILURE, "Python worker exited unexpectedly (crashed)."),
    ("An error occurred while calling o7.parquet.\n: java.lang.OutOfMemoryError: Java heap space\n\tat x.y(Z.java:1)",
     "OutOfMemoryError: Java heap space"),
    ("[JAVA_GATEWAY_EXITED] Java gateway process exited before sending its port number.",
     "[JAVA_GATEWAY_EXITED] Java gateway process exited before sending its port number."),
    ("", "no reason given"),
])
def test_failure_cause_names_the_last_python_exception_or_the_task_failure(text, cause):
    from oddkit.spark import _failure_cause

    assert _failure_cause(text) == cause


def test_failure_cause_is_one_bounded_line():
    from oddkit.spark import _MAX_CAUSE, _failure_cause

    found = _failure_cause("Traceback (most recent call last):\n  File x\nValueError: " + "long " * 200)
    assert "\n" not in found and _MAX_CAUSE - 5 < len(found) <= _MAX_CAUSE and found.endswith("...")


def test_job_error_translates_spark_errors_only():
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkRuntimeError

    from oddkit.exceptions import UnseenCategoryError
    from oddkit.spark import SparkJobError, _job_error

    crashed = _job_error(Py4JError(JAVA_FAILURE))
    assert isinstance(crashed, SparkJobError) and str(crashed) == (
        "the Spark job failed: Python worker exited unexpectedly (crashed). (oddkit --debug shows the full traceback)")
    unseen = _job_error(Py4JError("Traceback (most recent call last):\n  File x\n"
                                  "oddkit.exceptions.UnseenCategoryError: column 'kind' has 1 value(s) never seen"))
    assert type(unseen) is UnseenCategoryError and str(unseen) == "column 'kind' has 1 value(s) never seen"
    gateway = _job_error(PySparkRuntimeError(errorClass="JAVA_GATEWAY_EXITED", messageParameters={}))
    assert isinstance(gateway, SparkJobError) and "JAVA_GATEWAY_EXITED" in str(gateway)
    own = DataError("bad")
    assert _job_error(own) is own
    assert _job_error(KeyError("a bug of ours")) is None  # not Spark's: raised as it is, to be traced


def _start_oddkit(*args, env=None):
    """``python -m oddkit ARGS`` started in a process of its own, where Spark's JVM starts afresh (as for a user),
    with no log4j2 configuration of the environment's."""
    import subprocess
    import sys

    clean = {name: value for name, value in os.environ.items()
             if name not in ("LOG4J_CONFIGURATION_FILE", "SPARK_CONF_DIR", "PYSPARK_SUBMIT_ARGS", "PYTHONWARNINGS")}
    return subprocess.Popen([sys.executable, "-m", "oddkit", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**clean, **(env or {})})


@pytest.fixture(scope="module")
def spark_command_lines(scoring_models, tmp_path_factory):
    """The command lines the tests below check, each in its own process with its own JVM, all started at once:
    one takes about 20 s on two cores, not all of it busy, so side by side the four took 52 s where one after
    another they took 68 s. {name: (exit code, stdout, stderr, folder)}, each awaited on first use."""
    root = tmp_path_factory.mktemp("spark-command-lines")
    _, folder, columns = scoring_models["autoencoder"]
    scoring_frame(columns).to_parquet(root / "rows.parquet")
    # an unseen category under --strict-categories: a job that fails on the executors
    scoring_frame(columns, unseen_every=10).to_parquet(root / "odd.parquet")
    _, gaussian, gaussian_columns = scoring_models["gaussian"]
    scoring_frame(gaussian_columns).to_parquet(root / "gaussian-rows.parquet")
    # -Dlog4j2.configurationFile in the user's spark-defaults.conf (spark.driver.extraJavaOptions)
    (root / "mine.properties").write_text(
        "rootLogger.level = warn\nrootLogger.appenderRef.stderr.ref = console\nappender.console.type = Console\n"
        "appender.console.name = console\nappender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\nappender.console.layout.pattern = MINE %p %c{1}: %m%n\n")
    (root / "conf").mkdir()
    (root / "conf" / "spark-defaults.conf").write_text(
        f"spark.driver.extraJavaOptions -Dlog4j2.configurationFile={root / 'mine.properties'}\n")
    started = {
        "scores": _start_oddkit("score", folder, root / "rows.parquet", "--id-col", "id", "--engine", "spark",
                                "--spark-master", "local[2]", "--out", root / "scores"),
        "fails": _start_oddkit("score", folder, root / "odd.parquet", "--id-col", "id", "--engine", "spark",
                               "--spark-master", "local[2]", "--out", root / "odd-scores", "--strict-categories"),
        "no JVM": _start_oddkit("score", folder, root / "rows.parquet", "--id-col", "id", "--engine", "spark",
                                "--spark-master", "nowhere://x", "--out", root / "none"),
        "user's log4j2": _start_oddkit("score", gaussian, root / "gaussian-rows.parquet", "--id-col", "id",
                                       "--engine", "spark", "--spark-master", "local[1]", "--out",
                                       root / "gaussian-scores", env={"SPARK_CONF_DIR": str(root / "conf")}),
    }
    finished = {}

    def result(name):
        if name not in finished:
            stdout, stderr = started[name].communicate(timeout=300)
            finished[name] = (started[name].returncode, stdout, stderr, root)
        return finished[name]

    yield result
    for process in started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_cli_engine_spark_prints_only_oddkit_messages(spark_command_lines, scoring_models):
    """A successful 'oddkit score --engine spark' leaves stderr empty: no Spark log line (WARN NativeCodeLoader,
    WARN Utils), no start-up notice (default log4j profile, 'Setting default log level', the JVM's incubator
    modules), no pyspark FutureWarning about pandas. A failing job, and a JVM that cannot start, are one line."""
    _, _, columns = scoring_models["autoencoder"]
    code, stdout, stderr, root = spark_command_lines("scores")
    assert code == 0, stderr
    assert "rows on Spark" in stdout
    assert "WARN" not in stderr and "FutureWarning" not in stderr and "log4j" not in stderr, stderr
    assert stderr == "", stderr
    assert len(pd.read_parquet(root / "scores")) == len(scoring_frame(columns))

    # a real error still shows, as oddkit's one line: here an unseen category under --strict-categories
    code, _, stderr, _ = spark_command_lines("fails")
    assert code == 2 and stderr.startswith("error: ") and "never seen in training" in stderr, stderr
    assert stderr.count("\n") == 1 and "WARN" not in stderr and "Traceback" not in stderr, stderr

    # a JVM that exits before the session starts: the cause it printed, in one line
    code, _, stderr, _ = spark_command_lines("no JVM")
    assert code == 2, stderr
    assert stderr == ("error: Spark could not start: Master must either be yarn or start with spark, k8s, or local "
                      "(oddkit --debug shows the full traceback)\n")


def test_a_log4j2_configuration_of_the_users_wins(spark_command_lines):
    """-Dlog4j2.configurationFile in the user's spark-defaults.conf (spark.driver.extraJavaOptions) is read
    before oddkit's quiet configuration: the user's appender prints."""
    code, _, stderr, _ = spark_command_lines("user's log4j2")
    assert code == 0, stderr
    assert "MINE WARN" in stderr, stderr


def test_log4j_configured_finds_the_users_configuration(tmp_path, monkeypatch):
    from oddkit.spark import QUIET_LOG4J, _log4j_configured

    for name in ("LOG4J_CONFIGURATION_FILE", "PYSPARK_SUBMIT_ARGS", "SPARK_CONF_DIR", "SPARK_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert not _log4j_configured()
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    (tmp_path / "log4j2.properties.template").write_text("rootLogger.level = info\n")  # as Spark ships it
    assert not _log4j_configured()
    (tmp_path / "log4j2.properties").write_text("rootLogger.level = info\n")
    assert _log4j_configured()
    monkeypatch.delenv("SPARK_CONF_DIR")
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--driver-java-options -Dlog4j2.configurationFile=x pyspark-shell")
    assert _log4j_configured()
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS")
    monkeypatch.setenv("LOG4J_CONFIGURATION_FILE", "x.properties")
    assert _log4j_configured()
    # the quiet configuration ships with the package (pyproject's package-data names it)
    assert "rootLogger.level = error" in QUIET_LOG4J.read_text()
    from pathlib import Path

    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert QUIET_LOG4J.name in pyproject["tool"]["setuptools"]["package-data"]["oddkit"]


def test_a_running_session_keeps_its_log_level(spark, scoring_models, tmp_path):
    """From Python, with the user's own session: local_session (quiet or not) and score_files leave its log
    level as it was."""
    from oddkit.spark import _log_level, local_session, score_files

    _, folder, columns = scoring_models["gaussian"]
    scoring_frame(columns).to_parquet(tmp_path / "rows.parquet")
    context = spark.sparkContext
    context.setLogLevel("WARN")
    try:
        assert local_session("local[2]", quiet=True).sparkContext is context
        assert _log_level(context) == "WARN"
        score_files(folder, tmp_path / "rows.parquet", tmp_path / "scores", master="local[2]", id_cols=("id",),
                    quiet=True)
        assert _log_level(context) == "WARN"
    finally:
        context.setLogLevel("ERROR")


def test_failure_cause_of_a_jvm_that_did_not_start():
    from oddkit.spark import _failure_cause

    text = ('Exception in thread "main" org.apache.spark.SparkException: Master must either be yarn or start with '
            "spark, k8s, or local\n\tat org.apache.spark.deploy.SparkSubmit.error(SparkSubmit.scala:1068)\n")
    assert _failure_cause(text) == "Master must either be yarn or start with spark, k8s, or local"


def test_a_text_model_scores_its_column_of_texts(spark, scoring_text_model, tmp_path):
    """A model trained on texts scores one column of strings (the column it learned from by default, or the
    one ``features`` names), equal to the library on the same texts to float32 precision (the network pads
    each batch to its longest text, so the last float32 bits depend on the batch); the other columns are
    carried. A model trained on images or recordings is refused on the driver."""
    from oddkit import GradientKNNDetector
    from oddkit.spark import score

    detector, folder, texts = scoring_text_model
    frame = pd.DataFrame({"id": np.arange(len(texts)), "message": texts, "y": [0] * (len(texts) - 2) + [1, 1]})
    got = score(spark.createDataFrame(frame).repartition(3), folder).toPandas().sort_values("id")
    expected = detector.decision_function(texts)
    np.testing.assert_allclose(got["score"].to_numpy(), expected, rtol=1e-6, atol=0)
    assert got["label"].tolist() == (expected >= detector.threshold_).astype(int).tolist()
    assert got["y"].tolist() == frame["y"].tolist() and not got["unseen_category"].any()
    # Another column of texts, named.
    renamed = spark.createDataFrame(frame.rename(columns={"message": "sms"}))
    np.testing.assert_allclose(score(renamed, folder, features=["sms"]).toPandas().sort_values("id")["score"],
                               expected, rtol=1e-6, atol=0)
    with pytest.raises(ColumnMismatchError, match="column of texts 'message'"):
        score(renamed, folder)
    with pytest.raises(ColumnMismatchError, match="one column of texts"):
        score(renamed, folder, features=["sms", "id"])
    images = np.random.default_rng(0).random((10, 1, 8, 8)).astype(np.float32)
    GradientKNNDetector().fit(images).save(tmp_path / "images")
    with pytest.raises(DataError, match="trained on images; oddkit.spark scores tables and texts"):
        score(spark.createDataFrame(frame), tmp_path / "images")


def test_cli_engine_spark_scores_a_parquet_file_of_texts(spark, scoring_text_model, tmp_path, monkeypatch, capsys):
    detector, folder, texts = scoring_text_model
    pd.DataFrame({"id": np.arange(len(texts)), "message": texts}).to_parquet(tmp_path / "texts.parquet")
    code, out, err = run_cli(monkeypatch, capsys, "score", folder, tmp_path / "texts.parquet", "--id-col", "id",
                             "--engine", "spark", "--spark-master", "local[2]", "--out", tmp_path / "scores.parquet")
    assert code == 0, err
    got = pd.read_parquet(tmp_path / "scores.parquet").sort_values("id")
    np.testing.assert_allclose(got["score"].to_numpy(), detector.decision_function(texts), rtol=1e-6, atol=0)
    assert f"scored {len(texts):,} rows on Spark" in " ".join(out.split())
