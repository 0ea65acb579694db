"""The command line sets no traps: fast start, --version, info, explain, output formats and '-', --force,
labelled training files, .npz feature names, unseen categories, --n-threads, progress, flag-only advice."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli as run


def _subprocess_env():
    import os

    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 300-row table with an id, a category and a label (10 anomalies whose 'b' is shifted), a fitted
    Gaussian model on its normal rows, and rows to score."""
    folder = tmp_path_factory.mktemp("cli-traps")
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    frame.insert(0, "txn", [f"t{i:04d}" for i in range(n)])
    frame["channel"] = rng.choice(["web", "shop"], n)
    frame["y"] = 0
    frame.loc[:9, "b"] += 25.0
    frame.loc[:9, "y"] = 1
    frame.to_csv(folder / "labelled.csv", index=False)
    frame.drop(columns="y").iloc[10:].to_csv(folder / "train.csv", index=False)
    frame.drop(columns="y").to_csv(folder / "rows.csv", index=False)
    assert fit_in_process(folder, "train.csv", "model") == 0
    return folder


def fit_in_process(folder, data, model, *extra):
    """Fit through the real entry point in this process (a module fixture cannot take monkeypatch)."""
    from oddkit import cli

    argv = sys.argv
    sys.argv = ["oddkit", "fit", str(folder / data), "--detector", "gaussian", "--id-col", "txn",
                "--out", str(folder / model), *map(str, extra)]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = argv
    return code


# -- fast start ----------------------------------------------------------------------------------

def test_import_oddkit_and_the_cli_import_nothing_heavy():
    heavy = ["torch", "sklearn", "pandas", "skops", "numpy", "scipy"]
    code = ("import sys, oddkit, oddkit.cli\n"
            f"print([m for m in {heavy!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=_subprocess_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_imports_nothing_heavy_and_the_public_names_still_load():
    code = ("import sys\nsys.argv = ['oddkit', '--help']\nfrom oddkit.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('torch', 'sklearn', 'pandas', 'numpy') if m in sys.modules])\n"
            "import oddkit\nprint(oddkit.GaussianDetector.__name__, oddkit.load.__module__, 'load' in dir(oddkit))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=_subprocess_env())
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout and "explain" in result.stdout and "info" in result.stdout
    assert "GaussianDetector oddkit.persist True" in result.stdout


def test_version(monkeypatch, capsys):
    import oddkit

    code, out, err = run(monkeypatch, capsys, "--version")
    assert code == 0 and out.strip() == f"oddkit {oddkit.__version__}"


def test_python_dash_m_oddkit_runs_the_command_line():
    """``python -m oddkit`` is the ``oddkit`` command (a package without ``__main__`` refuses it)."""
    import subprocess
    import sys

    import oddkit

    done = subprocess.run([sys.executable, "-m", "oddkit", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"oddkit {oddkit.__version__}"


# -- info ----------------------------------------------------------------------------------------

def test_info_shows_the_model_and_checks_the_folder(files, monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, "info", files / "model")
    assert code == 0, err
    for expected in ("GaussianDetector", "training rows", "290", "threshold goal", "contamination",
                     "a (numeric)", "channel (categorical, 2 values)", "version oddkit", "version numpy"):
        assert expected in out, expected
    assert "txn" not in out  # an id column is not a feature
    config = files / "model" / "config.json"
    original = config.read_text()
    try:
        config.write_text(original.replace('"contamination": 0.1', '"contamination": 0.2'))
        code, out, err = run(monkeypatch, capsys, "info", files / "model")
        assert code == 2 and err.startswith("error: ") and "config.json" in err
    finally:
        config.write_text(original)


# -- explain -------------------------------------------------------------------------------------

def test_explain_writes_the_top_rows_with_their_shares(files, monkeypatch, capsys, tmp_path):
    from oddkit import AutoEncoderDetector

    frame = pd.read_csv(files / "train.csv")
    AutoEncoderDetector(epochs=30, random_state=0, verbose=0).fit(frame.drop(columns="txn")).save(tmp_path / "ae")
    out = tmp_path / "explanations.csv"
    code, _, err = run(monkeypatch, capsys, "explain", tmp_path / "ae", files / "rows.csv", "--top", "10",
                       "--out", out, "--id-col", "txn")
    assert code == 0, err
    table = pd.read_csv(out)
    assert list(table.columns[:6]) == ["txn", "row", "score", "label", "unseen_category", "top_column"]
    assert not table["unseen_category"].any()  # 'channel' holds only categories seen in training
    assert [c for c in table.columns if c.startswith("share_")] == ["share_a", "share_b", "share_c", "share_channel"]
    assert len(table) == 10 and table["score"].is_monotonic_decreasing
    assert set(table["txn"]) == {f"t{i:04d}" for i in range(10)}  # the planted rows score highest
    assert (table["top_column"] == "b").mean() >= 0.9
    shares = table[[c for c in table.columns if c.startswith("share_")]].sum(axis=1)
    assert np.allclose(shares, 1.0)
    assert (table["txn"] == table["row"].map(lambda r: f"t{r:04d}")).all()


def test_explain_refuses_a_detector_without_explain_in_one_line(files, monkeypatch, capsys, tmp_path):
    # Every tabular detector explains now; one that cannot (the classifier's confidence) raises
    # ExplainError from the library, which the command line shows as its one-line error.
    from oddkit import GaussianDetector
    from oddkit.exceptions import ExplainError

    def cannot(self, Z):
        raise ExplainError("GaussianDetector cannot explain its scores")

    monkeypatch.setattr(GaussianDetector, "_explain_contributions", cannot)
    code, out, err = run(monkeypatch, capsys, "explain", files / "model", files / "rows.csv", "--id-col", "txn",
                         "--out", tmp_path / "e.csv")
    assert code == 2 and err.startswith("error: ") and "cannot explain" in err and err.count("\n") == 1
    assert not (tmp_path / "e.csv").exists()


# -- output formats, '-', --force ----------------------------------------------------------------

@pytest.mark.parametrize("name, read", [
    ("scores.parquet", pd.read_parquet),
    ("scores.csv", pd.read_csv),
    ("scores.npy", lambda p: pd.DataFrame(np.load(p), columns=["score", "label", "unseen_category"])),
])
def test_score_writes_the_format_its_name_says(name, read, files, monkeypatch, capsys, tmp_path):
    id_args = [] if name.endswith(".npy") else ["--id-col", "txn"]
    drop = "txn" if name.endswith(".npy") else None
    data = files / "rows.csv"
    if drop:
        pd.read_csv(data).drop(columns=drop).to_csv(tmp_path / "rows.csv", index=False)
        data = tmp_path / "rows.csv"
    model = files / "model"
    if drop:
        from oddkit import GaussianDetector

        GaussianDetector().fit(pd.read_csv(files / "train.csv").drop(columns="txn")).save(tmp_path / "m")
        model = tmp_path / "m"
    code, out, err = run(monkeypatch, capsys, "score", model, data, "--out", tmp_path / name, *id_args,
                         "--batch-rows", "70")
    assert code == 0, err
    table = read(tmp_path / name)
    assert len(table) == 300 and table["label"].isin([0, 1]).all()
    if name.endswith(".parquet"):
        assert (tmp_path / name).read_bytes()[:4] == b"PAR1"


def test_score_to_standard_output(files, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(monkeypatch, capsys, "score", files / "model", files / "rows.csv", "--out", "-",
                         "--id-col", "txn", "--batch-rows", "100")
    assert code == 0, err
    table = pd.read_csv(io.StringIO(out))
    assert list(table.columns) == ["txn", "score", "label", "unseen_category"] and len(table) == 300
    assert not (tmp_path / "-").exists() and "scored 300 rows" in err


def test_outputs_and_models_are_not_overwritten_without_force(files, monkeypatch, capsys, tmp_path):
    out = tmp_path / "scores.csv"
    out.write_text("precious\n")
    code, _, err = run(monkeypatch, capsys, "score", files / "model", files / "rows.csv", "--out", out,
                       "--id-col", "txn")
    assert code == 2 and "--force" in err and out.read_text() == "precious\n"
    code, _, err = run(monkeypatch, capsys, "score", files / "model", files / "rows.csv", "--out", out,
                       "--id-col", "txn", "--force")
    assert code == 0, err
    assert len(pd.read_csv(out)) == 300

    model = files / "model"
    before = (model / "config.json").read_text()
    code, _, err = run(monkeypatch, capsys, "fit", files / "train.csv", "--detector", "pca", "--id-col", "txn",
                       "--out", model)
    assert code == 2 and "--force" in err and (model / "config.json").read_text() == before

    code, _, err = run(monkeypatch, capsys, "threshold", model, files / "labelled.csv", "--id-col", "txn")
    assert code == 2 and "--out" in err and "--force" in err and (model / "config.json").read_text() == before
    code, _, err = run(monkeypatch, capsys, "threshold", model, files / "labelled.csv", "--id-col", "txn",
                       "--goal", "recall:0.9", "--out", tmp_path / "tuned")
    assert code == 0, err
    assert (model / "config.json").read_text() == before
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["detector"]["threshold_goal"] == "recall:0.9"

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    code, _, err = run(monkeypatch, capsys, "fit", files / "train.csv", "--detector", "gaussian", "--id-col", "txn",
                       "--out", tmp_path / "other", "--force")
    assert code == 2 and "holds no oddkit model" in err and (tmp_path / "other" / "notes.txt").exists()


def test_fit_force_replaces_the_whole_model_folder(files, monkeypatch, capsys, tmp_path):
    from oddkit import load

    code, _, err = run(monkeypatch, capsys, "fit", files / "train.csv", "--detector", "iforest", "--id-col", "txn",
                       "--out", tmp_path / "m")
    assert code == 0, err
    code, _, err = run(monkeypatch, capsys, "fit", files / "train.csv", "--detector", "gaussian", "--id-col", "txn",
                       "--out", tmp_path / "m", "--force")
    assert code == 0, err
    assert type(load(tmp_path / "m")).__name__ == "GaussianDetector"  # no file of the forest left behind



def test_evaluate_plots_and_demo_are_not_overwritten_without_force(files, monkeypatch, capsys, tmp_path):
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "roc.png").write_bytes(b"precious")
    code, _, err = run(monkeypatch, capsys, "evaluate", files / "model", files / "labelled.csv", "--id-col", "txn",
                       "--plots", plots)
    assert code == 2 and "roc.png already exists" in err and "--force" in err
    assert (plots / "roc.png").read_bytes() == b"precious" and not (plots / "pr.png").exists()
    code, _, err = run(monkeypatch, capsys, "evaluate", files / "model", files / "labelled.csv", "--id-col", "txn",
                       "--plots", plots, "--force")
    assert code == 0, err
    assert (plots / "roc.png").read_bytes()[:4] == b"\x89PNG"
    # the default folder beside the model, written by the run above, is not overwritten either
    code, _, err = run(monkeypatch, capsys, "evaluate", files / "model", files / "labelled.csv", "--id-col", "txn")
    assert code == 0, err
    code, _, err = run(monkeypatch, capsys, "evaluate", files / "model", files / "labelled.csv", "--id-col", "txn")
    assert code == 2 and "model-evaluation" in err and "--force" in err

    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "notes.txt").write_text("mine")
    code, out, err = run(monkeypatch, capsys, "demo", "--out-dir", demo)
    assert code == 2 and "--force" in err and "already holds files" in err
    assert sorted(p.name for p in demo.iterdir()) == ["notes.txt"]


def test_n_threads_on_every_command_that_fits_or_scores(files, monkeypatch, capsys, tmp_path):
    import typer.main

    from oddkit.cli import app

    commands = typer.main.get_command(app).commands
    without = sorted(name for name, command in commands.items()
                     if not any("--n-threads" in getattr(p, "opts", ()) for p in command.params))
    # info reads a folder, export traces a saved model once, run passes n-threads on to its steps.
    assert without == ["export", "info", "run"]

    outputs = {}
    for threads in ([], ["--n-threads", "1"]):
        out = tmp_path / f"scores{len(threads)}.csv"
        code, _, err = run(monkeypatch, capsys, "score", files / "model", files / "rows.csv", "--id-col", "txn",
                           "--out", out, *threads)
        assert code == 0, err
        outputs[len(threads)] = pd.read_csv(out)
    pd.testing.assert_frame_equal(outputs[0], outputs[2])
    code, _, err = run(monkeypatch, capsys, "explain", files / "model", files / "rows.csv", "--id-col", "txn",
                       "--out", tmp_path / "e.csv", "--n-threads", "1", "--top", "3")
    assert code == 0, err
    code, _, err = run(monkeypatch, capsys, "score", files / "model", files / "rows.csv", "--id-col", "txn",
                       "--out", tmp_path / "bad.csv", "--n-threads", "0")
    assert code == 2 and "--n-threads must be at least 1" in err and not (tmp_path / "bad.csv").exists()

# -- training data -------------------------------------------------------------------------------

def test_fit_on_a_labelled_file_trains_on_the_normal_rows(files, monkeypatch, capsys, tmp_path):
    from oddkit import load

    code, out, err = run(monkeypatch, capsys, "fit", files / "labelled.csv", "--detector", "gaussian",
                         "--id-col", "txn", "--out", tmp_path / "normal")
    assert code == 0, err
    out = " ".join(out.split())  # the console wraps long lines
    assert "on 290 rows" in out and "left out the 10 rows labelled anomalies" in out and "--keep-anomalies" in out
    assert len(load(tmp_path / "normal").decision_scores_) == 290
    code, out, err = run(monkeypatch, capsys, "fit", files / "labelled.csv", "--detector", "gaussian",
                         "--id-col", "txn", "--out", tmp_path / "all", "--keep-anomalies")
    assert code == 0, err
    out = " ".join(out.split())
    assert "on 300 rows" in out and "left out" not in out
    assert len(load(tmp_path / "all").decision_scores_) == 300


def test_npz_feature_names_name_the_columns(monkeypatch, capsys, tmp_path):
    from oddkit import load
    from oddkit.data import read_table

    rng = np.random.default_rng(1)
    names = np.array(["Time", "V1", "Amount"])
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(80, 3)), y=np.zeros(80, dtype=np.int8), feature_names=names)
    assert list(read_table(tmp_path / "d.npz").X.columns) == list(names)
    code, _, err = run(monkeypatch, capsys, "fit", tmp_path / "d.npz", "--detector", "gaussian", "--out",
                       tmp_path / "m")
    assert code == 0, err
    assert list(load(tmp_path / "m").feature_names_in_) == list(names)
    np.savez(tmp_path / "bad.npz", X=rng.normal(size=(8, 3)), feature_names=np.array(["a", "a", "b"]))
    code, _, err = run(monkeypatch, capsys, "fit", tmp_path / "bad.npz", "--detector", "gaussian", "--out",
                       tmp_path / "m2")
    assert code == 2 and "feature_names" in err and "3 distinct names" in err


# -- scoring -------------------------------------------------------------------------------------

def test_unseen_categories_are_scored_as_anomalies_and_counted(files, monkeypatch, capsys, tmp_path):
    rows = pd.read_csv(files / "rows.csv").iloc[10:40].reset_index(drop=True)
    rows.loc[[3, 7], "channel"] = "phone"  # never seen in training
    rows.to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run(monkeypatch, capsys, "score", files / "model", tmp_path / "new.csv", "--id-col", "txn",
                         "--out", tmp_path / "s.csv")
    assert code == 0, err
    assert "2 row(s) hold categories never seen in training" in err and "'channel' (1 value)" in err
    assert "--strict-categories" in err
    scored = pd.read_csv(tmp_path / "s.csv")
    assert scored.loc[[3, 7], "label"].tolist() == [1, 1]
    assert scored.loc[[3, 7], "score"].min() > scored.drop(index=[3, 7])["score"].max()

    code, out, err = run(monkeypatch, capsys, "score", files / "model", tmp_path / "new.csv", "--id-col", "txn",
                         "--out", tmp_path / "s2.csv", "--strict-categories")
    assert code == 2 and "'phone'" in err and "drop --strict-categories" in err
    assert "unknown_categories=" not in err
    code, out, err = run(monkeypatch, capsys, "evaluate", files / "model", files / "labelled.csv", "--id-col", "txn",
                         "--plots", tmp_path / "plots")
    assert code == 0, err


def test_n_threads_works_for_every_detector(files, monkeypatch, capsys, tmp_path):
    for detector, extra in [("default", ["-p", "members=knn1,gaussian-robust"]), ("iforest", []), ("gaussian", [])]:
        code, out, err = run(monkeypatch, capsys, "fit", files / "train.csv", "--detector", detector, "--id-col",
                             "txn", "--n-threads", "1", "--out", tmp_path / detector, *extra)
        assert code == 0, (detector, err)
    from oddkit import load

    assert load(tmp_path / "iforest").n_jobs == 1


def test_score_shows_progress_on_stderr_unless_quiet(files, monkeypatch, capsys, tmp_path):
    from rich.console import Console

    from oddkit.cli import scoring

    for quiet, expected in ((False, True), (True, False)):
        buffer = io.StringIO()
        monkeypatch.setattr(scoring, "errors", Console(file=buffer, force_terminal=True, width=100))
        code, out, err = run(monkeypatch, capsys, "score", files / "model", files / "rows.csv", "--id-col", "txn",
                             "--out", tmp_path / f"s{quiet}.csv", "--batch-rows", "50", *(["--quiet"] if quiet else []))
        assert code == 0, err
        assert ("scoring rows.csv" in buffer.getvalue()) is expected


# -- advice as flags -----------------------------------------------------------------------------

def test_advice_in_errors_is_flags_a_user_can_type(files, monkeypatch, capsys, tmp_path):
    frame = pd.read_csv(files / "train.csv")
    frame.loc[5, "a"] = np.nan
    frame.to_csv(tmp_path / "nan.csv", index=False)
    code, _, err = run(monkeypatch, capsys, "fit", tmp_path / "nan.csv", "--detector", "gaussian", "--id-col", "txn",
                       "--out", tmp_path / "m")
    assert code == 2 and "--impute median" in err and "impute='median'" not in err
    code, _, err = run(monkeypatch, capsys, "fit", files / "train.csv", "--label-col", "nope", "--id-col", "txn",
                       "--out", tmp_path / "m")
    assert code == 2 and "--label-col none" in err and "label_col=None" not in err


def test_control_characters_in_names_are_shown_escaped(tmp_path, monkeypatch, capsys):
    """A column name (from a data file, or a model folder from a stranger) holding an escape sequence is
    printed escaped by 'oddkit info', never sent to the terminal as it is."""
    import oddkit

    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 2)), columns=["a\x1b[2Jb", "c\x07"])
    oddkit.GaussianDetector().fit(frame).save(tmp_path / "m")
    code, out, err = run(monkeypatch, capsys, "info", tmp_path / "m")
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "a\\x1b[2Jb" in out and "c\\x07" in out
