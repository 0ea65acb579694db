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


def test_every_suggestion_in_the_library_has_a_command_line_wording():
    missing = [f"{where}: {text}" for where, text in _library_strings()
               if SUGGESTION.search(text) and SUGGESTION.search(_cli_wording(text))]
    assert not missing, ("these messages advise in Python's words and CLI_WORDING (src/oddkit/cli/__init__.py) "
                         "has no rule that re-words them as flags:\n" + "\n".join(missing))


def test_every_rule_still_matches_a_library_message():
    texts = [text for _, text in _library_strings()]
    stale = [pattern.pattern for pattern, _ in CLI_WORDING if not any(pattern.search(t) for t in texts)]
    assert not stale, f"CLI_WORDING rules that match no message any more (was a message changed?): {stale}"
