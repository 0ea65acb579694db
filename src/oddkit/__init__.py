"""oddkit: learn what normal data looks like, score new data (higher = more anomalous), choose a
threshold on a dev set, and evaluate honestly."""

__version__ = "0.1.0"

from oddkit.detectors import (  # noqa: E402
    AutoEncoderDetector,
    BaseDetector,
    ClassifierConfidenceDetector,
    DisentangledAutoEncoderDetector,
    EnsembleDetector,
    GaussianDetector,
    IsolationForestDetector,
    KNNDetector,
    OneClassSVMDetector,
    PCADetector,
    TransformationDetector,
    VAEDetector,
    VQVAEDetector,
    default_detector,
)
from oddkit.persist import load  # noqa: E402

__all__ = [
    "AutoEncoderDetector",
    "BaseDetector",
    "ClassifierConfidenceDetector",
    "DisentangledAutoEncoderDetector",
    "EnsembleDetector",
    "GaussianDetector",
    "IsolationForestDetector",
    "KNNDetector",
    "OneClassSVMDetector",
    "PCADetector",
    "TransformationDetector",
    "VAEDetector",
    "VQVAEDetector",
    "__version__",
    "default_detector",
    "load",
]
