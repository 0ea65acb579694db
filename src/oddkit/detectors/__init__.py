"""The estimators users call. Every one follows scikit-learn's estimator contract with the
anomaly-detection score convention: ``decision_function`` higher = more anomalous, ``predict``
1 = anomaly.

Each class is imported on first use (PEP 562), so that loading a model imports only its own
detector's module: a Gaussian, a PCA or the default on a table never import torch.
"""

from __future__ import annotations

import importlib

from oddkit.detectors.base import BUILT_IN_DETECTORS, DETECTORS, BaseDetector

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
