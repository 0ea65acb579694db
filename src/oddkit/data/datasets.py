"""Real datasets that need no download: what the demo and the always-on tests use."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

SHARED_DATA = Path(os.environ.get("ODDKIT_SHARED_DATA",
                                  Path(__file__).resolve().parents[3].parent / "shared" / "data"))
"""Where the team's shared datasets live: ``../shared/data`` beside a checkout unless the environment
variable ``ODDKIT_SHARED_DATA`` says otherwise. It may be absent."""


def load_breast_cancer() -> tuple[pd.DataFrame, np.ndarray]:
    """The Wisconsin diagnostic breast-cancer data that ships inside scikit-learn.

    569 fine-needle aspirates described by 30 numeric features of their cell nuclei; 212 are
    malignant. Returns the features as a DataFrame and ``y`` with 1 = malignant (the anomaly) and
    0 = benign, oddkit's label convention (scikit-learn's own target is the other way round).
    """
    from sklearn.datasets import load_breast_cancer as sklearn_loader

    bunch = sklearn_loader(as_frame=True)
    return bunch.data, (bunch.target.to_numpy() == 0).astype(np.int8)


def shared_dataset_path(name: str) -> Path | None:
    """``../shared/data/<name>.npz`` beside the checkout, or None when it is not there."""
    path = SHARED_DATA / f"{name}.npz"
    return path if path.is_file() else None
