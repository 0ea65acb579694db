"""Scoring a Spark DataFrame with a saved oddkit model (``pip install oddkit[spark]``, Java 17+).

:func:`score` adds a ``score`` (double), a ``label`` (int, 1 = anomaly) and an ``unseen_category``
(boolean) column to a Spark DataFrame through ``DataFrame.mapInPandas``: each Python worker on each
executor loads the model folder once, verifying its checksums (and its signature, with a key) there,
keeps it for every later partition of the job, and scores Arrow batches of rows with
:func:`oddkit.scoring.score_rows`. The scores are the single-process scores of the same rows, bit for
bit. A row holding a category never seen in training is scored as an anomaly and flagged in
``unseen_category``, as ``oddkit score`` does; ``strict_categories=True`` fails the job on it instead.

Where the model folder must be
------------------------------
The driver loads the folder first (so a bad folder, a wrong key or a missing column fails before
any job starts); then every executor loads it again itself. Two ways to give it to them:

``ship="path"`` (default)
    Executors read the folder at the same path as the driver: a local path in ``local[*]`` mode,
    or a path on storage every node mounts (NFS, a shared volume, a Databricks ``/dbfs/...`` path).
``ship="addFile"``
    The driver sends the folder with ``SparkContext.addFile(folder, recursive=True)`` and each
    executor reads its own copy (``SparkFiles.get``): nothing shared needed, but the folder must be on
    the driver's local disk.

Either way the executor checks the folder's integrity before scoring: a folder edited in transit
or on the shared disk is refused there, not scored.

Signed models
-------------
With ``key=`` (or ``ODDKIT_MODEL_KEY`` set on the driver) the folder must carry a valid signature,
on the driver and on every executor. The key travels to the executors inside the task closure, so on
a real cluster turn on Spark's RPC authentication and encryption (``spark.authenticate``,
``spark.network.crypto.enabled``), as for any secret a job carries.

On a cluster
------------
Install oddkit (with its dependencies; pyspark comes with the cluster) in the Python environment of
the executors, then, for example::

    export ODDKIT_MODEL_KEY=...   # only for signed models: the driver reads it
    spark-submit --master yarn --deploy-mode client \\
        --conf spark.executorEnv.OMP_NUM_THREADS=1 \\
        score_job.py

with ``score_job.py``::

    from pyspark.sql import SparkSession
    import oddkit.spark

    spark = SparkSession.builder.getOrCreate()
    rows = spark.read.parquet("s3a://bucket/transactions/2026-12-04/")
    scored = oddkit.spark.score(rows, "/home/me/models/fraud", ship="addFile")
    scored.write.parquet("s3a://bucket/scores/2026-12-04/")

``ship="addFile"`` needs the folder on the driver's local disk (it is copied from there); with
``ship="path"`` it must be at that path on every node (in ``--deploy-mode cluster`` the driver runs on
a cluster node too, so use shared storage there). ``oddkit score MODEL DATA --engine spark
--spark-master URL --out OUT`` runs the same call from the command line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from oddkit.exceptions import ColumnMismatchError, DataError, MissingDependencyError, OddkitError

SHIP_MODES = ("path", "addFile")
OUTPUT_COLUMNS = ("score", "label", "unseen_category")
STRICT_HINT = ("leave out strict_categories=True to score such rows as anomalies (flagged in 'unseen_category'), "
               "or retrain with data that has them (unknown_categories='ignore')")

_DETECTORS: dict[tuple, Any] = {}
"""This Python worker's loaded models: (folder, key digest, integrity.json digest) -> detector.

Spark reuses its Python workers across tasks (``spark.python.worker.reuse``, on by default), so a
model is loaded and verified once per worker, not once per partition. The key includes the digest
of ``integrity.json``: a folder re-saved at the same path is loaded (and verified) again."""
_MAX_CACHED = 4


def _require_pyspark():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise MissingDependencyError("scoring on Spark needs pyspark; install it with: "
                                     "pip install 'oddkit[spark]'") from None


def _load_verified(folder: str, key: bytes | None):
    """The detector saved in ``folder``, loaded (checksums and signature verified) at most once per
    Python worker."""
    from oddkit.persist import INTEGRITY_FILE, load

    try:
        integrity = Path(folder, INTEGRITY_FILE).read_bytes()
    except OSError:
        integrity = b""  # load() says what is missing
    token = (os.path.realpath(folder), hashlib.sha256(key).hexdigest() if key else None,
             hashlib.sha256(integrity).hexdigest())
    detector = _DETECTORS.get(token)
    if detector is None:
        detector = load(folder, key=key)
        if len(_DETECTORS) >= _MAX_CACHED:
            _DETECTORS.clear()
        _DETECTORS[token] = detector
    return detector


def score_frame(detector, frame, features: list[str], strict_categories: bool = False, counts=None):
    """One pandas batch with ``score``, ``label`` and ``unseen_category`` appended (what Spark's and Dask's
    partitions go through); ``counts``, a Spark accumulator or None, adds the batch's unseen rows."""
    import numpy as np

    from oddkit.scoring import add_counts, score_rows

    if len(frame) == 0:
        return frame.assign(score=np.empty(0, np.float64), label=np.empty(0, np.int32),
                            unseen_category=np.empty(0, bool))
    from oddkit.model_input import text_column

    # A model trained on texts takes the texts themselves (whatever the column is called here).
    rows = frame[features[0]].tolist() if text_column(detector) is not None else frame[features]
    scores, unseen, columns = score_rows(detector, rows, strict_categories=strict_categories, hint=STRICT_HINT)
    if counts is not None and unseen.any():
        counts.add(add_counts({}, unseen, columns))
    return frame.assign(score=scores, label=(scores >= detector.threshold_).astype(np.int32), unseen_category=unseen)


def check_scorable(detector, folder: Path, engine: str) -> None:
    """Refuse, on the driver, a model :func:`score` (or :func:`oddkit.dask.score`) cannot score: one trained
    on images or on recordings, which a DataFrame does not hold. Tables and texts (a column of strings) are
    scored."""
    from oddkit.model_input import input_kind

    kind = input_kind(detector)
    if kind in ("images", "recordings"):
        raise DataError(f"{folder} is a model trained on {kind}; {engine} scores tables and texts (a column of "
                        "strings); score it with 'oddkit score MODEL DATA'")


def _feature_columns(detector, columns: list[str], features: Sequence[str] | None) -> list[str]:
    """The columns :func:`score` (and :func:`oddkit.dask.score`) scores, checked on the driver: ``features``,
    else the model's ``feature_names_in_``, else every column (a model fitted without names, which must
    then have been fitted on as many columns). A model trained on texts scores one column: ``features``'
    only name, else the model's text column."""
    from oddkit.model_input import text_column

    column = text_column(detector)
    if column is not None:
        chosen = [str(c) for c in features] if features is not None else [column]
        if len(chosen) != 1:
            raise ColumnMismatchError(f"a model trained on texts scores one column of texts, not {chosen}; name that "
                                      f"one column with the features argument (the model learned from the column "
                                      f"{column!r})")
        if chosen[0] not in columns:
            raise ColumnMismatchError(f"the DataFrame lacks the column of texts {chosen[0]!r}; it has {columns}; name "
                                      "the column holding the texts with the features argument")
        return chosen
    names = getattr(detector, "feature_names_in_", None)
    if features is None and names is None:
        width = getattr(detector, "n_features_in_", None)
        if width is not None and len(columns) != width:
            raise ColumnMismatchError(
                f"the model was fitted without column names, on {width} columns, and the DataFrame has "
                f"{len(columns)}: {columns}; name the {width} columns it scores, in training order, with the "
                "features argument (the others are carried through)")
    features = [str(c) for c in (features if features is not None else names if names is not None else columns)]
    missing = [c for c in features if c not in columns]
    if missing:
        raise ColumnMismatchError(f"the DataFrame lacks the model's feature columns {missing}; it has {columns}")
    return features


def _score_batches(batches, *, location: str, shipped: bool, key: bytes | None, features: list[str],
                   strict_categories: bool = False, counts=None):
    """mapInPandas body: every pandas batch of a partition with its score, label and unseen_category."""
    if shipped:
        from pyspark import SparkFiles

        location = SparkFiles.get(location)
    detector = _load_verified(location, key)
    for frame in batches:
        yield score_frame(detector, frame, features, strict_categories, counts)


def _key(key) -> bytes | None:
    from oddkit.persist import _key_bytes, key_from_environment

    return key_from_environment() if key is None else _key_bytes(key)


def score(df, model_folder, *, key: bytes | str | None = None, ship: str = "path",
          features: Sequence[str] | None = None, strict_categories: bool = False, counts=None):
    """Score a Spark DataFrame with a saved model: the DataFrame with ``score``, ``label`` and
    ``unseen_category`` added.

    Lazy like any Spark transformation: the rows are scored when the result is written, collected or
    counted. Each Python worker loads (and verifies) the folder once and keeps it for the job.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Rows to score. It must hold the model's feature columns (by name; order does not matter).
        Every other column (ids, labels, timestamps) is not scored but carried through to the result
        unchanged, beside the scores: a transformation of the DataFrame, where
        ``detector.decision_function`` refuses columns it was not fitted on. (``oddkit score --engine
        spark``, which writes only the ``--id-col`` columns, refuses any other column, as the local
        engine does: :func:`score_files`.)
    model_folder : str or Path
        A model folder written by ``detector.save`` or ``oddkit fit``. It is loaded on the driver
        first, so a damaged folder, a wrong key or a missing column fails here, before any job.
    key : bytes or str, optional
        The signing key: the folder is refused, on the driver and on every executor, unless it is
        signed with it. Default: ``ODDKIT_MODEL_KEY`` from the driver's environment, when set.
    ship : {"path", "addFile"}, default="path"
        How executors reach the folder: ``"path"`` reads it at the same path (local mode, or
        storage every node mounts); ``"addFile"`` sends it with ``SparkContext.addFile`` so each
        executor reads its own copy.
    features : sequence of str, optional
        The feature columns, in the order the model expects; only for a model fitted without column
        names (on a NumPy array). Default: the model's ``feature_names_in_``, or else every column.
        For a model trained on texts, the one column holding them (default: the column the model
        learned from, ``"text"`` when it learned from a list); its values are scored as the texts.
    strict_categories : bool, default=False
        Fail the job (:class:`UnseenCategoryError`, on the executor) on a category never seen in
        training, instead of scoring its row as an anomaly and flagging it.
    counts : pyspark.Accumulator, optional
        An accumulator made with :class:`UnseenCounts` (``spark.sparkContext.accumulator({},
        UnseenCounts())``): once the result is computed its ``value`` is ``{"rows": n, "columns":
        {column: values}}``, the rows with unseen categories, as ``oddkit score`` reports them.

    Returns
    -------
    pyspark.sql.DataFrame
        The input columns, then ``score`` (double, higher = more anomalous, equal to
        ``detector.decision_function`` on the same rows), ``label`` (int, 1 where the score is at
        or above the model's threshold) and ``unseen_category`` (boolean, True where the row holds a
        category never seen in training; its score is then at least ``detector.out_of_range_score()``,
        as :func:`oddkit.scoring.score_rows` gives it).

    Raises
    ------
    MissingDependencyError
        When pyspark is not installed.
    ModelFileError
        When the folder fails its integrity check or signature (on the driver; on an executor the
        same error ends the job).
    ColumnMismatchError
        When ``df`` lacks one of the model's feature columns, or (a model fitted without column names,
        ``features`` not given) has another number of columns than the model was fitted on.
    DataError
        When ``df`` already has a ``score``, ``label`` or ``unseen_category`` column, or the model was
        trained on images or recordings.
    """
    _require_pyspark()
    from pyspark.sql.types import BooleanType, DoubleType, IntegerType, StructField, StructType

    from oddkit.persist import load

    if ship not in SHIP_MODES:
        raise OddkitError(f"ship must be one of {', '.join(SHIP_MODES)}, got {ship!r}")
    folder = Path(model_folder).expanduser().resolve()
    key = _key(key)
    detector = load(folder, key=key)  # fail early, on the driver, before any executor starts
    check_scorable(detector, folder, "oddkit.spark")
    clash = [c for c in OUTPUT_COLUMNS if c in df.columns]
    if clash:
        raise DataError(f"the DataFrame already has a column named {clash[0]!r}; rename or drop it before scoring")
    features = _feature_columns(detector, list(df.columns), features)
    if ship == "addFile":
        df.sparkSession.sparkContext.addFile(str(folder), recursive=True)
        location, shipped = folder.name, True
    else:
        location, shipped = str(folder), False
    schema = StructType(list(df.schema.fields) + [StructField("score", DoubleType(), False),
                                                  StructField("label", IntegerType(), False),
                                                  StructField("unseen_category", BooleanType(), False)])
    strict = bool(strict_categories)

    def score_partition(batches):
        return _score_batches(batches, location=location, shipped=shipped, key=key, features=features,
                              strict_categories=strict, counts=counts)

    return df.mapInPandas(score_partition, schema)


QUIET_LOG4J = Path(__file__).with_name("spark_log4j2.properties")
"""The log4j2 configuration of :func:`local_session`'s ``quiet`` sessions: Spark's log at ERROR from the JVM's
first line, without the start-up notices (``Using Spark's default log4j profile``, ``Setting default log
level``) or start-up warnings (``WARN NativeCodeLoader``, ``WARN Utils``)."""

_JVM_NOTICES = (b"WARNING: Using incubator modules: ",)
"""Lines the JVM itself prints on stderr at start-up, which no log configuration turns off (Spark's launcher
adds ``--add-modules=jdk.incubator.vector``): a ``quiet`` session leaves them out, and only them."""

_PANDAS_WARNING = r"PySpark does not yet fully support pandas"
"""The start of pyspark's FutureWarning about the installed pandas release, which ``score_files(quiet=True)``
hides during the call (nothing for the user to fix: the tests check Spark's scores against the single-process
scores on that release); any other warning shows."""


def _log4j_configured() -> bool:
    """Whether the user configures Spark's log4j2 already: ``LOG4J_CONFIGURATION_FILE`` (or
    ``log4j2.configurationFile`` in ``PYSPARK_SUBMIT_ARGS``) set, or a log4j2 file in Spark's configuration
    folder (``SPARK_CONF_DIR``, else ``SPARK_HOME/conf``), which the user's Spark would read."""
    if os.environ.get("LOG4J_CONFIGURATION_FILE") or "log4j2.configurationFile" in os.environ.get(
            "PYSPARK_SUBMIT_ARGS", ""):
        return True
    conf_dir = os.environ.get("SPARK_CONF_DIR") or (os.environ.get("SPARK_HOME") and
                                                   os.path.join(os.environ["SPARK_HOME"], "conf"))
    suffixes = (".properties", ".xml", ".json", ".jsn", ".yaml", ".yml")  # not Spark's log4j2.properties.template
    return bool(conf_dir) and any(path.suffix in suffixes for path in Path(conf_dir).glob("log4j2*"))


def _write_stderr(line: bytes) -> None:
    """``line`` on this process's stderr (file descriptor 2, wherever it points now)."""
    view = memoryview(line)
    try:
        while view:
            view = view[os.write(2, view):]
    except OSError:  # stderr closed: the line is lost, the pipe still drained, so that the JVM never blocks
        pass


class _StderrRelay:
    """The JVM's stderr, read from a pipe by a daemon thread until the JVM (and its Python workers) close it:
    :data:`_JVM_NOTICES` left out, the other lines held until :meth:`release` (so that a JVM that fails to
    start can be told in one line, :meth:`text`), then copied to this process's stderr as they come."""

    def __init__(self, read_fd: int):
        import threading

        self._lock = threading.Lock()
        self._held: list[bytes] | None = []
        self._thread = threading.Thread(target=self._run, args=(os.fdopen(read_fd, "rb"),),
                                        name="oddkit-spark-stderr", daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        with stream:
            for line in iter(stream.readline, b""):
                if line.startswith(_JVM_NOTICES):
                    continue
                with self._lock:
                    if self._held is not None:
                        self._held.append(line)
                    else:
                        _write_stderr(line)

    def release(self) -> None:
        """Write the lines held so far, and every later line as it comes."""
        with self._lock:
            for line in self._held or ():
                _write_stderr(line)
            self._held = None

    def text(self, timeout: float = 5.0) -> str:
        """The lines held, once the JVM has closed the pipe (or ``timeout`` seconds have passed)."""
        self._thread.join(timeout)
        with self._lock:
            return b"".join(self._held or ()).decode(errors="replace")


def _quiet_context(settings: dict):
    """A SparkContext whose JVM starts with :data:`QUIET_LOG4J` (unless :func:`_log4j_configured`) and
    whose stderr passes through a :class:`_StderrRelay`; ``settings`` as the builder would pass them.

    Raises
    ------
    SparkJobError
        When the JVM exits before the session starts (a wrong master URL, a broken Java): one line naming
        the cause the JVM printed; the whole of what it printed is a note on the error's ``__cause__``.
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    conf = SparkConf(loadDefaults=False).setAll(list(settings.items()))
    added = not _log4j_configured()
    if added:  # read by log4j after a -Dlog4j2.configurationFile the user gives the driver's JVM
        os.environ["LOG4J_CONFIGURATION_FILE"] = str(QUIET_LOG4J)
    read, write = os.pipe()
    relay = _StderrRelay(read)  # reading before the JVM starts: it never blocks on a full pipe
    try:
        gateway = launch_gateway(conf, popen_kwargs={"stderr": write})
    except Exception as error:
        os.close(write)
        text = relay.text()
        if not text.strip():
            raise
        if hasattr(error, "add_note"):  # Python 3.11+
            error.add_note(f"The JVM printed:\n{text.rstrip()}")
        raise SparkJobError(f"Spark could not start: {_failure_cause(text)} "
                            "(oddkit --debug shows the full traceback)") from error
    finally:
        if added:
            del os.environ["LOG4J_CONFIGURATION_FILE"]
    os.close(write)  # the JVM holds its own copy
    relay.release()
    return SparkContext(conf=conf, gateway=gateway)


def local_session(master: str = "local[*]", app_name: str = "oddkit", conf: dict | None = None, *,
                  quiet: bool = False):
    """A SparkSession for scoring on this machine (or on ``master``), set up for oddkit.

    With a ``local`` master the Python workers run this interpreter (``sys.executable``, where oddkit
    is installed); the web UI is off and Arrow batches carry the rows to pandas; ``conf`` adds or
    overrides Spark settings. A new session logs errors only (``setLogLevel("ERROR")``). An existing
    session is reused, its settings and its log level unchanged.

    Parameters
    ----------
    master : str, default="local[*]"
        The Spark master URL.
    app_name : str, default="oddkit"
        The application's name.
    conf : dict, optional
        Spark settings, added to (or overriding) oddkit's.
    quiet : bool, default=False
        Start the JVM with :data:`QUIET_LOG4J` as its log configuration (errors only, from its first
        line; unless the user has a log4j2 configuration of their own: :func:`_log4j_configured`) and
        leave out the notice the JVM prints about incubator modules: what ``oddkit score --engine spark``
        uses, so that only oddkit's messages and real errors reach stderr. No effect on a session already
        running.

    Returns
    -------
    pyspark.sql.SparkSession

    Raises
    ------
    MissingDependencyError
        When pyspark is not installed.
    OddkitError
        When no Java runtime is found (Spark needs Java 17 or later).
    SparkJobError
        With ``quiet``, when the JVM exits before the session starts: one line naming the cause it printed.
    """
    _require_pyspark()
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise OddkitError("Spark needs a Java runtime (17 or later): install one, or set JAVA_HOME")
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    settings = {"spark.ui.enabled": "false", "spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.sql.shuffle.partitions": "4"}
    if master.startswith("local"):  # a cluster's executors have their own Python, configured there
        # the workers' interpreter is read from the environment when the SparkContext starts
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        settings.update({"spark.pyspark.python": sys.executable, "spark.pyspark.driver.python": sys.executable})
    settings.update(conf or {})
    new = SparkContext._active_spark_context is None
    if new and quiet:
        _quiet_context({**settings, "spark.master": master, "spark.app.name": app_name})
    builder = SparkSession.builder.master(master).appName(app_name)
    for name, value in settings.items():
        builder = builder.config(name, value)
    session = builder.getOrCreate()
    if new:
        session.sparkContext.setLogLevel("ERROR")
    return session


def _log_level(context) -> str | None:
    """The root level of Spark's log (``"WARN"``, ...), for restoring it; None where it cannot be read."""
    try:
        return str(context._jvm.org.apache.logging.log4j.LogManager.getRootLogger().getLevel().toString())
    except Exception:  # noqa: BLE001 - not log4j2 (another binding), or not a classic SparkContext
        return None


def _check_spark_output(out: Path, force: bool) -> None:
    """Spark writes OUT as a folder of Parquet parts: refuse an existing OUT unless --force and it is
    a file or a folder Spark wrote (``_SUCCESS``) or an empty one; never delete anything else."""
    if not out.exists():
        return
    if not force:
        raise OddkitError(f"{out} already exists; pass --force to replace it, or choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / "_SUCCESS").exists():
        raise OddkitError(f"{out} is a folder Spark did not write; choose another --out")


def _executor_error(error: Exception) -> OddkitError | None:
    """The oddkit error an executor raised, out of the Spark exception (and Java stack) that carries it back
    to the driver, so the command line shows oddkit's message alone; None when it is not one of oddkit's."""
    import re

    from oddkit import exceptions

    found = re.findall(r"oddkit\.exceptions\.(\w+): ([^\n]+)", str(error))
    kind = getattr(exceptions, found[-1][0], None) if found else None
    if not (isinstance(kind, type) and issubclass(kind, OddkitError)):
        return None
    return kind(found[-1][1].strip())


class SparkJobError(OddkitError):
    """A Spark job failed for a reason of its own (an executor's error, a worker that crashed, a session
    that could not start), not for an oddkit error an executor raised (that one is raised as it is)."""


_MAX_CAUSE = 300
"""The most characters of a failure's cause :func:`_job_error` keeps (Spark's messages can run long)."""


def _failure_cause(text: str) -> str:
    """The one line that says why a Spark job failed, out of the text of the exception that carries the
    failure back to the driver (a Python worker's traceback, Java's stack trace, or both).

    Parameters
    ----------
    text : str
        ``str()`` of the exception: pyspark's ``PythonException``, py4j's ``Py4JJavaError`` (the Java
        exception and its stack) or another of pyspark's errors.

    Returns
    -------
    str
        The last Python exception's line (``ValueError: ...``) when the text holds a Python traceback;
        else the task failure Spark names (``most recent failure: Lost task ...: CAUSE``), else the first
        Java exception line, else the text's first line; Java class names without their package, a
        generic ``SparkException:`` left out, at most ``_MAX_CAUSE`` characters.
    """
    import re

    lines = text.splitlines()
    cause = None
    starts = [i for i, line in enumerate(lines) if line.strip().endswith("Traceback (most recent call last):")]
    if starts:  # a Python worker's error: the first unindented line after its last traceback's frames
        cause = next((line.strip() for line in lines[starts[-1] + 1:] if line.strip() and not line[0].isspace()),
                     None)
    if cause is None:
        lost = re.search(r"most recent failure: Lost task .*?\(TID \d+\)(?: \([^)]*\))?: (.+)", text)
        java = re.search(r"(?:^|: )((?:[\w$]+\.)*[\w$]*(?:Exception|Error): .+)", text, flags=re.MULTILINE)
        first = next((line.strip() for line in lines if line.strip()), "")
        cause = lost.group(1) if lost else java.group(1) if java else first
    cause = re.sub(r'^Exception in thread "[^"]*" ', "", cause.strip())  # a JVM that failed to start
    cause = re.sub(r"\s+SQLSTATE: \w+$", "", cause)
    cause = re.sub(r"^(?:org\.apache\.spark\.)?SparkException: ", "", cause)
    cause = re.sub(r"\b(?:[a-z_][\w$]*\.)+([A-Z][\w$]*(?:Exception|Error))\b", r"\1", cause)
    if len(cause) > _MAX_CAUSE:
        cause = cause[:_MAX_CAUSE - 3].rstrip() + "..."
    return cause or "no reason given"


def _is_spark_error(error: BaseException) -> bool:
    """Whether ``error`` is one of pyspark's or py4j's (a job, the JVM or the gateway failed)."""
    return any(kind.__module__.split(".")[0] in ("pyspark", "py4j") for kind in type(error).__mro__)


def _job_error(error: Exception) -> OddkitError | None:
    """One line for a failed Spark job: the oddkit error an executor raised (:func:`_executor_error`), or a
    :class:`SparkJobError` naming the cause (:func:`_failure_cause`); None for an error that is not Spark's
    (a bug to trace, raised as it is)."""
    if isinstance(error, OddkitError):
        return error
    if not _is_spark_error(error):
        return None
    found = _executor_error(error)
    if found is not None:
        return found
    return SparkJobError(f"the Spark job failed: {_failure_cause(str(error))} "
                         "(oddkit --debug shows the full traceback)")


def _parquet_columns(data: Path) -> tuple[list[str], list[str]]:
    """DATA's columns, from the Parquet footers, and its partition columns (``key=value`` folder names,
    which Spark reads as columns too), refusing before Spark starts what Spark would refuse with a Java
    stack trace, with the local engine's errors: a folder holding no Parquet file (:class:`EmptyDataError`),
    a file that is not Parquet (:class:`DataError`), files whose columns differ (:class:`ColumnMismatchError`)."""
    from oddkit.data.stream import TableSource

    source = TableSource(data, label_col=None)  # the local engine's checks of files and schemas
    if source.format != "parquet":
        raise DataError(f"--engine spark reads Parquet files and {data} holds CSV; convert it to Parquet, "
                        "or score it with --engine local")
    partitions = [part.split("=", 1)[0] for path in source.files if path != data
                  for part in path.relative_to(data).parts[:-1] if "=" in part]
    partitions = [name for name in dict.fromkeys(partitions) if name not in source.columns]
    return list(source.columns), partitions


def _column(name: str):
    """Spark's column NAME, quoted: a name holding a dot or a backtick is a column, not a field path."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _read_parquet(spark, data: Path, columns: list[str]):
    """``spark.read.parquet(data).select(*columns)``, an error of Spark's analysis (a file it cannot
    read, a column name it cannot resolve) made a one-line :class:`DataError`."""
    from pyspark.errors import AnalysisException

    try:
        return spark.read.parquet(str(data.resolve())).select(*map(_column, columns))
    except AnalysisException as error:
        reason = str(error.getMessage() if hasattr(error, "getMessage") else error).strip().splitlines()
        raise DataError(f"Spark cannot read {data}: {reason[0] if reason else type(error).__name__}") from None


class UnseenCounts:
    """A Spark ``AccumulatorParam`` summing ``{"rows": n, "columns": {column: values}}`` reports of rows with
    unseen categories (see :func:`score`'s ``counts``)."""

    def zero(self, value):
        return {}

    def addInPlace(self, total, more):
        from oddkit.scoring import merge_counts

        return merge_counts(total, more)


def score_files(model: Path, data: Path, out: Path, *, master: str = "local[*]", id_cols: Sequence[str] = (),
                label_col: str | None = "auto", force: bool = False, strict_categories: bool = False,
                quiet: bool = False) -> tuple[int, int, Any, dict]:
    """``oddkit score --engine spark``: score a Parquet file or folder, write OUT as a Parquet folder
    of the id columns, ``score`` and ``label`` (as ``oddkit score`` writes them).

    The session is :func:`local_session`'s: a running one is reused, and its log level is restored after the
    job (Spark's log is off while the job runs). ``quiet=True`` (the command line's setting, off under
    ``oddkit --debug``) starts a new session quiet (see :func:`local_session`) and hides pyspark's
    FutureWarning about the pandas release, during the call only; other warnings show as before.

    Returns
    -------
    (rows, flagged, detector, unseen)
        Rows scored, rows labelled anomalies, the driver's copy of the model (for its threshold), and
        ``{"rows": n, "columns": {column: values}}``: the rows that held a category never seen in
        training (scored as anomalies; with ``strict_categories`` the job fails on them instead).

    Raises
    ------
    EmptyDataError, ColumnMismatchError, DataError
        Before Spark starts, with the messages of ``oddkit score``'s local engine: DATA is a folder
        holding no Parquet file, is CSV, has files whose columns differ, lacks one of the model's
        columns or an ``id_cols`` column, or holds a column that is neither one of the model's, an
        ``id_cols`` column nor the label column (refused as the local engine refuses it, not left out
        of the output unseen; Spark's partition columns, ``key=value`` folder names, are not counted).
        Spark's own analysis errors become a one-line :class:`DataError`.
    OddkitError
        The oddkit error an executor raised (e.g. :class:`UnseenCategoryError` under
        ``strict_categories``, :class:`ModelFileError` for a folder damaged after the driver's check),
        with its own one-line message.
    SparkJobError
        The job failed for another reason (an exception inside the scoring function, a Python worker
        that crashed, an executor lost, the session that could not start): one line naming the cause
        (:func:`_failure_cause`), the Spark exception (with its stack traces) as its ``__cause__``.
        Spark's own log is silenced while the job runs, so that it does not print those stacks first.
    """
    from oddkit.persist import load

    out, data = Path(out), Path(data)
    if str(out) == "-" or out.suffix.lower() in (".csv", ".npy", ".tsv"):
        raise OddkitError("--engine spark writes a folder of Parquet files; give --out a folder name "
                          "such as scores.parquet")
    if not data.exists():
        raise OddkitError(f"{data} does not exist")
    _check_spark_output(out, force)
    detector = load(model, key=_key(None))
    columns, partitions = _parquet_columns(data)  # checked before Spark starts, as the local engine checks them
    label = "y" if label_col == "auto" and "y" in columns else (None if label_col == "auto" else label_col)
    names = getattr(detector, "feature_names_in_", None)
    if names is None:
        features = [c for c in columns if c not in set(id_cols) and c != label]
    else:
        features = [str(c) for c in names]
    missing = [c for c in id_cols if c not in [*columns, *partitions]]
    if missing:
        raise ColumnMismatchError(f"--id-col {missing[0]!r} is not a column of {data}")
    missing = [c for c in features if c not in [*columns, *partitions]]
    # As the local engine: a column neither a feature, an id nor the label is refused, not dropped unseen
    # (Spark's partition columns, which the local engine does not read, are not counted).
    extra = [c for c in columns if c not in {*features, *id_cols} and c != label]
    if missing or extra:
        raise ColumnMismatchError(f"the data's columns differ from training: missing {missing}, extra {extra}; "
                                  "pass extra columns as --id-col or --label-col, or remove them")
    try:
        # Spark's console progress bar ends without a newline, so the one-line summary or error would
        # start on its line; the command prints its own summary when the job is done.
        with warnings.catch_warnings():
            if quiet:
                warnings.filterwarnings("ignore", message=_PANDAS_WARNING, category=FutureWarning)
            spark = local_session(master, conf={"spark.ui.showConsoleProgress": "false"}, quiet=quiet)
            context = spark.sparkContext
            level = _log_level(context)
            # Spark's own log would print the failure's Python and Java stacks on stderr before the one-line
            # error; the error keeps them (its __cause__, shown by oddkit --debug).
            context.setLogLevel("OFF")
            try:
                rows = _read_parquet(spark, data, list(dict.fromkeys([*id_cols, *features])))
                unseen = context.accumulator({}, UnseenCounts())
                scored = score(rows, model, features=features, strict_categories=strict_categories, counts=unseen)
                scored.select(*map(_column, id_cols), "score", "label").write.mode("overwrite").parquet(
                    str(out.resolve()))
                from pyspark.sql import functions as F

                counts = spark.read.parquet(str(out.resolve())).agg(F.count("*").alias("n"),
                                                                    F.sum("label").alias("k")).first()
            finally:
                context.setLogLevel(level or "ERROR")  # as it was (local_session leaves a new one at ERROR)
    except Exception as error:  # noqa: BLE001 - a job's failure comes back wrapped in Spark's exceptions
        translated = _job_error(error)
        if translated is None or translated is error:
            raise
        raise translated from error
    return int(counts["n"]), int(counts["k"] or 0), detector, dict(unseen.value)
