"""The base class every oddkit detector derives from.

It holds what all detectors share: input validation and the fitted table preprocessor, the score
and label conventions (``decision_function`` higher = more anomalous, ``predict`` 1 = anomaly),
the threshold set from ``contamination`` at fit time, probabilities, and saving. A subclass only
says how to fit on a validated float32 matrix and how to score one.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import warnings
from collections.abc import Iterator, MutableMapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import erf, expit
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from oddkit.data import TablePreprocessor
from oddkit.data.audio import AudioData
from oddkit.data.image_preprocess import ImagePreprocessor, is_image_array
from oddkit.data.io import preview
from oddkit.detectors.params import DeviceName, Interval, StrOptions, positive_int, validate_params
from oddkit.exceptions import (
    CellTypeError,
    ColumnMismatchError,
    DataError,
    EmptyDataError,
    NonFiniteScoreWarning,
    ParameterError,
    TooFewRowsError,
)
from oddkit.threshold import ThresholdChoice, contamination_threshold

DEFAULT_TRIM_SHARE = 0.1
"""The share a robust fit trims when ``contamination="auto"`` gives it none (the default contamination)."""

BUILT_IN_DETECTORS = {
    "AutoEncoderDetector": "autoencoder", "EnsembleDetector": "ensemble", "OneClassSVMDetector": "classic",
    "IsolationForestDetector": "classic", "ClassifierConfidenceDetector": "classifier",
    "DisentangledAutoEncoderDetector": "disentangle", "GaussianDetector": "gaussian", "KNNDetector": "knn",
    "GradientKNNDetector": "gradients", "LOFDetector": "lof", "PCADetector": "pca",
    "TextSummaryAutoEncoder": "readable", "TreeAutoEncoder": "readable", "TextAutoEncoderDetector": "text",
    "TransformationDetector": "transforms", "VAEDetector": "vae", "VQVAEDetector": "vqvae",
    "VoiceConversion": "voice",
}
"""oddkit's own detector classes and the module of :mod:`oddkit.detectors` each is defined in."""


class DetectorRegistry(MutableMapping):
    """Every detector class by name, oddkit's own and any other :class:`BaseDetector` subclass defined.

    oddkit's own classes are imported when first looked up (``registry["GaussianDetector"]``), and all
    of them when the registry is iterated or counted: loading a Gaussian model neither imports torch
    nor waits for it, which makes ``oddkit score`` and ``oddkit serve`` start about a second and a half
    sooner on the models that need no network. Iteration gives oddkit's classes in a fixed order, then
    the others in the order they were defined.
    """

    def __init__(self) -> None:
        self._classes: dict[str, type[BaseDetector]] = {}

    def _import(self, name: str) -> None:
        module = BUILT_IN_DETECTORS.get(name)
        if module is not None and name not in self._classes:
            # importing the module registers the class; a class taken out again is put back from the module
            self._classes.setdefault(name, getattr(importlib.import_module(f"oddkit.detectors.{module}"), name))

    def __getitem__(self, name: str) -> type[BaseDetector]:
        self._import(name)
        return self._classes[name]

    def __setitem__(self, name: str, cls: type[BaseDetector]) -> None:
        self._classes[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._classes[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._import(name)
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        for name in BUILT_IN_DETECTORS:
            self._import(name)
        own = [name for name in BUILT_IN_DETECTORS if name in self._classes]
        return iter([*own, *(name for name in self._classes if name not in BUILT_IN_DETECTORS)])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def clear(self) -> None:
        """Forget every class; oddkit's own come back from their modules when next looked up."""
        self._classes.clear()

    def __repr__(self) -> str:
        return f"DetectorRegistry({dict(self)!r})"


DETECTORS = DetectorRegistry()
"""Every detector class by name: the only classes :func:`oddkit.load` will build."""


def training_fingerprint(X) -> str:
    """The sha256 (64 hex characters) of a data set as a detector sees it at fit time.

    It covers the shape, each column's name and dtype, and every value: a DataFrame column by column
    (numbers as their bytes, other columns through :func:`pandas.util.hash_pandas_object`), an array
    (a table of float64 or a stack of images) as its bytes. The same data gives the same fingerprint
    and a changed cell a different one; the row index is left out (it is not data the model learns
    from). One pass over the data, at hashing speed.

    Parameters
    ----------
    X : DataFrame or ndarray
        The validated training data: the table ``fit`` preprocesses, or the image stack.
    """
    import hashlib

    digest = hashlib.sha256()
    digest.update(f"{type(X).__name__}:{tuple(int(n) for n in X.shape)}\0".encode())
    if isinstance(X, pd.DataFrame):
        for name in X.columns:
            column = X[name]
            digest.update(f"{name!s}\0{column.dtype!s}\0".encode())
            if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biufc":
                values = column.to_numpy()
            else:  # text, categories, dates, nullable dtypes: one 64-bit hash per value
                values = pd.util.hash_pandas_object(column, index=False).to_numpy()
            digest.update(np.ascontiguousarray(values).reshape(-1).view(np.uint8))
    else:
        array = np.ascontiguousarray(X)
        digest.update(f"{array.dtype.str}\0".encode())
        digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def refuse_sparse(X) -> None:
    """Raise :class:`DataError` for a scipy.sparse matrix or array: oddkit's detectors need dense rows."""
    import scipy.sparse

    if scipy.sparse.issparse(X):
        raise DataError(
            f"X is a sparse {type(X).__name__} of shape {X.shape}; oddkit's detectors take dense data: pass "
            "X.toarray() (or a DataFrame), after reducing the columns if it would not fit in memory")


MAX_WORKERS = 1024
"""The most threads (``n_threads``) or joblib workers (``n_jobs``) a detector may ask for."""


def _column_mismatch_message(error: ValueError, X, trained) -> str:
    """One line for scikit-learn's (multi-line) refusal of X's columns at scoring time: the columns
    missing or new, or the first place the order differs, and the fix."""
    if trained is None or not isinstance(X, pd.DataFrame):  # a width that differs
        reason = "; ".join(line.strip(" -.") for line in str(error).splitlines() if line.strip())
        names = "" if trained is None else f": {preview(trained, limit=20)}"
        return f"{reason}; pass the same columns, in the same order, as in training{names}"
    given, trained = [str(c) for c in X.columns], [str(c) for c in trained]
    missing = [c for c in trained if c not in given]
    new = [c for c in given if c not in trained]
    if not missing and not new:
        at = next(i for i, (a, b) in enumerate(zip(given, trained)) if a != b)
        return (f"X has the training columns in another order (column {at} is {given[at]!r}, in training "
                f"{trained[at]!r}); reorder them as in training: X[detector.feature_names_in_]")
    found = "; ".join([f"missing {preview(missing, limit=10)}"] * bool(missing)
                      + [f"new {preview(new, limit=10)}"] * bool(new))
    if missing:
        return (f"X's columns differ from training ({found}); pass every training column, in the training order: "
                f"{preview(trained, limit=20)}")
    return (f"X's columns differ from training ({found}); keep the training columns, in the training order: "
            f"X[detector.feature_names_in_]")


def _one_line(error: Exception) -> str:
    """scikit-learn's message about an input it cannot read, on one line. Its message about a 1-D
    array spans several lines and prints the array; it becomes a short one with the fix (keeping the
    words "Reshape your data", which scikit-learn's estimator checks look for)."""
    text = str(error)
    if "Expected 2D array" in text:
        got = text.split("got ", 1)[-1].split(" instead", 1)[0] if "got " in text else "another shape"
        return (f"X is a {got}, not a table. Reshape your data: X.reshape(1, -1) for one row, "
                "X.reshape(-1, 1) for one column")
    return " ".join(text.split()).rstrip(".")


def _masked_as_missing(X):
    """A NumPy masked array's masked cells as missing values (NaN), which ``impute`` fills or which
    are refused, naming the column; NumPy would otherwise hand on the hidden values beneath the mask
    and score them silently. Arrays without a masked cell are passed on unchanged."""
    if not isinstance(X, np.ma.MaskedArray) or not np.ma.getmaskarray(X).any():
        return X
    if X.dtype.kind in "biuf":
        return X.astype(np.float64).filled(np.nan)
    if X.dtype.kind in "OUS":
        return X.astype(object).filled(np.nan)
    return X


@contextlib.contextmanager
def _unreadable_cells_as_data_error():
    """Cells no column type can hold (lists, dicts, arrays, integers beyond float64) reach pandas and
    numpy as TypeError or OverflowError: say which promise the input broke instead."""
    try:
        yield
    except (TypeError, OverflowError) as exc:
        raise CellTypeError(f"a cell holds a value that is neither a number, a string, a boolean nor missing ({exc}); "
                            "pass one value per cell") from None


class BaseDetector(BaseEstimator):
    """Shared behaviour of oddkit's detectors (not used directly).

    Subclasses implement ``_fit_array(Z)`` and ``_score_array(Z) -> float64 scores`` on the
    preprocessed float32 matrix ``Z``, plus ``_get_model_state``/``_set_model_state`` for saving.
    Every subclass takes the parameters ``contamination``, ``impute``, ``unknown_categories`` and
    ``column_types``.

    Parameters are validated in one place: each class declares ``_parameter_constraints`` in
    scikit-learn's style (:mod:`oddkit.detectors.params`), merged with the shared ones declared
    here, and ``fit`` calls :meth:`_validate_params` before it reads any data. A bad value raises
    :class:`~oddkit.exceptions.ParameterError` naming the parameter, the value and what is allowed.
    Sparse matrices (``scipy.sparse``) are refused with a :class:`~oddkit.exceptions.DataError`
    that says to pass ``X.toarray()``.

    Attributes
    ----------
    n_features_in_ : int
        Number of input columns (for images: ``C * H * W``). This and the attributes below exist
        after ``fit``.
    feature_names_in_ : ndarray of str
        Input column names, when ``X`` was a DataFrame with string column names.
    preprocessor_ : TablePreprocessor or ImagePreprocessor
        Standardisation and one-hot encoding fitted on the training data; for images (detectors
        that take them), the scaling and flattening of the training images' shape.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images; only present when fitted on images.
    decision_scores_ : ndarray of shape (n_samples,)
        Anomaly scores of the training rows (higher = more anomalous).
    threshold_ : float
        Rows scoring ``>= threshold_`` are anomalies; set so that ``contamination`` of the
        training rows are, and replaced by :meth:`set_threshold` when a dev set chose one.
    labels_ : ndarray of shape (n_samples,)
        ``predict`` on the training rows: 1 = anomaly, 0 = normal.
    threshold_goal_ : str
        How ``threshold_`` was chosen, e.g. ``"contamination:0.1"`` or ``"fpr:0.01"``.
    threshold_provenance_ : ThresholdProvenance or None
        Where a threshold chosen on a labelled dev set came from: the dev data's name, its row
        and anomaly counts, and the precision, recall and false-positive rate there (see
        :class:`oddkit.threshold.ThresholdProvenance`). ``None`` when the threshold came from
        ``contamination`` or was set by hand, and for models saved before it was recorded.
    threshold_miss_cost_col_ : str or None
        The column that priced each missed anomaly when a cost-goal threshold was chosen with
        per-row miss costs; evaluating and reporting then price misses by that column of the data
        by default (see :func:`oddkit.threshold.miss_cost_column`). ``None`` otherwise.
    training_fingerprint_ : str
        sha256 of the training data as the detector saw it (see :func:`training_fingerprint`), for
        the model card: which data a saved model learned from. Absent from models saved before it.
    n_training_rows_ : int
        How many rows (or images) the detector was fitted on.
    """

    _parameter_constraints: dict = {
        "contamination": [Interval(Real, 0, 0.5, closed="right"), StrOptions({"auto"})],
        "impute": [StrOptions({"median"}), None],
        "unknown_categories": [StrOptions({"error", "ignore"})],
        "column_types": [dict, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [DeviceName()],
        # At most MAX_WORKERS: a saved model's parameters are data, and a million threads asked of
        # OpenMP or joblib ends the process rather than raising.
        "n_threads": [Interval(Integral, 1, MAX_WORKERS, closed="both"), None],
        # joblib's convention: 1, 2, ... workers, or -1, -2, ... for all processors but |n_jobs| - 1; not 0.
        "n_jobs": [Interval(Integral, 1, MAX_WORKERS, closed="both"), Interval(Integral, -MAX_WORKERS, -1, closed="both"),
                   None],
    }
    """Constraints shared by the detectors that take these parameters; each class adds its own
    (see :mod:`oddkit.detectors.params`). Only a detector's own constructor parameters are checked."""

    _accepts_images = False
    """Whether the detector also learns from image stacks (n, H, W) / (n, C, H, W) (the auto-encoders)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            DETECTORS[cls.__name__] = cls

    # -- to be implemented by subclasses -------------------------------------------------------

    def _fit_array(self, Z: np.ndarray) -> None:
        raise NotImplementedError

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _training_scores(self, Z: np.ndarray) -> np.ndarray:
        """Scores of the training rows themselves (a detector that memorises rows overrides this)."""
        return self._score_array(Z)

    def _explain_contributions(self, Z: np.ndarray) -> tuple[np.ndarray, bool]:
        """Each preprocessed row's score split additively over the preprocessed columns, float64
        of shape (n, n_outputs), and whether it is an exact split whose row sums are a
        non-negative part of the score (True) or signed Shapley values (False); see
        :mod:`oddkit.explain`."""
        from oddkit.exceptions import ExplainError

        raise ExplainError(
            f"{type(self).__name__} cannot split its score by column; explain a model of another detector, "
            "e.g. oddkit.default_detector()")

    def _explain_shares(self, Z: np.ndarray) -> np.ndarray:
        """Each row's shares of its score per input column, (n, n_features_in_): the contributions
        summed over each column's outputs, then made shares (see
        :func:`oddkit.explain.shares_from_contributions`)."""
        from oddkit.explain import shares_from_contributions

        contributions, exact = self._explain_contributions(Z)
        return shares_from_contributions(self.preprocessor_.group_sum(contributions), signed=exact)

    def _explains_exactly(self) -> bool:
        """Whether :meth:`_explain_contributions` is an exact split (shares sum to 1) rather than
        Shapley values (absolute shares sum to 1)."""
        return True

    def _get_model_state(self) -> tuple[dict[str, np.ndarray], dict, dict[str, bytes]]:
        """Arrays for ``weights.safetensors``, JSON metadata, and extra files (name -> bytes)."""
        return {}, {}, {}

    def _set_model_state(self, arrays: dict[str, np.ndarray], meta: dict, files: dict[str, bytes]) -> None:
        pass

    # -- public API -----------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Learn what normal looks like from ``X``; ``y`` is ignored (present for API consistency).

        Raises
        ------
        ParameterError
            A parameter outside its allowed values (checked before ``X`` is read).
        TooFewRowsError, EmptyDataError, NonFiniteError, DataError
            When ``X`` cannot be used; the message says how to fix it.
        """
        self._validate_params()
        Z = self._prepare(X, reset=True)
        self._fit_array(Z)
        self.decision_scores_ = self._checked_training_scores(self._training_scores(Z))
        self._set_score_statistics(self.decision_scores_)
        self._set_contamination_threshold()
        return self

    fit._sets_auto_contamination = True  # a subclass's own fit must say so too (see _check_param_combinations)

    def _set_contamination_threshold(self) -> None:
        """``threshold_``, ``threshold_goal_`` and ``labels_`` from ``contamination`` and the
        training scores ``decision_scores_``: the share given, or with ``"auto"`` the share
        :func:`oddkit.detectors.contamination.estimate_contamination` finds in the scores."""
        if isinstance(self.contamination, str):
            share = self._estimated_contamination()
            self.threshold_goal_ = f"contamination:auto={share:.4g}"
        else:
            share = float(self.contamination)
            self.threshold_goal_ = f"contamination:{share:g}"
        self.threshold_ = float(contamination_threshold(self.decision_scores_, share))
        self.threshold_provenance_ = None
        self.threshold_miss_cost_col_ = None
        self.calibration_ = None
        self.labels_ = (self.decision_scores_ >= self.threshold_).astype(np.int64)

    def _estimated_contamination(self) -> float:
        """The anomaly share ``contamination="auto"`` flags, from the training scores (an ensemble
        overrides this: its normalised scores have no outlying tail of their own)."""
        from oddkit.detectors.contamination import estimate_contamination

        return estimate_contamination(self.decision_scores_)

    def _trim_share(self) -> float:
        """The share of training rows a robust fit leaves out: ``contamination``, or 0.1 (the
        default ``contamination``) when it is ``"auto"`` and the detector has no better estimate."""
        return DEFAULT_TRIM_SHARE if isinstance(self.contamination, str) else float(self.contamination)

    def decision_function(self, X) -> np.ndarray:
        """Anomaly score of each row of ``X``: higher = more anomalous (float64, shape (n,)).

        Every score is finite. A numeric value beyond the training range is standardised and
        clipped at ``oddkit.data.preprocess.STANDARDIZED_BOUND`` (a million training standard
        deviations), so every computation stays finite whatever the input (``1e300`` included).

        Notes
        -----
        Two guarantees hold on top of each detector's own score (the last line of defence):

        - a row holding a value ``oddkit.data.preprocess.FAR_BOUND`` (ten thousand training standard
          deviations) or more out, clipped or not, scores at least :meth:`out_of_range_score`,
          which is above every training score and the threshold: it is ranked above every normal
          row and labelled an anomaly, even by detectors whose score saturates far from the data
          (an isolation forest's path length, a classifier's confidence);
        - a score that still came out NaN or infinite (a numerical failure, never expected) is
          replaced by :meth:`out_of_range_score` with a :class:`~oddkit.exceptions.NonFiniteScoreWarning` (a ``RuntimeWarning``) naming the rows, so it is
          labelled an anomaly rather than leaving as NaN/inf or being labelled normal.
        """
        check_is_fitted(self)
        Z = self._prepare(X, reset=False)
        return self._guarded_scores(self._score_array(Z), Z)

    def out_of_range_score(self) -> float:
        """The lowest score given to a row out of range (see :meth:`decision_function`): the highest
        training score or the threshold, whichever is larger, plus the training scores' range."""
        check_is_fitted(self)
        spread = self.score_max_ - self.score_min_
        return float(max(self.score_max_, self.threshold_) + (spread if spread > 0 else 1.0))

    def _guarded_scores(self, scores: np.ndarray, Z: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64).copy()
        floor = None
        broken = ~np.isfinite(scores)
        if broken.any():
            floor = self.out_of_range_score()
            rows = np.flatnonzero(broken)
            warnings.warn(
                f"{type(self).__name__} computed {rows.size} non-finite score(s) (rows {rows[:5].tolist()}); "
                f"they are set to {floor:g} and labelled anomalies. Please report this with the rows that cause it",
                NonFiniteScoreWarning, stacklevel=3)
            scores[rows] = floor
        if isinstance(self.preprocessor_, TablePreprocessor):
            far = self.preprocessor_.out_of_range_rows(Z)
            if far.any():
                floor = self.out_of_range_score() if floor is None else floor
                scores[far] = np.maximum(scores[far], floor)
        return scores

    def _checked_training_scores(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        broken = np.flatnonzero(~np.isfinite(scores))
        if broken.size:
            raise DataError(
                f"{type(self).__name__} computed NaN or infinite scores for {broken.size} training row(s) "
                f"(first rows: {broken[:5].tolist()}); training diverged: lower lr, or check those rows")
        return scores

    def explain(self, X) -> pd.DataFrame:
        """Each row's share of its anomaly score carried by each input column.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features), or AudioData
            Rows to explain, as for :meth:`decision_function`. For a model trained on recordings:
            recordings (:class:`~oddkit.data.audio.AudioData`), explained per audio feature, one
            row per recording indexed by its file
            (:func:`~oddkit.data.audio_features.explain_recordings` sums them per mel band,
            MFCC coefficient, statistic or time segment).

        Returns
        -------
        pandas.DataFrame of shape (n_samples, n_features)
            One row per row of ``X``, indexed as ``X`` is (a DataFrame's index, else 0 .. n-1); one
            column per input column, named as in training (the one-hot outputs of a categorical
            column summed back into it). How each detector splits its score, whether shares sum
            to 1 and whether they can be negative: see :mod:`oddkit.explain`.

        Raises
        ------
        ExplainError
            The detector cannot split its score by column, or the model was saved without the
            state its explanation needs.
        MissingDependencyError
            The explanation needs shap (isolation forest, one-class SVM) and it is not installed.
        DataError
            When ``X`` cannot be scored (as for :meth:`decision_function`).
        """
        from oddkit.explain import explanation_frame

        check_is_fitted(self)
        if self._fitted_on_audio() and self.preprocessor_.features_.representation == "frames":
            from oddkit.exceptions import ExplainError

            raise ExplainError(f"{type(self).__name__} scores frames of recordings, not recordings; explain "
                               "applies to models with one row per recording")
        if self._fitted_on_images():
            from oddkit.exceptions import ExplainError

            raise ExplainError(f"{type(self).__name__} explains tables, but was fitted on images; "
                               "oddkit.image_explanations.explain_images(detector, images) maps where in each image its score "
                               "comes from (oddkit explain MODEL IMAGES on the command line)")
        Z = self._prepare(X, reset=False)
        frame = explanation_frame(self, X, self._explain_shares(Z))
        if isinstance(X, AudioData):  # recordings: one row each, named by its file, per audio feature
            frame.index = pd.Index(X.labels["file"].astype(str).to_numpy(), name="file")
        return frame

    def predict(self, X) -> np.ndarray:
        """1 for rows scoring at or above ``threshold_`` (anomalies), 0 otherwise."""
        return (self.decision_function(X) >= self.threshold_).astype(np.int64)

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fit on ``X`` and return the training labels ``labels_``."""
        return self.fit(X).labels_

    def predict_proba(self, X, method: str = "auto") -> np.ndarray:
        """Probability of each row being normal (column 0) and anomalous (column 1).

        Parameters
        ----------
        method : {"auto", "calibrated", "unify", "linear"}
            ``"calibrated"``: Platt scaling fitted by :meth:`calibrate` on a labelled dev set — a
            real probability (a logistic curve in the logarithm of the score's excess over the
            lowest training score). ``"unify"`` (Kriegel et al., 2011): the score standardised by the
            training scores' mean and spread, passed through the Gaussian error function; it needs
            no labels and is what ``"auto"`` uses until :meth:`calibrate` has been called.
            ``"linear"``: min-max scaling to the training scores' range, clipped to [0, 1].
        """
        return self.proba_from_scores(self.decision_function(X), method)

    def proba_from_scores(self, scores: np.ndarray, method: str = "auto") -> np.ndarray:
        """:meth:`predict_proba` for scores already computed with :meth:`decision_function`."""
        check_is_fitted(self)
        scores = np.asarray(scores, dtype=np.float64)
        if method == "auto":
            method = "calibrated" if self.calibration_ is not None else "unify"
        if method == "calibrated":
            if self.calibration_ is None:
                raise DataError("predict_proba(method='calibrated') needs calibrate(X_dev, y_dev) first")
            slope, intercept = self.calibration_
            anomalous = expit(slope * self._calibration_feature(scores) + intercept)
        elif method == "unify":
            anomalous = np.clip(erf((scores - self.score_mean_) / (self.score_std_ * math.sqrt(2))), 0.0, 1.0)
        elif method == "linear":
            anomalous = np.clip((scores - self.score_min_) / (self.score_max_ - self.score_min_), 0.0, 1.0)
        else:
            raise DataError(f"unknown method {method!r}; use 'auto', 'calibrated', 'unify' or 'linear'")
        return np.column_stack([1.0 - anomalous, anomalous])

    def calibrate(self, X, y) -> BaseDetector:
        """Fit Platt scaling (a logistic regression on the score) on a labelled dev set, so that
        ``predict_proba`` returns calibrated probabilities. ``y``: 1 = anomaly, 0 = normal."""
        from sklearn.linear_model import LogisticRegression

        from oddkit.metrics import check_labels

        scores = self.decision_function(X)
        y, scores = check_labels(y, scores)
        if len(np.unique(y)) < 2:
            raise DataError("calibrate needs a dev set holding both normal rows (0) and anomalies (1)")
        model = LogisticRegression(C=1e6).fit(self._calibration_feature(scores)[:, None], y)
        self.calibration_ = (float(model.coef_[0, 0]), float(model.intercept_[0]))
        return self

    def _calibration_feature(self, scores: np.ndarray) -> np.ndarray:
        # Anomaly scores are heavy-tailed (squared errors, log-likelihoods); a logistic curve fits
        # their logarithm far better than the scores themselves.
        return np.log1p(np.maximum(scores - self.score_min_, 0.0) / self.score_std_)

    def set_threshold(self, threshold: float | ThresholdChoice, goal: str | None = None) -> BaseDetector:
        """Replace ``threshold_`` by one chosen on a dev set (see :func:`oddkit.threshold.choose_threshold`).

        Parameters
        ----------
        threshold : float or ThresholdChoice
            The new threshold. A :class:`~oddkit.threshold.ThresholdChoice` also sets
            ``threshold_goal_``, ``threshold_provenance_`` (the dev data it was chosen on) and
            ``threshold_miss_cost_col_`` (the column that priced missed anomalies, if any); a
            number sets both to ``None``.
        goal : str, optional
            ``threshold_goal_`` to record; defaults to the choice's goal, or ``"manual"``.

        Returns
        -------
        self
        """
        check_is_fitted(self)
        provenance = miss_cost_col = None
        if isinstance(threshold, ThresholdChoice):
            goal = goal or threshold.goal
            provenance = threshold.provenance()
            miss_cost_col = threshold.miss_cost_col if goal == threshold.goal else None
            threshold = threshold.threshold
        if not np.isfinite(threshold):
            raise DataError(f"threshold must be a finite number, got {threshold!r}")
        self.threshold_ = float(threshold)
        self.threshold_goal_ = goal or "manual"
        self.threshold_provenance_ = provenance
        self.threshold_miss_cost_col_ = miss_cost_col
        self.labels_ = (self.decision_scores_ >= self.threshold_).astype(np.int64)
        return self

    def save(self, folder, key: bytes | str | None = None) -> None:
        """Save to ``folder`` (``config.json``, ``weights.safetensors``, ``integrity.json``); see
        :func:`oddkit.load`.

        Parameters
        ----------
        folder : str or Path
            The model folder (created if needed).
        key : bytes or str, optional
            Sign the folder with HMAC-SHA256 under this secret key; ``oddkit.load(folder, key=key)``
            then refuses any folder this key did not sign.
        """
        from oddkit.persist import save

        save(self, folder, key=key)

    # -- shared machinery -----------------------------------------------------------------------

    def _validate_params(self) -> None:
        """Check every parameter against the class's ``_parameter_constraints`` (merged with the
        shared ones), then the combinations of parameters that constraints cannot express
        (:meth:`_check_param_combinations`). ``fit`` calls this first; so does loading a model.

        Raises
        ------
        ParameterError
            Naming the parameter, the value given and the values or range allowed.
        """
        validate_params(self)
        if getattr(self, "contamination", None) == "auto" and not getattr(type(self).fit, "_sets_auto_contamination",
                                                                           False):
            # A detector whose own fit sets its threshold without _set_contamination_threshold.
            raise ParameterError(f"{type(self).__name__}: contamination='auto' is not supported by this detector; "
                                 "pass the expected anomaly share as a number in (0, 0.5]")
        self._check_param_combinations()

    def _check_param_combinations(self) -> None:
        """Checks that involve several parameters (subclasses extend; raise ParameterError)."""

    def _set_score_statistics(self, scores: np.ndarray) -> None:
        self.score_mean_ = float(np.mean(scores))
        std = float(np.std(scores))
        self.score_std_ = std if std > 0 else 1.0
        self.score_min_ = float(np.min(scores))
        spread = float(np.max(scores)) - self.score_min_
        self.score_max_ = self.score_min_ + (spread if spread > 0 else 1.0)

    def _record_training_data(self, X) -> None:
        """Fitted attributes that say which data the model learned from (the model card shows them):
        ``training_fingerprint_`` (one sha256 pass over the validated data) and ``n_training_rows_``."""
        self.training_fingerprint_ = training_fingerprint(X)
        self.n_training_rows_ = int(X.shape[0])

    def _fitted_on_images(self) -> bool:
        return isinstance(getattr(self, "preprocessor_", None), ImagePreprocessor)

    def _prepare_images(self, X: np.ndarray, reset: bool) -> np.ndarray:
        """Images -> float32 rows of C*H*W pixels in [0, 1] (see :class:`ImagePreprocessor`)."""
        if reset:
            if X.shape[0] == 0:
                raise EmptyDataError(f"the image array has shape {X.shape}; pass at least two images to fit")
            if X.shape[0] < 2:
                raise TooFewRowsError(f"fitting needs at least 2 images, got {X.shape[0]}; pass more training data")
            preprocessor = ImagePreprocessor().fit(X)
            Z = preprocessor.transform(X)
            self._record_training_data(X)
            self.preprocessor_ = preprocessor
            self.image_shape_ = preprocessor.image_shape_
            self.n_features_in_ = preprocessor.n_outputs_
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return Z
        if not self._fitted_on_images():
            raise ColumnMismatchError(
                f"the model was trained on a table of {self.n_features_in_} columns, got an array of images of "
                f"shape {X.shape}; pass a 2-D table (rows x columns)")
        return self.preprocessor_.transform(X)

    def _fitted_on_audio(self) -> bool:
        from oddkit.data.audio_features import AudioPreprocessor

        return isinstance(getattr(self, "preprocessor_", None), AudioPreprocessor)

    def _prepare_audio(self, X: AudioData, reset: bool) -> np.ndarray:
        """Recordings -> float32 rows of standardised log-mel features (see
        :class:`~oddkit.data.audio_features.AudioPreprocessor`); other sample rates are resampled."""
        from oddkit.data.audio_features import AudioPreprocessor

        if reset:
            if len(X) < 2:
                raise TooFewRowsError(f"fitting needs at least 2 recordings, got {len(X)}; pass more training data")
            preprocessor = AudioPreprocessor(X.features).fit(X)
            raw = preprocessor.raw_training_rows_
            del preprocessor.raw_training_rows_
            self._record_training_data(raw)
            self.preprocessor_ = preprocessor
            self.n_features_in_ = preprocessor.n_outputs_
            for stale in ("feature_names_in_", "image_shape_"):
                if hasattr(self, stale):
                    delattr(self, stale)
            return preprocessor.transform_rows(raw)
        if not self._fitted_on_audio():
            raise ColumnMismatchError(
                f"the model was trained on {'images' if self._fitted_on_images() else 'a table'}, got "
                f"{len(X)} recordings; pass the kind of data it was trained on")
        return self.preprocessor_.transform(X)

    def _to_input_space(self, Z: np.ndarray):
        """Preprocessed rows back in the input's space: images in the training layout (float32 in
        [0, 1]); for tables a DataFrame with the training columns when fitted on named columns,
        else a float64 array."""
        if self._fitted_on_images():
            return self.preprocessor_.inverse_transform(Z)
        frame = self.preprocessor_.inverse_transform(Z)
        return frame if hasattr(self, "feature_names_in_") else frame.to_numpy(dtype=np.float64)

    def _prepare(self, X, reset: bool) -> np.ndarray:
        """Validate ``X`` (shape, column names, content) and return the preprocessed float32 matrix.

        Detectors that take images (``_accepts_images``) route NumPy arrays of 3 or 4 dimensions to
        :meth:`_prepare_images` instead of the table preprocessor.
        """
        refuse_sparse(X)
        X = _masked_as_missing(X)
        if isinstance(X, AudioData):
            return self._prepare_audio(X, reset)
        if not reset and self._fitted_on_audio():
            names = self.preprocessor_.features_.feature_names_
            if isinstance(X, pd.DataFrame) and [str(c) for c in X.columns] == names:
                # The model's own features as a table (oddkit report draws these).
                return self.preprocessor_.transform_rows(X.to_numpy(dtype=np.float64))
            raise ColumnMismatchError(
                f"the model was trained on recordings, got {type(X).__name__}; pass AudioData "
                "(oddkit.data.audio.read_audio reads WAV/FLAC files, folders and .npz archives)")
        if self._accepts_images and is_image_array(X):
            return self._prepare_images(X, reset)
        if not reset and self._fitted_on_images():
            raise ColumnMismatchError(
                f"the model was trained on images of shape (C, H, W) = {self.image_shape_}, got "
                f"{type(X).__name__} of shape {getattr(X, 'shape', None)}; pass a NumPy array of images "
                "(n, H, W) or (n, C, H, W)")
        # A DataFrame keeps its columns (and so its categorical ones). Labels that are not strings
        # (pd.read_csv(header=None), pd.DataFrame(array)) become strings, so that they are recorded in
        # feature_names_in_ and checked when scoring as scikit-learn checks string names.
        if isinstance(X, pd.DataFrame) and not all(isinstance(c, str) for c in X.columns):
            X = X.set_axis([str(c) for c in X.columns], axis=1)
        elif not reset and hasattr(self, "feature_names_in_") and isinstance(X, np.ndarray) and X.dtype == object \
                and X.ndim == 2 and X.shape[1] == len(self.feature_names_in_):
            X = pd.DataFrame(X, columns=list(self.feature_names_in_))  # the training columns' values, text included
        named = isinstance(X, pd.DataFrame)
        if named and (reset or hasattr(self, "feature_names_in_")):
            if X.shape[0] == 0:
                raise EmptyDataError("X has no rows; pass at least one row to score (two to fit)")
            checked = X
        else:
            if getattr(X, "dtype", None) is not None and X.dtype.kind in "mM":
                raise DataError(f"X holds {X.dtype} values (dates or times), which are not used as numbers; "
                                "pass them as numeric columns you choose (e.g. hour of day, seconds since an event)")
            if named:  # a frame scored by a model fitted on an array: its columns are read as numbers
                dated = [(str(c), t) for c, t in X.dtypes.items() if getattr(t, "kind", "O") in "mM"
                         or isinstance(t, pd.PeriodDtype)]
                if dated:
                    raise DataError(f"column {dated[0][0]!r} holds {dated[0][1]} values (dates or times), which are "
                                    "not used as numbers; pass numbers (e.g. hour of day, seconds since an event)")
            try:
                checked = check_array(X, dtype=np.float64, ensure_all_finite=False, estimator=self)
            except (ValueError, TypeError, OverflowError) as exc:
                kind = EmptyDataError if "0 sample" in str(exc) or "0 feature" in str(exc) else DataError
                kind = CellTypeError if isinstance(exc, TypeError) else kind
                raise kind(f"{_one_line(exc)}. Pass a 2-D table of numbers (rows x columns).") from None
        try:
            validate_data(self, checked, reset=reset, skip_check_array=True)
        except ValueError as exc:
            raise ColumnMismatchError(_column_mismatch_message(exc, checked, getattr(self, "feature_names_in_", None))
                                      ) from None
        if reset:
            if checked.shape[0] < 2:
                raise TooFewRowsError(
                    "fitting needs at least 2 rows, got 1 sample; pass more training data")
            with _unreadable_cells_as_data_error():
                self.preprocessor_ = TablePreprocessor(
                    impute=self.impute, unknown_categories=self.unknown_categories,
                    column_types=getattr(self, "column_types", None)).fit(checked)
            self._record_training_data(checked)
            if hasattr(self, "image_shape_"):
                del self.image_shape_
        elif not isinstance(checked, pd.DataFrame) and hasattr(self, "feature_names_in_"):
            checked = pd.DataFrame(checked, columns=list(self.feature_names_in_))
        with _unreadable_cells_as_data_error():
            return self.preprocessor_.transform(checked)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "outlier_detector"
        return tags
