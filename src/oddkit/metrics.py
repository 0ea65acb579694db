"""Evaluating anomaly scores against 0/1 labels.

Scores follow oddkit's convention: higher means more anomalous, and a row is flagged when
``score >= threshold``. Labels are ``0`` (normal) and ``1`` (anomaly).

The label and score checks in this module (:func:`check_labels`, :func:`check_scores`) are shared
with :mod:`oddkit.threshold`, so both report bad input with the same messages.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score

from oddkit.exceptions import DataError, EmptyDataError, LabelError

__all__ = [
    "Evaluation",
    "at_prevalence",
    "check_labels",
    "check_scores",
    "confusion_at",
    "evaluate",
    "metric_intervals",
    "operating_report",
    "pr_auc",
    "roc_auc",
    "write_metrics",
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
    return _finite_values(scores, name, "scores must be finite (oddkit's detectors always return finite scores): "
                                        "recompute them with decision_function, or drop or replace those rows")


def _finite_values(values: ArrayLike, name: str, fix: str) -> np.ndarray:
    """``values`` as a 1-D float64 array, every one finite; ``fix`` is the advice of the error for a
    non-finite value."""
    arr = _as_1d(values, name, DataError)
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
            f"{', '.join(str(int(r)) for r in bad[:5])}{' and more' if bad.size > 5 else ''}; {fix}"
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


def _roc_auc_interval(y: np.ndarray, scores: np.ndarray, level: float) -> tuple[float, float]:
    """DeLong's interval for the ROC AUC: the AUC's variance from each anomaly's share of normals it
    outscores and each normal's share of anomalies that outscore it (midranks count ties as half)."""
    from scipy.stats import norm, rankdata

    positive = y == 1
    n1, n0 = int(positive.sum()), int((~positive).sum())
    ranks = rankdata(scores)
    above_normals = (ranks[positive] - rankdata(scores[positive])) / n0
    below_anomalies = 1.0 - (ranks[~positive] - rankdata(scores[~positive])) / n1
    auc = float(above_normals.mean())
    variance = (np.var(above_normals, ddof=1) if n1 > 1 else 0.0) / n1 \
        + (np.var(below_anomalies, ddof=1) if n0 > 1 else 0.0) / n0
    half = float(norm.ppf(0.5 + level / 2) * np.sqrt(variance))
    return max(0.0, auc - half), min(1.0, auc + half)


def _pr_auc_interval(y: np.ndarray, scores: np.ndarray, level: float) -> tuple[float, float]:
    """The logit interval for the PR AUC (average precision) of Boyd, Eng and Page: normal on the log-odds
    scale, with standard error ``1 / sqrt(n_anomalies * ap * (1 - ap))``."""
    from scipy.special import expit, logit
    from scipy.stats import norm

    ap = float(average_precision_score(y, scores))
    if ap >= 1.0 - 1e-12:  # a perfect ranking (up to the rounding of the sum)
        return 1.0, 1.0
    half = float(norm.ppf(0.5 + level / 2) / np.sqrt(int((y == 1).sum()) * ap * (1.0 - ap)))
    return float(expit(logit(ap) - half)), float(expit(logit(ap) + half))


def metric_intervals(y: ArrayLike, scores: ArrayLike, threshold: float, level: float = 0.95) -> dict[str, tuple]:
    """Confidence intervals for the ROC AUC, the PR AUC, and the recall, false-positive rate and precision
    at a threshold: how far the figures measured on a labelled set may be from those on more data like it.

    A recall measured on 50 anomalies is known to about ±0.14; these intervals say so beside the
    figure. The rates are counts out of counts, so their intervals are exact (Clopper-Pearson): the
    recall is the caught anomalies out of all anomalies, the false-positive rate the flagged normal
    rows out of all normal rows, the precision the anomalies out of the flagged rows. The ROC AUC's
    is DeLong's (a normal approximation of its non-parametric variance; it shrinks to the point 1.0
    when no normal row outscores an anomaly, which says little about more data). The PR AUC's (average
    precision) is the logit interval of Boyd, Eng and Page: normal on the log-odds scale, with a
    standard error from the number of anomalies; it also shrinks to the point 1.0 for a perfect ranking.
    On binormal scores with 10 to 100 anomalies it covered the population PR AUC in 94-99% of 1,000 draws
    per setting at 95% (benchmarks/PR_AUC_INTERVAL.md). Each holds for rows drawn like those measured;
    none covers data that drifts (:mod:`oddkit.drift` checks that).

    Parameters
    ----------
    y : array-like of shape (n,)
        Labels, 0 = normal and 1 = anomaly; both classes must occur.
    scores : array-like of shape (n,)
        Anomaly scores, higher = more anomalous.
    threshold : float
        Rows with ``score >= threshold`` are flagged.
    level : float, default=0.95
        The confidence of each interval, in (0, 1).

    Returns
    -------
    dict
        ``roc_auc``, ``pr_auc``, ``recall``, ``fpr`` and ``precision``, each ``(low, high)``;
        ``precision`` is ``None`` when nothing is flagged.

    Raises
    ------
    DataError
        If the labels or scores are invalid, a class is missing, or ``level`` is not in (0, 1).

    References
    ----------
    Clopper, C. J. and Pearson, E. S. "The use of confidence or fiducial limits illustrated in the
    case of the binomial." Biometrika 26 (1934).
    DeLong, E. R., DeLong, D. M. and Clarke-Pearson, D. L. "Comparing the areas under two or more
    correlated receiver operating characteristic curves: a nonparametric approach." Biometrics 44 (1988).
    Boyd, K., Eng, K. H. and Page, C. D. "Area under the precision-recall curve: point estimates and
    confidence intervals." ECML PKDD (2013).

    Examples
    --------
    >>> low, high = metric_intervals([0] * 90 + [1] * 10, list(range(100)), threshold=95)["recall"]
    >>> round(low, 3), round(high, 3)
    (0.187, 0.813)
    """
    from scipy.stats import binomtest

    y_arr, s_arr = check_labels(y, scores, need_normals=True, need_anomalies=True, purpose="intervals")
    level_value = _number_in(level, "level")
    counts = _confusion(y_arr, s_arr, _check_threshold(threshold))

    def exact(k: int, n: int):
        if n == 0:
            return None
        interval = binomtest(k, n).proportion_ci(confidence_level=level_value, method="exact")
        return float(interval.low), float(interval.high)

    return {"roc_auc": _roc_auc_interval(y_arr, s_arr, level_value),
            "pr_auc": _pr_auc_interval(y_arr, s_arr, level_value),
            "recall": exact(counts["tp"], counts["tp"] + counts["fn"]),
            "fpr": exact(counts["fp"], counts["fp"] + counts["tn"]),
            "precision": exact(counts["tp"], counts["tp"] + counts["fp"])}


def _number_in(value: Any, what: str) -> float:
    """A number strictly between 0 and 1, or a DataError naming ``what``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not 0.0 < number < 1.0:
        raise DataError(f"{what} must be a number between 0 and 1, got {value!r}; e.g. 0.95")
    return number


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


def _check_rate(value: Any, what: str, *, open_interval: bool = False) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be a number between 0 and 1, got {value!r}") from None
    ok = (0.0 < rate < 1.0) if open_interval else (0.0 <= rate <= 1.0)
    if math.isnan(rate) or not ok:
        bounds = "between 0 and 1 (exclusive)" if open_interval else "between 0 and 1"
        raise DataError(f"{what} must be {bounds}, got {rate}; e.g. 0.0017 for 0.17%")
    return rate


def _check_costs(costs: Any) -> tuple[float, float] | None:
    if costs is None:
        return None
    try:
        false_alarm, miss = (float(c) for c in costs)
    except (TypeError, ValueError):
        raise DataError(
            f"costs must be a pair (cost of a false alarm, cost of a missed anomaly), got {costs!r}; e.g. (1, 50)"
        ) from None
    if not (math.isfinite(false_alarm) and math.isfinite(miss)) or false_alarm < 0 or miss < 0:
        raise DataError(
            f"costs must be finite and >= 0, got false alarm {false_alarm}, miss {miss}; e.g. (1, 50)"
        )
    return false_alarm, miss


def _check_missed_cost(value: Any) -> float:
    try:
        missed = float(value)
    except (TypeError, ValueError):
        missed = math.nan
    if not math.isfinite(missed) or missed < 0:
        raise DataError(
            f"missed_cost_per_anomaly must be a finite number >= 0, got {value!r}; it is the missed anomalies' "
            "summed miss costs divided by the number of anomalies"
        )
    return missed


def _check_row_costs(miss_costs: ArrayLike, n: int) -> np.ndarray:
    """Per-row miss costs as float64: one finite value >= 0 per row."""
    arr = _finite_values(miss_costs, "miss_costs", "a missed anomaly's cost must be a finite amount: fill in "
                                                   "those rows (0 if missing it costs nothing) or drop them")
    if arr.shape[0] != n:
        raise DataError(
            f"miss_costs has {arr.shape[0]} values but there are {n} labelled rows; pass one miss cost per row "
            "(e.g. the transaction amount column)"
        )
    if (arr < 0).any():
        row = int(np.flatnonzero(arr < 0)[0])
        raise DataError(
            f"miss_costs must be >= 0, got {arr[row]:g} at row {row}; a missed anomaly cannot save money, "
            "so clip or fix those rows"
        )
    return arr


def at_prevalence(
    recall: float,
    fpr: float,
    prevalence: float,
    *,
    costs: tuple[float, float] | None = None,
    missed_cost_per_anomaly: float | None = None,
) -> dict[str, float | None]:
    """What an operating point achieves at a given anomaly rate (prevalence).

    Recall and false-positive rate are rates *within* each class, so they do not depend on how
    many anomalies the data holds; precision, F1, the number of alerts and the expected cost do.
    A dev set enriched with anomalies (say 20% fraud where production sees 0.17%) therefore
    overstates precision; this function gives the figures at the prevalence stated for production.

    Parameters
    ----------
    recall : float
        True-positive rate at the threshold, in [0, 1].
    fpr : float
        False-positive rate at the threshold, in [0, 1].
    prevalence : float
        Anomaly rate to report at, in (0, 1), e.g. ``0.0017``.
    costs : (float, float), optional
        ``(false_alarm, miss)``: the cost of one false alarm and of one missed anomaly, in the
        order of the ``cost:FALSE_ALARM,MISS[,RATE]`` threshold goal. Without it
        ``expected_cost`` is ``None``.
    missed_cost_per_anomaly : float, optional
        When each missed anomaly costs its own amount (per-row miss costs, e.g. a transaction's
        value): the summed miss costs of the missed anomalies divided by the number of anomalies,
        measured on labelled data. The expected cost then charges ``miss`` times this per anomaly
        in place of ``miss * (1 - recall)`` (every anomaly costing 1).

    Returns
    -------
    dict
        ``prevalence, recall, fpr`` (as given), ``precision``, ``f1``, ``flag_rate`` (fraction
        of rows flagged), ``alerts_per_10000`` (rows flagged per 10,000 rows) and
        ``expected_cost`` (per row; ``None`` without ``costs``).

    Raises
    ------
    DataError
        If a rate is outside its range or a cost is negative or not a number.

    Notes
    -----
    With prevalence ``p``: flag rate ``= recall * p + fpr * (1 - p)``;
    precision ``= recall * p / flag rate`` (Bayes' rule; 0.0 when nothing is flagged);
    F1 ``= 2 * precision * recall / (precision + recall)``; expected cost per row
    ``= false_alarm * fpr * (1 - p) + miss * (1 - recall) * p``, as
    :class:`oddkit.threshold.CostGoal` computes it (``missed_cost_per_anomaly`` in place of
    ``1 - recall`` when given).

    Examples
    --------
    >>> m = at_prevalence(recall=0.8, fpr=0.001, prevalence=0.0017, costs=(1, 50))
    >>> round(m["precision"], 3), round(m["alerts_per_10000"], 2), round(m["expected_cost"], 4)
    (0.577, 23.58, 0.018)
    """
    r = _check_rate(recall, "recall")
    f = _check_rate(fpr, "false-positive rate")
    p = _check_rate(prevalence, "prevalence (the anomaly rate)", open_interval=True)
    checked_costs = _check_costs(costs)
    missed = 1.0 - r
    if missed_cost_per_anomaly is not None:
        missed = _check_missed_cost(missed_cost_per_anomaly)
    flag_rate = r * p + f * (1.0 - p)
    precision = r * p / flag_rate if flag_rate > 0 else 0.0
    f1 = 2 * precision * r / (precision + r) if precision + r > 0 else 0.0
    cost = None
    if checked_costs is not None:
        false_alarm, miss = checked_costs
        cost = false_alarm * f * (1.0 - p) + miss * missed * p
    return {
        "prevalence": p,
        "recall": r,
        "fpr": f,
        "precision": precision,
        "f1": f1,
        "flag_rate": flag_rate,
        "alerts_per_10000": 10_000.0 * flag_rate,
        "expected_cost": cost,
    }


def operating_report(
    y: ArrayLike,
    scores: ArrayLike,
    threshold: float,
    *,
    prevalence: float | None = None,
    costs: tuple[float, float] | None = None,
    miss_costs: ArrayLike | None = None,
) -> dict[str, Any]:
    """Every number of an evaluation at a threshold, at the data's own and at a stated prevalence.

    Parameters
    ----------
    y : array-like of shape (n,)
        Labels, 0 = normal and 1 = anomaly; both classes must occur.
    scores : array-like of shape (n,)
        Anomaly scores, higher = more anomalous.
    threshold : float
        Rows with ``score >= threshold`` are flagged.
    prevalence : float, optional
        The anomaly rate expected in production, e.g. ``0.0017``. When given, the ``production``
        section reports precision, F1, alerts and cost at that rate (see :func:`at_prevalence`).
    costs : (float, float), optional
        ``(false_alarm, miss)`` costs, for the expected cost per row in both sections.
    miss_costs : array-like of shape (n,), optional
        Per-row miss costs (e.g. each transaction's amount): a missed anomaly then costs
        ``miss`` times its own value (see :func:`oddkit.threshold.choose_threshold`); at the
        production rate the missed cost per anomaly measured here is re-weighted. Needs ``costs``.

    Returns
    -------
    dict
        JSON-friendly: ``n``, ``n_anomalies``, ``roc_auc``, ``pr_auc``, ``threshold``,
        ``confusion`` (``tp, fp, tn, fn``), ``miss_costs`` (``None``, or the anomalies' summed
        miss costs: ``total``, ``caught``, ``missed`` and ``missed_per_anomaly``), ``data`` (:func:`at_prevalence` at the data's own
        anomaly rate) and ``production`` (at ``prevalence``, or ``None`` when none is stated).
        Write it with :func:`write_metrics`.

    Raises
    ------
    LabelError, DataError
        As :func:`evaluate`, or :func:`at_prevalence` for a bad ``prevalence`` or ``costs``.

    Examples
    --------
    >>> r = operating_report([0, 0, 0, 1], [0.1, 0.2, 0.9, 0.8], threshold=0.5, prevalence=0.01)
    >>> r["data"]["precision"], round(r["production"]["precision"], 4)
    (0.5, 0.0294)
    """
    ev = evaluate(y, scores, threshold=threshold)
    own_rate = ev.n_anomalies / ev.n
    checked_costs = _check_costs(costs)
    amounts = per_anomaly = None
    missed_units = float(ev.fn)
    if miss_costs is not None:
        if checked_costs is None:
            raise DataError("miss_costs prices missed anomalies, so it needs costs too; e.g. costs=(5, 1)")
        weights = _check_row_costs(miss_costs, ev.n)
        y_arr, s_arr = check_labels(y, scores)
        anomalies = y_arr == 1
        caught = float(weights[anomalies & (s_arr >= ev.threshold)].sum())
        total = float(weights[anomalies].sum())
        missed_units = total - caught
        per_anomaly = missed_units / ev.n_anomalies
        amounts = {"total": total, "caught": caught, "missed": missed_units, "missed_per_anomaly": per_anomaly}
    data = at_prevalence(ev.recall, ev.fpr, own_rate, costs=checked_costs, missed_cost_per_anomaly=per_anomaly)
    # At the data's own rate the formulas equal the counts; take the counts' exact values.
    data["precision"], data["f1"] = ev.precision, ev.f1
    data["flag_rate"] = (ev.tp + ev.fp) / ev.n
    data["alerts_per_10000"] = 10_000.0 * data["flag_rate"]
    if checked_costs is not None:
        data["expected_cost"] = (checked_costs[0] * ev.fp + checked_costs[1] * missed_units) / ev.n
    production = None
    if prevalence is not None:
        production = at_prevalence(ev.recall, ev.fpr, prevalence, costs=checked_costs,
                                   missed_cost_per_anomaly=per_anomaly)
    return {
        "n": ev.n,
        "n_anomalies": ev.n_anomalies,
        "roc_auc": ev.roc_auc,
        "pr_auc": ev.pr_auc,
        "threshold": ev.threshold,
        "confusion": {"tp": ev.tp, "fp": ev.fp, "tn": ev.tn, "fn": ev.fn},
        "costs": None if checked_costs is None else {"false_alarm": checked_costs[0], "miss": checked_costs[1]},
        "miss_costs": amounts,
        "data": data,
        "production": production,
    }


def _flatten(record: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows


def write_metrics(metrics: dict[str, Any] | Evaluation, path: str | os.PathLike[str]) -> Path:
    """Write metrics to a ``.json`` or ``.csv`` file, the format taken from the extension.

    Parameters
    ----------
    metrics : dict or Evaluation
        E.g. the result of :func:`operating_report`, or an :class:`Evaluation`.
    path : str or path-like
        ``*.json``: the dict as JSON (``null`` for missing values). ``*.csv``: two columns,
        ``metric,value``, nested keys joined with dots (``production.precision``) and missing
        values left empty. Parent folders are created.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    DataError
        If the extension is neither ``.json`` nor ``.csv``, or a value is not finite.

    Examples
    --------
    >>> import tempfile, os
    >>> out = write_metrics({"roc_auc": 0.9, "data": {"precision": 0.5}}, os.path.join(tempfile.mkdtemp(), "m.csv"))
    >>> out.read_text().splitlines()
    ['metric,value', 'roc_auc,0.9', 'data.precision,0.5']
    """
    record = metrics.to_dict() if isinstance(metrics, Evaluation) else dict(metrics)
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise DataError(f"cannot write metrics to {out}: use a file name ending in .json or .csv")
    for name, value in _flatten(record):
        if isinstance(value, float) and not math.isfinite(value):
            raise DataError(f"metric {name} is {value}, which JSON and CSV readers do not take; it must be finite")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        out.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    else:
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["metric", "value"])
            writer.writerows((name, "" if value is None else value) for name, value in _flatten(record))
    return out
