"""Local outlier factor: a row whose neighbourhood is sparser than its neighbours' is anomalous."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from oddkit.detectors.base import BaseDetector
from oddkit.detectors.knn import warn_if_neighbours_clamped
from oddkit.detectors.params import StrOptions, positive_int
from oddkit.exceptions import ModelFileError

DENSITY_FLOOR = 1e-10
"""Added to each mean reachability distance before it is inverted, as scikit-learn adds it: a row
with ``k`` exact duplicates among the training rows has a mean reachability distance of 0, and its
density is ``1 / DENSITY_FLOOR`` (1e10, the largest a density can be) rather than infinite."""


class LOFDetector(BaseDetector):
    """Local outlier factor (exact neighbours, scikit-learn's search): how much sparser a row's
    neighbourhood is than its neighbours' own.

    The training rows are standardised and kept. The reachability distance from a row ``x`` to a
    training row ``o`` is ``max(d(x, o), k-distance(o))``, with ``k-distance(o)`` the distance from ``o``
    to its ``n_neighbors``-th nearest other training row; the local reachability density of ``x`` is
    ``1 / (mean reachability distance to its k nearest training rows + 1e-10)``, and the score is the
    mean of its neighbours' densities over its own (Breunig et al., 2000). A score near 1 is a row as
    dense as its neighbourhood; larger is more anomalous. Unlike :class:`KNNDetector`'s distance, the
    score is relative to the local density, so a row just outside a tight group is odd even where a
    row as far from a loose group is not.

    The score of a new row equals ``-LocalOutlierFactor(n_neighbors=k, novelty=True).fit(Z)
    .score_samples(Z_new)`` of scikit-learn on the preprocessed rows, and ``decision_scores_`` (the
    training rows' scores, each leaving itself out of its neighbours) equals its
    ``-negative_outlier_factor_``. The ``1e-10`` (scikit-learn's) keeps every score finite: exact
    duplicates among the training rows, constant columns, and a row identical to many training rows
    give a large but finite density, never a division by zero. The price is scikit-learn's too: a
    row near a training row that appears more than ``k`` times, without being one of its copies,
    scores in the billions; drop duplicate rows before fitting where they are not meant as weight.

    Images (an array ``(n, H, W)`` or ``(n, C, H, W)``) are taken as :class:`KNNDetector` takes them:
    distances between their pixels scaled to [0, 1], not standardised.

    Parameters
    ----------
    n_neighbors : int, default=20
        ``k``, the neighbours that make each density; 20 is scikit-learn's and PyOD's default. With
        fewer than ``k + 1`` training rows, ``k`` is clamped to the number of training rows less one
        (``n_neighbors_``) and ``fit`` issues an :class:`~oddkit.exceptions.OddkitWarning` saying so,
        as :class:`KNNDetector` does.
    algorithm : {"auto", "ball_tree", "kd_tree", "brute"}, default="auto"
        scikit-learn's neighbour search; every choice is exact.
    n_jobs : int, optional
        Parallel queries.
    contamination, impute, unknown_categories, column_types
        See :class:`AutoEncoderDetector`.

    Attributes
    ----------
    neighbors_ : sklearn.neighbors.NearestNeighbors
        The index over the preprocessed training rows (float64).
    n_neighbors_ : int
        The ``k`` used: ``min(n_neighbors, n_training_rows - 1)``.
    k_distances_ : ndarray of shape (n_training_rows,)
        Each training row's distance to its ``n_neighbors_``-th nearest other training row.
    densities_ : ndarray of shape (n_training_rows,)
        Each training row's local reachability density (scikit-learn's ``_lrd``), in (0, 1e10].

    References
    ----------
    Breunig, M. M., Kriegel, H.-P., Ng, R. T. and Sander, J. "LOF: identifying density-based local
    outliers." SIGMOD 2000.

    Examples
    --------
    >>> import numpy as np
    >>> from oddkit import LOFDetector
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 0.1, size=(100, 2)), rng.normal(5, 2.0, size=(100, 2))]
    >>> scores = LOFDetector().fit(X).decision_function([[0.0, 0.0], [0.6, 0.6], [5.0, 5.0]])
    >>> bool(scores[1] > scores[2] and scores[1] > scores[0])
    True
    """

    _accepts_images = True

    _parameter_constraints: dict = {
        "n_neighbors": [positive_int],
        "algorithm": [StrOptions({"auto", "ball_tree", "kd_tree", "brute"})],
    }

    def __init__(self, n_neighbors=20, algorithm="auto", n_jobs=None, contamination=0.1, impute=None,
                 unknown_categories="error", column_types=None):
        self.n_neighbors = n_neighbors
        self.algorithm = algorithm
        self.n_jobs = n_jobs
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.column_types = column_types

    def _fit_array(self, Z: np.ndarray) -> None:
        warn_if_neighbours_clamped("LOFDetector", self.n_neighbors, Z.shape[0])
        self._index(Z)
        # kneighbors() without X leaves each training row out of its own neighbours, as scikit-learn's fit.
        distances, indices = self.neighbors_.kneighbors(return_distance=True)
        self.k_distances_ = distances[:, -1].copy()
        self.densities_ = self._densities(distances, indices)
        self._fit_scores = self._factors(self.densities_, indices)

    def _index(self, Z: np.ndarray) -> None:
        # A training set smaller than k + 1 still works: k shrinks to what is there (fit warns).
        self.n_neighbors_ = int(min(self.n_neighbors, Z.shape[0] - 1))
        self.neighbors_ = NearestNeighbors(n_neighbors=self.n_neighbors_, algorithm=self.algorithm,
                                           n_jobs=self.n_jobs).fit(np.asarray(Z, dtype=np.float64))

    def _densities(self, distances: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Local reachability densities of the rows whose k nearest training rows are ``indices``."""
        reachability = np.maximum(distances, self.k_distances_[indices])
        return 1.0 / (np.mean(reachability, axis=1) + DENSITY_FLOOR)

    def _factors(self, densities: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """The local outlier factors: the neighbours' densities over the row's own, averaged."""
        return np.mean(self.densities_[indices] / densities[:, np.newaxis], axis=1)

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        distances, indices = self.neighbors_.kneighbors(np.asarray(Z, dtype=np.float64), return_distance=True)
        return self._factors(self._densities(distances, indices), indices)

    def _training_scores(self, Z: np.ndarray) -> np.ndarray:
        scores = self.__dict__.pop("_fit_scores", None)
        if scores is not None:
            return scores
        distances, indices = self.neighbors_.kneighbors(return_distance=True)
        return self._factors(self._densities(distances, indices), indices)

    def _explain_contributions(self, Z: np.ndarray) -> tuple[np.ndarray, bool]:
        # The squared differences to the k nearest training rows, the neighbours whose reachability
        # distances make the row's density, averaged (as KNNDetector's method="mean").
        rows = np.asarray(Z, dtype=np.float64)
        training = self.neighbors_._fit_X
        indices = self.neighbors_.kneighbors(rows, return_distance=False)
        contributions = np.zeros_like(rows)
        for column in range(indices.shape[1]):
            contributions += (rows - training[indices[:, column]]) ** 2
        return contributions / indices.shape[1], True

    def _get_model_state(self):
        # The rows are the preprocessed float32 matrix widened to float64: float32 holds them exactly.
        rows = self.neighbors_._fit_X
        narrow = rows.astype(np.float32)
        arrays = {"training_rows": narrow if np.array_equal(narrow, rows) else np.ascontiguousarray(rows),
                  "k_distances": self.k_distances_, "densities": self.densities_}
        return arrays, {}, {}

    def _set_model_state(self, arrays, meta, files):
        try:
            rows, k_distances, densities = arrays["training_rows"], arrays["k_distances"], arrays["densities"]
        except KeyError as exc:
            raise ModelFileError(f"the saved LOF detector lacks its {exc.args[0]}") from None
        if (rows.ndim != 2 or rows.shape[0] < 2 or rows.shape[1] != self.preprocessor_.n_outputs_
                or rows.dtype.kind != "f"):
            raise ModelFileError("the saved LOF training rows are malformed or do not match the preprocessing")
        n = rows.shape[0]
        for name, values in (("k_distances", k_distances), ("densities", densities)):
            if values.shape != (n,) or values.dtype.kind != "f" or not np.isfinite(values).all():
                raise ModelFileError(f"the saved LOF {name} are not one finite number per training row ({n})")
        k = self.n_neighbors
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k:
            raise ModelFileError(f"the saved LOF n_neighbors={k!r} is not a positive integer")
        rows = rows.astype(np.float64)
        k_distances, densities = k_distances.astype(np.float64), densities.astype(np.float64)
        # What any fit gives: a k-distance is a distance between two training rows (at most the sum of
        # their lengths), and a density is 1 / (a mean of reachability distances, each at most the
        # largest k-distance, + 1e-10).
        lengths = np.sqrt(np.einsum("ij,ij->i", rows, rows))
        longest = float(np.max(k_distances))
        if (k_distances < 0).any() or (k_distances > 2.0 * lengths.max() * (1 + 1e-9) + 1e-12).any():
            raise ModelFileError("the saved LOF k_distances are negative or longer than any two training rows "
                                 "are apart")
        if (densities <= 0).any() or (densities > 1.0 / DENSITY_FLOOR * (1 + 1e-9)).any() \
                or (densities * (longest + DENSITY_FLOOR) < 1.0 - 1e-9).any():
            raise ModelFileError("the saved LOF densities are not what the training rows' k_distances give "
                                 f"(each in [1 / (largest k-distance + 1e-10), {1.0 / DENSITY_FLOOR:g}])")
        self.k_distances_, self.densities_ = k_distances, densities
        self._index(rows)
