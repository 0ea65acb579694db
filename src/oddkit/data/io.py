"""Reading tables of rows to score: CSV, Parquet, ``.npy`` and ``.npz``.

Every reader returns a :class:`Table`: the feature columns as a DataFrame, the anomaly labels
(1 = anomaly, 0 = normal) when the file has them, and the id columns the caller named. The label
and id columns are never features. :func:`iter_table_batches` reads the same formats a batch of
rows at a time, for files too large to hold in memory.

This module also holds the small column helpers that :mod:`oddkit.data.preprocess` shares
(:func:`column_kind`, :func:`default_column_names`, :func:`preview`), so that a column is judged
numeric or categorical in one place only.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oddkit.exceptions import ColumnMismatchError, DataError, EmptyDataError, LabelError

__all__ = [
    "COLUMN_TYPES",
    "ID_MIN_ROWS",
    "SUPPORTED_FORMATS",
    "Table",
    "column_kind",
    "default_column_names",
    "iter_table_batches",
    "load_npz",
    "preview",
    "read_table",
]

SUPPORTED_FORMATS = (".csv", ".csv.gz", ".parquet", ".pq", ".npy", ".npz")
"""File name endings :func:`read_table` understands (case-insensitive)."""

_AUTO = "auto"
_DEFAULT_LABEL = "y"
_UNNAMED_INDEX = re.compile(r"__index_level_\d+__")
_NUMERIC_INFERRED = frozenset({"integer", "floating", "mixed-integer-float", "boolean", "decimal"})


# -- helpers shared with preprocess ---------------------------------------------------------------

def default_column_names(n_columns: int) -> list[str]:
    """The names oddkit gives the columns of a bare array: ``"x0"``, ``"x1"``, ...

    Examples
    --------
    >>> default_column_names(3)
    ['x0', 'x1', 'x2']
    """
    return [f"x{i}" for i in range(n_columns)]


def preview(values: Iterable[Any], limit: int = 5) -> str:
    """A short, readable list of values for an error message: at most ``limit`` items, then
    how many more there are.

    Examples
    --------
    >>> preview(["a", "b", "c"], limit=2)
    "'a', 'b' and 1 more"
    """
    values = list(values)
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:limit])
    rest = len(values) - limit
    return f"{shown} and {rest:,} more" if rest > 0 else shown


COLUMN_TYPES = ("numeric", "categorical")
"""The kinds ``column_types`` may declare for a column."""

ID_MIN_ROWS = 30
"""A text column is refused as an identifier when every one of at least this many values is distinct.
In a smaller table a column of distinct values may be a genuine category seen once each."""

_MOSTLY_NUMERIC_SHARE = 0.5
_DATE_SHARE = 0.9
_DATE_PATTERN = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?)?\s*$")
_DECLARE = "column_types={{{name!r}: {kind!r}}} (CLI: --column-type {name}={kind})"


def _declare(name: str, kind: str) -> str:
    return _DECLARE.format(name=name, kind=kind)


def _is_date_dtype(dtype: Any) -> bool:
    return (pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype)
            or isinstance(dtype, pd.PeriodDtype))


def check_column_types(column_types: Any, columns: Sequence[str] | None = None) -> dict[str, str] | None:
    """Validate a ``column_types`` option: None, or a dict of column name to ``"numeric"`` or
    ``"categorical"``; with ``columns``, every named column must be among them.

    Returns
    -------
    dict of str to str, or None
        A copy of ``column_types``.

    Raises
    ------
    DataError
        When it is not such a dict, names an unknown kind, or (with ``columns``) an unknown column.

    Examples
    --------
    >>> check_column_types({"amount": "numeric"}, ["amount", "shop"])
    {'amount': 'numeric'}
    """
    if column_types is None:
        return None
    if not isinstance(column_types, dict):
        raise DataError(f"column_types must be None or a dict of column name to 'numeric' or 'categorical', "
                        f"got {type(column_types).__name__} {column_types!r}")
    for name, kind in column_types.items():
        if not isinstance(name, str):
            raise DataError(f"column_types keys must be column names (str), got {name!r}")
        if kind not in COLUMN_TYPES:
            raise DataError(f"column_types[{name!r}] must be 'numeric' or 'categorical', got {kind!r}")
    if columns is not None:
        unknown = [n for n in column_types if n not in set(columns)]
        if unknown:
            raise DataError(f"column_types names column(s) {preview(unknown)} that X does not have; its columns "
                            f"are {preview(columns, limit=20)}: fix the name(s) or remove them from column_types")
    return dict(column_types)


def _cell_number(value: Any) -> float:
    """One cell as float64: inf for an integer too large for it (the non-finite check then names the
    cell), NaN when it is not a number."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if str(value).strip()[:1] != "-" else -math.inf
    except (TypeError, ValueError):
        return math.nan


def unparseable_cells(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column parsed as numbers: float64 values (NaN for missing and unparseable cells), and the
    mask of cells that were present but are not numbers (text such as ``"12.5 EUR"``)."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_complex_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(values), dtype=bool)
    raw = values.astype(object)
    try:
        parsed = pd.to_numeric(raw, errors="coerce")
        numbers = np.asarray(parsed, dtype=np.float64) if parsed.dtype.kind in "biuf" else np.full(len(values), np.nan)
    except OverflowError:  # an integer beyond float64 (hundreds of digits): parse cell by cell, it is out of range
        numbers = np.array([_cell_number(v) for v in raw], dtype=np.float64)
    bad = values.notna().to_numpy() & np.isnan(numbers)
    # A cell that says "nan" (or None/NaN itself) is missing, not text.
    if bad.any():
        texts = raw[bad].astype(str).str.strip().str.lower()
        bad[np.flatnonzero(bad)[texts.isin(["nan", "na", "n/a", ""]).to_numpy()]] = False
    return numbers, bad


def mostly_numeric_error(name: str, values: pd.Series, bad: np.ndarray, when: str = "") -> DataError:
    """The error for a numeric column holding a few cells that are not numbers: names the column,
    the rows and the values, and the two ways out."""
    rows = np.flatnonzero(bad)
    labels = values.index[rows[:5]]
    shown = ", ".join(f"{label} ({values.iloc[r]!r})" for label, r in zip(labels, rows[:5]))
    more = f" and {rows.size - 5:,} more" if rows.size > 5 else ""
    return DataError(
        f"column {name!r} is numeric{when} but {rows.size:,} cell(s) are not numbers, at row(s) {shown}{more}; "
        f"clean them (e.g. strip units), or {'retrain with' if when else 'pass'} {_declare(name, 'numeric')} to "
        "treat them as missing "
        f"(then impute decides), or {_declare(name, 'categorical')} if the column is a category")


def column_kind(values: pd.Series, name: str, declared: str | None = None) -> str:
    """Whether a column is ``"numeric"`` (int, float, bool) or ``"categorical"`` (text, category).

    The rules, unless ``declared`` says otherwise:

    - int, float and bool columns, and object columns of Python numbers (``None`` for missing),
      are numeric; ``pandas.Categorical`` columns are categorical;
    - a text or object column is categorical, except that it is refused when it
      - is mostly numbers: more than half of its present cells parse as numbers but some do not
        (one ``"12.5 EUR"`` among floats) -- the error names the rows and values;
      - holds dates: at least 90% of its present cells look like dates (``2024-05-01``,
        ``01/05/2024``, optionally with a time);
      - is an identifier: all of at least :data:`ID_MIN_ROWS` present values are distinct;
    - date, time-delta and period dtypes are refused; complex numbers always are.

    Parameters
    ----------
    values : pandas.Series
        The column.
    name : str
        Its name, for the error message.
    declared : {None, "numeric", "categorical"}
        The kind the user declared in ``column_types``: ``"categorical"`` is taken as it is (a date
        or identifier column is one-hot encoded); ``"numeric"`` parses the cells as numbers and
        treats those that are not as missing.

    Returns
    -------
    str
        ``"numeric"`` or ``"categorical"``.

    Raises
    ------
    DataError
        For the refused columns above; the message says which ``column_types`` entry accepts them.
    """
    dtype = values.dtype
    if pd.api.types.is_complex_dtype(dtype):
        raise DataError(f"column {name!r} holds complex numbers, which cannot be used as a feature; split it into "
                        "real and imaginary parts (or magnitude and phase), or drop it")
    if declared == "categorical":
        return "categorical"
    if _is_date_dtype(dtype):
        raise DataError(
            f"column {name!r} has dtype {dtype} (dates or times), which is not used as a feature as it is; convert "
            f"it to numbers (e.g. hour of day, or seconds since an origin) or drop it, or pass "
            f"{_declare(name, 'categorical')} to one-hot encode its values")
    if declared == "numeric":
        return "numeric"
    if pd.api.types.is_bool_dtype(dtype):
        return "numeric"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
        raise DataError(
            f"column {name!r} has dtype {dtype}, which cannot be used as a feature; convert it to "
            "numbers or to text, or drop it")
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred in _NUMERIC_INFERRED:
        return "numeric"
    present = values.dropna()
    if len(present) == 0:
        return "categorical"
    numbers, bad = unparseable_cells(values)
    n_numbers = int(np.count_nonzero(~np.isnan(numbers)))
    if bad.any() and n_numbers > _MOSTLY_NUMERIC_SHARE * len(present):
        raise mostly_numeric_error(name, values, bad)
    is_text = np.fromiter((isinstance(v, str) for v in present), dtype=bool, count=len(present))
    if not bad.any() and n_numbers > 0 and not is_text.all():
        return "numeric"  # numbers of several Python types (floats and bools, ints and numeric strings)
    texts = present[is_text]
    if len(texts) >= _DATE_SHARE * len(present) and len(texts):
        looks_like_date = texts.str.match(_DATE_PATTERN)
        if looks_like_date.mean() >= _DATE_SHARE:
            example = texts[looks_like_date].iloc[0]
            raise DataError(
                f"column {name!r} holds dates (e.g. {example!r}), which are not used as a feature as text; convert "
                f"it to numbers (e.g. pd.to_datetime(X[{name!r}]).dt.hour, or seconds since an origin) or drop it, "
                f"or pass {_declare(name, 'categorical')} to one-hot encode its values")
    if len(present) >= ID_MIN_ROWS and present.nunique() == len(present):
        raise DataError(
            f"column {name!r} looks like an identifier: all {len(present):,} of its values are distinct (e.g. "
            f"{preview(present.iloc[:3])}), so one-hot encoding it learns nothing; pass it in id_cols (CLI: --id-col) "
            f"or drop it, or pass {_declare(name, 'categorical')} to encode it anyway")
    return "categorical"


# -- the table ------------------------------------------------------------------------------------

@dataclass
class Table:
    """Rows read from a file: features, optional labels and ids.

    Attributes
    ----------
    X : pandas.DataFrame
        The feature columns. Arrays from ``.npy``/``.npz`` get the columns ``"x0"``, ``"x1"``, ...
    y : numpy.ndarray of int8, or None
        Anomaly labels, 1 = anomaly and 0 = normal, when the file has a label column.
    ids : pandas.DataFrame or None
        The id columns named by the caller, row-aligned with ``X``; None when none were named.
    path : pathlib.Path or None
        The file the rows came from.
    """

    X: pd.DataFrame
    y: np.ndarray | None = None
    ids: pd.DataFrame | None = None
    path: Path | None = None


# -- checks ---------------------------------------------------------------------------------------

def _file_format(path: Path) -> str:
    name = path.name.lower()
    for ending, fmt in ((".csv.gz", "csv"), (".csv", "csv"), (".parquet", "parquet"), (".pq", "parquet"),
                        (".npy", "npy"), (".npz", "npz")):
        if name.endswith(ending):
            return fmt
    raise DataError(
        f"cannot read {path}: unknown file type {path.suffix or '(no suffix)'!r}; "
        f"save it as one of {', '.join(SUPPORTED_FORMATS)}")


def _check_path(path: Any) -> tuple[Path, str]:
    path = Path(path)
    fmt = _file_format(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; check the path (relative paths start from {Path.cwd()})")
    if not path.is_file():
        raise DataError(f"{path} is not a file; pass the path of a {', '.join(SUPPORTED_FORMATS)} file")
    if path.stat().st_size == 0:
        raise EmptyDataError(f"{path} is empty (0 bytes); pass a file with a header and at least one row")
    return path, fmt


def _id_tuple(id_cols: str | Sequence[str] | None) -> tuple[str, ...]:
    # A bare string is one column name, not a sequence of one-letter names.
    if id_cols is None:
        return ()
    if isinstance(id_cols, str):
        return (id_cols,)
    return tuple(str(c) for c in id_cols)


def _check_labels(values: pd.Series | np.ndarray, name: str, source: Path) -> np.ndarray:
    """Validate an anomaly label column and return it as int8 0/1."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values).ravel())
    fix = "encode anomalies as 1 and normal rows as 0"
    try:
        kind = column_kind(series, name)
    except DataError:
        kind = "other"
    if kind != "numeric":
        seen = pd.unique(series.dropna())
        raise LabelError(
            f"label column {name!r} in {source} must be numeric 0/1 but holds {series.dtype} values "
            f"({preview(seen)}); {fix}, or pass label_col=None if it is not a label")
    numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.flatnonzero(np.isnan(numbers))
    if missing.size:
        raise LabelError(
            f"label column {name!r} in {source} has {missing.size:,} missing values (first rows: "
            f"{preview(missing)}); every row needs a label: {fix}")
    wrong = (numbers != 0) & (numbers != 1)
    if wrong.any():
        raise LabelError(
            f"label column {name!r} in {source} holds values other than 0 and 1 "
            f"({preview(np.unique(numbers[wrong]))}, first rows: {preview(np.flatnonzero(wrong))}); {fix}")
    return (numbers == 1).astype(np.int8)


def _split_frame(frame: pd.DataFrame, label: str | None, id_cols: tuple[str, ...], source: Path,
                 labels: np.ndarray | None = None) -> Table:
    """Split a frame into features, labels and ids. ``labels`` comes from outside the frame (npz)."""
    frame.columns = [str(c) for c in frame.columns]
    missing = [c for c in id_cols if c not in frame.columns]
    if missing:
        raise ColumnMismatchError(
            f"column(s) {preview(missing)} to read beside the features (id, group or cost columns) not found in "
            f"{source}; its columns are "
            f"{preview(frame.columns, limit=20)}")
    y = None
    if label is not None:
        y = _check_labels(frame[label], label, source)
    elif labels is not None:
        y = labels
        if len(y) != len(frame):
            raise LabelError(f"{source} holds {len(frame):,} rows of X but {len(y):,} labels; save one label per row")
    dropped = set(id_cols) | ({label} if label is not None else set())
    features = [c for c in frame.columns if c not in dropped]
    if not features:
        raise EmptyDataError(
            f"{source} has no feature columns left once the label and id columns are set aside; "
            "check label_col and id_cols")
    ids = frame[list(id_cols)].copy() if id_cols else None
    return Table(X=frame[features].copy() if dropped else frame, y=y, ids=ids, path=source)


def _resolve_label(columns: Sequence[str], label_col: str | None, source: Path) -> str | None:
    if label_col is None:
        return None
    if label_col == _AUTO:
        return _DEFAULT_LABEL if _DEFAULT_LABEL in columns else None
    if label_col not in columns:
        raise ColumnMismatchError(
            f"label column {label_col!r} not found in {source}; its columns are {preview(columns, limit=20)}. "
            "Name the right one with label_col, or pass label_col=None for a file without labels")
    return label_col


def _check_required_label(table: Table, label_col: str | None, require_label: bool) -> None:
    if require_label and table.y is None:
        hint = ("a .npy file holds features only: save X and y together in an .npz file with np.savez"
                if table.path is not None and _file_format(table.path) == "npy"
                else f"name it with label_col (now {label_col!r}) and encode anomalies as 1, normal rows as 0")
        raise LabelError(f"{table.path} has no anomaly label column; {hint}")


# -- arrays ---------------------------------------------------------------------------------------

def _check_feature_array(array: np.ndarray, source: Path, what: str) -> np.ndarray:
    if array.ndim != 2:
        raise DataError(
            f"{what} in {source} has shape {array.shape}; expected a 2-D array (rows x columns): "
            "reshape a single feature with X.reshape(-1, 1)")
    if array.dtype.kind not in "biuf":
        raise DataError(f"{what} in {source} has dtype {array.dtype}; save it as a numeric (float or int) array")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise EmptyDataError(f"{what} in {source} has shape {array.shape}; it needs at least one row and one column")
    return array


def _load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"cannot read {path} as a .npy array ({exc}); save a numeric array with np.save") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path} is not a .npy array; save one with np.save")
    return _check_feature_array(array, path, "the array")


def _open_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        raise DataError(f"cannot read {path} as an .npz archive ({exc}); save numeric arrays with np.savez") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # a damaged or truncated archive
        raise DataError(f"cannot read {path} as an .npz archive ({type(exc).__name__}: {exc})") from None


FEATURE_NAMES_KEY = "feature_names"
"""The array of an ``.npz`` archive that names the columns of ``X`` (one string per column)."""


def _npz_feature_names(arrays: dict[str, np.ndarray], n_columns: int, path: Path) -> list[str] | None:
    """The column names stored beside ``X`` in ``feature_names``, or None when there are none."""
    names = arrays.get(FEATURE_NAMES_KEY)
    if names is None:
        return None
    names = [str(n) for n in np.asarray(names).ravel()]
    if len(names) != n_columns or len(set(names)) != len(names):
        raise DataError(f"{path}: '{FEATURE_NAMES_KEY}' must hold {n_columns} distinct names, one per column of X; "
                        f"it holds {len(names)} ({len(set(names))} distinct); fix or remove it")
    return names


def _npz_parts(path: Path, label_col: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    X, y, _ = _npz_parts_named(path, label_col)
    return X, y


def _npz_parts_named(path: Path, label_col: str | None) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """``X``, its labels (or None) and its column names from ``feature_names`` (or None)."""
    arrays = _open_npz(path)
    if "X" not in arrays:
        raise DataError(
            f"{path} has no array named 'X' (it has {preview(arrays, limit=20) or 'none'}); "
            "save the features with np.savez(path, X=X, y=y)")
    X = _check_feature_array(arrays["X"], path, "array 'X'")
    names = _npz_feature_names(arrays, X.shape[1], path)
    label = _resolve_label([k for k in arrays if k not in ("X", FEATURE_NAMES_KEY)], label_col, path)
    y = None if label is None else _check_labels(arrays[label], label, path)
    if y is not None and len(y) != len(X):
        raise LabelError(
            f"{path} holds {len(X):,} rows of X but {len(y):,} labels in {label!r}; save one label per row")
    return X, y, names


def _array_frame(array: np.ndarray, start: int = 0, names: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(array, columns=names if names is not None else default_column_names(array.shape[1]),
                        index=pd.RangeIndex(start, start + array.shape[0]))


# -- tables ---------------------------------------------------------------------------------------

_CSV_ERRORS = (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError)


def _parquet_errors() -> tuple[type[BaseException], ...]:
    # Imported only when a Parquet read fails, so reading CSV never pays for importing pyarrow.
    import pyarrow as pa

    return (OSError, ValueError, pa.ArrowException)


def _csv_error(path: Path, exc: Exception) -> DataError:
    detail = " ".join(str(exc).split())  # pandas' messages span lines; an error is one line
    return DataError(f"cannot read {path} as CSV ({type(exc).__name__}: {detail}); "
                     "save it as comma-separated UTF-8 text")


def _damaged_pandas_metadata(exc: Exception) -> DataError:
    return DataError(f"the Parquet file's pandas metadata (which pandas writes beside the columns) is damaged "
                     f"({type(exc).__name__}: {exc}); write the file again, or without that metadata")


def _pandas_metadata(schema) -> dict:
    """The pandas metadata of a pyarrow ``schema`` ({} when there is none), checked to be the object
    of lists pandas writes: a damaged or hostile one is a DataError, not a bare KeyError or TypeError
    from deep inside pyarrow."""
    try:
        meta = schema.pandas_metadata
    except ValueError as exc:  # not JSON
        raise _damaged_pandas_metadata(exc) from None
    if meta is None:
        return {}
    if not (isinstance(meta, dict) and isinstance(meta.get("index_columns", []), list)
            and isinstance(meta.get("columns", []), list)):
        raise _damaged_pandas_metadata(TypeError("not an object with lists 'index_columns' and 'columns'"))
    return meta


def parquet_columns(schema) -> list[str]:
    """The columns of a Parquet file as its writer saw them: a pyarrow ``schema``'s names without the
    unnamed row labels pandas stores beside a DataFrame's columns (``__index_level_0__``, ...; a
    DataFrame saved with ``to_parquet`` and an index other than 0..n-1). A named index level (an id
    column moved into the index, say) is kept: it is data the writer chose to keep."""
    stored = {c for c in _pandas_metadata(schema).get("index_columns", []) if isinstance(c, str)}
    return [n for n in schema.names if not (n in stored and _UNNAMED_INDEX.fullmatch(n))]


def first_invalid_utf8_row(column) -> int | None:
    """The first row of a pyarrow string or binary column (an Array or ChunkedArray) whose bytes are not
    valid UTF-8, or None (none, or a layout without a binary view). Slow, row by row: called only once
    the column is known to hold such bytes."""
    import pyarrow as pa

    offset = 0
    try:
        for chunk in getattr(column, "chunks", [column]):
            large = pa.types.is_large_string(chunk.type) or pa.types.is_large_binary(chunk.type)
            for i, value in enumerate(chunk.view(pa.large_binary() if large else pa.binary())):
                data = value.as_py()
                try:
                    if data is not None:
                        data.decode("utf-8")
                except UnicodeDecodeError:
                    return offset + i
            offset += len(chunk)
    except (TypeError, ValueError, NotImplementedError):
        return None
    return None


def invalid_utf8_column(data) -> tuple[str, Any] | None:
    """The name and the column of the first string column of a pyarrow Table or RecordBatch whose bytes are
    not valid UTF-8, or None: pyarrow trusts a file's strings, and pandas turns them into Python strings only
    when a column is first listed, failing deep inside with an error that names nothing."""
    import pyarrow as pa

    is_view = getattr(pa.types, "is_string_view", lambda t: False)
    for i, field in enumerate(data.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type) or is_view(field.type):
            try:
                data.column(i).validate(full=True)
            except pa.ArrowInvalid:
                return field.name, data.column(i)
    return None


def _check_utf8_strings(data) -> None:
    """Refuse a pyarrow Table or RecordBatch whose string columns hold bytes that are not UTF-8, naming the
    column and its first such row (:func:`invalid_utf8_column`)."""
    bad = invalid_utf8_column(data)
    if bad is not None:
        row = first_invalid_utf8_row(bad[1])
        where = f", first in row {row:,}" if row is not None else ""
        raise DataError(f"column {bad[0]!r} holds bytes that are not valid UTF-8{where}; store text as valid UTF-8")


def arrow_frame(data) -> pd.DataFrame:
    """A pyarrow Table or RecordBatch read from Parquet as a DataFrame of :func:`parquet_columns`, in
    the file's order, rows numbered 0..n-1 as in a CSV: pandas' metadata restores the column types,
    but the index it stored is not turned into row labels (an unnamed one is dropped, a named one
    becomes a column again), so a file written with ``df.to_parquet(path)`` reads as one written with
    ``index=False`` plus its named index columns."""
    columns = parquet_columns(data.schema)
    _check_utf8_strings(data)
    try:
        frame = data.to_pandas()
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise _damaged_pandas_metadata(exc) from None
    named = [n for n in frame.index.names if n is not None]
    if named:
        frame = frame.reset_index(level=named)
    frame.index = pd.RangeIndex(len(frame))
    if sorted(map(str, frame.columns)) == sorted(columns) and len(set(columns)) == len(columns):
        frame.columns = [str(c) for c in frame.columns]
        frame = frame[columns]
    return frame


def _read_frame(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "csv":
        try:
            # low_memory=False: infer each column's type from the whole file, not piece by piece.
            frame = pd.read_csv(path, low_memory=False)
        except pd.errors.EmptyDataError:
            raise EmptyDataError(f"{path} holds no data; pass a CSV with a header and at least one row") from None
        except _CSV_ERRORS as exc:
            raise _csv_error(path, exc) from None
    else:
        try:
            import pyarrow.parquet as pq

            frame = arrow_frame(pq.read_table(path))
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
        except _parquet_errors() as exc:
            raise DataError(f"cannot read {path} as Parquet ({type(exc).__name__}: {exc})") from None
    if len(frame) == 0:
        raise EmptyDataError(f"{path} has a header but no rows; pass a file with at least one row")
    return frame


# -- public API -----------------------------------------------------------------------------------

def load_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``X`` (2-D numeric, as stored) and, when present, ``y`` (int8 0/1) from an ``.npz`` file.

    Parameters
    ----------
    path : str or pathlib.Path
        An archive written with ``np.savez(path, X=X, y=y)``; ``y`` is optional.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, n_features)
    y : numpy.ndarray of int8 of shape (n_samples,), or None

    Raises
    ------
    DataError
        When the file is missing, not an ``.npz`` archive, or has no numeric 2-D ``X``.
    LabelError
        When ``y`` is not 0/1 or its length differs from ``X``'s.

    Examples
    --------
    >>> X, y = load_npz("shared/data/thyroid.npz")  # doctest: +SKIP
    """
    path, _ = _check_path(path)
    if not path.name.lower().endswith(".npz"):
        raise DataError(f"{path} is not an .npz file; use read_table for other formats")
    return _npz_parts(path, _AUTO)


def read_table(path: str | Path, label_col: str | None = "auto", id_cols: str | Sequence[str] = (),
               require_label: bool = False) -> Table:
    """Read a whole table of rows from CSV (``.csv``, ``.csv.gz``), Parquet (``.parquet``, ``.pq``),
    ``.npy`` (a 2-D numeric array of features) or ``.npz`` (arrays ``X`` and, optionally, ``y``
    and ``feature_names``, the names of ``X``'s columns; without it columns are ``x0, x1, ...``).

    Parameters
    ----------
    path : str or pathlib.Path
        The file; its name ending says its format.
    label_col : str or None, default "auto"
        The anomaly label column (1 = anomaly, 0 = normal). ``"auto"`` uses a column ``"y"`` when
        there is one; None reads no labels. For ``.npz`` it names an array; ``.npy`` never has labels.
    id_cols : sequence of str, default ()
        Columns that identify rows: returned in ``Table.ids``, never used as features.
    require_label : bool, default False
        Raise :class:`LabelError` when the file has no label column.

    Returns
    -------
    Table

    Raises
    ------
    DataError
        Missing file, unknown format, unreadable content.
    EmptyDataError
        No rows, or no feature columns left.
    ColumnMismatchError
        A named label or id column is not in the file.
    LabelError
        Labels that are not 0/1, are missing, or are required but absent.

    Examples
    --------
    >>> table = read_table("transactions.csv", id_cols=["txn_id"])  # doctest: +SKIP
    >>> table.X.shape, table.y is None  # doctest: +SKIP
    ((5000, 12), False)
    """
    path, fmt = _check_path(path)
    id_cols = _id_tuple(id_cols)
    if fmt in ("npy", "npz"):
        if fmt == "npy":
            X, y, names = np.asarray(_load_npy(path)), None, None
        else:
            X, y, names = _npz_parts_named(path, label_col)
        table = _split_frame(_array_frame(X, names=names), None, id_cols, path, labels=y)
    else:
        frame = _read_frame(path, fmt)
        table = _split_frame(frame, _resolve_label([str(c) for c in frame.columns], label_col, path), id_cols, path)
    _check_required_label(table, label_col, require_label)
    return table


def iter_table_batches(path: str | Path, batch_rows: int = 100_000, label_col: str | None = "auto",
                       id_cols: str | Sequence[str] = ()) -> Iterator[Table]:
    """Read a table ``batch_rows`` rows at a time, as :func:`read_table` would read it whole.

    CSV and Parquet files are streamed and ``.npy`` arrays memory-mapped, so files larger than
    memory can be scored; an ``.npz`` archive cannot be streamed and is read whole, then sliced.
    The path and format are checked at once; the content as the batches are read.

    Parameters
    ----------
    path : str or pathlib.Path
    batch_rows : int, default 100_000
        Rows per batch (the last batch may be shorter).
    label_col, id_cols
        As in :func:`read_table`.

    Returns
    -------
    Iterator of Table
        Batches in file order. ``X`` keeps the file's row numbers as its index.

    Raises
    ------
    DataError, EmptyDataError, ColumnMismatchError, LabelError
        As :func:`read_table`; an empty file raises on the first ``next``.

    Examples
    --------
    >>> for batch in iter_table_batches("big.parquet", batch_rows=50_000):  # doctest: +SKIP
    ...     scores = detector.decision_function(batch.X)
    """
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, (int, np.integer)) or batch_rows < 1:
        raise DataError(f"batch_rows must be a positive integer, got {batch_rows!r}")
    path, fmt = _check_path(path)
    readers = {"csv": _csv_batches, "parquet": _parquet_batches, "npy": _npy_batches, "npz": _npz_batches}
    return _non_empty(readers[fmt](path, int(batch_rows), label_col, _id_tuple(id_cols)), path)


def _non_empty(batches: Iterator[Table], path: Path) -> Iterator[Table]:
    any_rows = False
    for batch in batches:
        if len(batch.X):
            any_rows = True
            yield batch
    if not any_rows:
        raise EmptyDataError(f"{path} has no rows; pass a file with at least one row")


def _csv_batches(path: Path, batch_rows: int, label_col: str | None, id_cols: tuple[str, ...]) -> Iterator[Table]:
    try:
        header = pd.read_csv(path, nrows=0).columns
        label = _resolve_label([str(c) for c in header], label_col, path)
        reader = pd.read_csv(path, chunksize=batch_rows)
    except pd.errors.EmptyDataError:
        raise EmptyDataError(f"{path} holds no data; pass a CSV with a header and at least one row") from None
    except _CSV_ERRORS as exc:
        raise _csv_error(path, exc) from None
    with reader:
        while True:
            try:
                chunk = next(reader)
            except StopIteration:
                return
            except _CSV_ERRORS as exc:
                raise _csv_error(path, exc) from None
            if len(chunk):  # a header-only file yields one empty chunk
                yield _split_frame(chunk, label, id_cols, path)


def _parquet_batches(path: Path, batch_rows: int, label_col: str | None,
                     id_cols: tuple[str, ...]) -> Iterator[Table]:
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
    except _parquet_errors() as exc:
        raise DataError(f"cannot read {path} as Parquet ({type(exc).__name__}: {exc})") from None
    with source:
        label = _resolve_label(parquet_columns(source.schema_arrow), label_col, path)
        start = 0
        for batch in source.iter_batches(batch_size=batch_rows):
            if batch.num_rows == 0:
                continue
            try:
                frame = arrow_frame(batch)
            except DataError as exc:  # rows counted within the batch
                raise DataError(f"{path}, in the batch of rows from {start:,}: {exc}") from None
            frame.index = pd.RangeIndex(start, start + len(frame))
            start += len(frame)
            yield _split_frame(frame, label, id_cols, path)


def _npy_batches(path: Path, batch_rows: int, label_col: str | None, id_cols: tuple[str, ...]) -> Iterator[Table]:
    array = _load_npy(path, mmap=True)
    for start in range(0, len(array), batch_rows):
        # np.array copies the slice out of the memory map, so the file can close when we are done.
        yield _split_frame(_array_frame(np.array(array[start:start + batch_rows]), start), None, id_cols, path)


def _npz_batches(path: Path, batch_rows: int, label_col: str | None, id_cols: tuple[str, ...]) -> Iterator[Table]:
    X, y, names = _npz_parts_named(path, label_col)
    for start in range(0, len(X), batch_rows):
        stop = start + batch_rows
        yield _split_frame(_array_frame(X[start:stop], start, names), None, id_cols, path,
                           labels=None if y is None else y[start:stop])
