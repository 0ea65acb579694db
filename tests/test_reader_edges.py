"""Edges of the audio and text readers: an .npz of recordings whose members are not arrays, whose labels are
text or Python objects, whose rate is no rate; Parquet texts that are not UTF-8; csv's process-wide field
limit under concurrent reads; reading only the columns a text table needs; tokenizing long texts in chunks
bounded by characters."""

from __future__ import annotations

import csv
import io
import re
import threading
import tracemalloc
import zipfile

import numpy as np
import pandas as pd
import pytest

from oddkit.exceptions import ColumnMismatchError, DataError

# -- .npz archives of recordings -------------------------------------------------------------------------------


def _npy(array) -> bytes:
    stream = io.BytesIO()
    np.save(stream, np.asarray(array), allow_pickle=True)
    return stream.getvalue()


def _archive(path, members) -> None:
    """An .npz written member by member: (name, bytes) pairs, deflated."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)


def _arrays(**changes):
    arrays = {"audio": np.arange(20, dtype=np.int16), "offsets": np.array([0, 10, 20]),
              "sample_rate": np.array(8000)}
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def _read(tmp_path, name="clips.npz", **changes):
    from oddkit.data.audio import read_audio

    path = tmp_path / name
    _archive(path, [(f"{key}.npy", _npy(value)) for key, value in _arrays(**changes).items()])
    return read_audio(path)


@pytest.fixture(autouse=True)
def _needs_audio_or_text(request):
    if request.node.name.startswith("test_npz"):
        pytest.importorskip("librosa")
        pytest.importorskip("soundfile")
    elif request.node.name.startswith("test_text"):
        pytest.importorskip("tokenizers")


def _peak_mib(read) -> float:
    tracemalloc.start()
    try:
        read()
    except DataError:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2 ** 20


def test_npz_members_not_named_npy_are_never_read(tmp_path):
    """numpy.load hands a member not named NAME.npy over as raw bytes, read whole, and looks it up before
    NAME.npy: 'sample_rate' of 50 MB of zeros (50 KB deflated) beside sample_rate.npy was read in full, then
    crashed (AttributeError). Such members are skipped, never opened."""
    from oddkit.data.audio import read_audio

    path = tmp_path / "shadowed.npz"
    members = [(f"{k}.npy", _npy(v)) for k, v in _arrays().items()]
    _archive(path, members + [("sample_rate", bytes(50_000_000)), ("notes.txt", bytes(50_000_000))])
    assert path.stat().st_size < 200_000
    assert _peak_mib(lambda: read_audio(path)) < 10
    data = read_audio(path)
    assert data.sample_rate == 8000 and [len(w) for w in data.waveforms] == [10, 10]
    # A needed array that exists only under another name: the error says that member is not read.
    path = tmp_path / "unnamed.npz"
    _archive(path, [("audio.npy", _npy(np.zeros(20, np.int16))), ("sample_rate", bytes(1000))])
    with pytest.raises(DataError, match=r"needs the keys 'audio' and 'sample_rate'.*not \.npy arrays, "
                                        r"not read: 'sample_rate'"):
        read_audio(path)


def test_npz_members_that_are_not_arrays_or_lie_about_their_size_are_refused_from_their_header(tmp_path):
    """audio.npy holding 50 MB that is no .npy array was read whole (numpy.load's raw bytes fallback); a .npy
    header declaring 10**10 samples in a member of a few bytes had numpy reserve 20 GB before failing."""
    from oddkit.data.audio import read_audio

    path = tmp_path / "fake.npz"
    _archive(path, [("audio.npy", b"not an array" * 4_000_000), ("sample_rate.npy", _npy(np.array(8000)))])
    assert _peak_mib(lambda: read_audio(path)) < 10
    with pytest.raises(DataError, match=r"fake\.npz: the member 'audio\.npy' is not a \.npy array"):
        read_audio(path)
    from numpy.lib import format as npy

    stream = io.BytesIO()
    npy.write_array_header_1_0(stream, {"descr": "<i2", "fortran_order": False, "shape": (10 ** 10,)})
    path = tmp_path / "lying.npz"
    _archive(path, [("audio.npy", stream.getvalue() + bytes(64)), ("offsets.npy", _npy(np.array([0, 32]))),
                    ("sample_rate.npy", _npy(np.array(8000)))])
    with pytest.raises(DataError, match=r"lying\.npz: the array 'audio' declares 20,000,000,000 bytes"):
        read_audio(path)


@pytest.mark.parametrize("key, values, message", [
    ("digit", np.array(["one", "two"]), r"'digit' holds text \('one'"),
    ("speaker", np.array(["ann", "bob"]), r"'speaker' holds text \('ann'"),
    ("take", np.array([0.5, 1.0]), r"'take' holds numbers that are not whole"),
    ("take", np.array([np.nan, 1.0]), r"'take' holds numbers that are not whole"),
    ("digit", np.array([1, 2], dtype=object), r"the array 'digit' holds Python objects"),
    ("files", np.array(["a.wav", "b.wav"], dtype=object), r"the array 'files' holds Python objects"),
    ("speaker_names", np.array(["a", "b"], dtype=object), r"the array 'speaker_names' holds Python objects"),
])
def test_npz_label_arrays_of_text_or_objects_are_refused_naming_the_array(tmp_path, key, values, message):
    """Text in 'digit' or 'speaker' raised int()'s ValueError; an array of Python objects was called a damaged
    file; a fractional or NaN take was cut to a whole number (or to -2**63)."""
    with pytest.raises(DataError, match=message) as caught:
        _read(tmp_path, **{key: values})
    assert "clips.npz" in str(caught.value) and "\n" not in str(caught.value)


def test_npz_labels_that_are_whole_numbers_in_any_dtype_read_as_before(tmp_path):
    data = _read(tmp_path, digit=np.array(["3", "4"]), speaker=np.array([1.0, 0.0]), take=np.array([True, False]),
                 speaker_names=np.array(["ann", "bob"]), files=np.array(["x.wav", "y.wav"]))
    assert data.labels.to_dict("list") == {"file": ["x.wav", "y.wav"], "group": ["bob", "ann"], "digit": [3, 4],
                                           "speaker": [1, 0], "take": [1, 0]}


@pytest.mark.parametrize("rate, shown", [
    (np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf"), (0, "0"), (-8000, "-8000"), (1e30, "1e+30"),
    (384_001, "384001"), (np.uint64(2 ** 64 - 1), str(2 ** 64 - 1)), (8000.9, "8000.9"), (8000.5, "8000.5"),
    (np.float32(0.5), "0.5"),
])
def test_npz_a_rate_that_is_not_a_whole_number_of_hz_in_range_is_refused_in_one_line(tmp_path, rate, shown):
    """NaN crashed (ValueError), inf too (OverflowError), 0, negative and absurd rates were a ParameterError
    (a parameter the caller did not pass), and 8000.9 Hz was read as 8000 Hz."""
    with pytest.raises(DataError, match=rf"clips\.npz: 'sample_rate' is {re.escape(shown)}; store the rate in Hz"):
        _read(tmp_path, sample_rate=np.array(rate))


@pytest.mark.parametrize("rate", [np.array("8000"), np.array(b"8000"), np.array(True), np.array(8000 + 0j)])
def test_npz_a_rate_that_is_not_a_number_is_refused(tmp_path, rate):
    with pytest.raises(DataError, match=r"'sample_rate' holds \S+ values; store the rate in Hz"):
        _read(tmp_path, sample_rate=rate)


@pytest.mark.parametrize("rate", [8000, 8000.0, np.float32(8000.0), np.uint16(8000), np.int64(8000)])
def test_npz_a_whole_rate_in_any_numeric_dtype_reads(tmp_path, rate):
    data = _read(tmp_path, sample_rate=np.array(rate))
    assert data.sample_rate == 8000 and isinstance(data.sample_rate, int)


def test_npz_reads_the_same_arrays_as_numpy_load(tmp_path):
    """Reading the members directly (not through numpy.load) gives bit-identical waveforms, compressed or not."""
    from oddkit.data.audio import read_audio

    rng = np.random.default_rng(0)
    arrays = {"audio": rng.normal(0, 0.3, 3000).astype(np.float32), "offsets": np.array([0, 1000, 3000]),
              "sample_rate": np.array(16000), "digit": np.array([1, 2], np.int8)}
    plain, packed = tmp_path / "plain.npz", tmp_path / "packed.npz"
    np.savez(plain, **arrays)
    np.savez_compressed(packed, **arrays)
    for path in (plain, packed):
        data = read_audio(path)
        expected = np.clip(arrays["audio"].astype(np.float64), -1, 1).astype(np.float32)
        assert np.array_equal(np.concatenate(data.waveforms), expected)
        assert data.sample_rate == 16000 and data.labels["digit"].tolist() == [1, 2]


# -- Parquet texts that are not UTF-8 -----------------------------------------------------------------------------

def _parquet(path, table):
    import pyarrow.parquet as pq

    pq.write_table(table, path)
    return path


def test_text_a_parquet_string_column_of_invalid_utf8_is_refused_naming_the_column(tmp_path):
    """pyarrow wrapped the bytes into Python strings only when the texts were listed, deep inside
    read_text_table: an ArrowException ('Wrapping ... failed'), not oddkit's error."""
    pa = pytest.importorskip("pyarrow")
    from oddkit.data.text import read_text_table, read_texts

    broken = pa.array([b"a cat", b"\xff\xfe dog"], type=pa.binary()).view(pa.string())
    path = _parquet(tmp_path / "broken.parquet", pa.table({"id": [1, 2], "message": broken}))
    for read in (lambda: read_text_table(path, text_col="message"), lambda: read_texts(path, text_col="message")):
        with pytest.raises(DataError, match=r"broken\.parquet: its texts cannot be read \(column 'message' holds "
                                            r"bytes that are not valid UTF-8.*store each text as a string of valid "
                                            r"UTF-8$"):
            read()


def test_text_a_parquet_binary_column_is_read_as_utf8_text_or_refused_naming_the_column(tmp_path):
    """A writer that stores strings as plain binary (no UTF-8 annotation): valid UTF-8 reads as text; bytes that
    are not UTF-8 are refused by the column's name (they were 'a bytes', row by row)."""
    pa = pytest.importorskip("pyarrow")
    from oddkit.data.text import read_text_table, read_texts

    good = _parquet(tmp_path / "good.parquet", pa.table({"text": pa.array(["a cát".encode(), b"dog"], pa.binary()),
                                                         "y": [0, 1]}))
    assert read_texts(good, label_col="y")[0] == ["a cát", "dog"]
    table = read_text_table(good)
    assert table.X["text"].tolist() == ["a cát", "dog"] and table.y.tolist() == [0, 1]
    bad = _parquet(tmp_path / "bad.parquet", pa.table({"text": pa.array([b"ok", b"\xff"], pa.binary())}))
    with pytest.raises(DataError, match=r"column 'text' holds bytes that are not valid UTF-8, first in row 1\)"):
        read_text_table(bad)
    # pyarrow's message on a column named twice spans lines (the schema): one line here.
    twice = _parquet(tmp_path / "twice.parquet", pa.table([pa.array(["a"]), pa.array(["b"])], names=["text", "text"]))
    with pytest.raises(DataError, match=r"cannot read .*twice\.parquet as Parquet") as caught:
        read_text_table(twice)
    assert "\n" not in str(caught.value)


# -- csv's field limit is the process's ---------------------------------------------------------------------------

def test_text_reading_never_lowers_csvs_field_limit(tmp_path, monkeypatch):
    """csv.field_size_limit is one value for the whole process: a read that raised it and put back what it found
    could put the default back while another thread was reading a long field. No read lowers it."""
    from oddkit.data.text import read_text_table, read_texts

    calls = []
    real = csv.field_size_limit

    def recording(*args):
        before = real()
        calls.append((before, args))
        return real(*args)

    monkeypatch.setattr(csv, "field_size_limit", recording)
    long = "abcdefghij" * 20_000
    first = tmp_path / "first.tsv"
    first.write_text(f"ham\t{long}\nspam\tWIN\n", encoding="utf-8")
    blank = tmp_path / "blank.csv"
    blank.write_text(f"text,y\n{long},0\n  ,1\n", encoding="utf-8")
    for _ in range(2):
        assert read_texts(first)[0] == [long, "WIN"]
        assert len(read_text_table(first).X) == 2
        with pytest.raises(DataError, match="line 3 is"):
            read_text_table(blank)
    lowered = [(before, args) for before, args in calls if args and args[0] < before]
    assert not lowered, f"csv's field limit was lowered: {lowered}"
    assert real() >= 200_000


def test_text_concurrent_reads_of_long_fields_do_not_cut_each_other_short(tmp_path, monkeypatch):
    """Thread A raises the limit, thread B raises it (saving A's raised value), A ends and puts back the
    default, B reads a 200,000-character field: 'field larger than field limit'. Played in that order here."""
    from oddkit.data import text as text_module
    from oddkit.data.text import read_texts

    default = csv.field_size_limit(131_072)  # as a fresh process has it
    long = "abcdefghij" * 20_000
    path = tmp_path / "long.tsv"
    path.write_text(f"ham\t{long}\nspam\tWIN\n", encoding="utf-8")
    real_open = text_module._open_text
    inside = {name: threading.Event() for name in ("A", "B")}
    go = {name: threading.Event() for name in ("A", "B")}
    held = set()

    def pausing(p):
        name = threading.current_thread().name
        if name in inside and name not in held:  # the first file opened by each reader: its header
            held.add(name)
            inside[name].set()
            assert go[name].wait(10)
        return real_open(p)

    monkeypatch.setattr(text_module, "_open_text", pausing)
    results = {}

    def read(name):
        try:
            results[name] = read_texts(path)[0]
        except Exception as exc:  # noqa: BLE001 - the test reports what failed
            results[name] = exc

    try:
        a = threading.Thread(target=read, args=("A",), name="A")
        a.start()
        assert inside["A"].wait(10)
        b = threading.Thread(target=read, args=("B",), name="B")
        b.start()
        assert inside["B"].wait(10)
        go["A"].set()
        a.join(10)
        go["B"].set()
        b.join(10)
    finally:
        go["A"].set()
        go["B"].set()
        csv.field_size_limit(max(default, csv.field_size_limit()))
    assert results == {"A": [long, "WIN"], "B": [long, "WIN"]}, results


# -- only the columns a text table needs ----------------------------------------------------------------------

@pytest.fixture
def read_table_calls(monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    calls = []
    real = pq.read_table

    def recording(source, *args, **kwargs):
        calls.append(kwargs.get("columns"))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", recording)
    return calls


def test_text_a_parquet_table_is_read_for_its_text_label_and_id_columns_only(tmp_path, read_table_calls):
    from oddkit.data.text import read_text_table, read_texts

    frame = pd.DataFrame({"id": ["a", "b"], "wide": [np.zeros(1000).tolist()] * 2, "text": ["a cat", "a dog"],
                          "y": [0, 1], "other": [1.5, 2.5]})
    path = tmp_path / "wide.parquet"
    frame.to_parquet(path)
    table = read_text_table(path, id_cols=["id"])
    assert table.X["text"].tolist() == ["a cat", "a dog"] and table.y.tolist() == [0, 1]
    assert table.ids.to_dict("list") == {"id": ["a", "b"]}
    assert read_table_calls[-1] == ["id", "text", "y"]
    assert read_text_table(path, label_col=None).y is None and read_table_calls[-1] == ["text"]
    texts, labels = read_texts(path, label_col="y")
    assert texts == ["a cat", "a dog"] and labels.tolist() == [0, 1]
    assert read_table_calls[-1] == ["text", "y"]
    # A named index (an id column moved into the index) is still a column to read.
    path = tmp_path / "indexed.parquet"
    frame.set_index("id").to_parquet(path)
    assert read_text_table(path, id_cols=["id"]).ids["id"].tolist() == ["a", "b"]
    assert read_table_calls[-1] == ["text", "y", "id"]
    assert read_text_table(path, label_col=None).X["text"].tolist() == ["a cat", "a dog"]
    assert read_table_calls[-1] == ["text"]


def test_text_a_missing_column_still_lists_every_column_of_the_file(tmp_path, read_table_calls):
    from oddkit.data.text import read_text_table, read_texts

    frame = pd.DataFrame({"message": ["a cat"], "score": [1.0], "y": [0]})
    for name in ("t.parquet", "t.csv"):
        path = tmp_path / name
        frame.to_parquet(path) if name.endswith("parquet") else frame.to_csv(path, index=False)
        for read, message in (
                (lambda: read_text_table(path), r"has several columns \('message', 'score', 'y'\)"),
                (lambda: read_text_table(path, text_col="body"),
                 r"text column 'body' not found .*its columns are 'message', 'score', 'y'"),
                (lambda: read_text_table(path, text_col="message", id_cols=["key"]),
                 r"id column\(s\) 'key' not found .*its columns are 'message', 'score', 'y'"),
                (lambda: read_text_table(path, text_col="message", label_col="label"),
                 r"label column 'label' not found .*its columns are 'message', 'score', 'y'"),
                (lambda: read_texts(path, text_col="message", label_col="label"),
                 r"label column 'label' not found .*its columns are 'message', 'score', 'y'")):
            with pytest.raises(ColumnMismatchError, match=message):
                read()


def test_text_a_csv_line_with_a_field_too_many_is_still_refused(tmp_path):
    """pandas' usecols drops the fields of a line beyond the header's silently ('hello, world' read as 'hello'):
    a CSV is read whole, so that such a line stays an error."""
    from oddkit.data.text import read_text_table

    path = tmp_path / "ragged.csv"
    path.write_text("text,y,other\nhello there,0,x\nhello, world,1,x\nok,0,x\n", encoding="utf-8")
    with pytest.raises(DataError, match="Expected 3 fields in line 3, saw 4"):
        read_text_table(path)


# -- tokenizing in chunks bounded by characters -----------------------------------------------------------------

class _CountingTokenizer:
    """A Hugging Face tokenizer that records the batches it encodes."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def encode_batch(self, texts, **kwargs):
        self.batches.append([len(t) for t in texts])
        return self.inner.encode_batch(texts, **kwargs)


def test_text_chunks_are_bounded_by_characters_as_well_as_by_count(monkeypatch):
    """1,024 texts of 100,000 characters each held some 8 GB of encodings at once: a chunk also stops at
    _ENCODE_CHARS characters (a longer text alone), with the ids and offsets the texts get all at once."""
    from oddkit.data import text as text_module
    from oddkit.data.text import TextTokenizer, synthetic_corpus

    texts, _ = synthetic_corpus(100, 10, random_state=1)
    tokenizer = TextTokenizer(vocab_size=200).fit(texts)
    many = [" ".join(texts[i:i + k]) for i, k in zip(range(60), [1, 3, 12, 1, 2, 30] * 10)]
    monkeypatch.setattr(text_module, "_ENCODE_CHUNK", 10 ** 9)
    monkeypatch.setattr(text_module, "_ENCODE_CHARS", 10 ** 12)
    ids, spans = tokenizer.encode(many), tokenizer.offsets(many)
    counting = _CountingTokenizer(tokenizer.tokenizer_)
    monkeypatch.setattr(tokenizer, "tokenizer_", counting)
    monkeypatch.setattr(text_module, "_ENCODE_CHUNK", 7)
    monkeypatch.setattr(text_module, "_ENCODE_CHARS", 500)
    assert tokenizer.encode(many) == ids and tokenizer.offsets(many) == spans
    batches = counting.batches[:len(counting.batches) // 2]
    assert [n for batch in batches for n in batch] == [len(t) for t in many]
    assert all(len(batch) <= 7 for batch in batches)
    assert all(sum(batch) <= 500 or len(batch) == 1 for batch in batches)
    assert any(len(batch) == 1 and batch[0] > 500 for batch in batches)  # a long text alone
    # Greedy: a chunk ends only where the next text would pass a limit.
    for batch, following in zip(batches, batches[1:]):
        assert len(batch) == 7 or sum(batch) + following[0] > 500
    expected = 0
    count = chars = 0
    for n in map(len, many):
        if count and (count == 7 or chars + n > 500):
            expected, count, chars = expected + 1, 0, 0
        count, chars = count + 1, chars + n
    assert len(batches) == expected + 1


def test_text_the_default_chunk_holds_at_most_about_two_million_characters():
    from oddkit.data import text as text_module

    assert text_module._ENCODE_CHUNK == 1024 and 1_000_000 <= text_module._ENCODE_CHARS <= 4_000_000


def test_a_parquet_table_whose_strings_are_not_utf8_is_refused_by_column(tmp_path, monkeypatch, capsys):
    """Any Parquet table, not only texts: pandas failed deep inside ('Wrapping ... failed', naming nothing)
    when the model's preprocessing first listed the column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from conftest import run_cli
    from oddkit.data.io import iter_table_batches, read_table
    from oddkit.data.stream import TableSource

    raw = pa.array([b"x", b"\xff\xfe", b"y"] * 4, type=pa.binary())
    strings = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())  # a writer that trusted its bytes
    pq.write_table(pa.table({"a": pa.array(np.arange(12.0)), "c": strings}), tmp_path / "bad.parquet")
    message = r"bad.parquet.*column 'c' holds bytes that are not valid UTF-8, first in row 1"
    with pytest.raises(DataError, match=message):
        read_table(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=message):
        list(iter_table_batches(tmp_path / "bad.parquet", batch_rows=5))
    with pytest.raises(DataError, match=message):
        list(TableSource(tmp_path / "bad.parquet", batch_rows=5).batches())
    code, _, err = run_cli(monkeypatch, capsys, "fit", tmp_path / "bad.parquet", "--detector", "gaussian", "--out",
                           tmp_path / "m")
    assert code != 0 and re.search(message, err) and len(err.strip().splitlines()) == 1
