"""Text files as editors write them: a byte-order mark, a header without a text column, a first
line longer than csv's field limit, blank lines and blank messages named by their line."""

from __future__ import annotations

import gzip

import pytest

pytest.importorskip("tokenizers")

from conftest import run_cli  # noqa: E402

from oddkit.data.text import read_text_table, read_texts  # noqa: E402
from oddkit.exceptions import ColumnMismatchError, DataError, EmptyDataError  # noqa: E402

BOM = "\ufeff"


def _write(path, text: str):
    path.write_bytes(text.encode("utf-8"))
    return path


# -- the byte-order mark ----------------------------------------------------------------------------

def test_a_header_after_a_byte_order_mark_is_a_header(tmp_path):
    path = _write(tmp_path / "excel.tsv", f"{BOM}text\ty\nWIN a prize\t1\nhello there\t0\n")
    texts, y = read_texts(path, label_col="y")
    assert texts == ["WIN a prize", "hello there"] and y.tolist() == [1, 0]
    table = read_text_table(path)
    assert table.X["text"].tolist() == texts and table.y.tolist() == [1, 0]
    csv_path = _write(tmp_path / "excel.csv", f"{BOM}text,y\nWIN a prize,1\nhello there,0\n")
    assert read_texts(csv_path, label_col="y")[0] == texts


def test_a_byte_order_mark_before_the_first_label_keeps_it_a_label(tmp_path):
    path = _write(tmp_path / "sms.tsv", f"{BOM}spam\tWIN a prize\nham\thello there\n")
    texts, y = read_texts(path)
    assert texts == ["WIN a prize", "hello there"] and y.tolist() == [1, 0]
    assert read_text_table(path).y.tolist() == [1, 0]
    packed = tmp_path / "sms.tsv.gz"
    packed.write_bytes(gzip.compress(f"{BOM}spam\tWIN\nham\thi\n".encode("utf-8")))
    assert read_texts(packed)[1].tolist() == [1, 0]


# -- the headerless layout needs its labels --------------------------------------------------------

def test_a_header_without_a_text_column_is_refused_naming_the_first_line(tmp_path):
    path = _write(tmp_path / "ids.tsv", "id\tmessage\n0\thello\n1\tWIN a prize\n")
    for read in (read_texts, read_text_table):
        with pytest.raises(ColumnMismatchError) as caught:
            read(path)
        message = str(caught.value)
        assert "\n" not in message
        assert "'id', 'message'" in message and "'text'" in message and "text_col" in message
        assert "'ham' or 'spam'" in message
    # Naming the column reads it as a table.
    assert read_texts(path, text_col="message")[0] == ["hello", "WIN a prize"]


def test_every_headerless_line_needs_a_known_label(tmp_path):
    path = _write(tmp_path / "mixed.tsv", "ham\thello\nspam\tWIN\nSpam\tagain\n")
    with pytest.raises(DataError, match=r"line 3 of .*'Spam', not a label .*'ham' or 'spam'"):
        read_texts(path)
    # anomaly_label names a further label of the layout.
    fraud = _write(tmp_path / "fraud.tsv", "ham\thello\nfraud\tsend money\n")
    assert read_texts(fraud, anomaly_label="fraud")[1].tolist() == [0, 1]
    with pytest.raises(ColumnMismatchError, match="'fraud'"):
        read_texts(_write(tmp_path / "fraud_first.tsv", "fraud\tsend money\nham\thi\n"))


def test_cli_refuses_a_header_without_a_text_column(tmp_path, monkeypatch, capsys):
    import oddkit

    model = tmp_path / "m"
    oddkit.TextAutoEncoderDetector(epochs=1, hidden_size=8, code_size=4, random_state=0, verbose=0,
                                   n_threads=1).fit(["the cat sat", "a dog ran", "the dog sat"] * 4).save(model)
    path = _write(tmp_path / "ids.tsv", "id\tmessage\n0\thello\n1\tWIN a prize\n")
    code, out, err = run_cli(monkeypatch, capsys, "score", model, path, "--out", "-")
    assert code != 0 and "Traceback" not in err and "'id', 'message'" in err and not out.strip()
    bom = _write(tmp_path / "bom.tsv", f"{BOM}text\ty\nthe cat sat\t0\nzorp qwix\t1\n")
    code, out, err = run_cli(monkeypatch, capsys, "score", model, bom, "--out", "-")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 3  # header + the 2 messages; 'text' and 'y' are not messages


# -- long first lines ---------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["headerless", "header"])
def test_a_first_line_longer_than_csvs_field_limit(tmp_path, layout):
    long = "abcdefghij" * 20_000  # 200,000 characters, above csv's 131,072
    if layout == "headerless":
        first = _write(tmp_path / "first.tsv", f"ham\t{long}\nspam\tWIN\n")
        later = _write(tmp_path / "later.tsv", f"spam\tWIN\nham\t{long}\n")
        texts, y = read_texts(first)
        assert texts == [long, "WIN"] and y.tolist() == [0, 1]
        assert sorted(read_texts(later)[0]) == sorted(texts)
    else:
        first = _write(tmp_path / "first.tsv", f"text{long}\ty\nhello\t0\n")  # a long header field
        with pytest.raises(ColumnMismatchError, match="no text column"):
            read_texts(first)
        first = _write(tmp_path / "first.csv", f"text,y\n{long},0\n")
        assert read_texts(first)[0] == [long]
    assert len(read_text_table(first).X) >= 1


# -- blank lines and blank messages ------------------------------------------------------------------

def test_blank_lines_are_skipped_and_blank_messages_named_by_their_line(tmp_path):
    sms = _write(tmp_path / "sms.tsv", "ham\thello\n\n   \nspam\tWIN\nham\t \nham\tbye\n")
    for read in (read_texts, read_text_table):
        with pytest.raises(DataError) as caught:
            read(sms)
        assert "line 5 is an empty or blank string" in str(caught.value) and str(sms) in str(caught.value)
    table = _write(tmp_path / "t.csv", 'text,y\nhello,0\n\n"two\nlines",1\n"",0\nok,0\n')
    for read in (read_texts, read_text_table):
        with pytest.raises(DataError) as caught:
            read(table)
        message = str(caught.value)
        assert "text column 'text' of" in message and str(table) in message
        assert "first lines: 6" in message and "DataFrame" not in message and "row" not in message
    ok = _write(tmp_path / "ok.tsv", "text\ty\n\nhello\t0\n\n\nWIN\t1\n")
    assert read_texts(ok, label_col="y")[0] == ["hello", "WIN"]
    assert read_texts(_write(tmp_path / "gap.tsv", "\nham\thello\n\nspam\tWIN\n"))[1].tolist() == [0, 1]
    with pytest.raises(EmptyDataError, match="only blank lines"):
        read_texts(_write(tmp_path / "blank.tsv", "\n  \n\n"))
