"""Principal component analysis as a detector: the linear auto-encoder baseline."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from oddkit.detectors.base import BaseDetector
from oddkit.detectors.params import Interval, positive_int
from oddkit.exceptions import ModelFileError


class PCADetector(BaseDetector):
    """Project onto the leading principal components and score the reconstruction error.

    This is what an auto-encoder with linear layers and squared error converges to, so it is the
    baseline an auto-encoder has to beat. The score is the mean squared residual per preprocessed
    column, the same scale as :class:`AutoEncoderDetector`'s.

    Parameters
    ----------
    n_components : int or float in (0, 1), default=0.9
        An integer keeps that many components; a fraction keeps the fewest components that
        explain at least that share of the variance. Either way at most ``n_outputs - 1`` (the
        preprocessed columns less one) are kept, so that a residual is left to score: on a table
        of 3 columns whose two leading components explain 84% of the variance, 0.9 would
        otherwise keep all three and score every row by rounding noise.
    contamination, impute, unknown_categories, column_types
        See :class:`AutoEncoderDetector`.

    Attributes
    ----------
    mean_ : ndarray of shape (n_outputs,)
    components_ : ndarray of shape (n_components_, n_outputs)
        Orthonormal principal axes, by decreasing variance.
    explained_variance_ratio_ : ndarray of shape (n_components_,)
    n_components_ : int

    Examples
    --------
    >>> from numbers import Integral, Real

import numpy as np
    >>> from oddkit import PCADetector
    >>> X = np.random.default_rng(0).normal(size=(200, 5))
    >>> PCADetector(n_components=2).fit(X).components_.shape
    (2, 5)
    """

    _parameter_constraints: dict = {
        "n_components": [positive_int, Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(self, n_components=0.9, contamination=0.1, impute=None, unknown_categories="error",
                 column_types=None):
        self.n_components = n_components
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.column_types = column_types

    def _fit_array(self, Z: np.ndarray) -> None:
        Z = Z.astype(np.float64)
        self.mean_ = Z.mean(axis=0)
        _, singular_values, axes = np.linalg.svd(Z - self.mean_, full_matrices=False)
        variance = singular_values**2
        ratio = variance / variance.sum() if variance.sum() > 0 else np.zeros_like(variance)
        # At least one direction must be left out: the score is the residual, and with every
        # direction kept it is rounding noise (1e-32) that ranks rows at random.
        k = self._component_count(ratio, max_components=min(axes.shape[0], Z.shape[1] - 1))
        self.n_components_ = k
        self.components_ = axes[:k]
        self.explained_variance_ratio_ = ratio[:k]

    def _component_count(self, ratio: np.ndarray, max_components: int) -> int:
        n = self.n_components
        if isinstance(n, Integral):  # _parameter_constraints: a positive integer or a fraction in (0, 1)
            return int(min(n, max_components))
        return int(min(max_components, np.searchsorted(np.cumsum(ratio), float(n) - 1e-12) + 1))

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        centred = Z.astype(np.float64) - self.mean_
        residual = centred - (centred @ self.components_.T) @ self.components_
        return np.mean(residual**2, axis=1)

    def _explain_contributions(self, Z: np.ndarray) -> tuple[np.ndarray, bool]:
        # The score |Q z|^2 / d (Q the projection off the components, z the centred row) equals
        # z^T Q z / d, as Q is symmetric and idempotent: split as z_j (Q z)_j / d = z_j r_j / d, the
        # column's value times its residual. Exact; unlike the squared residuals r_j^2 it puts a
        # shift in one column on that column, not on the columns its components spread it to.
        centred = Z.astype(np.float64) - self.mean_
        residual = centred - (centred @ self.components_.T) @ self.components_
        return centred * residual / Z.shape[1], True

    def _get_model_state(self):
        arrays = {"mean": self.mean_, "components": self.components_,
                  "explained_variance_ratio": self.explained_variance_ratio_}
        return arrays, {}, {}

    def _set_model_state(self, arrays, meta, files):
        try:
            self.mean_ = arrays["mean"]
            self.components_ = arrays["components"]
            self.explained_variance_ratio_ = arrays["explained_variance_ratio"]
        except KeyError as exc:
            raise ModelFileError(f"the saved PCA lacks {exc}") from None
        d = self.preprocessor_.n_outputs_
        if self.mean_.shape != (d,) or self.components_.ndim != 2 or self.components_.shape[1] != d \
                or not min(1, d - 1) <= self.components_.shape[0] <= d - 1 \
                or self.explained_variance_ratio_.ndim != 1:
            raise ModelFileError("the saved PCA mean and components do not match the preprocessing's "
                                 f"{d} columns (at least one direction must be left out, and one kept where there are two or more)")
        self.n_components_ = int(self.components_.shape[0])
