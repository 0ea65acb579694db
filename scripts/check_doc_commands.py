#!/usr/bin/env python3
"""Run the commands that README.md and docs/ show, as shown, from a fresh clone; print a table.

Every ```` ```bash ```` and ```` ```python ```` block of README.md and docs/**/*.md runs, except the
Python blocks that tests/test_docs.py runs already and no shell command needs (those of
docs/getting-started.md and docs/guide/ after the page's last bash block: :data:`TESTED_PYTHON_PAGES`).
Each page gets its own ``git clone`` of the current commit in a temporary folder, and its blocks run
there one after the other, in page order, as a reader would type them:

* ``../shared`` beside the clone links to the team's data (``--shared``), so ``../shared/data``
  paths work; without it, the commands meet what a clone without the data meets;
* ``.venv`` in the clone links to an installed environment (``--venv``, default this checkout's
  ``.venv`` or the running interpreter's), whose ``bin`` leads ``PATH`` as if ``source
  .venv/bin/activate`` had been run, with ``PYTHONPATH`` set to the clone's ``src`` so that the
  clone's code is the one imported;
* a bash block runs under ``bash -euo pipefail`` (any failing command fails the block), and whatever
  it leaves running in the background is stopped when it ends; the Python blocks of a page run in one
  interpreter, one namespace (a block uses what the blocks before it defined), as in a pasted session;
  each block has a time limit (``--timeout``).

A block that cannot run in a check (it installs everything, it runs for hours) is marked in the page
itself by an HTML comment right before its opening fence, which neither GitHub nor MkDocs shows::

    <!-- not-run: installs into .venv; the check reuses an installed one -->
    ```bash
    bash scripts/setup.sh
    ```

It is listed as skipped, with that reason. A block that would install packages (``pip install``)
without such a mark is refused, not run: it would change the shared environment. A page that builds on
another (``model``, fitted on the command-line page) says so with ``<!-- check-needs: docs/guide/cli.md
-->``: that page's blocks run first, in the same clone (listed with the note "needed by ...").

Usage (from the repository's root; about an hour on two cores for every page)::

    python scripts/check_doc_commands.py                       # every page
    python scripts/check_doc_commands.py --pages README.md 'docs/guide/*.md' --out table.md
    python scripts/check_doc_commands.py --skip README.md:3    # skip the README's third bash block
    python scripts/check_doc_commands.py --list                # the blocks, run nothing

Exit status 0 when every block that ran gave 0, 1 otherwise, 2 for a bad invocation.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import hashlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TESTED_PYTHON_PAGES = ("docs/getting-started.md", "docs/guide/*.md")
"""Pages whose ```` ```python ```` blocks tests/test_docs.py runs (``test_guide_python_runs``):
not run again here."""

LANGUAGES = ("bash", "python")
MARKER = re.compile(r"<!--\s*not-run:\s*(.*?)\s*-->", re.DOTALL)
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
INSTALLS = re.compile(r"\bpip3?\s+install\b|-m\s+pip\s+install\b")


@dataclass
class Block:
    """One fenced code block of a page."""

    page: str  # the page's path relative to the repository root, with /
    language: str  # the fence's language: "bash", "python", ...
    number: int  # 1-based, among the page's blocks of that language
    line: int  # line number of the opening fence
    code: str
    skip: str | None = None  # the reason of a not-run marker (or of --skip), None to run it
    prerequisite_of: str | None = None  # run first for this page (check-needs)

    @property
    def name(self) -> str:
        return f"{self.page}:{self.number}" if self.language == "bash" else f"{self.page}:py{self.number}"


def fenced_blocks(text: str, page: str = "") -> list[Block]:
    """Every fenced block of a Markdown text, in order, with the reason of the ``<!-- not-run: ... -->``
    comment that ends right before its opening fence (blank lines between them allowed), if any."""
    lines = text.splitlines()
    blocks: list[Block] = []
    counts: dict[str, int] = {}
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        end = i + 1
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        counts[language] = counts.get(language, 0) + 1
        code = "\n".join(lines[i + 1:end]) + "\n"
        blocks.append(Block(page, language, counts[language], i + 1, code, _marker_before(lines, i)))
        i = end + 1
    return blocks


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence``: only that character, at least as many."""
    text = line.strip()
    return len(text) >= len(fence) and set(text) == {fence[0]}


def _marker_before(lines: list[str], fence: int) -> str | None:
    """The reason of a not-run comment that ends on the last non-blank line before ``fence``."""
    j = fence - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0 or not lines[j].rstrip().endswith("-->"):
        return None
    start = j
    while start >= 0 and "<!--" not in lines[start]:
        start -= 1
    if start < 0:
        return None
    comment = "\n".join(lines[start:j + 1])
    comment = comment[comment.rindex("<!--"):]
    found = MARKER.fullmatch(comment.strip())
    return " ".join(found.group(1).split()) if found else None


def doc_pages(root: Path = ROOT) -> list[str]:
    """README.md and every page under docs/, as paths relative to ``root``."""
    pages = ["README.md"] if (root / "README.md").is_file() else []
    pages += sorted(p.relative_to(root).as_posix() for p in (root / "docs").rglob("*.md"))
    return pages


def select_pages(pages: list[str], patterns: list[str] | None) -> list[str]:
    """The pages matching any of ``patterns`` (a path, a glob such as ``docs/guide/*.md``, or a file
    name such as ``cli.md``); all of them without patterns. A pattern matching nothing is an error."""
    if not patterns:
        return pages
    chosen, unmatched = [], []
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        hits = [p for p in pages if fnmatch.fnmatch(p, pattern) or Path(p).name == pattern
                or p.startswith(pattern + "/")]
        if not hits:
            unmatched.append(pattern)
        chosen += [p for p in hits if p not in chosen]
    if unmatched:
        raise ValueError(f"no page matches {', '.join(unmatched)}; pages: {', '.join(pages)}")
    return [p for p in pages if p in chosen]


def _prerequisites(page: str, seen: tuple[str, ...] = ()) -> list[Block]:
    """The blocks of the pages ``page`` needs (and those they need), in the order to run them."""
    blocks: list[Block] = []
    for needed in needed_pages((ROOT / page).read_text(encoding="utf-8")):
        if needed in seen or needed == page:
            raise ValueError(f"{page}: check-needs goes round in a circle through {needed}")
        if not (ROOT / needed).is_file():
            raise ValueError(f"{page}: check-needs names {needed}, which is not a page")
        blocks += _prerequisites(needed, (*seen, page))
        blocks += [Block(**{**b.__dict__, "prerequisite_of": page})
                   for b in runnable_blocks(needed, (ROOT / needed).read_text(encoding="utf-8"))]
    return blocks


def _tested_python(page: str) -> bool:
    return any(fnmatch.fnmatch(page, pattern) for pattern in TESTED_PYTHON_PAGES)


def runnable_blocks(page: str, text: str, skips: set[str] = frozenset()) -> list[Block]:
    """The blocks of ``page`` this check runs, in page order: every bash block, and the Python blocks
    except those tests/test_docs.py runs already that no bash block needs (on the pages of
    :data:`TESTED_PYTHON_PAGES`, the Python blocks after the page's last bash block). ``skips`` holds
    block names (``README.md:3``, ``README.md:py1``) to skip besides those marked not-run."""
    blocks = [b for b in fenced_blocks(text, page) if b.language in LANGUAGES]
    last_bash = max((i for i, b in enumerate(blocks) if b.language == "bash"), default=-1)
    if _tested_python(page):
        blocks = blocks[:last_bash + 1]
    for block in blocks:
        if block.skip is None and block.name in skips:
            block.skip = "skipped by --skip"
    return blocks


def needed_pages(text: str) -> list[str]:
    """The pages named by ``<!-- check-needs: PAGE -->`` comments: pages whose commands make what this
    page's commands use (a model fitted on another page), run first in the same clone."""
    return re.findall(r"<!--\s*check-needs:\s*(\S+?)\s*-->", text)


# -- running ------------------------------------------------------------------------------------------

@dataclass
class Result:
    block: Block
    rc: int | None  # None: not run
    seconds: float
    note: str = ""


def _default_venv() -> Path | None:
    if (ROOT / ".venv" / "bin" / "python").exists():
        return ROOT / ".venv"
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix)
    return None


def _fresh_clone(commit: str, folder: Path, shared: Path | None, venv: Path) -> Path:
    """A clone of ``commit`` at ``folder/<repo name>``, with ``../shared`` and ``.venv`` linked."""
    clone = folder / ROOT.name
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", "--detach", commit], check=True)
    if shared is not None:
        (folder / "shared").symlink_to(shared.resolve())
    (clone / ".venv").symlink_to(venv.resolve())
    return clone


def _environment(clone: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ODDKIT_MODEL_KEY", "ODDKIT_API_KEY", "PYTHONHOME")}
    env.update(PATH=os.pathsep.join([str(clone / ".venv" / "bin"), os.environ.get("PATH", "")]),
               VIRTUAL_ENV=str(clone / ".venv"), PYTHONPATH=str(clone / "src"), PYTHONDONTWRITEBYTECODE="1")
    return env


_DRIVER = r"""
import os, sys, traceback
status = os.fdopen(os.dup(1), "w")
namespace = {"__name__": "__main__"}
for request in sys.stdin:
    script, log = request.rstrip("\n").split("\t")
    sys.stdout.flush(); sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(fd, 1); os.dup2(fd, 2); os.close(fd)
    rc = 0
    try:
        with open(script, encoding="utf-8") as handle:
            exec(compile(handle.read(), script, "exec"), namespace)
    except SystemExit as stop:
        rc = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        traceback.print_exc()
        rc = 1
    sys.stdout.flush(); sys.stderr.flush()
    status.write(f"{rc}\n"); status.flush()
"""


class PythonSession:
    """One interpreter per page: its Python blocks run one after the other in one namespace, as in a
    notebook or a pasted session (a block uses what the blocks before it defined)."""

    def __init__(self, clone: Path, scratch: Path) -> None:
        driver = scratch / "driver.py"
        driver.write_text(_DRIVER, encoding="utf-8")
        self.process = subprocess.Popen([str(clone / ".venv" / "bin" / "python"), "-u", str(driver)], cwd=clone,
                                        env=_environment(clone), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, start_new_session=True)

    def run(self, script: Path, log: Path, timeout: float) -> int | None:
        """The block's exit status (an exception: 1), or None when it ran past ``timeout``."""
        import selectors

        self.process.stdin.write(f"{script}\t{log}\n")
        self.process.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                return None
        line = self.process.stdout.readline()
        return int(line) if line.strip() else 1  # no answer: the interpreter died (a crash, os._exit)

    def close(self) -> None:
        _stop_group(self.process)


def _stop_group(process: subprocess.Popen) -> None:
    """Stop ``process`` and whatever it started in the background (its process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def run_block(block: Block, clone: Path, scratch: Path, timeout: float, log: Path,
              sessions: dict[str, PythonSession]) -> Result:
    """Run one block in ``clone``; its output goes to ``log``. A bash block runs in a shell of its own, and
    what it leaves running in the background is stopped; a Python block in the page's interpreter
    (``sessions``, by page), started at its first Python block."""
    if block.language == "bash" and INSTALLS.search(block.code):
        return Result(block, None, 0.0, "refused: it installs packages into the shared environment; mark it "
                                        "<!-- not-run: ... -->")
    script = scratch / f"{block.name.replace('/', '_').replace(':', '_')}.{'sh' if block.language == 'bash' else 'py'}"
    script.write_text(block.code, encoding="utf-8")
    log.write_text(f"$ {block.name} (line {block.line})\n{block.code}\n--- output ---\n", encoding="utf-8")
    start = time.monotonic()
    note = ""
    if block.language == "python":
        session = sessions.get(block.page)
        if session is None:
            session = sessions[block.page] = PythonSession(clone, scratch)
        rc = session.run(script, log, timeout)
        if rc is None:
            sessions.pop(block.page).close()  # the next Python block of the page starts afresh
            note = f"timeout after {timeout:g} s"
        return Result(block, rc, time.monotonic() - start, note)
    with open(log, "ab") as out:
        process = subprocess.Popen(["bash", "-euo", "pipefail", str(script)], cwd=clone, env=_environment(clone),
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            rc = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc, note = None, f"timeout after {timeout:g} s"
        finally:
            _stop_group(process)
    return Result(block, rc, time.monotonic() - start, note)


def _tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join("    " + line for line in text[-lines:])


def _untracked(clone: Path) -> list[str]:
    """What the page's commands left in the clone that git would show: files not ignored, or edits."""
    done = subprocess.run(["git", "-C", str(clone), "status", "--porcelain", "--untracked-files=normal"],
                          capture_output=True, text=True, check=True)
    return [line[3:] for line in done.stdout.splitlines() if line[3:] != ".venv"]


def _first_line(code: str) -> str:
    for line in code.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            text = line.strip()
            return text if len(text) <= 60 else text[:57] + "..."
    return ""


def table(results: list[Result]) -> str:
    """The results as a Markdown table: page, block, line, rc, seconds, what it starts with, note."""
    rows = ["| page | block | line | rc | seconds | first command | note |", "|---|---|---:|---:|---:|---|---|"]
    for r in results:
        b = r.block
        rc = "skipped" if b.skip else ("-" if r.rc is None else str(r.rc))
        seconds = "" if b.skip or r.rc is None and not r.note.startswith("timeout") else f"{r.seconds:.1f}"
        note = "; ".join(n for n in (b.skip or r.note, b.prerequisite_of and f"needed by {b.prerequisite_of}") if n)
        label = str(b.number) if b.language == "bash" else f"python {b.number}"
        rows.append(f"| {b.page} | {label} | {b.line} | {rc} | {seconds} | `{_first_line(b.code)}` | "
                    f"{note.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", nargs="+", metavar="PAGE",
                        help="only these pages: paths, globs (docs/guide/*.md) or file names (cli.md)")
    parser.add_argument("--skip", action="append", default=[], metavar="PAGE:N",
                        help="skip a block: the page and the block's number among its bash blocks "
                             "(README.md:3), or pyN for its Python blocks (README.md:py1); repeatable")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds each block may run (default 1800)")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) to this file")
    parser.add_argument("--logs", type=Path, help="folder for each block's full output (default: a temporary one, "
                                                  "removed at the end)")
    parser.add_argument("--commit", default="HEAD", help="the commit to clone (default HEAD: committed work only)")
    parser.add_argument("--venv", type=Path, default=_default_venv(),
                        help="an installed environment for .venv (default: ./.venv, or the running interpreter's)")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared",
                        help="the team's shared folder, linked as ../shared beside the clone (default: ../shared, "
                             "when it exists)")
    parser.add_argument("--list", action="store_true", help="list the blocks and what would be skipped; run nothing")
    args = parser.parse_args(argv)

    try:
        pages = select_pages(doc_pages(), args.pages)
    except ValueError as error:
        parser.error(str(error))
    skips = set(args.skip)
    work = {p: runnable_blocks(p, (ROOT / p).read_text(encoding="utf-8"), skips) for p in pages}
    known = {b.name for blocks in work.values() for b in blocks}
    needs = {}
    for page in work:
        try:
            needs[page] = _prerequisites(page)
        except ValueError as error:
            parser.error(str(error))
    if skips - known:
        parser.error(f"--skip names no block: {', '.join(sorted(skips - known))} (see --list)")
    work = {p: blocks for p, blocks in work.items() if blocks}
    if args.list:
        for page, blocks in work.items():
            for b in needs[page] + blocks:
                what = "skip: " + b.skip if b.skip else _first_line(b.code)
                print(f"{b.name:32} line {b.line:4}  {what}" + (f"  (needed by {page})" if b.prerequisite_of else ""))
        return 0

    venv = args.venv
    if venv is None or not (venv / "bin" / "python").exists():
        parser.error("no environment to link as .venv: run scripts/setup.sh, or pass --venv")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.commit], capture_output=True, text=True,
                            check=True).stdout.strip()
    shared = args.shared if args.shared is not None and args.shared.is_dir() else None
    stamp = venv / ".oddkit-installed"
    pyproject = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:pyproject.toml"], capture_output=True,
                               check=True).stdout
    if stamp.is_file() and stamp.read_text().strip() != hashlib.sha256(pyproject).hexdigest():
        parser.error(f"{venv} was installed from another pyproject.toml: scripts/setup.sh in a clone would reinstall "
                     "into it; run scripts/setup.sh here first")
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    print(f"checking {sum(len(b) for b in work.values())} blocks of {len(work)} pages at {commit[:12]} "
          f"(.venv -> {venv}; ../shared -> {shared or 'none'})" + ("; uncommitted edits are not checked" if dirty else ""),
          flush=True)

    logs = args.logs or Path(tempfile.mkdtemp(prefix="oddkit-doc-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    started = time.monotonic()
    for page, blocks in work.items():
        with tempfile.TemporaryDirectory(prefix="oddkit-doc-check-") as folder:
            folder = Path(folder)
            clone = _fresh_clone(commit, folder, shared, venv)
            scratch = folder / "blocks"
            scratch.mkdir()
            sessions: dict[str, PythonSession] = {}
            for block in needs[page] + blocks:
                if block.skip:
                    results.append(Result(block, None, 0.0))
                    print(f"{block.name:32} skipped: {block.skip}", flush=True)
                    continue
                log = logs / (f"{page}-needs-" if block.prerequisite_of else "") / f"{block.name}.log"
                log = logs / str(log.relative_to(logs)).replace("/", "_").replace(":", "_")
                result = run_block(block, clone, scratch, args.timeout, log, sessions)
                results.append(result)
                status = result.note or f"rc {result.rc}"
                before = f" (needed by {page})" if block.prerequisite_of else ""
                print(f"{block.name:32} {status} in {result.seconds:.1f} s{before}", flush=True)
                if result.rc != 0 and log.exists():
                    print(_tail(log), flush=True)
            for session in sessions.values():
                session.close()
            left = _untracked(clone)
            if left:
                note = "left in the clone, not ignored by git: " + ", ".join(left[:8]) + (" ..." if len(left) > 8 else "")
                print(f"{page}: {note}", flush=True)
                ran = [r for r in results if page in (r.block.page, r.block.prerequisite_of) and not r.block.skip]
                if ran:
                    ran[-1].note = (ran[-1].note + "; " if ran[-1].note else "") + note

    text = table(results)
    failed = [r for r in results if not r.block.skip and r.rc != 0]
    summary = (f"{sum(1 for r in results if not r.block.skip)} blocks run, {len(failed)} failed, "
               f"{sum(1 for r in results if r.block.skip)} skipped, in {(time.monotonic() - started) / 60:.1f} min")
    print("\n" + text + "\n" + summary)
    if args.out is not None:
        given = " ".join(sys.argv[1:] if argv is None else argv)
        header = (f"# Commands of the README and docs, run from a fresh clone\n\n"
                  f"`python scripts/check_doc_commands.py{' ' + given if given else ''}` "
                  f"at commit `{commit[:12]}`, {datetime.date.today().isoformat()}, on {platform.node() or 'this machine'} "
                  f"({os.cpu_count()} CPUs; Python {platform.python_version()}); ../shared/data "
                  f"{'present' if shared else 'absent'}. rc: the block's exit status under `bash -euo pipefail` "
                  f"(Python blocks: the interpreter's); seconds: wall-clock time.\n\n")
        args.out.write_text(header + text + "\n" + summary + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    if args.logs is None:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        print(f"each block's output: {logs}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
