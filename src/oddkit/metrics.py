"""Evaluating anomaly scores against 0/1 labels.

Scores follow oddkit's convention: higher means more anomalous, and a row is flagged when
``score >= threshold``. Labels are ``0`` (normal) and ``1`` (anomaly).

The label and score checks in this module (:func:`check_labels`, :func:`check_scores`) are shared
with :mod:`oddkit.threshold`, so both report bad input with the same messages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score

from oddkit.exceptions import DataError, EmptyDataError, LabelError

__all__ = [
    "Evaluation",
    "check_labels",
    "check_scores",
    "confusion_at",
    "evaluate",
    "pr_auc",
    "roc_auc",
]

_LABEL_FIX = "map your label column to 0/1 first, e.g. y = (df['label'] == 'fraud').astype(int)"


def _as_1d(values: ArrayLike, name: str, error: type[DataError]) -> np.ndarray:
    arr = np.asarray(values)
    # A single DataFrame column arrives as (n, 1); accept it rather than make users ravel.
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise error(
            f"{name} must be one-dimensional, got an array of shape {arr.shape}; pass one value per row"
        )
    return arr


def check_scores(scores: ArrayLike, *, name: str = "scores") -> np.ndarray:
    """Validate anomaly scores and return them as a 1-D float64 array.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Anomaly scores, higher = more anomalous.
    name : str, default "scores"
        What to call the values in error messages.

    Returns
    -------
    numpy.ndarray
        The scores as float64.

    Raises
    ------
    DataError
        If the scores are not one-dimensional, not numeric, or contain NaN or infinite values.
    EmptyDataError
        If there are no scores.

    Examples
    --------
    >>> check_scores([0.1, 2, 3.5])
    array([0.1, 2. , 3.5])
    """
    arr = _as_1d(scores, name, DataError)
    if arr.dtype.kind not in "biuf":
        try:
            if arr.dtype.kind in "USa" or any(isinstance(v, (str, bytes)) for v in arr):
                raise TypeError
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(
                f"{name} must be numeric, got values of type {arr.dtype}; pass the detector's numeric anomaly scores"
            ) from None
    arr = np.asarray(arr, dtype=np.float64)
    if arr.size == 0:
        raise EmptyDataError(f"{name} is empty; score at least one row")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        n_nan = int(np.isnan(arr).sum())
        raise DataError(
            f"{name} contain {bad.size} NaN or infinite value(s) ({n_nan} NaN, {bad.size - n_nan} inf) at row(s) "
            f"{', '.join(str(int(r)) for r in bad[:5])}{' and more' if bad.size > 5 else ''}; scores must be "
            "finite (oddkit's detectors always return finite scores): recompute them with decision_function, "
            "or drop or replace those rows"
        )
    return arr


def _check_y(y: ArrayLike) -> np.ndarray:
    arr = _as_1d(y, "y (the anomaly labels)", LabelError)
    kind = arr.dtype.kind
    # Strings such as "1" would convert silently, but a text label column usually means the user
    # has not decided which value is the anomaly, so refuse rather than guess.
    if kind in "USa" or (kind == "O" and any(isinstance(v, (str, bytes)) for v in arr)):
        examples = ", ".join(repr(v) for v in list(dict.fromkeys(arr.tolist()))[:3])
        raise LabelError(f"anomaly labels must be numeric 0/1, found text such as {examples}; {_LABEL_FIX}")
    if kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise LabelError(
                f"anomaly labels must be numeric 0/1, got values of type {arr.dtype}; {_LABEL_FIX}"
            ) from None
    if kind == "b":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        n_missing = int(np.isnan(arr).sum())
        raise LabelError(
            f"anomaly labels contain {n_missing} missing value(s); label every row 0 (normal) or 1 (anomaly), "
            "or drop the unlabelled rows"
        )
    ok = (arr == 0) | (arr == 1)
    if not ok.all():
        examples = ", ".join(repr(v) for v in np.unique(arr[~ok])[:5].tolist())
        raise LabelError(f"anomaly labels must be 0 (normal) or 1 (anomaly), found {examples}; {_LABEL_FIX}")
    return arr.astype(np.int64)


def check_labels(
    y: ArrayLike,
    scores: ArrayLike,
    *,
    need_normals: bool = False,
    need_anomalies: bool = False,
    purpose: str = "this",
) -> tuple[np.ndarray, np.ndarray]:
    """Validate 0/1 labels and the scores they go with.

    Parameters
    ----------
    y : array-like of shape (n,)
        Labels, 0 = normal and 1 = anomaly (bool, int or float 0/1).
    scores : array-like of shape (n,)
        Anomaly scores, higher = more anomalous.
    need_normals, need_anomalies : bool, default False
        Require at least one row of that class.
    purpose : str, default "this"
        What the labels are for, used in the message when a class is missing,
        e.g. ``"ROC AUC"``.

    Returns
    -------
    y : numpy.ndarray
        The labels as int64 0/1.
    scores : numpy.ndarray
        The scores as float64.

    Raises
    ------
    LabelError
        If ``y`` is not numeric 0/1, or a required class is missing.
    DataError
        If the scores are invalid (see :func:`check_scores`) or the lengths differ.

    Examples
    --------
    >>> y, s = check_labels([0, 1, 0], [0.2, 0.9, 0.1], need_anomalies=True)
    >>> y.tolist(), s.tolist()
    ([0, 1, 0], [0.2, 0.9, 0.1])
    """
    y_arr = _check_y(y)
    s_arr = check_scores(scores)
    if y_arr.shape[0] != s_arr.shape[0]:
        raise DataError(
            f"y has {y_arr.shape[0]} labels but scores has {s_arr.shape[0]} values; pass one label per scored row"
        )
    n_anomalies = int(y_arr.sum())
    if need_anomalies and n_anomalies == 0:
        raise LabelError(
            f"{purpose} needs labelled anomalies, but all {y_arr.size} labels are 0; use a dev/test set that "
            "includes rows labelled 1 (anomaly), or without labelled anomalies pick the threshold with an "
            "'fpr:' goal or contamination_threshold"
        )
    if need_normals and n_anomalies == y_arr.size:
        raise LabelError(
            f"{purpose} needs labelled normal rows, but all {y_arr.size} labels are 1; use a dev/test set that "
            "includes rows labelled 0 (normal)"
        )
    return y_arr, s_arr


def _rates(tp: int, fp: int, tn: int, fn: int) -> dict[str, float]:
    """Precision, recall, F1 and FPR from confusion counts, 0.0 where a denominator is 0."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0
    fpr = fp / (fp + tn) if fp + tn else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "fpr": fpr}


def _check_threshold(threshold: float) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise DataError(f"threshold must be a number, got {threshold!r}") from None
    if np.isnan(t):
        raise DataError("threshold is NaN; pass a number (rows with score >= threshold are flagged)")
    return t


def roc_auc(y: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve.

    Parameters
    ----------
    y : array-like of shape (n,)
        Labels, 0 = normal and 1 = anomaly; both classes must occur.
    scores : array-like of shape (n,)
        Anomaly scores, higher = more anomalous.

    Returns
    -------
    float
        ROC AUC in [0, 1]; 0.5 is chance level.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y_arr, s_arr = check_labels(y, scores, need_normals=True, need_anomalies=True, purpose="ROC AUC")
    return float(roc_auc_score(y_arr, s_arr))


def pr_auc(y: ArrayLike, scores: ArrayLike) -> float:
    """Area under the precision-recall curve, as average precision.

    Parameters
    ----------
    y : array-like of shape (n,)
        Labels, 0 = normal and 1 = anomaly; both classes must occur.
    scores : array-like of shape (n,)
        Anomaly scores, higher = more anomalous.

    Returns
    -------
    float
        Average precision in [0, 1]; chance level is the anomaly rate.

    Examples
    --------
    >>> round(pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
    0.8333
    """
    y_arr, s_arr = check_labels(y, scores, need_normals=True, need_anomalies=True, purpose="PR AUC")
    return float(average_precision_score(y_arr, s_arr))


def _confusion(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    flagged = scores >= threshold
    positive = y == 1
    tp = int(np.count_nonzero(flagged & positive))
    fp = int(np.count_nonzero(flagged & ~positive))
    fn = int(np.count_nonzero(positive)) - tp
    tn = int(y.size) - tp - fp - fn
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn, **_rates(tp, fp, tn, fn)}


def confusion_at(y: ArrayLike, scores: ArrayLike, threshold: float) -> dict[str, Any]:
    """Confusion counts and rates when rows with ``score >= threshold`` are flagged.

    Parameters
    ----------
    y : array-like of shape (n,)
        Labels, 0 = normal and 1 = anomaly.
    scores : array-like of shape (n,)
        Anomaly scores, higher = more anomalous.
    threshold : float
        Decision threshold.

    Returns
    -------
    dict
        ``tp, fp, tn, fn`` (int) and ``precision, recall, f1, fpr`` (float; 0.0 where the
        denominator is 0, e.g. precision when nothing is flagged).

    Examples
    --------
    >>> c = confusion_at([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], threshold=0.35)
    >>> c["tp"], c["fp"], c["tn"], c["fn"], c["fpr"]
    (2, 1, 1, 0, 0.5)
    """
    y_arr, s_arr = check_labels(y, scores)
    return _confusion(y_arr, s_arr, _check_threshold(threshold))


@dataclass(frozen=True)
class Evaluation:
    """How well scores separate anomalies on labelled data, and what a threshold achieves.

    The confusion fields are ``None`` unless a threshold was given.
    """

    n: int
    n_anomalies: int
    roc_auc: float
    pr_auc: float
    threshold: float | None = None
    tp: int | None = None
    fp: int | None = None
    tn: int | None = None
    fn: int | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    fpr: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-friendly dict (``None`` for fields without a threshold)."""
        return asdict(self)

    def as_rows(self) -> list[tuple[str, float | int]]:
        """``(metric, value)`` pairs for printing a table, leaving out fields that are ``None``.

        Examples
        --------
        >>> evaluate([0, 1], [0.2, 0.7]).as_rows()[:2]
        [('rows', 2), ('anomalies', 1)]
        """
        names = {
            "n": "rows",
            "n_anomalies": "anomalies",
            "roc_auc": "ROC AUC",
            "pr_auc": "PR AUC (average precision)",
            "threshold": "threshold",
            "tp": "true positives (caught anomalies)",
            "fp": "false positives (false alarms)",
            "tn": "true negatives",
            "fn": "false negatives (missed anomalies)",
            "precision": "precision",
            "recall": "recall",
            "f1": "F1",
            "fpr": "false-positive rate",
        }
        return [(names[k], v) for k, v in self.to_dict().items() if v is not None]


def evaluate(y: ArrayLike, scores: ArrayLike, threshold: float | None = None) -> Evaluation:
    """Evaluate scores on labelled (typically test) data.

    With a threshold chosen on dev data (see :func:`oddkit.threshold.choose_threshold`) this tells
    what that threshold actually achieves on the test data.

    Parameters
    ----------
    y : array-like of shape (n,)
        Labels, 0 = normal and 1 = anomaly; both classes must occur.
    scores : array-like of shape (n,)
        Anomaly scores, higher = more anomalous.
    threshold : float, optional
        If given, also report the confusion counts and rates at ``score >= threshold``.

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> ev = evaluate([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], threshold=0.5)
    >>> ev.roc_auc, ev.tp, ev.fp, ev.recall
    (0.75, 1, 0, 0.5)
    """
    y_arr, s_arr = check_labels(y, scores, need_normals=True, need_anomalies=True, purpose="evaluation")
    result: dict[str, Any] = {
        "n": int(y_arr.size),
        "n_anomalies": int(y_arr.sum()),
        "roc_auc": float(roc_auc_score(y_arr, s_arr)),
        "pr_auc": float(average_precision_score(y_arr, s_arr)),
    }
    if threshold is not None:
        t = _check_threshold(threshold)
        result["threshold"] = t
        result.update(_confusion(y_arr, s_arr, t))
    return Evaluation(**result)
