"""oddkit.data.text: reading texts, the tokenizer, the toy language."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tokenizers")

from oddkit.data.text import SPECIAL_TOKENS, TextTokenizer, read_texts, synthetic_corpus  # noqa: E402
from oddkit.exceptions import (ColumnMismatchError, DataError, EmptyDataError, LabelError,  # noqa: E402
                               MissingDependencyError, ParameterError)

SMS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sms_spam_collection.tsv"


@pytest.fixture(scope="module")
def corpus():
    return synthetic_corpus(60, 10, random_state=3)


# -- the toy language -----------------------------------------------------------------------------

def test_synthetic_corpus_is_seeded_and_labelled(corpus):
    texts, y = corpus
    again, y2 = synthetic_corpus(60, 10, random_state=3)
    assert texts == again and np.array_equal(y, y2)
    assert y.tolist() == [0] * 60 + [1] * 10
    assert synthetic_corpus(60, 10, random_state=4)[0] != texts
    normal_words = {w for t in texts[:60] for w in t.split()}
    shuffled, foreign = texts[60::2], texts[61::2]
    # A shuffled sentence keeps the language's words; a foreign one holds words from outside it.
    assert all(set(t.split()) <= normal_words | {"the"} for t in shuffled)
    assert all(not set(t.split()) <= normal_words for t in foreign)
    with pytest.raises(ParameterError, match="kinds"):
        synthetic_corpus(5, 2, kinds=("reversed",))


# -- the tokenizer --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["bpe", "word"])
def test_round_trip_and_json_identity(corpus, kind):
    texts, _ = corpus
    tok = TextTokenizer(kind=kind, vocab_size=300).fit(texts)
    assert [tok.id_to_token(i) for i in range(4)] == list(SPECIAL_TOKENS)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert 8 <= tok.vocab_size_ <= 300
    ids = tok.encode(texts)
    assert all(min(row) >= 4 for row in ids)  # known words never become [UNK] or a special token
    assert tok.decode(ids) == texts
    restored = TextTokenizer.from_json(tok.to_json())
    assert restored.to_json() == tok.to_json()
    assert restored.encode(texts) == ids
    assert (restored.kind, restored.lowercase, restored.max_length, restored.vocab_size_) == \
        (kind, True, None, tok.vocab_size_)


def test_word_tokens_are_readable_and_unknown_words_map_to_unk():
    tok = TextTokenizer(kind="word").fit(["the cat sat", "the dog sat"])
    assert tok.tokens("The cat sat!") == ["the", "cat", "sat", "[UNK]"]
    assert tok.encode(["a cat"])[0][0] == tok.unk_id
    assert TextTokenizer(kind="word", lowercase=False).fit(["The cat"]).tokens("the cat") == ["[UNK]", "cat"]


def test_bpe_spells_unseen_words_from_pieces(corpus):
    texts, _ = corpus
    tok = TextTokenizer(kind="bpe", vocab_size=300).fit(texts)
    pieces = tok.tokens("the catdog")
    assert pieces[0] == "▁the" and len(pieces) >= 3 and "[UNK]" not in pieces
    assert tok.decode(tok.encode(["the catdog"])) == ["the catdog"]


def test_tokens_map_back_to_the_words_of_the_text():
    tok = TextTokenizer(kind="bpe", vocab_size=100).fit(["the cat sat on the mat", "a dog"])
    text = "The  Cat zz! mat"
    assert tok.tokens(text)[:3] == ["▁the", "▁", "▁cat"]
    words = text.split()
    assert [words[i] for i in tok.words([text])[0]] == ["The", "Cat", "Cat", "zz!", "zz!", "zz!", "zz!", "mat"]
    word = TextTokenizer(kind="word").fit(["the cat sat"])
    assert word.words(["The cat zz!"]) == [[0, 1, 2, 2]]


def test_max_length_truncates_and_survives_json(corpus):
    texts, _ = corpus
    tok = TextTokenizer(kind="word", max_length=3).fit(texts)
    assert {len(row) for row in tok.encode(texts)} == {3}
    assert TextTokenizer.from_json(tok.to_json()).max_length == 3
    assert len(TextTokenizer.from_json(tok.to_json()).tokens(texts[0])) == 3


def test_tokenizer_errors(corpus):
    texts, _ = corpus
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="fit"):
        TextTokenizer().encode(texts)
    for params, name in (({"kind": "char"}, "kind"), ({"vocab_size": 3}, "vocab_size"),
                         ({"max_length": 0}, "max_length"), ({"lowercase": "yes"}, "lowercase")):
        with pytest.raises(ParameterError, match=name):
            TextTokenizer(**params).fit(texts)
    tok = TextTokenizer(kind="word").fit(texts)
    with pytest.raises(DataError, match="outside the vocabulary"):
        tok.decode([[5, 10_000]])
    with pytest.raises(DataError, match="row 1"):
        tok.encode(["the cat", "  "])
    with pytest.raises(DataError, match="not a tokenizer JSON"):
        TextTokenizer.from_json('{"model": 3')


def test_missing_tokenizers_names_the_install(monkeypatch, corpus):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'oddkit\[text\]'"):
        TextTokenizer().fit(corpus[0])


# -- reading texts --------------------------------------------------------------------------------

def test_read_texts_from_objects():
    assert read_texts(["a b", "c"]) == (["a b", "c"], None)
    assert read_texts(pd.Series(["x", "y"])) == (["x", "y"], None)
    texts, y = read_texts(pd.DataFrame({"msg": ["x", "y"], "flag": [0, 1]}), text_col="msg", label_col="flag")
    assert texts == ["x", "y"] and y.tolist() == [0, 1]
    with pytest.raises(DataError, match=r"row 2 is a float"):
        read_texts(["ok", "fine", float("nan")])
    with pytest.raises(DataError, match=r"first rows: 1"):
        read_texts(pd.Series(["ok", ""]))
    with pytest.raises(EmptyDataError):
        read_texts([])


def test_read_texts_from_files(tmp_path):
    sms = tmp_path / "messages.tsv"
    sms.write_text("ham\tsee you at noon\nspam\tWIN a prize\tnow\nham\tok\n", encoding="utf-8")
    texts, y = read_texts(sms)
    assert texts == ["see you at noon", "WIN a prize\tnow", "ok"] and y.tolist() == [0, 1, 0]
    assert read_texts(sms, text_col="text")[0] == texts
    with pytest.raises(ColumnMismatchError, match="'label' and 'text'"):
        read_texts(sms, text_col="body")

    table = tmp_path / "messages.csv"
    pd.DataFrame({"id": [1, 2], "body": ["hello there", "buy now"], "y": [0, 1]}).to_csv(table, index=False)
    texts, y = read_texts(table, text_col="body", label_col="y")
    assert texts == ["hello there", "buy now"] and y.tolist() == [0, 1]
    assert read_texts(table, text_col="body")[1] is None
    with pytest.raises(ColumnMismatchError, match="none is named 'text'"):
        read_texts(table)
    with pytest.raises(ColumnMismatchError, match="'nope' not found"):
        read_texts(table, text_col="nope")

    named = tmp_path / "named.tsv"
    named.write_text("kind\ttext\nham\thi\nspam\tprize\n", encoding="utf-8")
    texts, y = read_texts(named, label_col="kind", anomaly_label="spam")
    assert texts == ["hi", "prize"] and y.tolist() == [0, 1]
    with pytest.raises(LabelError, match="0/1"):
        read_texts(named, label_col="kind")

    blank = tmp_path / "blank.csv"
    blank.write_text("text\nfine\n\"\"\nalso fine\n", encoding="utf-8")
    with pytest.raises(DataError, match="first rows: 1"):
        read_texts(blank)
    with pytest.raises(DataError, match="unknown file type"):
        read_texts(tmp_path / "x.json")
    with pytest.raises(DataError, match="does not exist"):
        read_texts(tmp_path / "missing.csv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("ham\tfine\nno tab here\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        read_texts(bad)


@pytest.mark.skipif(not SMS.exists(), reason="the SMS Spam Collection is not in ../shared/data")
def test_reads_the_sms_collection():
    texts, y = read_texts(SMS)
    assert len(texts) == 5574 and int(y.sum()) == 747


def test_many_texts_are_tokenized_in_chunks_with_the_same_ids_and_offsets(monkeypatch):
    """encode and offsets tokenize 1,024 texts at a time (a request of 40,000 long texts held 2.4 GB of
    encodings at once): across the chunks' edges every text gets the ids and offsets it gets alone."""
    from oddkit.data import text as text_module
    from oddkit.data.text import TextTokenizer, synthetic_corpus

    texts, _ = synthetic_corpus(300, 30, random_state=3)
    tokenizer = TextTokenizer(vocab_size=300).fit(texts)
    many = (texts * 8)[:2500]
    monkeypatch.setattr(text_module, "_ENCODE_CHUNK", 1024)
    chunked, spans = tokenizer.encode(many), tokenizer.offsets(many)
    monkeypatch.setattr(text_module, "_ENCODE_CHUNK", 10 ** 9)  # all at once, as before
    assert chunked == tokenizer.encode(many) and spans == tokenizer.offsets(many)
    assert chunked[1024] == tokenizer.encode([many[1024]])[0] and len(chunked) == 2500
