"""oddkit: learn what normal data looks like, score new data (higher = more anomalous), choose a
threshold on a dev set, and evaluate honestly.

The public names below are imported on first use (PEP 562), so ``import oddkit`` and the command
line start without importing torch, scikit-learn or pandas.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "AutoEncoderDetector": "oddkit.detectors",
    "BaseDetector": "oddkit.detectors",
    "ClassifierConfidenceDetector": "oddkit.detectors",
    "DisentangledAutoEncoderDetector": "oddkit.detectors",
    "EnsembleDetector": "oddkit.detectors",
    "GaussianDetector": "oddkit.detectors",
    "GradientKNNDetector": "oddkit.detectors",
    "IsolationForestDetector": "oddkit.detectors",
    "KNNDetector": "oddkit.detectors",
    "LOFDetector": "oddkit.detectors",
    "OneClassSVMDetector": "oddkit.detectors",
    "PCADetector": "oddkit.detectors",
    "PseudoAnomalies": "oddkit.detectors.pseudo",
    "TextAutoEncoderDetector": "oddkit.detectors",
    "TextSummaryAutoEncoder": "oddkit.detectors",
    "TransformationDetector": "oddkit.detectors",
    "TreeAutoEncoder": "oddkit.detectors",
    "VAEDetector": "oddkit.detectors",
    "VQVAEDetector": "oddkit.detectors",
    "VoiceConversion": "oddkit.detectors",
    "default_detector": "oddkit.detectors",
    "load": "oddkit.persist",
}
"""Public name -> the module that defines it, imported when the name is first used."""

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oddkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
