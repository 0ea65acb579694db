"""The estimators users call. Every one follows scikit-learn's estimator contract with the
anomaly-detection score convention: ``decision_function`` higher = more anomalous, ``predict``
1 = anomaly.

Each class is imported on first use (PEP 562), so that loading a model imports only its own
detector's module: a Gaussian, a PCA or the default on a table never import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from oddkit.detectors.base import BUILT_IN_DETECTORS, DETECTORS, BaseDetector

if TYPE_CHECKING:  # for type checkers and the API reference; at run time __getattr__ imports on first use
    from oddkit.detectors.autoencoder import AutoEncoderDetector
    from oddkit.detectors.classic import IsolationForestDetector, OneClassSVMDetector
    from oddkit.detectors.classifier import ClassifierConfidenceDetector
    from oddkit.detectors.disentangle import DisentangledAutoEncoderDetector
    from oddkit.detectors.ensemble import EnsembleDetector, default_detector
    from oddkit.detectors.gaussian import GaussianDetector
    from oddkit.detectors.gradients import GradientKNNDetector
    from oddkit.detectors.knn import KNNDetector
    from oddkit.detectors.lof import LOFDetector
    from oddkit.detectors.pca import PCADetector
    from oddkit.detectors.readable import TextSummaryAutoEncoder, TreeAutoEncoder
    from oddkit.detectors.text import TextAutoEncoderDetector
    from oddkit.detectors.transforms import TransformationDetector
    from oddkit.detectors.vae import VAEDetector
    from oddkit.detectors.voice import VoiceConversion
    from oddkit.detectors.vqvae import VQVAEDetector

_LAZY = {**{name: f"oddkit.detectors.{module}" for name, module in BUILT_IN_DETECTORS.items()},
         "default_detector": "oddkit.detectors.ensemble"}

__all__ = sorted(["DETECTORS", "BaseDetector", *_LAZY])


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oddkit.detectors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
