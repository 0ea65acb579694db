"""Which datasets the tabular benchmark uses, and the one place that decides every split.

Keeping the splits here guarantees that oddkit's detectors and the peers are fitted and scored on
identical rows for a given (dataset, seed, protocol); only the scaling differs, on purpose:
oddkit's detectors take raw features (they standardise internally, as a user would call them),
the peers get features standardised with the fit rows' mean and standard deviation (PyOD's
detectors mostly expect scaled inputs and several do not scale themselves).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_runtime import REPO_ROOT
from sklearn.model_selection import train_test_split

DATA_DIR = REPO_ROOT.parent / "shared" / "data"

EXCLUDED = {
    "nslkdd": "carries its own official train/test split and 57% attacks: not a one-class task",
    "embed_mvtec_ad_resnet18": "15 stacked categories that must be evaluated one category at a time",
}
"""Tabular files left out, and why. Image sets carry ``labels`` instead of ``y`` and so are
skipped by :func:`list_datasets` without being listed here."""

MAX_ROWS = 10_000
"""Larger datasets are cut to a stratified random subsample of this many rows (seeded by the
seed) so that the quadratic peers (KNN, LOF, OCSVM) keep a full run within hours."""

SUBSAMPLED_NOTE = f"(subsampled to {MAX_ROWS:,})"

TEST_SIZE = 0.3

PROTOCOLS = ("clean", "contaminated")
"""clean: fit on the normal rows of the 70% training split (one-class / novelty detection);
contaminated: fit on the whole 70%, anomalies included, without labels (outlier detection).
Both score the same 30% test split."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    path: Path
    n_rows: int
    n_features: int
    anomaly_rate: float

    @property
    def subsampled(self) -> bool:
        return self.n_rows > MAX_ROWS

    @property
    def n_used(self) -> int:
        """Rows the benchmark uses: the subsample size for large datasets."""
        return min(self.n_rows, MAX_ROWS)

    def n_fit(self, protocol: str) -> int:
        """About how many rows a detector is fitted on under ``protocol`` (for time estimates)."""
        n_train = self.n_used * (1 - TEST_SIZE)
        return round(n_train * (1 - self.anomaly_rate) if protocol == "clean" else n_train)


@dataclass(frozen=True)
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def fit_rows(self, protocol: str) -> np.ndarray:
        """The training rows a detector sees under ``protocol`` (never their labels)."""
        if protocol == "clean":
            return self.X_train[self.y_train == 0]
        if protocol == "contaminated":
            return self.X_train
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def list_datasets(data_dir: Path = DATA_DIR) -> list[DatasetInfo]:
    """Every ``.npz`` in ``data_dir`` with a 2-D ``X`` and a ``y``, minus :data:`EXCLUDED`."""
    if not data_dir.is_dir():
        raise SystemExit(f"no data folder at {data_dir} (expected the team's shared/data beside the repository)")
    found = []
    for path in sorted(data_dir.glob("*.npz")):
        if path.stem in EXCLUDED:
            continue
        with np.load(path) as archive:
            if "X" not in archive.files or "y" not in archive.files:
                continue
            X, y = archive["X"], archive["y"]
        if X.ndim != 2:
            continue
        found.append(DatasetInfo(path.stem, path, X.shape[0], X.shape[1], float(np.mean(y == 1))))
    return found


def make_split(info: DatasetInfo, seed: int) -> Split:
    """The stratified 70/30 split of ``info`` for ``seed``, after the stratified subsample."""
    with np.load(info.path) as archive:
        X, y = archive["X"], archive["y"].astype(np.int64)
    if len(y) > MAX_ROWS:
        X, _, y, _ = train_test_split(X, y, train_size=MAX_ROWS, stratify=y, random_state=seed)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=TEST_SIZE, stratify=y, random_state=seed)
    return Split(X_train, y_train, X_test, y_test)


def standardise(X_fit: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both matrices scaled with the fit rows' mean and standard deviation (zero std -> 1)."""
    X_fit = np.asarray(X_fit, dtype=np.float64)
    mean, std = X_fit.mean(axis=0), X_fit.std(axis=0)
    std[std == 0] = 1.0
    return (X_fit - mean) / std, (np.asarray(X_test, dtype=np.float64) - mean) / std
