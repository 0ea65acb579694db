"""An ensemble of oddkit's detectors, each from a different family, over normalised scores."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from oddkit.detectors.base import BaseDetector
from oddkit.exceptions import DataError, ModelFileError

# Distance, isolation, reconstruction and density: four ways to be odd that fail on different data.
DEFAULT_MEMBERS = ("knn", "iforest", "autoencoder", "gaussian")


def _member_factories():
    from oddkit.detectors.autoencoder import AutoEncoderDetector
    from oddkit.detectors.classic import IsolationForestDetector, OneClassSVMDetector
    from oddkit.detectors.gaussian import GaussianDetector
    from oddkit.detectors.knn import KNNDetector
    from oddkit.detectors.pca import PCADetector

    return {
        "knn": lambda seed, verbose: KNNDetector(),
        "iforest": lambda seed, verbose: IsolationForestDetector(random_state=seed),
        "autoencoder": lambda seed, verbose: AutoEncoderDetector(random_state=seed, verbose=verbose),
        "gaussian": lambda seed, verbose: GaussianDetector(),
        "pca": lambda seed, verbose: PCADetector(),
        "ocsvm": lambda seed, verbose: OneClassSVMDetector(),
    }


class EnsembleDetector(BaseDetector):
    """Several of oddkit's detectors, each with its defaults, and the mean of their normalised scores.

    Scores of different detectors live on different scales (distances, path lengths, squared
    errors, log-likelihoods), so each member's score is first mapped through the distribution of
    its own training scores: a score becomes the share of training rows scoring lower (0 to 1,
    interpolated), and a score above every training score keeps growing past 1 in units of the
    training scores' range, so the most extreme rows stay ordered. The ensemble's score is the
    mean of these over its members. Every member sees the same preprocessed rows.

    Parameters
    ----------
    members : sequence of str, default=("knn", "iforest", "autoencoder", "gaussian")
        Detector families by name: "knn", "iforest", "autoencoder", "gaussian", "pca", "ocsvm".
    random_state : int, RandomState or None
        Seeds the random members.
    verbose : int, default=0
        Passed to the auto-encoder (1 shows its progress bar).
    contamination, impute, unknown_categories : see :class:`AutoEncoderDetector`.

    Attributes
    ----------
    members_ : list of BaseDetector
        The fitted members, in the order of ``members``.
    member_quantiles_ : ndarray of shape (n_members, 101)
        Percentiles 0..100 of each member's training scores, used to normalise.
    """

    def __init__(self, members=DEFAULT_MEMBERS, random_state=None, verbose=0, contamination=0.1, impute=None,
                 unknown_categories="error"):
        self.members = members
        self.random_state = random_state
        self.verbose = verbose
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories

    def _fit_array(self, Z: np.ndarray) -> None:
        factories = _member_factories()
        names = list(self.members)
        unknown = [n for n in names if n not in factories]
        if not names or unknown:
            raise DataError(f"members must name some of {', '.join(factories)}; got {names!r}")
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.members_ = [factories[name](seed, self.verbose).fit(Z) for name in names]
        self.member_quantiles_ = np.stack([np.percentile(m.decision_scores_, np.arange(101)) for m in self.members_])

    def _normalise(self, scores: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
        levels = np.linspace(0.0, 1.0, len(quantiles))
        # np.interp needs increasing x: ties among the quantiles (discrete scores) keep their top level.
        inside = np.interp(scores, quantiles, levels)
        span = quantiles[-1] - quantiles[0]
        beyond = np.maximum(scores - quantiles[-1], 0.0) / (span if span > 0 else 1.0)
        return inside + beyond

    def _combine(self, member_scores: list[np.ndarray]) -> np.ndarray:
        return np.mean([self._normalise(s, q) for s, q in zip(member_scores, self.member_quantiles_)], axis=0)

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        return self._combine([m.decision_function(Z) for m in self.members_])

    def _training_scores(self, Z: np.ndarray) -> np.ndarray:
        return self._combine([m.decision_scores_ for m in self.members_])

    def _get_model_state(self):
        from oddkit.persist import detector_state

        arrays, metas, files = {"member_quantiles": self.member_quantiles_}, [], {}
        for i, member in enumerate(self.members_):
            member_arrays, member_meta, member_files = detector_state(member)
            arrays.update({f"member{i}.{k}": v for k, v in member_arrays.items()})
            files.update({f"member{i}.{k}": v for k, v in member_files.items()})
            metas.append(member_meta)
        return arrays, {"members": metas}, files

    def _set_model_state(self, arrays, meta, files):
        from oddkit.persist import restore_detector

        try:
            metas = list(meta["members"])
            self.member_quantiles_ = arrays["member_quantiles"]
        except (KeyError, TypeError) as exc:
            raise ModelFileError(f"the saved ensemble is incomplete: {exc}") from None
        if self.member_quantiles_.shape != (len(metas), 101):
            raise ModelFileError("the saved ensemble's quantiles do not match its members")
        self.members_ = []
        for i, member_meta in enumerate(metas):
            prefix = f"member{i}."
            self.members_.append(restore_detector(
                member_meta,
                {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)},
                {k[len(prefix):]: v for k, v in files.items() if k.startswith(prefix)},
            ))


def default_detector(random_state=None, **params) -> EnsembleDetector:
    """oddkit's recommended detector: :class:`EnsembleDetector` with its default members
    (k nearest neighbours, isolation forest, auto-encoder and Gaussian).

    Examples
    --------
    >>> import numpy as np, oddkit
    >>> X = np.random.default_rng(0).normal(size=(300, 4))
    >>> detector = oddkit.default_detector(random_state=0).fit(X)
    >>> detector.decision_function([[0, 0, 0, 0], [5, 5, 5, 5]]).argmax()
    np.int64(1)
    """
    return EnsembleDetector(random_state=random_state, **params)
