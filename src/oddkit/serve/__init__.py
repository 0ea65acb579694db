"""The HTTP scoring service: a saved model behind FastAPI, run by uvicorn (``oddkit serve MODEL``).

Endpoints:

- ``POST /score``: rows as JSON — records ``{"rows": [{"col": value, ...}, ...]}`` (or a bare list of
  records), or columns ``{"columns": {"col": [values], ...}}`` — or a CSV / Parquet file, uploaded as
  multipart form field ``file`` or sent as the body with ``Content-Type: text/csv`` /
  ``application/vnd.apache.parquet``; a model trained on images takes a ``.npy`` array of images
  (``application/x-npy``); a model trained on texts takes ``{"texts": ["...", ...]}`` (or a bare list of
  strings) or a CSV / TSV / Parquet file of texts; a model trained on recordings takes a WAV or FLAC file
  (``audio/wav``, ``audio/flac``), several as multipart fields ``file``, or an ``.npz`` of recordings
  (``application/x-npz``). Answers ``{"rows": [{"score", "label", "probability"},
  ...], ...}`` in the order of the input; ``?explain=true`` adds each row's ``explanation`` (the share of the
  score each column carries, :func:`oddkit.scoring.explain_rows`; for an image, each pixel's share of its
  heat map (:func:`oddkit.image_explanations.explain_images`), H lists of W numbers, and a ``note`` where the
  map cannot show why it scored high; for a text, its tokens with their words, contributions and shares; for a recording, the shares
  of its mel bands or coefficients).
  A row holding a category never seen in training is scored as an anomaly, flagged
  (``"unseen_category": true``) and counted (``unseen_category_rows``, ``unseen_categories``), as
  ``oddkit score`` does; ``?strict_categories=true`` answers 422 instead.
- ``GET /health``: ``{"status": "ok", "detector", "threads"}`` (no API key needed, for load balancers);
  ``threads``: the most threads torch and BLAS use in a request (``oddkit serve --n-threads`` caps them).
- ``GET /model``: what ``oddkit info`` shows, as JSON (:func:`model_info`).
- ``GET /drift``: the last rows scored (``drift_window``, 10,000) compared with the model's drift reference,
  as :func:`oddkit.drift.check_drift` compares a batch (query parameters ``alpha``, ``min_psi``,
  ``min_alert_ratio``); 409 when the model holds no reference or no rows were scored yet. The workers of
  ``oddkit serve --workers N`` watch one window (``create_app``'s ``drift_file``).
- ``GET /openapi.json`` and ``GET /docs``: the schema, naming the model's columns, and its Swagger UI page
  (behind the API key when one is configured).

The model is loaded once, when the app is built, by :func:`oddkit.load` (checksums, and the signature
when a signing key is set: the service refuses to start on an unsigned folder then); a model the service
cannot score is refused there too (:func:`check_servable`). Scoring is
CPU-bound and runs in a worker thread, so the event loop keeps accepting requests. Every error oddkit
raises on purpose (bad JSON, a missing or extra column, text in a numeric column, NaN, an unseen
category under ``strict_categories``, an empty text, a damaged recording) is answered 4xx with oddkit's
message as ``{"detail": ...}``; a body over ``max_body_bytes`` gets 413 before it is read in full, one that
stops arriving for ``body_timeout`` seconds 408, and one holding more than ``max_rows`` rows (texts,
recordings) 413 (asking to split the batch), as does a text over ``max_text_chars`` characters, a recording
over ``max_recording_seconds`` or recordings over ``max_samples`` samples (checked from what the files
declare, before decoding); rows are scored and the answer written in chunks, so a request's memory beyond
its rows and its answer stays bounded; anything else that goes wrong, 500 with a one-line ``{"detail": ...}``.
"""


import asyncio
import hmac
import io
import json
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from oddkit.exceptions import ColumnMismatchError, DataError, EmptyDataError, OddkitError
from oddkit.model_input import fitted_members as _fitted_members
from oddkit.model_input import image_shape as _image_shape
from oddkit.model_input import input_kind as _input_kind
from oddkit.serve._media import (AUDIO_TYPES, DEFAULT_MAX_RECORDING_SECONDS, DEFAULT_MAX_SAMPLES,
                                DEFAULT_MAX_TEXT_CHARS, NPZ_TYPES, TEXT_FILE_TYPES, Limits, ServiceLimitError)

__all__ = ["API_KEY_ENVIRONMENT_VARIABLE", "API_KEY_HEADER", "DEFAULT_BODY_TIMEOUT", "DEFAULT_DRIFT_WINDOW",
           "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_RECORDING_SECONDS", "DEFAULT_MAX_ROWS", "DEFAULT_MAX_SAMPLES",
           "DEFAULT_MAX_TEXT_CHARS", "check_servable", "create_app", "limit_threads", "model_info", "score_payload"]

API_KEY_ENVIRONMENT_VARIABLE = "ODDKIT_API_KEY"
"""When set (non-empty), every request but ``GET /health`` must carry this value in :data:`API_KEY_HEADER`."""
API_KEY_HEADER = "X-API-Key"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
"""Largest request body accepted (64 MiB); a larger one is answered 413."""
DEFAULT_MAX_ROWS = 100_000
"""Most rows (or images) one request may hold; more are answered 413, asking for smaller batches. A
request's memory grows with its rows (0.2-0.4 KiB a row of a five-column table, explained or not, measured
in docs/guide/serving.md): this keeps one such request under about 70 MiB, where the 64 MiB body limit
alone would let a CSV body carry some 2.8 million rows."""
DEFAULT_BODY_TIMEOUT = 30.0
"""Longest wait, in seconds, for the next part of a request body that has not all arrived; then 408."""
DEFAULT_DRIFT_WINDOW = 10_000
"""Rows ``GET /drift`` compares with the model's drift reference: the last this many scored (a shift of half
a standard deviation in one column was found in every batch of 500 rows in benchmarks/DRIFT.md; 8 bytes a row
plus 2 a column)."""
_MODEL_ENVIRONMENT_VARIABLE = "ODDKIT_SERVE_MODEL"
_MAX_BODY_ENVIRONMENT_VARIABLE = "ODDKIT_SERVE_MAX_BODY_BYTES"
_MAX_ROWS_ENVIRONMENT_VARIABLE = "ODDKIT_SERVE_MAX_ROWS"
_DRIFT_WINDOW_ENVIRONMENT_VARIABLE = "ODDKIT_SERVE_DRIFT_WINDOW"
_DRIFT_FILE_ENVIRONMENT_VARIABLE = "ODDKIT_SERVE_DRIFT_FILE"
_MAX_TEXT_CHARS_ENVIRONMENT_VARIABLE = "ODDKIT_SERVE_MAX_TEXT_CHARS"
_MAX_RECORDING_SECONDS_ENVIRONMENT_VARIABLE = "ODDKIT_SERVE_MAX_RECORDING_SECONDS"
_MAX_SAMPLES_ENVIRONMENT_VARIABLE = "ODDKIT_SERVE_MAX_SAMPLES"
_THREADS_ENVIRONMENT_VARIABLE = "ODDKIT_SERVE_THREADS"
_PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet", "application/parquet",
                  "application/octet-stream")
_NPY_TYPES = ("application/x-npy", "application/npy")
_UPLOADS = {"table": "the CSV or Parquet file", "images": "the .npy array of images",
            "texts": "the CSV, TSV or Parquet file of texts", "recordings": "each WAV or FLAC recording (or .npz)"}
"""What a model takes as the multipart field 'file', by its input's kind."""


# -- what the model is ---------------------------------------------------------------------------------

def check_servable(detector) -> None:
    """Refuse a model the service cannot score. The service scores tables (JSON, CSV, Parquet), images
    (``.npy``), texts (JSON strings, CSV, TSV, Parquet) and recordings (WAV, FLAC, ``.npz``): every model
    ``oddkit score`` scores. It refuses a model trained on input that is none of these, one trained on frames
    of recordings (it scores frames, not recordings), and a model trained on recordings where soundfile or
    librosa is missing.

    Parameters
    ----------
    detector : BaseDetector
        A fitted (usually loaded) detector.

    Raises
    ------
    OddkitError
        Naming what the model was trained on and why it cannot be served (``MissingDependencyError`` with
        the ``pip install`` that adds a missing library).
    """
    from oddkit.serve._media import refuse_unservable_recordings

    kind = _input_kind(detector)
    if kind == "recordings":
        refuse_unservable_recordings(detector)
    elif kind is None:
        raise OddkitError(f"this {type(detector).__name__} model was trained on input that is neither a table, "
                          "images, texts nor recordings, which the scoring service does not take; score it in Python "
                          "(oddkit.load(MODEL).decision_function)")


def _columns(detector) -> list[dict[str, Any]] | None:
    """[{"name", "kind", ("categories")}] of a table model, in training order; None for images."""
    preprocessor = getattr(detector, "preprocessor_", None)
    if _image_shape(detector) is not None or preprocessor is None or not hasattr(preprocessor, "kinds_"):
        return None
    columns = []
    for name, kind in zip(preprocessor.feature_names_in_, preprocessor.kinds_):
        column: dict[str, Any] = {"name": str(name), "kind": kind}
        if kind == "categorical":
            column["categories"] = list(preprocessor.categories_[name])
        columns.append(column)
    return columns


def model_info(detector, folder: str | Path | None = None) -> dict[str, Any]:
    """What ``oddkit info`` shows about a loaded model, as a JSON-ready dict.

    Parameters
    ----------
    detector : BaseDetector
        A fitted (usually loaded) detector.
    folder : str or Path, optional
        Its model folder (kept for compatibility; the versions come from the loaded detector's
        ``saved_versions_``, as :func:`oddkit.load` checked them).

    Returns
    -------
    dict
        ``detector`` (class name), ``training_rows``, ``threshold``, ``threshold_goal``, ``input`` (``{"kind":
        "table", "columns": [{"name", "kind", "categories"}]}``, ``{"kind": "images", "shape": [C, H, W]}``,
        ``{"kind": "texts", "text_column", "tokenizer", "vocabulary_size"}`` or ``{"kind": "recordings",
        "sample_rate", "features", "n_features", "n_mels", "max_frequency", "explanation"}``: the rate
        recordings are resampled to, the features computed from them (``"mfcc"``, ``"stats"``, ``"patch"``, or
        ``"log-mel frames"`` for voice conversion), the highest frequency analysed, and how ``?explain=true``
        groups a score's shares), ``drift_reference`` (``{"rows", "data_name", "columns"}``, or None: what
        ``GET /drift`` compares with), ``parameters``, ``versions``, and for an ensemble ``members``: the detectors
        it fitted (:func:`oddkit.model_input.fitted_members`), which its ``members`` parameter may not name.
    """
    info: dict[str, Any] = {"detector": type(detector).__name__}
    training_scores = getattr(detector, "decision_scores_", None)
    info["training_rows"] = None if training_scores is None else int(len(training_scores))
    info["threshold"] = float(detector.threshold_)
    info["threshold_goal"] = getattr(detector, "threshold_goal_", None)
    from oddkit.serve._media import recordings_input, texts_input

    kind = _input_kind(detector)
    if kind == "recordings":
        info["input"] = recordings_input(detector)
    elif kind == "texts":
        info["input"] = texts_input(detector)
    elif kind == "images":
        info["input"] = {"kind": "images", "shape": list(_image_shape(detector))}
    else:
        info["input"] = {"kind": "table", "columns": _columns(detector) or []}
    reference = getattr(detector, "drift_reference_", None)
    info["drift_reference"] = None if reference is None else {
        "rows": reference.n_rows, "data_name": reference.data_name, "columns": len(reference.columns)}
    info["parameters"] = json.loads(json.dumps(detector.get_params(deep=False), default=str))
    members = _fitted_members(detector)
    if members is not None:  # an ensemble: what it fitted, which its members parameter may not say
        info["members"] = members
    saved = getattr(detector, "saved_versions_", None)  # set by oddkit.load, from the config it checked
    info["versions"] = {str(k): str(v) for k, v in sorted((saved or {}).items())}
    return info


# -- reading a request --------------------------------------------------------------------------------

def _refuse_constant(name: str):
    raise DataError(f"the JSON body holds {name}, which JSON does not allow; send null for a missing value")


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (json.loads would keep the last value silently)."""
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ColumnMismatchError(f"the JSON body gives the key {twice!r} twice in one object; send each column once "
                                  "per row")
    return record


_SERVICE_WORDING = [
    (re.compile(r"clean them or pass impute='median'"),
     "send numbers for them (null or NaN only to a model fitted with impute='median', which fills them)"),
    (re.compile(r"clean them \(e\.g\. strip units\), or retrain with .*? if the column is a category"),
     "send numbers in that column (strip units, for example)"),
]
"""The library's advice to a Python user -> what a client of the service can do instead (it cannot
refit the model it sends rows to)."""


def _service_wording(message: str) -> str:
    for pattern, replacement in _SERVICE_WORDING:
        message = pattern.sub(replacement, message)
    return message


_SEND_ROWS = "send {\"rows\": [{\"column\": value, ...}]} or {\"columns\": {\"column\": [values]}}"
_SEND_TEXTS = "send {\"texts\": [\"...\", ...]} or a JSON list of strings"


def _parse_json(body: bytes, texts: bool = False) -> Any:
    """The JSON body, parsed; ``texts``: the body of a model trained on texts (the messages say how to send
    texts rather than rows)."""
    send = _SEND_TEXTS if texts else _SEND_ROWS
    if not body.strip():
        raise EmptyDataError("the request body is empty; " + (send if texts else "send rows as JSON: "
                                                              "{\"rows\": [{\"column\": value, ...}]}"))
    try:
        text = body.decode("utf-8-sig")  # JSON between systems is UTF-8 (RFC 8259); json.loads would guess
    except UnicodeDecodeError as exc:
        raise DataError(f"the request body is not UTF-8 text (byte {exc.start}); send the JSON encoded as "
                        "UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_refuse_duplicate_keys)
    except OddkitError as exc:
        if not texts:
            raise
        # a key given twice, NaN or Infinity: the table's advice (columns, null for a missing value) does not fit
        raise DataError(f"{str(exc).split('; ')[0]}; {send}") from None
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        # ValueError: an integer of more than 4,300 digits, which Python refuses to convert
        raise DataError(f"the request body is not valid JSON ({exc}); {send}") from None


def _shown(names: list, limit: int = 20) -> str:
    """A list of names for a message: all of them up to ``limit``, else the first ``limit`` and how many more."""
    if len(names) <= limit:
        return str(list(names))
    return f"{list(names[:limit])} and {len(names) - limit:,} more"


def _check_names(names: list[str], present, where: str) -> None:
    present = list(present)
    expected, sent = set(names), set(present)
    missing = [n for n in names if n not in sent]
    extra = [c for c in present if c not in expected]
    if missing or extra:
        raise ColumnMismatchError(f"{where} differ from training: missing {_shown(missing)}, extra {_shown(extra)}; "
                                  f"send exactly the model's columns {_shown(names)}")


def _refuse_booleans(frame, detector) -> None:
    """Refuse true/false in a numeric column, naming the column and the first row holding one: a JSON boolean,
    a CSV column of true/false (which pandas reads as booleans) or a Parquet boolean column would otherwise
    be scored as 1.0 and 0.0, numbers the client never sent."""
    import numpy as np
    import pandas as pd

    for column in _columns(detector) or []:
        if column["kind"] != "numeric":
            continue
        name, values = column["name"], frame[column["name"]]
        if pd.api.types.is_bool_dtype(values.dtype):
            present = np.flatnonzero(values.notna().to_numpy())
            rows = present.tolist()
        elif values.dtype == object:
            rows = [i for i, v in enumerate(values) if isinstance(v, (bool, np.bool_))]
        else:
            continue
        if rows:
            raise DataError(f"column {name!r} must hold a number (or null), but row {rows[0]} holds "
                            f"{bool(values.iloc[rows[0]])!r}" + (f" ({len(rows):,} such rows)" if len(rows) > 1 else "")
                            + "; send 1 or 0 for true or false")


def _check_cell_types(frame, detector) -> None:
    """Refuse a JSON value of the wrong type (text, true/false, a list or an object in a numeric column;
    a list or an object in a categorical one), naming the column and row."""
    import numpy as np
    import pandas as pd

    _refuse_booleans(frame, detector)
    for column in _columns(detector) or []:
        name, values = column["name"], frame[column["name"]]
        if values.dtype != object and not pd.api.types.is_string_dtype(values.dtype):
            continue  # pandas 3 gives a column of strings only its own "str" dtype, not object
        if column["kind"] == "numeric":
            bad = [i for i, v in enumerate(values) if v is not None and (isinstance(v, bool) or not isinstance(
                v, (int, float)))]
            expected = "a number (or null)"
        else:
            bad = [i for i, v in enumerate(values) if isinstance(v, (list, dict))]
            expected = "a string, a number or null"
        if bad:
            raise DataError(f"column {name!r} must hold {expected}, but row {bad[0]} holds {values.iloc[bad[0]]!r}"
                            + (f" ({len(bad)} such rows)" if len(bad) > 1 else ""))
        if column["kind"] == "numeric":
            try:
                frame[name] = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
            except OverflowError:  # an integer beyond float64's range (JSON allows any number of digits)
                row = next(i for i, v in enumerate(values) if isinstance(v, int) and abs(v) > 1.7e308)
                raise DataError(f"column {name!r} holds a number too large for float64 at row {row} "
                                f"({str(values.iloc[row])[:20]}...); send values within +-1.7e308") from None


def _frame_from_json(payload: Any, detector):
    """JSON records or columns -> a DataFrame of the training columns, in training order."""
    import pandas as pd

    names = [c["name"] for c in (_columns(detector) or [])]
    if isinstance(payload, dict) and "rows" in payload and set(payload) <= {"rows"}:
        payload = payload["rows"]
    if isinstance(payload, list):
        if not payload:
            raise EmptyDataError("'rows' is empty; send at least one row")
        for i, record in enumerate(payload):
            if not isinstance(record, dict):
                raise DataError(f"row {i} is {type(record).__name__}, not an object; send each row as "
                                "{\"column\": value, ...}")
            if len(record) != len(names) or any(n not in record for n in names):
                _check_names(names, record, f"the columns of row {i}")
        frame = pd.DataFrame.from_records(payload, columns=names)
    elif isinstance(payload, dict) and "columns" in payload and set(payload) <= {"columns"}:
        columns = payload["columns"]
        if not isinstance(columns, dict):
            raise DataError("'columns' must be an object {\"column\": [values, ...]}")
        _check_names(names, columns, "the columns")
        lengths = {name: len(v) if isinstance(v, list) else None for name, v in columns.items()}
        if any(n is None for n in lengths.values()):
            bad = next(name for name, n in lengths.items() if n is None)
            raise DataError(f"column {bad!r} must be a list of values")
        if len(set(lengths.values())) > 1:
            raise DataError(f"the columns have different lengths {lengths}; send one value per row in every column")
        if not next(iter(lengths.values()), 0):
            raise EmptyDataError("the columns are empty; send at least one row")
        frame = pd.DataFrame({name: pd.Series(columns[name], dtype=object) for name in names})
        frame = frame.infer_objects()
    else:
        raise DataError("send rows as {\"rows\": [{\"column\": value, ...}, ...]} or columns as "
                        "{\"columns\": {\"column\": [values, ...]}}")
    _check_cell_types(frame, detector)
    return frame


def _frame_from_file(data: bytes, filename: str, detector, parquet: bool | None = None, max_rows: int | None = None):
    """An uploaded CSV or Parquet file, read as ``oddkit.data.read_table`` reads files. ``parquet``: the
    format, or None to tell it from the file's name and first bytes; a Parquet file declaring more than
    ``max_rows`` rows is refused before it is read. true/false in a numeric column is refused, as in JSON."""
    from oddkit.data import read_table

    if parquet is None:
        parquet = filename.lower().endswith((".parquet", ".pq")) or data[:4] == b"PAR1"
    if parquet and max_rows is not None:  # from its metadata, before it is read
        try:
            import pyarrow.parquet as pq

            declared = int(pq.ParquetFile(io.BytesIO(data)).metadata.num_rows)
        except Exception:  # noqa: BLE001 - not Parquet, or damaged: reading it says what is wrong
            declared = 0
        _check_rows(declared, max_rows)
    suffix = ".parquet" if parquet else ".csv"
    names = [c["name"] for c in (_columns(detector) or [])]
    if not parquet:  # its width and rows, before pandas builds every column of every row
        from oddkit.serve._media import MAX_FILE_COLUMNS, check_delimited

        check_delimited(data, ",", filename or "the uploaded csv file", max_rows, "rows",
                        max(MAX_FILE_COLUMNS, len(names)), f"send exactly the model's columns {_shown(names)}",
                        ColumnMismatchError)
    with tempfile.TemporaryDirectory(prefix="oddkit-serve-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            table = read_table(path, label_col=None)
        except OddkitError as exc:
            raise type(exc)(str(exc).replace(str(path), filename or f"the uploaded {suffix[1:]} file")) from None
    _check_names(names, table.X.columns, "the file's columns")
    frame = table.X[names]
    _refuse_booleans(frame, detector)
    return frame


def _images_from_npy(data: bytes):
    import numpy as np

    try:
        images = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"the body is not a .npy array of images ({exc}); send numpy.save's bytes") from None
    if not isinstance(images, np.ndarray) or images.ndim == 0:
        raise DataError("the .npy body holds a single value, not images; send an array of images (n, H, W) or "
                        "(n, C, H, W)")
    return images


# -- scoring ---------------------------------------------------------------------------------------------

_STRICT_HINT = ("leave out ?strict_categories=true to score such rows as anomalies, or retrain with data that has "
                "them (unknown_categories='ignore')")
_CHUNK_ROWS = 8192
"""Rows scored (and explained) at a time for a table: a multiple of the autoencoders' own scoring batch
(4,096 rows), so that every row meets exactly the computation it meets when all rows are scored at once."""
_SERIALISE_VALUES = 2 ** 16
"""About how many numbers of the answer are held as Python objects at a time while it is written."""


def _chunk_rows(detector, X) -> int:
    """How many rows to score at a time: :data:`_CHUNK_ROWS` for a table, an image model's own batch for images."""
    import numpy as np

    own = getattr(detector, "_chunk_rows", None)
    if _image_shape(detector) is None or own is None:
        return _CHUNK_ROWS
    return max(1, int(own(int(np.prod(X.shape[1:])))))


def _rows(X, start: int, stop: int):
    return X.iloc[start:stop] if hasattr(X, "iloc") else X[start:stop]


def score_payload(detector, X, explain: bool = False, strict_categories: bool = False, watch=None) -> bytes:
    """Score rows ``X`` (a DataFrame, an image array, a list of texts or recordings) and return the JSON answer
    of ``POST /score``.

    Texts (a list of str) and recordings (an :class:`~oddkit.data.audio.AudioData`) are scored all at once:
    their scores are ``detector.decision_function`` of all of them, bit for bit; their explanations are
    computed and the answer written in chunks (512 texts, 1,024 recordings).

    A row holding a category never seen in training is scored as an anomaly and flagged
    (``unseen_category``), and the answer counts such rows (``unseen_category_rows``, and per column the
    distinct unseen values in ``unseen_categories``), as ``oddkit score`` does (see
    :func:`oddkit.scoring.score_rows`); with ``strict_categories`` such a row is refused
    (:class:`UnseenCategoryError`, answered 422).

    The rows are scored, explained and written in chunks (:data:`_CHUNK_ROWS` rows of a table), so that
    the memory a request needs beyond its rows and its answer stays bounded; the answer is the same, byte
    for byte, as scoring all rows at once, and an error is the one scoring all rows at once raises.

    Floats are written by Python's ``repr``, so a client that parses them as float64 gets exactly the
    library's scores.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector.
    X : pandas.DataFrame, numpy.ndarray, list of str or AudioData
        The rows (the model's columns, in training order), the images, the texts, or the recordings (at the
        model's rate; ``source_rates``: the rates they came at).
    explain : bool, default=False
        Add each row's ``explanation`` (:func:`oddkit.scoring.explain_rows`; for a text, its tokens as columns
        ``token``, ``word_index``, ``word``, ``contribution``, ``share`` from ``detector.explain``; for a
        recording, :func:`oddkit.data.audio_features.explain_recordings`' row).
    strict_categories : bool, default=False
        Refuse a row holding a category never seen in training instead of scoring it as an anomaly (texts
        and recordings have no categories).
    watch : callable, optional
        Called as ``watch(rows, scores)`` with the rows scored and their scores (chunk by chunk) once every
        row is scored, e.g. :meth:`oddkit.drift.DriftWindow.add`; not called when scoring fails.

    Returns
    -------
    bytes
        The answer, UTF-8 JSON ``{"rows": [...], "threshold", "detector", "unseen_category_rows",
        "unseen_categories"}`` (texts: ``{"rows", "threshold", "detector"}``; recordings: ``{"rows",
        "threshold", "detector", "sample_rate", "warnings"}``).
    """
    from oddkit.data.audio import AudioData
    from oddkit.scoring import unseen_values
    from oddkit.serve._media import score_recordings, score_texts

    if isinstance(X, list):
        return score_texts(detector, X, explain=explain, watch=watch)
    if isinstance(X, AudioData):
        return score_recordings(detector, X, explain=explain, watch=watch)

    n = len(X)
    step = _chunk_rows(detector, X)
    # One growing buffer (getvalue() hands it over without a copy), not a list of pieces joined at the end.
    answer = io.BytesIO()
    answer.write(b'{"rows": [')
    separator, unseen_rows, columns, scored = b"", 0, {}, []
    try:
        for start in range(0, max(n, 1), step):
            chunk = X if n <= step else _rows(X, start, start + step)
            texts, unseen, columns, scores = _score_chunk(detector, chunk, explain, strict_categories)
            scored.append((chunk, scores))
            for text in texts:
                answer.write(separator + text.encode("utf-8"))
                separator = b", "
            unseen_rows += unseen
    except OddkitError:
        if n > step:  # the error scoring all rows at once raises, rows and counts of the whole request
            _raise_unchunked(detector, X, explain, strict_categories)
        raise
    if n > step:  # distinct unseen values over the whole request, not summed over chunks
        columns = {name: len(values) for name, values in unseen_values(detector, X).items()} if unseen_rows else {}
    if watch is not None:
        for chunk, scores in scored:
            watch(chunk, scores)
    head = json.dumps({"rows": [], "threshold": float(detector.threshold_), "detector": type(detector).__name__,
                       "unseen_category_rows": unseen_rows, "unseen_categories": columns}, allow_nan=False)
    answer.write(b"]" + head.split("[]", 1)[1].encode("utf-8"))  # '], "threshold": ...}'
    return answer.getvalue()


def _score_chunk(detector, X, explain: bool, strict_categories: bool):
    """One chunk of rows: its answer rows as JSON texts (each a few rows, comma-separated, without brackets),
    how many of them hold an unseen category, :func:`oddkit.scoring.score_rows`'s count of distinct unseen
    values per column, and the scores."""
    import numpy as np

    from oddkit.scoring import explain_rows, score_rows

    scores, unseen, columns = score_rows(detector, X, strict_categories=strict_categories, hint=_STRICT_HINT)
    probabilities = detector.proba_from_scores(scores)[:, 1]
    labels = (scores >= detector.threshold_).astype(int)
    shares = names = notes = None
    if explain and _image_shape(detector) is None:  # each column's share of the row's score
        shares = explain_rows(detector, X)  # strict: score_rows has already refused unseen categories
        names = [str(name) for name in shares.columns]
        shares = shares.to_numpy(dtype=np.float64)
    elif explain:  # each pixel's share of the positive mass of the image's map: (n, H, W)
        from oddkit.image_explanations import explain_scored_images

        explanation = explain_scored_images(detector, X, scores)  # the scores above, not computed again
        mass = np.clip(explanation.maps, 0.0, None).reshape(len(X), -1).sum(axis=1)
        shares = explanation.maps / np.where(mass > 0, mass, np.inf)[:, None, None]
        notes = list(explanation.notes)
    n = len(scores)
    step = max(1, _SERIALISE_VALUES // max(1, 4 + (0 if shares is None else shares[0].size if n else 0)))
    text = []
    for start in range(0, n, step):  # a few thousand numbers at a time as Python objects
        stop = start + step
        rows = [{"score": s, "label": lab, "probability": p, "unseen_category": u}
                for s, lab, p, u in zip(scores[start:stop].tolist(), labels[start:stop].tolist(),
                                        probabilities[start:stop].tolist(), unseen[start:stop].tolist())]
        if names is not None:
            for row, values in zip(rows, shares[start:stop].tolist()):
                row["explanation"] = dict(zip(names, values))
        elif shares is not None:
            for row, heat_map, note in zip(rows, shares[start:stop].tolist(), notes[start:stop]):
                row["explanation"] = heat_map
                if note is not None:
                    row["note"] = note
        text.append(json.dumps(rows, allow_nan=False)[1:-1])
    return text, int(unseen.sum()), columns, scores


def _raise_unchunked(detector, X, explain: bool, strict_categories: bool) -> None:
    """Score (and explain) all rows ``X`` at once, for the error that raises: a chunk's error names rows
    and counts within the chunk, this one within the whole request, as the answer always did."""
    from oddkit.scoring import explain_rows, score_rows

    score_rows(detector, X, strict_categories=strict_categories, hint=_STRICT_HINT)
    if explain and _image_shape(detector) is None:
        explain_rows(detector, X)


_TooManyRows = ServiceLimitError
"""A request over one of the service's limits, e.g. more rows than ``max_rows`` (answered 413)."""


def _check_rows(n: int, max_rows: int | None, what: str = "rows") -> None:
    from oddkit.serve._media import check_count

    check_count(n, max_rows, what)


def _payload_rows(payload: Any) -> int:
    """How many rows a parsed JSON body holds (0 when it is malformed: building the frame says why)."""
    if isinstance(payload, dict) and set(payload) == {"rows"}:
        payload = payload["rows"]
    if isinstance(payload, list):
        return len(payload)
    columns = payload.get("columns") if isinstance(payload, dict) and set(payload) == {"columns"} else None
    if isinstance(columns, dict):
        return max((len(v) for v in columns.values() if isinstance(v, list)), default=0)
    return 0


def _read_request(detector, body: bytes, content_type: str, upload: tuple[bytes, str] | None,
                  max_rows: int | None = None, limits: Limits | None = None,
                  uploads: list[tuple[bytes, str]] | None = None):
    """The rows (a DataFrame), images (an array), texts (a list of str) or recordings (an AudioData) of a
    request, at most ``max_rows`` of them (413 beyond), within ``limits``.

    ``upload``: the multipart field ``file`` (data, file name), or None; ``uploads``: every such field, for a
    model trained on recordings (``upload`` is then ignored). The caller hands ``body`` over: it is dropped once
    parsed, before the frame is built."""
    kind = content_type.split(";")[0].strip().lower()
    limits = limits if limits is not None else Limits(max_rows=max_rows if max_rows is not None else 2 ** 62)
    max_rows = limits.max_rows if max_rows is None else max_rows
    model = _input_kind(detector)
    if model == "texts":
        return _read_texts(detector, body, kind, upload, limits)
    if model == "recordings":
        return _read_recordings(detector, body, kind, uploads if uploads is not None else
                                [upload] if upload is not None else None, limits)
    images = model == "images"
    what = "images" if images else "rows"
    if upload is not None:
        data, filename = upload
        X = _images_from_npy(data) if images else _frame_from_file(data, filename, detector, max_rows=max_rows)
    elif images:
        if kind not in _NPY_TYPES:
            raise DataError(f"this model scores images: send a .npy array (numpy.save) with Content-Type "
                            f"application/x-npy, not {kind or 'no Content-Type'}")
        X = _images_from_npy(body)
    elif kind in _NPY_TYPES:
        raise DataError(f"this model scores table rows, not images: send JSON rows or columns, a CSV or a Parquet "
                        f"file, not {kind}")
    elif kind in ("text/csv", "application/csv"):
        X = _frame_from_file(body, "the CSV body", detector, parquet=False, max_rows=max_rows)
    elif kind in _PARQUET_TYPES:
        X = _frame_from_file(body, "the Parquet body", detector, parquet=True, max_rows=max_rows)
    else:
        payload = _parse_json(body)
        del body  # the parsed rows replace it
        _check_rows(_payload_rows(payload), max_rows, what)  # before the frame is built
        X = _frame_from_json(payload, detector)
    _check_rows(len(X), max_rows, what)
    return X


def _text_file_format(filename: str, data: bytes) -> str:
    """csv, tsv or parquet, from an uploaded file's name (else its first bytes: Parquet, or CSV)."""
    name = filename.lower()
    if name.endswith((".parquet", ".pq")) or data[:4] == b"PAR1":
        return "parquet"
    return "tsv" if name.endswith((".tsv", ".txt")) else "csv"


def _read_texts(detector, body: bytes, kind: str, upload: tuple[bytes, str] | None, limits: Limits) -> list[str]:
    from oddkit.serve._media import texts_from_file, texts_from_json

    if upload is not None:
        data, filename = upload
        return texts_from_file(data, filename, detector, _text_file_format(filename, data), limits)
    if kind in _NPY_TYPES or kind in AUDIO_TYPES or kind in NPZ_TYPES:
        raise DataError(f"this model scores texts: send {{\"texts\": [\"...\", ...]}}, a JSON list of strings, or a "
                        f"CSV, TSV or Parquet file of texts, not {kind}")
    if kind in TEXT_FILE_TYPES:
        fmt = TEXT_FILE_TYPES[kind]
        return texts_from_file(body, f"the {fmt.upper() if fmt != 'parquet' else 'Parquet'} body", detector, fmt,
                               limits)
    payload = _parse_json(body, texts=True)
    del body
    return texts_from_json(payload, limits)


def _read_recordings(detector, body: bytes, kind: str, uploads: list[tuple[bytes, str]] | None, limits: Limits):
    from oddkit.serve._media import is_archive, recordings_from_uploads

    if uploads is not None:
        sources = [(data, filename, is_archive(data, filename)) for data, filename in uploads]
        uploads.clear()  # handed over
        return recordings_from_uploads(detector, sources, limits)
    if kind in AUDIO_TYPES:
        archive = False
    elif kind in NPZ_TYPES:
        archive = True
    elif kind == "application/octet-stream":
        archive = is_archive(body, None)
    else:
        raise DataError("this model scores recordings: send a WAV or FLAC file as the body (Content-Type audio/wav or "
                        "audio/flac), several as multipart form fields 'file', or an .npz of recordings "
                        f"(application/x-npz), not {kind or 'no Content-Type'}")
    held = [(body, None, archive)]
    del body
    return recordings_from_uploads(detector, held, limits)


def _status(exc: OddkitError) -> int:
    from oddkit.exceptions import ExplainError, MissingDependencyError

    if isinstance(exc, ServiceLimitError):
        return 413
    if isinstance(exc, MissingDependencyError):
        return 501
    if isinstance(exc, (DataError, ExplainError, ValueError)):
        return 422
    return 400


# -- the OpenAPI schema -----------------------------------------------------------------------------------

def _request_models(detector, limits: Limits | None = None):
    """Pydantic models of the request bodies, naming the model's columns and their types, and of the answer
    (the JSON body's model is None for a model trained on recordings, which takes files only)."""
    from typing import Optional, Union

    from pydantic import BaseModel, ConfigDict, Field, create_model

    kind = _input_kind(detector)
    if kind in ("texts", "recordings"):
        from oddkit.serve._media import openapi_models

        return openapi_models(detector, kind, limits or Limits(max_rows=DEFAULT_MAX_ROWS))
    columns = _columns(detector) or []
    imputes = getattr(getattr(detector, "preprocessor_", None), "impute", None) is not None
    row_fields, column_fields = {}, {}
    for i, column in enumerate(columns):
        extra = None
        if column["kind"] == "numeric":
            # null is a missing value: filled by a model fitted with impute='median', refused (422) by others
            kind: Any = Optional[float] if imputes else float
            text = "a number, or null for a missing value (filled by the model)" if imputes else "a number"
        else:
            # Any value is taken: one never seen in training (null included) scores the row as an anomaly,
            # and is refused with ?strict_categories=true. The categories seen are listed, not enforced.
            categories = column["categories"]
            kind = Optional[Union[str, float]]
            shown = ", ".join(map(str, categories[:100])) + (", ..." if len(categories) > 100 else "")
            text = (f"one of the {len(categories)} categories seen in training ({shown}); any other value scores "
                    "the row as an anomaly (422 with ?strict_categories=true)")
            extra = {"examples": categories[:100]}
        description = f"{column['name']}: {column['kind']}, {text}"
        row_fields[f"c{i}"] = (kind, Field(alias=column["name"], description=description, json_schema_extra=extra))
        column_fields[f"c{i}"] = (list[kind], Field(alias=column["name"], description=description,
                                                    json_schema_extra=extra))
    strict = ConfigDict(extra="forbid", populate_by_name=False)
    Row = create_model("Row", __config__=strict, **row_fields)
    Columns = create_model("Columns", __config__=strict, **column_fields)

    class Records(BaseModel):
        model_config = strict
        rows: list[Row] = Field(min_length=1, description="One object per row, keyed by column name.")

    class ColumnsBody(BaseModel):
        model_config = strict
        columns: Columns = Field(description="One list of values per column, all of the same length.")

    if _image_shape(detector) is not None:
        explanation_type: Any = list[list[float]]
        explanation_text = ("With ?explain=true: each pixel's share of the positive mass of the image's heat map, "
                            "H lists of W numbers (oddkit.image_explanations.explain_images; for an auto-encoder, "
                            "its share of the squared error).")
    else:
        explanation_type = dict[str, float]
        explanation_text = ("With ?explain=true: each column's share of the score (detector.explain; a row that is "
                            "an anomaly for a category never seen in training: split over the columns holding one).")

    class RowScore(BaseModel):
        score: float = Field(description="Anomaly score: higher = more anomalous.")
        label: int = Field(description="1 = anomaly (score >= threshold), 0 = normal.")
        probability: float = Field(description="Probability of being an anomaly (detector.predict_proba).")
        unseen_category: bool = Field(description="The row holds a category never seen in training (scored as an "
                                                  "anomaly; refused instead with ?strict_categories=true).")
        explanation: Optional[explanation_type] = Field(None, description=explanation_text)
        note: Optional[str] = Field(None, description="With ?explain=true, for an image scored as an anomaly for "
                                                      "its brightness or contrast (the image default's intensity "
                                                      "guard): which statistic is out of range, which the heat map "
                                                      "does not show.")

    class ScoreResponse(BaseModel):
        rows: list[RowScore]
        threshold: float
        detector: str
        unseen_category_rows: int = Field(description="How many rows hold a category never seen in training.")
        unseen_categories: dict[str, int] = Field(
            description="Per categorical column, how many distinct values never seen in training it holds.")

    return Union[Records, ColumnsBody, list[Row]], ScoreResponse


def _install_openapi(app, detector, api_key: bool, limits: Limits | None = None) -> None:
    """Document POST /score's body with the model's own columns, texts or recordings (the handler reads the
    body itself, so that a bad one is answered with oddkit's message, not a generic validation error)."""
    from pydantic import TypeAdapter

    body, _ = _request_models(detector, limits)
    kind = _input_kind(detector)
    default_openapi = app.openapi

    def openapi():
        if app.openapi_schema:
            return app.openapi_schema
        schema = default_openapi()
        content = {}
        if body is not None:
            body_schema = TypeAdapter(body).json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
            definitions = body_schema.pop("$defs", {})
            schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions)
            content["application/json"] = {"schema": body_schema}
        binary = {"schema": {"type": "string", "format": "binary"}}
        upload: dict[str, Any] = {"type": "string", "format": "binary"}
        if kind == "images":
            content = {"application/x-npy": binary}
            upload["description"] = "A .npy array of images (numpy.save's bytes)."
        elif kind == "recordings":
            content.update({media: binary for media in (*AUDIO_TYPES, "application/x-npz")})
            upload = {"type": "array", "items": {"type": "string", "format": "binary"},
                      "description": "One or more WAV or FLAC recordings, or .npz archives of recordings, each its "
                                     "own field 'file'; answered in upload order."}
        elif kind == "texts":
            content["text/csv"] = {"schema": {"type": "string"}}
            content["text/tab-separated-values"] = {"schema": {"type": "string"}}
            content["application/vnd.apache.parquet"] = binary
            upload["description"] = "A CSV, TSV or Parquet file with the model's text column."
        else:
            content["text/csv"] = {"schema": {"type": "string"}}
            content["application/vnd.apache.parquet"] = binary
            upload["description"] = "A CSV or Parquet file."
        content["multipart/form-data"] = {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": upload}}}
        schema["paths"]["/score"]["post"]["requestBody"] = {"required": True, "content": content}
        if api_key:
            schema["components"]["securitySchemes"] = {"APIKey": {"type": "apiKey", "in": "header",
                                                                  "name": API_KEY_HEADER}}
            schema["paths"]["/score"]["post"]["security"] = [{"APIKey": []}]
            schema["paths"]["/model"]["get"]["security"] = [{"APIKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


# -- the app ------------------------------------------------------------------------------------------------

class _BodyLimit:
    """ASGI middleware: answer 413 to a body over ``limit`` bytes (by Content-Length, or while it streams), and
    408 to one that stops arriving for ``timeout`` seconds before it is complete (a client that stalls would
    otherwise hold its connection, and the request, open for ever)."""

    def __init__(self, app, limit: int, timeout: float = 30.0):
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = (f"the request body is over the service's limit of {self.limit:,} bytes; send fewer rows per "
                   "request (or start the service with a larger --max-body-mb)")
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_large = int(value) > self.limit
                except ValueError:
                    too_large = False
                if too_large:
                    return await _send_json(send, 413, {"detail": message})
        received = 0
        answered = complete = False

        async def limited_receive():
            nonlocal received, complete
            if complete:  # after the body, receive() waits for the client to disconnect: no time limit
                return await receive()
            try:
                event = await asyncio.wait_for(receive(), self.timeout)
            except asyncio.TimeoutError:
                raise _TooSlow(f"the request body stopped arriving: nothing for {self.timeout:g} s after "
                               f"{received:,} bytes; send the whole body without pausing") from None
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                complete = not event.get("more_body", False)
                if received > self.limit:
                    raise _TooLarge(message)
            else:
                complete = True
            return event

        async def tracking_send(event):
            nonlocal answered
            if event["type"] == "http.response.start":
                answered = True
            await send(event)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except (_TooLarge, _TooSlow) as exc:
            if not answered:
                await _send_json(send, 413 if isinstance(exc, _TooLarge) else 408, {"detail": str(exc)})


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


async def _send_json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _docs_page(title: str, schema: dict) -> str:
    """FastAPI's Swagger UI page with the schema written into it, for a service behind an API key: the
    page's script cannot send the key when it fetches /openapi.json, so it gets the schema inline."""
    from fastapi.openapi.docs import get_swagger_ui_html

    page = get_swagger_ui_html(openapi_url="/openapi.json", title=f"{title} - docs").body.decode("utf-8")
    inline = json.dumps(schema).replace("</", "<\\/")
    return page.replace("url: '/openapi.json'", f"spec: {inline}", 1)


def create_app(model, *, api_key: str | None = None, key: bytes | str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, n_threads: int | None = None,
               body_timeout: float = DEFAULT_BODY_TIMEOUT, max_rows: int = DEFAULT_MAX_ROWS,
               max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
               max_recording_seconds: float = DEFAULT_MAX_RECORDING_SECONDS, max_samples: int = DEFAULT_MAX_SAMPLES,
               drift_window: int = DEFAULT_DRIFT_WINDOW, drift_file: str | Path | None = None):
    """The FastAPI app serving one model.

    Parameters
    ----------
    model : str, Path or BaseDetector
        A model folder (loaded once, here, by :func:`oddkit.load`, which checks its integrity) or a
        fitted detector.
    api_key : str, optional
        When given, every request but ``GET /health`` must send it in the ``X-API-Key`` header (401
        otherwise), ``GET /openapi.json`` and ``GET /docs`` included (the docs page then carries the schema
        inline; ReDoc is off). ``oddkit serve`` reads it from ``ODDKIT_API_KEY``.
    key : bytes or str, optional
        The signing key: a folder that is not signed with it is refused (:class:`ModelFileError`), so the
        service never starts on it. ``oddkit serve`` reads it from ``ODDKIT_MODEL_KEY``.
    max_body_bytes : int, default 64 MiB
        Largest request body; a larger one is answered 413 without being read in full.
    n_threads : int, optional
        Most threads torch and BLAS/OpenMP use while scoring a request (:func:`limit_threads`, applied in
        every thread that scores); default: what the libraries choose. ``oddkit serve --n-threads``.
    body_timeout : float, default 30
        Seconds to wait for the next part of a request body that has not all arrived; a client that
        stalls longer is answered 408 and its request dropped.
    max_rows : int, default 100,000
        Most rows (images, texts, recordings) one request may hold; more are answered 413, with a detail asking
        to split the batch. Bounds the memory one request needs (``oddkit serve --max-rows``).
    max_text_chars : int, default 100,000
        A model trained on texts: most characters in one text; a longer one is answered 413, naming it
        (``oddkit serve --max-text-chars``; why this default: :data:`DEFAULT_MAX_TEXT_CHARS`).
    max_recording_seconds : float, default 600
        A model trained on recordings: longest recording, in seconds, by what its file declares, checked before
        it is decoded; a longer one is answered 413 (``oddkit serve --max-recording-seconds``).
    max_samples : int, default 2**25
        A model trained on recordings: most samples the recordings of one request may hold, by what their files
        declare (times their channels, or at the model's rate where that is more), checked before any is
        decoded: a small FLAC file can decode to hours of sound. More are answered 413 (``oddkit serve
        --max-samples``; why this default: :data:`DEFAULT_MAX_SAMPLES`).
    drift_window : int, default 10,000
        Rows ``GET /drift`` compares with the model's drift reference: the last this many scored, held as
        :class:`oddkit.drift.DriftWindow` holds them (a score and a bin per column, no values); 0 keeps none
        (``oddkit serve --drift-window``). A model without a drift reference keeps none either.
    drift_file : str or Path, optional
        Hold the drift window in this file (``DriftWindow(path=...)``), so that the apps of several processes
        serving the model watch one window: ``oddkit serve --workers N`` gives its workers one, in a private
        temporary folder. Default: the window is this app's own.

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    OddkitError
        For a model the service cannot score (:func:`check_servable`), and for a limit that is not a positive
        number.
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import HTMLResponse, JSONResponse, Response
        from pydantic import BaseModel, Field
        from starlette.concurrency import run_in_threadpool
    except ImportError as exc:
        from oddkit.exceptions import MissingDependencyError

        raise MissingDependencyError(f"the scoring service needs FastAPI and uvicorn ({exc}); "
                                     "pip install 'oddkit[serve]'") from None
    from oddkit import __version__

    folder = None
    if isinstance(model, (str, Path)):
        from oddkit.persist import load

        folder = Path(model)
        detector = load(folder, key=key)
    else:
        detector = model
    check_servable(detector)
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1:
        raise OddkitError(f"max_body_bytes must be a positive number of bytes, got {max_body_bytes!r}")
    if isinstance(body_timeout, bool) or not isinstance(body_timeout, (int, float)) or not 0 < body_timeout < 1e9:
        raise OddkitError(f"body_timeout must be a positive number of seconds, got {body_timeout!r}")
    for name, value, what in (("max_rows", max_rows, "rows"), ("max_text_chars", max_text_chars, "characters"),
                              ("max_samples", max_samples, "samples")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OddkitError(f"{name} must be a positive number of {what}, got {value!r}")
    if isinstance(drift_window, bool) or not isinstance(drift_window, int) or drift_window < 0 or drift_window == 1:
        raise OddkitError(f"drift_window must be 0 (off) or a number of rows of at least 2, got {drift_window!r}")
    if isinstance(max_recording_seconds, bool) or not isinstance(max_recording_seconds, (int, float)) \
            or not 0 < max_recording_seconds < 1e9:
        raise OddkitError(f"max_recording_seconds must be a positive number of seconds, got {max_recording_seconds!r}")
    limits = Limits(max_rows=max_rows, max_text_chars=max_text_chars,
                    max_recording_seconds=float(max_recording_seconds), max_samples=max_samples)
    # csv's limit on one field is the process's. The library raises it once, for good, at its first read of a file
    # of texts (oddkit.data.text); raised here too, before any request, so that counting a body's records
    # (_media._records) reads a field of any length as well. The body limit bounds every field here.
    import csv

    csv.field_size_limit(max(csv.field_size_limit(), 2 ** 31 - 1))
    _limit_this_thread(n_threads)
    info = model_info(detector, folder)
    _, ScoreResponse = _request_models(detector, limits)
    kind = _input_kind(detector)
    if kind == "texts":
        what = f" of texts (column {info['input']['text_column']!r})."
    elif kind == "recordings":
        what = f" of recordings (resampled to {info['input']['sample_rate']:,} Hz)."
    elif kind == "images":
        what = " of images."
    else:
        what = " of the columns " + ", ".join(f"{c['name']} ({c['kind']})" for c in (_columns(detector) or [])) + "."
    # With an API key the schema and its docs page are behind it too (routes added below); ReDoc is off.
    gated = {"openapi_url": None, "docs_url": None, "redoc_url": None} if api_key else {}
    app = FastAPI(title=f"oddkit: {info['detector']}", version=__version__,
                  description=f"Scores rows with a {info['detector']} model{what}", **gated)
    app.state.detector = detector
    from oddkit.drift import ALPHA, MIN_ALERT_RATIO, MIN_PSI, DriftWindow

    window = None
    if drift_window and getattr(detector, "drift_reference_", None) is not None:
        window = DriftWindow(detector, drift_window, path=drift_file)
    app.state.drift_window = window

    def authorised(request: Request) -> bool:
        if not api_key:
            return True
        sent = request.headers.get(API_KEY_HEADER)
        return sent is not None and hmac.compare_digest(sent.encode("utf-8"), api_key.encode("utf-8"))

    def refused() -> JSONResponse:
        return JSONResponse({"detail": f"missing or wrong API key; send it in the {API_KEY_HEADER} header"},
                            status_code=401, headers={"WWW-Authenticate": "API key"})

    class ErrorResponse(BaseModel):
        detail: str = Field(description="What is wrong with the request and how to fix it.")

    @app.exception_handler(OddkitError)
    async def _oddkit_error(request: Request, exc: OddkitError):
        # one line, whatever a message quotes (pyarrow's errors, e.g., run over several lines)
        detail = re.sub(r"\s*\n\s*", " ", _service_wording(str(exc)))
        return JSONResponse({"detail": detail}, status_code=_status(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # A fault of the service, not of the request: JSON like every other answer, without the traceback
        # (uvicorn logs it).
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}) while answering; the service's log "
                                       "has the details"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(request: Request, exc: RequestValidationError):
        # FastAPI validates only the query parameters (the handler reads the body itself): answer as oddkit
        # does, with one sentence in 'detail', rather than FastAPI's list of error objects.
        problems, flags = [], False
        for error in exc.errors():
            name = ".".join(str(part) for part in error.get("loc", ())[1:]) or "?"
            number = str(error.get("type", "")).startswith(("float", "finite"))
            flags = flags or not number
            problems.append(f"query parameter {name!r} must be {'a number' if number else 'true or false'}, got "
                            f"{error.get('input')!r}")
        advice = "; send ?explain=true or ?strict_categories=true" if flags else ""
        return JSONResponse({"detail": "; ".join(problems) + advice}, status_code=422)

    if api_key:
        @app.get("/openapi.json", include_in_schema=False)
        def openapi_schema(request: Request):
            return JSONResponse(app.openapi()) if authorised(request) else refused()

        @app.get("/docs", include_in_schema=False)
        def docs(request: Request):
            if not authorised(request):
                return refused()
            return HTMLResponse(_docs_page(app.title, app.openapi()))

    # /health and /model answer on the event loop, not in a worker thread: while every worker thread is busy
    # scoring (40 long requests), a load balancer's health check would otherwise wait for one to finish.
    @app.get("/health", summary="Liveness: the model is loaded")
    async def health():
        _limit_this_thread(n_threads)  # the threads a request in this thread scores with
        return {"status": "ok", "detector": info["detector"], "threads": _threads_in_use()}

    @app.get("/model", summary="What the model is (as 'oddkit info' shows it)")
    async def describe(request: Request):
        if not authorised(request):
            return refused()
        return info

    @app.post("/score", summary="Score rows: score, label and probability of each (explanation on request)",
              responses={200: {"model": ScoreResponse},
                         401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
                         413: {"model": ErrorResponse, "description": "Body over the size limit, more rows "
                                                                      "(texts, recordings) than the row limit, a "
                                                                      "text over the length limit, recordings over "
                                                                      "the duration or sample limits"},
                         422: {"model": ErrorResponse, "description": "Rows the model cannot score, or a query "
                                                                      "parameter that is not true or false; "
                                                                      "'detail' says why and how to fix it"}})
    async def score(request: Request, explain: bool = False, strict_categories: bool = False):
        if not authorised(request):
            return refused()
        content_type = request.headers.get("content-type", "")
        upload = uploads = None
        if content_type.lower().startswith("multipart/form-data"):
            try:  # each recording is a file: as many files as recordings (one more, to answer 413 beyond)
                form = await request.form(max_files=max_rows + 1 if kind == "recordings" else 1000)
            except AssertionError as exc:  # python-multipart missing
                from oddkit.exceptions import MissingDependencyError

                raise MissingDependencyError(f"uploads need python-multipart ({exc}); pip install 'oddkit[serve]'")
            except (_TooLarge, _TooSlow):
                raise
            except Exception as exc:  # noqa: BLE001 - the multipart parser's own errors are the client's
                problem = str(getattr(exc, "detail", None) or exc)
                if kind == "recordings" and problem.startswith("Too many files"):
                    raise ServiceLimitError(f"the request holds more than {max_rows:,} files, over the service's "
                                            f"limit of {max_rows:,} recordings per request; split the batch (or start "
                                            "the service with a larger --max-rows)") from None
                raise DataError(f"the multipart body cannot be read ({problem}); upload the file as form field "
                                "'file'") from None
            parts = form.getlist("file")
            files = [part for part in parts if part is not None and not isinstance(part, str)]
            if not files:
                raise DataError(f"upload {_UPLOADS[kind or 'table']} as the multipart form field 'file'")
            if len(files) > 1 and kind != "recordings":  # scoring one of them would drop the others unsaid
                raise DataError(f"the request uploads {len(files):,} files as the form field 'file'; upload "
                                f"{_UPLOADS[kind or 'table'].replace('the ', 'one ', 1)} per request")
            uploads = [(await part.read(), part.filename or "the uploaded file") for part in files]
            del parts, files
            upload = uploads[0] if kind != "recordings" else None
            body = b""
        else:  # read here rather than by request.body(), which would keep a copy for the request's life
            parts = [chunk async for chunk in request.stream()]
            body = b"".join(parts)
            del parts
        held = [body, upload, uploads]  # handed over to work(), which drops them once the rows are read
        del body, upload, uploads

        def work() -> bytes:
            _limit_this_thread(n_threads)
            X = _read_request(detector, held.pop(0), content_type, held.pop(0), max_rows=max_rows, limits=limits,
                              uploads=held.pop(0))
            return score_payload(detector, X, explain=explain, strict_categories=strict_categories,
                                 watch=None if window is None else window.add)

        return Response(await run_in_threadpool(work), media_type="application/json")

    @app.get("/drift", summary="The last rows scored against the model's drift reference (as 'oddkit drift')",
             responses={401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
                        409: {"model": ErrorResponse, "description": "No drift reference in the model, the window "
                                                                     "is off, or fewer than 2 rows scored yet"},
                        422: {"model": ErrorResponse, "description": "A setting out of range"}})
    async def drift(request: Request, alpha: float = ALPHA, min_psi: float = MIN_PSI,
                    min_alert_ratio: float = MIN_ALERT_RATIO):
        if not authorised(request):
            return refused()
        if window is None:
            why = ("the service was started with --drift-window 0" if not drift_window else
                   "the model holds no drift reference; choose its threshold on a dev set with 'oddkit threshold "
                   "MODEL DEV', which records DEV's normal rows, and serve that model")
            return JSONResponse({"detail": f"no drift check: {why}"}, status_code=409)
        if window.n_rows < 2:
            return JSONResponse({"detail": f"no drift check yet: {window.n_rows} rows scored since the service "
                                           "started, and a check needs at least 2"}, status_code=409)

        def work() -> dict:
            _limit_this_thread(n_threads)
            report = window.report(alpha=alpha, min_psi=min_psi, min_alert_ratio=min_alert_ratio)
            return {**report.to_dict(), "window": {"size": window.size, "rows": window.n_rows,
                                                    "rows_scored": window.n_seen}}

        return JSONResponse(await run_in_threadpool(work))

    _install_openapi(app, detector, bool(api_key), limits)
    app.add_middleware(_BodyLimit, limit=max_body_bytes, timeout=float(body_timeout))
    return app


_LIMITED = threading.local()


def limit_threads(n_threads: int) -> None:
    """Cap the threads torch and the BLAS/OpenMP libraries use at ``n_threads``, from the calling thread on,
    for the rest of the process's life (``oddkit serve --n-threads``). OpenMP's setting is per thread, so
    the service calls this once in each thread that scores (:func:`_limit_this_thread`). Libraries already
    loaded are capped through threadpoolctl, those loaded later through ``OMP_NUM_THREADS``,
    ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS``.

    Parameters
    ----------
    n_threads : int
        At least 1.
    """
    from threadpoolctl import threadpool_limits

    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise OddkitError(f"n_threads must be a positive number of threads, got {n_threads!r}")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # libraries loaded later
        os.environ[name] = str(n_threads)
    torch = sys.modules.get("torch")  # a model without a network never imports torch; loaded later, it reads the above
    if torch is not None:
        torch.set_num_threads(n_threads)
    threadpool_limits(limits=n_threads)


def _limit_this_thread(n_threads: int | None) -> None:
    """:func:`limit_threads` in this thread, the first time it scores."""
    if n_threads is not None and getattr(_LIMITED, "n_threads", None) != n_threads:
        limit_threads(n_threads)
        _LIMITED.n_threads = n_threads


def _threads_in_use() -> dict[str, int | None]:
    """The threads a request would score with: torch's (when loaded) and the most any BLAS/OpenMP pool has."""
    from threadpoolctl import threadpool_info

    torch = sys.modules.get("torch")
    pools = [int(pool["num_threads"]) for pool in threadpool_info()]
    return {"torch": torch.get_num_threads() if torch is not None else None, "blas": max(pools) if pools else None}


def _app_from_environment():
    """The app ``oddkit serve`` runs in each uvicorn worker: the model folder and limits come from the
    environment the command set, the keys from ``ODDKIT_API_KEY`` and ``ODDKIT_MODEL_KEY``."""
    from oddkit.persist import key_from_environment

    folder = os.environ.get(_MODEL_ENVIRONMENT_VARIABLE)
    if not folder:
        raise OddkitError(f"{_MODEL_ENVIRONMENT_VARIABLE} is not set; start the service with 'oddkit serve MODEL'")
    limit = int(os.environ.get(_MAX_BODY_ENVIRONMENT_VARIABLE, DEFAULT_MAX_BODY_BYTES))
    max_rows = int(os.environ.get(_MAX_ROWS_ENVIRONMENT_VARIABLE, DEFAULT_MAX_ROWS))
    max_text_chars = int(os.environ.get(_MAX_TEXT_CHARS_ENVIRONMENT_VARIABLE, DEFAULT_MAX_TEXT_CHARS))
    seconds = float(os.environ.get(_MAX_RECORDING_SECONDS_ENVIRONMENT_VARIABLE, DEFAULT_MAX_RECORDING_SECONDS))
    max_samples = int(os.environ.get(_MAX_SAMPLES_ENVIRONMENT_VARIABLE, DEFAULT_MAX_SAMPLES))
    drift_window = int(os.environ.get(_DRIFT_WINDOW_ENVIRONMENT_VARIABLE, DEFAULT_DRIFT_WINDOW))
    threads = os.environ.get(_THREADS_ENVIRONMENT_VARIABLE)
    return create_app(folder, api_key=os.environ.get(API_KEY_ENVIRONMENT_VARIABLE) or None,
                      key=key_from_environment(), max_body_bytes=limit, n_threads=int(threads) if threads else None,
                      max_rows=max_rows, max_text_chars=max_text_chars, max_recording_seconds=seconds,
                      max_samples=max_samples, drift_window=drift_window,
                      drift_file=os.environ.get(_DRIFT_FILE_ENVIRONMENT_VARIABLE) or None)

