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


def _standardised(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (np.asarray(X, dtype=np.float64) - mean) / std


def _column_scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The training rows' column means and standard deviations (a constant column's set to 1)."""
    mean, std = X.mean(axis=0), X.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


class RandNetMember:
    """An auto-encoder ensemble after RandNet (Chen, Sathe, Aggarwal and Turaga 2017, "Outlier
    detection with autoencoder ensembles", SDM): ``n_members`` small fully connected auto-encoders,
    each with its own random connection mask and its own random subsample of the training rows, grown
    over the epochs (adaptive sampling); a row's score is the median over the members of its
    reconstruction error standardised by that member's errors on the training rows.

    Written here with torch rather than as ``AutoEncoderDetector`` members because the latter has no
    connection masks (RandNet's source of diversity) and trains one network on every row for many
    epochs; each member here is a few hundred small steps, so the ensemble stays within a few times
    the nearest neighbour's time. Per member (the paper's design as read, made cheap):

    - columns standardised by the training rows' mean and standard deviation;
    - layers ``d -> ceil(d/2) -> ceil(d/4) -> ceil(d/2) -> d`` (each hidden layer at least 2 wide:
      the paper's shrink factor 0.5, depth fixed at three hidden layers), sigmoid on the first and last
      hidden layers, ReLU on the bottleneck, linear output;
    - every weight matrix multiplied by a fixed random 0/1 mask keeping each connection with
      probability ``1 - drop`` (then one connection added back to any unit left without input or
      output);
    - a random subsample of ``min(n, max_samples)`` rows; epoch ``e`` of ``epochs`` trains on a fresh
      shuffle's first ``s_e`` of them, ``s_e`` growing geometrically from ``min(32, size)`` to all of
      them; mini-batches of 32, Adam, squared error;
    - score: mean squared reconstruction error over the columns, then (error - training mean) /
      training standard deviation.

    Every random draw comes from ``seed`` and the member's index (numpy and a torch generator), so a
    fit is repeated exactly at the same thread count. No layer-wise pretraining (the paper pretrains).
    """

    def __init__(self, n_members=20, epochs=20, max_samples=1024, drop=0.5, learning_rate=0.005, batch_size=32,
                 seed=0):
        self.n_members = n_members
        self.epochs = epochs
        self.max_samples = max_samples
        self.drop = drop
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.seed = seed

    @staticmethod
    def _widths(d: int) -> list[int]:
        half, quarter = max(2, -(-d // 2)), max(2, -(-d // 4))
        return [d, half, quarter, half, d]

    def _mask(self, rng, n_out: int, n_in: int) -> np.ndarray:
        mask = (rng.random((n_out, n_in)) >= self.drop).astype(np.float32)
        for row in np.flatnonzero(mask.sum(axis=1) == 0):
            mask[row, rng.integers(n_in)] = 1.0
        for column in np.flatnonzero(mask.sum(axis=0) == 0):
            mask[rng.integers(n_out), column] = 1.0
        return mask

    @staticmethod
    def _forward(x, layers):
        import torch

        last = len(layers) - 1
        for i, (weight, bias, mask) in enumerate(layers):
            x = x @ (weight * mask).T + bias
            if i == last:
                break
            x = torch.relu(x) if i == last // 2 else torch.sigmoid(x)
        return x

    def _fit_one(self, Z, index: int):
        import torch

        rng = np.random.default_rng([self.seed, index])
        generator = torch.Generator().manual_seed(self.seed * 1000 + index)
        widths = self._widths(Z.shape[1])
        layers = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            bound = 1.0 / np.sqrt(n_in)  # torch.nn.Linear's initialisation
            weight = ((torch.rand(n_out, n_in, generator=generator) * 2 - 1) * bound).requires_grad_()
            bias = ((torch.rand(n_out, generator=generator) * 2 - 1) * bound).requires_grad_()
            layers.append((weight, bias, torch.from_numpy(self._mask(rng, n_out, n_in))))
        optimiser = torch.optim.Adam([p for w, b, _ in layers for p in (w, b)], lr=self.learning_rate)
        size = min(len(Z), self.max_samples)
        sample = Z[rng.choice(len(Z), size=size, replace=False)]
        start = min(32, size)
        for epoch in range(self.epochs):
            share = epoch / max(1, self.epochs - 1)
            used = int(round(start * (size / start) ** share))
            rows = torch.from_numpy(sample[rng.permutation(size)[:used]])
            for first in range(0, used, self.batch_size):
                batch = rows[first:first + self.batch_size]
                optimiser.zero_grad()
                loss = ((self._forward(batch, layers) - batch) ** 2).mean()
                loss.backward()
                optimiser.step()
        return [(w.detach(), b.detach(), m) for w, b, m in layers]

    def _errors(self, Z: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(Z.astype(np.float32))
        with torch.no_grad():
            return np.stack([((self._forward(x, layers) - x) ** 2).mean(dim=1).double().numpy()
                             for layers in self.members_])

    def _combined(self, errors: np.ndarray) -> np.ndarray:
        return np.median((errors - self.error_mean_[:, None]) / self.error_std_[:, None], axis=0)

    def fit(self, X):
        X = np.asarray(X, dtype=np.float64)
        self.mean_, self.std_ = _column_scale(X)
        Z = _standardised(X, self.mean_, self.std_).astype(np.float32)
        self.members_ = [self._fit_one(Z, index) for index in range(self.n_members)]
        errors = self._errors(Z)
        self.error_mean_ = errors.mean(axis=1)
        std = errors.std(axis=1)
        self.error_std_ = np.where(std > 0, std, 1.0)
        self.decision_scores_ = self._combined(errors)
        return self

    def decision_function(self, X):
        return self._combined(self._errors(_standardised(X, self.mean_, self.std_)))


class DTENonParametric:
    """DTE's non-parametric estimator, DTE-NP (Livernoche, Jain, Hezaveh and Ravanbakhsh 2024, "On
    diffusion modeling for anomaly detection", ICLR): a row's score is its expected diffusion time.

    The formula follows the authors' code (github.com/vicliv/DTE, ``diffusion/non_param_dte.py``,
    class ``DTENonParametric``, defaults ``K=5``, ``T=500``), written again here:

    - diffusion schedule: ``beta_t`` = ``linspace(1e-4, 0.01, T)``, ``alphabar_t`` = the cumulative
      product of ``1 - beta_t``, noise variance ``sigma2_t = 1 - alphabar_t``, t = 0 .. T-1;
    - ``m(x)``: the mean of the squared Euclidean distances from x to its K nearest training rows
      (columns standardised by the training rows' mean and standard deviation, as the authors ask);
    - posterior over t: ``p(t | x)`` proportional to the inverse-gamma density of ``sigma2_t`` with
      shape ``a = d/2 - 1`` and scale ``m(x)/2``, i.e. ``exp(-(a + 1) log sigma2_t - m(x) / (2 sigma2_t))``,
      normalised over the T steps;
    - score: ``sum_t t p(t | x)``, the posterior mean of the step (the authors' latest version; an
      earlier one took the posterior's argmax).

    In float64 and in closed form (the authors call scipy's ``invgamma.logpdf`` in float32; the
    normalisation over t removes the terms free of t, so ``a <= 0``, d <= 2, is still defined here).
    The score is an increasing function of ``m(x)`` that flattens at 0 and T-1 once ``m(x)/d`` leaves
    the schedule's range of variances (about 1e-4 to 0.92): rows there tie. ``posterior=False`` scores
    ``m(x)`` itself (the ``knn5-sqmean`` reference member). A training row's own score leaves itself out
    (its K nearest other rows), as ``KNNDetector``'s does.
    """

    def __init__(self, n_neighbors=5, steps=500, posterior=True):
        self.n_neighbors = n_neighbors
        self.steps = steps
        self.posterior = posterior

    def _variances(self) -> np.ndarray:
        return 1.0 - np.cumprod(1.0 - np.linspace(1e-4, 0.01, self.steps))

    def _time(self, mean_squared: np.ndarray) -> np.ndarray:
        from scipy.special import softmax

        if not self.posterior:
            return mean_squared
        variances = self._variances()
        shape = 0.5 * self.n_features_ - 1.0
        scores = np.empty(len(mean_squared))
        for first in range(0, len(mean_squared), 2048):
            m = mean_squared[first:first + 2048, None]
            log_density = -(shape + 1.0) * np.log(variances)[None, :] - 0.5 * m / variances[None, :]
            scores[first:first + 2048] = softmax(log_density, axis=1) @ np.arange(self.steps)
        return scores

    def fit(self, X):
        from sklearn.neighbors import NearestNeighbors

        X = np.asarray(X, dtype=np.float64)
        self.mean_, self.std_ = _column_scale(X)
        Z = _standardised(X, self.mean_, self.std_)
        self.n_features_ = Z.shape[1]
        self.n_neighbors_ = max(1, min(self.n_neighbors, len(Z) - 1))
        self.neighbours_ = NearestNeighbors(n_neighbors=self.n_neighbors_).fit(Z)
        distances, _ = self.neighbours_.kneighbors(Z, n_neighbors=min(len(Z), self.n_neighbors_ + 1))
        self.decision_scores_ = self._time((distances[:, 1:] ** 2).mean(axis=1))
        return self

    def decision_function(self, X):
        distances, _ = self.neighbours_.kneighbors(_standardised(X, self.mean_, self.std_))
        return self._time((distances ** 2).mean(axis=1))
