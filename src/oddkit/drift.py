"""Drift: does new data still look like the data a model's threshold was chosen on?

A threshold chosen on a dev set keeps its promise (a false-alarm rate, a recall) only while new
normal rows look like the dev set's normal rows. When they move (a sensor is recalibrated, a field
changes unit, an upstream join starts writing missing values, customers change), the alert volume
moves with them and nothing in the scores says why. This module checks it.

A :class:`DriftReference` summarises held-out normal rows, as the model saw them: their anomaly
scores, and for a model fitted on a table each column's distribution over ten bins (numeric
columns at the reference's deciles, with a bin for missing values; categorical columns by their
most frequent categories, the rest as "other"). It holds no rows: only the scores and the counts
per bin. :func:`record_reference` attaches one to a detector, which saves it with the model (the
command ``oddkit threshold`` records the dev set's normal rows as it chooses the threshold).

:func:`check_drift` compares new rows against it and returns a :class:`DriftReport`:

- **alerts**: the share of rows at or above the threshold, against the reference's share (Fisher's
  exact test): the decision a threshold makes, and what drift breaks first;
- **scores**: the score distribution (two-sample Kolmogorov-Smirnov test, and the population
  stability index over the reference's score deciles);
- **columns**: each column's distribution (chi-square test of homogeneity over its bins, merged
  where they expect fewer than 5 rows, Fisher's exact test when two remain, missing values tested
  apart; and the population stability index), which says what moved.

All the p-values form one family, adjusted by Holm's method, so that data drawn like the
reference is reported as drifted with probability at most ``alpha`` whatever the number of columns
(benchmarks/DRIFT.md measures it). A significant change is reported only when it is also large:
a population stability index of at least ``min_psi`` (0.1, the usual line between "stable" and
"moderate shift"), or an alert rate changed by a factor of at least ``min_alert_ratio``; on large
batches a tiny, harmless shift is otherwise always significant.

References
----------
.. [1] Siddiqi, N. (2006). *Credit Risk Scorecards*. Wiley. (The population stability index.)
.. [2] Holm, S. (1979). A simple sequentially rejective multiple test procedure. *Scandinavian
   Journal of Statistics*, 6(2), 65-70.
.. [3] Rabanser, S., Günnemann, S. and Lipton, Z. C. (2019). Failing loudly: an empirical study of
   methods for detecting dataset shift. *NeurIPS*. (Univariate tests with a multiple-testing
   correction detect most shifts as well as multivariate ones.)
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oddkit.exceptions import DataError, OddkitError

__all__ = ["ColumnDrift", "ColumnReference", "DriftReference", "DriftReport", "DriftWindow", "check_drift",
           "check_drift_batches", "record_reference"]

MAX_REFERENCE_SCORES = 100_000
"""Most reference scores kept: a larger reference keeps this many of its quantiles, evenly spaced."""
NUMERIC_BINS = 10
"""Bins of a numeric column: at the reference's deciles (fewer where deciles tie), plus one for missing values."""
MAX_CATEGORIES = 20
"""Categories of a categorical column kept by name (the most frequent); the rest count as "other"."""
MIN_ROWS = 20
"""Fewest rows a reference may hold, and below which a check warns that it can find only gross drift."""
NUMERIC, CATEGORICAL = "numeric", "categorical"
ALPHA, MIN_PSI, MIN_ALERT_RATIO = 0.01, 0.1, 1.25
"""The defaults of :func:`check_drift`'s settings, which ``oddkit drift``, ``GET /drift`` and the report use too."""
_MAX_CATEGORY_CHARS = 200


def model_fingerprint(detector) -> str:
    """The sha256 of a fitted detector's training scores: it changes whenever the detector is fitted
    again (other data, other parameters, another seed), so a reference recorded before a refit is
    recognised as stale."""
    scores = np.ascontiguousarray(detector.decision_scores_, dtype=np.float64)
    return hashlib.sha256(scores.view(np.uint8)).hexdigest()


def _table_preprocessor(detector):
    from oddkit.data.preprocess import TablePreprocessor

    preprocessor = getattr(detector, "preprocessor_", None)
    return preprocessor if isinstance(preprocessor, TablePreprocessor) else None


def _numbers_only(preprocessor, X, names: pd.Index) -> np.ndarray | None:
    """``X`` as float64 when it holds exactly the model's columns (``names``), in order, all of numeric
    dtypes, and the model has no categorical column: one conversion instead of one per column (a
    service's one-row requests); else None."""
    if preprocessor.categorical_columns_:
        return None
    if isinstance(X, pd.DataFrame) and X.columns.equals(names):
        X = X.to_numpy()  # object dtype unless every column is numeric
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind in "biuf" and X.shape[1] == len(names):
        return X.astype(np.float64, copy=False)
    return None


def _column_values(detector, X, names: pd.Index | None = None) -> dict[str, np.ndarray]:
    """Each column of table ``X`` as the model reads it: numeric columns as float64 (NaN = missing),
    categorical ones as category strings (None = missing); {} for a model not fitted on a table.
    ``names``: the model's columns as an Index, when the caller keeps one."""
    from oddkit.data.preprocess import _factorize

    preprocessor = _table_preprocessor(detector)
    if preprocessor is None:
        return {}
    numeric = preprocessor.numeric_columns_
    block = _numbers_only(preprocessor, X, pd.Index(preprocessor.feature_names_in_) if names is None else names)
    if block is not None:
        return {name: block[:, j] for j, name in enumerate(numeric)}
    data = preprocessor._aligned(X)
    block = preprocessor._numeric_block(data, numeric)
    values: dict[str, np.ndarray] = {name: block[:, j] for j, name in enumerate(preprocessor.numeric_columns_)}
    for name in preprocessor.categorical_columns_:
        codes, strings = _factorize(data[name])
        lookup = np.asarray([*strings, None], dtype=object)  # code -1 (missing) takes the last entry
        values[name] = lookup[codes]
    return {name: values[name] for name in preprocessor.feature_names_in_}


def _numeric_bins(values: np.ndarray, cuts: np.ndarray, missing_bins: np.ndarray) -> np.ndarray:
    """The bins of numeric columns at once (int64, the shape of ``values``): a value's bin is the number of its
    column's cut points below it, a missing value's its column's ``missing_bins`` entry.

    ``values`` is rows by columns, ``cuts`` one row of increasing cut points per column, padded with +inf to
    one width (no value lies above +inf: an infinite value falls in its column's last bin, as it does between
    ``edges[-1]`` and infinity in :class:`ColumnReference`)."""
    below = np.sum(values[:, :, None] > cuts[None], axis=2)
    return np.where(np.isnan(values), missing_bins, below)


def _format_number(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True)
class ColumnReference:
    """One column's distribution in the reference rows: bins and how many reference rows fell in each.

    Parameters
    ----------
    name : str
        The column.
    kind : {"numeric", "categorical"}
        As the model's preprocessing reads the column.
    edges : tuple of float
        A numeric column's cut points, increasing: bin ``i`` holds the values in ``(edges[i-1], edges[i]]``
        (the first bin everything up to ``edges[0]``, the last everything above ``edges[-1]``, infinities
        included). Empty for a categorical column.
    categories : tuple of str
        A categorical column's categories counted by name. Empty for a numeric column.
    counts : tuple of int
        Reference rows per bin: the numeric bins (or the categories, then "other": every other category,
        unseen ones included), then missing values last.
    """

    name: str
    kind: str
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    counts: tuple[int, ...] = ()

    @classmethod
    def from_values(cls, name: str, values: np.ndarray) -> ColumnReference:
        """Bins and counts of one column of reference values (as :func:`_column_values` gives them)."""
        if values.dtype.kind == "f":
            finite = values[np.isfinite(values)]
            cuts = np.quantile(finite, np.arange(1, NUMERIC_BINS) / NUMERIC_BINS) if finite.size else np.empty(0)
            reference = cls(name, NUMERIC, edges=tuple(float(e) for e in np.unique(cuts)))
        else:
            present = pd.Series(values[pd.notna(values)], dtype=object)
            frequency = present.value_counts(sort=False)
            order = sorted(frequency.items(), key=lambda item: (-int(item[1]), item[0]))[:MAX_CATEGORIES]
            reference = cls(name, CATEGORICAL, categories=tuple(str(c) for c, _ in order))
        return cls(reference.name, reference.kind, reference.edges, reference.categories,
                   tuple(int(c) for c in reference.bin_counts(values)))

    @property
    def n_bins(self) -> int:
        return (len(self.edges) + 1 if self.kind == NUMERIC else len(self.categories) + 1) + 1

    def bin_index(self, values: np.ndarray) -> np.ndarray:
        """The bin of each of ``values`` (int64; missing values in the last bin)."""
        values = np.asarray(values)
        if self.kind == NUMERIC:
            return _numeric_bins(values[:, None], np.asarray([self.edges], dtype=np.float64),
                                 np.asarray([self.n_bins - 1]))[:, 0]
        index = np.full(values.shape[0], self.n_bins - 1, dtype=np.int64)
        present = ~pd.isna(values)
        lookup = {c: i for i, c in enumerate(self.categories)}
        other = len(self.categories)
        index[present] = np.fromiter((lookup.get(v, other) for v in values[present]), dtype=np.int64,
                                     count=int(present.sum()))
        return index

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """How many of ``values`` fall in each of this column's bins (the last: missing values)."""
        return np.bincount(self.bin_index(values), minlength=self.n_bins).astype(np.int64)

    def bin_labels(self) -> list[str]:
        """A short name for each bin, in order: ``<= 3.2``, ``(3.2, 4.1]``, ``> 9``, a category, ``other``,
        ``missing``."""
        if self.kind == NUMERIC:
            e = [_format_number(x) for x in self.edges]
            labels = [f"<= {e[0]}", *(f"({a}, {b}]" for a, b in zip(e, e[1:])), f"> {e[-1]}"] if e else ["any"]
        else:
            labels = [*self.categories, "other"]
        return [*labels, "missing"]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "edges": list(self.edges), "categories": list(self.categories),
                "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, entry: Any, n_rows: int) -> ColumnReference:
        """A column reference read back from a model folder, checked: bins that could hold no data, counts
        that do not add up to the reference's rows, or oversized entries are a :class:`DataError`."""
        if not isinstance(entry, dict) or set(entry) != {"name", "kind", "edges", "categories", "counts"}:
            raise DataError("a drift reference column is not an object with name, kind, edges, categories and counts")
        name, kind, edges, categories, counts = (entry[k] for k in ("name", "kind", "edges", "categories", "counts"))
        if not isinstance(name, str) or kind not in (NUMERIC, CATEGORICAL):
            raise DataError(f"a drift reference column has name {name!r:.60} and kind {kind!r:.60}")
        if not (isinstance(edges, list) and isinstance(categories, list) and isinstance(counts, list)):
            raise DataError(f"the drift reference of column {name!r:.60} holds edges, categories or counts that "
                            "are not lists")
        if kind == NUMERIC:
            ok = (not categories and len(edges) < NUMERIC_BINS
                  and all(isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) for e in edges)
                  and all(a < b for a, b in zip(edges, edges[1:])))
        else:
            ok = (not edges and len(categories) <= MAX_CATEGORIES and len(set(categories)) == len(categories)
                  and all(isinstance(c, str) and len(c) <= _MAX_CATEGORY_CHARS for c in categories))
        column = cls(name, kind, tuple(float(e) for e in edges) if ok and kind == NUMERIC else (),
                     tuple(categories) if ok and kind == CATEGORICAL else ())
        ok = ok and len(counts) == column.n_bins and all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts) and sum(counts) == n_rows
        if not ok:
            raise DataError(f"the drift reference of column {name!r:.60} is malformed: its bins are not increasing "
                            f"cut points or distinct categories, or its counts do not add up to {n_rows} rows")
        return cls(name, kind, column.edges, column.categories, tuple(counts))


@dataclass(frozen=True, eq=False)
class DriftReference:
    """What held-out normal rows looked like to a fitted detector: their scores and their columns' bins.

    Build it with :meth:`from_data` (or :func:`record_reference`, which also attaches it to the
    detector, so that it is saved with the model).

    Parameters
    ----------
    scores : ndarray of float64
        The reference rows' anomaly scores, sorted; at most :data:`MAX_REFERENCE_SCORES` (a larger
        reference keeps that many of its quantiles).
    n_rows : int
        Rows in the reference.
    columns : tuple of ColumnReference
        Each column's bins, for a model fitted on a table; empty otherwise (images, recordings, texts).
    data_name : str or None
        Where the rows came from (a file name), shown in reports.
    model_fingerprint : str
        The sha256 of the detector's training scores when the reference was recorded: a detector
        fitted again no longer matches it.
    """

    scores: np.ndarray
    n_rows: int
    columns: tuple[ColumnReference, ...] = ()
    data_name: str | None = None
    model_fingerprint: str = ""

    @classmethod
    def from_data(cls, detector, X, data_name: str | None = None, scores=None) -> DriftReference:
        """Summarise reference rows ``X`` (normal rows the detector did not train on) for ``detector``.

        Parameters
        ----------
        detector : BaseDetector
            A fitted detector.
        X : table, images, recordings or texts, or None
            Held-out normal rows, as :meth:`decision_function` takes them: a dev set's normal rows,
            or a recent window of production rows known to be good. Their scores must be out of
            sample: a detector's scores of its own training rows are lower than of new normal rows
            (an auto-encoder reconstructs what it trained on best), so a reference of training rows
            would report drift on every new batch; the training rows themselves are refused.
        data_name : str, optional
            Where the rows came from, shown in reports.
        scores : array-like, optional
            The detector's scores of ``X``, when already computed (saves scoring ``X`` again). With
            ``X=None`` the reference holds the scores only, and no column is checked.

        Raises
        ------
        DataError
            ``X`` holds fewer than :data:`MIN_ROWS` rows, or is the detector's training data.
        """
        from oddkit.detectors.base import training_fingerprint
        from oddkit.scoring import score_rows
        from oddkit.threshold import _check_name

        data_name = _check_name(data_name, "the reference data's name")
        fingerprint = getattr(detector, "training_fingerprint_", None)
        if fingerprint is not None and isinstance(X, (pd.DataFrame, np.ndarray)) \
                and training_fingerprint(X) == fingerprint:
            raise DataError("the drift reference must be rows the detector did not train on: a detector scores its "
                            "own training rows lower than new normal rows, so every new batch would look drifted; "
                            "pass held-out normal rows (the dev set's normal rows)")
        if scores is None:
            if X is None:
                raise DataError("pass the reference rows X, their scores, or both")
            scores = score_rows(detector, X).scores
        scores = np.sort(np.asarray(scores, dtype=np.float64).ravel())
        if scores.size < MIN_ROWS:
            raise DataError(f"a drift reference needs at least {MIN_ROWS} rows; got {scores.size}")
        n_rows = int(scores.size)
        if n_rows > MAX_REFERENCE_SCORES:  # evenly spaced quantiles, interpolated as np.quantile does (600x faster)
            at = (np.arange(MAX_REFERENCE_SCORES) + 0.5) / MAX_REFERENCE_SCORES * (n_rows - 1)
            scores = np.interp(at, np.arange(n_rows), scores)
        values = {} if X is None else _column_values(detector, X)
        n_values = len(next(iter(values.values()))) if values else n_rows
        if n_values != n_rows:
            raise DataError(f"X holds {n_values} rows but scores {n_rows}; pass one score per row")
        columns = tuple(ColumnReference.from_values(name, v) for name, v in values.items())
        return cls(scores, n_rows, columns, data_name, model_fingerprint(detector))

    def to_dict(self) -> dict[str, Any]:
        """Everything but the scores, as JSON-ready values (the scores are an array, saved with the weights)."""
        return {"n_rows": self.n_rows, "data_name": self.data_name, "model_fingerprint": self.model_fingerprint,
                "columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, entry: Any, scores: np.ndarray | None, detector) -> DriftReference:
        """A reference read back from a model folder and checked against ``detector`` (the loaded model):
        its fingerprint must be the detector's, its columns the detector's columns of the same kinds,
        and its counts must add up. Anything else is a :class:`DataError`."""
        from oddkit.threshold import _check_name

        keys = {"n_rows", "data_name", "model_fingerprint", "columns"}
        if not isinstance(entry, dict) or set(entry) != keys:
            raise DataError(f"the drift reference is not an object with the keys {sorted(keys)}")
        n_rows = entry["n_rows"]
        if isinstance(n_rows, bool) or not isinstance(n_rows, int) or not MIN_ROWS <= n_rows < 2**63:
            raise DataError(f"the drift reference's n_rows={n_rows!r:.40} is not a count of at least {MIN_ROWS}")
        if scores is None or scores.ndim != 1 or scores.size != min(n_rows, MAX_REFERENCE_SCORES):
            raise DataError("the drift reference's scores are missing or not one per reference row")
        if not isinstance(entry["model_fingerprint"], str) or entry["model_fingerprint"] != model_fingerprint(detector):
            raise DataError("the drift reference was recorded for another fit of this model (its fingerprint differs "
                            "from the model's training scores)")
        preprocessor = _table_preprocessor(detector)
        kinds = {} if preprocessor is None else dict(zip(preprocessor.feature_names_in_, preprocessor.kinds_))
        raw = entry["columns"]
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise DataError("the drift reference's columns are not one per model column")
        columns = tuple(ColumnReference.from_dict(c, n_rows) for c in raw)
        if [c.name for c in columns] != list(kinds) or any(c.kind != kinds[c.name] for c in columns):
            raise DataError("the drift reference's columns are not the model's columns, in order and of the same kinds")
        return cls(np.sort(scores.astype(np.float64)), n_rows, columns, _check_name(entry["data_name"], "data_name"),
                   entry["model_fingerprint"])

    def __repr__(self) -> str:
        name = f" of {self.data_name}" if self.data_name else ""
        return f"DriftReference({self.n_rows} rows{name}, {len(self.columns)} columns)"


@dataclass(frozen=True)
class ColumnDrift:
    """How one column's distribution compares with the reference's.

    Attributes
    ----------
    name, kind : str
        The column and how the model reads it.
    psi : float
        Population stability index over the column's bins: 0 for the same shares, about 0.1 for a
        moderate shift, above 0.25 a large one.
    p_value : float
        Chi-square test of homogeneity of the bin counts (reference against new rows).
    adjusted_p_value : float
        ``p_value`` adjusted by Holm's method over every test of the check.
    drifted : bool
        ``adjusted_p_value < alpha`` and ``psi >= min_psi``.
    bin, reference_share, share : str, float, float
        The bin whose share changed most, and its share of the reference rows and of the new rows.
    """

    name: str
    kind: str
    psi: float
    p_value: float
    adjusted_p_value: float
    drifted: bool
    bin: str
    reference_share: float
    share: float


@dataclass(frozen=True)
class DriftReport:
    """The result of :func:`check_drift`. ``str(report)`` is the text ``oddkit drift`` prints.

    Attributes
    ----------
    drifted : bool
        Whether any check found drift: the alert rate changed, the scores shifted, or a column drifted.
    n_rows, n_reference : int
        Rows checked, and rows in the reference.
    reference_name : str or None
        Where the reference rows came from.
    threshold : float
        The detector's threshold the alert rates are taken at.
    reference_alert_rate, alert_rate : float
        Share of the reference rows, and of the rows checked, scoring at or above the threshold.
    alert_ratio : float
        ``alert_rate / reference_alert_rate`` (each smoothed by half a row, so a reference without
        alerts gives a finite ratio).
    alert_p_value, alert_adjusted_p_value : float
        Fisher's exact test of the two alert rates (two-sided), and adjusted by Holm's method.
    alerts_changed : bool
        ``alert_adjusted_p_value < alpha`` and the ratio at least ``min_alert_ratio`` (or at most its inverse).
    score_ks, score_p_value, score_adjusted_p_value : float
        The two-sample Kolmogorov-Smirnov statistic of the scores, its p-value, and adjusted.
    score_psi : float
        Population stability index of the scores over the reference's score deciles.
    scores_shifted : bool
        ``score_adjusted_p_value < alpha`` and ``score_psi >= min_psi``.
    score_quantiles : dict
        The scores' median, 90th and 99th percentiles, ``{"50": (reference, new), ...}``.
    columns : tuple of ColumnDrift
        One per column (a model fitted on a table): the drifted ones first, the largest ``psi`` first;
        then the others, the smallest adjusted p-value first.
    alpha, min_psi, min_alert_ratio : float
        The settings the verdicts were made with.
    notes : tuple of str
        What limits the check (too few rows, no columns to check).
    """

    drifted: bool
    n_rows: int
    n_reference: int
    reference_name: str | None
    threshold: float
    reference_alert_rate: float
    alert_rate: float
    alert_ratio: float
    alert_p_value: float
    alert_adjusted_p_value: float
    alerts_changed: bool
    score_ks: float
    score_p_value: float
    score_adjusted_p_value: float
    score_psi: float
    scores_shifted: bool
    score_quantiles: dict[str, tuple[float, float]]
    columns: tuple[ColumnDrift, ...]
    alpha: float
    min_psi: float
    min_alert_ratio: float
    notes: tuple[str, ...] = field(default=())

    @property
    def drifted_columns(self) -> list[str]:
        """The names of the columns that drifted, the largest shift first."""
        return [c.name for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values (``columns`` as a list of dicts)."""
        out = asdict(self)
        out["score_quantiles"] = {k: list(v) for k, v in self.score_quantiles.items()}
        out["columns"] = [asdict(c) for c in self.columns]
        out["notes"] = list(self.notes)
        out["drifted_columns"] = self.drifted_columns
        return out

    def to_frame(self) -> pd.DataFrame:
        """The columns' results as a table, one row per column, in the order of :attr:`columns`."""
        names = [f.name for f in ColumnDrift.__dataclass_fields__.values()]
        return pd.DataFrame([asdict(c) for c in self.columns], columns=names)

    def __str__(self) -> str:
        source = f" of {self.reference_name}" if self.reference_name else ""
        n_drifted = int(self.alerts_changed) + int(self.scores_shifted) + len(self.drifted_columns)
        n_checks = 2 + len(self.columns)
        verdict = f"DRIFT ({n_drifted} of {n_checks} checks)" if self.drifted else f"no drift found ({n_checks} checks)"
        lines = [
            f"drift check of {self.n_rows:,} rows against the reference ({self.n_reference:,} rows{source})",
            f"verdict: {verdict}; alpha {self.alpha:g} over all checks (Holm), PSI >= {self.min_psi:g}, "
            f"alert ratio >= {self.min_alert_ratio:g}",
            "",
            f"alerts at threshold {_format_number(self.threshold)}: reference {self.reference_alert_rate:.2%}, "
            f"these rows {self.alert_rate:.2%} (x{self.alert_ratio:.2f}), p {_p(self.alert_adjusted_p_value)}"
            + ("  CHANGED" if self.alerts_changed else ""),
            "scores: " + ", ".join(f"{'median' if q == '50' else q + 'th'} {_format_number(a)} -> {_format_number(b)}"
                                   for q, (a, b) in self.score_quantiles.items())
            + f"; KS {self.score_ks:.3f}, PSI {self.score_psi:.3f}, p {_p(self.score_adjusted_p_value)}"
            + ("  SHIFTED" if self.scores_shifted else ""),
        ]
        if self.columns:
            width = max(len("column"), *(len(c.name) for c in self.columns[:10]))
            lines += ["", f"{'column':<{width}}  {'PSI':>6}  {'p':>8}  largest change of share"]
            for c in self.columns[:10]:
                lines.append(f"{c.name:<{width}}  {c.psi:6.3f}  {_p(c.adjusted_p_value):>8}  {c.bin}: "
                             f"{c.reference_share:.1%} -> {c.share:.1%}" + ("  DRIFTED" if c.drifted else ""))
            if len(self.columns) > 10:
                rest = sum(c.drifted for c in self.columns[10:])
                lines.append(f"... {len(self.columns) - 10} more columns ({rest} drifted)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-4 else "< 1e-4"


def _psi(reference_counts: np.ndarray, counts: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins, each count smoothed by half
    a row (an empty bin would make it infinite)."""
    p = (reference_counts + 0.5) / (reference_counts.sum() + 0.5 * reference_counts.size)
    q = (counts + 0.5) / (counts.sum() + 0.5 * counts.size)
    return float(np.sum((q - p) * np.log(q / p)))


MIN_EXPECTED = 5
"""Fewest rows a bin must expect in the smaller of the two samples for the chi-square test: smaller bins are
merged with their neighbours first (Cochran's rule; with sparse bins the test's p-values are far too small)."""


def _merged(reference_counts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The two count vectors with neighbouring bins merged until every bin expects at least
    :data:`MIN_EXPECTED` rows of the smaller sample under no drift (bins empty in both dropped):
    shape (2, bins)."""
    pooled = reference_counts + counts
    expected = pooled * (min(reference_counts.sum(), counts.sum()) / max(pooled.sum(), 1))
    groups, current, filled = [], [], 0.0
    for j in np.flatnonzero(pooled):
        current.append(j)
        filled += expected[j]
        if filled >= MIN_EXPECTED:
            groups.append(current)
            current, filled = [], 0.0
    if current:  # a last group short of the minimum joins the one before it
        if groups:
            groups[-1] += current
        else:
            groups.append(current)
    return np.array([[reference_counts[g].sum(), counts[g].sum()] for g in groups]).T


def _two_sample_p_value(reference_counts: np.ndarray, counts: np.ndarray) -> float:
    """Whether two count vectors over the same ordered bins come from the same distribution: Fisher's
    exact test when the merged bins (:func:`_merged`) are two, the chi-square test of homogeneity when
    more, 1 when one."""
    from scipy.stats import chi2_contingency, fisher_exact

    table = _merged(reference_counts, counts)
    if table.shape[1] < 2:
        return 1.0
    if table.shape[1] == 2:
        return float(fisher_exact(table).pvalue)
    return float(chi2_contingency(table, correction=False).pvalue)


def _homogeneity_p_value(reference_counts: np.ndarray, counts: np.ndarray) -> float:
    """Whether a column's bin counts (missing values last) are the same in the reference and the new rows.

    The values' bins are tested by :func:`_two_sample_p_value`; when either sample holds missing values,
    their share is tested apart by Fisher's exact test (a few missing values where the reference had none
    is a strong sign, which merging would hide), and the column's p-value is twice the smaller of the two
    (Bonferroni within the column)."""
    from scipy.stats import fisher_exact

    values = _two_sample_p_value(reference_counts[:-1], counts[:-1])
    if reference_counts[-1] == 0 and counts[-1] == 0:
        return values
    missing = fisher_exact([[reference_counts[-1], reference_counts[:-1].sum()],
                            [counts[-1], counts[:-1].sum()]]).pvalue
    return float(min(1.0, 2 * min(values, missing)))


def _holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: the family-wise error of rejecting every adjusted p below alpha is at most alpha."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()


def _check_setting(value: Any, name: str, ok, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise DataError(f"{name} must be {allowed}, got {value!r:.40}")
    return float(value)


def record_reference(detector, X, data_name: str | None = None, scores=None):
    """Record held-out normal rows ``X`` as ``detector``'s drift reference (``detector.drift_reference_``).

    The reference is saved with the model, so that :func:`check_drift` (and ``oddkit drift``) can
    later compare new rows with it from the model folder alone. Record it on the rows the threshold
    was chosen on (the dev set's normal rows): the threshold's promise holds while new rows look
    like them.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector.
    X : table, images, recordings or texts
        Held-out normal rows (see :meth:`DriftReference.from_data`).
    data_name : str, optional
        Where the rows came from, shown in reports.
    scores : array-like, optional
        The detector's scores of ``X``, when already computed.

    Returns
    -------
    detector
        The same detector, with ``drift_reference_`` set.

    Examples
    --------
    >>> import oddkit
    >>> from oddkit.demo import split_breast_cancer
    >>> from oddkit.drift import check_drift, record_reference
    >>> split = split_breast_cancer(random_state=0)
    >>> detector = oddkit.GaussianDetector().fit(split.train)
    >>> _ = record_reference(detector, split.dev[split.y_dev == 0], data_name="dev normals")
    >>> check_drift(detector, split.test[split.y_test == 0]).drifted
    False
    """
    detector.drift_reference_ = DriftReference.from_data(detector, X, data_name=data_name, scores=scores)
    return detector


def check_drift(detector, X, reference: DriftReference | None = None, *, alpha: float = ALPHA,
                min_psi: float = MIN_PSI, min_alert_ratio: float = MIN_ALERT_RATIO) -> DriftReport:
    """Compare new rows ``X`` with a reference of normal rows: alert rate, scores and each column.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector.
    X : table, images, recordings or texts
        The rows to check (a batch of production data), as :meth:`decision_function` takes them;
        a category never seen in training scores as an anomaly, as ``oddkit score`` scores it.
    reference : DriftReference, optional
        What normal rows looked like; by default the detector's own (``drift_reference_``, recorded by
        :func:`record_reference` or ``oddkit threshold``).
    alpha : float, default=0.01
        Family-wise error: data drawn like the reference is reported as drifted with at most this
        probability, however many columns it has (Holm's method over every test).
    min_psi : float, default=0.1
        Smallest population stability index reported as a shift of the scores or of a column; a
        smaller shift, significant on a large batch, is not reported.
    min_alert_ratio : float, default=1.25
        Smallest factor by which the alert rate must change (up, or down by its inverse) to be reported.

    Returns
    -------
    DriftReport

    Raises
    ------
    DataError
        No reference (none given and none recorded), a reference recorded for another fit of the
        detector, fewer than 2 rows, or a setting out of range; and whatever scoring ``X`` raises.

    Notes
    -----
    The reference should be normal rows; new rows hold anomalies too. At a production anomaly rate
    ``p`` and recall ``r`` the alert rate of undrifted data is about ``fpr (1 - p) + r p``: above the
    reference's for a burst of anomalies. A changed alert rate without any shifted column is often
    that: new anomalies, not drift.
    """
    return check_drift_batches(detector, [X], reference, alpha=alpha, min_psi=min_psi,
                               min_alert_ratio=min_alert_ratio)


def check_drift_batches(detector, batches, reference: DriftReference | None = None, *, alpha: float = ALPHA,
                        min_psi: float = MIN_PSI, min_alert_ratio: float = MIN_ALERT_RATIO) -> DriftReport:
    """:func:`check_drift` over rows that come in batches, read one at a time: data larger than memory.

    Each batch is scored and binned, then let go; only the scores (8 bytes a row) and each column's
    counts are kept. The report is the one :func:`check_drift` gives on all the rows at once.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector.
    batches : iterable
        Batches of rows, each as :func:`check_drift` takes ``X`` (e.g. the tables of
        :meth:`oddkit.data.stream.TableSource.tables`).
    reference, alpha, min_psi, min_alert_ratio
        As :func:`check_drift` takes them.

    Returns
    -------
    DriftReport
    """
    from oddkit.scoring import score_rows

    settings = _checked_settings(alpha, min_psi, min_alert_ratio)
    reference = _usable_reference(detector, reference)
    parts, counts = [], {c.name: np.zeros(c.n_bins, dtype=np.int64) for c in reference.columns}
    for X in batches:
        parts.append(np.asarray(score_rows(detector, X).scores, dtype=np.float64))
        values = _column_values(detector, X) if reference.columns else {}
        for column in reference.columns:
            counts[column.name] += column.bin_counts(values[column.name])
    scores = np.concatenate(parts) if parts else np.empty(0)
    return _compare(reference, float(detector.threshold_), scores, counts, _table_preprocessor(detector) is not None,
                    *settings)


def _checked_settings(alpha: Any, min_psi: Any, min_alert_ratio: Any) -> tuple[float, float, float]:
    return (_check_setting(alpha, "alpha", lambda v: 0 < v < 1, "a number between 0 and 1"),
            _check_setting(min_psi, "min_psi", lambda v: v >= 0, "a number at least 0"),
            _check_setting(min_alert_ratio, "min_alert_ratio", lambda v: v >= 1, "a number at least 1"))


def _usable_reference(detector, reference: DriftReference | None) -> DriftReference:
    """``reference``, or the detector's own; refused when there is none or it belongs to another fit."""
    reference = reference if reference is not None else getattr(detector, "drift_reference_", None)
    if reference is None:
        raise DataError("the model has no drift reference: record one from held-out normal rows with "
                        "oddkit.drift.record_reference(detector, X_dev_normal) (choosing a threshold on a dev set with "
                        "'oddkit threshold' records its normal rows), or pass one to check_drift")
    if reference.model_fingerprint != model_fingerprint(detector):
        raise DataError("the drift reference was recorded before the detector was fitted again: its scores are "
                        "another model's; record it again with oddkit.drift.record_reference")
    return reference


def _compare(reference: DriftReference, threshold: float, scores: np.ndarray, counts: dict[str, np.ndarray],
             reads_table: bool, alpha: float, min_psi: float, min_alert_ratio: float) -> DriftReport:
    """The report on new rows given as their scores and each column's bin counts."""
    from scipy.stats import fisher_exact, ks_2samp

    if scores.size < 2:
        raise DataError(f"a drift check needs at least 2 rows; got {scores.size}")
    ref_scores, n_ref, n = reference.scores, reference.scores.size, scores.size
    a, b = int(np.sum(ref_scores >= threshold)), int(np.sum(scores >= threshold))
    alert_p = float(fisher_exact([[a, n_ref - a], [b, n - b]]).pvalue)
    ratio = ((b + 0.5) / (n + 1)) / ((a + 0.5) / (n_ref + 1))
    ks = ks_2samp(ref_scores, scores)
    score_edges = np.unique(np.quantile(ref_scores, np.arange(1, 10) / 10))
    score_psi = _psi(np.bincount(np.searchsorted(score_edges, ref_scores), minlength=score_edges.size + 1),
                     np.bincount(np.searchsorted(score_edges, scores), minlength=score_edges.size + 1))

    column_results = []
    for column in reference.columns:
        ref_counts, batch_counts = np.asarray(column.counts, dtype=np.int64), counts[column.name]
        ref_share, share = ref_counts / ref_counts.sum(), batch_counts / batch_counts.sum()
        largest = int(np.argmax(np.abs(share - ref_share)))
        column_results.append((column, _psi(ref_counts, batch_counts), _homogeneity_p_value(ref_counts, batch_counts),
                               column.bin_labels()[largest], float(ref_share[largest]), float(share[largest])))
    adjusted = _holm([alert_p, float(ks.pvalue), *(r[2] for r in column_results)])

    columns = sorted((ColumnDrift(c.name, c.kind, psi, p, q, bool(q < alpha and psi >= min_psi), label, rs, s)
                      for (c, psi, p, label, rs, s), q in zip(column_results, adjusted[2:])),
                     key=lambda c: (not c.drifted, -c.psi if c.drifted else c.adjusted_p_value, -c.psi, c.name))
    alerts_changed = bool(adjusted[0] < alpha and max(ratio, 1 / ratio) >= min_alert_ratio)
    scores_shifted = bool(adjusted[1] < alpha and score_psi >= min_psi)
    quantiles = {q: (float(np.quantile(ref_scores, int(q) / 100)), float(np.quantile(scores, int(q) / 100)))
                 for q in ("50", "90", "99")}
    notes = []
    if n < 10 * MIN_ROWS:
        notes.append(f"only {n} rows: the tests find gross drift only; check batches of a few hundred rows or more")
    if not reference.columns and not reads_table:
        notes.append("the model does not read a table, so only its scores and alerts are compared")
    return DriftReport(
        drifted=alerts_changed or scores_shifted or any(c.drifted for c in columns), n_rows=int(n),
        n_reference=int(reference.n_rows), reference_name=reference.data_name, threshold=threshold,
        reference_alert_rate=a / n_ref, alert_rate=b / n, alert_ratio=float(ratio), alert_p_value=alert_p,
        alert_adjusted_p_value=adjusted[0], alerts_changed=alerts_changed, score_ks=float(ks.statistic),
        score_p_value=float(ks.pvalue), score_adjusted_p_value=adjusted[1], score_psi=score_psi,
        scores_shifted=scores_shifted, score_quantiles=quantiles, columns=tuple(columns), alpha=alpha,
        min_psi=min_psi, min_alert_ratio=min_alert_ratio, notes=tuple(notes))


_WINDOW_MAGIC = b"oddkitDW"
"""The first bytes of a drift window's file; then five int64: size, columns, next position, rows held, rows seen."""
_WINDOW_HEADER = len(_WINDOW_MAGIC) + 5 * 8


def _window_file(path: Path, size: int, n_columns: int):
    """The open file (``r+b``) of a drift window shared between processes: created when ``path`` does not exist
    (written whole under another name, then linked to ``path``, so that no process ever reads it half made, and
    of processes starting together the first one's file is the one they all open), refused when it holds a
    window of another size or width."""
    try:
        import fcntl  # noqa: F401 - the window's lock
    except ImportError:
        raise OddkitError("a drift window shared between processes needs POSIX file locks (fcntl), which this "
                          "platform does not have; give each process its own window") from None
    length = _WINDOW_HEADER + 8 * size + 2 * size * n_columns
    header = _WINDOW_MAGIC + np.array([size, n_columns, 0, 0, 0], dtype=np.int64).tobytes()
    if not path.exists():
        draft = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.draft")
        with open(draft, "xb") as handle:
            handle.write(header)
            handle.truncate(length)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    handle = open(path, "r+b")
    shape = len(_WINDOW_MAGIC) + 16  # the magic bytes, the size and the number of columns
    if handle.read(shape) != header[:shape] or os.fstat(handle.fileno()).st_size != length:
        handle.close()
        raise DataError(f"{path} is not a drift window of {size} rows of {n_columns} columns; remove it or use "
                        "another file")
    return handle


class DriftWindow:
    """The last rows a service scored, kept as a drift check needs them, and checked on request.

    Each row is kept as its score and, for a model fitted on a table, the bin of each of its columns (a
    small integer per column, never the value), in a ring of ``size`` rows: the oldest rows leave as
    new ones arrive. :meth:`report` compares the rows held with the detector's drift reference as
    :func:`check_drift` compares a batch. Safe to share between threads, and with ``path`` between
    processes: the workers of one service then watch one window, all of its traffic.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector with a drift reference (``drift_reference_``).
    size : int, default=10_000
        Most rows held. Memory: 8 bytes a row for the score and 2 a column.
    path : path, optional
        Hold the window in this file, mapped into memory, instead of in this process alone: every
        ``DriftWindow`` opened on the same file (the same model and ``size``), in any process of the machine,
        adds to and reports on the same rows, one at a time (a POSIX file lock). The first creates the file;
        put it in a folder only the service's user can write, and remove it when the service stops
        (``oddkit serve --workers N`` does both). POSIX systems only.

    Raises
    ------
    DataError
        The detector has no drift reference, or one recorded for another fit; ``size`` below 2; ``path``
        holding a window of another size or number of columns.
    OddkitError
        ``path`` on a platform without POSIX file locks.
    """

    def __init__(self, detector, size: int = 10_000, *, path: str | os.PathLike | None = None):
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise DataError(f"a drift window holds at least 2 rows; got size={size!r:.40}")
        self.detector = detector
        self.reference = _usable_reference(detector, None)
        self.size = size
        self.path = None if path is None else Path(path)
        n_columns = len(self.reference.columns)
        self._lock = threading.Lock()
        # The ring: [next position, rows held, rows seen], each row's score, each row's bin per column; in this
        # process's memory, or mapped from the file every process with the window opens.
        self._file = None if self.path is None else _window_file(self.path, size, n_columns)
        if self._file is None:
            self._state = np.zeros(3, dtype=np.int64)
            self._scores = np.empty(size, dtype=np.float64)
        else:
            self._state = np.memmap(self._file, dtype=np.int64, mode="r+", offset=len(_WINDOW_MAGIC) + 16,
                                    shape=(3,))
            self._scores = np.memmap(self._file, dtype=np.float64, mode="r+", offset=_WINDOW_HEADER, shape=(size,))
        if self._file is None or not n_columns:  # (a file cannot map zero bytes)
            self._bins = np.empty((size, n_columns), dtype=np.int16)
        else:
            self._bins = np.memmap(self._file, dtype=np.int16, mode="r+", offset=_WINDOW_HEADER + 8 * size,
                                   shape=(size, n_columns))
        # Numeric columns are binned all at once (_numeric_bins), their cut points padded with +inf to one width.
        columns = self.reference.columns
        self._numeric = [j for j, c in enumerate(columns) if c.kind == NUMERIC]
        self._cuts = np.full((len(self._numeric), NUMERIC_BINS - 1), np.inf)
        for row, j in enumerate(self._numeric):
            self._cuts[row, :len(columns[j].edges)] = columns[j].edges
        self._missing_bins = np.asarray([columns[j].n_bins - 1 for j in self._numeric], dtype=np.int64)
        self._names = pd.Index([c.name for c in columns])

    def add(self, X, scores) -> None:
        """Keep rows ``X`` (as the detector scored them) and their ``scores``; only the last ``size`` rows stay."""
        scores = np.asarray(scores, dtype=np.float64).ravel()
        values = _column_values(self.detector, X, self._names) if self.reference.columns else {}
        keep = min(scores.size, self.size)
        first = scores.size - keep
        columns = self.reference.columns
        bins = np.empty((keep, len(columns)), dtype=np.int16)
        if self._numeric:
            block = np.column_stack([values[columns[j].name][first:] for j in self._numeric])
            bins[:, self._numeric] = _numeric_bins(block, self._cuts, self._missing_bins)
        for j, column in enumerate(columns):
            if column.kind != NUMERIC:
                bins[:, j] = column.bin_index(values[column.name][first:])
        with self._locked():
            start, held = int(self._state[0]) % self.size, self.n_rows
            positions = (start + np.arange(keep)) % self.size
            self._scores[positions], self._bins[positions] = scores[first:], bins
            self._state[:] = ((start + keep) % self.size, min(self.size, held + keep), self._state[2] + scores.size)

    @contextmanager
    def _locked(self):
        """Hold the window alone: against this process's other threads, and for a window in a file against
        every other process that has it open."""
        with self._lock:
            if self._file is None:
                yield
                return
            import fcntl

            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)

    @property
    def n_rows(self) -> int:
        """Rows held now (at most ``size``, however a shared file was changed)."""
        return min(max(int(self._state[1]), 0), self.size)

    @property
    def n_seen(self) -> int:
        """Rows added since the window was made (for a window in a file: by every process)."""
        return int(self._state[2])

    def report(self, *, alpha: float = ALPHA, min_psi: float = MIN_PSI,
               min_alert_ratio: float = MIN_ALERT_RATIO) -> DriftReport:
        """Compare the rows held with the reference, as :func:`check_drift` does (same settings).

        Raises
        ------
        DataError
            Fewer than 2 rows held, or a setting out of range.
        """
        settings = _checked_settings(alpha, min_psi, min_alert_ratio)
        with self._locked():
            held = self.n_rows
            scores, bins = np.array(self._scores[:held]), np.array(self._bins[:held], dtype=np.int64)
        if scores.size < 2:
            raise DataError(f"the service has scored {scores.size} rows since it started; a drift check needs at "
                            "least 2")
        limits = np.asarray([c.n_bins for c in self.reference.columns], dtype=np.int64)
        bad_bins = bins.size and (bins.min() < 0 or np.any(bins.max(axis=0) >= limits))
        if bad_bins or not np.all(np.isfinite(scores)):  # scores are finite, bins in range: only a damaged file
            raise DataError(f"the drift window in {self.path} holds scores that are not finite or bins its columns "
                            "do not have: it was changed by something other than a drift window; remove it")
        counts = {c.name: np.bincount(bins[:, j], minlength=c.n_bins).astype(np.int64)
                  for j, c in enumerate(self.reference.columns)}
        return _compare(self.reference, float(self.detector.threshold_), scores, counts,
                        _table_preprocessor(self.detector) is not None, *settings)
