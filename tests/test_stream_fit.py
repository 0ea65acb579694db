"""Streamed training (AutoEncoderDetector.fit_stream, oddkit.data.stream) on tables read in batches."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

import oddkit
from conftest import run_cli as run
from oddkit import AutoEncoderDetector, VAEDetector
from oddkit.data import TablePreprocessor
from oddkit.data.stream import BoundedSample, TableSource, row_uniform
from oddkit.exceptions import ColumnMismatchError, DataError, EmptyDataError, NonFiniteError

N_ROWS, N_COLS = 20_000, 8
FAST = dict(epochs=6, random_state=0, verbose=0, n_threads=1)


def _normal_rows(rng, n, mixing):
    return rng.normal(size=(n, 3)) @ mixing + 0.1 * rng.normal(size=(n, N_COLS))


def _frame(values, rng):
    frame = pd.DataFrame(values, columns=[f"f{i}" for i in range(N_COLS)])
    frame["shop"] = rng.choice(["north", "south", "east"], size=len(frame))
    return frame


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """20,000 normal rows on a 3-D subspace (+ a category) in 3 Parquet files of 2,500-row row
    groups and one CSV; a test set of 1,000 normal rows and 100 rows off the subspace."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(3, N_COLS))
    train = _frame(_normal_rows(rng, N_ROWS, mixing), rng)
    test = _frame(np.vstack([_normal_rows(rng, 1000, mixing), _normal_rows(rng, 100, mixing)
                             + rng.normal(scale=0.6, size=(100, N_COLS))]), rng)
    y = np.r_[np.zeros(1000), np.ones(100)]
    root = tmp_path_factory.mktemp("stream")
    folder = root / "parts"
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(N_ROWS), 3)):
        pq.write_table(pa.Table.from_pandas(train.iloc[part], preserve_index=False), folder / f"part-{i}.parquet",
                       row_group_size=2500)
    train.to_csv(root / "train.csv", index=False)
    return {"train": train, "test": test, "y": y, "folder": folder, "csv": root / "train.csv", "root": root}


@pytest.fixture(scope="module")
def fits(data):
    """The in-memory fit and the streamed fit of the same rows, same parameters."""
    memory = AutoEncoderDetector(**FAST).fit(data["train"])
    source = TableSource(data["folder"], batch_rows=1000)
    streamed = AutoEncoderDetector(**FAST).fit(source)
    return memory, streamed, source


def test_preprocessing_statistics_equal_in_memory(data, fits):
    memory, streamed, _ = fits
    np.testing.assert_allclose(streamed.preprocessor_.center_, memory.preprocessor_.center_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(streamed.preprocessor_.scale_, memory.preprocessor_.scale_, rtol=1e-9)
    assert streamed.preprocessor_.categories_ == memory.preprocessor_.categories_ == {
        "shop": ["east", "north", "south"]}
    assert streamed.preprocessor_.kinds_ == memory.preprocessor_.kinds_
    assert list(streamed.feature_names_in_) == list(memory.feature_names_in_)


def test_streamed_moments_stay_accurate_far_from_zero():
    """Chan's merge over many small batches, on a column whose mean dwarfs its spread."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": 1e9 + rng.normal(size=30_000), "b": rng.normal(size=30_000) * 1e-6})
    batches = ((np.arange(s, s + 1000), frame.iloc[s:s + 1000]) for s in range(0, 30_000, 1000))
    streamed = TablePreprocessor().fit_batches(batches)
    exact = TablePreprocessor().fit(frame)
    np.testing.assert_allclose(streamed.center_, exact.center_, rtol=1e-12)
    np.testing.assert_allclose(streamed.scale_, exact.scale_, rtol=1e-9)


@pytest.mark.parametrize("impute", [None, "median"])
def test_streamed_moments_keep_tiny_and_huge_columns(impute):
    """Columns whose squares would underflow (1e-170, 1e-300) or whose sums of squares could overflow
    (1e140), one whose magnitude grows from batch to batch past both limits and one of zeros, then
    subnormal values, keep the spread the
    in-memory fit gives them, in the first pass and in fit_moments' second."""
    rng = np.random.default_rng(3)
    n = 6000
    growing = rng.normal(size=n) * np.repeat([1e-170, 1e-120, 1e-50, 1.0, 1e120, 1e140], n // 6)
    frame = pd.DataFrame({"tiny": rng.normal(size=n) * 1e-170, "tinier": rng.normal(size=n) * 1e-300,
                          "huge": rng.normal(size=n) * 1e140, "growing": growing, "plain": rng.normal(size=n),
                          "zeros_then_tiny": np.r_[np.zeros(n // 2), rng.normal(size=n // 2) * 1e-320]})
    if impute:
        frame.loc[::97, "tiny"] = np.nan

    def batches():
        return ((np.arange(s, s + 1000), frame.iloc[s:s + 1000]) for s in range(0, n, 1000))

    exact = TablePreprocessor(impute=impute).fit(frame)
    streamed = TablePreprocessor(impute=impute).fit_batches(batches(), median_sample_rows=n)
    if impute:
        streamed.fit_moments(batches())
    np.testing.assert_allclose(streamed.center_, exact.center_, rtol=1e-9, atol=0)
    np.testing.assert_allclose(streamed.scale_, exact.scale_, rtol=1e-9)
    assert (streamed.scale_ != 1.0).all()  # no column mistaken for a constant one


def test_median_imputation_from_a_sample(data):
    rng = np.random.default_rng(2)
    frame = data["train"].copy()
    frame.loc[rng.random(len(frame)) < 0.05, "f0"] = np.nan

    def batches():
        return ((np.arange(s, min(s + 3000, len(frame))), frame.iloc[s:s + 3000]) for s in range(0, len(frame), 3000))

    exact = TablePreprocessor(impute="median").fit(frame)
    # A sample that holds every row: the exact median, and then the exact moments after imputation.
    whole = TablePreprocessor(impute="median").fit_batches(batches(), median_sample_rows=50_000)
    whole.fit_moments(batches())
    np.testing.assert_allclose(whole.medians_, exact.medians_, rtol=1e-12)
    np.testing.assert_allclose(whole.scale_, exact.scale_, rtol=1e-9)
    # A 2,000-row sample: the median of a sample, within a few percentile points of the true one.
    sampled = TablePreprocessor(impute="median").fit_batches(batches(), median_sample_rows=2000)
    quantile = (frame["f0"].dropna() < sampled.medians_[0]).mean()
    assert abs(quantile - 0.5) < 0.05 and sampled.medians_[0] != exact.medians_[0]
    with pytest.raises(NonFiniteError, match="'f0'"):
        TablePreprocessor().fit_batches(batches())


def test_streamed_fit_ranks_planted_anomalies_like_in_memory(data, fits):
    memory, streamed, _ = fits
    auc_memory = roc_auc_score(data["y"], memory.decision_function(data["test"]))
    auc_streamed = roc_auc_score(data["y"], streamed.decision_function(data["test"]))
    assert auc_streamed > 0.9
    assert auc_streamed > auc_memory - 0.03
    info = streamed.stream_info_
    assert info["rows"] == N_ROWS
    assert 0.08 * N_ROWS < info["held_out_rows"] < 0.12 * N_ROWS  # validation_fraction=0.1 by row hash
    # The threshold flags about contamination (10%) of the training rows, as in memory.
    assert abs(np.mean(streamed.decision_function(data["train"]) >= streamed.threshold_) - 0.1) < 0.02


def test_robust_streamed_fit_trims_like_in_memory(data, tmp_path):
    """10% of the rows are anomalies like the test set's. Trimmed within each batch, the streamed
    robust fit ranks the test rows as the in-memory robust fit (trimmed over each epoch) does, and
    its training loss, a mean over the kept rows, is below the untrimmed one (equal without trimming:
    same seed, same batches)."""
    rng = np.random.default_rng(5)
    mixing = np.random.default_rng(0).normal(size=(3, N_COLS))  # the fixture's subspace
    hidden = _frame(_normal_rows(rng, 2000, mixing) + rng.normal(scale=0.6, size=(2000, N_COLS)), rng)
    rows = pd.concat([data["train"], hidden], ignore_index=True).sample(frac=1.0, random_state=0)
    folder = tmp_path / "contaminated"
    folder.mkdir()
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), folder / "part.parquet", row_group_size=2500)
    memory = AutoEncoderDetector(robust=True, **FAST).fit(rows)
    streamed = AutoEncoderDetector(robust=True, **FAST).fit(TableSource(folder, batch_rows=1000))
    plain = AutoEncoderDetector(robust=False, **FAST).fit(TableSource(folder, batch_rows=1000))
    auc_memory = roc_auc_score(data["y"], memory.decision_function(data["test"]))
    auc_streamed = roc_auc_score(data["y"], streamed.decision_function(data["test"]))
    assert auc_streamed > 0.95 and abs(auc_streamed - auc_memory) < 0.02
    assert streamed.history_["train_loss"][-1] < 0.9 * plain.history_["train_loss"][-1]


def test_memory_stays_bounded(data, fits):
    _, streamed, source = fits
    assert 0 < source.max_rows_in_memory <= 1000
    info = streamed.stream_info_
    assert info["max_rows_read_at_once"] <= 1000
    # the shuffle buffer: at most shuffle_rows plus one batch read
    small = AutoEncoderDetector(epochs=1, random_state=0, verbose=0, n_threads=1)
    small.fit_stream(TableSource(data["folder"], batch_rows=500), shuffle_rows=3000, score_sample_rows=1000)
    assert 3000 <= small.stream_info_["max_rows_shuffled_at_once"] <= 3500
    assert small.decision_scores_.shape == (1000,) and small.stream_info_["score_sample_rows"] == 1000


def _peak_bytes(path) -> int:
    tracemalloc.start()
    try:
        AutoEncoderDetector(epochs=1, random_state=0, verbose=0, n_threads=1).fit_stream(
            TableSource(path, batch_rows=500), shuffle_rows=2000, validation_rows=500, score_sample_rows=500,
            score_state_rows=500)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_file(data, tmp_path):
    """Four times the rows, about the same peak of Python/NumPy allocations."""
    big = tmp_path / "big"
    big.mkdir()
    table = pa.Table.from_pandas(data["train"], preserve_index=False)
    for i in range(4):
        pq.write_table(table, big / f"copy-{i}.parquet", row_group_size=2500)
    small_peak, big_peak = _peak_bytes(data["folder"]), _peak_bytes(big)
    assert big_peak < 1.5 * small_peak, (small_peak, big_peak)
    in_memory = 4 * N_ROWS * N_COLS * 8
    assert big_peak < in_memory


def test_saved_streamed_model_scores_identically(data, fits, tmp_path):
    _, streamed, _ = fits
    streamed.save(tmp_path / "model")
    loaded = oddkit.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.decision_function(data["test"]), streamed.decision_function(data["test"]))
    assert loaded.threshold_ == streamed.threshold_
    # the same seed streams the same fit
    again = AutoEncoderDetector(**FAST).fit(TableSource(data["folder"], batch_rows=1000))
    np.testing.assert_array_equal(again.decision_function(data["test"]), streamed.decision_function(data["test"]))


def test_csv_streams_like_parquet(data, fits):
    _, streamed, _ = fits
    source = TableSource(data["csv"], batch_rows=4000)
    from_csv = AutoEncoderDetector(**{**FAST, "epochs": 2}).fit_stream(source)
    assert source.n_rows == N_ROWS and from_csv.stream_info_["rows"] == N_ROWS
    np.testing.assert_allclose(from_csv.preprocessor_.center_, streamed.preprocessor_.center_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(from_csv.preprocessor_.scale_, streamed.preprocessor_.scale_, rtol=1e-9)
    assert roc_auc_score(data["y"], from_csv.decision_function(data["test"])) > 0.85


def test_vae_streams(data):
    params = dict(epochs=2, random_state=0, verbose=0, n_threads=1)
    streamed = VAEDetector(**params).fit_stream(data["folder"], batch_rows=2000)
    memory = VAEDetector(**params).fit(data["train"])
    auc = [roc_auc_score(data["y"], model.decision_function(data["test"])) for model in (streamed, memory)]
    assert abs(auc[0] - auc[1]) < 0.03, auc  # the VAE is weak on this data (0.59), streamed or not


def test_label_column_rows_are_left_out(data, tmp_path):
    frame = data["train"].iloc[:4000].copy()
    frame["y"] = (np.arange(4000) % 10 == 0).astype(int)
    frame.to_parquet(tmp_path / "labelled.parquet", index=False)
    source = TableSource(tmp_path / "labelled.parquet", batch_rows=1000)
    assert "y" not in source.columns
    model = AutoEncoderDetector(epochs=1, random_state=0, verbose=0).fit_stream(source)
    assert model.stream_info_["rows"] == 3600 and "y" not in model.feature_names_in_


def test_bad_sources_raise_oddkit_errors(data, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyDataError, match="holds no Parquet"):
        TableSource(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        TableSource(tmp_path / "missing.parquet")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    data["train"].iloc[:100].to_parquet(mixed / "a.parquet", index=False)
    data["train"].iloc[:100].drop(columns="f3").to_parquet(mixed / "b.parquet", index=False)
    with pytest.raises(ColumnMismatchError, match="b.parquet.*f3"):
        TableSource(mixed)
    retyped = tmp_path / "retyped"
    retyped.mkdir()
    data["train"].iloc[:100].to_parquet(retyped / "a.parquet", index=False)
    data["train"].iloc[:100].astype({"f1": "float32"}).to_parquet(retyped / "b.parquet", index=False)
    with pytest.raises(ColumnMismatchError, match="f1 \\(float here, double"):
        TableSource(retyped)
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b\n")
    with pytest.raises(EmptyDataError):
        AutoEncoderDetector(verbose=0).fit_stream(header_only)


def test_row_keys_and_bounded_sample_are_order_free():
    rows = np.arange(10_000)
    keys = row_uniform(rows, seed=3)
    assert 0 <= keys.min() and keys.max() < 1 and abs(keys.mean() - 0.5) < 0.02
    forward, backward = BoundedSample(100), BoundedSample(100)
    for start in range(0, 10_000, 1000):
        forward.add(keys[start:start + 1000], rows[start:start + 1000], rows[start:start + 1000])
    for start in reversed(range(0, 10_000, 1000)):
        backward.add(keys[start:start + 1000], rows[start:start + 1000], rows[start:start + 1000])
    np.testing.assert_array_equal(forward.values(), backward.values())
    np.testing.assert_array_equal(forward.values(), np.sort(rows[np.argsort(keys)[:100]]))


def test_cli_fit_stream(data, monkeypatch, capsys, tmp_path):
    code, out, err = run(monkeypatch, capsys, "fit", data["folder"], "--out", tmp_path / "m", "--stream",
                         "--epochs", "2", "--quiet")
    assert code == 0, out + err
    assert "streamed on 20,000 rows" in out
    model = oddkit.load(tmp_path / "m")
    assert roc_auc_score(data["y"], model.decision_function(data["test"])) > 0.8
    code, out, err = run(monkeypatch, capsys, "fit", data["folder"], "--out", tmp_path / "k", "--stream",
                         "--detector", "iforest")
    assert code != 0 and "--stream trains the autoencoder" in out + err


def test_cli_score_streams_a_parquet_folder_as_one_file(data, fits, monkeypatch, capsys, tmp_path):
    """'oddkit score MODEL FOLDER' reads the folder's files one after the other, --batch-rows at a time, and
    writes exactly what scoring the same rows as one file writes (ids, scores, labels, in file order)."""
    memory, _, _ = fits
    model = tmp_path / "model"
    memory.save(model)
    rows = data["test"].assign(txn=np.arange(len(data["test"])), y=data["y"].astype(int))
    folder = tmp_path / "rows"
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(rows)), 3)):
        pq.write_table(pa.Table.from_pandas(rows.iloc[part], preserve_index=False), folder / f"part-{i}.parquet",
                       row_group_size=150)
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    outputs = {}
    for name, source in (("folder", folder), ("file", tmp_path / "rows.parquet")):
        outputs[name] = tmp_path / f"{name}.csv"
        code, out, err = run(monkeypatch, capsys, "score", model, source, "--id-col", "txn", "--batch-rows", "100",
                             "--out", outputs[name], "--quiet")
        assert code == 0, out + err
        assert f"scored {len(rows):,} rows" in out
    got, expected = pd.read_csv(outputs["folder"]), pd.read_csv(outputs["file"])
    pd.testing.assert_frame_equal(got, expected)
    assert got["txn"].tolist() == list(range(len(rows)))
    np.testing.assert_allclose(got["score"], memory.decision_function(data["test"]), rtol=1e-6)  # other batch sizes
