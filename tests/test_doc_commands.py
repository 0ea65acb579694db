"""scripts/check_doc_commands.py, the fresh-clone check of the README's and docs' commands: how it
finds blocks, reads the not-run and check-needs markers and chooses pages. Fast: nothing is cloned or
run here (the check itself is run by hand; its last table is benchmarks/DOC_COMMANDS.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
check = load_script("check_doc_commands")

PAGE = """# A page

Some text.

```bash
echo one
```

<!-- not-run: takes hours
     on two cores -->

```bash
echo two
```

```python
print("three")
```

<!-- a comment that is no marker -->
```bash
echo four
```

<!-- not-run: only the last comment counts --> and then text
```bash
echo five
```

````markdown
```bash
echo not a block of its own
```
````

```
plain
```

<!-- not-run: before the Python block -->
```python
print("six")
```
"""


def test_blocks_are_found_in_order_with_their_numbers_and_lines():
    blocks = check.fenced_blocks(PAGE, "page.md")
    assert [(b.language, b.number) for b in blocks] == [
        ("bash", 1), ("bash", 2), ("python", 1), ("bash", 3), ("bash", 4), ("markdown", 1), ("", 1), ("python", 2)]
    assert blocks[0].code == "echo one\n" and blocks[0].line == 5
    assert [b.name for b in blocks if b.language in ("bash", "python")] == [
        "page.md:1", "page.md:2", "page.md:py1", "page.md:3", "page.md:4", "page.md:py2"]
    assert "echo not a block of its own" in blocks[5].code  # a longer fence holds a shorter one


def test_the_not_run_marker_is_the_comment_right_before_the_fence():
    skips = {b.name: b.skip for b in check.fenced_blocks(PAGE, "page.md") if b.language in ("bash", "python")}
    assert skips == {"page.md:1": None, "page.md:2": "takes hours on two cores", "page.md:py1": None,
                     "page.md:3": None,  # another comment is no marker
                     "page.md:4": None,  # a marker followed by text is not right before the fence
                     "page.md:py2": "before the Python block"}


def test_skip_option_and_which_python_blocks_run():
    """--skip names a block; on the pages whose Python tests/test_docs.py runs, only the Python blocks
    before the page's last bash block run (the commands may need what they make); elsewhere all."""
    blocks = check.runnable_blocks("README.md", PAGE, skips={"README.md:1", "README.md:py1"})
    assert [b.name for b in blocks] == ["README.md:1", "README.md:2", "README.md:py1", "README.md:3",
                                        "README.md:4", "README.md:py2"]
    assert blocks[0].skip == "skipped by --skip" and blocks[2].skip == "skipped by --skip"
    assert blocks[1].skip == "takes hours on two cores"  # a marker's reason wins over --skip
    tested = check.runnable_blocks("docs/guide/page.md", PAGE)
    assert [b.name for b in tested] == ["docs/guide/page.md:1", "docs/guide/page.md:2", "docs/guide/page.md:py1",
                                        "docs/guide/page.md:3", "docs/guide/page.md:4"]
    assert check.runnable_blocks("docs/guide/only-python.md", "```python\nx = 1\n```\n") == []


def test_installing_blocks_are_refused_unless_marked(tmp_path):
    block = check.Block("page.md", "bash", 1, 1, 'pip install -e ".[examples]"\n')
    result = check.run_block(block, tmp_path, tmp_path, 10, tmp_path / "log", {})
    assert result.rc is None and result.note.startswith("refused")
    assert check.INSTALLS.search(".venv/bin/python -m pip install x") and not check.INSTALLS.search("pipx list")


def test_pages_and_their_selection():
    pages = check.doc_pages()
    assert pages[0] == "README.md" and "docs/guide/cli.md" in pages and "docs/walkthroughs/fraud.md" in pages
    assert check.select_pages(pages, ["cli.md"]) == ["docs/guide/cli.md"]
    assert check.select_pages(pages, ["docs/walkthroughs"]) == [
        "docs/walkthroughs/cancer.md", "docs/walkthroughs/fraud.md", "docs/walkthroughs/intrusion.md",
        "docs/walkthroughs/sms.md", "docs/walkthroughs/speech.md"]
    assert check.select_pages(pages, ["docs/guide/s*.md", "README.md"])[0] == "README.md"
    with pytest.raises(ValueError, match="no page matches nothing.md"):
        check.select_pages(pages, ["nothing.md"])


def test_the_repository_pages_markers():
    """The README's setup block and benchmark block are marked, every pip install is, and the pages that
    use the command-line page's model name it as needed."""
    readme = check.runnable_blocks("README.md", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert readme[0].skip and "scripts/test.sh" in readme[0].code
    assert any(b.skip and "run_tabular.py" in b.code for b in readme)
    for page in check.doc_pages():
        for block in check.runnable_blocks(page, (ROOT / page).read_text(encoding="utf-8")):
            assert not (block.language == "bash" and check.INSTALLS.search(block.code) and not block.skip), block.name
    for page in ("docs/guide/reports.md", "docs/guide/explanations.md"):
        assert check.needed_pages((ROOT / page).read_text(encoding="utf-8")) == ["docs/guide/cli.md"]
        assert {b.prerequisite_of for b in check._prerequisites(page)} == {page}


def test_table_lists_skipped_blocks_with_their_reason():
    ran = check.Result(check.Block("a.md", "bash", 1, 3, "oddkit info m\n"), 0, 1.25)
    skipped = check.Result(check.Block("a.md", "bash", 2, 9, "bash scripts/test.sh\n", skip="the test suite"), None, 0)
    failed = check.Result(check.Block("a.md", "python", 1, 12, "# set up\nimport oddkit\n"), 1, 0.5)
    text = check.table([ran, skipped, failed])
    assert "| a.md | 1 | 3 | 0 | 1.2 | `oddkit info m` |  |" in text
    assert "| a.md | 2 | 9 | skipped |  | `bash scripts/test.sh` | the test suite |" in text
    assert "| a.md | python 1 | 12 | 1 | 0.5 | `import oddkit` |  |" in text
