"""Readable-code auto-encoders: what a text gets depends on that text alone (TextSummaryAutoEncoder),
and a text's chart is bounded in length (TreeAutoEncoder.max_chart_length)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tokenizers")

from oddkit import TextSummaryAutoEncoder, TreeAutoEncoder, load  # noqa: E402
from oddkit.data.text import synthetic_corpus  # noqa: E402
from oddkit.exceptions import ExplainError, ModelFileError, ParameterError  # noqa: E402

TEXTS, LABELS = synthetic_corpus(80, 10, random_state=1)
NORMAL = TEXTS[:80]
SHORT = "the cat"
LONG = " ".join(NORMAL[:12])  # longer than max_length: the batch's widest row, the others padded


@pytest.fixture(scope="module")
def summary_model():
    return TextSummaryAutoEncoder(epochs=1, pretrain_epochs=1, batch_size=16, hidden_dim=24, embed_dim=16,
                                  random_state=0, n_threads=1).fit(NORMAL)


@pytest.fixture(scope="module")
def tree_model():
    return TreeAutoEncoder(epochs=1, hidden_dim=16, embed_dim=16, max_chart_length=8, random_state=0,
                           n_threads=1).fit(NORMAL)


# -- TextSummaryAutoEncoder: nothing depends on the other texts of a call ---------------------------

def test_a_texts_score_summary_and_rebuilt_text_do_not_depend_on_the_other_texts(summary_model):
    text = NORMAL[3]
    contexts = [[text], [text, SHORT], [text, LONG], [LONG, SHORT, text]]
    where = [0, 0, 0, 2]
    scores = [summary_model.decision_function(c)[i] for c, i in zip(contexts, where)]
    summaries = [summary_model.encode_text(c)[i] for c, i in zip(contexts, where)]
    rebuilt = [summary_model.decode_text([s, SHORT, LONG])[0] for s in summaries]
    for other in range(1, len(contexts)):
        np.testing.assert_array_equal(scores[other], scores[0])
        assert summaries[other] == summaries[0]
        assert rebuilt[other] == rebuilt[0]
    for context in contexts:  # no explanation by column, whatever the neighbours
        with pytest.raises(ExplainError, match="does not split its score"):
            summary_model.explain(context)


def test_texts_scored_one_at_a_time_and_together_get_the_same_results(summary_model):
    texts = TEXTS[60:90]
    np.testing.assert_array_equal(np.concatenate([summary_model.decision_function([t]) for t in texts]),
                                  summary_model.decision_function(texts))
    summaries = summary_model.encode_text(texts)
    assert [summary_model.encode_text([t])[0] for t in texts] == summaries
    assert [summary_model.decode_text([s])[0] for s in summaries] == summary_model.decode_text(summaries)


def test_the_encoder_reads_each_sequence_as_it_reads_it_alone():
    """The bidirectional encoder packs padded batches: padding never enters the backward pass."""
    import torch

    from oddkit.nn.summary import _Encoder, length_mask

    torch.manual_seed(0)
    encoder = _Encoder(8, 12).eval()
    vectors = torch.randn(3, 9, 8)
    lengths = torch.tensor([4, 9, 1])
    with torch.no_grad():
        states, summary = encoder(vectors, length_mask(lengths, 9))
        for i, n in enumerate(lengths.tolist()):
            alone_states, alone_summary = encoder(vectors[i:i + 1, :n], length_mask(lengths[i:i + 1], n))
            torch.testing.assert_close(states[i, :n], alone_states[0], rtol=0, atol=1e-6)
            torch.testing.assert_close(summary[i], alone_summary[0], rtol=0, atol=1e-6)


# -- TreeAutoEncoder: max_chart_length --------------------------------------------------------------

def test_texts_within_the_chart_limit_score_and_parse_as_without_one(tree_model):
    from sklearn.base import clone

    texts = [t for t in TEXTS if len(t.split()) <= 8]
    assert len(texts) > 30
    unlimited = clone(tree_model).set_params(max_chart_length=300)
    for name in ("preprocessor_", "model_"):
        setattr(unlimited, name, getattr(tree_model, name))
    np.testing.assert_array_equal(tree_model.decision_function(texts), unlimited.decision_function(texts))
    assert tree_model.parse(texts) == unlimited.parse(texts)
    # and each is its chart's mean token loss, as scoring always was (on the model's one thread, as
    # it scores: more threads may sum in another order, which moves the last bit)
    import torch

    from oddkit.train import torch_threads

    ids = tree_model.preprocessor_.tokenizer_.encode(texts[:5])
    with torch_threads(tree_model.n_threads), torch.inference_mode():
        direct = [tree_model.model_.token_losses(torch.tensor([row])).mean(1).item() for row in ids]
    np.testing.assert_array_equal([tree_model.decision_function([t])[0] for t in texts[:5]], direct)


def test_a_longer_text_is_scored_as_the_mean_token_loss_of_its_windows(tree_model):
    words = " ".join(NORMAL[:6]).split()[:20]  # 20 tokens, limit 8: windows of 7, 7 and 6 tokens
    windows = [words[:7], words[7:14], words[14:]]
    each = tree_model.decision_function([" ".join(w) for w in windows])
    score = tree_model.decision_function([" ".join(words)])[0]
    np.testing.assert_allclose(score, (7 * each[0] + 7 * each[1] + 6 * each[2]) / 20, rtol=1e-12)
    # its tree joins the windows' trees by halving
    trees = tree_model.parse([" ".join(w) for w in windows])
    assert tree_model.parse([" ".join(words)]) == [f"(({trees[0]} {trees[1]}) {trees[2]})"]
    # nor does it depend on the other texts scored with it (but for the last bits: windows of one
    # length are charted in one batch)
    together = tree_model.decision_function([SHORT, " ".join(words), LONG])
    np.testing.assert_allclose(together[1], score, rtol=1e-6)


def test_a_text_ten_times_the_default_limit_scores_and_parses_in_bounded_time():
    model = TreeAutoEncoder(epochs=1, hidden_dim=8, embed_dim=8, random_state=0, n_threads=1).fit(NORMAL[:30])
    assert model.max_chart_length == 50
    words = " ".join(NORMAL * 3).split()[:500]
    text = " ".join(words)
    score = model.decision_function([text, SHORT])
    assert np.isfinite(score).all()
    tree = model.parse([text])[0]
    assert tree.replace("(", " ").replace(")", " ").split() == words
    assert tree.count("(") == len(words) - 1  # a binary tree over every token


def test_the_chart_limit_is_validated_when_fitting_scoring_and_loading(tree_model, tmp_path):
    import json

    from oddkit.persist import seal

    with pytest.raises(ParameterError, match="max_chart_length"):
        TreeAutoEncoder(max_chart_length=1).fit(NORMAL)
    with pytest.raises(ParameterError, match="max_chart_length"):
        TreeAutoEncoder(max_chart_length=10_000).fit(NORMAL)
    from sklearn.base import clone

    changed = clone(tree_model).set_params(max_chart_length=0)
    for name in ("preprocessor_", "model_"):
        setattr(changed, name, getattr(tree_model, name))
    changed.threshold_ = tree_model.threshold_
    with pytest.raises(ParameterError, match="max_chart_length"):
        changed.decision_function(NORMAL[:2])
    with pytest.raises(ParameterError, match="max_chart_length"):
        changed.parse(NORMAL[:2])
    tree_model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["params"]["max_chart_length"] = 10**9
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    seal(tmp_path / "m")
    with pytest.raises(ModelFileError, match="max_chart_length"):
        load(tmp_path / "m")


def test_a_folder_saved_before_the_chart_limit_loads_with_the_limit(tree_model, tmp_path):
    import json

    from oddkit.persist import seal

    tree_model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["params"]["max_chart_length"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    seal(tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert loaded.max_chart_length == TreeAutoEncoder._saved_param_defaults["max_chart_length"] == 50
    short = [t for t in NORMAL if len(t.split()) <= 8][:10]  # within both limits: scored as they were
    np.testing.assert_array_equal(loaded.decision_function(short), tree_model.decision_function(short))
    assert np.isfinite(loaded.decision_function([LONG])).all()


# -- both: the training scores are the scores decision_function gives the training texts ------------

@pytest.mark.parametrize("make", [
    lambda: TreeAutoEncoder(epochs=1, hidden_dim=16, embed_dim=16, max_length=8, max_chart_length=12,
                            random_state=0, n_threads=1),
    lambda: TextSummaryAutoEncoder(epochs=1, pretrain_epochs=0, batch_size=16, hidden_dim=16, embed_dim=16,
                                   max_length=8, random_state=0, n_threads=1),
], ids=["tree", "summary"])
def test_training_scores_are_decision_function_of_the_training_texts_longer_than_max_length(make):
    # The threshold is set from decision_scores_ and applied to decision_function: one scale for both.
    train = NORMAL[:40] + [" ".join(NORMAL[i:i + 4]) for i in range(40, 80, 4)]  # 10 texts of 4 sentences
    model = make()
    assert sum(len(row) > model.max_length for row in model.fit(train)._encode(train, cut=False)) >= 10
    np.testing.assert_allclose(model.decision_scores_, model.decision_function(train), rtol=1e-9, atol=0)
    np.testing.assert_array_equal(model.labels_, model.predict(train))


def test_summaries_come_with_the_scores_of_decision_function(summary_model):
    texts = TEXTS[60:75] + [LONG]
    summaries, scores = summary_model.encode_text(texts, return_scores=True)
    assert summaries == summary_model.encode_text(texts)
    assert scores.dtype == np.float64 and scores.shape == (len(texts),)
    np.testing.assert_array_equal(scores, summary_model.decision_function(texts))
