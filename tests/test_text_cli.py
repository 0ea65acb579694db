"""The command line on texts: fit --detector text --text-col, score, threshold, evaluate, explain, report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tokenizers")

from conftest import run_cli as run  # noqa: E402

from oddkit import load  # noqa: E402
from oddkit.data.text import synthetic_corpus  # noqa: E402

SMALL = ["--epochs", "6", "--n-threads", "1", "-p", "hidden_size=48", "-p", "embedding_dim=24", "-p", "code_size=12",
         "--quiet"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text-cli")
    texts, y = synthetic_corpus(250, 25, random_state=5)
    pd.DataFrame({"id": [f"a{i}" for i in range(len(texts))], "y": y, "body": texts}).to_csv(
        folder / "train.csv", index=False)
    test, yt = synthetic_corpus(40, 20, random_state=6)
    pd.DataFrame({"id": [f"b{i}" for i in range(len(test))], "y": yt, "body": test}).to_csv(
        folder / "test.csv", index=False)
    # The SMS layout: label<TAB>text, no header, spam = anomaly.
    lines = [f"{'spam' if label else 'ham'}\t{text}" for text, label in zip(test, yt)]
    (folder / "messages.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def model(folder):
    import sys

    from oddkit import cli

    argv = sys.argv
    sys.argv = ["oddkit", "fit", str(folder / "train.csv"), "--detector", "text", "--text-col", "body", "--id-col",
                "id", "--out", str(folder / "model"), *SMALL]
    try:
        cli.main()
    except SystemExit as exc:
        assert not exc.code
    finally:
        sys.argv = argv
    return folder / "model"


def test_fit_learns_the_normal_rows_and_remembers_the_text_column(model, folder):
    detector = load(model)
    assert type(detector).__name__ == "TextAutoEncoderDetector"
    assert detector.text_col == "body" and detector.n_training_rows_ == 250  # labelled anomalies left out
    assert (model / "tokenizer.json").is_file()


def test_score_and_evaluate_rank_malformed_messages_higher(monkeypatch, capsys, model, folder):
    code, out, err = run(monkeypatch, capsys, "score", model, folder / "test.csv", "--id-col", "id",
                         "--out", folder / "scores.csv", "--n-threads", "1")
    assert code == 0, err
    scores = pd.read_csv(folder / "scores.csv")
    assert list(scores.columns) == ["id", "score", "label"] and len(scores) == 60
    truth = pd.read_csv(folder / "test.csv")["y"].to_numpy()
    assert scores["score"][truth == 1].mean() > scores["score"][truth == 0].mean()
    direct = load(model).decision_function(pd.read_csv(folder / "test.csv")[["body"]])
    assert np.allclose(scores["score"], direct)
    code, out, err = run(monkeypatch, capsys, "evaluate", model, folder / "test.csv", "--plots", folder / "plots")
    assert code == 0, err
    auc = float(out.split("ROC AUC")[1].split("│")[1])
    assert auc > 0.9
    # The headerless SMS layout: its text column is 'text', not the model's 'body'; spam = anomaly.
    code, out, err = run(monkeypatch, capsys, "evaluate", model, folder / "messages.tsv", "--plots",
                         folder / "plots", "--force")
    assert code == 0, err
    assert float(out.split("ROC AUC")[1].split("│")[1]) == pytest.approx(auc, abs=1e-9)


def test_threshold_explain_and_report(monkeypatch, capsys, model, folder):
    code, out, err = run(monkeypatch, capsys, "threshold", model, folder / "test.csv", "--goal", "f1",
                         "--out", folder / "tuned")
    assert code == 0, err
    assert load(folder / "tuned").threshold_goal_ == "f1"
    code, out, err = run(monkeypatch, capsys, "explain", model, folder / "test.csv", "--id-col", "id", "--top", "5",
                         "--out", folder / "why.csv")
    assert code == 0, err
    why = pd.read_csv(folder / "why.csv")
    assert list(why.columns) == ["id", "row", "score", "label", "top_words", "top_tokens", "text"] and len(why) == 5
    first = why["top_words"][0].split(" (")[0]
    assert first in why["text"][0].split()  # a word as written in the message
    assert why["score"].is_monotonic_decreasing
    assert all(isinstance(t, str) and "(" in t for t in why["top_tokens"])
    code, out, err = run(monkeypatch, capsys, "report", model, folder / "test.csv", "--out", folder / "r.html")
    assert code == 0, err
    assert "TextAutoEncoderDetector" in (folder / "r.html").read_text()


def test_text_col_errors_use_flag_wording(monkeypatch, capsys, folder):
    code, out, err = run(monkeypatch, capsys, "fit", folder / "train.csv", "--detector", "gaussian", "--text-col",
                         "body", "--out", folder / "g")
    assert code != 0 and "--text-col is for the text detectors" in err
    code, out, err = run(monkeypatch, capsys, "fit", folder / "train.csv", "--detector", "text", "--text-col",
                         "message", "--out", folder / "t")
    assert code != 0 and "'message' not found" in err and "--text-col" in err


def test_commands_without_text_col_name_the_models_column_instead(monkeypatch, capsys, model, folder):
    """score, evaluate, threshold, explain and report read the column the model was fitted on ('body');
    they have no --text-col, so a file without that column gets the column's name, not the flag."""
    test = pd.read_csv(folder / "test.csv").rename(columns={"body": "message"})
    test.to_csv(folder / "renamed.csv", index=False)
    test.to_csv(folder / "renamed.tsv", sep="\t", index=False)
    commands = {
        "score": ["--out", folder / "never.csv"],
        "evaluate": ["--plots", folder / "never-plots"],
        "threshold": ["--goal", "f1", "--out", folder / "never-model"],
        "explain": ["--out", folder / "never-why.csv"],
        "report": ["--out", folder / "never.html"],
    }
    for command, options in commands.items():
        for data in ("renamed.csv", "renamed.tsv"):
            code, out, err = run(monkeypatch, capsys, command, model, folder / data, *options)
            err = " ".join(err.replace(str(folder), "DIR").split())
            assert code == 2, (command, data, err)
            assert "The model reads its texts from the column 'body', the one it was fitted on" in err, (command, err)
            assert "--text-col" not in err and "text_col" not in err, (command, data, err)


def test_every_text_col_advice_of_the_text_reader_is_reworded_for_a_fitted_model():
    """Each message of oddkit.data.text that advises text_col (which fit words as --text-col) is
    re-worded, for a command reading a fitted model's texts, with the model's column instead."""
    import ast

    import oddkit.data.text as source
    from oddkit.cli._common import _model_column_advice

    tree = ast.parse(open(source.__file__, encoding="utf-8").read())
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    messages = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(p.value if isinstance(p, ast.Constant) else "7" for p in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
        else:
            continue
        if "with text_col" in text:
            messages.append(text)
    assert len(messages) >= 4
    for message in messages:
        plain = _model_column_advice(message, "body")
        assert "text_col" not in plain and "--text-col" not in plain and "'body'" in plain, message
        offered = _model_column_advice(message, "body", text_col_option=True)
        assert "text_col" not in offered.replace("--text-col", "") and "--text-col" in offered, message


def test_fit_reads_the_headerless_layout_and_learns_the_ham_only(monkeypatch, capsys, folder):
    code, out, err = run(monkeypatch, capsys, "fit", folder / "messages.tsv", "--detector", "text", "--out",
                         folder / "sms-model", "--epochs", "1", "--n-threads", "1", "--quiet")
    assert code == 0, err
    assert "left out the 20 rows labelled anomalies" in " ".join(out.split())
    detector = load(folder / "sms-model")
    assert detector.n_training_rows_ == 40 and list(detector.feature_names_in_) == ["text"]


def test_report_highlights_the_words_that_carry_each_top_anomaly_score(monkeypatch, capsys, model, folder):
    import html
    import re

    code, out, err = run(monkeypatch, capsys, "report", model, folder / "test.csv", "--top", "3",
                         "--out", folder / "words.html")
    assert code == 0, err
    page = (folder / "words.html").read_text()
    assert "explain failed" not in page and "share of the score by word" in page
    cells = re.findall(r'<td class="text-explained">(.*?)</td>', page, flags=re.S)
    assert len(cells) == 3
    # The oracle: the detector's own per-token explanation of the highest-scoring text, summed per word.
    detector = load(model)
    texts = pd.read_csv(folder / "test.csv")[["body"]]
    scores = detector.decision_function(texts)
    top = texts.iloc[[int(np.argmax(scores))]]
    tokens = detector.explain(top)
    by_word = tokens.groupby("word_index")["share"].sum().sort_values(ascending=False, kind="stable")
    words = top["body"].iloc[0].split() + ["[EOS]"]
    expected = [words[i] for i in by_word.index[:3]]
    marked = [html.unescape(w) for w in re.findall(r'<mark class="tok"[^>]*>(.*?)</mark>', cells[0])]
    assert sorted(marked) == sorted(expected)
    shown = [html.unescape(w) for w in re.findall(r">([^<>]+)</(?:mark|span)>", cells[0])]
    assert shown[:len(words) - 1] == words[:-1]  # the whole text, in order
    # The bars beside it name the word with the largest share first.
    first_bar = re.search(r'<span class="bar-label" title="([^"]*)"', page.split(cells[0])[1]).group(1)
    assert html.unescape(first_bar) == words[by_word.index[0]]


def test_evaluate_group_and_miss_cost_columns_on_a_tsv_of_texts(monkeypatch, capsys, model, folder):
    import json

    test = pd.read_csv(folder / "test.csv")
    frame = pd.DataFrame({"y": test["y"], "text": test["body"], "channel": np.where(test.index % 2, "sms", "mail"),
                          "amount": np.arange(len(test)) + 1.0})
    frame.to_csv(folder / "labelled.tsv", sep="\t", index=False)
    code, out, err = run(monkeypatch, capsys, "evaluate", model, folder / "labelled.tsv", "--label-col", "y",
                         "--group-col", "channel", "--plots", folder / "p1")
    assert code == 0, err
    for channel in ("mail", "sms"):
        n_anomalies = int(frame.loc[frame["channel"] == channel, "y"].sum())
        assert f"30 rows, {n_anomalies} anomalies" in out.split(channel, 1)[1].splitlines()[0]
    code, out, err = run(monkeypatch, capsys, "threshold", model, folder / "labelled.tsv", "--label-col", "y",
                         "--goal", "cost:1,5", "--miss-cost-col", "amount", "--out", folder / "costed")
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "evaluate", folder / "costed", folder / "labelled.tsv", "--label-col",
                         "y", "--miss-cost-col", "amount", "--group-col", "channel", "--plots", folder / "p2",
                         "--out", folder / "costed.json", "--report", folder / "costed.html")
    assert code == 0, err
    metrics = json.loads((folder / "costed.json").read_text())
    assert metrics["miss_costs"]["total"] == pytest.approx(frame.loc[frame["y"] == 1, "amount"].sum())
    scores = load(folder / "costed").decision_function(frame["text"].tolist())
    missed = (frame["y"] == 1) & (scores < load(folder / "costed").threshold_)
    assert metrics["miss_costs"]["missed"] == pytest.approx(frame.loc[missed, "amount"].sum())
    assert "<mark" in (folder / "costed.html").read_text()


def test_fit_on_messages_without_a_text_detector_trains_the_text_auto_encoder(monkeypatch, capsys, folder, tmp_path):
    """The auto-encoder (fit's default --detector) or the default, asked for on messages (a .tsv/.txt file, or
    --text-col), is the text auto-encoder, as the image default is built for images; a table detector on a
    file of messages is refused with the detectors that read it."""
    small = ["--epochs", "1", "--n-threads", "1", "--quiet"]
    code, _, err = run(monkeypatch, capsys, "fit", folder / "messages.tsv", "--out", tmp_path / "plain", *small)
    assert code == 0, err
    assert type(load(tmp_path / "plain")).__name__ == "TextAutoEncoderDetector"
    code, _, err = run(monkeypatch, capsys, "fit", folder / "train.csv", "--detector", "default", "--text-col", "body",
                       "--id-col", "id", "--out", tmp_path / "default", *small)
    assert code == 0, err
    assert load(tmp_path / "default").text_col == "body"
    code, _, err = run(monkeypatch, capsys, "fit", folder / "messages.tsv", "--detector", "knn", "--out",
                       tmp_path / "knn", "--quiet")
    assert code == 2 and "holds messages (a .tsv file): train a text detector on it (--detector text" in err, err
    code, _, err = run(monkeypatch, capsys, "fit", folder / "train.csv", "--detector", "knn", "--text-col", "body",
                       "--out", tmp_path / "knn", "--quiet")
    assert code == 2 and "--text-col is for the text detectors" in err, err
