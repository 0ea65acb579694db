"""An ensemble of oddkit's detectors, each from a different family, over normalised scores."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils import check_random_state

from oddkit.detectors.base import BaseDetector
from oddkit.detectors.params import StrOptions
from oddkit.exceptions import ModelFileError, ParameterError

if TYPE_CHECKING:  # the members' classes, imported only when a member is built (see _member_factories); named
    # here for type checkers, and for benchmarks/bench_runtime.py, whose scan of the imports makes the
    # ensemble's recorded results depend on its members' code
    from oddkit.detectors.autoencoder import AutoEncoderDetector  # noqa: F401
    from oddkit.detectors.classic import IsolationForestDetector, OneClassSVMDetector  # noqa: F401
    from oddkit.detectors.gaussian import GaussianDetector  # noqa: F401
    from oddkit.detectors.gradients import GradientKNNDetector  # noqa: F401
    from oddkit.detectors.knn import KNNDetector  # noqa: F401
    from oddkit.detectors.lof import LOFDetector  # noqa: F401
    from oddkit.detectors.pca import PCADetector  # noqa: F401
    from oddkit.detectors.transforms import TransformationDetector  # noqa: F401
    from oddkit.detectors.vae import VAEDetector  # noqa: F401

# Local distance, subsampled distance and global density: ways to be odd that fail on different
# data. The nearest neighbour alone is the sharpest detector on clean data; the nearest neighbour
# within small random subsamples is not fooled by anomalies that are each other's neighbours
# (contaminated data); the Gaussian fitted to the three quarters of rows nearest its centre sees
# global structure without fitting the hidden anomalies. Ranked on half of the benchmark's datasets
# (benchmarks/TABULAR_SEARCH.md); the written rule picked the nearest neighbour and the Gaussian
# alone (mean AUROC 0.814 on that half against 0.812), and the subsampled member was kept by a
# tie-break stated after the other half had been seen.
DEFAULT_MEMBERS = ("knn1", "knn1-sub16", "gaussian-robust25")
COMBINE_RULES = ("max", "mean")
# Fitted on images, the default members give way to this: distances between histograms of oriented
# gradients beat every pixel detector and network oddkit has on one-class MNIST and Fashion-MNIST
# (benchmarks/IMAGES.md); the tabular members see pixels as unrelated columns.
IMAGE_MEMBERS = ("gradient-knn",)
# Fitted on recordings (one row of audio features per recording), the default members give way to
# the local outlier factor over 10 neighbours: chosen by a rule fixed in advance on inner folds of
# FSDD's training takes (benchmarks/AUDIO_SCORER.md: mean AUROC 0.979 against the default's 0.942)
# and confirmed on its test takes; the distances between speakers' and digits' groups vary, which a
# density ratio allows for and a distance does not.
AUDIO_MEMBERS = ("lof10",)


def _member_factories():
    from oddkit.detectors.base import DETECTORS

    def imported_when_built(name: str):
        # a member's module is imported only when the member is built: the default's members need no torch
        return lambda **params: DETECTORS[name](**params)

    AutoEncoderDetector = imported_when_built("AutoEncoderDetector")
    IsolationForestDetector = imported_when_built("IsolationForestDetector")
    OneClassSVMDetector = imported_when_built("OneClassSVMDetector")
    GaussianDetector = imported_when_built("GaussianDetector")
    GradientKNNDetector = imported_when_built("GradientKNNDetector")
    KNNDetector = imported_when_built("KNNDetector")
    LOFDetector = imported_when_built("LOFDetector")
    PCADetector = imported_when_built("PCADetector")
    TransformationDetector = imported_when_built("TransformationDetector")
    VAEDetector = imported_when_built("VAEDetector")

    def neighbours(k: int, n_rows: int) -> int:
        # The ensemble picks k, not the user: on a small table it takes what there is, without the
        # warning KNNDetector gives a user who asked for more neighbours than rows.
        return max(1, min(k, n_rows - 1))

    return {
        "knn": lambda seed, verbose, share, n_rows: KNNDetector(n_neighbors=neighbours(5, n_rows),
                                                                contamination=share),
        "knn1": lambda seed, verbose, share, n_rows: KNNDetector(n_neighbors=1, contamination=share),
        "knn50": lambda seed, verbose, share, n_rows: KNNDetector(n_neighbors=neighbours(50, n_rows), method="mean",
                                                                  contamination=share),
        "knn1-sub16": lambda seed, verbose, share, n_rows: KNNDetector(
            n_neighbors=1, max_samples=16, random_state=seed, contamination=share),
        "knn1-sub64": lambda seed, verbose, share, n_rows: KNNDetector(
            n_neighbors=1, max_samples=64, random_state=seed, contamination=share),
        "lof": lambda seed, verbose, share, n_rows: LOFDetector(n_neighbors=neighbours(20, n_rows),
                                                                contamination=share),
        "lof10": lambda seed, verbose, share, n_rows: LOFDetector(n_neighbors=neighbours(10, n_rows),
                                                                  contamination=share),
        "iforest": lambda seed, verbose, share, n_rows: IsolationForestDetector(contamination=share, random_state=seed),
        "autoencoder": lambda seed, verbose, share, n_rows: AutoEncoderDetector(
            contamination=share, random_state=seed, verbose=verbose),
        "autoencoder-robust": lambda seed, verbose, share, n_rows: AutoEncoderDetector(
            robust=True, contamination=share, random_state=seed, verbose=verbose),
        "gaussian": lambda seed, verbose, share, n_rows: GaussianDetector(contamination=share),
        "gaussian-robust": lambda seed, verbose, share, n_rows: GaussianDetector(robust=True, contamination=share),
        # Trimming a fixed share, whatever the ensemble's contamination: a quarter or half of the
        # rows (half is the minimum covariance determinant's own default support).
        "gaussian-robust25": lambda seed, verbose, share, n_rows: GaussianDetector(robust=True, contamination=0.25),
        "gaussian-robust50": lambda seed, verbose, share, n_rows: GaussianDetector(robust=True, contamination=0.5),
        "pca": lambda seed, verbose, share, n_rows: PCADetector(contamination=share),
        "ocsvm": lambda seed, verbose, share, n_rows: OneClassSVMDetector(contamination=share),
        "vae": lambda seed, verbose, share, n_rows: VAEDetector(contamination=share, random_state=seed, verbose=verbose),
        "transforms": lambda seed, verbose, share, n_rows: TransformationDetector(
            contamination=share, random_state=seed, verbose=verbose),
        "gradient-knn": lambda seed, verbose, share, n_rows: GradientKNNDetector(
            n_neighbors=neighbours(5, n_rows), contamination=share),
    }


def score_quantiles(training_scores: np.ndarray) -> np.ndarray:
    """Percentiles 0..100 of a detector's training scores: what :func:`normalise_scores` needs."""
    return np.percentile(training_scores, np.arange(101))


def normalise_scores(scores: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Scores mapped through the distribution of a detector's training scores (``quantiles`` from
    :func:`score_quantiles`): the share of training rows scoring lower, interpolated, and past the
    largest training score growing on in units of the training scores' range."""
    levels = np.linspace(0.0, 1.0, len(quantiles))
    # Ties among the quantiles (discrete scores, duplicate rows): np.interp needs increasing x, so
    # each tied value keeps its top level for the scores above it, and a score equal to it gets its
    # bottom level, the share of training rows scoring lower (a duplicate of most training rows is
    # the most normal of rows, not the most anomalous).
    values, first = np.unique(quantiles, return_index=True)
    top = np.r_[first[1:] - 1, len(quantiles) - 1]
    inside = np.interp(scores, values, levels[top])
    at = np.minimum(np.searchsorted(values, scores), len(values) - 1)
    tied = values[at] == scores
    inside[tied] = levels[first[at[tied]]]
    span = quantiles[-1] - quantiles[0]
    beyond = np.maximum(scores - quantiles[-1], 0.0) / (span if span > 0 else 1.0)
    return inside + beyond


def combine_scores(member_scores, member_quantiles, rule: str = "max") -> np.ndarray:
    """Several detectors' scores, each normalised by its own training quantiles, made one by ``rule``."""
    normalised = [normalise_scores(s, q) for s, q in zip(member_scores, member_quantiles)]
    return np.max(normalised, axis=0) if rule == "max" else np.mean(normalised, axis=0)


class EnsembleDetector(BaseDetector):
    """Several of oddkit's detectors and the largest (or mean) of their normalised scores.

    Scores of different detectors live on different scales (distances, path lengths, squared
    errors, log-likelihoods), so each member's score is first mapped through the distribution of
    its own training scores: a score becomes the share of training rows scoring lower (0 to 1,
    interpolated), and a score above every training score keeps growing past 1 in units of the
    training scores' range, so the most extreme rows stay ordered. The ensemble's score is the
    largest of these over its members (a row is as odd as the member that finds it oddest) or
    their mean. Every member sees the same preprocessed rows.

    Parameters
    ----------
    members : sequence of str, default=("knn1", "knn1-sub16", "gaussian-robust25")
        Detectors by name, each with its defaults except as named: "knn" (5 neighbours), "knn1"
        (the nearest neighbour), "knn50" (mean distance to 50 neighbours; on fewer than 51 training rows,
        to all the others), "knn1-sub16" and "knn1-sub64" (the nearest neighbour's distance within
        each of 50 random subsamples of 16 or 64 training rows, averaged: ``KNNDetector(n_neighbors=1,
        max_samples=...)``), "iforest", "lof" and "lof10" (:class:`~oddkit.LOFDetector`, 20 or 10
        neighbours),
        "autoencoder", "autoencoder-robust" (``robust=True``: the same on tables, where trimming is
        the auto-encoder's default; on images it trims too), "gaussian", "gaussian-robust"
        (``robust=True``), "gaussian-robust25" and "gaussian-robust50" (``robust=True`` trimming a
        quarter or half of the rows, whatever ``contamination``), "pca", "ocsvm", and for images "vae"
        and "transforms" (:class:`~oddkit.TransformationDetector`) and "gradient-knn"
        (:class:`~oddkit.GradientKNNDetector`). Fitted on images, the default members are replaced
        by ``("gradient-knn",)``, the one image detector of oddkit's that beats raw-pixel neighbour
        distances clearly on one-class MNIST and Fashion-MNIST (``benchmarks/IMAGES.md``); fitted on
        recordings (one row of audio features each), by ``("lof10",)``, the local outlier factor over
        10 neighbours, which a rule fixed in advance chose on speech (``benchmarks/AUDIO_SCORER.md``).
        Name members to have others. Every member gets the ensemble's
        ``contamination``. Fitted on images, members that take images get them as images, the
        others as flat rows of pixels.
    combine : {"max", "mean"}, default="max"
        How the members' normalised scores become one. :meth:`explain` follows it: with "max" a
        row's explanation is that of the member whose normalised score is the row's score; with
        "mean" the members' shares averaged, each weighted by its normalised score.
    random_state : int, RandomState or None
        Seeds the random members.
    verbose : int, default=0
        Passed to the auto-encoder (1 shows its progress bar).
    contamination, impute, unknown_categories, column_types
        See :class:`AutoEncoderDetector`.
        They apply to the ensemble's own preprocessing, which every member shares (members see
        the standardised, encoded rows), so a column declared in ``column_types`` is treated the
        same by all of them.

    Attributes
    ----------
    members_ : list of BaseDetector
        The fitted members, in the order of ``members``.
    member_quantiles_ : ndarray of shape (n_members, 101)
        Percentiles 0..100 of each member's training scores, used to normalise.
    """

    _accepts_images = True

    _parameter_constraints: dict = {
        "members": [list, tuple],  # and names of members: _check_param_combinations
        "combine": [StrOptions(set(COMBINE_RULES))],
    }

    def __init__(self, members=DEFAULT_MEMBERS, combine="max", random_state=None, verbose=0, contamination=0.1,
                 impute=None, unknown_categories="error", column_types=None):
        self.members = members
        self.combine = combine
        self.random_state = random_state
        self.verbose = verbose
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.column_types = column_types

    def _check_param_combinations(self) -> None:
        super()._check_param_combinations()
        names = list(_member_factories())
        members = self.members
        if (isinstance(members, str) or not isinstance(members, (list, tuple)) or not members
                or any(not isinstance(m, str) or m not in names for m in members)):
            raise ParameterError(f"{type(self).__name__}: members must be a non-empty list of names from "
                                 f"{', '.join(names)}, got {members!r}")

    def _fit_array(self, Z: np.ndarray) -> None:
        factories = _member_factories()
        names = self._member_names()
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        share = self.contamination
        self.members_ = []
        for name in names:
            member = factories[name](seed, self.verbose, share, len(Z))
            self.members_.append(member.fit(self._member_input(member, Z)))
        self.member_quantiles_ = np.stack([score_quantiles(m.decision_scores_) for m in self.members_])

    def _member_names(self) -> list[str]:
        """The members to fit: ``members``, except that the default members fitted on images are
        :data:`IMAGE_MEMBERS`, and fitted on recordings (one row per recording) :data:`AUDIO_MEMBERS`."""
        if tuple(self.members) == DEFAULT_MEMBERS:
            if self._fitted_on_images():
                return list(IMAGE_MEMBERS)
            if self._fitted_on_audio() and self.preprocessor_.features_.representation != "frames":
                return list(AUDIO_MEMBERS)
        return list(self.members)

    def _member_input(self, member: BaseDetector, Z: np.ndarray) -> np.ndarray:
        """Images go to a member that takes images as images (n, C, H, W) in [0, 1], to any other
        as flat rows of pixels; tables as they are."""
        if self._fitted_on_images() and member._accepts_images:
            return Z.reshape(len(Z), *self.image_shape_)
        return Z

    def _combine(self, member_scores: list[np.ndarray]) -> np.ndarray:
        return combine_scores(member_scores, self.member_quantiles_, self.combine)

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        return self._combine([m.decision_function(self._member_input(m, Z)) for m in self.members_])

    def _explain_shares(self, Z: np.ndarray) -> np.ndarray:
        from oddkit.explain import shares_from_contributions

        # Explained as the scores are combined: with "max" a row is as odd as the member that finds
        # it oddest, so that member's shares are the row's; with "mean" the members' shares are
        # averaged, each weighted by its normalised score (its part of the mean).
        member_scores = [m.decision_function(Z) for m in self.members_]
        normalised = np.stack([normalise_scores(s, q) for s, q in zip(member_scores, self.member_quantiles_)])
        shares = np.stack([m._explain_shares(m._prepare(Z, reset=False)) for m in self.members_])
        rows = np.arange(Z.shape[0])
        if self.combine == "max":
            per_output = shares[normalised.argmax(axis=0), rows]
        else:
            weights = np.maximum(normalised, 0.0)
            totals = weights.sum(axis=0)
            weights = np.where(totals > 0, weights / np.where(totals > 0, totals, 1.0), 1.0 / len(self.members_))
            per_output = np.einsum("mn,mnj->nj", weights, shares)
        # Members see the preprocessed outputs as their columns: sum them back into the input's.
        return shares_from_contributions(self.preprocessor_.group_sum(per_output), signed=self._explains_exactly())

    def _explains_exactly(self) -> bool:
        return all(m._explains_exactly() for m in self.members_)

    def _training_scores(self, Z: np.ndarray) -> np.ndarray:
        return self._combine([m.decision_scores_ for m in self.members_])

    def _estimated_contamination(self) -> float:
        # Normalised scores are spread evenly over [0, 1] by construction: no tail stands apart
        # in them. Each member's own scores have one; the median of the members' estimates is the
        # share, resistant to one member that sees no anomalies or too many.
        from oddkit.detectors.contamination import estimate_contamination

        return float(np.median([estimate_contamination(m.decision_scores_) for m in self.members_]))

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
        if not metas or self.member_quantiles_.shape != (len(metas), 101):
            raise ModelFileError("the saved ensemble's quantiles do not match its members")
        if (np.diff(self.member_quantiles_, axis=1) < 0).any():
            raise ModelFileError("the saved ensemble's member quantiles are not in increasing order")
        if self.combine not in COMBINE_RULES:
            raise ModelFileError(f"the saved ensemble's combine={self.combine!r} is not one of {COMBINE_RULES}")
        self.members_ = []
        for i, member_meta in enumerate(metas):
            prefix = f"member{i}."
            member = restore_detector(
                member_meta,
                {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)},
                {k[len(prefix):]: v for k, v in files.items() if k.startswith(prefix)},
            )
            if member.n_features_in_ != self.preprocessor_.n_outputs_:
                raise ModelFileError(f"the saved ensemble's member {i} takes {member.n_features_in_} inputs, "
                                     f"not the ensemble's {self.preprocessor_.n_outputs_}")
            self.members_.append(member)


def default_detector(random_state=None, **params) -> EnsembleDetector:
    """oddkit's recommended detector: :class:`EnsembleDetector` with its default members (the
    nearest neighbour, the nearest neighbour within small random subsamples, and a Gaussian fitted
    to the three quarters of rows nearest its centre), combined by the largest normalised score.

    Local distance, subsampled distance and global density are ways to be odd that fail on
    different data: the nearest neighbour is the sharpest on clean training data; within
    subsamples of 16 rows (Zimek et al., 2013), anomalies hidden in the training data in a group
    of their own are rarely each other's neighbours, which is why subsampling detectors such as
    the isolation forest resist them; the trimmed Gaussian sees global structure without fitting
    the hidden anomalies. The members were ranked on half of the benchmark's datasets
    (``benchmarks/TABULAR_SEARCH.md``). The rule written before the other half was read picks the
    nearest neighbour and the trimmed Gaussian alone (mean AUROC on that half 0.814, against
    0.812 with the subsampled member); the subsampled member is kept by a tie-break (a 0.005
    margin, within which an ensemble with a subsampled member is preferred) stated after the
    other half had been seen, so that half does not confirm the choice independently. How the
    default compares with each member and with PyOD's detectors, clean and contaminated:
    ``benchmarks/RESULTS.md``.

    Fitted on images, the members are :data:`IMAGE_MEMBERS` (neighbours among histograms of
    oriented gradients, ``benchmarks/IMAGES.md``); fitted on recordings, :data:`AUDIO_MEMBERS`
    (the local outlier factor over 10 neighbours, ``benchmarks/AUDIO_SCORER.md``).

    Parameters
    ----------
    random_state : int, RandomState or None
        Seeds the random members (the subsamples), so the same seed gives the same scores.
    **params
        Any other parameter of :class:`EnsembleDetector` (``contamination``, ``combine``,
        ``impute``, ``verbose``, ...).

    Returns
    -------
    EnsembleDetector
        Unfitted.

    Examples
    --------
    >>> import numpy as np, oddkit
    >>> X = np.random.default_rng(0).normal(size=(300, 4))
    >>> detector = oddkit.default_detector(random_state=0).fit(X)
    >>> detector.decision_function([[0, 0, 0, 0], [5, 5, 5, 5]]).argmax()
    np.int64(1)
    """
    return EnsembleDetector(random_state=random_state, **params)
