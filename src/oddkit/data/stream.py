"""Tables larger than memory, read a bounded batch of rows at a time, in a shuffleable order.

:class:`TableSource` names a Parquet file, a folder of Parquet files, or a CSV file (or a folder of
CSV files) and yields its rows as pandas DataFrames of at most ``batch_rows`` rows, each with the
rows' numbers in the whole source (0, 1, ... across files, in sorted file order). Those numbers are
what make a streamed fit deterministic: :func:`row_uniform` turns a row number and a seed into a
fixed number in [0, 1) that decides, with no state, whether the row is held out for early
stopping or kept in a bounded sample.

The unit of order is a Parquet row group (a whole CSV file): :meth:`TableSource.batches` can visit
the units in any order, so each training epoch reads them shuffled; within a unit rows come in
file order (reading a row group out of order would read it whole many times).

Examples
--------
>>> from oddkit.data.stream import TableSource
>>> source = TableSource("events/", batch_rows=65_536)  # doctest: +SKIP
>>> for rows, frame in source.batches():  # doctest: +SKIP
...     ...
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from oddkit.data.io import Table, _check_labels, _resolve_label, _split_frame, arrow_frame, parquet_columns, preview
from oddkit.exceptions import ColumnMismatchError, DataError, EmptyDataError

__all__ = ["BoundedSample", "TableSource", "as_source", "row_uniform"]

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz")


def row_uniform(rows: np.ndarray, seed: int) -> np.ndarray:
    """A fixed pseudo-random number in [0, 1) for each row number (splitmix64 of row and seed).

    The same row and seed always give the same number, whatever order or batch the row is read
    in, so "held out" or "in the sample" is a property of the row, decided without any state.

    Examples
    --------
    >>> row_uniform(np.arange(3), seed=0).round(3).tolist() == row_uniform(np.arange(3), seed=0).round(3).tolist()
    True
    """
    with np.errstate(over="ignore"):
        z = np.asarray(rows, dtype=np.uint64) + np.uint64((int(seed) * 0x9E3779B97F4A7C15) % 2 ** 64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2 ** 53)


@dataclass(frozen=True)
class _Unit:
    """A piece read at once in order: one row group of a Parquet file, or a whole CSV file."""

    path: Path
    row_group: int | None
    start: int  # number of the unit's first row in the whole source (None-like -1 when unknown: CSV)
    n_rows: int


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(_PARQUET):
        return "parquet"
    if name.endswith(_CSV):
        return "csv"
    return None


class TableSource:
    """A table on disk, too large for memory, read ``batch_rows`` rows at a time.

    Parameters
    ----------
    path : str or pathlib.Path
        A Parquet file (``.parquet``, ``.pq``), a CSV file (``.csv``, ``.csv.gz``), or a folder
        holding files of one of those formats (searched recursively, read in sorted path order;
        files of other names are ignored). Every file must have the same columns, in the same
        order, with the same Arrow types (Parquet).
    batch_rows : int, default 65_536
        Most rows read into memory at once (a Parquet row group larger than this is read in
        several batches).
    label_col : str, "auto" or None, default "auto"
        The anomaly label column (1 = anomaly), as in :func:`oddkit.data.io.read_table`: never a
        feature. ``"auto"`` uses a column named ``y`` when there is one.
    id_cols : sequence of str, default ()
        Columns that identify rows: never features.
    keep_anomalies : bool, default False
        With a label column, rows labelled 1 are left out of the batches unless this is True.

    Attributes
    ----------
    columns : list of str
        The feature columns (label and id columns set aside).
    n_rows : int or None
        Rows in the source, from the Parquet footers; None for CSV until one pass has been read.
    max_rows_in_memory : int
        The most rows any batch read so far held (at most ``batch_rows``): what the reader
        itself kept in memory at once.

    Raises
    ------
    DataError
        The path does not exist, or is not a Parquet or CSV file or a folder of them.
    EmptyDataError
        A folder without Parquet or CSV files.
    ColumnMismatchError
        Files of a folder whose columns or types differ (the message names the file), or a folder
        mixing Parquet and CSV.
    """

    def __init__(self, path, batch_rows: int = 65_536, label_col: str | None = "auto",
                 id_cols: Sequence[str] = (), keep_anomalies: bool = False) -> None:
        if isinstance(batch_rows, bool) or not isinstance(batch_rows, (int, np.integer)) or batch_rows < 1:
            raise DataError(f"batch_rows must be a positive integer, got {batch_rows!r}")
        self.path = Path(path)
        self.batch_rows = int(batch_rows)
        self.id_cols = (id_cols,) if isinstance(id_cols, str) else tuple(id_cols)
        self.keep_anomalies = bool(keep_anomalies)
        self.max_rows_in_memory = 0
        self.files, self.format = self._find_files()
        names = self._check_schemas()
        self.label = _resolve_label(names, label_col, self.path)
        missing = [c for c in self.id_cols if c not in names]
        if missing:
            raise ColumnMismatchError(f"id column(s) {preview(missing)} not found in {self.path}; its columns are "
                                      f"{preview(names, limit=20)}")
        dropped = set(self.id_cols) | ({self.label} if self.label else set())
        self.columns = [c for c in names if c not in dropped]
        if not self.columns:
            raise EmptyDataError(f"{self.path} has no feature columns left once the label and id columns are set "
                                 "aside; check label_col and id_cols")
        self.units = self._list_units()
        self.n_rows = None if self.format == "csv" else sum(u.n_rows for u in self.units)

    def __repr__(self) -> str:
        return f"TableSource({str(self.path)!r}, batch_rows={self.batch_rows})"

    # -- discovery ----------------------------------------------------------------------------------

    def _find_files(self) -> tuple[list[Path], str]:
        if not self.path.exists():
            raise DataError(f"{self.path} does not exist; pass a Parquet or CSV file, or a folder of them")
        if self.path.is_file():
            kind = _kind(self.path)
            if kind is None:
                raise DataError(f"{self.path} is not a Parquet (.parquet, .pq) or CSV (.csv, .csv.gz) file; "
                                "streamed training reads only those")
            return [self.path], kind
        files = sorted(p for p in self.path.rglob("*") if p.is_file() and _kind(p) is not None
                       and not any(part.startswith((".", "_")) for part in p.relative_to(self.path).parts))
        if not files:
            raise EmptyDataError(f"{self.path} holds no Parquet (.parquet, .pq) or CSV (.csv, .csv.gz) files; "
                                 "pass a folder that does")
        kinds = {_kind(p) for p in files}
        if len(kinds) > 1:
            raise ColumnMismatchError(f"{self.path} mixes Parquet and CSV files; keep one format per folder")
        return files, kinds.pop()

    def _check_schemas(self) -> list[str]:
        """The files' column names, after checking every file has the first one's columns and types."""
        first = None
        for path in self.files:
            if self.format == "parquet":
                import pyarrow.parquet as pq

                try:
                    schema = pq.read_schema(path)
                except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
                    raise DataError(f"cannot read {path} as Parquet ({type(exc).__name__}: {exc})") from None
                found = [(name, str(schema.field(name).type)) for name in parquet_columns(schema)]
            else:
                try:
                    found = [(str(c), "") for c in pd.read_csv(path, nrows=0).columns]
                except pd.errors.EmptyDataError:
                    raise EmptyDataError(f"{path} holds no data; pass a CSV with a header and rows") from None
            if first is None:
                first = (path, found)
            elif found != first[1]:
                theirs, ours = dict(first[1]), dict(found)
                diff = [f"{n} ({ours.get(n, 'missing')} here, {theirs.get(n, 'missing')} in {first[0].name})"
                        for n in dict.fromkeys([*theirs, *ours]) if ours.get(n) != theirs.get(n)]
                raise ColumnMismatchError(
                    f"{path} does not have the columns of {first[0]}: {preview(diff or ['column order'], limit=4)}; "
                    "every file of a folder must have the same columns, in the same order and of the same types")
        return [name for name, _ in first[1]]

    def _list_units(self) -> list[_Unit]:
        if self.format == "csv":
            return [_Unit(path, None, -1, -1) for path in self.files]
        import pyarrow.parquet as pq

        units, start = [], 0
        for path in self.files:
            meta = pq.read_metadata(path)
            for group in range(meta.num_row_groups):
                n = meta.row_group(group).num_rows
                if n:
                    units.append(_Unit(path, group, start, n))
                start += n
        return units

    # -- reading ------------------------------------------------------------------------------------

    def batches(self, order: Sequence[int] | None = None) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        """Yield ``(row_numbers, features)`` batches of at most ``batch_rows`` rows.

        Parameters
        ----------
        order : sequence of int, optional
            The order in which to read the units (``range(len(self.units))`` permuted); by
            default file order.

        Yields
        ------
        row_numbers : ndarray of int64
            Each row's number in the whole source (the same whichever order is read).
        features : pandas.DataFrame
            The feature columns, indexed by the row numbers (rows labelled anomalies left out
            unless ``keep_anomalies``).
        """
        for unit, rows, frame in self._frames(order):
            if self.label is not None:
                y = _check_labels(frame[self.label], self.label, unit.path)
                if not self.keep_anomalies:
                    keep = y == 0
                    frame, rows = frame[keep], rows[keep]
            if len(frame):
                yield rows, frame[self.columns]

    def tables(self) -> Iterator[Table]:
        """Yield every row, in file order, as :func:`oddkit.data.io.iter_table_batches` yields a file's:
        :class:`~oddkit.data.io.Table` batches of at most ``batch_rows`` rows (features, labels, id
        columns), indexed by row number; ``keep_anomalies`` does not apply. How ``oddkit score`` streams
        a folder.
        """
        for unit, _, frame in self._frames(None):
            yield _split_frame(frame, self.label, self.id_cols, unit.path)

    def _frames(self, order: Sequence[int] | None) -> Iterator[tuple[_Unit, np.ndarray, pd.DataFrame]]:
        """(unit, row numbers, every column of the rows) batches, the units in ``order``."""
        order = range(len(self.units)) if order is None else order
        if self.format == "csv":
            starts = self._csv_starts()
        for index in order:
            unit = self.units[index]
            start = unit.start if self.format == "parquet" else starts[index]
            for frame in (self._parquet_frames(unit) if self.format == "parquet" else self._csv_frames(unit)):
                rows = np.arange(start, start + len(frame), dtype=np.int64)
                start += len(frame)
                frame.index = pd.Index(rows)
                self.max_rows_in_memory = max(self.max_rows_in_memory, len(frame))
                yield unit, rows, frame

    def _parquet_frames(self, unit: _Unit) -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        with pq.ParquetFile(unit.path) as file:
            for batch in file.iter_batches(batch_size=self.batch_rows, row_groups=[unit.row_group]):
                if not batch.num_rows:
                    continue
                try:
                    frame = arrow_frame(batch)
                except DataError as exc:  # rows counted within the batch
                    raise DataError(f"{unit.path}, row group {unit.row_group}: {exc}") from None
                yield frame

    def _csv_frames(self, unit: _Unit) -> Iterator[pd.DataFrame]:
        with pd.read_csv(unit.path, chunksize=self.batch_rows) as reader:
            for chunk in reader:
                chunk.columns = [str(c) for c in chunk.columns]
                if len(chunk):
                    yield chunk

    def _csv_starts(self) -> list[int]:
        """The number of each CSV file's first row: the row counts of the files before it (counted
        once, by reading each file's lines in chunks, and then kept)."""
        if getattr(self, "_starts", None) is None:
            starts, total = [], 0
            for unit in self.units:
                starts.append(total)
                with pd.read_csv(unit.path, chunksize=self.batch_rows, usecols=[0]) as reader:
                    total += sum(len(chunk) for chunk in reader)
            self._starts, self.n_rows = starts, total
        return self._starts


def as_source(data, **kwargs) -> TableSource:
    """``data`` itself when it is a :class:`TableSource`, else ``TableSource(data, **kwargs)``."""
    return data if isinstance(data, TableSource) else TableSource(data, **kwargs)


class BoundedSample:
    """A uniform sample of at most ``size`` rows of a stream: the rows with the smallest keys.

    With keys from :func:`row_uniform` the sample is uniform without replacement, and the same
    rows are kept whatever order the stream is read in. Memory: ``size`` rows plus one batch.

    Examples
    --------
    >>> sample = BoundedSample(2)
    >>> sample.add(np.array([0.5, 0.1, 0.9]), np.array([10, 11, 12]))
    >>> sample.values().tolist()
    [10, 11]
    """

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._keys: np.ndarray | None = None
        self._values: np.ndarray | None = None
        self._order: np.ndarray | None = None
        self.seen = 0

    def add(self, keys: np.ndarray, values: np.ndarray, order: np.ndarray | None = None) -> None:
        """Offer rows ``values`` (first axis) with their ``keys``; ``order`` (e.g. row numbers)
        sorts :meth:`values`, default the order offered."""
        self.seen += len(keys)
        order = np.arange(self.seen - len(keys), self.seen) if order is None else np.asarray(order)
        if self._keys is None:
            self._keys, self._values, self._order = np.asarray(keys), np.asarray(values), order
        else:
            self._keys = np.concatenate([self._keys, keys])
            self._values = np.concatenate([self._values, values])
            self._order = np.concatenate([self._order, order])
        if len(self._keys) > self.size:
            keep = np.argpartition(self._keys, self.size - 1)[:self.size]
            self._keys, self._values, self._order = self._keys[keep], self._values[keep], self._order[keep]

    def __len__(self) -> int:
        return 0 if self._keys is None else len(self._keys)

    def values(self) -> np.ndarray | None:
        """The sampled rows in ``order`` (None when nothing was offered)."""
        if self._values is None:
            return None
        return self._values[np.argsort(self._order, kind="stable")]
