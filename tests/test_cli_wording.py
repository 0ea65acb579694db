"""Every suggestion in the library's messages reaches a command-line user as flags: CLI_WORDING has a
rule for each one (a new message in Python's words fails here), and no rule has gone stale (a changed
message would silently lose its re-wording)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import oddkit
from oddkit.cli import CLI_WORDING, _cli_wording

SOURCE = Path(oddkit.__file__).parent

SUGGESTION = re.compile(r"\b(?:[Pp]ass|[Uu]se|[Ss]et|needs?)\b(?:(?![;.:]\s)[^;])*?"
                        r"(?<![-\w])(?<!-p )(?<!--param )([a-z_][a-z0-9_]*)\s*(?:=|<=)")
"""Advice in Python's words: after 'pass', 'use', 'set' or 'need(s)', in the same clause, a keyword
argument (``impute='median'``, ``label_col=None``, ``n_neighbors <= 5``) not already written as a flag."""
PYTHON_VALUE = re.compile(r"(?<![-\w])[a-z_][a-z0-9_]*\s*=\s*[(\[{]")
"""A keyword or variable given a tuple, list, dict or expression in Python's syntax, anywhere in a message
(``costs=(5, 1)``, ``column_types={'x': 'numeric'}``, ``y = (df['label'] == 1)``): no flag is written so."""
EXAMPLE = re.compile(r"\be\.g\.,?\s+[a-z_][a-z0-9_]*\s*=(?!=)")
"""An example in Python's words (``e.g. costs=...``), with or without 'pass' before it."""
PYTHON_CALL = re.compile(r"\bpd\.[a-z_]+\(")
"""A pandas call (``pd.to_datetime(X['when'])``): code to write, not a flag to type. (Advice such as
``np.savez(...)`` for an .npz file stays: there is no flag for it.)"""
PYTHON_ADVICE = (SUGGESTION, PYTHON_VALUE, EXAMPLE, PYTHON_CALL)


def _python_advice(text: str) -> bool:
    return any(pattern.search(text) for pattern in PYTHON_ADVICE)


def _library_strings() -> list[tuple[str, str]]:
    """Every string literal in oddkit outside the command line and docstrings, f-strings with '7'
    for each value, as (file:line, text)."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        if "cli" in path.relative_to(SOURCE).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {id(node.value) for node in ast.walk(tree)
                   if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}  # docstrings
        skipped |= {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.JoinedStr):
                text = "".join(p.value if isinstance(p, ast.Constant) else "7" for p in node.values)
            else:
                continue
            found.append((f"{path.relative_to(SOURCE)}:{node.lineno}", text))
    return found


def test_the_scan_finds_the_known_suggestions():
    texts = [text for _, text in _library_strings() if SUGGESTION.search(text)]
    assert any("impute='median'" in t for t in texts) and any("label_col=None" in t for t in texts)
    assert len(texts) >= 10
    assert not SUGGESTION.search("pass --impute median") and not SUGGESTION.search("Pass -p n_neighbors=3")
    # Python values and examples outside a 'pass ...' clause (the miss-cost advice once read so).
    assert _python_advice("miss_costs prices missed anomalies, so it needs costs too; e.g. costs=(5, 1)")
    assert _python_advice("declare it with column_types={'when': 'numeric'}")
    assert _python_advice("first, e.g. y = (df['label'] == 'fraud').astype(int)")
    assert _python_advice("convert it to numbers (e.g. pd.to_datetime(X['when']).dt.hour) or drop it")
    assert any("costs=(5, 1)" in t for _, t in _library_strings() if _python_advice(t))
    for flags in ("e.g. --goal cost:5,1", "e.g. -p ridge=0.1", "e.g. --column-type when=numeric",
                  "got 4 (first rows: 3)", "a==b"):
        assert not _python_advice(flags), flags


def test_every_suggestion_in_the_library_has_a_command_line_wording():
    missing = [f"{where}: {text}" for where, text in _library_strings()
               if _python_advice(text) and _python_advice(_cli_wording(text))]
    assert not missing, ("these messages advise in Python's words and CLI_WORDING (src/oddkit/cli/__init__.py) "
                         "has no rule that re-words them as flags:\n" + "\n".join(missing))


def test_every_rule_still_matches_a_library_message():
    texts = [text for _, text in _library_strings()]
    stale = [pattern.pattern for pattern, _ in CLI_WORDING if not any(pattern.search(t) for t in texts)]
    assert not stale, f"CLI_WORDING rules that match no message any more (was a message changed?): {stale}"


def test_miss_cost_advice_reaches_the_command_line_as_flags(tmp_path, monkeypatch, capsys):
    """--miss-cost-col without a cost goal (evaluate, threshold) and with bad values: the errors name flags."""
    import numpy as np
    import pandas as pd

    from conftest import run_cli

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 2)), columns=["a", "b"])
    frame.to_csv(tmp_path / "train.csv", index=False)
    frame["y"] = (np.arange(120) < 12).astype(int)
    frame["amount"] = rng.uniform(1, 100, 120)
    frame.to_csv(tmp_path / "dev.csv", index=False)
    frame.loc[3, "amount"] = -2.0
    frame.to_csv(tmp_path / "negative.csv", index=False)
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[5, "amount"] = "twelve"
    frame.to_csv(tmp_path / "text.csv", index=False)
    common = ["--label-col", "y", "--id-col", "amount", "--miss-cost-col", "amount"]
    assert run_cli(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--detector", "gaussian",
                   "--out", tmp_path / "model")[0] == 0
    runs = {
        "evaluate": ["evaluate", tmp_path / "model", tmp_path / "dev.csv", *common, "--plots", tmp_path / "plots"],
        "threshold": ["threshold", tmp_path / "model", tmp_path / "dev.csv", *common, "--out", tmp_path / "m2"],
        "negative": ["threshold", tmp_path / "model", tmp_path / "negative.csv", *common, "--goal", "cost:1,5",
                     "--out", tmp_path / "m3"],
        "text": ["threshold", tmp_path / "model", tmp_path / "text.csv", *common, "--goal", "cost:1,5",
                 "--out", tmp_path / "m4"],
    }
    errors = {}
    for name, argv in runs.items():
        code, _, err = run_cli(monkeypatch, capsys, *argv)
        assert code == 2, (name, err)
        assert not _python_advice(err) and "miss_costs" not in err, (name, err)
        errors[name] = err
    assert "--goal cost:FALSE_ALARM,MISS" in errors["evaluate"]
    assert "--goal cost:5,1, not --goal f1" in errors["threshold"]
    assert "--miss-cost-col values must be >= 0" in errors["negative"]
    assert "--miss-cost-col 'amount' must hold numbers" in errors["text"] and "'twelve'" in errors["text"]
