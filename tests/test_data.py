"""Reading tables (oddkit.data.io) and preprocessing them (oddkit.data.preprocess)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from oddkit.data import Table, TablePreprocessor, iter_table_batches, load_npz, read_table
from oddkit.data.preprocess import STANDARDIZED_BOUND
from oddkit.exceptions import (
    ColumnMismatchError,
    DataError,
    EmptyDataError,
    LabelError,
    ModelFileError,
    NonFiniteError,
    UnseenCategoryError,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    """Numeric, text, label and id columns."""
    rng = np.random.default_rng(0)
    n = 50
    return pd.DataFrame({
        "txn_id": [f"t{i:03d}" for i in range(n)],
        "amount": rng.normal(100, 10, n).round(3),
        "hour": rng.integers(0, 24, n),
        "channel": rng.choice(["web", "shop", "phone"], n),
        "y": (np.arange(n) % 10 == 0).astype(int),
    })


def _write(frame: pd.DataFrame, path) -> None:
    if path.name.endswith((".csv", ".csv.gz")):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


# -- reading ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet", "t.pq"])
def test_tabular_formats_round_trip(tmp_path, frame, name):
    path = tmp_path / name
    _write(frame, path)
    table = read_table(path, id_cols=["txn_id"])
    assert isinstance(table, Table) and table.path == path
    assert list(table.X.columns) == ["amount", "hour", "channel"]
    np.testing.assert_allclose(table.X["amount"].to_numpy(), frame["amount"].to_numpy())
    assert table.X["hour"].tolist() == frame["hour"].tolist()
    assert table.X["channel"].tolist() == frame["channel"].tolist()
    assert table.y.dtype == np.int8 and table.y.tolist() == frame["y"].tolist()
    assert table.ids["txn_id"].tolist() == frame["txn_id"].tolist()


def test_label_column_can_be_named_or_disabled(tmp_path, frame):
    path = tmp_path / "t.csv"
    frame.rename(columns={"y": "is_fraud"}).to_csv(path, index=False)
    auto = read_table(path)
    assert auto.y is None and "is_fraud" in auto.X.columns  # no "y": no labels, the column is a feature
    named = read_table(path, label_col="is_fraud", id_cols="txn_id")
    assert "is_fraud" not in named.X.columns and "txn_id" not in named.X.columns
    assert named.y.sum() == frame["y"].sum()
    none = read_table(tmp_path / "t.csv", label_col=None)
    assert none.y is None and none.ids is None


def test_npy_and_npz(tmp_path):
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    y = np.array([0, 1, 0, 0])
    np.save(tmp_path / "a.npy", X)
    np.savez(tmp_path / "a.npz", X=X, y=y)
    np.savez(tmp_path / "nolabel.npz", X=X)
    np.savez(tmp_path / "other.npz", X=X, target=y.astype(bool))

    npy = read_table(tmp_path / "a.npy", label_col="whatever")  # .npy has no labels: the name is moot
    assert list(npy.X.columns) == ["x0", "x1", "x2"] and npy.y is None
    np.testing.assert_array_equal(npy.X.to_numpy(), X)

    npz = read_table(tmp_path / "a.npz")
    np.testing.assert_array_equal(npz.X.to_numpy(), X)
    assert npz.y.dtype == np.int8 and npz.y.tolist() == [0, 1, 0, 0]
    assert read_table(tmp_path / "a.npz", label_col=None).y is None
    assert read_table(tmp_path / "nolabel.npz").y is None
    assert read_table(tmp_path / "other.npz", label_col="target").y.tolist() == [0, 1, 0, 0]
    with pytest.raises(ColumnMismatchError, match="'label'"):
        read_table(tmp_path / "a.npz", label_col="label")

    X2, y2 = load_npz(tmp_path / "a.npz")
    np.testing.assert_array_equal(X2, X)
    assert y2.tolist() == [0, 1, 0, 0]
    assert load_npz(tmp_path / "nolabel.npz")[1] is None


def test_npz_without_x_and_pickled_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "bad.npz", features=np.ones((3, 2)))
    with pytest.raises(DataError, match="'X'"):
        read_table(tmp_path / "bad.npz")
    np.save(tmp_path / "obj.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy"):
        read_table(tmp_path / "obj.npy")
    np.save(tmp_path / "flat.npy", np.ones(5))
    with pytest.raises(DataError, match="2-D"):
        read_table(tmp_path / "flat.npy")


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(DataError, match="nope.csv"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "t.xlsx").write_text("a\n1\n")
    with pytest.raises(DataError, match=r"\.parquet"):
        read_table(tmp_path / "t.xlsx")
    with pytest.raises(DataError, match="nope.parquet"):
        iter_table_batches(tmp_path / "nope.parquet")  # checked at once, before the first batch


@pytest.mark.parametrize("content", ["", "a,b,y\n"])
def test_empty_csv(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(EmptyDataError, match="empty.csv"):
        read_table(path)
    with pytest.raises(EmptyDataError, match="empty.csv"):
        list(iter_table_batches(path))


def test_empty_parquet_and_no_feature_columns(tmp_path, frame):
    frame.iloc[:0].to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(EmptyDataError, match="empty.parquet"):
        read_table(tmp_path / "empty.parquet")
    with pytest.raises(EmptyDataError, match="empty.parquet"):
        list(iter_table_batches(tmp_path / "empty.parquet"))
    frame[["txn_id", "y"]].to_csv(tmp_path / "ids.csv", index=False)
    with pytest.raises(EmptyDataError, match="no feature columns"):
        read_table(tmp_path / "ids.csv", id_cols=["txn_id"])


def test_named_columns_must_exist(tmp_path, frame):
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ColumnMismatchError, match="'fraud'"):
        read_table(path, label_col="fraud")
    with pytest.raises(ColumnMismatchError, match="'customer'"):
        read_table(path, id_cols=["customer"])
    with pytest.raises(ColumnMismatchError, match="'fraud'"):
        next(iter_table_batches(path, label_col="fraud"))


@pytest.mark.parametrize(("labels", "pattern"), [
    (["yes", "no"], r"'y'.*'yes'.*encode anomalies as 1"),
    ([0, 2], r"'y'.*other than 0 and 1.*\b2\b"),
    ([0.5, 1.0], r"'y'.*0\.5"),
    ([1.0, np.nan], r"'y'.*missing.*first rows: 1"),
])
def test_bad_labels(tmp_path, labels, pattern):
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0, 2.0], "y": labels}).to_csv(path, index=False)
    with pytest.raises(LabelError, match=pattern):
        read_table(path)


def test_bool_and_float_labels_are_accepted(tmp_path):
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [True, False, True]}).to_parquet(tmp_path / "b.parquet")
    assert read_table(tmp_path / "b.parquet").y.tolist() == [1, 0, 1]
    pd.DataFrame({"a": [1.0, 2.0], "y": [0.0, 1.0]}).to_csv(tmp_path / "f.csv", index=False)
    assert read_table(tmp_path / "f.csv").y.tolist() == [0, 1]


def test_require_label(tmp_path):
    pd.DataFrame({"a": [1.0, 2.0]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(LabelError, match="t.csv"):
        read_table(tmp_path / "t.csv", require_label=True)
    np.save(tmp_path / "a.npy", np.ones((2, 2)))
    with pytest.raises(LabelError, match="npz"):
        read_table(tmp_path / "a.npy", require_label=True)


@pytest.mark.parametrize("name", ["t.csv", "t.parquet", "t.npy", "t.npz"])
def test_batches_concatenate_to_the_whole(tmp_path, frame, name):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, frame[["amount", "hour"]].to_numpy())
    elif name.endswith(".npz"):
        np.savez(path, X=frame[["amount", "hour"]].to_numpy(), y=frame["y"].to_numpy())
    else:
        _write(frame, path)
    id_cols = () if name.endswith((".npy", ".npz")) else ("txn_id",)
    whole = read_table(path, id_cols=id_cols)
    batches = list(iter_table_batches(path, batch_rows=7, id_cols=id_cols))
    assert [len(b.X) for b in batches] == [7] * 7 + [1]
    pd.testing.assert_frame_equal(pd.concat([b.X for b in batches]), whole.X, check_dtype=False)
    if whole.y is not None:
        np.testing.assert_array_equal(np.concatenate([b.y for b in batches]), whole.y)
    else:
        assert all(b.y is None for b in batches)
    if id_cols:
        assert pd.concat([b.ids for b in batches])["txn_id"].tolist() == whole.ids["txn_id"].tolist()


def test_batches_of_gzipped_csv(tmp_path, frame):
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as handle:
        frame.to_csv(handle, index=False)
    batches = list(iter_table_batches(path, batch_rows=20, label_col="y", id_cols=["txn_id"]))
    assert sum(len(b.X) for b in batches) == len(frame)
    assert np.concatenate([b.y for b in batches]).tolist() == frame["y"].tolist()
    with pytest.raises(DataError, match="batch_rows"):
        iter_table_batches(path, batch_rows=0)


# -- preprocessing ----------------------------------------------------------------------------------

def test_standardises_and_one_hot_encodes_in_column_order():
    X = pd.DataFrame({"amount": [10.0, 20.0, 30.0, 40.0], "color": ["red", "blue", "red", None],
                      "flag": [True, False, True, True]})
    pre = TablePreprocessor().fit(X)
    assert pre.numeric_columns_ == ["amount", "flag"] and pre.categorical_columns_ == ["color"]
    assert pre.categories_ == {"color": ["<missing>", "blue", "red"]}
    assert pre.output_names_ == ["amount", "color=<missing>", "color=blue", "color=red", "flag"]
    assert [(name, idx.tolist()) for name, idx in pre.output_groups_] == [
        ("amount", [0]), ("color", [1, 2, 3]), ("flag", [4])]
    Z = pre.transform(X)
    assert Z.dtype == np.float32 and Z.flags.c_contiguous and Z.shape == (4, 5)
    amount = np.array([10.0, 20.0, 30.0, 40.0])
    np.testing.assert_allclose(Z[:, 0], (amount - amount.mean()) / amount.std(), rtol=1e-6)
    np.testing.assert_array_equal(Z[:, 1:4], [[0, 0, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    np.testing.assert_allclose(pre.center_, [25.0, 0.75])
    back = pre.inverse_transform(Z)
    np.testing.assert_allclose(back["amount"], amount, rtol=1e-6)
    assert back["color"].tolist() == ["red", "blue", "red", None]


def test_numpy_input_gets_x_names():
    X = np.random.default_rng(0).normal(size=(20, 3))
    pre = TablePreprocessor().fit(X)
    assert pre.feature_names_in_ == ["x0", "x1", "x2"] and pre.n_features_in_ == 3
    Z = pre.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(Z.std(axis=0), 1, atol=1e-5)
    with pytest.raises(ColumnMismatchError, match="3"):
        pre.transform(X[:, :2])


def test_constant_and_duplicate_columns_are_finite(mixed_frame):
    pre = TablePreprocessor().fit(mixed_frame)
    Z = pre.transform(mixed_frame)
    assert np.isfinite(Z).all()
    constant = pre.output_names_.index("constant")
    assert (Z[:, constant] == 0).all() and pre.scale_[pre.numeric_columns_.index("constant")] == 1.0
    a, b = pre.output_names_.index("amount"), pre.output_names_.index("amount_copy")
    np.testing.assert_array_equal(Z[:, a], Z[:, b])
    # A constant column that is not exactly representable must give exact zeros too.
    tenth = TablePreprocessor().fit(np.full((7, 1), 0.1)).transform(np.full((3, 1), 0.1))
    assert (tenth == 0).all()


def test_non_finite_names_columns_and_rows():
    X = pd.DataFrame({"ok": np.arange(25.0), "amount": np.arange(25.0)})
    X.loc[[4, 17, 20], "amount"] = [np.nan, np.inf, -np.inf]
    expected = r"'amount' has 3 NaN/inf values \(first rows: 4, 17, 20\).*impute='median'"
    with pytest.raises(NonFiniteError, match=expected):
        TablePreprocessor().fit(X)
    pre = TablePreprocessor().fit(X.iloc[:4])
    with pytest.raises(NonFiniteError, match="'amount' has 3 NaN/inf values .first rows: 0, 13, 16"):
        pre.transform(X.iloc[4:])  # positions within the rows passed, then their index labels
    with pytest.raises(NonFiniteError, match=r"\(index 4, 17, 20\)"):
        pre.transform(X.iloc[4:])


def test_impute_median_at_fit_and_transform():
    X = pd.DataFrame({"a": [1.0, 2.0, np.nan, 10.0, np.inf], "b": [np.nan] * 5, "c": ["u", "v", "u", "v", "u"]})
    pre = TablePreprocessor(impute="median").fit(X)
    np.testing.assert_allclose(pre.medians_, [2.0, 0.0])
    filled = np.array([1.0, 2.0, 2.0, 10.0, 2.0])
    np.testing.assert_allclose(pre.center_, [filled.mean(), 0.0])
    Z = pre.transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z[:, 0], (filled - filled.mean()) / filled.std(), rtol=1e-6)
    assert (Z[:, 1] == 0).all()
    # Column a held +inf in training (a value it takes), never -inf; b held neither.
    np.testing.assert_array_equal(pre.infinities_seen_, [1.0, 0.0])
    # Rows to score: +inf in a (seen) and NaN / None become the median ...
    rows = pd.DataFrame({"a": [np.inf, np.nan], "b": [None, np.nan], "c": ["v", "u"]})
    z = pre.transform(rows)
    assert z.shape == (2, 4)
    np.testing.assert_allclose(z[:, 0], (2.0 - filled.mean()) / filled.std(), rtol=1e-6)
    assert (z[:, 1] == 0).all()
    # ... an infinity a column never held is far outside the training range: clipped, out of range.
    far = pre.transform(pd.DataFrame({"a": [-np.inf, 1.0], "b": [np.inf, -np.inf], "c": ["v", "v"]}))
    np.testing.assert_array_equal(far[:, :2], [[-STANDARDIZED_BOUND, STANDARDIZED_BOUND],
                                               [far[1, 0], -STANDARDIZED_BOUND]])
    assert pre.out_of_range_rows(far).all()


def test_unseen_category_error_and_ignore():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "channel": ["web", "shop", "web"]})
    new = pd.DataFrame({"x": [1.0, 2.0, 3.0], "channel": ["web", "fax", "telex"]})
    expected = r"'channel'.*'fax', 'telex'.*first rows: 1, 2.*unknown_categories='ignore'"
    with pytest.raises(UnseenCategoryError, match=expected):
        TablePreprocessor().fit(train).transform(new)
    pre = TablePreprocessor(unknown_categories="ignore").fit(train)
    Z = pre.transform(new)
    np.testing.assert_array_equal(Z[:, 1:], [[0, 1], [0, 0], [0, 0]])


def test_pandas_category_and_str_dtypes_encode_alike():
    values = ["b", "a", "b", None]
    as_object = TablePreprocessor().fit(pd.DataFrame({"k": pd.Series(values, dtype=object)}))
    as_category = TablePreprocessor().fit(pd.DataFrame({"k": pd.Series(values, dtype="category")}))
    as_str = pd.DataFrame({"k": pd.Series(values, dtype="str")})
    assert as_object.categories_ == as_category.categories_ == {"k": ["<missing>", "a", "b"]}
    np.testing.assert_array_equal(as_object.transform(as_str), as_category.transform(as_str))


def test_numeric_column_given_as_text():
    pre = TablePreprocessor().fit(pd.DataFrame({"amount": [1.0, 2.0]}))
    with pytest.raises(DataError, match="'amount'.*'abc'"):
        pre.transform(pd.DataFrame({"amount": ["1.5", "abc"]}))
    with pytest.raises(ColumnMismatchError, match="'amount'"):
        pre.transform(pd.DataFrame({"other": [1.0]}))


def test_invalid_options_and_empty_input():
    with pytest.raises(DataError, match="impute"):
        TablePreprocessor(impute="mean")
    with pytest.raises(DataError, match="unknown_categories"):
        TablePreprocessor(unknown_categories="drop")
    with pytest.raises(EmptyDataError):
        TablePreprocessor().fit(pd.DataFrame({"a": []}))
    with pytest.raises(DataError, match="datetime"):
        TablePreprocessor().fit(pd.DataFrame({"when": pd.date_range("2024-01-01", periods=3)}))


def test_group_sum():
    X = pd.DataFrame({"a": [1.0, 2.0], "c": ["x", "y"], "b": [0.0, 5.0]})
    pre = TablePreprocessor().fit(X)
    per_output = np.arange(8.0).reshape(2, 4)
    np.testing.assert_array_equal(pre.group_sum(per_output), [[0.0, 3.0, 3.0], [4.0, 11.0, 7.0]])
    with pytest.raises(ColumnMismatchError):
        pre.group_sum(per_output[:, :3])


@pytest.mark.parametrize("impute", [None, "median"])
def test_state_round_trip_is_bit_identical(mixed_frame, impute):
    X = mixed_frame.copy()
    X.loc[3, "channel"] = None
    pre = TablePreprocessor(impute=impute, unknown_categories="ignore").fit(X)
    arrays, meta = pre.get_state()
    meta = json.loads(json.dumps(meta, allow_nan=False))  # as written to and read from config.json
    clone = TablePreprocessor.from_state({k: v.copy() for k, v in arrays.items()}, meta)
    assert clone.output_names_ == pre.output_names_ and clone.categories_ == pre.categories_
    assert clone.impute == impute and clone.unknown_categories == "ignore"
    np.testing.assert_array_equal(clone.transform(X), pre.transform(X))
    assert clone.transform(X).tobytes() == pre.transform(X).tobytes()


@pytest.mark.parametrize("damage", [
    lambda a, m: m.update(kinds=m["kinds"][:-1]),
    lambda a, m: m.update(impute="__import__('os')"),
    lambda a, m: m["categories"].update(channel="web"),
    lambda a, m: m.update(columns=[1, 2, 3, 4, 5]),
    lambda a, m: a.update(center=a["center"][:-1]),
    lambda a, m: a.update(scale=np.zeros_like(a["scale"])),
    lambda a, m: a.update(center=a["center"].astype(np.int64)),
    lambda a, m: m.pop("categories"),
])
def test_damaged_state_is_refused(mixed_frame, damage):
    arrays, meta = TablePreprocessor().fit(mixed_frame).get_state()
    damage(arrays, meta)
    with pytest.raises(ModelFileError, match="preprocessing state"):
        TablePreprocessor.from_state(arrays, meta)


def test_file_to_preprocessor_end_to_end(tmp_path, frame):
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    pre = TablePreprocessor().fit(read_table(path, id_cols=["txn_id"]).X)
    assert "y" not in pre.feature_names_in_ and "txn_id" not in pre.feature_names_in_
    whole = pre.transform(read_table(path, id_cols=["txn_id"]).X)
    batched = np.vstack([pre.transform(b.X) for b in iter_table_batches(path, batch_rows=16, id_cols=["txn_id"])])
    np.testing.assert_array_equal(batched, whole)


# -- Parquet written with a pandas index ----------------------------------------------------------

def _indexed_files(frame, tmp_path):
    """The same rows written three ways: ``index=False``, with an unordered unnamed index (pandas
    stores it as ``__index_level_0__``), and with the id column moved into a named index."""
    plain, unnamed, named = tmp_path / "plain.parquet", tmp_path / "unnamed.parquet", tmp_path / "named.parquet"
    frame.to_parquet(plain, index=False)
    shuffled = frame.copy()
    shuffled.index = np.random.default_rng(0).permutation(len(frame)) + 1000
    shuffled.to_parquet(unnamed)
    frame.set_index("txn_id").to_parquet(named)
    return plain, unnamed, named


def test_parquet_with_a_pandas_index_reads_as_its_columns(tmp_path, frame):
    """An unnamed index is row labels, not a column: every reader (whole, batches, streamed) sees the
    file's columns only, rows numbered from 0; a named index is a column again (an id, here)."""
    from oddkit.data.stream import TableSource

    plain, unnamed, named = _indexed_files(frame, tmp_path)
    want = read_table(plain, id_cols=["txn_id"])
    for path in (unnamed, named):
        table = read_table(path, id_cols=["txn_id"])
        pd.testing.assert_frame_equal(table.X, want.X)
        pd.testing.assert_frame_equal(table.ids, want.ids)
        np.testing.assert_array_equal(table.y, want.y)
        batches = list(iter_table_batches(path, batch_rows=20, id_cols=["txn_id"]))
        pd.testing.assert_frame_equal(pd.concat([b.X for b in batches]), want.X)
        source = TableSource(path, batch_rows=20, id_cols=["txn_id"], keep_anomalies=True)
        assert source.columns == ["amount", "hour", "channel"]
        rows = pd.concat([features for _, features in source.batches()])
        pd.testing.assert_frame_equal(rows, want.X)
        pd.testing.assert_frame_equal(pd.concat([t.X for t in source.tables()]), want.X)
    assert list(read_table(unnamed).X.columns) == ["txn_id", "amount", "hour", "channel"]


def test_cli_fits_and_scores_parquet_with_a_pandas_index(tmp_path, frame, monkeypatch, capsys):
    """``oddkit fit x.parquet`` (in memory and ``--stream``) and ``oddkit score`` (a file, a folder) on a
    file saved by ``df.to_parquet(path)`` with an unordered index: no ``KeyError: '__index_level_0__'``,
    and the same scores as from the file saved with ``index=False``."""
    from conftest import run_cli

    plain, unnamed, _ = _indexed_files(frame.drop(columns="channel"), tmp_path)
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes(unnamed.read_bytes())
    scores = {}
    for name, extra in (("memory", []), ("stream", ["--stream", "--detector", "autoencoder", "--epochs", "2"])):
        extra = extra or ["--detector", "gaussian"]
        code, _, err = run_cli(monkeypatch, capsys, "fit", unnamed, "--id-col", "txn_id", *extra, "--quiet",
                               "--out", tmp_path / f"model-{name}")
        assert code == 0, err
        assert "__index_level_0__" not in (tmp_path / f"model-{name}" / "config.json").read_text(encoding="utf-8")
    for name, data in (("plain", plain), ("unnamed", unnamed), ("folder", folder)):
        out = tmp_path / f"scores-{name}.csv"
        code, _, err = run_cli(monkeypatch, capsys, "score", tmp_path / "model-memory", data, "--id-col", "txn_id",
                               "--quiet", "--out", out)
        assert code == 0, err
        scores[name] = pd.read_csv(out)
    pd.testing.assert_frame_equal(scores["unnamed"], scores["plain"])
    pd.testing.assert_frame_equal(scores["folder"], scores["plain"])
    assert list(scores["plain"]["txn_id"][:2]) == ["t000", "t001"]


@pytest.mark.parametrize("metadata", [b"not json", b"[1, 2]", b'{"index_columns": 5, "columns": 7}',
                                      b'{"index_columns": [{"kind": "range"}], "columns": []}'])
def test_parquet_with_damaged_pandas_metadata_is_a_data_error(metadata, tmp_path):
    """A Parquet file whose pandas metadata is damaged (or hostile) is refused with a DataError naming
    the file, in memory and streamed, never a bare TypeError/KeyError from inside pyarrow."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from oddkit.data import TableSource
    from oddkit.data.io import read_table

    table = pa.table({"a": np.arange(6.0), "b": np.arange(6.0)}).replace_schema_metadata({b"pandas": metadata})
    path = tmp_path / "damaged.parquet"
    pq.write_table(table, path)
    with pytest.raises(DataError, match="damaged.parquet.*pandas metadata"):
        read_table(path)
    with pytest.raises(DataError, match="pandas metadata"):
        for _ in TableSource(path).batches():
            pass
