"""'oddkit run CONFIG.toml': the steps run as their commands would, the printed commands reproduce them,
and every bad key or value stops the run before anything is written, with exit code 2."""

from __future__ import annotations

import json
import shlex
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli as run

CONFIG = """\
model = "out/model"
n-threads = 1

[fit]
data = "../train.csv"
detector = "gaussian"

[threshold]
data = "../dev.csv"
goal = "recall:0.9"
force = true

[evaluate]
data = "../test.csv"
out = "out/metrics.json"
plots = "out/plots"
id-col = ["site"]
group-col = "site"

[report]
data = "../test.csv"
out = "out/report.html"
id-col = ["site"]
group-col = "site"
top = 5
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """Train, dev and test CSVs in tmp_path, the config in tmp_path/cfg (so its paths are relative to
    its own folder, not the working directory)."""
    rng = np.random.default_rng(0)

    def table(n, rate):
        X = rng.normal(size=(n, 4))
        y = (rng.random(n) < rate).astype(int)
        X[y == 1] += 3.0
        return pd.DataFrame(X, columns=list("abcd")).assign(y=y, site=rng.choice(["north", "south"], n))

    table(300, 0.0).drop(columns=["y", "site"]).to_csv(tmp_path / "train.csv", index=False)
    table(200, 0.2).drop(columns="site").to_csv(tmp_path / "dev.csv", index=False)
    table(200, 0.2).to_csv(tmp_path / "test.csv", index=False)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "run.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_run_does_every_step(project, monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, "run", "cfg/run.toml")
    assert code == 0, err
    out_dir = project / "cfg" / "out"
    assert (out_dir / "model" / "config.json").is_file()
    config = json.loads((out_dir / "model" / "config.json").read_text())
    assert config["class"] == "GaussianDetector"
    assert config["detector"]["threshold_goal"] == "recall:0.9"  # threshold updated the model fit wrote
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["n"] == 200 and metrics["roc_auc"] > 0.9
    assert (out_dir / "plots" / "roc.png").is_file()
    html = (out_dir / "report.html").read_text()
    assert "<html" in html.lower() and "north" in html
    assert err.count("$ oddkit ") == 4 and "$ oddkit" not in out  # the steps on stderr, as 'set -x' shows them


def test_printed_commands_reproduce_the_run(project, monkeypatch, capsys):
    code, printed, err = run(monkeypatch, capsys, "run", "cfg/run.toml", "--print")
    assert code == 0, err
    lines = printed.strip().splitlines()
    assert [line.split()[1] for line in lines] == ["fit", "threshold", "evaluate", "report"]
    assert not (project / "cfg" / "out").exists()  # --print runs nothing
    assert lines[0] == "oddkit fit train.csv --n-threads 1 --detector gaussian --out cfg/out/model"
    assert "--id-col site --group-col site" in lines[2] and "--force" in lines[1]

    code, _, err = run(monkeypatch, capsys, "run", "cfg/run.toml")
    assert code == 0, err
    by_run = json.loads((project / "cfg" / "out" / "metrics.json").read_text())
    shutil.rmtree(project / "cfg" / "out")
    for line in lines:
        words = shlex.split(line)
        assert words[0] == "oddkit"
        code, _, err = run(monkeypatch, capsys, *words[1:])
        assert code == 0, (line, err)
    by_hand = json.loads((project / "cfg" / "out" / "metrics.json").read_text())
    assert by_hand == by_run
    assert (project / "cfg" / "out" / "report.html").is_file()


def test_threshold_out_hands_its_model_on(project, monkeypatch, capsys):
    (project / "cfg" / "run.toml").write_text(
        'model = "m"\n[fit]\ndata = "../train.csv"\ndetector = "gaussian"\n'
        '[threshold]\ndata = "../dev.csv"\nout = "m-f1"\n[evaluate]\ndata = "../test.csv"\nplots = "p"\n')
    code, printed, err = run(monkeypatch, capsys, "run", "cfg/run.toml", "--print")
    assert code == 0, err
    lines = printed.strip().splitlines()
    assert lines[1] == "oddkit threshold cfg/m dev.csv --out cfg/m-f1"
    assert lines[2].startswith("oddkit evaluate cfg/m-f1 test.csv")


@pytest.mark.parametrize("text, message", [
    ('model = "m"\n[treshold]\ngoal = "f1"\n', "unknown step [treshold]; did you mean 'threshold'?"),
    ('model = "m"\n[fit]\ndata = "../train.csv"\n[threshold]\ndata = "../dev.csv"\ngaol = "f1"\n',
     "unknown key 'gaol' in [threshold]; did you mean 'goal'? its keys are: data, dev, force, goal,"),
    ('model = "m"\ngoal = "f1"\n[fit]\ndata = "../train.csv"\n', "unknown key 'goal' in the top level"),
    ('model = "m"\n[fit]\ndata = "../train.csv"\nepochs = "many"\n', "[fit] Invalid value for '--epochs'"),
    ('model = "m"\n[fit]\ndata = "../train.csv"\nforce = "yes"\n', "expected true or false (it is the flag --force)"),
    ('model = "m"\n[fit]\ndata = "../train.csv"\nlabel-col = true\n', "--label-col takes a value, not true or false"),
    ('model = "m"\n[fit]\ndata = "../train.csv"\n[report]\nout = "r.html"\n', "[report] needs data ="),
    ('[fit]\ndata = "../train.csv"\n', "[fit] needs out ="),
    ('model = "m"\n[fit\n', "is not valid TOML"),
])
def test_bad_config_stops_before_any_step(project, monkeypatch, capsys, text, message):
    (project / "cfg" / "run.toml").write_text(text)
    code, out, err = run(monkeypatch, capsys, "run", "cfg/run.toml")
    assert code == 2
    assert message in err
    assert "$ oddkit" not in err + out and not (project / "cfg" / "m").exists()  # nothing ran


def test_score_and_explain_steps_and_a_table_on_standard_output(project, monkeypatch, capsys):
    import io

    (project / "cfg" / "run.toml").write_text(
        'model = "m"\n[fit]\ndata = "../train.csv"\ndetector = "gaussian"\n'
        '[score]\ndata = "../test.csv"\nout = "-"\nid-col = ["site"]\nbatch-rows = 50\n'
        '[explain]\ndata = "../test.csv"\ntop = 3\nout = "e.csv"\nid-col = ["site"]\n')
    code, out, err = run(monkeypatch, capsys, "run", "cfg/run.toml")
    assert code == 0, err
    lines = out.splitlines()  # the score table on standard output, whole, after fit's message
    start = lines.index("site,score,label")
    scores = pd.read_csv(io.StringIO("\n".join(lines[start:start + 201])))
    assert scores["score"].notna().all() and set(scores["label"]) <= {0, 1}
    assert list(scores.columns) == ["site", "score", "label"] and len(scores) == 200
    assert len(pd.read_csv(project / "cfg" / "e.csv")) == 3
