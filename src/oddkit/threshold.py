"""Choosing a decision threshold for anomaly scores.

A row is flagged anomalous when ``score >= threshold``. With labelled dev data,
:func:`choose_threshold` picks the threshold that best meets a *goal*:

| goal                  | threshold chosen                                                                         |
|-----------------------|------------------------------------------------------------------------------------------|
| ``"f1"``              | maximise F1                                                                              |
| ``"fpr:0.01"``        | lowest whose false-positive rate is <= 0.01 (most recall for that false-alarm budget)    |
| ``"recall:0.95"``     | highest whose recall is >= 0.95 (fewest false alarms that still catch 95% of anomalies)  |
| ``"precision:0.9"``   | most recall while at least 90% of flagged rows are anomalies (at the dev set's share)    |
| ``"precision:0.9,0.001"`` | the same, with precision computed at a production anomaly rate of 0.001              |
| ``"cost:1,20"``       | lowest expected cost when a false alarm costs 1 and a missed anomaly costs 20            |
| ``"cost:1,20,0.001"`` | the same, re-weighted to an expected production anomaly rate of 0.001                    |

A cost goal can also price each missed anomaly by its own amount: with ``miss_costs=amount``
(e.g. a transaction's value) a missed anomaly costs ``miss * amount`` of its row, so the chosen
threshold moves to catch the expensive anomalies first.

Precision depends on how common anomalies are, recall and the false-positive rate do not. A
precision goal is therefore met at the production anomaly rate when one is stated (the goal's
second number, or ``prevalence=``), by Bayes' rule from the dev set's recall and false-positive
rate; otherwise at the dev set's own anomaly share, which flatters precision when the dev set was
enriched with anomalies.

The choice records where it came from (the dev data's name, its row and anomaly counts, and the
precision, recall and false-positive rate there): :meth:`ThresholdChoice.provenance`, stored by
:meth:`oddkit.BaseDetector.set_threshold` as ``threshold_provenance_``.

Without labels, :func:`contamination_threshold` flags about a given fraction of training rows.

Candidate thresholds are the distinct score values plus one value just above the highest score
(flag nothing), so every choice is exact with ties: a candidate flags all rows scoring at or
above it. All candidates are evaluated at once after one sort, so choosing is fast for millions
of rows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Real
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from oddkit.exceptions import DataError
from oddkit.metrics import _check_rate, _check_row_costs, _rates, at_prevalence, check_labels, check_scores

__all__ = [
    "CostGoal",
    "F1Goal",
    "FPRGoal",
    "Goal",
    "PrecisionGoal",
    "RecallGoal",
    "ThresholdChoice",
    "ThresholdProvenance",
    "choose_threshold",
    "contamination_threshold",
    "miss_cost_column",
    "parse_goal",
]

GOAL_FORMS = ('"f1", "fpr:0.01", "fpr:0.01,0.95", "recall:0.95", "precision:0.9", "precision:0.9,0.001", '
              '"cost:1,20" or "cost:1,20,0.001"')


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise DataError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _anomaly_rate(value: Any, example: str) -> float:
    """A goal's production anomaly rate, checked: a number strictly between 0 and 1."""
    rate = _number(value, "the production anomaly rate")
    if not 0.0 < rate < 1.0:
        raise DataError(f"the production anomaly rate must be between 0 and 1 (exclusive), got {rate}; "
                        f"e.g. {example}")
    return rate


def _fmt(x: float) -> str:
    # Integers print without ".0" so canonical goals read like what users type ("cost:1,20");
    # repr keeps every digit of the rest so parse_goal(str(goal)) == goal.
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


@dataclass(frozen=True)
class _Curve:
    """Confusion counts at every candidate threshold, highest threshold first.

    Index 0 is the "flag nothing" threshold just above the highest score.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_pos: int
    n_neg: int
    # With per-row miss costs: the summed miss cost of the anomalies caught at each candidate,
    # and of all anomalies.
    caught_cost: np.ndarray | None = None
    total_miss_cost: float | None = None

    def missed(self) -> np.ndarray:
        """Missed anomalies at each candidate: a count, or their summed miss cost when per-row
        miss costs were given."""
        if self.caught_cost is None:
            return self.n_pos - self.tp
        return self.total_miss_cost - self.caught_cost


def _curve(y: np.ndarray, scores: np.ndarray, miss_costs: np.ndarray | None = None) -> _Curve:
    order = np.argsort(scores)[::-1]
    s = scores[order]
    ctp = np.cumsum(y[order], dtype=np.int64)
    cfp = np.arange(1, s.size + 1, dtype=np.int64) - ctp
    # The last row of each run of tied scores: a threshold equal to that score flags the whole run.
    ends = np.append(np.flatnonzero(s[1:] != s[:-1]), s.size - 1)
    above_max = np.nextafter(s[0], np.inf)
    caught_cost = total = None
    if miss_costs is not None:
        ccost = np.cumsum(np.where(y[order] == 1, miss_costs[order], 0.0))
        caught_cost, total = np.concatenate(([0.0], ccost[ends])), float(ccost[-1])
    return _Curve(
        thresholds=np.concatenate(([above_max], s[ends])),
        tp=np.concatenate(([0], ctp[ends])),
        fp=np.concatenate(([0], cfp[ends])),
        n_pos=int(ctp[-1]),
        n_neg=int(cfp[-1]),
        caught_cost=caught_cost,
        total_miss_cost=total,
    )


class Goal:
    """What a threshold should achieve; see :func:`parse_goal` for the string forms.

    Subclasses: :class:`F1Goal`, :class:`FPRGoal`, :class:`RecallGoal`, :class:`PrecisionGoal`,
    :class:`CostGoal`.
    ``str(goal)`` gives the canonical string form, e.g. ``"fpr:0.01"``.
    """

    needs_normals: ClassVar[bool] = True
    needs_anomalies: ClassVar[bool] = True

    def _select(self, curve: _Curve) -> tuple[int, bool, str]:
        """Index into ``curve`` of the chosen threshold, whether the goal is met, and a note."""
        raise NotImplementedError

    def _cost(self, curve: _Curve) -> np.ndarray | None:
        return None


@dataclass(frozen=True)
class F1Goal(Goal):
    """Maximise F1; ties go to the higher threshold (fewer flags).

    Examples
    --------
    >>> str(F1Goal())
    'f1'
    """

    def __str__(self) -> str:
        return "f1"

    def _select(self, curve: _Curve) -> tuple[int, bool, str]:
        # Integer numerator and denominator make equal F1 values equal floats, so ties are exact.
        f1 = 2 * curve.tp / (curve.tp + curve.fp + curve.n_pos)
        return int(np.argmax(f1)), True, ""


@dataclass(frozen=True)
class FPRGoal(Goal):
    """Lowest threshold whose false-positive rate on the dev normals is at most ``max_fpr``, or, with
    ``confidence``, whose false-positive rate on new normal rows is at most ``max_fpr`` with that confidence.

    The false-positive rate measured on the dev normals is an estimate: a threshold that flags 5% of
    400 dev normals flags between about 3% and 7% of the next normals (a 95% interval), so a threshold
    chosen to just meet ``fpr:0.05`` on dev exceeds 5% about half the time in production. With
    ``confidence`` (``"fpr:0.05,0.95"``) the threshold is the lowest whose false-positive rate on new
    normals exceeds ``max_fpr`` with probability at most ``1 - confidence``, judged from the ``m``
    dev normals of ``n`` it flags: for continuous scores of dev and production normals drawn from the
    same distribution, the mass above the ``m``-th highest of ``n`` normal scores follows a
    Beta(m, n - m + 1) law, so a threshold at that score qualifies when ``P(Binomial(n, max_fpr) <=
    m - 1) <= 1 - confidence``, and one at an anomaly's score just below it when ``P(Binomial(n,
    max_fpr) <= m) <= 1 - confidence`` (the one-sided Clopper-Pearson bound;
    ``benchmarks/THRESHOLD_CONFIDENCE.md`` measures it on held-out normals of 16 datasets). The
    price is recall, and a minimum dev set: with fewer than ``log(1 - confidence) / log(1 -
    max_fpr)`` dev normals (59 for 5% at 95%) no threshold that flags anything qualifies.

    Parameters
    ----------
    max_fpr : float
        The largest acceptable false-positive rate, in [0, 1].
    confidence : float, optional
        In (0, 1): how sure the bound must be; None (default) holds ``max_fpr`` on the dev normals only.

    References
    ----------
    Clopper, C. J. and Pearson, E. S. "The use of confidence or fiducial limits illustrated in the
    case of the binomial." Biometrika 26 (1934).
    Vovk, V. "Conditional validity of inductive conformal predictors." ACML 2012.

    Examples
    --------
    >>> str(FPRGoal(max_fpr=0.01))
    'fpr:0.01'
    >>> str(FPRGoal(max_fpr=0.05, confidence=0.95))
    'fpr:0.05,0.95'
    """

    max_fpr: float
    confidence: float | None = None
    needs_anomalies: ClassVar[bool] = False

    def __post_init__(self) -> None:
        value = _number(self.max_fpr, "the false-positive-rate target (fpr:...)")
        if not 0.0 <= value <= 1.0:
            raise DataError(
                f"the false-positive-rate target must be between 0 and 1, got {value}; e.g. fpr:0.01"
            )
        object.__setattr__(self, "max_fpr", value)
        if self.confidence is not None:
            confidence = _number(self.confidence, "the confidence of the false-positive-rate target (fpr:...,C)")
            if not 0.0 < confidence < 1.0:
                raise DataError(f"the confidence of a false-positive-rate target must be above 0 and below 1, got "
                                f"{confidence}; e.g. fpr:0.05,0.95 (at most 5% with 95% confidence)")
            object.__setattr__(self, "confidence", confidence)

    def __str__(self) -> str:
        if self.confidence is None:
            return f"fpr:{_fmt(self.max_fpr)}"
        return f"fpr:{_fmt(self.max_fpr)},{_fmt(self.confidence)}"

    def _select(self, curve: _Curve) -> tuple[int, bool, str]:
        if self.confidence is not None:
            return self._select_with_confidence(curve)
        # fp only grows as the threshold drops, so the feasible thresholds are a prefix.
        ok = curve.fp / curve.n_neg <= self.max_fpr
        idx = int(np.flatnonzero(ok)[-1])
        note = ""
        if self.max_fpr * curve.n_neg < 1:
            note = (
                f"with {curve.n_neg} dev normals the smallest non-zero false-positive rate is "
                f"{1 / curve.n_neg:.3g}, so fpr:{_fmt(self.max_fpr)} means no false alarms on dev; "
                "more dev normals would give a finer estimate"
            )
        if idx == 0:
            note = (
                f"no threshold keeps the false-positive rate at or below {_fmt(self.max_fpr)} while flagging "
                "anything (the highest-scoring dev rows are normal); the threshold is just above the highest "
                "dev score and flags nothing"
            )
            return idx, False, note
        return idx, True, note

    def _select_with_confidence(self, curve: _Curve) -> tuple[int, bool, str]:
        from scipy.stats import binom

        # A threshold at the m-th highest dev normal's score flags the normals at or above it: its rate on new
        # normals is the mass above that order statistic, Beta(m, n - m + 1), so it exceeds max_fpr with
        # probability P(Binomial(n, max_fpr) <= m - 1). A threshold at an anomaly's score, between the m-th
        # and (m + 1)-th normals, is bounded by the (m + 1)-th: P(Binomial(n, max_fpr) <= m). Both counts
        # only grow as the threshold drops, so the thresholds that qualify are a prefix again.
        alpha = 1.0 - self.confidence
        at_a_normal = np.r_[False, curve.fp[1:] > curve.fp[:-1]]
        ok = binom.cdf(curve.fp - at_a_normal, curve.n_neg, self.max_fpr) <= alpha
        level = f"{_fmt(self.max_fpr)} with {_fmt(self.confidence)} confidence"
        if not ok.any() or int(np.flatnonzero(ok)[-1]) == 0:
            if self.max_fpr == 0:
                more = " (no number of dev normals bounds a rate at 0)"
            else:
                needed = math.ceil(math.log(alpha) / math.log1p(-self.max_fpr))
                more = (f"; that needs at least {needed:,} dev normals, there are {curve.n_neg:,}"
                        if needed > curve.n_neg else " (the highest-scoring dev rows are normal)")
            return 0, False, (f"no threshold that flags anything keeps the false-positive rate at or below {level}"
                              f"{more}; the threshold is just above the highest dev score and flags nothing")
        idx = int(np.flatnonzero(ok)[-1])
        return idx, True, (f"{int(curve.fp[idx])} of {curve.n_neg:,} dev normals flagged "
                           f"({curve.fp[idx] / curve.n_neg:.3g}); the false-positive rate on new normals is at most "
                           f"{level} (one-sided Clopper-Pearson bound)")


@dataclass(frozen=True)
class RecallGoal(Goal):
    """Highest threshold whose recall on the dev anomalies is at least ``min_recall``.

    Examples
    --------
    >>> str(RecallGoal(min_recall=0.95))
    'recall:0.95'
    """

    min_recall: float

    def __post_init__(self) -> None:
        value = _number(self.min_recall, "the recall target (recall:...)")
        if not 0.0 < value <= 1.0:
            raise DataError(f"the recall target must be above 0 and at most 1, got {value}; e.g. recall:0.95")
        object.__setattr__(self, "min_recall", value)

    def __str__(self) -> str:
        return f"recall:{_fmt(self.min_recall)}"

    def _select(self, curve: _Curve) -> tuple[int, bool, str]:
        # The lowest threshold flags every row (recall 1), so some threshold always qualifies.
        ok = curve.tp / curve.n_pos >= self.min_recall
        return int(np.argmax(ok)), True, ""


@dataclass(frozen=True)
class PrecisionGoal(Goal):
    """Most recall while precision is at least ``min_precision``; ties go to the higher threshold.

    Precision is the share of flagged rows that are anomalies, so it depends on how common
    anomalies are. With ``anomaly_rate`` (the rate expected in production) it is computed at
    that rate from the dev set's recall and false-positive rate (Bayes' rule, as
    :func:`oddkit.metrics.at_prevalence` does); without it, at the dev set's own anomaly share,
    which overstates production precision when the dev set was enriched with anomalies.

    Parameters
    ----------
    min_precision : float
        The least acceptable precision, in (0, 1].
    anomaly_rate : float, optional
        The production anomaly rate, in (0, 1), at which precision must reach ``min_precision``.

    Examples
    --------
    >>> str(PrecisionGoal(min_precision=0.9))
    'precision:0.9'
    >>> str(PrecisionGoal(0.9, anomaly_rate=0.0017))
    'precision:0.9,0.0017'
    """

    min_precision: float
    anomaly_rate: float | None = None

    def __post_init__(self) -> None:
        value = _number(self.min_precision, "the precision target (precision:...)")
        if not 0.0 < value <= 1.0:
            raise DataError(
                f"the precision target must be above 0 and at most 1, got {value}; e.g. precision:0.9"
            )
        object.__setattr__(self, "min_precision", value)
        if self.anomaly_rate is not None:
            object.__setattr__(self, "anomaly_rate", _anomaly_rate(self.anomaly_rate, "precision:0.9,0.001"))

    def __str__(self) -> str:
        rate = "" if self.anomaly_rate is None else f",{_fmt(self.anomaly_rate)}"
        return f"precision:{_fmt(self.min_precision)}{rate}"

    def _precision(self, curve: _Curve) -> np.ndarray:
        """Precision at every candidate (NaN where nothing is flagged)."""
        flagged = curve.tp + curve.fp
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.anomaly_rate is None:
                precision = curve.tp / flagged
            else:  # the same operations as at_prevalence, so the reported value is the same float
                p = self.anomaly_rate
                recall, fpr = curve.tp / curve.n_pos, curve.fp / curve.n_neg
                precision = recall * p / (recall * p + fpr * (1.0 - p))
        return np.where(flagged > 0, precision, np.nan)

    def _select(self, curve: _Curve) -> tuple[int, bool, str]:
        precision = self._precision(curve)
        ok = precision >= self.min_precision  # NaN (nothing flagged) never qualifies
        where = "" if self.anomaly_rate is None else f" at the anomaly rate {_fmt(self.anomaly_rate)}"
        if not ok.any():
            best = int(np.nanargmax(precision))
            raise DataError(
                f"no threshold reaches precision {_fmt(self.min_precision)} on the dev data{where}: the best "
                f"reachable is {precision[best]:.4g} (recall {curve.tp[best] / curve.n_pos:.4g}); lower the target "
                "or use a detector that ranks the anomalies higher"
            )
        # tp only grows as the threshold drops: the most recall among the qualifying thresholds,
        # and of those the highest (fewest false alarms).
        best_tp = curve.tp[ok].max()
        idx = int(np.flatnonzero(ok & (curve.tp == best_tp))[0])
        note = ""
        if self.anomaly_rate is not None:
            # The false-positive rate is measured in steps of 1 / n_neg; at a low production rate one
            # more dev false alarm can move precision a long way.
            p, recall = self.anomaly_rate, curve.tp[idx] / curve.n_pos
            fpr = (curve.fp[idx] + 1) / curve.n_neg
            one_more = recall * p / (recall * p + fpr * (1.0 - p))
            if one_more < self.min_precision:
                note = (
                    f"with {curve.n_neg} dev normals, one more false alarm on dev would put precision at the anomaly "
                    f"rate {_fmt(p)} at {one_more:.3g}, below {_fmt(self.min_precision)}; more dev normals would give "
                    "a firmer estimate"
                )
        return idx, True, note


@dataclass(frozen=True)
class CostGoal(Goal):
    """Lowest expected cost per row; ties go to the higher threshold (fewer flags).

    Expected cost per row is ``false_alarm * FPR * (1 - p) + miss * FNR * p`` where ``p`` is
    ``anomaly_rate``, the expected anomaly rate in production, or the dev set's anomaly rate when
    ``None``. Giving ``anomaly_rate`` matters when the dev set was enriched with anomalies.

    With per-row miss costs (``miss_costs`` of :func:`choose_threshold`), a missed anomaly costs
    ``miss`` times its own row's cost, and ``FNR`` above becomes the missed cost per dev anomaly
    (the summed miss costs of the missed anomalies divided by the number of anomalies), so at a
    stated ``anomaly_rate`` the cost is re-weighted the same way.

    Examples
    --------
    >>> str(CostGoal(false_alarm=1, miss=20))
    'cost:1,20'
    >>> str(CostGoal(1, 20, anomaly_rate=0.001))
    'cost:1,20,0.001'
    """

    false_alarm: float
    miss: float
    anomaly_rate: float | None = None

    def __post_init__(self) -> None:
        fa = _number(self.false_alarm, "the cost of a false alarm")
        miss = _number(self.miss, "the cost of a missed anomaly")
        if fa < 0 or miss < 0 or fa + miss == 0:
            raise DataError(
                f"costs must be >= 0 and not both 0, got false alarm {fa}, miss {miss}; e.g. cost:1,20"
            )
        object.__setattr__(self, "false_alarm", fa)
        object.__setattr__(self, "miss", miss)
        if self.anomaly_rate is not None:
            object.__setattr__(self, "anomaly_rate", _anomaly_rate(self.anomaly_rate, "cost:1,20,0.001"))

    def __str__(self) -> str:
        parts = [_fmt(self.false_alarm), _fmt(self.miss)]
        if self.anomaly_rate is not None:
            parts.append(_fmt(self.anomaly_rate))
        return "cost:" + ",".join(parts)

    def _cost(self, curve: _Curve) -> np.ndarray:
        fn = curve.missed()
        if self.anomaly_rate is None:
            # Same value as the re-weighted formula with p = n_pos / n, but exact for integer
            # costs, so equal costs tie exactly.
            return (self.false_alarm * curve.fp + self.miss * fn) / (curve.n_pos + curve.n_neg)
        p = self.anomaly_rate
        return self.false_alarm * (curve.fp / curve.n_neg) * (1 - p) + self.miss * (fn / curve.n_pos) * p

    def _select(self, curve: _Curve) -> tuple[int, bool, str]:
        return int(np.argmin(self._cost(curve))), True, ""


def _parse_number(text: str) -> float:
    text = text.strip()
    if text.endswith("%"):
        return float(text[:-1]) / 100
    return float(text)


def parse_goal(goal: str | Goal) -> Goal:
    """Parse a goal string as the CLI gives it.

    Parameters
    ----------
    goal : str or Goal
        ``"f1"``, ``"fpr:0.01"``, ``"fpr:0.01,0.95"`` (at most 1% false positives on new normal rows with
        95% confidence, see :class:`FPRGoal`), ``"recall:0.95"``, ``"precision:0.9"``,
        ``"precision:0.9,0.001"`` (precision at a production anomaly rate of 0.001),
        ``"cost:1,20"`` or ``"cost:1,20,0.001"`` (case and spaces ignored; rates may also be
        written as percentages, ``"fpr:1%"``). A :class:`Goal` is returned unchanged.

    Returns
    -------
    Goal

    Raises
    ------
    DataError
        If the string is not one of the forms above or a number is out of range.

    Examples
    --------
    >>> parse_goal("cost:1,20")
    CostGoal(false_alarm=1.0, miss=20.0, anomaly_rate=None)
    >>> str(parse_goal(" FPR:1% "))
    'fpr:0.01'
    >>> parse_goal("precision:90%")
    PrecisionGoal(min_precision=0.9, anomaly_rate=None)
    """
    if isinstance(goal, Goal):
        return goal
    if not isinstance(goal, str):
        raise DataError(
            f"threshold goal must be a string or Goal, got {type(goal).__name__}; use {GOAL_FORMS}"
        )
    text = goal.strip().lower().replace(" ", "")
    if text == "f1":
        return F1Goal()
    name, sep, args = text.partition(":")
    expected = {"fpr": (1, 2), "recall": (1,), "precision": (1, 2), "cost": (2, 3)}
    if sep and name in expected:
        try:
            numbers = [_parse_number(a) for a in args.split(",")]
        except ValueError:
            numbers = []
        if len(numbers) in expected[name]:
            if name == "fpr":
                return FPRGoal(*numbers)
            if name == "recall":
                return RecallGoal(min_recall=numbers[0])
            if name == "precision":
                return PrecisionGoal(*numbers)
            return CostGoal(*numbers)
    raise DataError(f"unknown threshold goal {goal!r}; use {GOAL_FORMS}")


_MAX_NAME = 1000
"""The longest data or column name a provenance record (and a saved model) may hold."""


def _check_name(value: Any, what: str) -> str | None:
    """A data or column name as stored with a threshold: None, or one printable line of text."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > _MAX_NAME or not value.isprintable():
        shown = repr(value) if not isinstance(value, str) else repr(value[:40]) + ("..." if len(value) > 40 else "")
        raise DataError(f"{what} must be a non-empty printable name of at most {_MAX_NAME} characters, got {shown}")
    return value


def _check_count(value: Any, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value < 2**63:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise DataError(f"{what} must be a whole number from {low} to 2**63 - 1, got {shown}")
    return int(value)


def _check_share(value: Any, what: str) -> float | None:
    if value is None:
        return None
    number = _number(value, what)
    if not 0.0 <= number <= 1.0:
        raise DataError(f"{what} must be between 0 and 1, got {number}")
    return number


@dataclass(frozen=True)
class ThresholdProvenance:
    """Where a threshold chosen on labelled dev data came from.

    Stored with a model as ``threshold_provenance_`` (see :meth:`oddkit.BaseDetector.set_threshold`)
    and saved in its folder; ``oddkit info`` shows it.

    Parameters
    ----------
    data_name : str or None
        The dev data's name: its file name on the command line, what the caller passed as
        ``data_name`` to :func:`choose_threshold` in Python (``None`` when nothing was).
    n_rows : int
        Labelled dev rows the threshold was chosen on.
    n_anomalies : int
        Of those, the rows labelled 1.
    precision, recall : float or None
        On the dev data at the chosen threshold, at its own anomaly share; ``None`` where
        undefined (no dev anomalies).
    fpr : float or None
        False-positive rate on the dev data at the chosen threshold (``None`` without dev normals).

    Raises
    ------
    DataError
        If a value is out of range: counts that are not whole numbers, more anomalies than rows,
        rates outside [0, 1], a name that is not one printable line.

    Examples
    --------
    >>> p = ThresholdProvenance("dev.csv", 1000, 50, precision=0.9, recall=0.72, fpr=0.0042)
    >>> str(p)
    'dev.csv: 1,000 rows, 50 anomalies; precision 0.9, recall 0.72, false-positive rate 0.0042'
    >>> ThresholdProvenance.from_dict(p.to_dict()) == p
    True
    """

    data_name: str | None
    n_rows: int
    n_anomalies: int
    precision: float | None
    recall: float | None
    fpr: float | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_name", _check_name(self.data_name, "the dev data's name"))
        n = _check_count(self.n_rows, "the number of dev rows", 1)
        k = _check_count(self.n_anomalies, "the number of dev anomalies", 0)
        if k > n:
            raise DataError(f"the dev data cannot hold {k} anomalies in {n} rows")
        object.__setattr__(self, "n_rows", n)
        object.__setattr__(self, "n_anomalies", k)
        for name in ("precision", "recall", "fpr"):
            object.__setattr__(self, name, _check_share(getattr(self, name), f"the dev {name}"))

    def __str__(self) -> str:
        def show(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.4g}"

        name = self.data_name or "dev data"
        return (f"{name}: {self.n_rows:,} rows, {self.n_anomalies:,} anomalies; precision {show(self.precision)}, "
                f"recall {show(self.recall)}, false-positive rate {show(self.fpr)}")

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-safe dict (``None`` for undefined rates)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Any) -> ThresholdProvenance:
        """The record :meth:`to_dict` wrote, checked field by field.

        Raises
        ------
        DataError
            If ``record`` is not a dict of exactly these fields, or a value is out of range.
        """
        fields = {"data_name", "n_rows", "n_anomalies", "precision", "recall", "fpr"}
        if not isinstance(record, dict) or set(record) != fields:
            keys = sorted(map(str, record)) if isinstance(record, dict) else type(record).__name__
            raise DataError(f"a threshold provenance record needs exactly the fields {sorted(fields)}, got {keys}")
        return cls(**record)


@dataclass(frozen=True)
class ThresholdChoice:
    """A chosen threshold and what it achieves on the dev data it was chosen on.

    Attributes
    ----------
    threshold : float
        Flag rows with ``score >= threshold``. Always finite, so it is safe to store as JSON.
    goal : str
        The goal in canonical form, e.g. ``"fpr:0.01"``.
    precision, recall, f1, fpr : float or None
        Achieved on the dev data. Precision, recall and F1 are ``None`` when the dev data holds
        no anomaly (an ``"fpr:..."`` goal on normal rows only): they are undefined there.
        Precision is 0.0 when nothing is flagged.
    expected_cost : float or None
        The cost goal's objective: the expected cost per row the choice minimised, which is
        ``production_expected_cost`` when the goal states an anomaly rate and
        ``dev_expected_cost`` otherwise; ``None`` unless the goal is a cost goal. Prefer the two
        explicit fields.
    n_flagged : int
        Dev rows flagged.
    feasible : bool
        ``False`` when the goal cannot be met by any threshold that flags something;
        ``note`` says why.
    note : str
        Caveats about the choice, empty when there are none.
    dev_anomaly_rate : float or None
        The dev data's own anomaly rate, at which ``precision``, ``f1`` and ``alerts_per_10000`` hold.
    alerts_per_10000 : float or None
        Dev rows flagged per 10,000 dev rows.
    production_anomaly_rate : float or None
        The anomaly rate stated for production: the cost goal's third number, or the
        ``prevalence`` given to :func:`choose_threshold`; ``None`` when none is stated, and then
        the ``production_*`` fields are ``None`` too.
    production_precision, production_f1 : float or None
        Precision and F1 at the same recall and FPR when anomalies occur at
        ``production_anomaly_rate`` (see :func:`oddkit.metrics.at_prevalence`). A dev set enriched
        with anomalies makes ``precision`` look far better than production will see.
    production_alerts_per_10000 : float or None
        Rows flagged per 10,000 rows at the production anomaly rate.
    dev_expected_cost, production_expected_cost : float or None
        Expected cost per row at the dev data's and at the production anomaly rate; ``None``
        unless the goal is a cost goal (``production_expected_cost`` equals ``expected_cost``
        when the goal states a rate).
    n_rows, n_anomalies : int or None
        Dev rows, and of those the anomalies, the choice was made on.
    data_name : str or None
        The dev data's name, as given to :func:`choose_threshold`.
    miss_cost_col : str or None
        The column that priced each missed anomaly (``miss_costs``), when it has a name: a
        detector given this choice records it, and its evaluation and report price missed
        anomalies by that column of the data by default.
    """

    threshold: float
    goal: str
    precision: float | None
    recall: float | None
    f1: float | None
    fpr: float
    expected_cost: float | None
    n_flagged: int
    feasible: bool
    note: str = ""
    dev_anomaly_rate: float | None = None
    alerts_per_10000: float | None = None
    dev_expected_cost: float | None = None
    production_anomaly_rate: float | None = None
    production_precision: float | None = None
    production_f1: float | None = None
    production_alerts_per_10000: float | None = None
    production_expected_cost: float | None = None
    n_rows: int | None = None
    n_anomalies: int | None = None
    data_name: str | None = None
    miss_cost_col: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-safe dict (``None`` for undefined or unstated values)."""
        return asdict(self)

    def provenance(self) -> ThresholdProvenance | None:
        """Where this threshold came from: the dev data's name, size and rates (``None`` for a
        choice built by hand without ``n_rows``)."""
        if self.n_rows is None or self.n_anomalies is None:
            return None
        return ThresholdProvenance(self.data_name, self.n_rows, self.n_anomalies, self.precision, self.recall,
                                   self.fpr)


def choose_threshold(
    scores: ArrayLike,
    y: ArrayLike,
    goal: str | Goal,
    *,
    prevalence: float | None = None,
    miss_costs: ArrayLike | None = None,
    miss_cost_col: str | None = None,
    data_name: str | None = None,
) -> ThresholdChoice:
    """Choose the decision threshold that best meets ``goal`` on labelled dev data.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Anomaly scores on the dev set, higher = more anomalous.
    y : array-like of shape (n,)
        Dev labels, 0 = normal and 1 = anomaly. ``"fpr:..."`` needs only normal rows; the other
        goals need both classes.
    goal : str or Goal
        See :func:`parse_goal`.
    prevalence : float, optional
        The anomaly rate expected in production, in (0, 1). The choice then also reports
        precision, F1, alerts per 10,000 rows and (for a cost goal) the expected cost at that
        rate. Defaults to the rate a ``"cost:FALSE_ALARM,MISS,RATE"`` or
        ``"precision:P,RATE"`` goal states. For a cost goal it does not change which threshold
        is chosen (the goal's own rate does). A precision goal without a rate of its own is met
        at this rate, and becomes ``"precision:P,RATE"``; one that states another rate is refused.
    miss_costs : array-like of shape (n,), optional
        With a cost goal only: what missing each row would cost, in units of the goal's ``miss``
        cost (e.g. a transaction's amount with ``"cost:5,1"``: a false alarm costs 5 and a missed
        fraud its amount). Only the anomalies' values are used; they must be finite and >= 0.
        Without it every missed anomaly costs ``miss``.
    miss_cost_col : str, optional
        The name of the column ``miss_costs`` came from, recorded in the choice (and, by
        :meth:`oddkit.BaseDetector.set_threshold`, in the detector, so that evaluating and
        reporting price missed anomalies by the same column). Defaults to the name of a pandas
        Series passed as ``miss_costs`` (``df["Amount"]`` gives ``"Amount"``).
    data_name : str, optional
        A name for the dev data (e.g. its file name), recorded in the choice's
        :meth:`~ThresholdChoice.provenance`.

    Returns
    -------
    ThresholdChoice
        The threshold (one of the scores, or just above the highest score to flag nothing) and
        the precision, recall, F1, FPR and flag count it achieves on the dev data, beside the
        precision, F1, alerts and cost at the production anomaly rate when one is stated.

    Raises
    ------
    LabelError
        If ``y`` is not 0/1, or lacks a class the goal needs.
    DataError
        If the goal is unknown, the scores are not finite, the lengths differ, ``prevalence``
        is not between 0 and 1 (or differs from a precision goal's own rate), or no threshold
        reaches a precision goal (the message names the best precision reachable).

    Examples
    --------
    >>> scores = [0.1, 0.2, 0.3, 0.4, 0.9]
    >>> y = [0, 0, 1, 0, 1]
    >>> choose_threshold(scores, y, "recall:1").threshold
    0.3
    >>> choose_threshold(scores, y, "fpr:0").threshold
    0.9

    A missed anomaly that costs its own amount: catching the anomaly at 0.3 costs a false alarm
    (5) at 0.4, worth it only when that anomaly's amount is above 5.

    >>> choose_threshold(scores, y, "cost:5,1", miss_costs=[0, 0, 2, 0, 100]).threshold
    0.9
    >>> choose_threshold(scores, y, "cost:5,1", miss_costs=[0, 0, 20, 0, 100]).threshold
    0.3

    The most recall while at least 60% of the flagged rows are anomalies:

    >>> choose_threshold(scores, y, "precision:0.6").threshold
    0.3
    """
    g = parse_goal(goal)
    if miss_costs is not None and not isinstance(g, CostGoal):
        raise DataError(
            f"miss_costs prices missed anomalies, so it needs a cost goal such as 'cost:5,1', not {str(g)!r}"
        )
    if miss_cost_col is None:
        name = getattr(miss_costs, "name", None)  # a pandas Series names its column
        miss_cost_col = name if isinstance(name, str) and name else None
    elif miss_costs is None:
        raise DataError("miss_cost_col names the column the per-row miss costs came from, but none were given: "
                        "give them as miss_costs too (e.g. df['Amount'])")
    miss_cost_col = _check_name(miss_cost_col, "miss_cost_col")
    data_name = _check_name(data_name, "data_name")
    if prevalence is not None:
        prevalence = _check_rate(prevalence, "prevalence (the production anomaly rate)", open_interval=True)
    if isinstance(g, PrecisionGoal) and prevalence is not None:
        if g.anomaly_rate is None:
            g = PrecisionGoal(g.min_precision, prevalence)
        elif g.anomaly_rate != prevalence:
            raise DataError(
                f"the goal {str(g)!r} states the production anomaly rate {_fmt(g.anomaly_rate)} but prevalence is "
                f"{_fmt(prevalence)}; state it once (precision:{_fmt(g.min_precision)} with prevalence, or the "
                "goal alone)"
            )
    if prevalence is None and isinstance(g, (CostGoal, PrecisionGoal)):
        prevalence = g.anomaly_rate
    y_arr, s_arr = check_labels(
        y,
        scores,
        need_normals=g.needs_normals,
        need_anomalies=g.needs_anomalies,
        purpose=f"choosing a threshold for goal {str(g)!r}",
    )
    weights = None if miss_costs is None else _check_row_costs(miss_costs, s_arr.shape[0])
    curve = _curve(y_arr, s_arr, weights)
    idx, feasible, note = g._select(curve)
    cost = g._cost(curve)
    tp, fp = int(curve.tp[idx]), int(curve.fp[idx])
    rates: dict[str, Any] = _rates(tp, fp, curve.n_neg - fp, curve.n_pos - tp)
    if curve.n_pos == 0:  # no dev anomaly ("fpr:" on normal rows only): these are undefined
        rates.update(precision=None, recall=None, f1=None)
    n = curve.n_pos + curve.n_neg
    costs = (g.false_alarm, g.miss) if isinstance(g, CostGoal) else None
    production: dict[str, Any] = {}
    # Rates at the stated production prevalence need both classes (recall needs anomalies).
    missed = float(curve.missed()[idx])
    if prevalence is not None and curve.n_pos > 0 and curve.n_neg > 0:
        per_anomaly = None if weights is None else missed / curve.n_pos
        production = at_prevalence(rates["recall"], rates["fpr"], prevalence, costs=costs,
                                   missed_cost_per_anomaly=per_anomaly)
    return ThresholdChoice(
        threshold=float(curve.thresholds[idx]),
        goal=str(g),
        precision=rates["precision"],
        recall=rates["recall"],
        f1=rates["f1"],
        fpr=rates["fpr"],
        expected_cost=None if cost is None else float(cost[idx]),
        n_flagged=tp + fp,
        feasible=feasible,
        note=note,
        dev_anomaly_rate=curve.n_pos / n,
        alerts_per_10000=10_000.0 * (tp + fp) / n,
        dev_expected_cost=None if costs is None else (costs[0] * fp + costs[1] * missed) / n,
        production_anomaly_rate=production.get("prevalence"),
        production_precision=production.get("precision"),
        production_f1=production.get("f1"),
        production_alerts_per_10000=production.get("alerts_per_10000"),
        production_expected_cost=production.get("expected_cost"),
        n_rows=n,
        n_anomalies=curve.n_pos,
        data_name=data_name,
        miss_cost_col=miss_cost_col if weights is not None else None,
    )


def contamination_threshold(scores: ArrayLike, contamination: float) -> float:
    """Threshold that flags about ``contamination`` of the (unlabelled) training rows.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Anomaly scores of the training rows.
    contamination : float
        Expected fraction of anomalies, in (0, 0.5].

    Returns
    -------
    float
        The ``1 - contamination`` quantile of the scores, taking the higher neighbouring score, so
        that rows scoring at or above it are flagged. Rows tied at that score are flagged together
        or not at all, whichever flags a share nearer ``contamination``; left out, the threshold
        moves up to the next higher score (just above the largest score when there is none). So a
        table of duplicate rows, whose scores tie, is not flagged wholesale: identical training rows
        are all normal.

    Raises
    ------
    DataError
        If ``contamination`` is outside (0, 0.5] or the scores are invalid.

    Examples
    --------
    >>> contamination_threshold(list(range(100)), 0.1)
    90.0
    >>> contamination_threshold([0.0] * 95 + [1.0] * 5, 0.1)  # 5% flagged, not all 100
    1.0
    """
    c = _number(contamination, "contamination")
    if not 0.0 < c <= 0.5:
        raise DataError(
            f"contamination must be above 0 and at most 0.5, got {c}; it is the expected fraction of anomalies, "
            "e.g. 0.01"
        )
    s = check_scores(scores)
    threshold = float(np.quantile(s, 1.0 - c, method="higher"))
    if np.count_nonzero(s == threshold) > 1:  # a tie: flag the tied rows only if that is nearer c
        higher = s[s > threshold]
        next_score = float(higher.min()) if higher.size else float(np.nextafter(threshold, np.inf))
        flagged_with, flagged_without = np.mean(s >= threshold), np.mean(s > threshold)
        if abs(flagged_without - c) < abs(flagged_with - c) and np.isfinite(next_score):
            threshold = next_score
    return threshold


def prevalence_and_costs_from_goal(goal: str, prevalence: float | None = None,
                                   costs: tuple[float, float] | None = None):
    """The production anomaly rate and ``(false_alarm, miss)`` costs a threshold goal states.

    Values given explicitly win; a ``cost:FALSE_ALARM,MISS[,RATE]`` goal fills the others, a
    ``precision:P,RATE`` goal the rate, any other goal (or an unparseable one, such as
    ``"manual"``) leaves them as they are.

    Examples
    --------
    >>> prevalence_and_costs_from_goal("cost:1,50,0.0017")
    (0.0017, (1.0, 50.0))
    >>> prevalence_and_costs_from_goal("precision:0.9,0.0017")
    (0.0017, None)
    >>> prevalence_and_costs_from_goal("f1", 0.01)
    (0.01, None)
    """
    try:
        parsed = parse_goal(goal)
    except DataError:
        return prevalence, costs
    if isinstance(parsed, PrecisionGoal) and prevalence is None:
        prevalence = parsed.anomaly_rate
    if isinstance(parsed, CostGoal):
        if prevalence is None:
            prevalence = parsed.anomaly_rate
        if costs is None:
            costs = (parsed.false_alarm, parsed.miss)
    return prevalence, costs


def miss_cost_column(detector: Any, given: str | None = None, columns: Any = None,
                     data_name: str | None = None) -> str | None:
    """The column that prices each missed anomaly when evaluating or reporting on ``detector``.

    A threshold chosen for a cost goal with per-row miss costs from a named column (``oddkit
    threshold --miss-cost-col Amount``, or :func:`choose_threshold` with ``miss_costs=df["Amount"]``)
    is recorded in the detector as ``threshold_miss_cost_col_``; the same column of the data it is
    evaluated on then prices the missed anomalies, so that the expected cost is measured as the
    threshold was chosen.

    Parameters
    ----------
    detector : fitted oddkit detector
        Its ``threshold_miss_cost_col_`` (``None`` or absent: no column recorded).
    given : str, optional
        A column named by the caller (``--miss-cost-col``): it wins over the recorded one.
    columns : iterable of str, optional
        The data's columns, when known: the recorded column must be one of them.
    data_name : str, optional
        The data's name (e.g. its file name), for the error message.

    Returns
    -------
    str or None
        ``given``, else the recorded column, else ``None``.

    Raises
    ------
    DataError
        If the recorded column is used and ``columns`` does not hold it (one line naming it).

    Examples
    --------
    >>> class Model:
    ...     threshold_miss_cost_col_ = "Amount"
    >>> miss_cost_column(Model(), columns=["V1", "Amount"])
    'Amount'
    >>> miss_cost_column(Model(), given="Fee")
    'Fee'
    """
    if given is not None:
        return given
    recorded = getattr(detector, "threshold_miss_cost_col_", None)
    if recorded is not None and columns is not None and recorded not in {str(c) for c in columns}:
        raise DataError(
            f"the model's threshold was chosen with each missed anomaly priced by column {recorded!r}, which "
            f"{data_name or 'the data'} lacks; add that column, or name the one that prices misses here "
            "(--miss-cost-col COLUMN on the command line, miss_costs= in Python)"
        )
    return recorded
