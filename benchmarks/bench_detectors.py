"""The detectors under test, by name, each built with its library's defaults.

Names carry the library ("oddkit-AutoEncoder", "pyod-KNN") so results files stay readable and a
peer can never be mistaken for oddkit. Every detector gets only ``random_state`` (the seed) and a
silent ``verbose`` where it takes them, plus ``n_features`` for PyOD's DeepSVDD which requires it:
the point is to compare what users get out of the box.

oddkit's detectors are looked up by attribute, so detectors the library adds later (such as
``KNNDetector`` or ``default_detector``) join the benchmark without editing this file. PyOD is
imported only when one of its detectors is built, so the report can be written without it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import oddkit
from oddkit.detectors.ensemble import combine_scores, score_quantiles

ODDKIT_CLASSES = (
    "AutoEncoderDetector",
    "GaussianDetector",
    "PCADetector",
    "OneClassSVMDetector",
    "IsolationForestDetector",
    "KNNDetector",
    "LOFDetector",
)
ODDKIT_DEFAULT = "oddkit-default"
"""Built by ``oddkit.default_detector`` when the library has it: the detector the report
compares against every peer (``oddkit-AutoEncoder`` stands in when it is absent)."""

PYOD_CLASSES = {
    "IForest": "pyod.models.iforest",
    "OCSVM": "pyod.models.ocsvm",
    "KNN": "pyod.models.knn",
    "LOF": "pyod.models.lof",
    "ECOD": "pyod.models.ecod",
    "COPOD": "pyod.models.copod",
    "HBOS": "pyod.models.hbos",
    "PCA": "pyod.models.pca",
    "MCD": "pyod.models.mcd",
    "AutoEncoder": "pyod.models.auto_encoder",
    "VAE": "pyod.models.vae",
    "DeepSVDD": "pyod.models.deep_svdd",
}

PEER_ENSEMBLE = [("KNN", {"n_neighbors": 1}), ("KNN", {"n_neighbors": 50, "method": "mean"}), ("MCD", {}),
                 ("AutoEncoder", {})]
"""PyOD detectors (class, parameters) combined like ``oddkit.default_detector()``'s members, which
this list mirrored until issue 22 changed the default (its results are kept, not rerun): the
nearest neighbour, the mean distance to 50 neighbours, a robust Gaussian (PyOD's MCD) and an
auto-encoder."""
PEER_COMBINE = "max"
"""How the peer ensemble combines its members' normalised scores: as ``default_detector()`` does."""
PEER_ENSEMBLE_NAME = "pyod-rank-ensemble"


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    library: str
    """"oddkit" (fitted on raw features) or "pyod" (fitted on standardised features)."""
    build: Callable[[int, int], Any]
    """(seed, n_features) -> an unfitted detector with ``fit`` and ``decision_function``."""
    module: str | None = None
    """The oddkit module that defines the detector (whose dependencies its results hang on)."""


def build_with_defaults(factory: Callable[..., Any], seed: int, n_features: int) -> Any:
    """``factory()`` with its defaults, plus the seed, silence and width where it takes them.

    Keywords the factory's signature names are passed directly; ``random_state`` and ``verbose``
    are also set through ``set_params`` when only the built estimator has them (a function such
    as ``default_detector(**params)`` hides them in ``**params``)."""
    wanted = {"random_state": seed, "verbose": 0, "n_features": n_features}
    named = inspect.signature(factory).parameters
    detector = factory(**{key: value for key, value in wanted.items() if key in named})
    params = detector.get_params(deep=False) if hasattr(detector, "get_params") else {}
    late = {key: wanted[key] for key in ("random_state", "verbose") if key not in named and key in params}
    if late:
        detector.set_params(**late)
    return detector


def pyod_class(name: str) -> type:
    return getattr(importlib.import_module(PYOD_CLASSES[name]), name)


class PeerRankEnsemble:
    """PyOD detectors, their test scores rank-normalised and combined as oddkit's ensemble does.

    The PyOD counterpart of an oddkit ensemble: each member is fitted on the same rows, its test
    scores are mapped through the distribution of its own training scores (``decision_scores_``,
    which PyOD computes the way each detector scores its training rows, e.g. leaving the row
    itself out for k-NN) with oddkit's own normaliser, and combined by the same rule.
    """

    def __init__(self, members: list[tuple[str, dict]], random_state: int = 0, n_features: int = 0):
        self.members = list(members)
        self.random_state = random_state
        self.n_features = n_features

    def fit(self, X: np.ndarray) -> PeerRankEnsemble:
        self.members_ = []
        for name, params in self.members:
            member = build_with_defaults(pyod_class(name), self.random_state, self.n_features)
            self.members_.append(member.set_params(**params).fit(X))
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        quantiles = [score_quantiles(m.decision_scores_) for m in self.members_]
        return combine_scores([m.decision_function(X) for m in self.members_], quantiles, PEER_COMBINE)


def peer_ensemble(members: list[tuple[str, dict]], random_state: int = 0, n_features: int = 0) -> PeerRankEnsemble:
    """The hook the runner uses for ``pyod-rank-ensemble``: a rank-average of PyOD ``members``."""
    return PeerRankEnsemble(members, random_state=random_state, n_features=n_features)


def registry() -> dict[str, DetectorSpec]:
    """Every detector the benchmark knows, oddkit's first, in a stable order."""
    specs: list[DetectorSpec] = []
    default = getattr(oddkit, "default_detector", None)
    if default is not None:
        specs.append(DetectorSpec(ODDKIT_DEFAULT, "oddkit", lambda seed, d: build_with_defaults(default, seed, d),
                                  default.__module__))
    for class_name in ODDKIT_CLASSES:
        cls = getattr(oddkit, class_name, None)
        if cls is not None:
            name = "oddkit-" + class_name.removesuffix("Detector")
            specs.append(DetectorSpec(name, "oddkit", lambda seed, d, cls=cls: build_with_defaults(cls, seed, d),
                                      cls.__module__))
    for name in PYOD_CLASSES:
        specs.append(DetectorSpec(
            f"pyod-{name}", "pyod", lambda seed, d, name=name: build_with_defaults(pyod_class(name), seed, d)))
    specs.append(DetectorSpec(PEER_ENSEMBLE_NAME, "pyod", lambda seed, d: peer_ensemble(PEER_ENSEMBLE, seed, d)))
    return {spec.name: spec for spec in specs}


def reference_detector(names: list[str]) -> str:
    """The oddkit detector the report pits against every peer."""
    return ODDKIT_DEFAULT if ODDKIT_DEFAULT in names else "oddkit-AutoEncoder"
