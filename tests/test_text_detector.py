"""TextAutoEncoderDetector: learns a toy language, ranks malformed sentences higher, saves and loads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tokenizers")

from sklearn.base import clone  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from oddkit import TextAutoEncoderDetector, load  # noqa: E402
from oddkit.data.text import synthetic_corpus  # noqa: E402
from oddkit.exceptions import (ColumnMismatchError, DataError, ModelFileError, ParameterError,  # noqa: E402
                               TooFewRowsError)

SMALL = dict(embedding_dim=32, hidden_size=64, code_size=16, epochs=8, n_threads=1, random_state=0)


@pytest.fixture(scope="module")
def corpus():
    train, _ = synthetic_corpus(400, 0, random_state=0)
    test, y = synthetic_corpus(80, 40, random_state=1)
    return train, test, y


@pytest.fixture(scope="module", params=["bpe", "word"])
def fitted(request, corpus):
    train, _, _ = corpus
    return TextAutoEncoderDetector(tokenizer=request.param, **SMALL).fit(train)


def test_ranks_malformed_sentences_higher(fitted, corpus):
    _, test, y = corpus
    scores = fitted.decision_function(test)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    normal = scores[:80]
    shuffled, foreign = scores[80::2], scores[81::2]  # synthetic_corpus alternates the two kinds
    ones = np.ones(20)
    assert roc_auc_score(np.r_[np.zeros(80), ones], np.r_[normal, shuffled]) > 0.9
    assert roc_auc_score(np.r_[np.zeros(80), ones], np.r_[normal, foreign]) > 0.95
    # The threshold set from contamination flags about that share of the training texts.
    assert fitted.labels_.mean() == pytest.approx(0.1, abs=0.02)
    assert fitted.predict(test)[80:].mean() > fitted.predict(test)[:80].mean()


def test_estimator_contract_and_seed(corpus):
    train, test, _ = corpus
    detector = TextAutoEncoderDetector(tokenizer="word", **{**SMALL, "epochs": 2})
    assert clone(detector).get_params() == detector.get_params()
    assert detector.fit(train[:120]) is detector
    again = clone(detector).fit(train[:120])
    assert np.array_equal(detector.decision_function(test), again.decision_function(test))
    other = clone(detector).set_params(random_state=1).fit(train[:120])
    assert not np.array_equal(detector.decision_function(test), other.decision_function(test))


def test_save_load_identity(fitted, corpus, tmp_path):
    _, test, _ = corpus
    fitted.save(tmp_path / "m")
    assert (tmp_path / "m" / "tokenizer.json").is_file()
    restored = load(tmp_path / "m")
    assert isinstance(restored, TextAutoEncoderDetector)
    assert np.array_equal(restored.decision_function(test), fitted.decision_function(test))
    assert restored.threshold_ == fitted.threshold_
    pd.testing.assert_frame_equal(restored.explain(test[:3]), fitted.explain(test[:3]))
    # The tokenizer is covered by the folder's integrity check.
    path = tmp_path / "m" / "tokenizer.json"
    document = json.loads(path.read_text())
    document["truncation"] = {"direction": "Right", "max_length": 2, "strategy": "LongestFirst", "stride": 0}
    path.write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match="tokenizer.json does not match its checksum"):
        load(tmp_path / "m")


def test_explain_names_the_tokens_that_raise_the_score(fitted, corpus):
    _, test, _ = corpus
    foreign = test[81]  # a sentence with two or three words from outside the language
    frame = fitted.explain(pd.Series([test[0], foreign], index=["a", "b"]))
    assert list(frame.columns) == ["row", "position", "token", "word_index", "word", "loss", "contribution", "share"]
    sums = frame.groupby("row", sort=False)["contribution"].sum()
    assert np.allclose(sums.to_numpy(), fitted.decision_function([test[0], foreign]))
    assert np.allclose(frame.groupby("row")["share"].sum(), 1.0)
    rows = frame[frame["row"] == "b"]
    top = rows.nlargest(2, "contribution")["position"].tolist()
    foreign_positions = [i for i, w in enumerate(foreign.split()) if w not in " ".join(test[:80]).split()]
    if fitted.tokenizer == "word":  # one token per word: the worst tokens are the foreign words
        assert set(top) <= set(foreign_positions)
    else:  # subwords: the worst tokens spell the foreign words, unseen characters included
        assert not set(rows.nlargest(2, "contribution")["token"]) & {"▁the", "[EOS]"}
    assert rows["token"].iloc[-1] == "[EOS]"
    # Summed by word, the words adding most are the foreign ones, as written in the text.
    by_word = rows.groupby(["word_index", "word"])["contribution"].sum().nlargest(2)
    assert {w for _, w in by_word.index} <= {foreign.split()[i] for i in foreign_positions}
    assert set(rows["word"]) == set(foreign.split()) | {"[EOS]"}


def test_dataframe_input_and_bad_input(corpus):
    train, test, _ = corpus
    frame = pd.DataFrame({"id": range(120), "message": train[:120]})
    detector = TextAutoEncoderDetector(text_col="message", **{**SMALL, "epochs": 1}).fit(frame)
    assert detector.n_features_in_ == 1 and list(detector.feature_names_in_) == ["message"]
    assert detector.decision_function(pd.DataFrame({"message": test[:3]})).shape == (3,)
    with pytest.raises(ColumnMismatchError, match="'message' not found"):
        detector.decision_function(pd.DataFrame({"body": test[:3]}))
    with pytest.raises(DataError, match="row 1"):
        detector.decision_function(["the cat sees a dog", ""])
    with pytest.raises(DataError, match="single string"):
        detector.decision_function("the cat sees a dog")
    with pytest.raises(TooFewRowsError):
        TextAutoEncoderDetector().fit(["only one"])
    with pytest.raises(ParameterError, match="tokenizer"):
        TextAutoEncoderDetector(tokenizer="char").fit(train)
    with pytest.raises(ParameterError, match="word_dropout"):
        TextAutoEncoderDetector(word_dropout=1.0).fit(train)


@pytest.mark.parametrize("tokenizer_json", [
    "{not json",
    '{"version": "1.0", "model": {"type": "NoSuchModel"}}',
    '{"model": 1}',
], ids=["not-json", "unknown-model", "wrong-shape"])
def test_a_broken_tokenizer_is_refused_even_with_checksums_updated(fitted, corpus, tmp_path, tokenizer_json):
    from oddkit.persist import seal

    _, test, _ = corpus
    fitted.save(tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").write_text(tokenizer_json)
    seal(tmp_path / "m")  # whoever can write every file can recompute the checksums
    with pytest.raises(ModelFileError, match="tokenizer"):
        load(tmp_path / "m")


def test_a_tokenizer_of_another_vocabulary_is_refused_with_checksums_updated(corpus, tmp_path):
    from oddkit.persist import seal

    train, _, _ = corpus
    small = TextAutoEncoderDetector(tokenizer="word", **SMALL).fit(train)
    other = TextAutoEncoderDetector(tokenizer="word", **{**SMALL, "vocab_size": 20}).fit(train)
    small.save(tmp_path / "m")
    other.save(tmp_path / "other")
    (tmp_path / "m" / "tokenizer.json").write_bytes((tmp_path / "other" / "tokenizer.json").read_bytes())
    seal(tmp_path / "m")
    with pytest.raises(ModelFileError):
        load(tmp_path / "m")


def test_token_losses_match_the_full_softmax_and_ignore_padding():
    """The loss computed on real tokens only equals cross-entropy over every position masked by
    padding (the independent oracle), and a row's losses do not depend on the padding after it."""
    import torch

    from oddkit.nn.sequence import SequenceAutoEncoder

    torch.manual_seed(0)
    module = SequenceAutoEncoder(50, 8, 16, 4).eval()
    lengths = [3, 7, 12, 5]
    tokens = torch.zeros(4, 12, dtype=torch.long)
    for i, length in enumerate(lengths):
        tokens[i, :length] = torch.randint(4, 50, (length,))
    with torch.no_grad():
        losses = module.token_losses(tokens)
        targets = tokens[:, 1:]
        oracle = torch.nn.functional.cross_entropy(module(tokens).transpose(1, 2), targets, reduction="none")
        assert torch.allclose(losses, oracle * (targets != 0), atol=1e-5)
        assert (losses[targets == 0] == 0).all()
        padded = torch.cat([tokens, torch.zeros(4, 9, dtype=torch.long)], dim=1)
        assert torch.allclose(module.token_losses(padded)[:, :11], losses, atol=1e-5)
        alone = module.token_losses(tokens[:1, :3])
        assert torch.allclose(alone, losses[:1, :2], atol=1e-5)


def test_scores_do_not_depend_on_the_order_or_company_of_the_rows(fitted, corpus):
    _, test, _ = corpus
    scores = fitted.decision_function(test)
    order = np.random.default_rng(0).permutation(len(test))
    shuffled = fitted.decision_function([test[i] for i in order])
    np.testing.assert_allclose(shuffled, scores[order], rtol=1e-5)
    one_by_one = np.array([fitted.decision_function([text])[0] for text in test[:10]])
    np.testing.assert_allclose(one_by_one, scores[:10], rtol=1e-5)

