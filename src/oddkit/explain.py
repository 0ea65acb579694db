"""Per-column shares of an anomaly score, for every tabular detector.

``detector.explain(X)`` returns a DataFrame with one row per row of ``X`` (``X``'s index kept) and
one column per input column (the one-hot outputs of a categorical column summed back into it):
each row's share of its score that each column carries. This module holds what the detectors'
``explain`` methods share: turning per-output contributions into shares and a DataFrame, and the
model-agnostic fallbacks built on shap (https://shap.readthedocs.io; an optional dependency:
``pip install "oddkit[explain]"``).

How each detector splits its score
----------------------------------
Contribution of preprocessed column ``j``, and what the shares add up to:

- **AutoEncoderDetector and its family** (VAE, VQ-VAE, disentangled):
  with ``normalize_errors="covariance"``, the whitened score ``u^T P u / d`` (``u`` the centred
  residual, ``P`` the inverse residual covariance) split as ``u_j (P u)_j / d``; otherwise the
  squared error of column ``j`` in units of its training error. Exact for the reconstruction part
  of the score; the VAE's KL term and the VQ-VAE's code rarity belong to no column and are left
  out. Shares sum to 1; negative ones are possible with the covariance.
- **PCADetector**: ``z_j r_j / d``, the centred value times its residual (``|r|^2 = z^T Q z``,
  Q idempotent; exact). Shares sum to 1 and may be negative.
- **GaussianDetector**: the Mahalanobis form ``z^T P z`` split as ``z_j (P z)_j`` (exact for the
  score less its constant normaliser). Shares sum to 1 and may be negative.
- **KNNDetector**: the squared difference to the neighbour(s) the score uses (the k-th; the k
  nearest averaged for ``method="mean"``; the middle one(s) for "median"). Shares sum to 1, >= 0.
- **LOFDetector**: the squared differences to the k nearest training rows (the neighbours whose
  reachability distances make the row's density), averaged: which columns set the row apart from
  its neighbourhood. Not a split of the factor itself (a ratio of densities). Shares sum to 1, >= 0.
- **IsolationForestDetector**: minus shap's TreeExplainer values of the forest's mean path length
  (exact Shapley values). Signed; ``|share|`` sums to 1.
- **OneClassSVMDetector**: shap's Kernel SHAP on the score over a background of training rows
  kept at fit. Signed; ``|share|`` sums to 1.
- **EnsembleDetector**: with ``combine="max"``, the explanation of the member whose normalised
  score is the row's score; with ``"mean"``, the members' shares weighted by their normalised
  scores. Shares as the members'.

Contributions are summed over a categorical column's one-hot outputs before they are made shares.
A negative share marks a column that makes the row look *more* normal (with the Mahalanobis
split: a column whose deviation the correlations with the other columns account for). For the
decompositions that sum to 1, a row whose contributions are all zero gets all-zero shares; for
the shap-based ones, shares are divided by the sum of their absolute values (their signed sum,
the score less the background's mean score, may be near zero for a normal row).

Cost
----
The exact decompositions cost about one scoring pass (KNN and LOF: one neighbour search). The isolation
forest's TreeExplainer takes about 1 s per 200 rows for 100 trees. The one-class SVM's Kernel SHAP
scores ``COALITIONS * BACKGROUND_ROWS`` = 16,384 coalition rows per explained row (once per
distinct one), each against every support vector: its time grows as explained rows x support
vectors x preprocessed columns, and a one-class SVM keeps at least ``nu`` times its training rows as
support vectors (half of them by default). Measured on two busy cores: 1.2 s a row for NSL-KDD
(10,000 training rows, 5,002 support vectors, 72 preprocessed columns), 0.6 s a row for the credit
card fraud data (3,000 training rows, 1,502 support vectors, 30 columns), 0.2 s a row for 600
training rows of 10 columns (308 support vectors; there shap's own bookkeeping is most of it).
Importing shap takes about 1.5 s, once per process.

Images are explained by where in the image, in :mod:`oddkit.image_explanations`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from oddkit.exceptions import MissingDependencyError

BACKGROUND_ROWS = 32
"""Training rows a detector explained by shap's permutation explainer keeps (seeded sample)."""

COALITIONS = 512
"""Coalitions of columns Kernel SHAP evaluates per row (all of them up to 9 columns)."""

EXPLAIN_SEED = 0
"""Seed of the background sample and of the sampled coalitions: the same model explains the same way."""


def shares_from_contributions(contributions: np.ndarray, signed: bool = True) -> np.ndarray:
    """Per-column contributions to a score made shares of it.

    Parameters
    ----------
    contributions : ndarray of shape (n_samples, n_columns)
        Each row's additive split of (part of) its score.
    signed : bool, default=True
        True: divide by the row's sum, for exact decompositions whose sum is a non-negative part
        of the score (shares sum to 1). False: divide by the sum of absolute values, for Shapley
        values whose signed sum can be near zero (absolute shares sum to 1).

    Returns
    -------
    ndarray of shape (n_samples, n_columns), float64
        A row whose divisor is not positive gets zeros.
    """
    contributions = np.nan_to_num(np.asarray(contributions, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    totals = (contributions if signed else np.abs(contributions)).sum(axis=1, keepdims=True)
    return np.divide(contributions, totals, out=np.zeros_like(contributions), where=totals > 0)


def explanation_frame(detector, X, per_column: np.ndarray) -> pd.DataFrame:
    """Shares per input column of ``detector`` as a DataFrame indexed like ``X`` (a DataFrame's
    index; else 0 .. n-1), its columns named as in training."""
    index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(len(per_column))
    return pd.DataFrame(per_column, index=index, columns=list(detector.preprocessor_.feature_names_in_))


def mahalanobis_contributions(centred: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """``z^T P z`` split additively per column: ``z_j (P z)_j`` for each row ``z`` of ``centred``."""
    centred = np.asarray(centred, dtype=np.float64)
    return centred * (centred @ np.asarray(precision, dtype=np.float64))


def _import_shap():
    try:
        import shap
    except ImportError:
        raise MissingDependencyError(
            "explaining this detector needs the shap library, which is not installed; "
            'run pip install "oddkit[explain]" (or pip install shap)') from None
    return shap


def tree_contributions(forest, Z: np.ndarray) -> np.ndarray:
    """Contributions to an isolation forest's anomaly score: minus shap's exact TreeExplainer
    values of its mean path length (a shorter path is a more anomalous row)."""
    shap = _import_shap()
    if Z.shape[1] == 1:  # a single column carries the whole score (shap's tree code needs two)
        return np.ones((len(Z), 1))
    values = shap.TreeExplainer(forest).shap_values(np.asarray(Z, dtype=np.float32), check_additivity=False)
    return -np.asarray(values, dtype=np.float64)


def background_sample(Z: np.ndarray, n_rows: int = BACKGROUND_ROWS) -> np.ndarray:
    """A seeded sample of up to ``n_rows`` preprocessed training rows (float32), kept at fit as the
    reference a model-agnostic explanation compares each row with."""
    rng = np.random.default_rng(EXPLAIN_SEED)
    picked = np.sort(rng.choice(len(Z), size=min(n_rows, len(Z)), replace=False))
    return np.ascontiguousarray(Z[picked], dtype=np.float32)


def _score_distinct_rows(score: Callable[[np.ndarray], np.ndarray], rows) -> np.ndarray:
    """``score(rows)``, evaluated once per distinct row and copied to the repeats.

    Kernel SHAP's coalition rows repeat wherever the explained row and a background row agree on
    the columns a coalition swaps (one-hot outputs, mostly-constant columns): on NSL-KDD about half
    of them are repeats. Rows are compared bit for bit, so each row gets the score it would have
    got on its own."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if len(first) == len(rows):
        return score(rows)
    return np.asarray(score(rows[first]))[inverse.ravel()]


def kernel_contributions(score: Callable[[np.ndarray], np.ndarray], Z: np.ndarray,
                         background: np.ndarray) -> np.ndarray:
    """Shapley values of ``score`` for each row of ``Z`` by shap's Kernel SHAP, columns absent from a
    coalition taking their values from the rows of ``background``.

    With ``d`` columns, all ``2^d - 2`` coalitions are evaluated when that is at most
    ``COALITIONS`` (exact Shapley values); beyond, ``COALITIONS`` are sampled under a fixed seed
    (numpy's global random state is restored afterwards). Each row costs ``COALITIONS *
    len(background)`` evaluations of ``score``. Kernel SHAP rather than shap's permutation explainer:
    that one compiles numba code for several seconds in every new process.
    """
    shap = _import_shap()
    Z = np.asarray(Z, dtype=np.float32)
    if Z.shape[1] == 1:  # a single column carries the whole score
        return np.ones((len(Z), 1))
    explainer = shap.KernelExplainer(lambda rows: _score_distinct_rows(score, rows),
                                     np.asarray(background, dtype=np.float32))
    state = np.random.get_state()
    try:
        np.random.seed(EXPLAIN_SEED)
        values = explainer.shap_values(Z, nsamples=min(COALITIONS, 2 ** min(Z.shape[1], 30) - 2),
                                       l1_reg=False, silent=True)
    finally:
        np.random.set_state(state)
    return np.asarray(values, dtype=np.float64).reshape(Z.shape)
