"""Turning a table into the float32 matrix detectors learn from.

:class:`TablePreprocessor` is fitted on the training data and saved with the model, so that rows
scored later are transformed exactly as the training rows were: numeric columns standardised with
the training mean and standard deviation, text and category columns one-hot encoded over the
categories seen in training, and (optionally) missing values replaced by the training median.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from oddkit.data.io import (
    check_column_types,
    column_kind,
    default_column_names,
    mostly_numeric_error,
    preview,
    unparseable_cells,
)
from oddkit.exceptions import (
    ColumnMismatchError,
    DataError,
    EmptyDataError,
    ModelFileError,
    NonFiniteError,
    UnseenCategoryError,
)

__all__ = ["FAR_BOUND", "MAX_CATEGORIES", "MAX_TRAINING_MAGNITUDE", "MISSING_CATEGORY", "STANDARDIZED_BOUND",
           "TablePreprocessor"]

MISSING_CATEGORY = "<missing>"
"""The category a missing value (None/NaN) in a categorical column is encoded as."""

MAX_CATEGORIES = 1000
"""Most distinct values a categorical column may have. More usually means an id or free-text column
was passed as a feature, and one-hot encoding it would need one output column per value."""

STANDARDIZED_BOUND = 1e6
"""Standardised values are clipped to ``[-STANDARDIZED_BOUND, STANDARDIZED_BOUND]``.

A training value lies at most ``sqrt(n - 1)`` standard deviations from its column's mean (1,000 for
a million rows), so the bound is far beyond any training value: a row that reaches it holds a value
a million standard deviations out, and every detector labels it an anomaly (see
:meth:`oddkit.BaseDetector.decision_function`). Clipping keeps every later square, distance and
network activation finite, whatever the input (``1e300`` included)."""

FAR_BOUND = 1e4
"""A standardised value at least this far from 0 makes its row far out of range (see
:meth:`TablePreprocessor.out_of_range_rows`): every detector labels the row an anomaly.

No training value can lie that far out unless the training table has more than 10**8 rows (a
training value lies at most ``sqrt(n - 1)`` standard deviations from its column's mean), so such a
value is far outside the training range. It is well below :data:`STANDARDIZED_BOUND` because some
detectors' scores level off a few standard deviations beyond the training data (an isolation
forest's path length, a classifier's confidence) and would label such a row normal. A column that
was constant in training keeps its own units (its scale is 1): a value at least this far from the
constant is far out."""

MAX_TRAINING_MAGNITUDE = 1e150
"""Largest absolute value a numeric training cell may hold.

Beyond it a value's square overflows float64 (at about ``1.3e154``): it cannot be a measurement but
is a sentinel or corruption, and standardising with it would squash every other value of its column
to zero. :meth:`TablePreprocessor.fit` refuses it, naming the column, row and value; scoring accepts
any finite value (it is clipped, see :data:`STANDARDIZED_BOUND`)."""

IMPUTE_OPTIONS = (None, "median")
UNKNOWN_CATEGORY_OPTIONS = ("error", "ignore")
NUMERIC, CATEGORICAL = "numeric", "categorical"
_STATE_VERSION = 2
_READABLE_STATE_VERSIONS = (1, 2)  # 1: before column_types
MEDIAN_SAMPLE_ROWS = 100_000
"""Rows of the uniform sample whose median :meth:`TablePreprocessor.fit_batches` imputes with."""
_SHOWN_COLUMNS = 5
_SHOWN_ROWS = 3


# -- small helpers ----------------------------------------------------------------------------------

def _infinities(block: np.ndarray, before: np.ndarray | None = None) -> np.ndarray:
    """Which infinities each column of ``block`` holds, as flags (1: +inf, 2: -inf, 3: both; float64),
    merged with the flags ``before`` (of earlier batches)."""
    flags = np.isposinf(block).any(axis=0).astype(np.int64) | (2 * np.isneginf(block).any(axis=0).astype(np.int64))
    if before is not None:
        flags |= before.astype(np.int64)
    return flags.astype(np.float64)


def _check_options(impute: Any, unknown_categories: Any, error: Callable[[str], Exception],
                   column_types: Any = None) -> None:
    try:
        check_column_types(column_types)
    except DataError as exc:
        raise error(str(exc)) from None
    if impute not in IMPUTE_OPTIONS:
        raise error(f"impute must be None or 'median', got {impute!r}")
    if unknown_categories not in UNKNOWN_CATEGORY_OPTIONS:
        raise error(f"unknown_categories must be 'error' or 'ignore', got {unknown_categories!r}")


def _row_refs(positions: np.ndarray, index: pd.Index | None) -> str:
    """Row positions for a message, plus the index labels when they differ (a batch of a file)."""
    positions = np.asarray(positions)[:_SHOWN_ROWS]
    text = ", ".join(str(int(p)) for p in positions)
    default = index is None or (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1)
    if not default:
        text += f" (index {', '.join(str(index[int(p)]) for p in positions)})"
    return text


def _category_string(value: Any) -> str:
    """The string a category is stored as. Integral floats print as ints, so that a column read as
    ``[1.0, nan]`` in one batch and ``["1", "a"]`` in another yields the same category ``"1"``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _factorize(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes into the distinct values (-1 = missing) and those values as category strings.

    Hashing each distinct value once keeps this fast on millions of rows of few categories.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, [_category_string(u) for u in uniques]


def _as_input(X: Any) -> pd.DataFrame | np.ndarray:
    """A DataFrame with string column names, or a 2-D numeric ndarray (the fast path)."""
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        if len(set(names)) != len(names):
            duplicated = sorted({n for n in names if names.count(n) > 1})
            raise DataError(
                f"column names must be unique, but {preview(duplicated)} appear more than once; rename them")
        if any(not isinstance(c, str) for c in X.columns):
            X = X.set_axis(names, axis=1)
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise DataError(f"expected a 2-D table (rows x columns), got an array of shape {array.shape}; "
                        "reshape a single feature with X.reshape(-1, 1)")
    if array.dtype.kind in "biuf":
        return array
    return pd.DataFrame(array, columns=default_column_names(array.shape[1]))


def _numeric_column(series: pd.Series, name: str, coerce: bool = False) -> np.ndarray:
    """One numeric column as float64 (NaN for missing). Cells that are not numbers are a DataError
    naming their rows and values, or missing (NaN) when ``coerce`` (the column was declared numeric)."""
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "biuf":
        return series.to_numpy(dtype=np.float64)
    if _holds_dates_or_complex(series):
        raise DataError(f"column {name!r} was numeric in training but now holds {series.dtype} values; pass numbers")
    numbers, bad = unparseable_cells(series)
    if bad.any() and not coerce:
        raise mostly_numeric_error(name, series, bad, when=" in training")
    return numbers


def _holds_dates_or_complex(series: pd.Series) -> bool:
    dtype = series.dtype
    return (pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype)
            or isinstance(dtype, pd.PeriodDtype) or pd.api.types.is_complex_dtype(dtype))


def _non_finite_error(bad: np.ndarray, names: list[str], index: pd.Index | None,
                      coerced: frozenset[str] = frozenset()) -> NonFiniteError:
    counts = bad.sum(axis=0)
    columns = np.flatnonzero(counts)
    parts = [f"column {names[j]!r} has {int(counts[j]):,} NaN/inf values"
             + (" (or cells that are not numbers, missing as column_types declares it numeric)"
                if names[j] in coerced else "")
             + f" (first rows: {_row_refs(np.flatnonzero(bad[:, j]), index)})" for j in columns[:_SHOWN_COLUMNS]]
    if len(columns) > _SHOWN_COLUMNS:
        parts.append(f"and {len(columns) - _SHOWN_COLUMNS} more columns")
    return NonFiniteError("; ".join(parts) + "; clean them or pass impute='median'")


def _check_magnitudes(block: np.ndarray, names: list[str], index: pd.Index | None) -> None:
    """Refuse training cells beyond :data:`MAX_TRAINING_MAGNITUDE`, naming column, rows and values."""
    with np.errstate(invalid="ignore"):
        huge = np.abs(block) > MAX_TRAINING_MAGNITUDE
    if not huge.any():
        return
    j = int(np.flatnonzero(huge.any(axis=0))[0])
    rows = np.flatnonzero(huge[:, j])
    raise DataError(
        f"column {names[j]!r} holds {rows.size:,} value(s) beyond +-{MAX_TRAINING_MAGNITUDE:g} "
        f"({preview(block[rows, j], limit=3)} at row(s) {_row_refs(rows, index)}), too large to be a measurement "
        "(a sentinel or a corrupt cell?) and they would squash the rest of the column to zero; fix or drop "
        "those rows, or set them to NaN and pass impute='median'")


def _state_error(problem: str) -> ModelFileError:
    return ModelFileError(f"the saved preprocessing state is malformed: {problem}; "
                          "the model folder was damaged or edited: restore it or retrain")


def _chan_merge(n: int, mean: np.ndarray, m2: np.ndarray, block: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Merge a block's column means and sums of squared deviations into running ones (Chan, Golub
    and LeVeque's pairwise update): stable in float64 however many blocks are merged."""
    k = block.shape[0]
    if k == 0:
        return n, mean, m2
    block_mean = block.mean(axis=0)
    block_m2 = ((block - block_mean) ** 2).sum(axis=0)
    total = n + k
    delta = block_mean - mean
    return total, mean + delta * (k / total), m2 + block_m2 + delta ** 2 * (n * k / total)


def _magnitude_divisor(magnitude: np.ndarray) -> np.ndarray:
    """What each column is divided by before its mean and spread are taken: its largest magnitude
    when that is beyond 1e100 (the sum of squares could overflow) or below 1e-100 (the squares
    underflow: below about 1e-162 the column would look constant), 1 otherwise."""
    return np.where((magnitude > 1e100) | ((magnitude < 1e-100) & (magnitude > 0)), magnitude, 1.0)


def _center_and_scale(low: np.ndarray, high: np.ndarray, mean: np.ndarray, std: np.ndarray):
    """center_ and scale_ from the columns' range, mean and standard deviation. A constant column's
    computed std can be a rounding-error 1e-17 rather than 0, which would blow tiny differences up;
    centring on the value itself with scale 1 gives exact zeros."""
    constant = low == high
    center = np.where(constant, low, mean)
    scale = np.where(constant | ~(std > 0), 1.0, std)
    return center.astype(np.float64), scale.astype(np.float64)


class _RunningMoments:
    """Column ranges, means and sums of squared deviations merged batch by batch (:func:`_chan_merge`)
    under :meth:`TablePreprocessor._center_scale`'s magnitude rule: a column is merged divided by
    :func:`_magnitude_divisor` of its largest magnitude so far, the running sums rescaled when that
    divisor changes, so that tiny or huge columns keep their spread as :meth:`TablePreprocessor.fit`
    does. Columns between 1e-100 and 1e100 keep divisor 1 and are merged exactly as raw values."""

    def __init__(self, width: int):
        self.n = 0
        self.mean, self.m2 = np.zeros(width), np.zeros(width)
        self.low, self.high = np.full(width, np.inf), np.full(width, -np.inf)
        self.divisor = np.ones(width)

    def add(self, block: np.ndarray) -> None:
        if block.shape[0] == 0:
            return
        self.low = np.minimum(self.low, block.min(axis=0))
        self.high = np.maximum(self.high, block.max(axis=0))
        divisor = _magnitude_divisor(np.maximum(np.abs(self.low), np.abs(self.high)))
        if self.n and (divisor != self.divisor).any():
            # The divisor grows with the largest magnitude, except from 1 for a column of zeros so
            # far, whose sums are 0 whatever they are multiplied by.
            ratio = np.divide(self.divisor, divisor, out=np.ones_like(divisor), where=self.divisor < divisor)
            self.mean, self.m2 = self.mean * ratio, self.m2 * ratio ** 2
        self.divisor = divisor
        self.n, self.mean, self.m2 = _chan_merge(self.n, self.mean, self.m2, block / divisor)

    def center_scale(self) -> tuple[np.ndarray, np.ndarray]:
        std = np.sqrt(np.maximum(self.m2, 0.0) / max(self.n, 1)) * self.divisor
        return _center_and_scale(self.low, self.high, self.mean * self.divisor, std)


# -- the preprocessor -------------------------------------------------------------------------------

class TablePreprocessor:
    """Standardise numeric columns and one-hot encode categorical ones, as fitted on training data.

    Numeric columns (int, float, bool) become ``(x - mean) / std`` with the training statistics
    (a constant column gets scale 1, so it becomes all zeros). Text, object and category columns
    are one-hot encoded over the values seen in training, sorted as strings; a missing value is its
    own category ``"<missing>"``. Each input column expands to its output column(s) in place, so
    the output keeps the input's column order.

    Parameters
    ----------
    impute : {None, "median"}, default None
        None: NaN or inf in a numeric column raises :class:`NonFiniteError`. ``"median"``: NaN (a
        missing value) is replaced by the column's median of the finite training values (0 if there
        are none), and so is an infinity of a sign the column held in training (a value it takes,
        e.g. a ratio over zero); an infinity the column never held is a value far outside the training
        range, clipped like one, and the row scores as out of range (an anomaly, never labelled normal).
        Training rows' infinities are replaced by the median for the mean and standard deviation.
    unknown_categories : {"error", "ignore"}, default "error"
        What :meth:`transform` does with a categorical value never seen in training: raise
        :class:`UnseenCategoryError`, or encode it as all zeros in that column's outputs.
    column_types : dict of str to {"numeric", "categorical"}, or None, default None
        Column kinds decided by the user instead of by :func:`oddkit.data.io.column_kind`'s rules
        (which refuse a text column that is mostly numbers, holds dates, or identifies rows).
        ``"numeric"``: cells that are not numbers become missing, then ``impute`` decides (also
        when scoring). ``"categorical"``: one-hot encoded even when it looks like numbers, dates
        or an identifier. Naming a column ``X`` lacks, or another kind, is a :class:`DataError`.

    Notes
    -----
    Standardised values are clipped to ``[-STANDARDIZED_BOUND, STANDARDIZED_BOUND]`` (a million
    training standard deviations), so any finite value scores finitely; a row holding a value
    ``FAR_BOUND`` (ten thousand training standard deviations) or more out is an anomaly to every
    detector (:meth:`out_of_range_rows`); a training cell beyond ``MAX_TRAINING_MAGNITUDE`` (1e150)
    is refused, naming its column and row.

    Attributes
    ----------
    feature_names_in_ : list of str
        Input columns; ``"x0"``, ``"x1"``, ... when fitted on an array.
    n_features_in_ : int
    kinds_ : list of str
        ``"numeric"`` or ``"categorical"`` for each input column.
    numeric_columns_, categorical_columns_ : list of str
    categories_ : dict of str to list of str
        The categories of each categorical column, sorted.
    center_, scale_ : ndarray of float64 of shape (n_numeric,)
        Mean and standard deviation of each numeric column (scale 1 for constant columns).
    medians_ : ndarray of float64 of shape (n_numeric,), or None
        The values missing values are replaced by; None unless ``impute="median"``.
    infinities_seen_ : ndarray of float64 of shape (n_numeric,), or None
        With ``impute="median"``, which infinities each numeric column held in training: 1 for
        +inf, 2 for -inf, 3 for both, 0 for neither; those are imputed, the others clipped as far
        out of range. None unless ``impute="median"``; all 3 for a model saved before this was kept.
    output_names_ : list of str
        Output column names: a numeric column keeps its name, a category is ``"column=value"``.
    n_outputs_ : int
    output_groups_ : list of (str, ndarray of int64)
        Each input column, in order, with the indices of its output columns.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"amount": [10.0, 20.0, 30.0], "color": ["red", "blue", "red"]})
    >>> pre = TablePreprocessor().fit(X)
    >>> pre.output_names_
    ['amount', 'color=blue', 'color=red']
    >>> pre.transform(X).astype(float).round(3).tolist()
    [[-1.225, 0.0, 1.0], [0.0, 1.0, 0.0], [1.225, 0.0, 1.0]]
    """

    def __init__(self, impute: str | None = None, unknown_categories: str = "error",
                 column_types: dict[str, str] | None = None) -> None:
        _check_options(impute, unknown_categories, DataError, column_types)
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.column_types = None if column_types is None else dict(column_types)

    def __repr__(self) -> str:
        extra = "" if self.column_types is None else f", column_types={self.column_types!r}"
        return f"TablePreprocessor(impute={self.impute!r}, unknown_categories={self.unknown_categories!r}{extra})"

    def _coerced(self) -> frozenset[str]:
        """The columns declared numeric: their cells that are not numbers count as missing."""
        return frozenset(n for n, k in (self.column_types or {}).items() if k == NUMERIC)

    # -- fitting ------------------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame | np.ndarray) -> TablePreprocessor:
        """Learn column kinds, statistics and categories from training data.

        Parameters
        ----------
        X : pandas.DataFrame or 2-D array-like
            Training rows. A DataFrame's string, object and category columns are categorical.

        Returns
        -------
        TablePreprocessor
            ``self``.

        Raises
        ------
        EmptyDataError
            ``X`` has no rows or no columns.
        NonFiniteError
            NaN/inf in a numeric column and ``impute`` is None.
        DataError
            Columns of an unusable type, duplicate names, or too many categories.
        """
        _check_options(self.impute, self.unknown_categories, DataError, self.column_types)
        data = _as_input(X)
        if data.shape[0] == 0 or data.shape[1] == 0:
            raise EmptyDataError(f"cannot fit on data of shape {data.shape}; pass at least one row and one column")
        declared = check_column_types(self.column_types, data.columns if isinstance(data, pd.DataFrame)
                                      else default_column_names(data.shape[1])) or {}
        if isinstance(data, np.ndarray) and any(k == CATEGORICAL for k in declared.values()):
            data = pd.DataFrame(data, columns=default_column_names(data.shape[1]))
        if isinstance(data, np.ndarray):
            names = default_column_names(data.shape[1])
            kinds = [NUMERIC] * len(names)
        else:
            names = list(data.columns)
            kinds = [column_kind(data[name], name, declared.get(name)) for name in names]
        numeric = [n for n, k in zip(names, kinds) if k == NUMERIC]

        block = self._numeric_block(data, numeric)
        bad = ~np.isfinite(block)
        medians = infinities = None
        if self.impute == "median":
            medians, infinities = self._finite_medians(block, bad), _infinities(block)
            np.copyto(block, np.broadcast_to(medians, block.shape), where=bad)
        elif bad.any():
            raise _non_finite_error(bad, numeric, None if isinstance(data, np.ndarray) else data.index,
                                    self._coerced())
        _check_magnitudes(block, numeric, None if isinstance(data, np.ndarray) else data.index)

        categories = {}
        for name, kind in zip(names, kinds):
            if kind == CATEGORICAL:
                codes, strings = _factorize(data[name])
                seen = set(strings) | ({MISSING_CATEGORY} if (codes < 0).any() else set())
                if len(seen) > MAX_CATEGORIES:
                    raise DataError(
                        f"column {name!r} has {len(seen):,} distinct values (at most {MAX_CATEGORIES:,} can be "
                        "one-hot encoded); if it identifies rows pass it in id_cols, otherwise drop it or "
                        "encode it as numbers")
                categories[name] = sorted(seen)

        self._set_layout(names, kinds, categories)
        self.center_, self.scale_ = self._center_scale(block)
        self.medians_, self.infinities_seen_ = medians, infinities
        return self

    def fit_batches(self, batches, median_sample_rows: int = MEDIAN_SAMPLE_ROWS, seed: int = 0) -> TablePreprocessor:
        """Learn what :meth:`fit` learns from a table read in batches, holding one batch at a time.

        Column kinds are judged on the first batch (by :func:`oddkit.data.io.column_kind`'s
        rules, or ``column_types``); later batches must agree. Means and standard deviations are
        merged batch by batch with Chan et al.'s pairwise update (each batch's mean and sum of
        squared deviations, combined in float64; a column of values beyond 1e100 or below 1e-100
        divided by its largest magnitude, as :meth:`fit` does), which equals :meth:`fit`'s two-pass
        values to float rounding (about 1e-12 relative). Categories are collected as sets. With
        ``impute="median"`` the median is that of a uniform sample of at most
        ``median_sample_rows`` rows (the rows whose :func:`oddkit.data.stream.row_uniform` key
        is smallest): an approximate median, within about ``1/sqrt(median_sample_rows)`` in
        quantile (0.3 percentile points for 100,000 rows) of the exact one.

        Parameters
        ----------
        batches : iterable of (ndarray of int64, pandas.DataFrame)
            ``(row_numbers, rows)`` pairs, as :meth:`oddkit.data.stream.TableSource.batches`
            yields them; the row numbers name rows in error messages and key the median sample.
        median_sample_rows : int, default 100_000
        seed : int, default 0
            Seeds the median sample.

        Returns
        -------
        TablePreprocessor
            ``self``, with ``n_rows_seen_`` (rows read) set besides :meth:`fit`'s attributes.

        Raises
        ------
        EmptyDataError, NonFiniteError, DataError
            As :meth:`fit`, naming the row numbers of the source.
        """
        from oddkit.data.stream import row_uniform

        _check_options(self.impute, self.unknown_categories, DataError, self.column_types)
        names = kinds = numeric = declared = None
        count, moments = 0, None
        categories: dict[str, set[str]] = {}
        sample, sample_keys, infinities = None, None, None
        for rows, frame in batches:
            frame = _as_input(frame)
            if not isinstance(frame, pd.DataFrame):
                frame = pd.DataFrame(frame, columns=default_column_names(frame.shape[1]))
            if len(frame) == 0:
                continue
            if names is None:
                names = list(frame.columns)
                declared = check_column_types(self.column_types, names) or {}
                kinds = [column_kind(frame[name], name, declared.get(name)) for name in names]
                numeric = [c for c, k in zip(names, kinds) if k == NUMERIC]
                categories = {c: set() for c, k in zip(names, kinds) if k == CATEGORICAL}
                moments = _RunningMoments(len(numeric))
            elif list(frame.columns) != names:
                raise ColumnMismatchError(f"a batch has the columns {preview(frame.columns, limit=10)}, the first had "
                                          f"{preview(names, limit=10)}; every batch must have the same columns")
            index = pd.Index(rows)
            count += len(frame)
            block = self._numeric_block(frame, numeric)
            bad = ~np.isfinite(block)
            if self.impute == "median":
                infinities = _infinities(block, infinities)
                keys = row_uniform(rows, seed)
                sample = block if sample is None else np.concatenate([sample, block])
                sample_keys = keys if sample_keys is None else np.concatenate([sample_keys, keys])
                if len(sample_keys) > median_sample_rows:
                    keep = np.argpartition(sample_keys, median_sample_rows - 1)[:median_sample_rows]
                    sample, sample_keys = sample[keep], sample_keys[keep]
                block = np.where(bad, np.nan, block)
            elif bad.any():
                raise _non_finite_error(bad, numeric, index, self._coerced())
            _check_magnitudes(np.where(bad, 0.0, block), numeric, index)
            for name in categories:
                codes, strings = _factorize(frame[name])
                categories[name].update(strings)
                if (codes < 0).any():
                    categories[name].add(MISSING_CATEGORY)
                if len(categories[name]) > MAX_CATEGORIES:
                    raise DataError(
                        f"column {name!r} has more than {MAX_CATEGORIES:,} distinct values (at most {MAX_CATEGORIES:,} "
                        "can be one-hot encoded); if it identifies rows pass it in id_cols, otherwise drop it or "
                        "encode it as numbers")
            if self.impute == "median":
                continue  # the statistics of imputed columns need the medians: a second pass below
            moments.add(block)
        if names is None:
            raise EmptyDataError("the data has no rows; pass at least two rows to fit")
        medians = None
        if self.impute == "median":
            medians = self._finite_medians(sample, ~np.isfinite(sample))
        self._set_layout(names, kinds, {name: sorted(cats) for name, cats in categories.items()})
        self.medians_, self.infinities_seen_ = medians, infinities
        self.n_rows_seen_ = count
        if self.impute != "median":
            self.center_, self.scale_ = moments.center_scale()
        return self

    def fit_moments(self, batches) -> TablePreprocessor:
        """The second pass of :meth:`fit_batches` with ``impute="median"``: the means and standard
        deviations of the columns once missing values are replaced by the (sampled) medians, as
        :meth:`fit` computes them. ``batches`` as for :meth:`fit_batches`."""
        numeric = self.numeric_columns_
        moments = _RunningMoments(len(numeric))
        for rows, frame in batches:
            block = self._numeric_block(frame, numeric)
            bad = ~np.isfinite(block)
            np.copyto(block, np.broadcast_to(self.medians_, block.shape), where=bad)
            moments.add(block)
        self.n_rows_seen_ = moments.n
        self.center_, self.scale_ = moments.center_scale()
        return self

    def fit_transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same rows."""
        return self.fit(X).transform(X)

    @staticmethod
    def _finite_medians(block: np.ndarray, bad: np.ndarray) -> np.ndarray:
        if not bad.any():
            return np.median(block, axis=0) if block.size else np.zeros(block.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": such a column gets 0
            medians = np.nanmedian(np.where(bad, np.nan, block), axis=0)
        return np.where(np.isnan(medians), 0.0, medians)

    @staticmethod
    def _center_scale(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if block.shape[1] == 0:
            return np.zeros(0), np.ones(0)
        low, high = block.min(axis=0), block.max(axis=0)
        divisor = _magnitude_divisor(np.maximum(np.abs(low), np.abs(high)))
        scaled = block / divisor
        return _center_and_scale(low, high, scaled.mean(axis=0) * divisor, scaled.std(axis=0) * divisor)

    def _set_layout(self, names: list[str], kinds: list[str], categories: dict[str, list[str]]) -> None:
        """Derive every name and index attribute from the columns, their kinds and categories."""
        self.feature_names_in_ = list(names)
        self.n_features_in_ = len(names)
        self.kinds_ = list(kinds)
        self.numeric_columns_ = [n for n, k in zip(names, kinds) if k == NUMERIC]
        self.categorical_columns_ = [n for n, k in zip(names, kinds) if k == CATEGORICAL]
        self.categories_ = {n: list(categories[n]) for n in self.categorical_columns_}
        self.output_names_, self.output_groups_ = [], []
        numeric_outputs = []
        self._category_offsets = {}
        self._category_lookup = {}
        for name, kind in zip(names, kinds):
            start = len(self.output_names_)
            if kind == NUMERIC:
                numeric_outputs.append(start)
                self.output_names_.append(name)
            else:
                self._category_offsets[name] = start
                self._category_lookup[name] = {c: i for i, c in enumerate(self.categories_[name])}
                self.output_names_.extend(f"{name}={c}" for c in self.categories_[name])
            self.output_groups_.append((name, np.arange(start, len(self.output_names_), dtype=np.int64)))
        self.n_outputs_ = len(self.output_names_)
        self._numeric_outputs = np.asarray(numeric_outputs, dtype=np.int64)
        self._group_starts = np.asarray([idx[0] for _, idx in self.output_groups_], dtype=np.int64)

    # -- transforming -------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "feature_names_in_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this TablePreprocessor is not fitted yet; call fit(X) first")

    def _numeric_block(self, data: pd.DataFrame | np.ndarray, numeric: list[str]) -> np.ndarray:
        """The numeric columns as a fresh float64 array (safe to modify in place)."""
        if isinstance(data, np.ndarray):
            return np.array(data, dtype=np.float64, order="C")
        # Fortran order keeps each column's write contiguous, several times faster on wide tables.
        block = np.empty((len(data), len(numeric)), dtype=np.float64, order="F")
        coerced = self._coerced()
        for j, name in enumerate(numeric):
            block[:, j] = _numeric_column(data[name], name, coerce=name in coerced)
        return block

    def _aligned(self, X: Any) -> pd.DataFrame | np.ndarray:
        data = _as_input(X)
        if isinstance(data, np.ndarray):
            if data.shape[1] != self.n_features_in_:
                raise ColumnMismatchError(
                    f"X has {data.shape[1]} columns but the preprocessor was fitted on {self.n_features_in_}; "
                    f"pass the training columns in the training order: {preview(self.feature_names_in_, limit=20)}")
            if not self.categorical_columns_:
                return data
            return pd.DataFrame(data, columns=self.feature_names_in_)
        missing = [n for n in self.feature_names_in_ if n not in data.columns]
        if missing:
            raise ColumnMismatchError(
                f"X lacks column(s) {preview(missing)} seen in training; pass every training column "
                f"({preview(self.feature_names_in_, limit=20)})")
        return data

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Encode rows as in training.

        Parameters
        ----------
        X : pandas.DataFrame or 2-D array-like
            Rows with the training columns (a DataFrame's columns are matched by name; extra
            columns are ignored).

        Returns
        -------
        numpy.ndarray of float32 of shape (n_samples, n_outputs_), C-contiguous

        Raises
        ------
        ColumnMismatchError
            A training column is missing, or an array has the wrong width.
        NonFiniteError
            NaN/inf in a numeric column and ``impute`` is None.
        UnseenCategoryError
            A categorical value not seen in training and ``unknown_categories="error"``.
        DataError
            A numeric column that now holds text.

        Examples
        --------
        >>> import numpy as np
        >>> pre = TablePreprocessor(impute="median").fit(np.array([[1.0], [2.0], [3.0]]))
        >>> pre.transform(np.array([[np.nan]])).tolist()
        [[0.0]]
        """
        self._check_fitted()
        data = self._aligned(X)
        index = None if isinstance(data, np.ndarray) else data.index
        block = self._numeric_block(data, self.numeric_columns_)
        bad = ~np.isfinite(block)
        if bad.any():
            if self.medians_ is None:
                raise _non_finite_error(bad, self.numeric_columns_, index, self._coerced())
            # Missing values and the infinities a column held in training take the median; any other
            # infinity stays, to be clipped below as far out of range (the row then scores as an anomaly).
            np.copyto(block, np.broadcast_to(self.medians_, block.shape), where=self._imputed(block))
        block -= self.center_
        with np.errstate(over="ignore"):  # a huge value over a small scale: inf, clipped just below
            block /= self.scale_
        np.clip(block, -STANDARDIZED_BOUND, STANDARDIZED_BOUND, out=block)
        if not self.categorical_columns_:
            return np.ascontiguousarray(block, dtype=np.float32)

        out = np.zeros((len(data), self.n_outputs_), dtype=np.float32)
        out[:, self._numeric_outputs] = block
        for name in self.categorical_columns_:
            codes, strings = _factorize(data[name])
            lookup = self._category_lookup[name]
            # The extra last entry is where the missing-value code -1 lands.
            position = np.asarray([lookup.get(s, -1) for s in strings] + [lookup.get(MISSING_CATEGORY, -1)],
                                  dtype=np.int64)[codes]
            known = position >= 0
            if not known.all():
                if self.unknown_categories == "error":
                    raise self._unseen_error(name, strings, codes, known, index)
                rows = np.flatnonzero(known)
                out[rows, self._category_offsets[name] + position[rows]] = 1.0
            else:
                out[np.arange(len(out)), self._category_offsets[name] + position] = 1.0
        return out

    def _imputed(self, block: np.ndarray) -> np.ndarray:
        """Which cells of a numeric ``block`` :meth:`transform` replaces by the median: NaN, and an
        infinity of a sign the column held in training (``infinities_seen_``)."""
        seen = getattr(self, "infinities_seen_", None)
        if seen is None:
            return ~np.isfinite(block)
        flags = seen.astype(np.int64)
        return np.isnan(block) | (np.isposinf(block) & (flags & 1).astype(bool)) \
            | (np.isneginf(block) & (flags & 2).astype(bool))

    def out_of_range_rows(self, Z: np.ndarray) -> np.ndarray:
        """Which rows of :meth:`transform`'s output hold a numeric value at least :data:`FAR_BOUND`
        (ten thousand training standard deviations) out, clipped at :data:`STANDARDIZED_BOUND` or not.

        Parameters
        ----------
        Z : ndarray of shape (n_samples, n_outputs_)

        Returns
        -------
        ndarray of bool of shape (n_samples,)
        """
        self._check_fitted()
        if not len(self._numeric_outputs):
            return np.zeros(len(Z), dtype=bool)
        return (np.abs(Z[:, self._numeric_outputs]) >= FAR_BOUND).any(axis=1)

    def _unseen_error(self, name: str, strings: list[str], codes: np.ndarray, known: np.ndarray,
                      index: pd.Index | None) -> UnseenCategoryError:
        rows = np.flatnonzero(~known)
        unseen_codes = pd.unique(codes[rows])
        values = [MISSING_CATEGORY if c < 0 else strings[c] for c in unseen_codes]
        return UnseenCategoryError(
            f"column {name!r} has {len(values):,} value(s) never seen in training ({preview(values)}) in "
            f"{len(rows):,} row(s) (first rows: {_row_refs(rows, index)}); known values are "
            f"{preview(self.categories_[name], limit=10)}. Pass unknown_categories='ignore' to encode them "
            "as all zeros, or retrain with data that has them")

    def group_sum(self, per_output: np.ndarray) -> np.ndarray:
        """Sum per-output values (e.g. squared reconstruction errors) back to input columns.

        Parameters
        ----------
        per_output : ndarray of shape (n_samples, n_outputs_)

        Returns
        -------
        ndarray of shape (n_samples, n_features_in_)
            Column ``j`` is the sum of the outputs in ``output_groups_[j]``.

        Raises
        ------
        ColumnMismatchError
            When ``per_output`` is not 2-D with ``n_outputs_`` columns.

        Examples
        --------
        >>> import pandas as pd, numpy as np
        >>> pre = TablePreprocessor().fit(pd.DataFrame({"a": [1.0, 2.0], "c": ["x", "y"]}))
        >>> pre.group_sum(np.array([[1.0, 2.0, 3.0]])).tolist()
        [[1.0, 5.0]]
        """
        self._check_fitted()
        values = np.asarray(per_output)
        if values.ndim != 2 or values.shape[1] != self.n_outputs_:
            raise ColumnMismatchError(
                f"expected an array of shape (n_samples, {self.n_outputs_}) (one column per output), "
                f"got {values.shape}")
        if self.n_outputs_ == self.n_features_in_:
            return values.copy()
        # Groups are contiguous and in order, so one reduceat sums them all.
        return np.add.reduceat(values, self._group_starts, axis=1)

    def inverse_transform(self, Z: np.ndarray) -> pd.DataFrame:
        """Map encoded rows back to the input's units and categories.

        Numeric outputs are un-standardised; each categorical column takes the category whose
        output is largest (``"<missing>"`` becomes None).

        Parameters
        ----------
        Z : ndarray of shape (n_samples, n_outputs_)

        Returns
        -------
        pandas.DataFrame
            Columns ``feature_names_in_``: float64 for numeric ones, object (str) for categorical ones.

        Raises
        ------
        ColumnMismatchError
            When ``Z`` is not 2-D with ``n_outputs_`` columns.
        """
        self._check_fitted()
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != self.n_outputs_:
            raise ColumnMismatchError(f"expected an array of shape (n_samples, {self.n_outputs_}), got {Z.shape}")
        numeric = Z[:, self._numeric_outputs] * self.scale_ + self.center_
        columns: dict[str, Any] = {}
        j = 0
        for (name, outputs), kind in zip(self.output_groups_, self.kinds_):
            if kind == NUMERIC:
                columns[name] = numeric[:, j]
                j += 1
            else:
                labels = np.asarray([None if c == MISSING_CATEGORY else c for c in self.categories_[name]],
                                    dtype=object)
                columns[name] = pd.Series(labels[np.argmax(Z[:, outputs], axis=1)], dtype=object)
        return pd.DataFrame(columns, columns=self.feature_names_in_)

    # -- persistence --------------------------------------------------------------------------------

    def get_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """The fitted state, split into arrays (for safetensors) and JSON-serialisable metadata.

        Returns
        -------
        arrays : dict of str to ndarray
            ``"center"``, ``"scale"`` and, with ``impute="median"``, ``"medians"`` (float64).
        meta : dict
            Options, column names, kinds and categories: only str, int, list and dict values.

        Examples
        --------
        >>> import numpy as np
        >>> pre = TablePreprocessor().fit(np.eye(3))
        >>> arrays, meta = pre.get_state()
        >>> clone = TablePreprocessor.from_state(arrays, meta)
        """
        self._check_fitted()
        arrays = {"center": np.array(self.center_, dtype=np.float64), "scale": np.array(self.scale_, dtype=np.float64)}
        if self.medians_ is not None:
            arrays["medians"] = np.array(self.medians_, dtype=np.float64)
            seen = getattr(self, "infinities_seen_", None)
            arrays["infinities_seen"] = np.array(np.full(len(self.medians_), 3.0) if seen is None else seen,
                                                 dtype=np.float64)
        meta = {
            "version": _STATE_VERSION,
            "impute": self.impute,
            "unknown_categories": self.unknown_categories,
            "column_types": None if self.column_types is None else dict(self.column_types),
            "columns": list(self.feature_names_in_),
            "kinds": list(self.kinds_),
            "categories": {name: list(cats) for name, cats in self.categories_.items()},
        }
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict) -> TablePreprocessor:
        """Rebuild a preprocessor from :meth:`get_state`'s output; it transforms bit-identically.

        Everything is type- and shape-checked; nothing in ``meta`` is evaluated.

        Raises
        ------
        ModelFileError
            When ``arrays`` or ``meta`` are malformed.
        """
        if not isinstance(meta, dict):
            raise _state_error(f"expected a JSON object, got {type(meta).__name__}")
        version = meta.get("version")
        if isinstance(version, bool) or version not in _READABLE_STATE_VERSIONS:
            raise _state_error(f"unknown state version {version!r} (this oddkit reads {_READABLE_STATE_VERSIONS})")
        expected = {"version", "impute", "unknown_categories", "columns", "kinds", "categories"}
        if version >= 2:
            expected.add("column_types")
        if set(meta) != expected:
            raise _state_error(f"expected the keys {sorted(expected)}, got {sorted(map(str, meta))}")
        column_types = meta.get("column_types")
        _check_options(meta["impute"], meta["unknown_categories"], _state_error, column_types)
        names, kinds, categories = meta["columns"], meta["kinds"], meta["categories"]
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)
                and len(set(names)) == len(names)):
            raise _state_error("'columns' must be a non-empty list of distinct strings")
        if not (isinstance(kinds, list) and len(kinds) == len(names)
                and all(k in (NUMERIC, CATEGORICAL) for k in kinds)):
            raise _state_error("'kinds' must list 'numeric' or 'categorical' for each column")
        categorical = [n for n, k in zip(names, kinds) if k == CATEGORICAL]
        if not isinstance(categories, dict) or set(categories) != set(categorical):
            raise _state_error("'categories' must have an entry for each categorical column and no other")
        for name, cats in categories.items():
            if not (isinstance(cats, list) and cats and all(isinstance(c, str) for c in cats)
                    and cats == sorted(set(cats))):
                raise _state_error(f"the categories of {name!r} must be a non-empty sorted list of distinct strings")

        n_numeric = len(names) - len(categorical)
        wanted = {"center", "scale"} | ({"medians", "infinities_seen"} if meta["impute"] == "median" else set())
        if isinstance(arrays, dict) and meta["impute"] == "median" and "infinities_seen" not in arrays:
            wanted.discard("infinities_seen")  # saved before it was kept: every infinity imputed, as then
        if not isinstance(arrays, dict) or set(arrays) != wanted:
            raise _state_error(f"expected the arrays {sorted(wanted)}, got "
                               f"{sorted(map(str, arrays)) if isinstance(arrays, dict) else type(arrays).__name__}")
        for key, array in arrays.items():
            if not (isinstance(array, np.ndarray) and array.dtype.kind == "f" and array.shape == (n_numeric,)
                    and np.isfinite(array).all()):
                raise _state_error(f"array {key!r} must hold {n_numeric} finite floats")
        if (arrays["scale"] <= 0).any():
            raise _state_error("array 'scale' must be positive")
        if "infinities_seen" in arrays and not np.isin(arrays["infinities_seen"], (0.0, 1.0, 2.0, 3.0)).all():
            raise _state_error("array 'infinities_seen' must hold 0, 1, 2 or 3 for each numeric column")

        if column_types is not None and not set(column_types) <= set(names):
            raise _state_error("'column_types' names columns that are not among 'columns'")
        if column_types is not None and any(
                (k == CATEGORICAL) != (kinds[names.index(n)] == CATEGORICAL) for n, k in column_types.items()):
            raise _state_error("'column_types' contradicts 'kinds'")
        self = cls(impute=meta["impute"], unknown_categories=meta["unknown_categories"], column_types=column_types)
        self._set_layout(names, kinds, categories)
        self.center_ = arrays["center"].astype(np.float64)
        self.scale_ = arrays["scale"].astype(np.float64)
        self.medians_ = arrays["medians"].astype(np.float64) if "medians" in arrays else None
        self.infinities_seen_ = None if self.medians_ is None else (
            arrays["infinities_seen"].astype(np.float64) if "infinities_seen" in arrays
            else np.full(len(self.medians_), 3.0))
        return self
