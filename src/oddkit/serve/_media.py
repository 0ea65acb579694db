"""Texts and recordings for the scoring service (:mod:`oddkit.serve`): what such a model takes, reading a
request's texts or recordings within the service's limits, and writing the answer.

Texts
-----
A model trained on texts (its ``preprocessor_`` holds a tokenizer: :class:`~oddkit.TextAutoEncoderDetector`,
:class:`~oddkit.detectors.readable.TextSummaryAutoEncoder`, :class:`~oddkit.detectors.readable.TreeAutoEncoder`)
takes ``{"texts": ["...", ...]}`` or a JSON list of strings, or a CSV / TSV / Parquet file read as
``oddkit score`` reads it (:func:`oddkit.data.text.read_text_table`, the model's text column; a TSV without
that column in the headerless ``label<TAB>text`` layout). Every text must be a non-empty string of at most
``max_text_chars`` characters (:data:`DEFAULT_MAX_TEXT_CHARS`): the tokenizer reads a text whole before a
model keeps its first tokens, so without a bound one text could hold the whole body (10 million characters
took 8 s and 1.8 GB to tokenize). A CSV or TSV file's columns (at most :data:`MAX_FILE_COLUMNS`, from its
header) and rows (at most ``max_rows``) are counted before it is read into a table, a Parquet file's from its
metadata.

Recordings
----------
A model trained on recordings (audio features in its preprocessing, or voice conversion's log-mel front end)
takes WAV or FLAC files (anything libsndfile decodes, as :func:`oddkit.data.audio.read_audio` reads them) and
``.npz`` archives of recordings (``audio``, ``offsets``, ``sample_rate``). Before a sample is decoded, the
service reads what each file declares (``soundfile.info``; an archive's array headers) and refuses a
recording longer than ``max_recording_seconds`` (:data:`DEFAULT_MAX_RECORDING_SECONDS`) and a request whose
recordings add up to more than ``max_samples`` samples (:data:`DEFAULT_MAX_SAMPLES`): a FLAC file of 89 KB
holds an hour of silence (28.8 million samples). An archive is read from its directory and array headers
first: every member must be a ``.npy`` array (:func:`numpy.load` reads any other member whole, whatever its
size), its labels one per recording, its rate one finite number. Each recording is read at its own rate and
resampled to the model's by the library's resampler (:meth:`oddkit.data.audio.AudioData.resampled`), the same
samples the model itself would resample it to; the answer says which recordings were resampled.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oddkit.exceptions import (ColumnMismatchError, DataError, EmptyDataError, ExplainError,
                               MissingDependencyError, OddkitError, UnreadableAudioError)
from oddkit.model_input import recording_rate_and_band, text_column

__all__ = ["AUDIO_TYPES", "DEFAULT_MAX_RECORDING_SECONDS", "DEFAULT_MAX_SAMPLES", "DEFAULT_MAX_TEXT_CHARS",
           "MAX_FILE_COLUMNS", "NPZ_TYPES", "TEXT_FILE_TYPES", "Limits", "ServiceLimitError", "recordings_from_uploads",
           "score_recordings", "score_texts", "texts_from_file", "texts_from_json"]

DEFAULT_MAX_TEXT_CHARS = 100_000
"""Most characters in one text (about 20 pages): longer than any message, review or e-mail body the text models
are fitted on (a text auto-encoder reads its first ``max_length`` tokens, 64 by default, some 300 characters),
while tokenizing a text of this length takes 0.05 s and 12 MB (10 million characters: 8 s and 1.8 GB)."""
DEFAULT_MAX_RECORDING_SECONDS = 600.0
"""Longest recording, in seconds, by what its file declares (10 minutes): the clips and utterances the audio
models learn from last seconds; the spectrogram of one recording is computed whole (about 0.1 MB a second at
8 kHz and 0.2 MB at 16 kHz for the default settings), so this bounds one recording's share of a request's
memory."""
DEFAULT_MAX_SAMPLES = 2 ** 25
"""Most audio samples one request may decode (33,554,432): what a 64 MiB body (the default body limit) of
16-bit PCM WAV holds, so that a compressed FLAC body costs no more than the largest uncompressed one; 70
minutes of sound at 8 kHz, 128 MiB as float32. Each recording counts its samples as sent (times its channels)
or at the model's rate, whichever is more."""

TEXT_FILE_TYPES = {"text/csv": "csv", "application/csv": "csv", "text/tab-separated-values": "tsv",
                   "text/tsv": "tsv", "application/vnd.apache.parquet": "parquet",
                   "application/x-parquet": "parquet", "application/parquet": "parquet",
                   "application/octet-stream": "parquet"}
"""Content types of a body holding a file of texts, and the format each is read as."""
AUDIO_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/flac", "audio/x-flac")
"""Content types of a body holding one recording (WAV or FLAC)."""
NPZ_TYPES = ("application/x-npz", "application/npz", "application/zip")
"""Content types of a body holding an ``.npz`` archive of recordings."""

MAX_FILE_COLUMNS = 1_000
"""Most columns a CSV, TSV or Parquet file of texts may have (a table model's CSV file: this or the model's own
number, the more). A file is read with every column, at some 4 KB and 80 us a column: a CSV header of 300,000
columns (2.3 MB) took 25 s and 1.3 GB to read, for a model that reads one."""
_TEXT_CHUNK = 512
"""Texts explained and written at a time (the answer's explanations as Python objects stay this small)."""
_RECORDING_CHUNK = 1024
"""Recordings written at a time."""
_NPZ_OTHER_BYTES = 64 * 1024 * 1024
"""Most bytes an ``.npz`` may declare for its arrays other than ``audio`` (offsets, names, labels)."""
_NPZ_DIRECTORY_BYTES = 64 * 1024
"""Longest directory of an ``.npz`` (its list of members, read whole before any member: a few dozen bytes a
member, so 64 MiB could list some 700,000): some hundreds of arrays, where numpy.savez's archive of recordings
holds at most eight."""
_NPZ_NAMES = 65_536
"""Most speaker names (``speaker_names``) an ``.npz`` may hold: they become strings of up to 128 bytes each."""
_UNKNOWN_LENGTH = 2 ** 62
"""libsndfile's frame count of a file that does not state its length (SF_COUNT_MAX), and anything near it."""


class ServiceLimitError(OddkitError):
    """A request over one of the service's limits (rows, characters of a text, length or samples of recordings);
    answered 413, with the limit and the option that raises it."""


@dataclass(frozen=True)
class Limits:
    """The service's limits on one request (see :func:`oddkit.serve.create_app`)."""

    max_rows: int
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    max_recording_seconds: float = DEFAULT_MAX_RECORDING_SECONDS
    max_samples: int = DEFAULT_MAX_SAMPLES


def check_count(n: int, max_rows: int | None, what: str, counted_to: int | None = None) -> None:
    """Refuse (413) a request holding more than ``max_rows`` rows, texts or recordings (``counted_to``: where
    counting stopped, when it stopped before the end; ``n`` is then at least that)."""
    if max_rows is not None and n > max_rows:
        held = f"more than {counted_to - 1:,}" if counted_to is not None and n >= counted_to else f"{n:,}"
        raise ServiceLimitError(f"the request holds {held} {what}, over the service's limit of {max_rows:,} {what} per "
                                f"request; split the batch into requests of at most {max_rows:,} {what} (or start the "
                                "service with a larger --max-rows)")


# -- what the model takes ------------------------------------------------------------------------------------

def refuse_unservable_recordings(detector) -> None:
    """Refuse a model trained on recordings that the service cannot score, or whose libraries are missing."""
    from oddkit.data.audio_features import audio_settings

    features = audio_settings(detector)
    if features is not None and features.representation == "frames":
        raise OddkitError(f"this {type(detector).__name__} model was trained on frames of recordings (audio features "
                          "'frames'): it scores each frame, not a recording, which neither the scoring service nor "
                          "'oddkit score' takes; score its frames in Python (oddkit.load(MODEL).decision_function)")
    try:
        import librosa  # noqa: F401 - loaded once here, not in the first request
        import soundfile  # noqa: F401
    except (ImportError, OSError) as exc:
        raise MissingDependencyError(f"a model trained on recordings needs soundfile and librosa ({exc}); "
                                     "pip install 'oddkit[audio]'") from None


def texts_input(detector) -> dict[str, Any]:
    """``GET /model``'s ``input`` for a model trained on texts."""
    tokenizer = detector.preprocessor_.tokenizer_
    return {"kind": "texts", "text_column": text_column(detector), "tokenizer": str(tokenizer.kind),
            "vocabulary_size": int(tokenizer.vocab_size_)}


def recordings_input(detector) -> dict[str, Any]:
    """``GET /model``'s ``input`` for a model trained on recordings: rate, features, explanation groups."""
    from oddkit.data.audio_features import audio_settings, explained_features

    rate, band = recording_rate_and_band(detector)
    features = audio_settings(detector)
    if features is not None:
        described = {"features": str(features.representation), "n_features": int(features.n_features_),
                     "n_mels": int(features.log_mel_.n_mels)}
    else:  # voice conversion: the log-mel frames themselves
        described = {"features": "log-mel frames", "n_features": None, "n_mels": int(detector.log_mel_.n_mels)}
    explained = explained_features(detector)
    return {"kind": "recordings", "sample_rate": rate, **described, "max_frequency": band,
            "explanation": explained.groupings()[0] if explained is not None else None}


# -- files of rows (CSV, TSV) ---------------------------------------------------------------------------------

_QUOTED = re.compile(rb'"[^"]*(?:""[^"]*)*"')
"""A quoted field of a CSV file, its quotes doubled inside (csv's and pandas' rule), line breaks and all. Each
character has one way to match, so a quote never closed costs one pass, not a backtracking search."""
_BLANK_LINES = re.compile(rb"(?:[ \t]*(?:\r\n|\r|\n))*")
_LINE = re.compile(rb"[^\r\n]*")


def _header_columns(data: bytes, delimiter: bytes, most: int) -> int:
    """How many fields the first line that is not blank of a delimited file holds, as csv and pandas split it (a
    quoted field may hold delimiters and line breaks); counting stops at ``most + 1``. The bytes are read as they
    are: in UTF-8 no byte of a character beyond ASCII is a delimiter, a quote or a line break."""
    plain = re.compile(b"[^" + re.escape(delimiter) + b"\r\n]*")
    at, fields = _BLANK_LINES.match(data).end(), 1
    while fields <= most:
        if data.startswith(b'"', at):
            quoted = _QUOTED.match(data, at)
            if quoted is None:  # a quote never closed: reading the file says so
                return fields
            at = quoted.end()
        at = plain.match(data, at).end()
        if at >= len(data) or data[at:at + 1] != delimiter:
            return fields
        fields, at = fields + 1, at + 1
    return fields


def _headerless(data: bytes, column: str) -> bool:
    """Whether a TSV file of texts is in the headerless ``label<TAB>text`` layout, read line by line (a quote is
    no quote there): no field of its first line that is not blank is ``column`` or ``"text"``, quoted or not
    (:func:`oddkit.data.text.read_text_table`'s rule)."""
    at = _BLANK_LINES.match(data).end()
    line = _LINE.match(data, at).group()
    fields = [field.strip() for field in line.decode("utf-8-sig", errors="replace").split("\t")]
    fields += [field[1:-1].replace('""', '"').strip() for field in fields if field[:1] == field[-1:] == '"']
    return column not in fields and "text" not in fields


def _records(data: bytes, delimiter: str, stop: int, by_lines: bool = False) -> int:
    """How many records that are not blank a delimited file holds, as csv reads them (a quoted field may span
    lines), or line by line (``by_lines``: the headerless layout), counted up to ``stop``; never more than a file
    read by pandas, or line by line, holds."""
    count = 0
    if by_lines:
        for line in io.BytesIO(data):
            if line.strip():
                count += 1
                if count >= stop:
                    break
        return count
    try:
        stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
        for row in csv.reader(stream, delimiter=delimiter):
            if row and (len(row) > 1 or row[0].strip()):
                count += 1
                if count >= stop:
                    break
    except (csv.Error, UnicodeDecodeError):  # reading the file says what is wrong with it
        pass
    return count


def check_delimited(data: bytes, delimiter: str, name: str, max_rows: int | None, what: str, most_columns: int,
                    advice: str, error: type[OddkitError] = ServiceLimitError, by_lines: bool = False) -> None:
    """Refuse a CSV or TSV file of more than ``most_columns`` columns (:data:`MAX_FILE_COLUMNS`; ``error``, with
    ``advice``: what to send instead), or of more ``what`` than ``max_rows`` (besides a header; ``by_lines``: a
    file read line by line, into two columns whatever its tabs), before it is read into a table: reading builds
    every column of every row."""
    if not by_lines and _header_columns(data, delimiter.encode("ascii"), most_columns) > most_columns:
        raise error(f"{name} has more than {most_columns:,} columns; {advice}")
    # Counted (to ten times the limit, about a second at most; exactly below that) only where the file has more
    # lines than a header and max_rows rows: a record is one line or more.
    if max_rows is not None and data.count(b"\n") + data.count(b"\r") + 1 > max_rows + 1:
        stop = 10 * max_rows + 2
        check_count(_records(data, delimiter, stop, by_lines) - 1, max_rows, what, counted_to=stop - 1)


# -- texts in ------------------------------------------------------------------------------------------------

def _described(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'}, not a string"
    if isinstance(value, (int, float)):
        shown = repr(value)
        return f"a number ({shown if len(shown) <= 20 else shown[:20] + '...'}), not a string"
    return f"{'a list' if isinstance(value, list) else 'an object'}, not a string"


def check_texts(texts: list, max_text_chars: int) -> list[str]:
    """Every text a non-empty string of valid Unicode of at most ``max_text_chars`` characters; the first that
    is not is named by its index (0 = the first text of the request)."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"text {i} is {_described(text)}; send each text as a non-empty string")
        if len(text) > max_text_chars:
            raise ServiceLimitError(f"text {i} holds {len(text):,} characters, over the service's limit of "
                                    f"{max_text_chars:,} characters per text; send shorter texts (or start the "
                                    "service with a larger --max-text-chars)")
        if not text.strip():
            raise DataError(f"text {i} is {'empty' if not text else 'blank'}; send each text as a non-empty string "
                            "(leave out empty messages)")
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate, e.g. "\ud800" in the JSON
                raise DataError(f"text {i} holds a lone surrogate at character {exc.start} "
                                f"({text[exc.start]!r}), which is not Unicode text; send valid UTF-8 text") from None
    return texts


def texts_from_json(payload: Any, limits: Limits) -> list[str]:
    """``{"texts": [...]}`` or a JSON list of strings -> the texts, checked (:func:`check_texts`)."""
    if isinstance(payload, dict) and set(payload) == {"texts"}:
        texts = payload["texts"]
        if not isinstance(texts, list):
            raise DataError(f"'texts' must be a list of strings, not {_described(texts).split(',')[0]}; send "
                            "{\"texts\": [\"...\", ...]}")
    elif isinstance(payload, list):
        texts = payload
    else:
        keys = f" with the keys {sorted(payload)[:5]}" if isinstance(payload, dict) else ""
        raise DataError(f"this model scores texts: send {{\"texts\": [\"...\", ...]}} or a JSON list of strings, not "
                        f"{_described(payload).split(',')[0] if not isinstance(payload, dict) else 'an object'}{keys}")
    if not texts:
        raise EmptyDataError("the request holds no texts; send at least one")
    check_count(len(texts), limits.max_rows, "texts")
    return check_texts(texts, limits.max_text_chars)


_TEXT_WORDING = [
    (r"Name the right (?:one with text_col|column)\b", "Send the texts in the column {column!r}, the model's text "
                                                       "column"),
    (r" or name it with text_col \(CLI: --text-col NAME\)", " (the model's text column is {column!r})"),
    (r"name the text column with text_col(?: \(CLI: --text-col NAME\))?",
     "call the text column {column!r}, the model's text column"),
]
"""The library's advice to name the text column in Python -> the column a client must send (the model's)."""


def _text_wording(message: str, column: str) -> str:
    import re

    for pattern, replacement in _TEXT_WORDING:
        message = re.sub(pattern, lambda _, text=replacement.format(column=column): text, message)
    return message


def _check_parquet(data: bytes, filename: str, limits: Limits, column: str) -> None:
    """Refuse, from its metadata, a Parquet file of more texts than ``max_rows``, of more columns than
    :data:`MAX_FILE_COLUMNS` (every column is read), or whose data once decompressed would be larger than texts
    within the length limit can be (a small file can decompress to gigabytes)."""
    try:
        import pyarrow.parquet as pq

        metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    except Exception:  # noqa: BLE001 - not Parquet, or damaged: reading it says what is wrong
        return
    check_count(int(metadata.num_rows), limits.max_rows, "texts")
    if int(metadata.num_columns) > MAX_FILE_COLUMNS:
        raise ServiceLimitError(f"{filename} has more than {MAX_FILE_COLUMNS:,} columns ({metadata.num_columns:,}); "
                                f"send the texts in the column {column!r} (the model's text column) and few others")
    declared = sum(int(metadata.row_group(i).total_byte_size) for i in range(metadata.num_row_groups))
    allowed = int(metadata.num_rows) * (4 * limits.max_text_chars + 1024) + 2 ** 20
    if declared > allowed:
        raise ServiceLimitError(f"{filename} declares {declared:,} bytes of data once decompressed for "
                                f"{metadata.num_rows:,} rows, more than texts within the service's limit of "
                                f"{limits.max_text_chars:,} characters each can hold; send shorter texts (or start "
                                "the service with a larger --max-text-chars)")


def _unreadable_texts(exc: Exception, path: Path, filename: str) -> str:
    problem = " ".join(str(exc).replace(str(path), filename).split())
    return (f"{filename}: its texts cannot be read ({type(exc).__name__}: {problem[:200]}); store each text as a "
            "string of valid UTF-8")


def texts_from_file(data: bytes, filename: str, detector, fmt: str, limits: Limits) -> list[str]:
    """A CSV, TSV or Parquet file of texts read as ``oddkit score`` reads it: the model's text column (a TSV
    without it in the headerless ``label<TAB>text`` layout); the texts, checked (:func:`check_texts`)."""
    from oddkit.data.text import read_text_table

    column = text_column(detector)
    if not data:
        raise EmptyDataError(f"{filename} is empty (0 bytes); send a file with a header and at least one text")
    if fmt == "parquet":
        _check_parquet(data, filename, limits, column)
    else:
        check_delimited(data, "\t" if fmt == "tsv" else ",", filename, limits.max_rows, "texts", MAX_FILE_COLUMNS,
                        f"send the texts in the column {column!r} (the model's text column) and few others",
                        by_lines=fmt == "tsv" and _headerless(data, column))
    with tempfile.TemporaryDirectory(prefix="oddkit-serve-") as folder:
        path = Path(folder) / f"upload.{fmt}"
        path.write_bytes(data)
        try:
            try:
                table = read_text_table(path, text_col=column, label_col=None)
            except ColumnMismatchError as first:
                if fmt != "tsv" or column == "text":
                    raise
                try:  # as 'oddkit score': a TSV without the model's column may be in the headerless layout
                    table = read_text_table(path, text_col="text", label_col=None)
                except ColumnMismatchError:
                    raise first from None
        except OddkitError as exc:
            raise type(exc)(_text_wording(str(exc).replace(str(path), filename), column)) from None
        except (UnicodeError, ValueError) as exc:  # e.g. a Parquet string that is not UTF-8 (pyarrow's error)
            raise DataError(_unreadable_texts(exc, path, filename)) from None
        except Exception as exc:
            if type(exc).__module__.split(".")[0] != "pyarrow":
                raise
            raise DataError(_unreadable_texts(exc, path, filename)) from None
    texts = table.X.iloc[:, 0].tolist()
    del table
    check_count(len(texts), limits.max_rows, "texts")
    return check_texts(texts, limits.max_text_chars)


# -- texts out -----------------------------------------------------------------------------------------------

def _explains_texts(detector) -> bool:
    from oddkit.detectors.readable import TextSummaryAutoEncoder, TreeAutoEncoder

    return not isinstance(detector, (TextSummaryAutoEncoder, TreeAutoEncoder))


def _explain_refused(detector, reason: str) -> ExplainError:
    return ExplainError(f"?explain=true: a {type(detector).__name__} {reason}; leave out ?explain=true")


def _text_explanations(detector, texts: list[str]) -> list[dict[str, list]]:
    """Each text's tokens from ``detector.explain``, as columns: token, word_index, word, contribution, share."""
    import numpy as np

    try:
        frame = detector.explain(texts)
    except ExplainError as exc:
        raise _explain_refused(detector, f"gives no per-token split of its scores ({exc})") from None
    bounds = np.searchsorted(frame["row"].to_numpy(), np.arange(len(texts) + 1))  # rows 0 .. n-1, in order
    columns = {name: frame[name].tolist() for name in ("token", "word_index", "word", "contribution", "share")}
    return [{name: values[a:b] for name, values in columns.items()} for a, b in zip(bounds[:-1], bounds[1:])]


def score_texts(detector, texts: list[str], explain: bool = False, watch=None) -> bytes:
    """The answer of ``POST /score`` for texts: ``{"rows": [{"score", "label", "probability"(, "explanation")}],
    "threshold", "detector"}``. The scores are ``detector.decision_function(texts)``, all texts at once (as the
    library scores them); the explanations are computed and the answer written :data:`_TEXT_CHUNK` texts at a
    time. ``watch(texts, scores)`` is called once all are answered (see :func:`oddkit.serve.score_payload`)."""
    if explain and not _explains_texts(detector):
        raise _explain_refused(detector, "gives no per-token split of its scores (it rebuilds each text from a "
                                         "readable code)")
    scores = detector.decision_function(texts)
    probabilities = detector.proba_from_scores(scores)[:, 1]
    labels = (scores >= detector.threshold_).astype(int)
    answer = io.BytesIO()
    answer.write(b'{"rows": [')
    separator = b""
    for start in range(0, len(texts), _TEXT_CHUNK):
        stop = start + _TEXT_CHUNK
        rows = [{"score": s, "label": lab, "probability": p} for s, lab, p in
                zip(scores[start:stop].tolist(), labels[start:stop].tolist(), probabilities[start:stop].tolist())]
        if explain:
            for row, explanation in zip(rows, _text_explanations(detector, texts[start:stop])):
                row["explanation"] = explanation
        answer.write(separator + json.dumps(rows, allow_nan=False)[1:-1].encode("utf-8"))
        separator = b", "
    tail = json.dumps({"threshold": float(detector.threshold_), "detector": type(detector).__name__})
    answer.write(b"], " + tail[1:].encode("utf-8"))
    if watch is not None:  # every text scored and answered: the drift window may keep them
        watch(texts, scores)
    return answer.getvalue()


# -- recordings in -------------------------------------------------------------------------------------------

def _replace_path(message: str, path: Path, name: str) -> str:
    return message.replace(str(path), name).replace(path.name, name)


def _declared_audio(path: Path, name: str, model_rate: int, limits: Limits) -> int:
    """The samples a WAV/FLAC file declares (``soundfile.info``, nothing decoded), checked against the limit
    on one recording's length; counted as sent (times its channels) or at the model's rate, the more."""
    from oddkit.data.audio import MAX_SAMPLE_RATE, _soundfile

    try:
        info = _soundfile().info(str(path))
    except MissingDependencyError:
        raise
    except Exception as exc:  # noqa: BLE001 - libsndfile's errors by version: not audio, or damaged
        raise UnreadableAudioError(f"{name}: cannot be read as audio ({_replace_path(str(exc), path, name)}); send "
                                   "a WAV or FLAC recording (this one is damaged or in another format)") from None
    frames, rate, channels = int(info.frames), int(info.samplerate), max(1, int(info.channels))
    if frames >= _UNKNOWN_LENGTH:
        raise ServiceLimitError(f"{name} does not state its length in its header (a stream), so the service cannot "
                                "bound it before decoding; send a WAV or FLAC file that does (re-export it)")
    if frames <= 0:
        raise UnreadableAudioError(f"{name}: the recording holds no samples; send a recording with sound in it")
    if not 1 <= rate <= MAX_SAMPLE_RATE:
        raise DataError(f"{name} is at {rate:,} Hz; oddkit reads recordings at 1 to {MAX_SAMPLE_RATE:,} Hz")
    seconds = frames / rate
    if seconds > limits.max_recording_seconds:
        raise ServiceLimitError(f"{name} lasts {seconds:,.1f} s by its header ({frames:,} samples at {rate:,} Hz), "
                                f"over the service's limit of {limits.max_recording_seconds:g} s per recording; send "
                                "shorter recordings (or start the service with a larger --max-recording-seconds)")
    return max(frames * channels, math.ceil(seconds * model_rate))


def _directory_bytes(path: Path) -> int | None:
    """The size of a zip file's directory (its list of members), as the zip reader will read it; None where it
    cannot be told (not a zip file: opening it says so)."""
    end_record, size_field = getattr(zipfile, "_EndRecData", None), getattr(zipfile, "_ECD_SIZE", None)
    if end_record is None or size_field is None:  # not in this Python: the directory is read unbounded
        return None
    try:
        with open(path, "rb") as stream:
            record = end_record(stream)
    except Exception:  # noqa: BLE001 - a damaged end record: opening the archive says what is wrong
        return None
    return int(record[size_field]) if record else None


def _npy_headers(path: Path, name: str) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Shape and dtype of every array of an ``.npz``, from the headers alone (no array is read). Refuses a member
    that is not a ``.npy`` array (:func:`numpy.load` reads such a member whole, whatever its size), and an archive
    whose directory is longer than :data:`_NPZ_DIRECTORY_BYTES` (the zip reader reads it whole first)."""
    from oddkit.data.audio import npy_member_header

    directory = _directory_bytes(path)
    if directory is not None and directory > _NPZ_DIRECTORY_BYTES:
        raise ServiceLimitError(f"{name}: its directory lists the archive's members in {directory:,} bytes, over the "
                                f"service's limit of {_NPZ_DIRECTORY_BYTES:,} (some hundreds of arrays); send "
                                "numpy.savez's file of the arrays 'audio', 'offsets' and 'sample_rate' (and the "
                                "recordings' labels)")
    try:
        archive = zipfile.ZipFile(path)
    except Exception as exc:  # noqa: BLE001 - BadZipFile, NotImplementedError (a zip version), struct errors...
        raise UnreadableAudioError(f"{name}: not an .npz archive ({exc}); send numpy.savez's file with the arrays "
                                   "'audio', 'offsets' and 'sample_rate'") from None
    headers = {}
    with archive:
        for member in archive.infolist():
            if not member.filename.endswith(".npy"):
                shown = member.filename if len(member.filename) <= 40 else member.filename[:40] + "..."
                raise DataError(f"{name}: the member {shown!r} is not a .npy array; an .npz of recordings holds "
                                "numpy.savez's arrays only ('audio', 'offsets', 'sample_rate' and the recordings' "
                                "labels)")
            headers[member.filename[:-4]] = npy_member_header(archive, member, name)
    return headers


def _check_archive_arrays(headers: dict[str, tuple[tuple[int, ...], Any]], name: str, count: int) -> None:
    """Refuse, from their headers, arrays :func:`oddkit.data.audio.read_audio` cannot read as numbers (it would
    fail deep inside), and label arrays of another length than the recordings' or far longer than needed
    (they become Python strings, ten times their bytes)."""
    dtype = headers["audio"][1]
    if dtype.kind not in "if" or dtype.itemsize > 8:
        raise DataError(f"{name}: the array 'audio' holds {dtype} values; store int16, int32 or float32 samples")
    for key in ("offsets", "digit", "speaker", "take"):
        if key in headers and headers[key][1].kind not in "biuf":
            raise DataError(f"{name}: the array {key!r} holds {headers[key][1]} values; store whole numbers")
    if headers["sample_rate"][1].kind not in "iuf":
        raise DataError(f"{name}: the array 'sample_rate' holds {headers['sample_rate'][1]} values; store the rate "
                        "in Hz, one whole number")
    if count < 1:  # not a layout of recordings: reading it says why
        return
    for key in ("files", "digit", "speaker", "take"):
        if key in headers and math.prod(headers[key][0]) != count:
            raise DataError(f"{name}: {key!r} holds {math.prod(headers[key][0]):,} entries for {count:,} "
                            "recording(s); give one per recording")
    if "speaker_names" in headers and math.prod(headers["speaker_names"][0]) > _NPZ_NAMES:
        raise DataError(f"{name}: 'speaker_names' holds {math.prod(headers['speaker_names'][0]):,} names, more than "
                        f"the {_NPZ_NAMES:,} an archive may hold; name only the speakers of its recordings")


def _archive_rate(path: Path, name: str) -> float | None:
    """The one number of an archive's ``sample_rate`` (None where it cannot be read: reading it says why),
    refused where it is no rate at all (NaN, infinite, out of range)."""
    import numpy as np

    from oddkit.data.audio import MAX_SAMPLE_RATE

    try:
        with np.load(path, allow_pickle=False) as archive:
            rate = float(np.asarray(archive["sample_rate"]).reshape(-1)[0])
    except Exception:  # noqa: BLE001 - reading the archive says what is wrong
        return None
    if not math.isfinite(rate):
        raise DataError(f"{name}: 'sample_rate' is {rate:g}; store the rate in Hz, one whole number")
    if not 1 <= rate <= MAX_SAMPLE_RATE:
        raise DataError(f"{name}: 'sample_rate' is {rate:g} Hz; oddkit reads recordings at 1 to "
                        f"{MAX_SAMPLE_RATE:,} Hz")
    return rate


def _declared_archive(path: Path, name: str, model_rate: int, limits: Limits) -> tuple[int, int]:
    """How many recordings and samples an ``.npz`` of recordings declares (its headers; only its one-number
    ``sample_rate`` is read), checked against the limits on samples and on its other arrays."""
    headers = _npy_headers(path, name)
    if "audio" not in headers or "sample_rate" not in headers:
        raise DataError(f"{name}: an archive of recordings needs the arrays 'audio' and 'sample_rate' (and 'offsets' "
                        f"when 'audio' holds the recordings end to end), found {sorted(headers)}")
    shape = headers["audio"][0]
    samples = math.prod(shape)
    if "offsets" in headers:
        count = max(0, math.prod(headers["offsets"][0]) - 1)
    else:
        count = shape[0] if len(shape) == 2 else 0
    other = sum(math.prod(s) * d.itemsize for key, (s, d) in headers.items() if key != "audio")
    if other > _NPZ_OTHER_BYTES:
        raise ServiceLimitError(f"{name}: its arrays other than 'audio' declare {other:,} bytes, over the service's "
                                f"limit of {_NPZ_OTHER_BYTES:,}; send fewer recordings per archive")
    _check_archive_arrays(headers, name, count)
    rate = _archive_rate(path, name) if math.prod(headers["sample_rate"][0]) == 1 else None
    at_model_rate = math.ceil(samples / int(rate) * model_rate) if rate is not None else 0
    return count, max(samples, at_model_rate)


def is_archive(data: bytes, filename: str | None) -> bool:
    """Whether an upload is an ``.npz`` archive (a zip file, or a file name ending in .npz)."""
    return data[:4] == b"PK\x03\x04" or (filename or "").lower().endswith(".npz")


def recordings_from_uploads(detector, uploads: list[tuple[bytes, str | None, bool]], limits: Limits):
    """The recordings of a request: each upload ``(data, name, archive)`` a WAV/FLAC recording or (``archive``)
    an ``.npz`` of recordings, in order; ``name`` is the uploaded file's name (None for a body).

    What every file declares is checked against the limits (recordings, samples, length of one recording) before
    any sample is decoded; then each file is read by :func:`oddkit.data.audio.read_audio` and resampled to the
    model's rate. Returns an :class:`~oddkit.data.audio.AudioData` at the model's rate whose ``source_rates``
    hold each recording's rate as sent, and whose ``file`` labels name the recordings (None for a body)."""
    import numpy as np
    import pandas as pd

    from oddkit.data.audio import AudioData, read_audio

    model_rate, _ = recording_rate_and_band(detector)
    waves, files, rates = [], [], []
    with tempfile.TemporaryDirectory(prefix="oddkit-serve-") as folder:
        planned, count, samples = [], 0, 0
        for i, (data, filename, archive) in enumerate(uploads):
            name = filename or "the body"
            if not data:
                raise EmptyDataError(f"{name} is empty (0 bytes); send a WAV or FLAC recording, or an .npz of "
                                     "recordings")
            suffix = ".npz" if archive else ".flac" if data[:4] == b"fLaC" else ".wav"
            path = Path(folder) / f"upload{i}{suffix}"
            path.write_bytes(data)
            uploads[i] = (b"", filename, archive)  # the file holds it now
            if archive:
                n, declared = _declared_archive(path, name, model_rate, limits)
            else:
                n, declared = 1, _declared_audio(path, name, model_rate, limits)
            count, samples = count + n, samples + declared
            check_count(count, limits.max_rows, "recordings")
            if samples > limits.max_samples:
                raise ServiceLimitError(f"the request's recordings declare {samples:,} samples (as sent, or at the "
                                        f"model's {model_rate:,} Hz where that is more) by the end of {name}, over "
                                        f"the service's limit of {limits.max_samples:,} samples per request; send "
                                        "fewer or shorter recordings per request (or start the service with a larger "
                                        "--max-samples)")
            planned.append((path, filename, archive))
        for path, filename, archive in planned:
            name = filename or "the body"
            try:
                recordings = read_audio(path)
            except OddkitError as exc:
                raise type(exc)(_replace_path(str(exc), path, name)) from None
            except (ValueError, TypeError, OverflowError) as exc:  # the file is all it read: the client's fault
                problem = _replace_path(str(exc), path, name)[:200]
                fix = ("send numpy.savez's file with the arrays 'audio', 'offsets' and 'sample_rate'" if archive
                       else "send a WAV or FLAC recording")
                raise UnreadableAudioError(f"{name}: cannot be read as {'an archive of ' if archive else ''}"
                                           f"recordings ({type(exc).__name__}: {problem}); {fix}") from None
            labels = [str(f).replace(path.name, filename or "body") for f in recordings.labels["file"]]
            if archive:  # the archive's recordings' own lengths, known once read (before any resampling)
                long = np.flatnonzero(recordings.durations() > limits.max_recording_seconds)
                if long.size:
                    raise ServiceLimitError(
                        f"recording {labels[long[0]]!r} of {name} lasts {recordings.durations()[long[0]]:,.1f} s, over "
                        f"the service's limit of {limits.max_recording_seconds:g} s per recording; send shorter "
                        "recordings (or start the service with a larger --max-recording-seconds)")
            else:
                labels = [filename]
            rates += [recordings.sample_rate] * len(recordings)
            waves += recordings.resampled(model_rate).waveforms
            files += labels
            del recordings
    return AudioData(waves, model_rate, pd.DataFrame({"file": pd.Series(files, dtype=object),
                                                      "group": [""] * len(files)}), source_rates=rates)


# -- recordings out ------------------------------------------------------------------------------------------

def _rate_warnings(detector, rates) -> list[str]:
    """One sentence when some recordings came at another rate than the model's, saying whether the model's
    band is one resampling alters (the library's rule, :func:`oddkit.data.audio_features.warn_if_resampled`)."""
    import numpy as np

    from oddkit.data.audio_features import BANDWIDTH

    model_rate, band = recording_rate_and_band(detector)
    other = rates != model_rate
    if not other.any():
        return []
    found = ", ".join(f"{int(r):,} Hz" for r in np.unique(rates[other])[:3])
    text = (f"{int(other.sum()):,} of {len(rates):,} recordings came at another rate ({found}) and were resampled "
            f"to the model's {model_rate:,} Hz")
    if (band > BANDWIDTH * np.minimum(rates[other], model_rate) / 2 + 1e-9).any():
        text += (f"; the model analyses up to {band:,.0f} Hz, into the band resampling alters, so their scores can "
                 f"differ from those of the same sounds recorded at {model_rate:,} Hz")
    return [text]


def score_recordings(detector, recordings, explain: bool = False, watch=None) -> bytes:
    """The answer of ``POST /score`` for recordings (an :class:`~oddkit.data.audio.AudioData` at the model's
    rate; its ``source_rates``, when set, are the rates the recordings came at): ``{"rows": [{"file", "score",
    "label", "probability", "sample_rate", "resampled"(, "explanation")}], "threshold", "detector",
    "sample_rate", "warnings"}``. The scores are ``detector.decision_function`` of the recordings, all at once;
    an explanation is :func:`oddkit.data.audio_features.explain_recordings`'s row for the recording."""
    import numpy as np

    from oddkit.data.audio import AudioData
    from oddkit.data.audio_features import explain_recordings, explained_features

    if explain and explained_features(detector) is None:
        raise _explain_refused(detector, "scores a recording as a whole, with no split of its score per mel band "
                                         "or coefficient")
    model_rate, _ = recording_rate_and_band(detector)
    rates = recordings.rates_read()
    # The library's own ResampledAudioWarning would go to the service's log on every such request: the answer
    # says it instead (the recordings are at the model's rate; their rates as sent are kept in 'rates').
    plain = AudioData(recordings.waveforms, recordings.sample_rate, recordings.labels)
    scores = detector.decision_function(plain)
    probabilities = detector.proba_from_scores(scores)[:, 1]
    labels = (scores >= detector.threshold_).astype(int)
    names = shares = None
    if explain:
        table = explain_recordings(detector, plain)
        names, shares = [str(c) for c in table.columns], table.to_numpy(dtype=np.float64)
        del table
    files = recordings.labels["file"].tolist()
    answer = io.BytesIO()
    answer.write(b'{"rows": [')
    separator = b""
    for start in range(0, len(scores), _RECORDING_CHUNK):
        stop = start + _RECORDING_CHUNK
        rows = [{"file": f, "score": s, "label": lab, "probability": p, "sample_rate": r, "resampled": r != model_rate}
                for f, s, lab, p, r in zip(files[start:stop], scores[start:stop].tolist(),
                                           labels[start:stop].tolist(), probabilities[start:stop].tolist(),
                                           rates[start:stop].tolist())]
        if shares is not None:
            for row, values in zip(rows, shares[start:stop].tolist()):
                row["explanation"] = dict(zip(names, values))
        answer.write(separator + json.dumps(rows, allow_nan=False)[1:-1].encode("utf-8"))
        separator = b", "
    tail = json.dumps({"threshold": float(detector.threshold_), "detector": type(detector).__name__,
                       "sample_rate": model_rate, "warnings": _rate_warnings(detector, rates)})
    answer.write(b"], " + tail[1:].encode("utf-8"))
    if watch is not None:
        watch(plain, scores)
    return answer.getvalue()


# -- the OpenAPI schema --------------------------------------------------------------------------------------

def openapi_models(detector, kind: str, limits: Limits):
    """The JSON body's type (None for recordings, which come as files) and the answer's pydantic model, for a
    model trained on texts or on recordings."""
    from typing import Annotated, Optional, Union

    from pydantic import BaseModel, ConfigDict, Field

    if kind == "texts":
        column = text_column(detector)
        Text = Annotated[str, Field(min_length=1, max_length=limits.max_text_chars,
                                    description="A message: a non-empty string, not blank.")]
        Texts = Annotated[list[Text], Field(min_length=1, max_length=limits.max_rows)]

        class TextsBody(BaseModel):
            model_config = ConfigDict(extra="forbid")
            texts: Texts = Field(description=f"The texts to score, in order (a file of texts holds them in the "
                                             f"column {column!r}).")

        class TokenShares(BaseModel):
            token: list[str] = Field(description="Each token of the text as the tokenizer split it (its beginning "
                                                 "where the model reads a text's first tokens); '[EOS]' is the end "
                                                 "of the text, '[UNK]' a token never seen in training.")
            word_index: list[int] = Field(description="The whitespace-separated word of the text each token belongs "
                                                      "to (0 = the first).")
            word: list[str] = Field(description="That word, as written in the text.")
            contribution: list[float] = Field(description="The token's part of the score: they add up to the score "
                                                          "(before the model's out-of-range floor).")
            share: list[float] = Field(description="The token's contribution divided by their sum: they add up "
                                                   "to 1.")

        class TextScore(BaseModel):
            score: float = Field(description="Anomaly score: higher = more anomalous.")
            label: int = Field(description="1 = anomaly (score >= threshold), 0 = normal.")
            probability: float = Field(description="Probability of being an anomaly (detector.predict_proba).")
            explanation: Optional[TokenShares] = Field(None, description="With ?explain=true: the text's tokens "
                                                                         "and their parts of its score "
                                                                         "(detector.explain), as columns.")

        class TextScoreResponse(BaseModel):
            rows: list[TextScore]
            threshold: float
            detector: str

        return Union[TextsBody, Texts], TextScoreResponse

    class RecordingScore(BaseModel):
        file: Optional[str] = Field(description="The uploaded file's name (an archive's recordings: their names "
                                                "in it, or NAME[i], body[i] for an archive sent as the body); null "
                                                "for a recording sent as the body.")
        score: float = Field(description="Anomaly score: higher = more anomalous.")
        label: int = Field(description="1 = anomaly (score >= threshold), 0 = normal.")
        probability: float = Field(description="Probability of being an anomaly (detector.predict_proba).")
        sample_rate: int = Field(description="The rate the recording came at, in Hz.")
        resampled: bool = Field(description="It came at another rate than the model's and was resampled to it "
                                            "('warnings' says whether that can change its score).")
        explanation: Optional[dict[str, float]] = Field(None, description="With ?explain=true: the share of the "
                                                                          "score each mel band or coefficient "
                                                                          "carries (explain_recordings).")

    class RecordingScoreResponse(BaseModel):
        rows: list[RecordingScore]
        threshold: float
        detector: str
        sample_rate: int = Field(description="The model's rate, in Hz: every recording is scored at it.")
        warnings: list[str] = Field(description="What the client should know about the scores, e.g. recordings "
                                                "resampled to the model's rate.")

    return None, RecordingScoreResponse
