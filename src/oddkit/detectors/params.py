"""Parameter constraints of oddkit's detectors, checked in one place.

Each detector class declares ``_parameter_constraints`` in scikit-learn's style (a dict of parameter
name -> list of allowed kinds, from :mod:`sklearn.utils._param_validation`); the constraints every
detector shares live once in :class:`~oddkit.detectors.base.BaseDetector` and are merged along the
class hierarchy by :func:`merged_constraints`. :func:`validate_params` checks a detector's parameters
against them and raises :class:`~oddkit.exceptions.ParameterError` with a one-line message naming
the parameter, the value and what is allowed.

Two rules on top of scikit-learn's: a boolean is accepted only where booleans are (``True`` is an
``int`` to Python, but ``n_neighbors=True`` is a mistake), and no number parameter takes NaN or inf.
"""

from __future__ import annotations

import math
import re
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import (
    HasMethods,
    Hidden,
    Interval,
    Options,
    RealNotInt,
    StrOptions,
    _Booleans,
    _Constraint,
    _InstancesOf,
    _VerboseHelper,
    make_constraint,
)

from oddkit.exceptions import ParameterError

__all__ = [
    "HasMethods", "Hidden", "Interval", "Options", "RealNotInt", "StrOptions", "PositiveIntSequence", "DeviceName",
    "positive_int", "non_negative_float", "non_negative_int", "positive_float", "fraction_below_one",
    "merged_constraints", "validate_params",
]


class PositiveIntSequence(_Constraint):
    """A non-empty list or tuple (or 1-D integer array) of positive integers, e.g. layer widths."""

    def is_satisfied_by(self, val) -> bool:
        if isinstance(val, np.ndarray):
            val = val.tolist() if val.ndim == 1 else None
        if not isinstance(val, (list, tuple)) or len(val) == 0:
            return False
        return all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in val)

    def __str__(self) -> str:
        return "a non-empty list of positive integers"


class DeviceName(_Constraint):
    """A torch device name: "cpu", "auto", "cuda", "cuda:N" or "mps"."""

    def is_satisfied_by(self, val) -> bool:
        return isinstance(val, str) and re.fullmatch(r"cpu|auto|mps|cuda(:[0-9]+)?", val) is not None

    def __str__(self) -> str:
        return "'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"


positive_int = Interval(Integral, 1, None, closed="left")
non_negative_float = Interval(Real, 0, None, closed="left")
positive_float = Interval(Real, 0, None, closed="neither")
fraction_below_one = Interval(Real, 0, 1, closed="left")
non_negative_int = Interval(Integral, 0, None, closed="left")


def merged_constraints(cls) -> dict:
    """``_parameter_constraints`` of ``cls`` and of every class above it (the nearest class wins)."""
    merged: dict = {}
    for klass in reversed(cls.__mro__):
        merged.update(klass.__dict__.get("_parameter_constraints", {}))
    return merged


def _as_constraint(constraint) -> _Constraint:
    return constraint if isinstance(constraint, _Constraint) else make_constraint(constraint)


def _describe(constraint: _Constraint) -> str:
    """A constraint in words: "one of 'a', 'b'", "an integer >= 1", "a number in (0, 0.5]", "True or False"."""
    if isinstance(constraint, StrOptions):  # sorted, so that the message is the same from run to run
        return "one of " + ", ".join(repr(o) for o in sorted(constraint.options))
    if isinstance(constraint, _Booleans):
        return "True or False"
    if isinstance(constraint, _VerboseHelper):
        return "an integer >= 0 or a boolean"
    if isinstance(constraint, Interval):
        kind = "an integer" if constraint.type is Integral else "a number"
        low, high = constraint.left, constraint.right
        if high is None and low is None:
            return kind
        if high is None:
            return f"{kind} {'>=' if constraint.closed in ('left', 'both') else '>'} {low:g}"
        if low is None:
            return f"{kind} {'<=' if constraint.closed in ('right', 'both') else '<'} {high:g}"
        opening = "[" if constraint.closed in ("left", "both") else "("
        closing = "]" if constraint.closed in ("right", "both") else ")"
        return f"{kind} in {opening}{low:g}, {high:g}{closing}"
    return str(constraint)


def _allowed(constraints: list[_Constraint]) -> str:
    shown = [_describe(c) for c in constraints if not c.hidden]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def check_parameter(owner: str, name: str, value, constraints) -> None:
    """Raise :class:`ParameterError` unless ``value`` satisfies one of ``constraints``."""
    constraints = [_as_constraint(c) for c in constraints]
    takes_booleans = any(isinstance(c, (_Booleans, _VerboseHelper)) or (isinstance(c, _InstancesOf) and c.type is bool)
                         for c in constraints)
    if isinstance(value, (bool, np.bool_)) and not takes_booleans:
        satisfied = False
    elif isinstance(value, Real) and not isinstance(value, Integral) and not math.isfinite(value):
        satisfied = False
    else:
        satisfied = any(c.is_satisfied_by(value) for c in constraints)
    if not satisfied:
        raise ParameterError(f"{owner}: {name} must be {_allowed(constraints)}, got {value!r}")


def validate_params(estimator) -> None:
    """Check every constructor parameter of ``estimator`` against its class's merged constraints.

    Raises
    ------
    ParameterError
        The first parameter whose value none of its constraints accepts (its name, the value and
        the allowed values or range, on one line).
    """
    constraints = merged_constraints(type(estimator))
    owner = type(estimator).__name__
    for name, value in estimator.get_params(deep=False).items():
        if name in constraints:
            check_parameter(owner, name, value, constraints[name])
