"""Edge cases of the input a detector takes: each ends in oddkit's documented error, or works."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import oddkit
from oddkit.exceptions import ColumnMismatchError, DataError, OddkitError, ParameterError

RNG = np.random.default_rng(0)


def test_frames_with_labels_that_are_not_strings_keep_their_text_columns_and_their_order():
    frame = pd.DataFrame({0: RNG.normal(size=60), 1: RNG.choice(["web", "shop"], 60)})  # pd.read_csv(header=None)
    detector = oddkit.GaussianDetector().fit(frame)
    assert list(detector.feature_names_in_) == ["0", "1"]
    assert np.isfinite(detector.decision_function(frame)).all()
    numbers = pd.DataFrame(RNG.normal(size=(60, 3)) * [1, 10, 100])
    fitted = oddkit.GaussianDetector().fit(numbers)
    with pytest.raises(ColumnMismatchError):
        fitted.decision_function(numbers[[2, 1, 0]])


def test_an_object_array_of_the_training_columns_is_scored_like_the_frame():
    named = pd.DataFrame({"amount": RNG.normal(size=60), "channel": RNG.choice(["web", "shop"], 60)})
    detector = oddkit.GaussianDetector().fit(named)
    assert np.array_equal(detector.decision_function(named.to_numpy()), detector.decision_function(named))


@pytest.mark.parametrize("cells", [[[1, 2]] * 30, [{"a": 1}] * 30, [10**400] * 30], ids=["lists", "dicts", "400 digits"])
def test_cells_that_hold_no_single_value_are_a_data_error(cells):
    frame = pd.DataFrame({"x": RNG.normal(size=30), "y": pd.Series(cells, dtype=object)})
    with pytest.raises(DataError, match="cell|NaN/inf"):  # an integer beyond float64 is an infinite value
        oddkit.KNNDetector().fit(frame)
    fitted = oddkit.KNNDetector().fit(frame.assign(y=RNG.normal(size=30)))
    with pytest.raises(DataError):
        fitted.decision_function(frame)


def test_date_arrays_are_refused_as_date_columns_are():
    dates = np.arange("2026-01-01", "2026-03-01", dtype="datetime64[D]").reshape(-1, 1)
    with pytest.raises(DataError, match="dates or times"):
        oddkit.KNNDetector().fit(dates)


@pytest.mark.parametrize("make", [
    lambda: oddkit.OneClassSVMDetector(nu=1.0),
    lambda: oddkit.KNNDetector(n_jobs=0),
    lambda: oddkit.LOFDetector(n_jobs=0),
    lambda: oddkit.IsolationForestDetector(max_features=4),
    lambda: oddkit.IsolationForestDetector(max_samples=0.01),
])
def test_parameters_the_data_cannot_take_are_a_parameter_error(make):
    with pytest.raises(ParameterError):
        make().fit(RNG.normal(size=(60, 3)))


@pytest.mark.parametrize("make", [
    lambda: oddkit.AutoEncoderDetector(lr=1e12, epochs=2, random_state=0, verbose=0),
    lambda: oddkit.VQVAEDetector(lr=1e6, epochs=2, random_state=0, verbose=0),
])
def test_diverged_training_is_the_documented_data_error(make):
    with pytest.raises(DataError, match="training diverged"):
        make().fit(RNG.normal(size=(60, 3)))


def test_a_device_the_machine_lacks_is_an_oddkit_error():
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(OddkitError, match="MPS is not available"):
        oddkit.AutoEncoderDetector(device="mps", epochs=1, verbose=0).fit(RNG.normal(size=(20, 3)))


def test_one_column_pca_saves_and_loads_and_iforest_explains_it(tmp_path):
    X = RNG.normal(size=(50, 1))
    pca = oddkit.PCADetector().fit(X)
    pca.save(tmp_path / "pca")
    assert np.array_equal(oddkit.load(tmp_path / "pca").decision_function(X), pca.decision_function(X))
    pytest.importorskip("shap")
    shares = oddkit.IsolationForestDetector(n_estimators=20, random_state=0).fit(X).explain(X[:3])
    assert shares.shape == (3, 1) and np.isfinite(shares.to_numpy()).all()


@pytest.mark.parametrize("unit", [1e-170, 1e-300])
def test_a_column_of_tiny_values_keeps_its_spread(unit):
    signal = RNG.normal(size=200)
    X = np.c_[signal * unit, RNG.normal(size=200)]
    detector = oddkit.GaussianDetector().fit(X)
    assert detector.preprocessor_.scale_[0] == pytest.approx(signal.std() * unit, rel=1e-9)
    assert detector.predict(np.array([[8 * signal.std() * unit, 0.0]]))[0] == 1  # 8 sd out in that column
