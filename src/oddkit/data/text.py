"""Text in: reading messages, a tokenizer fitted on the training texts, and a toy language.

- :func:`read_texts` reads texts (and, where the source has them, anomaly labels) from a list of
  strings, a pandas Series, a table file with a text column (CSV, TSV, Parquet), or the headerless
  ``label<TAB>text`` layout of the SMS Spam Collection.
- :class:`TextTokenizer` wraps Hugging Face ``tokenizers``: a subword (byte-pair encoding) or a
  word-level vocabulary learned from the training texts. It is saved as the library's own JSON
  (plain text, no pickle), which a model folder stores beside its weights.
- :func:`synthetic_corpus` samples a tiny toy language (sentences from a small grammar) and
  malformed sentences (shuffled word order, foreign tokens), for tests and demos.

``tokenizers`` is an optional dependency (``pip install 'oddkit[text]'``), imported only when a
tokenizer is fitted or loaded, so ``import oddkit`` stays fast.
"""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oddkit.data.io import (_check_labels, arrow_frame, first_invalid_utf8_row, invalid_utf8_column,
                            parquet_columns, preview)
from oddkit.exceptions import (ColumnMismatchError, DataError, EmptyDataError, LabelError,
                               MissingDependencyError, ParameterError)

__all__ = [
    "SPECIAL_TOKENS",
    "TEXT_FORMATS",
    "TextPreprocessor",
    "TextTokenizer",
    "read_text_table",
    "read_texts",
    "synthetic_corpus",
    "texts_of",
]

TEXT_FORMATS = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".parquet", ".pq")
"""File name endings :func:`read_texts` understands (case-insensitive)."""

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")
"""The special tokens every :class:`TextTokenizer` holds, with ids 0, 1, 2, 3 in this order."""

_SMS_ANOMALY = "spam"
_SMS_NAMES = ("ham", "spam")
"""The labels of the headerless ``label<TAB>text`` layout (the SMS Spam Collection's)."""
_INSTALL = "pip install 'oddkit[text]'"


# -- reading --------------------------------------------------------------------------------------

def _text_format(path: Path) -> str:
    name = path.name.lower()
    for ending, fmt in ((".csv.gz", "csv"), (".csv", "csv"), (".tsv.gz", "tsv"), (".tsv", "tsv"),
                        (".txt", "tsv"), (".parquet", "parquet"), (".pq", "parquet")):
        if name.endswith(ending):
            return fmt
    raise DataError(f"cannot read texts from {path}: unknown file type {path.suffix or '(no suffix)'!r}; "
                    f"save it as one of {', '.join(TEXT_FORMATS)}")


def _check_texts(values: Sequence[Any], source: str, line_of=None) -> list[str]:
    """Every entry must be a non-blank string; name the first rows that are not.

    ``line_of``, for a file, is a callable giving each entry's line in the file (1-based, the
    header counted): the message then names lines instead of rows. It is called on failure only."""
    texts = list(values)
    if not texts:
        raise EmptyDataError(f"{source} holds no texts; pass at least one message")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        first = texts[bad[0]]
        missing = first is None or (isinstance(first, float) and np.isnan(first))
        what = ("an empty or blank string" if isinstance(first, str) or (missing and line_of is not None)
                else f"a {type(first).__name__} ({first!r})")
        lines = line_of() if line_of is not None else None
        if lines is not None and len(lines) == len(texts):
            numbers = [lines[i] for i in bad]
            raise DataError(
                f"{source}: {len(bad):,} {'message is' if len(bad) == 1 else 'messages are'} empty or blank "
                f"(first lines: {preview(numbers)}; "
                f"line {numbers[0]} is {what}); every line needs a message: drop or fill those lines")
        raise DataError(
            f"{source}: {len(bad):,} entries are not non-empty strings (first rows: {preview(bad)}; "
            f"row {bad[0]} is {what}); every row needs a message: drop or fill those rows")
    broken = [i for i, t in enumerate(texts) if not t.isascii() and not _encodes(t)]
    if broken:
        raise DataError(
            f"{source}: {len(broken):,} entries hold characters that are not valid Unicode text (lone surrogates, "
            f"e.g. from bytes decoded with errors='surrogateescape'; first rows: {preview(broken)}); decode the "
            "bytes as UTF-8 with errors='replace', or drop those rows")
    return texts


def _encodes(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (a lone surrogate cannot: tokenizers refuse it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _anomaly_flags(values: pd.Series, name: str, source: str, anomaly_label: Any,
                   require_positive: bool = True) -> np.ndarray:
    """Labels as int8 0/1: numeric 0/1 columns as they are, other values compared with
    ``anomaly_label`` (1 where equal)."""
    if anomaly_label is None:
        return _check_labels(values.reset_index(drop=True), name, Path(source))
    missing = np.flatnonzero(values.isna().to_numpy())
    if missing.size:
        raise LabelError(f"label column {name!r} in {source} has {missing.size:,} missing values "
                         f"(first rows: {preview(missing)}); every row needs a label")
    flags = (values.astype(str).to_numpy() == str(anomaly_label)).astype(np.int8)
    if require_positive and not flags.any():
        raise LabelError(f"label column {name!r} in {source} never holds the anomaly label {anomaly_label!r} "
                         f"(its values: {preview(pd.unique(values))}); name the value that marks an anomaly")
    return flags


_NO_FIELD_LIMIT = 2**31 - 1
"""csv's field size limit once oddkit has read a text file (a message may be longer than csv's default
of 131,072 characters; pandas, which reads the rest, has no such limit). The largest value every
platform's C long holds."""

_FIELD_LIMIT_LOCK = threading.Lock()


def _lift_field_limit() -> None:
    """Let Python's csv module read fields of any length, from now on.

    csv's field size limit is one value for the whole process: no reader takes its own. Raising it
    for a read and putting back what was found raced between threads: a read that ended put the
    default back while another was inside a long field ('field larger than field limit'), or the last
    to end left the limit raised anyway. So it is only ever raised, to one fixed value, and never put
    back: concurrent reads all want that value and none undoes another's (the lock keeps the check and
    the raise together; should other code lower it again, the next read raises it again). It is raised
    at the first read of a text file, not at import, so that ``import oddkit`` leaves csv as it is.
    What the limit guards against, an unbalanced quote swallowing the rest of a file into one field,
    is no worse here: pandas, which reads the whole file next, has no such limit, and the service
    bounds the size of a file before reading it. Parsing these lines with pandas or pyarrow instead
    was not taken: the line on which each record starts (:func:`_record_lines`) is csv's
    ``line_num``, and pandas skips blank lines without saying where."""
    if csv.field_size_limit() < _NO_FIELD_LIMIT:
        with _FIELD_LIMIT_LOCK:
            if csv.field_size_limit() < _NO_FIELD_LIMIT:
                csv.field_size_limit(_NO_FIELD_LIMIT)


def _open_text(path: Path):
    """A text file (gzip-compressed when its name ends in .gz) opened for reading as UTF-8, a leading
    byte-order mark dropped (Excel and Notepad write one)."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8-sig", newline="")


def _read_sms_layout(path: Path, known: Sequence[str]) -> pd.DataFrame:
    """The headerless ``label<TAB>text`` layout: the first tab separates label and text (a text may
    hold further tabs); every label must be one of ``known``. Blank lines are skipped. The frame's
    ``attrs["lines"]`` holds each message's line number (1-based)."""
    labels, texts, lines = [], [], []
    allowed = " or ".join(repr(k) for k in known)
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            label, tab, text = line.partition("\t")
            if not tab:
                raise DataError(f"line {number} of {path} has no tab; the headerless layout is "
                                "'label<TAB>text' on every line (or give the file a header row and name "
                                "the text column with text_col)")
            label = label.strip()
            if label not in known:
                raise DataError(f"line {number} of {path} starts with {preview([label])}, not a label of the "
                                f"headerless 'label<TAB>text' layout ({allowed}); fix that line, or give the file "
                                "a header row and name the text column with text_col")
            labels.append(label)
            texts.append(text)
            lines.append(number)
    frame = pd.DataFrame({"label": labels, "text": texts})
    frame.attrs["lines"] = lines
    return frame


def _blank(row: list[str]) -> bool:
    """Whether a csv row is a blank line (or a line of spaces), which pandas skips."""
    return not row or (len(row) == 1 and not row[0].strip())


def _first_fields(path: Path, delimiter: str) -> list[str]:
    """The fields of the first line that is not blank (a field may be of any length)."""
    _lift_field_limit()
    with _open_text(path) as handle:
        for row in csv.reader(handle, delimiter=delimiter):
            if not _blank(row):
                return [field.strip() for field in row]
    return []


def _record_lines(path: Path, delimiter: str) -> list[int]:
    """The line (1-based, the header counted) on which each data row of a delimited file starts, as
    pandas reads them: blank lines (or lines of spaces) are no rows; a quoted field may span lines."""
    starts = []
    _lift_field_limit()
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        end = 0
        for row in reader:
            start, end = end + 1, reader.line_num
            if not _blank(row):
                starts.append(start)
    return starts[1:]


def _line_numbers(frame: pd.DataFrame, path: Path, fmt: str, sms: bool):
    """A callable giving the file line of each row of ``frame`` (None for Parquet, which has no lines)."""
    if sms:
        return lambda: frame.attrs.get("lines")
    if fmt == "parquet":
        return None
    return lambda: _record_lines(path, "\t" if fmt == "tsv" else ",")


_Needed = Callable[[list[str]], tuple[list[str], str]]
"""Given every column of a table, the columns to read (in the file's order) and the text column among them;
raises the error a missing column gets."""


def _not_utf8(path: Path, name: str, column) -> DataError:
    """The error for a Parquet column holding bytes that are not UTF-8, naming the column and its first such
    row (found only here, once the column is known to hold one)."""
    row = first_invalid_utf8_row(column)
    where = f", first in row {row:,}" if row is not None else ""
    return DataError(f"{path}: its texts cannot be read (column {name!r} holds bytes that are not valid UTF-8"
                     f"{where}); store each text as a string of valid UTF-8")


def _binary_text_as_strings(table, text_name: str, path: Path):
    """``table`` with its text column, if a writer stored it as plain binary (no UTF-8 annotation), as strings;
    bytes that are not UTF-8 are refused by the column's name. (String columns are checked by
    :func:`~oddkit.data.io.arrow_frame`.)"""
    import pyarrow as pa

    is_binary_view = getattr(pa.types, "is_binary_view", lambda t: False)
    for i, field in enumerate(table.schema):
        kind = field.type
        if field.name == text_name and (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
                                        or is_binary_view(kind)):
            target = pa.large_string() if pa.types.is_large_binary(kind) else pa.string()
            try:
                table = table.set_column(i, field.name, table.column(i).cast(target))
            except pa.ArrowInvalid:
                raise _not_utf8(path, field.name, table.column(i)) from None
    return table


def _read_parquet_texts(path: Path, needed: _Needed) -> tuple[pd.DataFrame, list[str]]:
    """A Parquet file's needed columns as a frame, and all its columns (for the messages on a missing one).

    Only the columns ``needed`` names are read (Parquet stores each column apart: the others are never
    decompressed); its errors on a missing column come from the file's schema, before any data is read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    errors = (OSError, ValueError, pa.ArrowException)

    def unreadable(exc: Exception) -> DataError:
        detail = " ".join(str(exc).split())  # pyarrow's messages may span lines (a schema); an error is one
        return DataError(f"cannot read {path} as Parquet ({type(exc).__name__}: {detail})")

    try:
        columns = parquet_columns(pq.read_schema(path))
    except errors as exc:
        raise unreadable(exc) from None
    wanted, text_name = needed(columns)
    try:
        table = pq.read_table(path, columns=wanted)
    except errors as exc:
        raise unreadable(exc) from None
    table = _binary_text_as_strings(table, text_name, path)
    try:
        return arrow_frame(table), columns
    except DataError as exc:  # a string column that is not UTF-8 (arrow_frame checks them), or damaged metadata
        bad = invalid_utf8_column(table)
        raise (unreadable(exc) if bad is None else _not_utf8(path, *bad)) from None
    except errors as exc:
        raise unreadable(exc) from None


def _read_text_frame(path: Path, fmt: str, text_col: str | None, sms_labels: Sequence[str] = _SMS_NAMES,
                     needed: _Needed | None = None) -> tuple[pd.DataFrame, bool, list[str]]:
    """The file as a frame, whether it is the headerless SMS layout, and every column of the file.

    A TSV file is in that layout when its first line holds no column ``text_col`` (``"text"`` when
    None) and starts with one of ``sms_labels``; a first line that does neither is an error, never
    read as a message. Of a Parquet file only the columns ``needed`` names are read (the text column
    alone when None). A CSV or TSV file is read whole: pandas' ``usecols`` drops the fields of a line
    beyond the header's without a word (an unquoted comma in a message, 'hello, world' read as
    'hello'), where reading every column refuses that line."""
    if fmt == "parquet":
        if needed is None:
            def needed(columns):
                name = _pick_text_col(columns, text_col, str(path))
                return [name], name

        frame, columns = _read_parquet_texts(path, needed)
        return frame, False, columns
    delimiter = "\t" if fmt == "tsv" else ","
    try:
        header = _first_fields(path, delimiter)
    except UnicodeDecodeError as exc:
        raise DataError(f"cannot read {path} as UTF-8 text ({exc}); save it as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"cannot read the first line of {path} ({exc}); save it as UTF-8 "
                        f"{'tab' if fmt == 'tsv' else 'comma'}-separated text") from None
    if not header:
        raise EmptyDataError(f"{path} holds only blank lines; pass a file with at least one message")
    if fmt == "tsv" and (text_col or "text") not in header:
        if text_col not in (None, "text"):
            raise ColumnMismatchError(
                f"text column {text_col!r} not found in {path}; its first line is {preview(header, limit=10)}. "
                "Name the right column, or use the headerless 'label<TAB>text' layout, whose columns are "
                "'label' and 'text'")
        if header[0] not in sms_labels:
            allowed = " or ".join(repr(k) for k in sms_labels)
            raise ColumnMismatchError(
                f"{path} has no text column 'text' and is not in the headerless 'label<TAB>text' layout: its first "
                f"line is {preview(header, limit=10)}, which names no 'text' column and does not start with "
                f"{allowed}. Call the messages' column 'text' in the header row or name it with text_col "
                f"(CLI: --text-col NAME), or write every line as LABEL<TAB>message with LABEL {allowed}")
        try:
            return _read_sms_layout(path, sms_labels), True, ["label", "text"]
        except UnicodeDecodeError as exc:
            raise DataError(f"cannot read {path} as UTF-8 text ({exc}); save it as UTF-8") from None
    try:
        frame = pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False, na_values=[""],
                            quoting=csv.QUOTE_MINIMAL, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise EmptyDataError(f"{path} holds no data; pass a file with a header and at least one row") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc}); save it as UTF-8 "
                        f"{'tab' if fmt == 'tsv' else 'comma'}-separated text with a header row") from None
    return frame, False, [str(c) for c in frame.columns]


def _pick_text_col(columns: Sequence[str], text_col: str | None, source: str) -> str:
    if text_col is not None:
        if text_col not in columns:
            raise ColumnMismatchError(f"text column {text_col!r} not found in {source}; its columns are "
                                      f"{preview(columns, limit=20)}. Name the right one with text_col")
        return text_col
    if "text" in columns:
        return "text"
    if len(columns) == 1:
        return columns[0]
    raise ColumnMismatchError(f"{source} has several columns ({preview(columns, limit=20)}) and none is named "
                              "'text'; name the text column with text_col (CLI: --text-col NAME)")


def read_texts(path_or_obj: Any, text_col: str | None = None, label_col: str | None = None,
               anomaly_label: Any = None) -> tuple[list[str], np.ndarray | None]:
    """Read messages, and their anomaly labels where the source has them.

    Parameters
    ----------
    path_or_obj : str, pathlib.Path, list of str, pandas.Series or pandas.DataFrame
        The texts: a list (or tuple, or array) of strings; a Series of strings; a DataFrame with a
        text column; or a file: CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) with a
        header row, TSV (``.tsv``, ``.txt``) either with a header row holding ``text_col`` or in the
        headerless ``label<TAB>text`` layout of the SMS Spam Collection (one message per line, the
        first tab separates label and text).
    text_col : str or None, default None
        The column holding the texts. None takes the column ``"text"``, or the only column. A TSV
        file whose first line does not hold this column (``"text"`` when None) is read in the
        headerless layout, whose columns are ``"label"`` and ``"text"``, if that line starts with
        ``ham`` or ``spam`` (or ``anomaly_label``); otherwise :class:`ColumnMismatchError` names the
        line (a header without the text column is never read as a message).
    label_col : str or None, default None
        An anomaly label column (1 = anomaly, 0 = normal), or a column of class names together with
        ``anomaly_label``. None reads no labels from a table. The headerless layout always yields
        labels: every line's label must be ``ham`` or ``spam`` (or ``anomaly_label``); ``spam`` (or
        ``anomaly_label`` when given) = 1, the others = 0.
    anomaly_label : str or None, default None
        The value of ``label_col`` that marks an anomaly, when the labels are names, not 0/1.

    Returns
    -------
    texts : list of str
    labels : numpy.ndarray of int8, or None
        1 = anomaly, 0 = normal; None when no labels were read.

    Raises
    ------
    DataError
        A missing file, unknown format, unreadable content, a headerless line whose label is not
        ``ham`` or ``spam``, or an entry that is empty, blank or not a string (the message names the
        rows; for a CSV or TSV file the lines, 1-based, the header counted).
    ColumnMismatchError
        The text or label column is not in the table, or a TSV file whose first line is neither a
        header with the text column nor a headerless ``label<TAB>text`` line.
    LabelError
        Labels that are neither 0/1 nor compared with ``anomaly_label``.

    Notes
    -----
    Files are read as UTF-8; a leading byte-order mark (as Excel and Notepad write) is dropped.
    Of a Parquet file only the text and label columns are read; a text column stored as plain binary
    (no UTF-8 annotation) is read as UTF-8, and bytes that are not UTF-8 are an error naming the column.
    Blank lines (empty, or spaces only) are skipped in every CSV and TSV layout; a line with an
    empty text field is an error. A field may be of any length.

    Examples
    --------
    >>> read_texts(["free prize now", "see you at noon"])
    (['free prize now', 'see you at noon'], None)
    >>> texts, y = read_texts("sms_spam_collection.tsv")  # doctest: +SKIP
    """
    if isinstance(path_or_obj, (str, Path)) and not (isinstance(path_or_obj, str) and "\n" in path_or_obj):
        path = Path(path_or_obj)
        fmt = _text_format(path)
        if not path.is_file():
            raise DataError(f"{path} does not exist or is not a file; check the path "
                            f"(relative paths start from {Path.cwd()})")
        if path.stat().st_size == 0:
            raise EmptyDataError(f"{path} is empty (0 bytes); pass a file with at least one message")
        known = _SMS_NAMES if anomaly_label is None or str(anomaly_label) in _SMS_NAMES \
            else (*_SMS_NAMES, str(anomaly_label))

        def needed(columns: list[str]) -> tuple[list[str], str]:
            name = _pick_text_col(columns, text_col, str(path))
            return list(dict.fromkeys(c for c in columns if c in (name, label_col))), name

        frame, sms, listed = _read_text_frame(path, fmt, text_col, known, needed)
        source = str(path)
        if sms:
            if len(frame) == 0:
                raise EmptyDataError(f"{path} holds no messages")
            texts = _check_texts(frame["text"].tolist(), source, _line_numbers(frame, path, fmt, sms))
            return texts, _anomaly_flags(frame["label"], "label", source,
                                         _SMS_ANOMALY if anomaly_label is None else anomaly_label,
                                         require_positive=False)
        line_of = _line_numbers(frame, path, fmt, sms)
    elif isinstance(path_or_obj, pd.DataFrame):
        frame, source, line_of, listed = path_or_obj, "the DataFrame", None, None
    elif isinstance(path_or_obj, pd.Series):
        return _check_texts(path_or_obj.tolist(), "the Series"), None
    elif isinstance(path_or_obj, (list, tuple, np.ndarray)):
        return _check_texts(list(path_or_obj), "the list of texts"), None
    else:
        raise DataError(f"cannot read texts from a {type(path_or_obj).__name__}; pass a list of strings, a "
                        f"pandas Series or DataFrame, or the path of a {', '.join(TEXT_FORMATS)} file")
    columns = [str(c) for c in frame.columns]
    listed = columns if listed is None else listed  # a Parquet file's every column, of which some were read
    frame = frame.set_axis(columns, axis=1)
    if len(frame) == 0:
        raise EmptyDataError(f"{source} has a header but no rows; pass at least one message")
    name = _pick_text_col(listed, text_col, source)
    texts = _check_texts(frame[name].tolist(), f"text column {name!r} of {source}", line_of)
    labels = None
    if label_col is not None:
        if label_col not in columns:
            raise ColumnMismatchError(f"label column {label_col!r} not found in {source}; its columns are "
                                      f"{preview(listed, limit=20)}")
        values = frame[label_col]
        if anomaly_label is None and not pd.api.types.is_numeric_dtype(values):
            values = _numeric_or_same(values)
        labels = _anomaly_flags(values, label_col, source, anomaly_label)
    return texts, labels


def _numeric_or_same(values: pd.Series) -> pd.Series:
    """Text read as strings ("0", "1") back to numbers, so that 0/1 label columns pass the check."""
    converted = pd.to_numeric(values, errors="coerce")
    return converted if converted.notna().sum() == values.notna().sum() else values


# -- the tokenizer --------------------------------------------------------------------------------

def _import_tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise MissingDependencyError(
            f"text needs the Hugging Face 'tokenizers' library, which is not installed; run {_INSTALL}") from None
    return tokenizers


_KINDS = ("bpe", "word")


_ENCODE_CHUNK = 1024
"""Most texts tokenized at a time: each text's encoding (ids, offsets, token strings, masks) costs about 85
bytes per character, so a batch of 40,000 texts of 700 characters held 2.4 GB at once; chunks of this size
keep that to about 90 MB and give the same ids."""

_ENCODE_CHARS = 2_000_000
"""Most characters tokenized at a time (about 170 MB of encodings): 1,024 texts of 100,000 characters each
would otherwise hold some 8 GB at once. A longer text is tokenized alone."""


def _chunks(texts: list[str]):
    """``texts`` in consecutive slices of at most :data:`_ENCODE_CHUNK` texts and :data:`_ENCODE_CHARS`
    characters (a text longer than that alone), each as long as those limits allow."""
    start, n = 0, len(texts)
    while start < n:
        end, chars = start + 1, len(texts[start])
        while end < n and end - start < _ENCODE_CHUNK and chars + len(texts[end]) <= _ENCODE_CHARS:
            chars += len(texts[end])
            end += 1
        yield texts[start:end]
        start = end


def _encodings(tokenizer, texts: list[str]):
    """The Hugging Face encodings of ``texts``, chunk by chunk (:func:`_chunks`; each chunk is dropped once the
    caller has read it): a text's encoding does not depend on the others of its batch."""
    for chunk in _chunks(texts):
        yield from tokenizer.encode_batch(chunk, add_special_tokens=False)


class TextTokenizer:
    """A vocabulary learned from training texts: subword (byte-pair encoding) or whole words.

    A thin layer over Hugging Face ``tokenizers``. Texts are Unicode-normalised (NFKC) and, by
    default, lower-cased. ``"bpe"`` splits on whitespace (the Metaspace scheme of SentencePiece:
    a token that starts a word carries a leading ``"▁"``) and merges frequent character pairs into
    subwords, so an unseen word is still spelled out of known pieces. ``"word"`` keeps whole words
    and punctuation marks (a WordLevel model with a whitespace/punctuation pre-tokenizer), so each
    token is a readable word; a word outside the vocabulary becomes ``[UNK]``.

    The special tokens ``[PAD]``, ``[UNK]``, ``[BOS]``, ``[EOS]`` have ids 0, 1, 2, 3.

    Parameters
    ----------
    kind : {"bpe", "word"}, default "bpe"
        Subword or whole-word vocabulary.
    vocab_size : int, default 2000
        The largest vocabulary, special tokens included (at least 8).
    lowercase : bool, default True
        Lower-case texts before tokenizing.
    max_length : int or None, default None
        Keep at most this many tokens of a text (its beginning); None keeps all.
    min_frequency : int, default 1
        A word (``"word"``) or merge (``"bpe"``) must occur this often in the training texts.

    Attributes
    ----------
    vocab_size_ : int
        The size of the learned vocabulary, special tokens included.
    pad_id, unk_id, bos_id, eos_id : int
        The ids of the special tokens (0, 1, 2, 3).

    References
    ----------
    Sennrich, Haddow and Birch, "Neural machine translation of rare words with subword units",
    ACL 2016 (byte-pair encoding). Hugging Face tokenizers, https://github.com/huggingface/tokenizers.

    Examples
    --------
    >>> tok = TextTokenizer(kind="word").fit(["the cat sat", "the dog sat"])
    >>> tok.tokens("The cat sat!")
    ['the', 'cat', 'sat', '[UNK]']
    >>> tok.decode(tok.encode(["the dog sat"]))
    ['the dog sat']
    """

    pad_id = 0
    unk_id = 1
    bos_id = 2
    eos_id = 3

    def __init__(self, kind: str = "bpe", vocab_size: int = 2000, lowercase: bool = True,
                 max_length: int | None = None, min_frequency: int = 1):
        self.kind = kind
        self.vocab_size = vocab_size
        self.lowercase = lowercase
        self.max_length = max_length
        self.min_frequency = min_frequency

    def __repr__(self) -> str:
        return (f"TextTokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, lowercase={self.lowercase}, "
                f"max_length={self.max_length}, min_frequency={self.min_frequency})")

    def _validate(self) -> None:
        if self.kind not in _KINDS:
            raise ParameterError(f"kind={self.kind!r} is not a tokenizer kind; use one of "
                                 f"{', '.join(map(repr, _KINDS))}")
        for name, low in (("vocab_size", 8), ("min_frequency", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ParameterError(f"{name}={value!r} must be an integer of at least {low}")
        if self.max_length is not None and (isinstance(self.max_length, bool)
                                            or not isinstance(self.max_length, (int, np.integer))
                                            or self.max_length < 1):
            raise ParameterError(f"max_length={self.max_length!r} must be None or a positive integer")
        if not isinstance(self.lowercase, (bool, np.bool_)):
            raise ParameterError(f"lowercase={self.lowercase!r} must be True or False")

    def _build(self):
        tk = _import_tokenizers()
        from tokenizers import decoders, normalizers, pre_tokenizers, trainers
        from tokenizers.models import BPE, WordLevel

        steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if self.lowercase else [])
        specials = list(SPECIAL_TOKENS)
        if self.kind == "bpe":
            tokenizer = tk.Tokenizer(BPE(unk_token="[UNK]"))
            tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
            tokenizer.decoder = decoders.Metaspace()
            trainer = trainers.BpeTrainer(vocab_size=int(self.vocab_size), min_frequency=int(self.min_frequency),
                                          special_tokens=specials, show_progress=False)
        else:
            tokenizer = tk.Tokenizer(WordLevel(unk_token="[UNK]"))
            tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
            trainer = trainers.WordLevelTrainer(vocab_size=int(self.vocab_size),
                                                min_frequency=int(self.min_frequency),
                                                special_tokens=specials, show_progress=False)
        # Strip: leading/trailing whitespace would otherwise become tokens of their own under Metaspace.
        tokenizer.normalizer = normalizers.Sequence(steps + [normalizers.Strip()])
        return tokenizer, trainer

    def fit(self, texts, y=None) -> TextTokenizer:
        """Learn the vocabulary from ``texts``.

        Parameters
        ----------
        texts : list of str or pandas.Series
            The training texts (every entry a non-empty string).
        y : ignored

        Returns
        -------
        self : TextTokenizer
        """
        self._validate()
        texts, _ = read_texts(texts if not isinstance(texts, (str, Path)) else [texts])
        tokenizer, trainer = self._build()
        tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
        self._set_tokenizer(tokenizer)
        return self

    def _set_tokenizer(self, tokenizer) -> None:
        for token, expected in zip(SPECIAL_TOKENS, (self.pad_id, self.unk_id, self.bos_id, self.eos_id)):
            if tokenizer.token_to_id(token) != expected:
                raise DataError(f"tokenizer JSON maps {token} to id {tokenizer.token_to_id(token)}, not {expected}; "
                                "it was not written by oddkit's TextTokenizer")
        tokenizer.no_padding()
        if self.max_length is not None:
            tokenizer.enable_truncation(int(self.max_length))
        else:
            tokenizer.no_truncation()
        self.tokenizer_ = tokenizer
        self.vocab_size_ = int(tokenizer.get_vocab_size())

    def _fitted(self):
        tokenizer = getattr(self, "tokenizer_", None)
        if tokenizer is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this TextTokenizer is not fitted yet; call fit(texts) first")
        return tokenizer

    def encode(self, texts) -> list[list[int]]:
        """Token ids of each text, without ``[BOS]``/``[EOS]``, cut to ``max_length``.

        Parameters
        ----------
        texts : list of str or pandas.Series

        Returns
        -------
        list of list of int
            One list per text; may be empty for a text that normalises to nothing.
        """
        tokenizer = self._fitted()
        texts, _ = read_texts(texts)
        return [list(e.ids) for e in _encodings(tokenizer, texts)]

    def offsets(self, texts) -> list[list[tuple[int, int]]]:
        """Where each token of :meth:`encode` lies in its text: ``(start, end)`` character offsets
        into the original (un-normalised) text. A subword's span may include the space before it."""
        tokenizer = self._fitted()
        texts, _ = read_texts(texts)
        return [[tuple(o) for o in e.offsets] for e in _encodings(tokenizer, texts)]

    def words(self, texts) -> list[list[int]]:
        """For each token of :meth:`encode`, the index of the whitespace-separated word of its text it
        belongs to (a bare word-start marker belongs to the word after it)."""
        import re

        texts, _ = read_texts(texts)
        out = []
        for text, offsets in zip(texts, self.offsets(texts)):
            ends = [m.end() for m in re.finditer(r"\S+", text)]
            row = []
            for start, _end in offsets:
                while start < len(text) and text[start].isspace():
                    start += 1
                row.append(next((i for i, end in enumerate(ends) if end > start), max(len(ends) - 1, 0)))
            out.append(row)
        return out

    def tokens(self, text: str) -> list[str]:
        """The tokens of one text as strings (as :meth:`encode` splits it)."""
        tokenizer = self._fitted()
        (text,), _ = read_texts([text])
        return list(tokenizer.encode(text, add_special_tokens=False).tokens)

    def id_to_token(self, index: int) -> str:
        """The token string of one id."""
        token = self._fitted().id_to_token(int(index))
        if token is None:
            raise DataError(f"token id {index} is outside the vocabulary (0 to {self.vocab_size_ - 1})")
        return token

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Texts from lists of token ids (special tokens are dropped).

        Parameters
        ----------
        ids : list of list of int

        Returns
        -------
        list of str
        """
        tokenizer = self._fitted()
        rows = [[int(i) for i in row] for row in ids]
        for number, row in enumerate(rows):
            bad = [i for i in row if not 0 <= i < self.vocab_size_]
            if bad:
                raise DataError(f"row {number} holds token ids outside the vocabulary (0 to {self.vocab_size_ - 1}): "
                                f"{preview(bad)}")
        return list(tokenizer.decode_batch(rows, skip_special_tokens=True))

    def to_json(self) -> str:
        """The fitted tokenizer as the ``tokenizers`` library's own JSON (plain text; no code)."""
        return self._fitted().to_str()

    @classmethod
    def from_json(cls, text: str) -> TextTokenizer:
        """A fitted tokenizer from :meth:`to_json`'s output.

        The parameters are read back from the JSON: ``kind`` from its model, ``lowercase`` from its
        normaliser, ``max_length`` from its truncation, ``vocab_size`` as the learned size.

        Raises
        ------
        DataError
            Text that is not such a JSON document, or one whose normaliser, pre-tokeniser,
            post-processor, decoder or model options differ from what :meth:`fit` builds.
        """
        tk = _import_tokenizers()
        try:
            document = json.loads(text)
            tokenizer = tk.Tokenizer.from_str(text)
        except Exception as exc:  # noqa: BLE001 - json and the Rust parser raise several types
            raise DataError(f"not a tokenizer JSON document ({type(exc).__name__}: {exc})") from None
        model = (document.get("model") or {}).get("type")
        kinds = {"BPE": "bpe", "WordLevel": "word"}
        if model not in kinds:
            raise DataError(f"tokenizer JSON holds a {model!r} model; oddkit's TextTokenizer writes BPE or WordLevel")
        normalizer = json.dumps(document.get("normalizer"))
        truncation = document.get("truncation") or {}
        self = cls(kind=kinds[model], vocab_size=max(int(tokenizer.get_vocab_size()), 8),
                   lowercase='"Lowercase"' in normalizer, max_length=truncation.get("max_length"))
        self._validate()
        # Everything but the learned vocabulary (and merges) must be what _build makes: a pipeline step
        # is code of a kind (a pre-tokenizer's regular expression can panic the Rust library mid-score).
        built = json.loads(self._build()[0].to_str())
        learned = ("vocab", "merges")
        for part in ("normalizer", "pre_tokenizer", "post_processor", "decoder", "model"):
            mine, theirs = built.get(part), document.get(part)
            if part == "model" and isinstance(theirs, dict):
                mine = {k: v for k, v in mine.items() if k not in learned}
                theirs = {k: v for k, v in theirs.items() if k not in learned}
            if mine != theirs:
                raise DataError(f"tokenizer JSON has a {part} that oddkit's TextTokenizer never writes")
        self._set_tokenizer(tokenizer)
        return self


# -- a toy language -------------------------------------------------------------------------------

_DETERMINERS = ("the", "a", "every", "my", "your")
_ADJECTIVES = ("small", "big", "red", "quiet", "happy", "old", "green")
_NOUNS = ("cat", "dog", "bird", "child", "teacher", "farmer", "horse", "girl", "boy", "doctor")
_VERBS = ("sees", "likes", "follows", "feeds", "helps", "finds", "calls", "watches")
_PLACES = ("garden", "park", "house", "market", "river", "school")
_PREPOSITIONS = ("in", "near", "behind")
_FOREIGN = ("zorp", "qwix", "blarg", "xxv", "9731", "vrunk", "plif", "@@", "kzt", "ummagum")


def _noun_phrase(rng: np.random.Generator) -> list[str]:
    words = [str(rng.choice(_DETERMINERS))]
    if rng.random() < 0.5:
        words.append(str(rng.choice(_ADJECTIVES)))
    words.append(str(rng.choice(_NOUNS)))
    return words


def _sentence(rng: np.random.Generator) -> list[str]:
    words = _noun_phrase(rng) + [str(rng.choice(_VERBS))] + _noun_phrase(rng)
    if rng.random() < 0.5:
        words += [str(rng.choice(_PREPOSITIONS)), "the", str(rng.choice(_PLACES))]
    return words


def synthetic_corpus(n_normal: int = 200, n_anomalous: int = 20, random_state: int | None = 0,
                     kinds: Sequence[str] = ("shuffled", "foreign")) -> tuple[list[str], np.ndarray]:
    """Sentences of a tiny toy language, and malformed ones.

    A normal sentence is ``noun-phrase verb noun-phrase [preposition the place]``, e.g. "the red
    cat follows a farmer near the river". A malformed one is a normal sentence with its words in
    random order (``"shuffled"``) or with two to three words replaced by tokens from outside the
    language (``"foreign"``, e.g. "zorp", "9731").

    Parameters
    ----------
    n_normal : int, default 200
        Normal sentences.
    n_anomalous : int, default 20
        Malformed sentences, spread over ``kinds`` in turn.
    random_state : int or None, default 0
        Seed; the same seed gives the same corpus.
    kinds : sequence of {"shuffled", "foreign"}, default ("shuffled", "foreign")
        The kinds of malformed sentences.

    Returns
    -------
    texts : list of str
        The normal sentences first, then the malformed ones.
    labels : numpy.ndarray of int8
        1 for a malformed sentence, 0 for a normal one.

    Examples
    --------
    >>> texts, y = synthetic_corpus(3, 1, random_state=0)
    >>> len(texts), y.tolist()
    (4, [0, 0, 0, 1])
    """
    for name, value in (("n_normal", n_normal), ("n_anomalous", n_anomalous)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ParameterError(f"{name}={value!r} must be a non-negative integer")
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in ("shuffled", "foreign")]
    if unknown or (n_anomalous and not kinds):
        raise ParameterError(f"kinds={kinds!r}: each kind must be 'shuffled' or 'foreign' (at least one)")
    rng = np.random.default_rng(random_state)
    texts = [" ".join(_sentence(rng)) for _ in range(n_normal)]
    for i in range(n_anomalous):
        words = _sentence(rng)
        if kinds[i % len(kinds)] == "shuffled":
            original = list(words)
            while words == original:
                words = [str(w) for w in rng.permutation(words)]
        else:
            spots = rng.choice(len(words), size=int(rng.integers(2, 4)), replace=False)
            for spot in spots:
                words[spot] = str(rng.choice(_FOREIGN))
        texts.append(" ".join(words))
    labels = np.r_[np.zeros(n_normal, np.int8), np.ones(n_anomalous, np.int8)]
    return texts, labels


# -- texts as token-id rows, for the text detectors -----------------------------------------------

def texts_of(X: Any, text_col: str | None = None) -> tuple[list[str], str | None]:
    """The texts of ``X`` and the name of the column they came from (None for a list or array).

    ``X`` is a list/tuple/1-D array of strings, a Series, a one-column 2-D array of strings, or a
    DataFrame with the text column ``text_col`` (None: ``"text"`` or the only column).
    """
    if isinstance(X, pd.DataFrame):
        columns = [str(c) for c in X.columns]
        name = _pick_text_col(columns, text_col, "the DataFrame")
        texts, _ = read_texts(X.set_axis(columns, axis=1), text_col=name)
        return texts, name
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    if isinstance(X, (str, bytes)):
        raise DataError("X is a single string; pass a list of texts (e.g. [text])")
    if isinstance(X, pd.Series):
        return read_texts(X)[0], None
    if isinstance(X, (list, tuple)) or (isinstance(X, np.ndarray) and X.ndim == 1):
        return read_texts(list(X))[0], None
    raise DataError(f"X is a {type(X).__name__}{getattr(X, 'shape', '')}; a text detector takes a list of strings, "
                    "a pandas Series, or a DataFrame with a text column (text_col)")


class TextPreprocessor:
    """Texts to rows of token ids, ``[BOS] t1 ... tn [EOS]`` padded with ``[PAD]``: the
    preprocessing of the text detectors, saved with the model (the tokenizer as its own JSON file).

    Parameters
    ----------
    text_col : str or None
        The DataFrame column holding the texts (None: ``"text"`` or the only column).
    tokenizer : TextTokenizer
        An unfitted tokenizer; :meth:`fit` fits it on the training texts.

    Attributes
    ----------
    tokenizer_ : TextTokenizer
        The fitted tokenizer.
    text_col_ : str or None
        The column the training texts came from (None when they were a list or a Series).
    """

    TOKENIZER_FILE = "tokenizer.json"
    """The model folder's file that holds the tokenizer (the ``tokenizers`` library's JSON)."""

    def __init__(self, text_col: str | None = None, tokenizer: TextTokenizer | None = None):
        self.text_col = text_col
        self.tokenizer = tokenizer

    def fit(self, X) -> TextPreprocessor:
        """Fit the tokenizer on the texts of ``X`` (see :func:`texts_of`)."""
        texts, self.text_col_ = texts_of(X, self.text_col)
        self.tokenizer_ = (self.tokenizer or TextTokenizer()).fit(texts)
        return self

    def texts(self, X) -> list[str]:
        """The texts of ``X``, from the training column when ``X`` is a DataFrame."""
        return texts_of(X, self.text_col_ if self.text_col_ is not None else self.text_col)[0]

    def rows(self, texts: Sequence[str]) -> np.ndarray:
        """Token-id rows ``(n, longest + 2)`` of int64 for texts already read."""
        ids = self.tokenizer_.encode(list(texts))
        tok = self.tokenizer_
        rows = np.full((len(ids), max(map(len, ids), default=0) + 2), tok.pad_id, dtype=np.int64)
        for i, row in enumerate(ids):
            rows[i, 0], rows[i, 1:len(row) + 1], rows[i, len(row) + 1] = tok.bos_id, row, tok.eos_id
        return rows

    def transform(self, X) -> np.ndarray:
        """Token-id rows ``(n, longest + 2)`` of int64 for the texts of ``X``."""
        return self.rows(self.texts(X))

    def get_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays and JSON metadata for a model folder (the tokenizer goes in :meth:`files`)."""
        return {}, {"kind": "text", "text_col": self.text_col_}

    def files(self) -> dict[str, bytes]:
        """The model folder's files this preprocessing needs: the tokenizer JSON."""
        return {self.TOKENIZER_FILE: self.tokenizer_.to_json().encode("utf-8")}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict, files: dict[str, bytes]) -> TextPreprocessor:
        """Rebuild from :meth:`get_state` and :meth:`files`; raises ``ValueError`` on malformed state."""
        if arrays:
            raise ValueError(f"text preprocessing holds no arrays, got {sorted(arrays)}")
        text_col = meta.get("text_col")
        if text_col is not None and not isinstance(text_col, str):
            raise ValueError(f"text_col={text_col!r} is not a column name")
        payload = files.get(cls.TOKENIZER_FILE)
        if payload is None:
            raise ValueError(f"the model folder lacks {cls.TOKENIZER_FILE}, the tokenizer of its texts")
        try:
            tokenizer = TextTokenizer.from_json(payload.decode("utf-8"))
        except (UnicodeDecodeError, DataError, ParameterError) as exc:
            raise ValueError(f"{cls.TOKENIZER_FILE} is not a valid tokenizer ({exc})") from None
        self = cls(text_col=text_col, tokenizer=None)
        self.text_col_, self.tokenizer_ = text_col, tokenizer
        return self


def read_text_table(path: str | Path, text_col: str | None = None, label_col: str | None = "auto",
                    id_cols: Sequence[str] = (), require_label: bool = False):
    """A text file as an :class:`oddkit.data.io.Table`: ``X`` holds the one text column, ``y`` the
    anomaly labels, ``ids`` the id columns. What the command line's ``--text-col`` reads.

    Parameters
    ----------
    path : str or pathlib.Path
        CSV, TSV or Parquet with a header row, or the headerless ``label<TAB>text`` layout with the
        labels ``ham`` and ``spam`` (see :func:`read_texts`, whose reading rules apply).
    text_col : str or None, default None
        The text column (None: ``"text"`` or the only column).
    label_col : str or None, default "auto"
        The anomaly label column (0/1); ``"auto"`` takes ``"y"`` when the table has it; None reads
        none. The headerless layout's labels (``spam`` = 1) are always read.
    id_cols : sequence of str, default ()
        Columns carried through to the output; never text or labels.
    require_label : bool, default False
        Raise :class:`LabelError` when no labels were read.

    Returns
    -------
    oddkit.data.io.Table
    """
    from oddkit.data.io import Table

    path = Path(path)
    fmt = _text_format(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file; check the path (relative paths start from "
                        f"{Path.cwd()})")
    if path.stat().st_size == 0:
        raise EmptyDataError(f"{path} is empty (0 bytes); pass a file with at least one message")

    def check_ids(columns: list[str]) -> None:
        missing = [c for c in id_cols if c not in columns]
        if missing:
            raise ColumnMismatchError(f"id column(s) {preview(missing)} not found in {path}; its columns are "
                                      f"{preview(columns, limit=20)}")

    def needed(columns: list[str]) -> tuple[list[str], str]:
        """The text, label and id columns (in the file's order) and the text column, or the error a missing
        one gets; the same choice for every format (of a Parquet file only these columns are read)."""
        name = _pick_text_col(columns, text_col, str(path))
        label = ("y" if "y" in columns else None) if label_col == "auto" else label_col
        check_ids(columns)
        return list(dict.fromkeys(c for c in columns if c == name or c == label or c in id_cols)), name

    frame, sms, columns = _read_text_frame(path, fmt, text_col, needed=needed)
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    if sms:
        name, label = "text", "label"
        check_ids(columns)
    else:
        name = needed(columns)[1]
        label = ("y" if "y" in columns else None) if label_col == "auto" else label_col
    if len(frame) == 0:
        raise EmptyDataError(f"{path} has a header but no rows; pass at least one message" if not sms
                             else f"{path} holds no messages")
    source = str(path) if sms else f"text column {name!r} of {path}"
    _check_texts(frame[name].tolist(), source, _line_numbers(frame, path, fmt, sms))
    if not sms and label is not None and label not in columns:
        raise ColumnMismatchError(f"label column {label!r} not found in {path}; its columns are "
                                  f"{preview(columns, limit=20)}")
    texts, labels = read_texts(frame, text_col=name, label_col=None if sms else label)
    if sms:  # the headerless layout's labels are names: spam = anomaly (a file of ham only has none)
        labels = _anomaly_flags(frame["label"], "label", str(path), _SMS_ANOMALY, require_positive=False)
    if require_label and labels is None:
        raise LabelError(f"{path} has no anomaly label column; name it with label_col (1 = anomaly, 0 = normal)")
    ids = frame[list(id_cols)].reset_index(drop=True) if id_cols else None
    return Table(X=pd.DataFrame({text_col or name: texts}), y=labels, ids=ids, path=path)
