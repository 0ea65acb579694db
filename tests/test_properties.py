"""Property-based tests (hypothesis): small random tables with bad cells injected at random places
(NaN, +-inf, 1e300, -1e300, 1e-300, strings, None, booleans, numbers of other types) go through every
public table detector, at fit and at score time. The only outcomes allowed: an oddkit error whose
message names a column or a row of a bad cell, or finite scores.

Settings are small (few epochs, tiny networks, few examples) so the file runs in well under a minute;
the score-time part reuses detectors fitted once.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oddkit import (
    AutoEncoderDetector,
    ClassifierConfidenceDetector,
    DisentangledAutoEncoderDetector,
    EnsembleDetector,
    GaussianDetector,
    IsolationForestDetector,
    KNNDetector,
    LOFDetector,
    OneClassSVMDetector,
    PCADetector,
    VAEDetector,
    VQVAEDetector,
)
from oddkit.exceptions import OddkitError

N_ROWS = 60
NUMERIC = ["alpha", "beta", "gamma"]
COLUMNS = [*NUMERIC, "shop"]
FAST = {"epochs": 2, "random_state": 0, "verbose": 0}
FACTORIES = {
    "autoencoder": lambda **kw: AutoEncoderDetector(hidden_sizes=(4,), latent_dim=2, **FAST, **kw),
    "vae": lambda **kw: VAEDetector(hidden_sizes=(4,), latent_dim=2, **FAST, **kw),
    "vqvae": lambda **kw: VQVAEDetector(hidden_sizes=(4,), codebook_size=4, **FAST, **kw),
    "classifier": lambda **kw: ClassifierConfidenceDetector(hidden_sizes=(4,), n_estimators=1, **FAST, **kw),
    "disentangled": lambda **kw: DisentangledAutoEncoderDetector(hidden_sizes=(4,), latent_dim=3, **FAST, **kw),
    "gaussian": lambda **kw: GaussianDetector(**kw),
    "pca": lambda **kw: PCADetector(**kw),
    "ocsvm": lambda **kw: OneClassSVMDetector(**kw),
    "iforest": lambda **kw: IsolationForestDetector(n_estimators=20, random_state=0, **kw),
    "knn": lambda **kw: KNNDetector(**kw),
    "lof": lambda **kw: LOFDetector(**kw),
    # The default ensemble's members, but the cheap ones: test_extreme_values runs default_detector().
    "ensemble": lambda **kw: EnsembleDetector(members=("knn1", "gaussian-robust", "iforest"), random_state=0, **kw),
}
WITH_CLASSES = {"classifier", "disentangled"}

BAD_CELLS = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e30, 1e-300, "abc", "12.5 EUR", "", "3.5", None,
             True, False, 7, np.float32(2.5), pd.NA]


def _clean_table(seed: int, n: int = N_ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(NUMERIC))), columns=NUMERIC)
    frame["shop"] = rng.choice(["web", "store", "phone"], n)
    return frame


def _classes(n: int) -> np.ndarray:
    return np.arange(n) % 2


def _fit(name: str, X: pd.DataFrame, **params):
    detector = FACTORIES[name](**params)
    if name in WITH_CLASSES:
        return detector.fit(X, _classes(len(X)))
    return detector.fit(X)


def _inject(frame: pd.DataFrame, cells: list[tuple[int, int, object]]) -> pd.DataFrame:
    frame = frame.copy()
    for row, column, value in cells:
        name = COLUMNS[column]
        if frame[name].dtype != object:
            frame[name] = frame[name].astype(object)
        frame.iat[row, column] = value
    return frame


def _names_a_bad_place(message: str, cells: list[tuple[int, int, object]]) -> bool:
    columns = {COLUMNS[c] for _, c, _ in cells}
    if any(f"'{c}'" in message for c in columns):
        return True
    numbers = {int(x) for x in re.findall(r"\d+", message)}
    return "row" in message and any(r in numbers for r, _, _ in cells)


def _check_outcome(run, cells) -> None:
    """``run()`` returns scores; it may instead raise an OddkitError naming a bad column or row."""
    try:
        with warnings.catch_warnings():
            # the last line of defence (non-finite scores replaced) must never be needed
            warnings.simplefilter("error", RuntimeWarning)
            scores = run()
    except OddkitError as exc:
        assert _names_a_bad_place(str(exc), cells), f"{type(exc).__name__} names no bad cell: {exc}"
        return
    assert np.isfinite(scores).all(), scores


def bad_cells(n_rows: int):
    cell = st.tuples(st.integers(0, n_rows - 1), st.integers(0, len(COLUMNS) - 1), st.sampled_from(BAD_CELLS))
    return st.lists(cell, min_size=1, max_size=6)


FAST_SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FAST_SETTINGS
@given(name=st.sampled_from(sorted(FACTORIES)), cells=bad_cells(N_ROWS), impute=st.sampled_from([None, "median"]),
       seed=st.integers(0, 3))
def test_fit_on_bad_cells_is_a_named_error_or_finite_scores(name, cells, impute, seed):
    X = _inject(_clean_table(seed), cells)

    def run():
        detector = _fit(name, X, impute=impute)
        return np.concatenate([detector.decision_scores_, detector.decision_function(X)])

    _check_outcome(run, cells)


@pytest.fixture(scope="module")
def fitted():
    X = _clean_table(10)
    return {(name, impute): _fit(name, X, impute=impute, unknown_categories=unknown)
            for name in FACTORIES for impute, unknown in ((None, "error"), ("median", "ignore"))}


@FAST_SETTINGS
@given(name=st.sampled_from(sorted(FACTORIES)), impute=st.sampled_from([None, "median"]),
       cells=bad_cells(12), seed=st.integers(0, 3))
def test_scoring_bad_cells_is_a_named_error_or_finite_scores(fitted, name, impute, cells, seed):
    detector = fitted[(name, impute)]
    batch = _inject(_clean_table(20 + seed, n=12), cells)
    _check_outcome(lambda: detector.decision_function(batch), cells)


@FAST_SETTINGS
@given(name=st.sampled_from(sorted(FACTORIES)), row=st.integers(0, 11), column=st.integers(0, len(NUMERIC) - 1),
       value=st.sampled_from([1e300, -1e300, 1e30, -1e30, 1e200, np.finfo(np.float64).max]))
def test_a_far_out_cell_is_the_top_ranked_anomaly(fitted, name, row, column, value):
    detector = fitted[(name, None)]
    batch = _clean_table(30, n=12)
    batch.iat[row, column] = value
    scores = detector.decision_function(batch)
    assert np.isfinite(scores).all()
    assert scores[row] > np.delete(scores, row).max()
    assert detector.predict(batch)[row] == 1
