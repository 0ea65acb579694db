"""The demo: cancer detection on the Wisconsin diagnostic breast-cancer data.

Every detector learns from part of the benign cases only, a threshold is chosen on a labelled dev
split for a stated goal, and each detector is then judged on a test split it has never seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from oddkit.data.datasets import load_breast_cancer
from oddkit.detectors import (
    AutoEncoderDetector,
    BaseDetector,
    GaussianDetector,
    IsolationForestDetector,
    KNNDetector,
    OneClassSVMDetector,
    PCADetector,
)
from oddkit.metrics import evaluate
from oddkit.report.plots import plot_curves
from oddkit.threshold import choose_threshold


def demo_detectors(random_state: int = 0) -> dict[str, BaseDetector]:
    """Every detector with its library defaults (only seeded and silenced)."""
    return {
        "autoencoder": AutoEncoderDetector(random_state=random_state, verbose=0),
        "gaussian": GaussianDetector(),
        "pca": PCADetector(),
        "ocsvm": OneClassSVMDetector(),
        "iforest": IsolationForestDetector(random_state=random_state),
        "knn": KNNDetector(),
    }


@dataclass
class Split:
    train: pd.DataFrame
    dev: pd.DataFrame
    y_dev: np.ndarray
    test: pd.DataFrame
    y_test: np.ndarray


def split_breast_cancer(random_state: int = 0) -> Split:
    """Benign cases: 60% train, 20% dev, 20% test. Malignant cases: half dev, half test — never train."""
    X, y = load_breast_cancer()
    rng = np.random.default_rng(random_state)
    benign, malignant = rng.permutation(np.flatnonzero(y == 0)), rng.permutation(np.flatnonzero(y == 1))
    n_train, n_dev = int(0.6 * len(benign)), int(0.2 * len(benign))
    half = len(malignant) // 2
    dev = np.concatenate([benign[n_train:n_train + n_dev], malignant[:half]])
    test = np.concatenate([benign[n_train + n_dev:], malignant[half:]])
    return Split(X.iloc[benign[:n_train]], X.iloc[dev], y[dev], X.iloc[test], y[test])


def run_demo(out_dir="oddkit-demo", goal: str = "recall:0.95", random_state: int = 0) -> tuple[pd.DataFrame, dict]:
    """Train, threshold on dev, evaluate on test; write the model, a table and ROC/PR plots.

    Returns the test table (one row per detector) and the paths written.
    """
    out_dir = Path(out_dir)
    split = split_breast_cancer(random_state)
    rows, curves, thresholds = [], {}, {}
    detectors = demo_detectors(random_state)
    for name, detector in detectors.items():
        detector.fit(split.train)
        detector.set_threshold(choose_threshold(detector.decision_function(split.dev), split.y_dev, goal))
        test_scores = detector.decision_function(split.test)
        report = evaluate(split.y_test, test_scores, threshold=detector.threshold_)
        rows.append({"detector": name, **{k: report.to_dict()[k] for k in
                     ("roc_auc", "pr_auc", "precision", "recall", "f1", "fpr")}})
        curves[name], thresholds[name] = (split.y_test, test_scores), detector.threshold_
    table = pd.DataFrame(rows).set_index("detector")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: path for name, path in plot_curves(curves, out_dir, thresholds=thresholds).items()}
    paths["table"] = out_dir / "test_metrics.csv"
    table.to_csv(paths["table"])
    paths["model"] = out_dir / "autoencoder-model"
    detectors["autoencoder"].save(paths["model"])
    return table, paths
