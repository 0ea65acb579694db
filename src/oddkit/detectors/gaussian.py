"""The multivariate Gaussian fitted by maximum likelihood; score = negative log-likelihood."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
from scipy.linalg import cho_factor, solve_triangular
from sklearn.covariance import ledoit_wolf, oas

from oddkit.detectors.base import BaseDetector
from oddkit.detectors.params import Interval, StrOptions, non_negative_float
from oddkit.exceptions import DataError, ModelFileError

SHRINKAGE_METHODS = ("ledoit_wolf", "oas")
ROBUST_STEPS = 3


class GaussianDetector(BaseDetector):
    """A multivariate normal distribution fitted to the training rows by maximum likelihood.

    The mean is the sample mean and the covariance the (biased, 1/n) sample covariance, optionally
    shrunk towards a scaled identity and always given a small ridge so that singular data (constant
    or duplicate columns, more columns than rows) still has a density. The anomaly score is the
    negative log-likelihood of a row under that distribution, in the units of the original numeric
    columns (the standardisation's Jacobian is added back), so for numeric data it equals
    ``-scipy.stats.multivariate_normal(location, covariance).logpdf(x)``.

    Parameters
    ----------
    shrinkage : None, float in [0, 1], "ledoit_wolf" or "oas", default=None
        ``None`` is the plain maximum-likelihood covariance. A number ``a`` blends it with a scaled
        identity: ``(1 - a) S + a * trace(S)/d * I``; the two names pick ``a`` from the data.
    ridge : float, default=1e-6
        Added to the diagonal of the covariance of the standardised data (where every variance
        is 1), so a singular covariance stays invertible.
    robust : bool, default=False
        For contaminated training data: after the first fit, the ``contamination`` share of rows
        farthest from it (in Mahalanobis distance) is left out and the Gaussian refitted, three
        times (the concentration steps of the minimum covariance determinant, from the full data
        and with 1 - ``contamination`` of the rows kept). Hidden anomalies then neither shift the
        mean nor inflate the covariance they are judged by. With ``contamination="auto"`` the
        share left out is estimated from the first fit's distances.
    contamination, impute, unknown_categories, column_types
        See :class:`AutoEncoderDetector`.

    Attributes
    ----------
    location_ : ndarray of shape (n_outputs,)
        Mean of the preprocessed training rows.
    covariance_ : ndarray of shape (n_outputs, n_outputs)
        Covariance of the preprocessed rows, after shrinkage and ridge.
    shrinkage_ : float
        The shrinkage actually applied.

    Examples
    --------
    >>> import numpy as np
    >>> from oddkit import GaussianDetector
    >>> X = np.random.default_rng(0).normal(size=(300, 4))
    >>> GaussianDetector().fit(X).decision_function([[0, 0, 0, 0], [5, 5, 5, 5]]).round(1)
    array([ 3.7, 53.6])
    """

    _parameter_constraints: dict = {
        "shrinkage": [None, Interval(Real, 0, 1, closed="both"), StrOptions(set(SHRINKAGE_METHODS))],
        "ridge": [non_negative_float],
        "robust": ["boolean"],
    }

    def __init__(self, shrinkage=None, ridge=1e-6, robust=False, contamination=0.1, impute=None,
                 unknown_categories="error", column_types=None):
        self.shrinkage = shrinkage
        self.ridge = ridge
        self.robust = robust
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.column_types = column_types

    def _fit_array(self, Z: np.ndarray) -> None:
        Z = Z.astype(np.float64)
        self._fit_rows(Z)
        if self.robust:
            share = None if isinstance(self.contamination, str) else float(self.contamination)
            for _ in range(ROBUST_STEPS):
                distances = self._score_array(Z)
                if share is None:  # contamination="auto": the share the first fit's distances show
                    from oddkit.detectors.contamination import estimate_contamination

                    share = estimate_contamination(distances)
                self._fit_rows(Z[distances <= np.quantile(distances, 1.0 - share)])

    def _fit_rows(self, Z: np.ndarray) -> None:
        location = Z.mean(axis=0)
        covariance = np.atleast_2d(np.cov(Z, rowvar=False, bias=True))
        self.shrinkage_ = self._shrinkage_amount(Z)
        if self.shrinkage_:
            target = np.trace(covariance) / covariance.shape[0]
            covariance = (1.0 - self.shrinkage_) * covariance
            covariance[np.diag_indices_from(covariance)] += self.shrinkage_ * target
        covariance[np.diag_indices_from(covariance)] += float(self.ridge)
        self._set_distribution(location, covariance)

    def _shrinkage_amount(self, Z: np.ndarray) -> float:
        if self.shrinkage is None:
            return 0.0
        if self.shrinkage == "ledoit_wolf":
            return float(ledoit_wolf(Z, assume_centered=False)[1])
        if self.shrinkage == "oas":
            return float(oas(Z, assume_centered=False)[1])
        return float(self.shrinkage)  # a number in [0, 1]: _parameter_constraints checked it

    def _set_distribution(self, location: np.ndarray, covariance: np.ndarray) -> None:
        try:
            cholesky, _ = cho_factor(covariance, lower=True)
        except np.linalg.LinAlgError:
            raise DataError("the covariance is not positive definite; pass a larger ridge= or shrinkage='ledoit_wolf'") from None
        self.location_ = location
        self.covariance_ = covariance
        self._cholesky = np.tril(cholesky)
        d = covariance.shape[0]
        log_det = 2.0 * np.sum(np.log(np.diag(self._cholesky)))
        # Scores are densities of the raw numeric columns: add back log|scale| of the standardisation.
        log_jacobian = float(np.sum(np.log(self.preprocessor_.scale_))) if len(self.preprocessor_.scale_) else 0.0
        self._log_normaliser = 0.5 * (d * math.log(2.0 * math.pi) + log_det) + log_jacobian

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        centred = (Z.astype(np.float64) - self.location_).T
        whitened = solve_triangular(self._cholesky, centred, lower=True, check_finite=False)
        return 0.5 * np.einsum("ij,ij->j", whitened, whitened) + self._log_normaliser

    def _explain_contributions(self, Z: np.ndarray) -> tuple[np.ndarray, bool]:
        # Half the Mahalanobis form z^T P z (the score less its constant) split as z_j (P z)_j / 2.
        centred = Z.astype(np.float64) - self.location_
        whitened = solve_triangular(self._cholesky, centred.T, lower=True, check_finite=False)
        precision_times = solve_triangular(self._cholesky, whitened, lower=True, trans="T", check_finite=False)
        return 0.5 * centred * precision_times.T, True

    def mahalanobis(self, X) -> np.ndarray:
        """Squared Mahalanobis distance of each row to the fitted mean (preprocessed space)."""
        return 2.0 * (self.decision_function(X) - self._log_normaliser)

    def _get_model_state(self):
        return {"location": self.location_, "covariance": self.covariance_}, {"shrinkage": self.shrinkage_}, {}

    def _set_model_state(self, arrays, meta, files):
        try:
            location, covariance = arrays["location"], arrays["covariance"]
            shrinkage = float(meta["shrinkage"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"the saved Gaussian is incomplete: {exc}") from None
        d = self.preprocessor_.n_outputs_
        if location.shape != (d,) or covariance.shape != (d, d):
            raise ModelFileError(f"the saved Gaussian has location {location.shape} and covariance {covariance.shape}, "
                                 f"expected {(d,)} and {(d, d)} for the preprocessing's {d} columns")
        if not (math.isfinite(shrinkage) and 0.0 <= shrinkage <= 1.0):
            raise ModelFileError(f"the saved shrinkage {shrinkage!r} is not in [0, 1]")
        if not np.allclose(covariance, covariance.T):
            raise ModelFileError("the saved covariance is not symmetric")
        self.shrinkage_ = shrinkage
        try:
            self._set_distribution(location.astype(np.float64), covariance.astype(np.float64))
        except DataError:
            raise ModelFileError("the saved covariance is not positive definite; the folder was edited") from None
