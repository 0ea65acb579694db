"""scikit-learn's one-class SVM and isolation forest behind oddkit's API.

The fitted scikit-learn estimator is saved with skops; loading first walks the file's schema and
refuses any type outside :data:`oddkit._trusted.TRUSTED_SKOPS_TYPES` (exact names, no functions),
then lets skops rebuild it without unpickling.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.svm import OneClassSVM

from oddkit.detectors.base import BaseDetector
from oddkit.detectors.params import Interval, RealNotInt, StrOptions, non_negative_float, positive_float, positive_int
from oddkit.exceptions import ModelFileError, ParameterError

SKOPS_FILE = "estimator.skops"
BACKGROUND_ROWS_MAX = 1024
"""The most background rows a saved one-class SVM may hold for explain (it saves 32)."""


class _SklearnAdapter(BaseDetector):
    """Fit a scikit-learn outlier detector on the preprocessed rows; flip its sign convention."""

    def _make_estimator(self):
        raise NotImplementedError

    def _fit_array(self, Z: np.ndarray) -> None:
        estimator = self._make_estimator()
        try:
            self.estimator_ = estimator.fit(Z)
        except ValueError as exc:  # a parameter this data cannot take (the constraints checked the rest)
            raise ParameterError(f"{type(self).__name__}: scikit-learn's {type(estimator).__name__} refused these "
                                 f"parameters for {Z.shape[0]} rows of {Z.shape[1]} preprocessed columns: {exc}") from None

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        # scikit-learn's score_samples is higher for normal rows; oddkit's scores are the opposite.
        return -self.estimator_.score_samples(Z).astype(np.float64)

    def _get_model_state(self):
        from oddkit._trusted import dump_trusted_skops

        return {}, {}, {SKOPS_FILE: dump_trusted_skops(self.estimator_, f"{type(self).__name__}'s estimator")}

    def _set_model_state(self, arrays, meta, files):
        from oddkit._trusted import load_trusted_skops

        if SKOPS_FILE not in files:
            raise ModelFileError(f"the model folder lacks {SKOPS_FILE}")
        estimator = load_trusted_skops(files[SKOPS_FILE], SKOPS_FILE)
        if type(estimator) is not type(self._make_estimator()):
            raise ModelFileError(f"{SKOPS_FILE} holds a {type(estimator).__name__}, not what this detector saves")
        # load_trusted_skops checked the estimator's arrays against its own n_features_in_ (and that
        # every float array is finite); that width must also be the preprocessed rows' it will score.
        if estimator.n_features_in_ != self.preprocessor_.n_outputs_:
            raise ModelFileError(f"{SKOPS_FILE} holds an estimator of {estimator.n_features_in_} features for "
                                 f"{self.preprocessor_.n_outputs_} preprocessed columns; the folder was edited")
        self.estimator_ = estimator


class OneClassSVMDetector(_SklearnAdapter):
    """scikit-learn's :class:`~sklearn.svm.OneClassSVM` on standardised rows.

    Score = minus the SVM's signed distance to its boundary (higher = more anomalous).

    Parameters
    ----------
    kernel, nu, gamma, tol, max_iter
        As in scikit-learn (defaults: "rbf", 0.5, "scale", 1e-3, -1), except that ``nu`` must be
        below 1: with ``nu=1`` every row is a support vector and scikit-learn finds no boundary.
    contamination, impute, unknown_categories, column_types
        See :class:`AutoEncoderDetector`.

    Attributes
    ----------
    estimator_ : sklearn.svm.OneClassSVM
    n_iter_ : int
    explain_background_ : ndarray of shape (32, n_outputs)
        A seeded sample of the preprocessed training rows (all of them when fewer): the reference
        :meth:`explain`'s Kernel SHAP compares each row with (saved with the model).
        Explaining costs time in proportion to rows x support vectors x preprocessed columns (about
        1.2 s a row for 5,002 support vectors and 72 columns): see :mod:`oddkit.explain`.
    """

    _parameter_constraints: dict = {
        # No callable kernel: a model folder never holds code, so it could not be saved.
        "kernel": [StrOptions({"linear", "poly", "rbf", "sigmoid"})],
        "nu": [Interval(Real, 0, 1, closed="neither")],  # nu=1 makes every row a support vector: no boundary
        "gamma": [StrOptions({"scale", "auto"}), non_negative_float],
        "tol": [positive_float],
        "max_iter": [Interval(Integral, -1, None, closed="left")],
    }

    def __init__(self, kernel="rbf", nu=0.5, gamma="scale", tol=1e-3, max_iter=-1,
                 contamination=0.1, impute=None, unknown_categories="error", column_types=None):
        self.kernel = kernel
        self.nu = nu
        self.gamma = gamma
        self.tol = tol
        self.max_iter = max_iter
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.column_types = column_types

    @property
    def n_iter_(self):
        """Iterations the SVM solver ran (scikit-learn's ``n_iter_``)."""
        return self.estimator_.n_iter_

    def _fit_array(self, Z: np.ndarray) -> None:
        from oddkit.explain import background_sample

        super()._fit_array(Z)
        self.explain_background_ = background_sample(Z)

    def _explain_contributions(self, Z: np.ndarray) -> tuple[np.ndarray, bool]:
        from oddkit.exceptions import ExplainError
        from oddkit.explain import kernel_contributions

        if getattr(self, "explain_background_", None) is None:
            raise ExplainError("this OneClassSVMDetector was saved without the training rows explain() compares "
                               "with (an older oddkit); refit it to explain its scores")
        return kernel_contributions(self._kernel_scores, Z, self.explain_background_), False

    def _explains_exactly(self) -> bool:
        return False

    def _kernel_scores(self, Z: np.ndarray) -> np.ndarray:
        """:meth:`_score_array` computed from the support vectors in blocks of matrix products
        (several times faster than libsvm on the many rows Kernel SHAP evaluates).

        For the RBF kernel, ``-gamma |z - s|^2`` is one matrix product of ``[z, 1, -gamma |z|^2]``
        with ``[2 gamma s, -gamma |s|^2, 1]``, exponentiated in place: fewer passes over each block of
        kernel values than scikit-learn's ``rbf_kernel`` (the same float64 terms, summed in another
        order: scores within about 1e-12, relative, of ``pairwise_kernels``')."""
        from sklearn.metrics.pairwise import pairwise_kernels

        svm = self.estimator_
        support, weights = svm.support_vectors_.astype(np.float64), svm.dual_coef_.astype(np.float64).ravel()
        constant = svm.intercept_[0] + svm.offset_[0]
        settings = {"linear": {}, "rbf": {"gamma": svm._gamma}, "sigmoid": {"gamma": svm._gamma, "coef0": svm.coef0},
                    "poly": {"gamma": svm._gamma, "degree": svm.degree, "coef0": svm.coef0}}[svm.kernel]
        if svm.kernel == "rbf":
            gamma = float(svm._gamma)
            right = np.c_[2 * gamma * support, -gamma * np.einsum("ij,ij->i", support, support),
                          np.ones(len(support))].T  # a transposed view: OpenBLAS ran 4x slower on a C-ordered copy
        scores = np.empty(len(Z))
        step = max(1, 2**22 // max(1, len(support)))
        for start in range(0, len(Z), step):
            block = np.asarray(Z[start:start + step], dtype=np.float64)
            if svm.kernel == "rbf":
                kernel = np.c_[block, np.ones(len(block)), -gamma * np.einsum("ij,ij->i", block, block)] @ right
                np.exp(kernel, out=kernel)
            else:
                kernel = pairwise_kernels(block, support, metric=svm.kernel, **settings)
            scores[start:start + step] = -(kernel @ weights + constant)
        return scores

    def _get_model_state(self):
        arrays, meta, files = super()._get_model_state()
        if getattr(self, "explain_background_", None) is not None:
            arrays["explain_background"] = self.explain_background_
        return arrays, meta, files

    def _set_model_state(self, arrays, meta, files):
        super()._set_model_state(arrays, meta, files)
        background = arrays.get("explain_background")
        if background is not None and (
                background.ndim != 2 or not 1 <= background.shape[0] <= BACKGROUND_ROWS_MAX
                or background.shape[1] != self.preprocessor_.n_outputs_ or not np.isfinite(background).all()):
            raise ModelFileError(
                f"the saved explain_background has shape {background.shape}, expected (1 .. {BACKGROUND_ROWS_MAX}, "
                f"{self.preprocessor_.n_outputs_}) finite values; the folder was edited: save the model again")
        self.explain_background_ = background

    def _make_estimator(self):
        return OneClassSVM(kernel=self.kernel, nu=self.nu, gamma=self.gamma, tol=self.tol, max_iter=self.max_iter)


class IsolationForestDetector(_SklearnAdapter):
    """scikit-learn's :class:`~sklearn.ensemble.IsolationForest`.

    Score = the forest's anomaly score ``2 ** (-mean path length / c(n))`` in (0, 1]: rows that
    random splits isolate quickly score high.

    Parameters
    ----------
    n_estimators, max_samples, max_features, bootstrap, n_jobs, random_state :
        as in scikit-learn (defaults: 100, "auto", 1.0, False, None, None).
    contamination, impute, unknown_categories, column_types
        See :class:`AutoEncoderDetector`.

    Attributes
    ----------
    estimator_ : sklearn.ensemble.IsolationForest
    """

    _parameter_constraints: dict = {
        "n_estimators": [positive_int],
        "max_samples": [StrOptions({"auto"}), positive_int, Interval(RealNotInt, 0, 1, closed="right")],
        "max_features": [positive_int, Interval(RealNotInt, 0, 1, closed="right")],
        "bootstrap": ["boolean"],
    }

    def __init__(self, n_estimators=100, max_samples="auto", max_features=1.0, bootstrap=False,
                 n_jobs=None, random_state=None, contamination=0.1, impute=None,
                 unknown_categories="error", column_types=None):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.column_types = column_types

    def _fit_array(self, Z: np.ndarray) -> None:
        n_rows, n_columns = Z.shape
        if isinstance(self.max_features, Integral) and self.max_features > n_columns:
            raise ParameterError(f"IsolationForestDetector: max_features={self.max_features} is more than the "
                                 f"{n_columns} preprocessed columns; pass at most {n_columns}, or a fraction in (0, 1]")
        if isinstance(self.max_samples, Real) and not isinstance(self.max_samples, Integral) \
                and int(self.max_samples * n_rows) < 1:
            raise ParameterError(f"IsolationForestDetector: max_samples={self.max_samples} of {n_rows} rows is no "
                                 f"row at all; pass at least {1 / n_rows:.3g}, or a number of rows")
        super()._fit_array(Z)

    def _explain_contributions(self, Z: np.ndarray) -> tuple[np.ndarray, bool]:
        from oddkit.explain import tree_contributions

        return tree_contributions(self.estimator_, Z), False

    def _explains_exactly(self) -> bool:
        return False

    def _make_estimator(self):
        return IsolationForest(n_estimators=self.n_estimators, max_samples=self.max_samples,
                               max_features=self.max_features, bootstrap=self.bootstrap,
                               n_jobs=self.n_jobs, random_state=self.random_state)
