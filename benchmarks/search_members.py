"""Members measured by ``tabular_search.py`` that oddkit does not ship: ideas for the default's
margin, tried after the choice (TABULAR_SEARCH.md, "Ideas after the choice"). Benchmark code only."""

from __future__ import annotations

import numpy as np
from sklearn.covariance import MinCovDet

from oddkit import GaussianDetector, KNNDetector
from oddkit.detectors.contamination import estimate_contamination
from oddkit.detectors.ensemble import EnsembleDetector


class MCDGaussianDetector(GaussianDetector):
    """A Gaussian whose location and covariance are scikit-learn's minimum covariance determinant
    (FastMCD: many random starts, then concentration steps and a reweighting step), as PyOD's MCD,
    where ``GaussianDetector(robust=True)`` runs the concentration steps from the full data only.

    ``support``: the share of rows the raw estimate rests on (None: scikit-learn's (n + d + 1) / 2n)."""

    def __init__(self, support=None, seed=0, ridge=1e-6):
        super().__init__(ridge=ridge)
        self.support = support
        self.seed = seed

    def _fit_array(self, Z: np.ndarray) -> None:
        Z = Z.astype(np.float64)
        self.shrinkage_ = 0.0
        mcd = MinCovDet(support_fraction=self.support, random_state=self.seed).fit(Z)
        covariance = mcd.covariance_.copy()
        covariance[np.diag_indices_from(covariance)] += float(self.ridge) + 1e-6
        self._set_distribution(mcd.location_, covariance)


class TrimmedEnsembleDetector(EnsembleDetector):
    """The default ensemble fitted twice: the second fit leaves out the training rows the first
    scores highest, a fixed ``share`` or (``"auto"``) the median of the members' Tukey-fence
    estimates, at most a half. Training rows keep their left-out (neighbour) scores when kept and
    are scored by the second fit when left out."""

    def __init__(self, share=0.1, random_state=None):
        super().__init__(random_state=random_state)
        self.share = share

    def _fit_array(self, Z: np.ndarray) -> None:
        super()._fit_array(Z)
        first = self._combine([m.decision_scores_ for m in self.members_])
        if self.share == "auto":
            share = min(0.5, float(np.median([estimate_contamination(m.decision_scores_) for m in self.members_])))
        else:
            share = float(self.share)
        self._kept = first <= np.quantile(first, 1.0 - share)
        super()._fit_array(Z[self._kept])

    def _training_scores(self, Z: np.ndarray) -> np.ndarray:
        scores = np.empty(len(Z))
        scores[self._kept] = self._combine([m.decision_scores_ for m in self.members_])
        if not self._kept.all():
            scores[~self._kept] = self._score_array(Z[~self._kept])
        return scores


class WhitenedKNNDetector(KNNDetector):
    """Neighbour distances after whitening by the training covariance plus ``ridge`` times the
    identity (on standardised columns: a large ridge is plain distance, a small one Mahalanobis)."""

    def __init__(self, ridge=1.0, n_neighbors=1):
        super().__init__(n_neighbors=n_neighbors)
        self.ridge = ridge

    def _fit_array(self, Z: np.ndarray) -> None:
        Z = Z.astype(np.float64)
        covariance = np.atleast_2d(np.cov(Z, rowvar=False, bias=True))
        covariance[np.diag_indices_from(covariance)] += self.ridge
        values, vectors = np.linalg.eigh(covariance)
        self._whitening = vectors / np.sqrt(np.maximum(values, 1e-12))
        super()._fit_array(Z @ self._whitening)

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        return super()._score_array(Z.astype(np.float64) @ self._whitening)


class AutoEncoderCodeKNN:
    """The nearest neighbour's distance in the code space of ``AutoEncoderDetector()`` (its
    defaults: the ``ae`` member): the auto-encoder's code as a space for neighbour distances,
    beside its reconstruction error (issue 22 lists it among ideas worth measuring)."""

    def __init__(self, seed=0):
        self.seed = seed

    def fit(self, X):
        from oddkit import AutoEncoderDetector

        self.autoencoder_ = AutoEncoderDetector(robust=False, n_estimators=1, random_state=self.seed, verbose=0).fit(X)
        self.neighbours_ = KNNDetector(n_neighbors=1).fit(self.autoencoder_.transform(X))
        self.decision_scores_ = self.neighbours_.decision_scores_
        return self

    def decision_function(self, X):
        return self.neighbours_.decision_function(self.autoencoder_.transform(X))


class PyODMember:
    """A PyOD detector as run_tabular.py runs it: ``bench_detectors.build_with_defaults`` (PyOD's
    defaults, ``random_state`` = seed and a silent ``verbose`` where the class takes them) on columns
    standardised with the training rows' mean and standard deviation (``bench_data.standardise``).
    ``name`` is a class of ``bench_detectors.PYOD_CLASSES`` ("KNN", "MCD", ...). Scores are PyOD's
    (``decision_scores_`` on the training rows, ``decision_function`` on new rows): higher is more
    anomalous."""

    def __init__(self, name="KNN", seed=0):
        self.name = name
        self.seed = seed

    def _build(self, n_features: int):
        from bench_detectors import build_with_defaults, pyod_class

        return build_with_defaults(pyod_class(self.name), self.seed, n_features)

    def fit(self, X):
        X = np.asarray(X, dtype=np.float64)
        self.mean_, self.std_ = X.mean(axis=0), X.std(axis=0)
        self.std_[self.std_ == 0] = 1.0
        self.model_ = self._build(X.shape[1]).fit((X - self.mean_) / self.std_)
        self.decision_scores_ = self.model_.decision_scores_
        return self

    def decision_function(self, X):
        return self.model_.decision_function((np.asarray(X, dtype=np.float64) - self.mean_) / self.std_)


class PyODINNE(PyODMember):
    """PyOD's iNNE (``pyod.models.inne.INNE``, Bandaragoda et al. 2018) with its defaults
    (``n_estimators=200``, ``max_samples="auto"``: min(8, rows)) and ``random_state`` = seed, fed as
    :class:`PyODMember` feeds every PyOD detector (iNNE is not among run_tabular.py's)."""

    def __init__(self, seed=0):
        super().__init__("INNE", seed)

    def _build(self, n_features: int):
        from pyod.models.inne import INNE

        return INNE(random_state=self.seed)


def _robust_scale(columns: np.ndarray) -> np.ndarray:
    """Each column's median absolute deviation (as a normal standard deviation), falling back to the
    interquartile range, then the standard deviation, then 1 where a column is mostly one value."""
    from scipy.stats import median_abs_deviation

    mad = median_abs_deviation(columns, axis=0, scale="normal")
    q1, q3 = np.percentile(columns, [25, 75], axis=0)
    iqr, std = (q3 - q1) / 1.349, columns.std(axis=0)
    return np.where(mad > 0, mad, np.where(iqr > 0, iqr, np.where(std > 0, std, 1.0)))


def _correlation(columns: np.ndarray) -> np.ndarray:
    covariance = np.atleast_2d(np.cov(columns, rowvar=False, bias=True))
    std = np.sqrt(np.clip(np.diag(covariance), 1e-12, None))
    return np.nan_to_num(covariance / np.outer(std, std))


class DeterministicMCDGaussian(GaussianDetector):
    """A Gaussian on the ``1 - contamination`` share of rows whose covariance has the smallest
    determinant found by concentration steps run to convergence from several starts: the full data
    (the start of ``GaussianDetector(robust=True)``, which stops after three steps) and, with
    ``starts="detmcd"``, the five deterministic starts of DetMCD (Hubert, Rousseeuw and Verdonck 2012,
    "A deterministic algorithm for robust location and scatter", JCGS 21(3)): the correlations of the
    columns' hyperbolic tangents, ranks and normal scores, the spatial-sign covariance, and the half
    of the rows nearest the coordinate-wise median, each on columns centred at their medians and
    scaled by their MADs. No random starts: the fit is deterministic, where FastMCD's (``mcd``)
    depends on its random state (PYOD_MCD_STATES.md)."""

    def __init__(self, contamination=0.25, starts="detmcd", max_steps=20, ridge=1e-6):
        super().__init__(robust=True, contamination=contamination, ridge=ridge)
        self.starts = starts
        self.max_steps = max_steps

    def _distances(self, Z: np.ndarray, location: np.ndarray, covariance: np.ndarray) -> np.ndarray:
        covariance = covariance + float(self.ridge) * np.eye(len(covariance))
        whitened = np.linalg.solve(np.linalg.cholesky(covariance), (Z - location).T)
        return np.einsum("ij,ij->j", whitened, whitened)

    def _detmcd_starts(self, Z: np.ndarray) -> list[np.ndarray]:
        """DetMCD's starting subsets: for each initial scatter, the half of the rows nearest it."""
        from scipy.stats import norm, rankdata

        n = len(Z)
        X = (Z - np.median(Z, axis=0)) / _robust_scale(Z)
        ranks = rankdata(X, axis=0)
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        scatters = [_correlation(np.tanh(X)), _correlation(ranks), _correlation(norm.ppf((ranks - 1 / 3) / (n + 1 / 3))),
                    np.atleast_2d(np.cov(X / np.where(norms > 0, norms, 1.0), rowvar=False, bias=True))]
        half = (n + 1) // 2
        subsets = []
        for scatter in scatters:
            _, vectors = np.linalg.eigh(scatter)
            projected = X @ vectors  # scatter's eigenvectors, each axis given a robust scale
            covariance = (vectors * _robust_scale(projected) ** 2) @ vectors.T
            location = vectors @ np.median(projected, axis=0)
            subsets.append(np.argsort(self._distances(X, location, covariance))[:half])
        subsets.append(np.argsort(norms[:, 0])[:half])  # BACON's first step: the rows nearest the median
        return subsets

    def _concentrate(self, Z: np.ndarray, subset: np.ndarray, h: int) -> tuple[float, np.ndarray]:
        previous = None
        for _ in range(self.max_steps):
            rows = Z[subset]
            covariance = np.atleast_2d(np.cov(rows, rowvar=False, bias=True))
            subset = np.sort(np.argsort(self._distances(Z, rows.mean(axis=0), covariance))[:h])
            if previous is not None and np.array_equal(subset, previous):
                break
            previous = subset
        covariance = np.atleast_2d(np.cov(Z[subset], rowvar=False, bias=True))
        return float(np.linalg.slogdet(covariance + float(self.ridge) * np.eye(len(covariance)))[1]), subset

    def _fit_array(self, Z: np.ndarray) -> None:
        Z = Z.astype(np.float64)
        n = len(Z)
        h = min(n, max(Z.shape[1] + 1, int(np.ceil((1.0 - float(self.contamination)) * n))))
        starts = [np.arange(n)] + (self._detmcd_starts(Z) if self.starts == "detmcd" else [])
        _, subset = min((self._concentrate(Z, start, h) for start in starts), key=lambda found: found[0])
        self._fit_rows(Z[subset])


class QuantileMember:
    """An oddkit member fitted on columns mapped to normal scores through their training quantiles
    (scikit-learn's ``QuantileTransformer(output_distribution="normal")``, up to 1,000 quantiles):
    each column's ranks, not its magnitudes, before the member's own standardisation. Values beyond
    the training range are clipped to its ends."""

    def __init__(self, build):
        self.build = build

    def fit(self, X):
        from sklearn.preprocessing import QuantileTransformer

        X = np.asarray(X, dtype=np.float64)
        self.transformer_ = QuantileTransformer(n_quantiles=min(1000, len(X)), output_distribution="normal",
                                                subsample=None, random_state=0).fit(X)
        self.member_ = self.build().fit(self.transformer_.transform(X))
        self.decision_scores_ = self.member_.decision_scores_
        return self

    def decision_function(self, X):
        return self.member_.decision_function(self.transformer_.transform(np.asarray(X, dtype=np.float64)))
