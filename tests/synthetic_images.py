"""Tiny synthetic image sets for the image tests: normal images show a horizontal bar, anomalies a
vertical one (same brightness, different pattern), with a little pixel noise, as uint8."""

from __future__ import annotations

import numpy as np


def bar_images(n: int, vertical: bool = False, size: int = 28, channels: int | None = None,
               seed: int = 0) -> np.ndarray:
    """``n`` images ``(n, size, size)`` (or ``(n, channels, size, size)``) of uint8 with one bar each."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, size, size), dtype=np.float32)
    lo, hi = size // 7, size - size // 7
    for i in range(n):
        at = rng.integers(lo + 2, hi - 2)
        if vertical:
            X[i, lo:hi, at - 2:at + 2] = 1.0
        else:
            X[i, at - 2:at + 2, lo:hi] = 1.0
    X = np.clip(X + rng.normal(0.0, 0.05, X.shape), 0.0, 1.0)
    X = (X * 255).round().astype(np.uint8)
    if channels is not None:
        X = np.repeat(X[:, None], channels, axis=1)
    return X


def bar_split(n_train: int = 200, n_test: int = 40, **kwargs):
    """Training images (horizontal bars), test images (half horizontal, half vertical) and the test
    labels (1 = vertical = anomaly)."""
    train = bar_images(n_train, seed=1, **kwargs)
    test = np.concatenate([bar_images(n_test, seed=2, **kwargs), bar_images(n_test, vertical=True, seed=3, **kwargs)])
    y = np.r_[np.zeros(n_test, dtype=int), np.ones(n_test, dtype=int)]
    return train, test, y
