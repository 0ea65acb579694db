"""Scoring rows that hold a category the model never saw: one behaviour for every front end.

An unseen category is itself a sign of an anomaly. By default such a row is encoded as
``unknown_categories="ignore"`` encodes it (all zeros in that column's one-hot block), its score is
raised to at least :meth:`~oddkit.detectors.base.BaseDetector.out_of_range_score` (above every
training score and the threshold, so it is labelled an anomaly), and it is flagged and counted; with
``strict_categories=True`` it stops scoring with :class:`~oddkit.exceptions.UnseenCategoryError`
instead. ``oddkit score``, ``oddkit explain``, the service (``POST /score``), :func:`oddkit.spark.score`
and :func:`oddkit.dask.score` all score through :func:`score_rows`.

The model itself is never modified: a tolerant twin (a shallow copy sharing the weights, with its own
copy of the preprocessor) does the encoding, so concurrent strict and tolerant requests in one process
(the service's worker threads) cannot see each other's setting.
"""

from __future__ import annotations

import copy
import re
from typing import Any, NamedTuple

import numpy as np

from oddkit.exceptions import DataError, UnseenCategoryError

__all__ = ["UnseenScores", "add_counts", "explain_rows", "merge_counts", "score_rows", "tolerant", "unseen_rows",
           "unseen_values", "with_hint"]

_ADVICE = re.compile(r"\. Pass unknown_categories[=]|; (?:drop|leave out) ")
"""Where the advice starts in an :class:`UnseenCategoryError` message: the preprocessor's own, or a hint
:func:`with_hint` put there (each front end's hint starts "drop ..." or "leave out ...")."""


class UnseenScores(NamedTuple):
    """What :func:`score_rows` returns.

    Attributes
    ----------
    scores : ndarray of float64 of shape (n_samples,)
        The scores; a row with an unseen category scores at least the model's out-of-range score.
    unseen : ndarray of bool of shape (n_samples,)
        True where the row holds a category never seen in training.
    columns : dict of str to int
        For each categorical column holding unseen values, how many distinct unseen values it holds.
    """

    scores: np.ndarray
    unseen: np.ndarray
    columns: dict[str, int]


def _unseen_by_column(detector, X) -> dict[str, tuple[np.ndarray, list[str]]]:
    """For each categorical column of table ``X`` that holds a category ``detector`` never saw in
    training: the rows holding one, and the distinct unseen values (as the preprocessor's strings)."""
    from oddkit.data.preprocess import MISSING_CATEGORY, TablePreprocessor, _factorize

    preprocessor = getattr(detector, "preprocessor_", None)
    found: dict[str, tuple[np.ndarray, list[str]]] = {}
    if not isinstance(preprocessor, TablePreprocessor) or not hasattr(X, "columns"):
        return found
    for name in preprocessor.categorical_columns_:
        if name not in X.columns:
            continue
        codes, strings = _factorize(X[name])
        known = set(preprocessor.categories_[name])
        values = list(strings) + [MISSING_CATEGORY]
        unknown = np.asarray([s not in known for s in values], dtype=bool)
        rows = unknown[codes]
        if rows.any():
            found[name] = (rows, [values[code] for code in np.unique(codes[rows])])
    return found


def unseen_rows(detector, X) -> tuple[np.ndarray, dict[str, int]]:
    """Which rows of table ``X`` hold a category ``detector`` never saw in training.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector; one without a table preprocessor (arrays, images) has no categories.
    X : pandas.DataFrame
        Rows with the model's columns.

    Returns
    -------
    unseen : ndarray of bool of shape (n_samples,)
    columns : dict of str to int
        ``{column: number of distinct unseen values}`` for the columns that hold any.
    """
    try:
        n = len(X)
    except TypeError:  # a scalar or a 0-d array: the detector's own check says what it takes
        detector.decision_function(X)
        raise DataError("X is a single value, not rows: pass a table (rows x columns)") from None
    mask = np.zeros(n, dtype=bool)
    counts: dict[str, int] = {}
    for name, (rows, values) in _unseen_by_column(detector, X).items():
        mask |= rows
        counts[name] = len(values)
    return mask, counts


def unseen_values(detector, X) -> dict[str, list[str]]:
    """The distinct categories of table ``X`` that ``detector`` never saw in training, per column
    (as strings; a missing value is ``"<missing>"``): what a front end scoring a file in batches
    keeps to count distinct values over the whole file rather than per batch."""
    return {name: values for name, (_, values) in _unseen_by_column(detector, X).items()}


def explain_rows(detector, X, *, strict_categories: bool = False, hint: str | None = None):
    """Explain rows as :func:`score_rows` scores them: ``detector.explain(X)``, except for a row whose
    score the out-of-range floor raised.

    Such a row is an anomaly because it holds a category never seen in training, which the
    detector's own explanation cannot see (it encodes the category as all zeros, as
    ``unknown_categories="ignore"`` does, and explains the lower score that gives). Its shares are
    split equally over the columns holding unseen values, every other column 0. A row holding an
    unseen category whose score was above the floor anyway keeps the detector's explanation (its
    score is the detector's own; :func:`score_rows` flags it).

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector with an ``explain`` method returning one row of per-column shares per row.
    X : pandas.DataFrame or array-like
        Rows to explain.
    strict_categories, hint
        As for :func:`score_rows`: with ``strict_categories`` an unseen category raises.

    Returns
    -------
    pandas.DataFrame
        What ``detector.explain`` returns, with the rows above rewritten.

    Raises
    ------
    UnseenCategoryError
        Under ``strict_categories``, naming the column, the values and the rows.
    """
    import pandas as pd

    if strict_categories:
        return _strictly(detector.explain, X, hint)
    found = _unseen_by_column(detector, X)
    if not found:
        return detector.explain(X)
    twin = tolerant(detector)
    shares = twin.explain(X)
    unseen = np.logical_or.reduce([rows for rows, _ in found.values()])
    positions = np.flatnonzero(unseen)
    own = np.asarray(twin.decision_function(X.iloc[positions]), dtype=np.float64)
    raised = positions[own < detector.out_of_range_score()]
    columns = [str(c) for c in shares.columns]
    if not raised.size or not all(name in columns for name in found):
        return shares
    values = shares.to_numpy(dtype=np.float64, copy=True)
    values[raised] = 0.0
    for name, (rows, _) in found.items():
        values[raised, columns.index(name)] = rows[raised]
    values[raised] /= values[raised].sum(axis=1, keepdims=True)
    return pd.DataFrame(values, index=shares.index, columns=shares.columns)


def tolerant(detector):
    """``detector``, or a twin of it that encodes a category it never saw as all zeros instead of raising.

    The twin is a shallow copy (it shares the weights and every learned value) with its own copy of the
    preprocessor set to ``unknown_categories="ignore"``; ``detector`` is left as it is, so this is safe
    while other threads score with it.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector.

    Returns
    -------
    BaseDetector
        ``detector`` itself when it has no such setting or already ignores unseen categories.
    """
    preprocessor = getattr(detector, "preprocessor_", None)
    if getattr(preprocessor, "unknown_categories", "ignore") == "ignore":
        return detector
    twin_preprocessor = copy.copy(preprocessor)
    twin_preprocessor.unknown_categories = "ignore"
    twin = copy.copy(detector)
    twin.preprocessor_ = twin_preprocessor
    return twin


def _strictly(method, X, hint: str | None):
    """``method(X)`` on the model as it is (an unseen category raises), the error's advice replaced
    by ``hint`` when one is given."""
    try:
        return method(X)
    except UnseenCategoryError as error:
        if hint is None:
            raise
        raise with_hint(error, hint) from None


def with_hint(error: UnseenCategoryError, hint: str) -> UnseenCategoryError:
    """The same error with the preprocessor's advice (``unknown_categories='ignore'``) replaced by ``hint``:
    how to fix it where it was raised (a command-line flag, a query parameter, a keyword)."""
    return UnseenCategoryError(f"{_ADVICE.split(str(error), maxsplit=1)[0]}; {hint}")


def score_rows(detector, X, *, strict_categories: bool = False, hint: str | None = None) -> UnseenScores:
    """Score rows, treating a category never seen in training as a sign of an anomaly.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector.
    X : pandas.DataFrame or array-like
        Rows to score, as :meth:`decision_function` takes them.
    strict_categories : bool, default=False
        Raise :class:`UnseenCategoryError` on a category never seen in training instead of scoring the
        row as an anomaly (unless the model was fitted with ``unknown_categories="ignore"``, which
        encodes such a category as all zeros and scores the row as usual).
    hint : str, optional
        What the strict error advises instead of the preprocessor's own advice (see :func:`with_hint`).

    Returns
    -------
    UnseenScores
        ``(scores, unseen, columns)``. Without unseen categories ``scores`` is exactly
        ``detector.decision_function(X)``; with them, the other rows' scores are unchanged and each
        flagged row scores at least ``detector.out_of_range_score()``. Under ``strict_categories`` no row
        is flagged.

    Raises
    ------
    UnseenCategoryError
        Under ``strict_categories``, naming the column, the values and the rows.
    """
    if strict_categories:
        scores = np.asarray(_strictly(detector.decision_function, X, hint), dtype=np.float64)
        return UnseenScores(scores, np.zeros(len(scores), dtype=bool), {})
    unseen, columns = unseen_rows(detector, X)
    if not unseen.any():
        return UnseenScores(np.asarray(detector.decision_function(X), dtype=np.float64), unseen, columns)
    scores = np.array(tolerant(detector).decision_function(X), dtype=np.float64)
    scores[unseen] = np.maximum(scores[unseen], detector.out_of_range_score())
    return UnseenScores(scores, unseen, columns)


def add_counts(total: dict[str, Any], unseen: np.ndarray, columns: dict[str, int]) -> dict[str, Any]:
    """Add one batch's unseen rows to a running report ``{"rows": n, "columns": {column: values}}``
    (values summed over batches: a value unseen in two batches counts twice)."""
    return merge_counts(total, {"rows": int(np.count_nonzero(unseen)), "columns": columns})


def merge_counts(total: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Add report ``more`` to report ``total`` (both ``{"rows": n, "columns": {column: values}}``), in place."""
    total["rows"] = total.get("rows", 0) + more.get("rows", 0)
    for name, n in more.get("columns", {}).items():
        total.setdefault("columns", {})[name] = total.get("columns", {}).get(name, 0) + n
    return total
