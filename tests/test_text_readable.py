"""Readable codes of text: summaries (TextSummaryAutoEncoder) and trees (TreeAutoEncoder)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tokenizers")

from oddkit import TextSummaryAutoEncoder, TreeAutoEncoder, load  # noqa: E402
from oddkit.data.text import synthetic_corpus  # noqa: E402
from oddkit.exceptions import DataError, ModelFileError, ParameterError, TooFewRowsError  # noqa: E402

TEXTS, LABELS = synthetic_corpus(160, 20, random_state=0)
NORMAL = TEXTS[:160]


def leaves(bracketed: str) -> list[str]:
    return bracketed.replace("(", " ").replace(")", " ").split()


def balanced(bracketed: str) -> bool:
    depth = 0
    for char in bracketed:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def binary(bracketed: str) -> bool:
    """Every bracket holds exactly two children."""
    tokens = bracketed.replace("(", " ( ").replace(")", " ) ").split()
    stack = []
    for token in tokens:
        if token == "(":
            stack.append(0)
        elif token == ")":
            if stack.pop() != 2:
                return False
            if stack:
                stack[-1] += 1
        elif stack:
            stack[-1] += 1
    return not stack


@pytest.fixture(scope="module")
def summary_model():
    return TextSummaryAutoEncoder(epochs=10, batch_size=32, hidden_dim=48, embed_dim=32, random_state=0,
                                  n_threads=1).fit(NORMAL)


@pytest.fixture(scope="module")
def tree_model():
    return TreeAutoEncoder(epochs=4, hidden_dim=32, embed_dim=32, random_state=0, n_threads=1).fit(NORMAL)


def test_summaries_are_shorter_strings_of_vocabulary_words(summary_model):
    summaries = summary_model.encode_text(TEXTS[:20])
    vocabulary = summary_model.preprocessor_.tokenizer_.tokenizer_.get_vocab()
    assert len(summaries) == 20
    for text, summary in zip(TEXTS[:20], summaries):
        words = summary.split()
        assert 1 <= len(words) < len(text.split())
        assert all(w in vocabulary and not w.startswith("[") for w in words)
    decoded = summary_model.decode_text(summaries)
    assert len(decoded) == 20 and all(isinstance(d, str) and d for d in decoded)


def test_a_summary_never_holds_the_unknown_token_even_for_unseen_words(summary_model):
    texts = ["zebra quokka wombat axolotl narwhal okapi", "the zebra sees a quokka near the narwhal"]
    for summary in summary_model.encode_text(texts):
        assert summary and "[UNK]" not in summary and all(not w.startswith("[") for w in summary.split())


def token_accuracy(texts: list[str], rebuilt: list[str]) -> float:
    right = sum(sum(1 for i, w in enumerate(t.split()) if i < len(r.split()) and r.split()[i] == w)
                for t, r in zip(texts, rebuilt))
    return right / sum(len(t.split()) for t in texts)


def test_messages_rebuilt_from_their_summaries_beat_the_commonest_word_at_each_position(summary_model):
    from collections import Counter

    longest = max(len(t.split()) for t in NORMAL)
    commonest = [Counter(t.split()[i] for t in NORMAL if len(t.split()) > i).most_common(1)[0][0]
                 for i in range(longest)]
    baseline = token_accuracy(NORMAL, [" ".join(commonest)] * len(NORMAL))
    rebuilt = summary_model.decode_text(summary_model.encode_text(NORMAL))
    assert token_accuracy(NORMAL, rebuilt) > baseline + 0.2  # measured: 0.54 against 0.19


def test_decoding_can_forbid_repeated_ngrams(summary_model):
    rebuilt = summary_model.decode_text(summary_model.encode_text(NORMAL[:40]), no_repeat_ngram=2)
    for text in rebuilt:
        words = text.split()
        assert words and len(set(zip(words, words[1:]))) == len(words) - 1, text
    with pytest.raises(ParameterError, match="no_repeat_ngram"):
        summary_model.decode_text(["the cat sees"], no_repeat_ngram=-1)


def test_summary_scores_rank_malformed_sentences_higher(summary_model):
    from sklearn.metrics import roc_auc_score

    scores = summary_model.decision_function(TEXTS)
    assert np.isfinite(scores).all()
    assert roc_auc_score(LABELS, scores) > 0.8


def test_trees_are_well_formed_binary_trees_over_the_tokens(tree_model):
    texts = TEXTS[:10] + ["The dog", "dog", "a (big) cat :)"]
    trees = tree_model.parse(texts)
    for text, tree in zip(texts, trees):
        assert balanced(tree) and binary(tree), tree
    for text, tree in zip(TEXTS[:10], trees):
        assert leaves(tree) == text.split()
    assert trees[-3] == "(The dog)" and trees[-2] == "dog"
    assert leaves(trees[-1]) == ["a", "-LRB-", "big", "-RRB-", "cat", ":-RRB-"]


def test_tree_scores_rank_malformed_sentences_higher(tree_model):
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(LABELS, tree_model.decision_function(TEXTS)) > 0.8


@pytest.mark.parametrize("name", ["summary_model", "tree_model"])
def test_save_and_load_give_identical_outputs(name, request, tmp_path):
    model = request.getfixturevalue(name)
    model.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.decision_function(TEXTS), model.decision_function(TEXTS))
    assert loaded.threshold_ == model.threshold_
    if name == "tree_model":
        assert loaded.parse(TEXTS[:20]) == model.parse(TEXTS[:20])
    else:
        assert loaded.encode_text(TEXTS[:20]) == model.encode_text(TEXTS[:20])
        assert loaded.decode_text(["the cat sees"]) == model.decode_text(["the cat sees"])


def test_a_saved_tokenizer_that_does_not_fit_the_network_is_refused(tree_model, tmp_path):
    import json

    from oddkit.persist import seal

    tree_model.save(tmp_path / "m")
    tokenizer = json.loads((tmp_path / "m" / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"] = dict(list(tokenizer["model"]["vocab"].items())[:-3])  # 3 words fewer
    (tmp_path / "m" / "tokenizer.json").write_text(json.dumps(tokenizer))
    seal(tmp_path / "m")
    with pytest.raises(ModelFileError, match="tokenizer"):
        load(tmp_path / "m")


def test_a_summary_folder_saved_before_the_copying_layers_is_refused(summary_model, tmp_path):
    """A folder from before the copying reconstructor and summariser (no ``*_copy`` weights) is refused
    with a ModelFileError naming what is missing, not loaded half-initialised."""
    from safetensors.numpy import load_file, save_file

    from oddkit.persist import seal

    summary_model.save(tmp_path / "m")
    weights = load_file(tmp_path / "m" / "weights.safetensors")
    old = {name: array for name, array in weights.items() if "_copy." not in name}
    assert len(old) < len(weights)  # the copying layers exist and were removed
    save_file(old, tmp_path / "m" / "weights.safetensors")
    seal(tmp_path / "m")
    with pytest.raises(ModelFileError, match="missing .*copy"):
        load(tmp_path / "m")


def test_same_seed_same_scores():
    a = TreeAutoEncoder(epochs=1, hidden_dim=16, embed_dim=16, random_state=3).fit(NORMAL[:40])
    b = TreeAutoEncoder(epochs=1, hidden_dim=16, embed_dim=16, random_state=3).fit(NORMAL[:40])
    np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)


def test_bad_input_and_parameters_are_refused(tree_model):
    with pytest.raises(DataError, match="row 1"):
        tree_model.decision_function(["the cat", ""])
    with pytest.raises(DataError, match="list of texts"):
        tree_model.parse("the cat sees")
    with pytest.raises(ParameterError, match="summary_ratio"):
        TextSummaryAutoEncoder(summary_ratio=1.5).fit(NORMAL)
    with pytest.raises(ParameterError, match="pretrain_epochs"):
        TextSummaryAutoEncoder(pretrain_epochs=-1).fit(NORMAL)
    with pytest.raises(ParameterError, match="repetition_weight"):
        TextSummaryAutoEncoder(repetition_weight=-0.5).fit(NORMAL)
    with pytest.raises(TooFewRowsError, match="at least 2"):
        TreeAutoEncoder().fit(["one text"])


def test_a_dataframe_is_read_from_its_text_column(tree_model):
    import pandas as pd

    frame = pd.DataFrame({"id": range(5), "message": NORMAL[:5]})
    model = TreeAutoEncoder(text_col="message", epochs=1, hidden_dim=16, embed_dim=16, random_state=0).fit(
        pd.DataFrame({"message": NORMAL[:40]}))
    assert list(model.feature_names_in_) == ["message"]
    np.testing.assert_array_equal(model.decision_function(frame), model.decision_function(NORMAL[:5]))


# -- command line ---------------------------------------------------------------------------------

def test_cli_summarize_and_parse_write_one_row_per_text(summary_model, tree_model, monkeypatch, capsys, tmp_path):
    import pandas as pd

    from conftest import run_cli

    summary_model.save(tmp_path / "summary")
    tree_model.save(tmp_path / "tree")
    pd.DataFrame({"id": range(12), "message": TEXTS[150:162]}).to_csv(tmp_path / "texts.csv", index=False)
    code, out, err = run_cli(monkeypatch, capsys, "summarize", tmp_path / "summary", tmp_path / "texts.csv",
                             "--text-col", "message", "--out", tmp_path / "s.csv", "--n-threads", "1")
    assert code == 0, err
    frame = pd.read_csv(tmp_path / "s.csv")
    assert list(frame.columns) == ["text", "summary", "rebuilt", "score"] and len(frame) == 12
    assert frame.summary.tolist() == summary_model.encode_text(TEXTS[150:162])
    code, out, err = run_cli(monkeypatch, capsys, "parse", tmp_path / "tree", tmp_path / "texts.csv",
                             "--text-col", "message", "--out", tmp_path / "t.csv")
    assert code == 0, err
    frame = pd.read_csv(tmp_path / "t.csv")
    assert frame.tree.tolist() == tree_model.parse(TEXTS[150:162])
    # --force before overwriting; the wrong model kind is named with the flag that fits the right one
    code, out, err = run_cli(monkeypatch, capsys, "parse", tmp_path / "tree", tmp_path / "texts.csv",
                             "--text-col", "message", "--out", tmp_path / "t.csv")
    assert code == 2 and "--force" in err
    code, out, err = run_cli(monkeypatch, capsys, "parse", tmp_path / "summary", tmp_path / "texts.csv",
                             "--text-col", "message", "--out", tmp_path / "t2.csv")
    assert code == 2 and "--detector text-tree" in err and not (tmp_path / "t2.csv").exists()


def test_cli_summarize_summarises_each_text_once(summary_model, monkeypatch, capsys, tmp_path):
    import pandas as pd

    from conftest import run_cli
    from oddkit.nn.summary import TextSummaryAutoEncoder as Module

    summary_model.save(tmp_path / "summary")
    pd.DataFrame({"text": TEXTS[150:162]}).to_csv(tmp_path / "texts.csv", index=False)
    summarised = []
    summarize = Module.summarize

    def counted(self, tokens, *args, **kwargs):
        summarised.append(int(tokens.shape[0]))
        return summarize(self, tokens, *args, **kwargs)

    monkeypatch.setattr(Module, "summarize", counted)
    code, out, err = run_cli(monkeypatch, capsys, "summarize", tmp_path / "summary", tmp_path / "texts.csv",
                             "--out", tmp_path / "s.csv", "--n-threads", "1")
    assert code == 0, err
    assert sum(summarised) == 12  # once per text: the scores come with the summaries
    frame = pd.read_csv(tmp_path / "s.csv")
    monkeypatch.undo()
    np.testing.assert_allclose(frame.score, summary_model.decision_function(TEXTS[150:162]), rtol=1e-12)


def test_cli_names_the_models_column_when_the_texts_lack_it(tree_model, monkeypatch, capsys, tmp_path):
    """The model reads its texts from the column it was fitted on ('text' here): 'score' has no
    --text-col and must not suggest it; 'parse' has it and offers it beside the model's column."""
    import pandas as pd

    from conftest import run_cli

    tree_model.save(tmp_path / "tree")
    pd.DataFrame({"id": range(3), "message": TEXTS[:3]}).to_csv(tmp_path / "texts.csv", index=False)
    pd.DataFrame({"id": range(3), "message": TEXTS[:3]}).to_csv(tmp_path / "texts.tsv", sep="\t", index=False)
    (tmp_path / "layout.tsv").write_text(f"ham\t{TEXTS[0]}\nno tab on this line\n", encoding="utf-8")
    for data in ("texts.csv", "texts.tsv", "layout.tsv"):
        code, out, err = run_cli(monkeypatch, capsys, "score", tmp_path / "tree", tmp_path / data,
                                 "--out", tmp_path / "scores.csv")
        err = err.replace(str(tmp_path), "DIR")
        assert code == 2 and "'text'" in err and "fitted on" in err, (data, err)
        assert "--text-col" not in err and "text_col" not in err, (data, err)
        code, out, err = run_cli(monkeypatch, capsys, "parse", tmp_path / "tree", tmp_path / data,
                                 "--out", tmp_path / "trees.csv")
        err = err.replace(str(tmp_path), "DIR")
        assert code == 2 and "'text'" in err and "fitted on" in err and "--text-col" in err, (data, err)
        assert "text_col" not in err, (data, err)


def test_cli_fit_text_tree_then_parse_with_the_models_text_column(monkeypatch, capsys, tmp_path):
    import pandas as pd

    from conftest import run_cli

    pd.DataFrame({"id": range(60), "message": NORMAL[:60]}).to_csv(tmp_path / "train.csv", index=False)
    code, out, err = run_cli(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--detector", "text-tree",
                             "--text-col", "message", "--id-col", "id", "--epochs", "1", "--n-threads", "1",
                             "--out", tmp_path / "model")
    assert code == 0, err
    code, out, err = run_cli(monkeypatch, capsys, "parse", tmp_path / "model", tmp_path / "train.csv",
                             "--id-col", "id", "--out", tmp_path / "trees.csv")
    assert code == 0, err
    frame = pd.read_csv(tmp_path / "trees.csv")
    assert list(frame.columns) == ["id", "text", "tree", "score"] and frame.id.tolist() == list(range(60))
    assert [leaves(t) for t in frame.tree] == [t.split() for t in NORMAL[:60]]


def test_history_holds_every_epochs_losses_and_verbose_writes_nothing_to_stdout(summary_model, capsys):
    history = summary_model.history_
    assert len(history["train_loss"]) == 12  # 2 epochs of pre-training, then 10 adversarial ones
    assert len(history["discriminator_loss"]) == len(history["adversarial_loss"]) == 12  # the GAN's own losses
    assert len(history["repetition"]) == 12 and all(0 <= r <= 1 for r in history["repetition"])
    assert np.isfinite(history["train_loss"]).all()
    TreeAutoEncoder(epochs=2, hidden_dim=16, embed_dim=16, random_state=0, n_threads=1, verbose=1).fit(NORMAL[:40])
    assert capsys.readouterr().out == ""  # the progress bar goes to stderr: stdout stays the command's output
