"""k nearest neighbours: a row far from every training row is anomalous."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.neighbors import NearestNeighbors

from oddkit.detectors.base import BaseDetector
from oddkit.detectors.params import StrOptions, positive_int
from oddkit.exceptions import ModelFileError, OddkitWarning

METHODS = ("largest", "mean", "median")


class KNNDetector(BaseDetector):
    """Distance to the k-th nearest training row (exact neighbours, scikit-learn's search).

    The training rows are standardised and kept; the score of a row is its Euclidean distance to
    its ``n_neighbors``-th nearest training row (``method="largest"``, as in PyOD) or the mean or
    median distance to its ``n_neighbors`` nearest. A training row's own score leaves itself out.

    Images (an array ``(n, H, W)`` or ``(n, C, H, W)``) are not standardised: distances are taken
    between their pixels scaled to [0, 1]. Standardising each pixel gives the pixels near the border,
    which are almost always blank in training, the largest weights, so that a stray mark there
    outweighs the shape: on one-class MNIST (half the normal class for training) the standardised
    distance scored a mean AUROC of 0.889 against 0.940 for the raw one, while on Fashion-MNIST,
    whose images fill the frame, the two were level (0.917 and 0.915; ``benchmarks/IMAGES.md``). A table whose columns are pixels is a table,
    and is standardised; pass it as an array of images to have raw pixel distances. For images,
    :class:`GradientKNNDetector` (neighbours among histograms of oriented gradients) is better still.

    Parameters
    ----------
    n_neighbors : int, default=5
        ``k``. With fewer than ``k + 1`` training rows, ``k`` is clamped to the number of training
        rows less one (``n_neighbors_``; a training row's own score leaves itself out) and ``fit``
        issues an :class:`~oddkit.exceptions.OddkitWarning` saying so.
    method : {"largest", "mean", "median"}, default="largest"
    algorithm : {"auto", "ball_tree", "kd_tree", "brute"}, default="auto"
        scikit-learn's neighbour search; every choice is exact.
    n_jobs : int, optional
        Parallel queries.
    contamination, impute, unknown_categories, column_types
        See :class:`AutoEncoderDetector`.

    Attributes
    ----------
    neighbors_ : sklearn.neighbors.NearestNeighbors
        The index over the preprocessed training rows.
    n_neighbors_ : int
        The ``k`` used: ``min(n_neighbors, n_training_rows - 1)``.

    Examples
    --------
    >>> import warnings

import numpy as np
    >>> from oddkit import KNNDetector
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> scores = KNNDetector().fit(X).decision_function([[0, 0, 0], [6, 6, 6]])
    >>> bool(scores[1] > scores[0])
    True
    """

    _accepts_images = True

    _parameter_constraints: dict = {
        "n_neighbors": [positive_int],
        "method": [StrOptions(set(METHODS))],
        "algorithm": [StrOptions({"auto", "ball_tree", "kd_tree", "brute"})],
    }

    def __init__(self, n_neighbors=5, method="largest", algorithm="auto", n_jobs=None, contamination=0.1,
                 impute=None, unknown_categories="error", column_types=None):
        self.n_neighbors = n_neighbors
        self.method = method
        self.algorithm = algorithm
        self.n_jobs = n_jobs
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.column_types = column_types

    def _fit_array(self, Z: np.ndarray) -> None:
        if self.n_neighbors > Z.shape[0] - 1:
            warnings.warn(
                f"KNNDetector: n_neighbors={self.n_neighbors} but the training data has {Z.shape[0]} rows, so each "
                f"training row has only {Z.shape[0] - 1} others; using n_neighbors_={Z.shape[0] - 1}. Pass "
                f"n_neighbors <= {Z.shape[0] - 1} (or more rows) to silence this", OddkitWarning, stacklevel=3)
        self._index(Z)

    def _index(self, Z: np.ndarray) -> None:
        # A training set smaller than k + 1 still works: k shrinks to what is there (fit warns).
        self.n_neighbors_ = int(min(self.n_neighbors, Z.shape[0] - 1))
        self.neighbors_ = NearestNeighbors(n_neighbors=self.n_neighbors_, algorithm=self.algorithm,
                                           n_jobs=self.n_jobs).fit(Z)

    def _combine(self, distances: np.ndarray) -> np.ndarray:
        if self.method == "largest":
            return distances[:, -1].astype(np.float64)
        reduce = np.mean if self.method == "mean" else np.median
        return reduce(distances, axis=1).astype(np.float64)

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        return self._combine(self.neighbors_.kneighbors(Z, return_distance=True)[0])

    def _explain_contributions(self, Z: np.ndarray) -> tuple[np.ndarray, bool]:
        # The squared differences to the neighbour(s) the score is taken from: the k-th for
        # "largest", the middle one (two middle ones, averaged) for "median", all k averaged for "mean".
        indices = self.neighbors_.kneighbors(Z, return_distance=False)
        k = indices.shape[1]
        if self.method == "largest":
            used = indices[:, -1:]
        elif self.method == "median":
            used = indices[:, (k - 1) // 2:k // 2 + 1]
        else:
            used = indices
        training = self.neighbors_._fit_X
        rows = Z.astype(np.float64)
        contributions = np.zeros_like(rows)
        for column in range(used.shape[1]):
            contributions += (rows - training[used[:, column]].astype(np.float64)) ** 2
        return contributions / used.shape[1], True

    def _training_scores(self, Z: np.ndarray) -> np.ndarray:
        # kneighbors() without X leaves each training row out of its own neighbours.
        return self._combine(self.neighbors_.kneighbors(return_distance=True)[0])

    def _get_model_state(self):
        return {"training_rows": np.ascontiguousarray(self.neighbors_._fit_X)}, {}, {}

    def _set_model_state(self, arrays, meta, files):
        try:
            rows = arrays["training_rows"]
        except KeyError:
            raise ModelFileError("the saved KNN detector lacks its training rows") from None
        if rows.ndim != 2 or rows.shape[0] < 2 or rows.shape[1] != self.preprocessor_.n_outputs_:
            raise ModelFileError("the saved KNN training rows are malformed or do not match the preprocessing")
        if self.method not in METHODS:
            raise ModelFileError(f"the saved KNN method {self.method!r} is not one of {METHODS}")
        k = self.n_neighbors
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k:
            raise ModelFileError(f"the saved KNN n_neighbors={k!r} is not a positive integer")
        self._index(rows)
