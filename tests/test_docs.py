"""The documentation: the site builds without a warning, and the guide's Python runs as shown.

``mkdocs build --strict`` fails on any warning, griffe's included (a docstring naming a parameter
the signature lacks, a section it cannot parse), and on any broken link between pages. Every
```` ```python ```` block of the getting-started page and of ``docs/guide/`` is run in order, page by
page, in a temporary folder, so that a renamed function or a changed default cannot leave the guide
showing code that no longer runs.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
WALKTHROUGHS = ("fraud", "intrusion", "cancer", "sms", "speech")
# The fenced blocks are found as scripts/check_doc_commands.py finds them (the fresh-clone check of every
# command, run by hand), which leaves to this module the Python of these pages.
CHECK = load_script("check_doc_commands")
GUIDE_PAGES = sorted(ROOT / page for pattern in CHECK.TESTED_PYTHON_PAGES for page in CHECK.doc_pages()
                     if fnmatch.fnmatch(page, pattern))


def blocks(page: Path, language: str) -> list[str]:
    """The page's blocks in ``language``, in order, but those marked ``<!-- not-run: ... -->``."""
    return [b.code for b in CHECK.fenced_blocks(page.read_text(encoding="utf-8"), page.name)
            if b.language == language and b.skip is None]


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, in order."""
    return blocks(page, "python")


def test_python_blocks_are_found():
    """The extraction itself: a guide with no runnable block would make the test below vacuous."""
    assert python_blocks(DOCS / "getting-started.md"), "getting-started.md lost its Python example"
    assert sum(len(python_blocks(p)) for p in GUIDE_PAGES) >= 10


def test_site_builds_without_warnings(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed: pip install -e '.[docs]'")
    missing = [f"docs/walkthroughs/{name}.md" for name in WALKTHROUGHS
               if not (DOCS / "walkthroughs" / f"{name}.md").is_file()]
    assert not missing, f"the nav of mkdocs.yml names walk-through pages that are missing: {', '.join(missing)}"
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{log[-4000:]}"
    assert "WARNING" not in log, log[-4000:]
    # Every page of the nav was built, the API reference holds the docstrings, nothing is fetched.
    for page in ["index.html", "getting-started.html", "guide/threshold.html", "api/detectors.html"]:
        assert (site / page).is_file(), page
    detectors = (site / "api" / "detectors.html").read_text(encoding="utf-8")
    assert "AutoEncoderDetector" in detectors and "contamination" in detectors
    fetched = re.compile(r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.I)
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert not fetched.search(text), f"{html} loads something from the network: {fetched.search(text)}"
    # Sphinx roles in the docstrings become links or code (docs/_ext/sphinx_roles.py), not raw text.
    for html in (site / "api").glob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert ":class:" not in text and ":func:" not in text and ":meth:" not in text, html
        assert "<autoref" not in text, html
    exceptions = (site / "api" / "exceptions.html").read_text(encoding="utf-8")
    assert 'href="#oddkit.exceptions.OddkitError"' in exceptions  # a role became a link


@pytest.mark.parametrize("page", GUIDE_PAGES, ids=lambda p: p.name)
def test_guide_python_runs(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no Python block")
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"{page.name}, block {number}", "exec"), namespace)
        except Exception as error:  # name the page and block: the traceback points into the text
            raise AssertionError(f"{page.relative_to(ROOT)}: Python block {number} fails: "
                                 f"{type(error).__name__}: {error}") from error


def test_cli_guide_config_is_the_shipped_file_and_runs(tmp_path, monkeypatch, capsys):
    """The guide's (and the README's) `oddkit run` example is examples/breast_cancer/run.toml, and that config runs:
    fit, threshold, evaluate and report, each writing what its table names."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    import shutil

    from conftest import run_cli

    guide = (DOCS / "guide" / "cli.md").read_text(encoding="utf-8")
    shipped = ROOT / "examples" / "breast_cancer" / "run.toml"
    tomls = re.findall(r"^```toml\n(.*?)^```$", guide, re.MULTILINE | re.DOTALL)
    assert tomls, "docs/guide/cli.md lost its config example"
    assert tomllib.loads(tomls[0]) == tomllib.loads(shipped.read_text(encoding="utf-8"))
    assert f"oddkit run {shipped.relative_to(ROOT).as_posix()}" in guide
    readme = (ROOT / "README.md").read_text(encoding="utf-8")  # the README shows the same file
    assert tomllib.loads(re.findall(r"^```toml\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)[0]) == \
        tomllib.loads(shipped.read_text(encoding="utf-8"))
    assert f"oddkit run {shipped.relative_to(ROOT).as_posix()}" in readme
    # Run a copy beside copies of its data, so the checkout's examples/ folder stays as it is.
    for name in ("run.toml", "train.csv", "dev.csv", "test.csv"):
        shutil.copy(shipped.parent / name, tmp_path / name)
    code, out, err = run_cli(monkeypatch, capsys, "run", tmp_path / "run.toml")
    assert code == 0, err[-2000:]
    for written in ("out/model-cost/config.json", "out/metrics.json", "out/curves/pr.png", "out/report.html"):
        assert (tmp_path / written).is_file(), written
    assert "cost:1,20,0.01" in (tmp_path / "out" / "model-cost" / "config.json").read_text(encoding="utf-8")


def test_data_package_exports_the_streamed_table_source():
    """oddkit.data exports each submodule's entry point, the streamed fit's TableSource included,
    and the API reference documents its module."""
    import oddkit.data
    from oddkit.data.stream import TableSource

    assert oddkit.data.TableSource is TableSource and "TableSource" in oddkit.data.__all__
    assert all(hasattr(oddkit.data, name) for name in oddkit.data.__all__)
    assert "::: oddkit.data.stream" in (DOCS / "api" / "data.md").read_text(encoding="utf-8")


def test_every_public_module_is_in_the_api_reference():
    """Each public module of oddkit (outside the command line and the detectors' implementation modules,
    whose classes have their own entries) has a ``::: module`` entry in docs/api, and each page of docs/api
    is in the nav of mkdocs.yml: a new module cannot ship without its reference page."""
    source = ROOT / "src" / "oddkit"
    modules = set()
    for path in source.rglob("*.py"):
        parts = path.relative_to(source).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts) or parts[:1] == ("cli",) or parts[:1] == ("detectors",) and parts[1:]:
            continue
        modules.add(".".join(("oddkit", *parts)))
    documented = {m for page in (DOCS / "api").glob("*.md")
                  for m in re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.MULTILINE)}
    assert {"oddkit.scoring", "oddkit.serve", "oddkit.spark", "oddkit.dask", "oddkit.export"} <= modules
    assert not modules - documented, f"public modules missing from docs/api: {sorted(modules - documented)}"
    import oddkit.detectors

    classes = {m.rsplit(".", 1)[-1] for m in documented if m.startswith("oddkit.detectors.")}
    assert not set(oddkit.detectors.__all__) - classes - {"DETECTORS"}, set(oddkit.detectors.__all__) - classes
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [p.name for p in (DOCS / "api").glob("*.md") if f"api/{p.name}" not in nav]
    assert not missing, f"docs/api pages missing from the nav of mkdocs.yml: {missing}"


SHELL_PAGES = ("serving.md", "onnx.md", "streaming.md", "drift.md")
"""Guide pages whose ```bash blocks run in :func:`test_guide_shell_commands_run`. Not run there:
``spark-dask.md`` (two Spark jobs, each starting a JVM: about 1.5 minutes on two cores; ``oddkit score
--engine spark`` is tested in tests/test_spark.py, and the page was run as shown from a fresh clone) and
the pages written before these (their commands were checked from a fresh clone)."""


@pytest.mark.parametrize("name", SHELL_PAGES)
def test_guide_shell_commands_run(name, tmp_path):
    """The page's shell commands, as shown, from a folder laid out as the repository's root (its
    examples/), with this interpreter's environment first on PATH. One change: the service's port 8000
    becomes a free port, so that a service already listening there cannot answer in its place."""
    import shutil
    import socket

    if shutil.which("bash") is None or shutil.which("curl") is None and name == "serving.md":
        pytest.skip("needs bash (and curl for the service)")
    pytest.importorskip("onnxruntime" if name == "onnx.md" else "torch")
    if name == "serving.md":
        pytest.importorskip("fastapi")
        pytest.importorskip("uvicorn")
    script = "\n".join(blocks(DOCS / "guide" / name, "bash"))
    assert script.strip(), f"{name} lost its shell commands"
    if name == "serving.md":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        assert ":8000" in script
        script = script.replace(":8000", f":{port}").replace("--port 8000", f"--port {port}")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONPATH": str(ROOT / "src")}
    env.pop("ODDKIT_API_KEY", None)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=240)
    assert done.returncode == 0, f"{name}: the shell commands failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    if name == "serving.md":
        assert '"unseen_category_rows": 1' in done.stdout and "never seen in training ('east')" in done.stdout
        assert done.stdout.rstrip().endswith("401")
    if name == "onnx.md":
        assert "'score', 'label', 'unseen_category'" in done.stdout
    if name == "streaming.md":
        assert (tmp_path / "streamed-scores.csv").is_file() and "streamed on 214 rows" in done.stdout
    if name == "drift.md":  # the output the page shows is the output the commands print
        shown = [line for line in blocks(DOCS / "guide" / name, "text")[0].splitlines() if line not in ("", "...")]
        assert shown and all(line in done.stdout.splitlines() for line in shown), done.stdout
        assert (tmp_path / "drift.json").is_file() and "drift: look at drift.json" in done.stdout
