"""Column types are decided on purpose: a numeric column with a few stray cells, a column of dates
and an identifier column are refused with the fix; ``column_types`` opts in, and is saved."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from conftest import run_cli
from oddkit import (
    EnsembleDetector,
    GaussianDetector,
    KNNDetector,
    LOFDetector,
    OneClassSVMDetector,
    PCADetector,
    load,
)
from oddkit.data import TablePreprocessor
from oddkit.detectors import DETECTORS
from oddkit.data.io import ID_MIN_ROWS, read_table
from oddkit.exceptions import DataError, NonFiniteError, ParameterError, UnseenCategoryError

FAST_TABLE = [GaussianDetector, KNNDetector, LOFDetector, PCADetector, OneClassSVMDetector]


def _amounts(n: int = 200, stray_row: int | None = 17, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"amount": rng.normal(100, 10, n), "other": rng.normal(size=n)})
    if stray_row is not None:
        frame["amount"] = frame["amount"].astype(object)
        frame.loc[stray_row, "amount"] = "12.5 EUR"
    return frame


# -- numeric but for a few cells ----------------------------------------------------------------

@pytest.mark.parametrize("cls", FAST_TABLE)
def test_a_stray_string_in_a_numeric_column_is_an_error_naming_it(cls):
    with pytest.raises(DataError) as caught:
        cls().fit(_amounts())
    message = str(caught.value)
    assert "'amount'" in message and "17" in message and "'12.5 EUR'" in message
    assert "column_types={'amount': 'numeric'}" in message and "\n" not in message


def test_the_same_from_a_csv_file(tmp_path):
    path = tmp_path / "rows.csv"
    _amounts().to_csv(path, index=False)
    table = read_table(path)
    with pytest.raises(DataError, match=r"'amount' is numeric but 1 cell\(s\) are not numbers, at row\(s\) 17 "):
        GaussianDetector().fit(table.X)


def test_numeric_opt_in_treats_stray_cells_as_missing_and_scores_clean_rows():
    detector = GaussianDetector(column_types={"amount": "numeric"}, impute="median").fit(_amounts())
    assert detector.preprocessor_.kinds_ == ["numeric", "numeric"]
    assert detector.preprocessor_.n_outputs_ == 2
    clean = _amounts(n=20, stray_row=None, seed=1)
    assert np.isfinite(detector.decision_function(clean)).all()  # used to be an UnseenCategoryError
    stray = _amounts(n=20, stray_row=3, seed=1)
    assert np.isfinite(detector.decision_function(stray)).all()


def test_numeric_opt_in_without_impute_says_the_cells_are_missing():
    with pytest.raises(NonFiniteError, match=r"'amount'.*not numbers.*first rows: 17"):
        GaussianDetector(column_types={"amount": "numeric"}).fit(_amounts())


def test_a_stray_string_at_scoring_time_names_rows_and_values():
    detector = GaussianDetector().fit(_amounts(stray_row=None))
    batch = _amounts(n=30, stray_row=None, seed=2)
    batch["amount"] = batch["amount"].astype(object)
    batch.loc[[4, 9], "amount"] = ["n/a?", "12,5"]
    expected = r"'amount' is numeric in training but 2 cell\(s\).*4 \('n/a\?'\), 9 \('12,5'\)"
    with pytest.raises(DataError, match=expected):
        detector.decision_function(batch)


def test_numbers_of_several_python_types_stay_numeric():
    frame = _amounts(n=50, stray_row=None)
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[3, "amount"] = True
    frame.loc[4, "amount"] = 7
    assert TablePreprocessor().fit(frame).kinds_ == ["numeric", "numeric"]


def test_mostly_text_with_a_few_numbers_is_categorical():
    frame = pd.DataFrame({"shop": ["a", "b", "c", "1"] * 10, "x": np.arange(40.0)})
    assert TablePreprocessor().fit(frame).kinds_ == ["categorical", "numeric"]


# -- identifiers and dates ------------------------------------------------------------------------

def test_an_identifier_column_is_refused_with_the_fix():
    n = ID_MIN_ROWS
    frame = pd.DataFrame({"user": [f"u{i:04d}" for i in range(n)], "x": np.arange(float(n))})
    expected = r"'user' looks like an identifier.*id_cols.*column_types=\{'user': 'categorical'\}"
    with pytest.raises(DataError, match=expected):
        GaussianDetector().fit(frame)
    pre = TablePreprocessor(column_types={"user": "categorical"}).fit(frame)
    assert pre.kinds_ == ["categorical", "numeric"] and len(pre.categories_["user"]) == n


def test_a_small_table_of_distinct_values_is_not_refused():
    frame = pd.DataFrame({"city": [f"c{i}" for i in range(ID_MIN_ROWS - 1)], "x": np.arange(ID_MIN_ROWS - 1.0)})
    assert TablePreprocessor().fit(frame).kinds_ == ["categorical", "numeric"]


@pytest.mark.parametrize("dates", [
    pd.date_range("2024-01-01", periods=40, freq="D").strftime("%Y-%m-%d"),
    pd.date_range("2024-01-01", periods=40, freq="h").strftime("%d/%m/%Y %H:%M"),
    pd.Series(pd.date_range("2024-01-01", periods=40, freq="D").strftime("%Y-%m-%d")).where(
        np.arange(40) % 10 != 0),  # a few missing
])
def test_text_dates_are_refused(dates):
    frame = pd.DataFrame({"when": list(dates), "x": np.arange(40.0)})
    with pytest.raises(DataError, match=r"'when' holds dates.*column_types=\{'when': 'categorical'\}"):
        GaussianDetector().fit(frame)


@pytest.mark.parametrize("values", [
    pd.date_range("2024-01-01", periods=10), pd.date_range("2024-01-01", periods=10, tz="UTC"),
    pd.timedelta_range("1D", periods=10)])
def test_date_dtypes_are_refused_and_categorical_opt_in_encodes_them(values):
    frame = pd.DataFrame({"when": values, "x": np.arange(10.0)})
    with pytest.raises(DataError, match=r"'when' has dtype .*column_types=\{'when': 'categorical'\}"):
        KNNDetector().fit(frame)
    detector = KNNDetector(n_neighbors=2, column_types={"when": "categorical"}).fit(frame)
    assert detector.preprocessor_.kinds_ == ["categorical", "numeric"]
    assert np.isfinite(detector.decision_function(frame)).all()


def test_numeric_categories_are_one_hot_when_declared():
    frame = pd.DataFrame({"zip": np.tile([1001.0, 2002.0, 3003.0], 10), "x": np.arange(30.0)})
    pre = TablePreprocessor(column_types={"zip": "categorical"}).fit(frame)
    assert pre.output_names_ == ["zip=1001", "zip=2002", "zip=3003", "x"]
    with pytest.raises(UnseenCategoryError):
        pre.transform(frame.assign(zip=4004.0))


# -- validating the option ----------------------------------------------------------------------------

@pytest.mark.parametrize("column_types, message", [
    ({"nope": "numeric"}, r"column_types names column\(s\) 'nope' that X does not have"),
    ({"amount": "float"}, r"column_types\['amount'\] must be 'numeric' or 'categorical', got 'float'"),
    ({3: "numeric"}, r"column_types keys must be column names"),
])
def test_bad_column_types_are_clear_errors(column_types, message):
    with pytest.raises(DataError, match=message):
        GaussianDetector(column_types=column_types).fit(_amounts(stray_row=None))
    with pytest.raises(DataError, match=message.split(" that")[0]):
        TablePreprocessor(column_types=column_types).fit(_amounts(stray_row=None))


def test_column_types_that_is_not_a_dict_is_refused():
    # A detector checks the parameter's type with the other parameters, before reading any data.
    with pytest.raises(ParameterError, match=r"GaussianDetector: column_types must be .*dict.* got \['amount'\]"):
        GaussianDetector(column_types=["amount"]).fit(None)
    with pytest.raises(DataError, match=r"column_types must be None or a dict"):
        TablePreprocessor(column_types=["amount"]).fit(_amounts(stray_row=None))


def test_column_types_on_an_array_uses_the_default_names():
    X = np.c_[np.tile([1.0, 2.0, 3.0], 10), np.arange(30.0)]
    pre = TablePreprocessor(column_types={"x0": "categorical"}).fit(X)
    assert pre.output_names_ == ["x0=1", "x0=2", "x0=3", "x1"]
    assert pre.transform(X).shape == (30, 4)


def test_every_table_detector_takes_column_types_next_to_unknown_categories():
    value = {"amount": "numeric"}
    for name, cls in DETECTORS.items():
        names = list(inspect.signature(cls.__init__).parameters)
        if "unknown_categories" not in names:  # TransformationDetector learns from images only
            continue
        assert names[names.index("unknown_categories") + 1] == "column_types", name
        detector = cls(column_types=value)
        assert detector.get_params()["column_types"] is value, name
        assert clone(detector).get_params()["column_types"] == value, name
        assert "column_types" in (cls.__doc__ or ""), name


def test_the_ensemble_applies_column_types_for_all_its_members():
    detector = EnsembleDetector(members=("knn", "gaussian"), column_types={"amount": "numeric"},
                                impute="median").fit(_amounts())
    assert detector.preprocessor_.kinds_ == ["numeric", "numeric"]
    assert np.isfinite(detector.decision_function(_amounts(n=10, stray_row=2, seed=3))).all()


# -- saving -----------------------------------------------------------------------------------------

def test_column_types_and_kinds_are_saved_with_the_model(tmp_path):
    detector = GaussianDetector(column_types={"amount": "numeric"}, impute="median").fit(_amounts())
    detector.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded.column_types == {"amount": "numeric"}
    assert loaded.preprocessor_.column_types == {"amount": "numeric"}
    assert loaded.preprocessor_.kinds_ == ["numeric", "numeric"]
    rows = _amounts(n=10, stray_row=2, seed=4)
    np.testing.assert_array_equal(loaded.decision_function(rows), detector.decision_function(rows))


def test_preprocessing_state_written_before_column_types_still_loads():
    pre = TablePreprocessor(impute="median").fit(_amounts(stray_row=None).assign(shop=["a", "b"] * 100))
    arrays, meta = pre.get_state()
    assert meta["version"] == 2 and meta["column_types"] is None
    old = {k: v for k, v in meta.items() if k != "column_types"} | {"version": 1}
    restored = TablePreprocessor.from_state(arrays, old)
    assert restored.column_types is None and restored.kinds_ == pre.kinds_
    frame = _amounts(n=5, stray_row=None, seed=5).assign(shop="a")
    np.testing.assert_array_equal(restored.transform(frame), pre.transform(frame))


def test_a_state_whose_column_types_contradict_its_kinds_is_refused():
    from oddkit.exceptions import ModelFileError

    pre = TablePreprocessor(column_types={"amount": "numeric"}, impute="median").fit(_amounts())
    arrays, meta = pre.get_state()
    with pytest.raises(ModelFileError, match="column_types"):
        TablePreprocessor.from_state(arrays, meta | {"column_types": {"amount": "categorical"}})
    with pytest.raises(ModelFileError, match="column_types"):
        TablePreprocessor.from_state(arrays, meta | {"column_types": {"amount": "text"}})


# -- the command line -------------------------------------------------------------------------------

def test_cli_refuses_the_stray_cell_then_accepts_it_with_column_type(tmp_path, monkeypatch, capsys):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    _amounts().to_csv(train, index=False)
    _amounts(n=30, stray_row=None, seed=6).to_csv(test, index=False)
    model = tmp_path / "model"
    code, out, err = run_cli(monkeypatch, capsys, "fit", train, "--detector", "gaussian", "--out", model)
    assert code != 0 and "'amount'" in err + out and "--column-type amount=numeric" in err + out
    assert "Traceback" not in err + out
    code, out, err = run_cli(monkeypatch, capsys, "fit", train, "--detector", "gaussian", "--out", model,
                             "--column-type", "amount=numeric", "--impute", "median")
    assert code == 0, err
    assert load(model).column_types == {"amount": "numeric"}
    code, out, err = run_cli(monkeypatch, capsys, "score", model, test, "--out", tmp_path / "scores.csv")
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "scores.csv")) == 30


@pytest.mark.parametrize("option", ["amount", "amount=float", "=numeric"])
def test_cli_rejects_a_malformed_column_type(tmp_path, monkeypatch, capsys, option):
    train = tmp_path / "train.csv"
    _amounts(stray_row=None).to_csv(train, index=False)
    code, out, err = run_cli(monkeypatch, capsys, "fit", train, "--detector", "gaussian", "--out",
                             tmp_path / "m", "--column-type", option)
    assert code != 0 and "--column-type" in err + out and "Traceback" not in err + out
