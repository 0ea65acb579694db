"""The command line end to end, in-process: fit, score, threshold, evaluate, demo, and errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli as run
from oddkit.data.datasets import load_breast_cancer


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Breast-cancer CSVs: train (benign only, with an id column), dev and test (labelled)."""
    folder = tmp_path_factory.mktemp("cli")
    X, y = load_breast_cancer()
    frame = X.assign(patient=[f"p{i:03d}" for i in range(len(X))], y=y)
    rng = np.random.default_rng(0)
    benign, malignant = rng.permutation(np.flatnonzero(y == 0)), rng.permutation(np.flatnonzero(y == 1))
    train = frame.iloc[benign[:200]].drop(columns="y")
    dev = frame.iloc[np.concatenate([benign[200:280], malignant[:100]])]
    test = frame.iloc[np.concatenate([benign[280:], malignant[100:]])]
    paths = {"train": folder / "train.csv", "dev": folder / "dev.parquet", "test": folder / "test.csv"}
    train.to_csv(paths["train"], index=False)
    dev.to_parquet(paths["dev"])
    # Columns in another order: the CLI matches them by name.
    test[list(reversed(test.columns))].to_csv(paths["test"], index=False)
    return folder, paths


@pytest.mark.parametrize("detector", ["autoencoder", "gaussian", "pca", "ocsvm", "iforest", "knn", "lof", "default"])
def test_fit_threshold_score_evaluate(detector, files, monkeypatch, capsys):
    folder, paths = files
    model = folder / f"model-{detector}"
    extra = ["--epochs", "20", "--quiet"] if detector == "autoencoder" else []
    code, out, err = run(monkeypatch, capsys, "fit", paths["train"], "--detector", detector, "--out", model,
                         "--id-col", "patient", *extra)
    assert code == 0, err
    assert "saved to" in out and (model / "config.json").is_file()

    code, out, err = run(monkeypatch, capsys, "threshold", model, paths["dev"], "--goal", "recall:0.9", "--force",
                         "--id-col", "patient")
    assert code == 0, err
    config = json.loads((model / "config.json").read_text())
    assert config["detector"]["threshold_goal"] == "recall:0.9"

    scores_csv = folder / f"scores-{detector}.csv"
    code, out, err = run(monkeypatch, capsys, "score", model, paths["test"], "--out", scores_csv,
                         "--id-col", "patient", "--batch-rows", "50")
    assert code == 0, err
    scored = pd.read_csv(scores_csv)
    test = pd.read_csv(paths["test"])
    assert list(scored.columns) == ["patient", "score", "label"]
    assert list(scored["patient"]) == list(test["patient"])
    assert set(scored["label"]) <= {0, 1}
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(test["y"], scored["score"]) > 0.85

    code, out, err = run(monkeypatch, capsys, "evaluate", model, paths["test"], "--id-col", "patient",
                         "--plots", folder / f"plots-{detector}")
    assert code == 0, err
    assert "ROC AUC" in out and "recall" in out and "false-positive rate" in out
    assert (folder / f"plots-{detector}" / "roc.png").stat().st_size > 1000
    # Beside each rate and the ROC AUC, its 95% interval (metric_intervals), which holds the value.
    assert "95% interval" in out
    rows = {line.split("│")[1].strip(): line.split("│")[2:4] for line in out.splitlines() if line.count("│") == 4}
    for name in ("ROC AUC", "PR AUC (average precision)", "recall", "false-positive rate"):
        value, interval = float(rows[name][0]), rows[name][1].strip()
        low, high = (float(v) for v in interval.split(" - "))
        assert low <= value <= high


def test_detector_parameters_as_flags(files, monkeypatch, capsys):
    folder, paths = files
    code, _, err = run(monkeypatch, capsys, "fit", paths["train"], "--detector", "ocsvm", "-p", "nu=0.2",
                       "--contamination", "0.05", "--out", folder / "svm", "--id-col", "patient")
    assert code == 0, err
    params = json.loads((folder / "svm" / "config.json").read_text())["params"]
    assert params["nu"] == 0.2 and params["contamination"] == 0.05


@pytest.mark.parametrize("args, message", [
    (["fit", "{train}", "--detector", "nope", "--out", "{folder}/x"], "unknown detector"),
    (["fit", "{folder}/missing.csv", "--out", "{folder}/x"], "missing.csv"),
    (["fit", "{train}", "--detector", "gaussian", "--epochs", "3", "--out", "{folder}/x"], "--epochs"),
    (["fit", "{train}", "--detector", "gaussian", "-p", "bogus=1", "--out", "{folder}/x"], "bogus"),
    (["score", "{folder}/no-model", "{train}"], "config.json"),
    (["evaluate", "{folder}/model-gaussian", "{train}", "--id-col", "patient"], "label"),
    (["threshold", "{folder}/model-gaussian", "{dev}", "--goal", "best", "--id-col", "patient", "--force"], "goal"),
    (["score", "{folder}/model-gaussian", "{train}"], "patient"),
])
def test_errors_are_one_line_with_exit_code_2(args, message, files, monkeypatch, capsys):
    folder, paths = files
    args = [a.format(folder=folder, train=paths["train"], dev=paths["dev"]) for a in args]
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.startswith("error: ")


def test_debug_shows_the_traceback(files, monkeypatch, capsys):
    folder, _ = files
    from oddkit.exceptions import ModelFileError

    with pytest.raises(ModelFileError):
        run(monkeypatch, capsys, "--debug", "score", folder / "no-model", folder / "x.csv")


def test_demo(tmp_path, monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, "demo", "--out-dir", tmp_path / "demo")
    assert code == 0, err
    for name in ("autoencoder", "gaussian", "pca", "ocsvm", "iforest", "knn", "roc", "done in"):
        assert name in out
    table = pd.read_csv(tmp_path / "demo" / "test_metrics.csv", index_col=0)
    # The auto-encoder's table default (five networks, each trimming the worst tenth of its training
    # rows) scores 0.934 here: trimming costs a little on this small clean split (0.950 with one
    # untrimmed network; benchmarks/AE_AUTO.md, "At review").
    assert table.loc["autoencoder", "roc_auc"] >= 0.92 and table.loc["gaussian", "roc_auc"] >= 0.95
    assert (tmp_path / "demo" / "roc.png").is_file()
    assert (tmp_path / "demo" / "autoencoder-model" / "weights.safetensors").is_file()


def test_evaluate_at_the_production_rate_writes_metrics_and_a_report(files, monkeypatch, capsys):
    folder, paths = files
    model, tuned = folder / "model-eval-gaussian", folder / "model-eval-gaussian-cost"
    assert run(monkeypatch, capsys, "fit", paths["train"], "--detector", "gaussian", "--out", model,
               "--id-col", "patient")[0] == 0
    code, out, err = run(monkeypatch, capsys, "threshold", model, paths["dev"], "--goal", "cost:1,50,0.01",
                         "--id-col", "patient", "--out", tuned)
    assert code == 0, err
    assert "production_precision" in out
    metrics, report = folder / "metrics.json", folder / "report.html"
    code, out, err = run(monkeypatch, capsys, "evaluate", tuned, paths["test"], "--id-col", "patient",
                         "--out", metrics, "--report", report, "--plots", folder / "plots-eval")
    assert code == 0, err
    numbers = json.loads(metrics.read_text())
    # The cost goal's rate (1%) is the production rate: precision there follows from recall and FPR.
    production, data = numbers["production"], numbers["data"]
    assert production["prevalence"] == 0.01
    recall, fpr = data["recall"], data["fpr"]
    assert production["precision"] == pytest.approx(recall * 0.01 / (recall * 0.01 + fpr * 0.99))
    assert production["precision"] < data["precision"]
    for name in ("roc_auc", "recall", "fpr"):  # the printed 95% intervals, in the file too
        bounds = numbers["intervals_95"][name]
        assert bounds["low"] <= (numbers[name] if name == "roc_auc" else data[name]) <= bounds["high"]
    assert "at the production anomaly rate 0.01" in out and "alerts per 10,000 rows" in out
    assert report.read_text().count('id="model-card"') == 1
    # An existing output is never replaced silently.
    code, out, err = run(monkeypatch, capsys, "evaluate", tuned, paths["test"], "--id-col", "patient",
                         "--out", metrics)
    assert code == 2 and "already exists; pass --force" in err


def test_report_and_evaluate_break_results_down_by_group(files, tmp_path, monkeypatch, capsys):
    folder, paths = files
    model = folder / "model-group-gaussian"
    assert run(monkeypatch, capsys, "fit", paths["train"], "--detector", "gaussian", "--out", model,
               "--id-col", "patient")[0] == 0
    test = pd.read_csv(paths["test"])
    test["site"] = np.where(np.arange(len(test)) % 2 == 0, "north", "south")
    grouped = tmp_path / "grouped.csv"
    test.to_csv(grouped, index=False)
    code, out, err = run(monkeypatch, capsys, "evaluate", model, grouped, "--id-col", "patient",
                         "--group-col", "site", "--plots", tmp_path / "plots")
    assert code == 0, err
    assert "by site" in out and "north" in out and "south" in out
    html = tmp_path / "r.html"
    code, out, err = run(monkeypatch, capsys, "report", model, grouped, "--id-col", "patient", "--group-col", "site",
                         "--out", html)
    assert code == 0, err
    text = html.read_text()
    assert 'id="groups"' in text and "north" in text and "south" in text


def test_info_prints_names_from_the_folder_as_text_not_markup(tmp_path, monkeypatch, capsys) -> None:
    """Column names and a threshold goal holding rich markup ("[/]", "[/bold]") print as they are: they
    are text from a data file, and markup in them crashed 'oddkit info' (MarkupError) or styled its
    output. The versions shown are those the load checked (saved_versions_), not the file read again."""
    import numpy as np
    import pandas as pd

    from conftest import run_cli
    from oddkit import GaussianDetector, load
    from oddkit.persist import save

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(50, 2)), columns=["[/]", "[red]amount"])
    detector = GaussianDetector().fit(frame)
    detector.set_threshold(float(detector.threshold_), goal="[/bold]")
    folder = save(detector, tmp_path / "model")
    code, out, err = run_cli(monkeypatch, capsys, "info", folder)
    assert code == 0, err
    assert "[/] (numeric)" in out and "[red]amount (numeric)" in out and "[/bold]" in out
    loaded = load(folder)
    assert loaded.saved_versions_["oddkit"] and "version oddkit" in out
    assert loaded.saved_versions_["numpy"] == np.__version__
