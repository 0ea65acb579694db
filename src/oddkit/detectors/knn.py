"""k nearest neighbours: a row far from every training row is anomalous."""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state

from oddkit.detectors.base import BaseDetector
from oddkit.detectors.params import Interval, StrOptions, positive_int
from oddkit.exceptions import ModelFileError, OddkitWarning

METHODS = ("largest", "mean", "median")
SUBSAMPLE_CHUNK_VALUES = 4_000_000
"""Distances held at once when scoring against subsamples (32 MB of float64)."""


def warn_if_neighbours_clamped(owner: str, n_neighbors: int, n_rows: int) -> None:
    """Warn (:class:`~oddkit.exceptions.OddkitWarning`, naming the class ``owner``) when ``n_neighbors``
    exceeds the others each of ``n_rows`` training rows has, so that ``fit`` clamps it. Called from a
    detector's own ``_fit_array``, so that the warning points at the call to ``fit``."""
    if n_neighbors > n_rows - 1:
        warnings.warn(
            f"{owner}: n_neighbors={n_neighbors} but the training data has {n_rows} rows, so each training row has "
            f"only {n_rows - 1} others; using n_neighbors_={n_rows - 1}. Pass n_neighbors <= {n_rows - 1} (or more "
            "rows) to silence this", OddkitWarning, stacklevel=4)


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
    With ``max_samples`` the detector is a subsampling ensemble (Zimek et al., 2013): each of
    ``n_estimators`` random subsamples of ``max_samples`` training rows (without replacement)
    gives the distance to the ``n_neighbors``-th nearest row of that subsample, and the score is
    their mean. Anomalies hidden in the training data in a tight group of their own are each
    other's neighbours in the full data but rarely in a small subsample, which is also why an
    isolation forest, fitted on subsamples, resists them.

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
    max_samples : int, optional
        Rows in each subsample; None (or at least the number of training rows): every training
        row, one search, ``n_estimators`` unused.
    n_estimators : int, default=50
        Subsamples averaged when ``max_samples`` is set.
    random_state : int, RandomState or None
        Draws the subsamples. They are drawn from the training rows in sorted order, so the
        same rows in any order give the same scores (to rounding in the standardisation).
    contamination, impute, unknown_categories, column_types
        See :class:`AutoEncoderDetector`.

    Attributes
    ----------
    neighbors_ : sklearn.neighbors.NearestNeighbors
        The index over the preprocessed training rows (those in some subsample when subsampling).
    n_neighbors_ : int
        The ``k`` used: ``min(n_neighbors, n_training_rows - 1)`` (``max_samples - 1`` when
        subsampling, if smaller).
    subsamples_ : ndarray of shape (n_estimators, max_samples) or None
        Each subsample's rows, as indices into ``neighbors_``'s rows; None without subsampling.

    References
    ----------
    Ramaswamy, S., Rastogi, R. and Shim, K. "Efficient algorithms for mining outliers from large
    data sets." SIGMOD 2000.
    Zimek, A., Gaudet, M., Campello, R. J. G. B. and Sander, J. "Subsampling for efficient and
    effective unsupervised outlier detection ensembles." KDD 2013.

    Examples
    --------
    >>> import numpy as np
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
        "max_samples": [Interval(Integral, 2, None, closed="left"), None],
        "n_estimators": [positive_int],
    }

    def __init__(self, n_neighbors=5, method="largest", algorithm="auto", n_jobs=None, max_samples=None,
                 n_estimators=50, random_state=None, contamination=0.1, impute=None, unknown_categories="error",
                 column_types=None):
        self.n_neighbors = n_neighbors
        self.method = method
        self.algorithm = algorithm
        self.n_jobs = n_jobs
        self.max_samples = max_samples
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.column_types = column_types

    def _subsampling(self, n_rows: int) -> bool:
        return self.max_samples is not None and int(self.max_samples) < n_rows

    def _fit_array(self, Z: np.ndarray) -> None:
        if self._subsampling(Z.shape[0]):
            rng = check_random_state(self.random_state)
            size = int(self.max_samples)
            # Positions are drawn in the rows' sorted order, not the order they came in, so that
            # the same rows in another order (a shuffled table, a folder listed differently) make
            # the same subsamples and the same scores.
            canonical = np.lexsort(Z.T[::-1])
            draws = np.stack([canonical[rng.choice(Z.shape[0], size, replace=False)]
                              for _ in range(int(self.n_estimators))])
            # Only the rows some subsample holds are kept, renumbered; the training rows' own
            # scores are computed here, while every row is at hand.
            kept, subsamples = np.unique(draws, return_inverse=True)
            self.subsamples_ = subsamples.reshape(draws.shape).astype(np.int64)
            self._index(Z[kept])
            self._fit_scores = self._subsample_scores(Z, training_rows=kept)
            return
        self.subsamples_ = None
        warn_if_neighbours_clamped("KNNDetector", self.n_neighbors, Z.shape[0])
        self._index(Z)

    def _index(self, Z: np.ndarray) -> None:
        # A training set smaller than k + 1 still works: k shrinks to what is there (fit warns).
        if self.subsamples_ is None:
            self.n_neighbors_ = int(min(self.n_neighbors, Z.shape[0] - 1))
        else:
            self.n_neighbors_ = int(min(self.n_neighbors, self.subsamples_.shape[1] - 1))
        self.neighbors_ = NearestNeighbors(n_neighbors=self.n_neighbors_, algorithm=self.algorithm,
                                           n_jobs=self.n_jobs).fit(Z)

    def _searches(self):
        """(neighbour search, indices of its rows in ``neighbors_``) for each subsample, or the one
        search over every training row (with None)."""
        if self.subsamples_ is None:
            yield self.neighbors_, None
            return
        rows = self.neighbors_._fit_X
        for subsample in self.subsamples_:
            yield NearestNeighbors(n_neighbors=self.n_neighbors_, algorithm=self.algorithm,
                                   n_jobs=self.n_jobs).fit(rows[subsample]), subsample

    def _subsample_scores(self, Z: np.ndarray, training_rows: np.ndarray | None = None) -> np.ndarray:
        """The mean over subsamples of each row's score against that subsample. ``training_rows``
        (when ``Z`` is the training data): which row of ``Z`` each kept row is, so that a training
        row's score against a subsample holding it leaves itself out.

        One exact distance matrix against every subsample's rows at once (rows in chunks), rather
        than one neighbour search per subsample: subsamples are small, so a matrix product is faster."""
        rows = self.neighbors_._fit_X.astype(np.float64)
        n_estimators, size = self.subsamples_.shape
        members = rows[self.subsamples_.ravel()]
        member_norms = np.einsum("ij,ij->i", members, members)
        owner = None if training_rows is None else training_rows[self.subsamples_].ravel()
        k = self.n_neighbors_
        scores = np.empty(Z.shape[0], dtype=np.float64)
        step = max(1, SUBSAMPLE_CHUNK_VALUES // members.shape[0])
        for begin in range(0, Z.shape[0], step):
            chunk = Z[begin:begin + step].astype(np.float64)
            squared = (np.einsum("ij,ij->i", chunk, chunk)[:, None] - 2.0 * chunk @ members.T + member_norms[None, :])
            distances = np.sqrt(np.maximum(squared, 0.0))
            if owner is not None:  # a training row is not its own neighbour
                mine = (owner >= begin) & (owner < begin + len(chunk))
                distances[owner[mine] - begin, np.flatnonzero(mine)] = np.inf
            distances = distances.reshape(len(chunk), n_estimators, size)
            if k == 1:
                nearest = distances.min(axis=2, keepdims=True)
            else:
                nearest = np.sort(np.partition(distances, k - 1, axis=2)[:, :, :k], axis=2)
            per_subsample = self._combine(nearest.reshape(-1, k)).reshape(len(chunk), n_estimators)
            scores[begin:begin + step] = per_subsample.mean(axis=1)
        return scores

    def _combine(self, distances: np.ndarray) -> np.ndarray:
        if self.method == "largest":
            return distances[:, -1].astype(np.float64)
        reduce = np.mean if self.method == "mean" else np.median
        return reduce(distances, axis=1).astype(np.float64)

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        if self.subsamples_ is not None:
            return self._subsample_scores(Z)
        return self._combine(self.neighbors_.kneighbors(Z, return_distance=True)[0])

    def _explain_contributions(self, Z: np.ndarray) -> tuple[np.ndarray, bool]:
        # The squared differences to the neighbour(s) the score is taken from: the k-th for
        # "largest", the middle one (two middle ones, averaged) for "median", all k averaged for
        # "mean"; with subsamples, averaged over them as the score is.
        training = self.neighbors_._fit_X
        rows = Z.astype(np.float64)
        contributions = np.zeros_like(rows)
        searches = 0
        for search, subsample in self._searches():
            indices = search.kneighbors(Z, return_distance=False)
            if subsample is not None:
                indices = subsample[indices]
            k = indices.shape[1]
            if self.method == "largest":
                used = indices[:, -1:]
            elif self.method == "median":
                used = indices[:, (k - 1) // 2:k // 2 + 1]
            else:
                used = indices
            for column in range(used.shape[1]):
                contributions += (rows - training[used[:, column]].astype(np.float64)) ** 2 / used.shape[1]
            searches += 1
        return contributions / searches, True

    def _training_scores(self, Z: np.ndarray) -> np.ndarray:
        scores = self.__dict__.pop("_fit_scores", None)
        if scores is not None:
            return scores
        # kneighbors() without X leaves each training row out of its own neighbours.
        return self._combine(self.neighbors_.kneighbors(return_distance=True)[0])

    def _get_model_state(self):
        arrays = {"training_rows": np.ascontiguousarray(self.neighbors_._fit_X)}
        if self.subsamples_ is not None:
            arrays["subsamples"] = self.subsamples_
        return arrays, {}, {}

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
        subsamples = arrays.get("subsamples")
        if subsamples is not None and (subsamples.ndim != 2 or subsamples.shape[1] < 2
                                       or subsamples.dtype.kind not in "iu" or subsamples.min() < 0
                                       or subsamples.max() >= rows.shape[0]):
            raise ModelFileError("the saved KNN subsamples are malformed or point outside its training rows")
        self.subsamples_ = None if subsamples is None else subsamples.astype(np.int64)
        self._index(rows)
