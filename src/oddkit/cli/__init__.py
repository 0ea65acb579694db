"""The command line: parses, calls the library, prints. Run ``oddkit --help``.

One module per group of commands: :mod:`~oddkit.cli.train` (fit), :mod:`~oddkit.cli.scoring` (score,
evaluate, threshold), :mod:`~oddkit.cli.drift` (drift), :mod:`~oddkit.cli.models` (info, explain),
:mod:`~oddkit.cli.codes` (embed, generate, compress, decompress, swap), :mod:`~oddkit.cli.report`,
:mod:`~oddkit.cli.demo` and :mod:`~oddkit.cli.run` (a config file); :mod:`~oddkit.cli._common` holds
what they share. Heavy libraries are imported inside the commands, so ``--help`` starts fast.
"""

from __future__ import annotations

import re
import sys
import warnings

import typer

# Each module registers its commands; this order is the order of 'oddkit --help'.
from oddkit.cli import train  # noqa: F401, I001
from oddkit.cli import scoring  # noqa: F401
from oddkit.cli import drift  # noqa: F401
from oddkit.cli import models  # noqa: F401
from oddkit.cli import codes  # noqa: F401
from oddkit.cli import generate  # noqa: F401
from oddkit.cli import report  # noqa: F401
from oddkit.cli import demo  # noqa: F401
from oddkit.cli import run  # noqa: F401
from oddkit.cli import serve  # noqa: F401
from oddkit.cli import export  # noqa: F401
from oddkit.cli import voice  # noqa: F401
from oddkit.cli import text  # noqa: F401
from oddkit.cli._common import _state, app, errors
from oddkit.exceptions import OddkitError, OddkitWarning

__all__ = ["app", "main"]

CLI_WORDING = [
    (re.compile(r"pass impute='median'"), "pass --impute median to fit"),
    (re.compile(r"[Pp]ass unknown_categories='ignore'"), "pass --unknown-categories ignore to fit"),
    (re.compile(r"[Nn]ame the right one with label_col, or pass label_col=None"),
     "name the right one with --label-col, or pass --label-col none"),
    (re.compile(r"pass label_col=None"), "pass --label-col none"),
    (re.compile(r"pass size=\(height, width\) \(--image-size on the command line\)"), "pass --image-size HEIGHTxWIDTH"),
    (re.compile(r"pass channels=1 or 3 to read_images to convert them all"),
     "pass --image-channels 1 or 3 to fit to convert them all"),
    (re.compile(r"use device='cpu' or 'auto'"), "use --device cpu or --device auto"),
    (re.compile(r"Pass n_neighbors <= (\d+) \(or more rows\)"), r"Pass -p n_neighbors=\1 or less (or more rows)"),
    (re.compile(r"use score='(\w+)' or '(\w+)'"), r"use -p score=\1 or -p score=\2"),
    (re.compile(r"\(classifier='auto', 'mlp' or 'cnn'\)"), "(-p classifier=auto, mlp or cnn)"),
    (re.compile(r"\(images with classifier='auto' or 'cnn'\)"), "(images with -p classifier=auto or cnn)"),
    (re.compile(r"\(classifier='auto' or 'cnn' on images\), not classifier='mlp'"),
     "(-p classifier=auto or cnn on images), not -p classifier=mlp"),
    (re.compile(r"pass a larger ridge= or shrinkage='ledoit_wolf'"),
     "pass a larger -p ridge=VALUE or -p shrinkage=ledoit_wolf"),
    # Only commands with --text-col (fit; summarize and parse given it) keep this advice: those reading a
    # fitted model's texts name the model's column instead (oddkit.cli._common._model_column_advice).
    (re.compile(r"with text_col( \(CLI: --text-col NAME\))?"), "with --text-col"),
    (re.compile(r"fit with AudioFeatures\(bandwidth=0\.9\)"), "fit with --audio-bandwidth 0.9"),
    (re.compile(r"fit with spectrogram=\{'fmax': [\d.]+\}, 0\.9 of the Nyquist frequency,"),
     "fit with --audio-bandwidth 0.9"),
    (re.compile(r"\(e\.g\. pd\.to_datetime\(X\[[^\]]*\]\)\.dt\.hour, or seconds since an origin\)"),
     "(e.g. the hour of day, or seconds since an origin, written into the file)"),
    (re.compile(r"name it with label_col \(1 = anomaly"), "name it with --label-col (1 = anomaly"),
    (re.compile(r"miss_costs prices missed anomalies, so it needs costs too; e\.g\. costs=\(5, 1\)"),
     "--miss-cost-col prices each missed anomaly in units of a cost goal's MISS, so the model's threshold needs a "
     "cost goal; choose it with 'oddkit threshold MODEL DEV --goal cost:FALSE_ALARM,MISS[,ANOMALY_RATE] "
     "--miss-cost-col COLUMN' first"),
    (re.compile(r"miss_costs prices missed anomalies, so it needs a cost goal such as '(cost:[^']*)', not '?([^'\s]*)'?"),
     r"--miss-cost-col prices missed anomalies, so it needs a cost goal such as --goal \1, not --goal \2"),
    (re.compile(r"\bmiss_costs (must|contain)"), r"the --miss-cost-col values \1"),
    (re.compile(r"column_types=\{+.*?\}+ \(CLI: (--column-type [^)]*)\)"), r"\1"),
    (re.compile(r"map your label column to 0/1 first, e\.g\. y = \(df\[.*?\)\.astype\(int\)"),
     "encode anomalies as 1 and normal rows as 0 in the label column"),
    (re.compile(r"X_class has ([\d,]+) rows and X_style ([\d,]+); pass as many of each, or a single row for one"),
     r"CLASS_DATA has \1 rows or images and STYLE_DATA \2; pass as many of each, or a single one for one"),
    (re.compile(r"pick the threshold with an 'fpr:' goal or contamination_threshold"),
     "pick the threshold with 'oddkit threshold MODEL DEV --goal fpr:0.01', or fit with --contamination"),
]
"""The library's advice in Python's words -> the same advice as flags a user of the command line can
type (the library's messages speak to Python users; the command line re-words them). A test
(tests/test_cli_wording.py) finds every suggestion in the library's messages and fails when one has
no rule here, or when a rule no longer matches any message."""


def _cli_wording(message: str) -> str:
    """MESSAGE with every suggestion written as command-line flags (see CLI_WORDING)."""
    for pattern, replacement in CLI_WORDING:
        message = pattern.sub(replacement, message)
    return message


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """oddkit's own warnings as one line on stderr, ``warning: ...``; others as Python shows them."""
    if issubclass(category, OddkitWarning) and not _state["debug"]:
        errors.print(f"warning: {_cli_wording(str(message))}", markup=False, highlight=False, soft_wrap=True)
    else:
        (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))


def main() -> None:
    """Entry point: run the app; turn oddkit's errors into one line on stderr and exit code 2."""
    warnings.showwarning = _show_warning
    try:
        app(standalone_mode=False)
    except MemoryError as exc:
        if _state["debug"]:
            raise
        errors.print(f"error: not enough memory ({exc or 'MemoryError'}); use less data, a smaller --image-size "
                     "or smaller --batch-rows", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except (OddkitError, OSError) as exc:
        # OSError: a file that is missing or unreadable is the user's to fix, not a bug to trace.
        if _state["debug"]:
            raise
        errors.print(f"error: {_cli_wording(str(exc))}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except Exception as exc:  # click's usage errors and aborts
        try:  # typer >= 0.26 bundles its own click (typer._click), without Abort, even when click is installed
            from typer._click.exceptions import ClickException

            Abort = ()
        except ImportError:
            from click import ClickException
            from click.exceptions import Abort
        if isinstance(exc, ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if Abort and isinstance(exc, Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
