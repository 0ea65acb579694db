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
