"""The estimators users call. Every one follows scikit-learn's estimator contract with the
anomaly-detection score convention: ``decision_function`` higher = more anomalous, ``predict``
1 = anomaly."""

from oddkit.detectors.autoencoder import AutoEncoderDetector
from oddkit.detectors.base import DETECTORS, BaseDetector
from oddkit.detectors.ensemble import EnsembleDetector, default_detector
from oddkit.detectors.classic import IsolationForestDetector, OneClassSVMDetector
from oddkit.detectors.classifier import ClassifierConfidenceDetector
from oddkit.detectors.disentangle import DisentangledAutoEncoderDetector
from oddkit.detectors.gaussian import GaussianDetector
from oddkit.detectors.gradients import GradientKNNDetector
from oddkit.detectors.knn import KNNDetector
from oddkit.detectors.lof import LOFDetector
from oddkit.detectors.pca import PCADetector
from oddkit.detectors.readable import TextSummaryAutoEncoder, TreeAutoEncoder
from oddkit.detectors.text import TextAutoEncoderDetector
from oddkit.detectors.transforms import TransformationDetector
from oddkit.detectors.vae import VAEDetector
from oddkit.detectors.vqvae import VQVAEDetector
from oddkit.detectors.voice import VoiceConversion

__all__ = [
    "DETECTORS",
    "AutoEncoderDetector",
    "BaseDetector",
    "ClassifierConfidenceDetector",
    "DisentangledAutoEncoderDetector",
    "EnsembleDetector",
    "GaussianDetector",
    "GradientKNNDetector",
    "IsolationForestDetector",
    "KNNDetector",
    "LOFDetector",
    "OneClassSVMDetector",
    "PCADetector",
    "TextAutoEncoderDetector",
    "TextSummaryAutoEncoder",
    "TransformationDetector",
    "TreeAutoEncoder",
    "VAEDetector",
    "VQVAEDetector",
    "VoiceConversion",
    "default_detector",
]
