"""What every command shares: the typer app, the consoles, option types, and reading, loading, saving
and writing helpers.

Nothing heavy is imported at module level (numpy, pandas, scikit-learn, torch are imported inside
the functions that use them), so ``oddkit --help`` and ``oddkit --version`` start fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from oddkit import __version__
from oddkit.exceptions import OddkitError
from oddkit.model_input import image_shape as _model_image_shape  # noqa: F401 - the commands' name for it
from oddkit.model_input import text_column as _model_text_col  # noqa: F401 - the commands' name for it

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="oddkit: learn what normal looks like, score new data, choose a threshold, evaluate. "
                       "When the environment variable ODDKIT_MODEL_KEY is set, every model saved is signed "
                       "with it (HMAC-SHA256) and every model loaded must carry a valid signature.")
console = Console()
errors = Console(stderr=True)

DETECTOR_NAMES = {
    "autoencoder": "AutoEncoderDetector",
    "vae": "VAEDetector",
    "vqvae": "VQVAEDetector",
    "gaussian": "GaussianDetector",
    "pca": "PCADetector",
    "ocsvm": "OneClassSVMDetector",
    "iforest": "IsolationForestDetector",
    "knn": "KNNDetector",
    "lof": "LOFDetector",
    "default": "EnsembleDetector",
    "classifier": "ClassifierConfidenceDetector",
    "transforms": "TransformationDetector",
    "gradient-knn": "GradientKNNDetector",
    "disentangled": "DisentangledAutoEncoderDetector",
    "voice": "VoiceConversion",
    "text": "TextAutoEncoderDetector",
    "text-summary": "TextSummaryAutoEncoder",
    "text-tree": "TreeAutoEncoder",
}
CLASS_DETECTORS = {"classifier": "open-set recognition", "disentangled": "a class part and a style part"}
"""The detectors that learn from each training row's class (--class-col), and what they do with it."""
_state = {"debug": False}

LabelCol = Annotated[Optional[str], typer.Option(
    "--label-col", help="Anomaly label column (1 = anomaly, 0 = normal); never a feature. "
                        "Default: 'y' when present; 'none' reads no labels.")]
IdCols = Annotated[Optional[list[str]], typer.Option(
    "--id-col", help="Column carried through to the output and never used as a feature (repeatable).")]
ImageSize = Annotated[Optional[str], typer.Option(
    "--image-size", help="Images: resize to SIZE or HEIGHTxWIDTH pixels (default: the model's size).")]
Force = Annotated[bool, typer.Option("--force", "-f", help="Replace an existing output file or model folder.")]
GroupCol = Annotated[Optional[str], typer.Option(
    "--group-col", help="Column whose values break the results down (e.g. attack type); never a feature.")]
Prevalence = Annotated[Optional[float], typer.Option(
    "--prevalence", help="Anomaly rate expected in production, e.g. 0.0017: precision, F1, alerts and cost are "
                         "also given at that rate (default: the rate of a cost:FA,MISS,RATE threshold goal).")]
NThreads = Annotated[Optional[int], typer.Option(
    "--n-threads", help="Most threads for the model's work (torch, BLAS/OpenMP); default: what the libraries choose.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
TextCol = Annotated[Optional[str], typer.Option(
    "--text-col", help="Text detectors: the column holding the messages (CSV, TSV or Parquet with a header; a TSV "
                       "without one is read as 'label<TAB>text', spam = anomaly). Default 'text'; a text model "
                       "remembers it.")]
TEXT_DETECTORS = {"text", "text-summary", "text-tree"}
"""The detectors that learn from a text column (--text-col) instead of a table."""
StrictCategories = Annotated[bool, typer.Option(
    "--strict-categories", help="Stop on a category never seen in training; by default such rows are scored as "
                                "anomalies and counted.")]


def _show_version(value: bool) -> None:
    if value:
        console.print(f"oddkit {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")] = False,
          version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                                help="Print oddkit's version and exit.")] = False):
    _state["debug"] = debug


SEQUENCE_PARAMS = {"hidden_sizes", "conv_channels", "members"}
"""Parameters that take a list: one value on the command line (``--hidden-sizes 64``) is a list of one."""


def _label_col(value: str | None) -> str | None:
    """--label-col as read_table takes it: not given -> "auto" ('y' when present); 'none' -> no labels."""
    if value is None:
        return "auto"
    return None if value.lower() == "none" else value


def _parse_value(text: str):
    """A command-line value: JSON (numbers, null, true, [lists]) or comma lists or a plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if text.lower() == "none":
        return None
    if "," in text:
        return [_parse_value(part) for part in text.split(",")]
    return text


def _param_value(name: str, text: str):
    """A detector parameter from the command line; the detector's own validation judges the value."""
    value = _parse_value(text)
    if name in SEQUENCE_PARAMS and value is not None and not isinstance(value, list):
        value = [value]
    return value


def _detector_class(name: str):
    from oddkit.detectors import DETECTORS

    if name not in DETECTOR_NAMES:
        raise OddkitError(f"unknown detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")
    return DETECTORS[DETECTOR_NAMES[name]]


def _read_model_texts(detector, path: Path, label_col: str | None, id_cols: list[str] | None,
                      require_label: bool = False, text_col_option: bool = False):
    """DATA's messages for a text model: from the model's text column, or, in a TSV file without
    that column, from the headerless 'label<TAB>text' layout (or its 'text' column).

    A file that cannot be read so gets advice naming the column the model expects (see
    :func:`_model_column_advice`); ``text_col_option`` says whether the command also takes
    ``--text-col`` (summarize, parse), which only then is suggested."""
    from oddkit.exceptions import ColumnMismatchError, DataError

    name = _model_text_col(detector)
    try:
        try:
            return _read(path, label_col, id_cols, require_label, text_col=name)
        except ColumnMismatchError as first:
            if not path.name.lower().endswith((".tsv", ".tsv.gz", ".txt")):
                raise
            try:
                table = _read(path, label_col, id_cols, require_label, text_col="text")
            except ColumnMismatchError:
                raise first from None
    except DataError as exc:
        advised = _model_column_advice(str(exc), name, text_col_option)
        if advised == str(exc):
            raise
        raise type(exc)(advised) from None
    table.X.columns = [name]
    return table


def _model_column_advice(message: str, column: str, text_col_option: bool = False) -> str:
    """MESSAGE (the library's, on reading texts) with its advice to name the text column with
    ``text_col`` (which the command line words as ``--text-col``) replaced by the column a fitted
    text model reads, COLUMN: 'score', 'evaluate', 'threshold', 'explain' and 'report' have no
    --text-col, they read the column the model was fitted on. With ``text_col_option`` (a command
    that has --text-col) the flag is offered too. A message without such advice is returned as it is."""
    import re

    flag = ", or pass the texts' column with --text-col" if text_col_option else ""
    model = f"the model reads its texts from the column {column!r}, the one it was fitted on"
    rules = [
        # 'text column 'x' not found in FILE; its columns are ...' (a table; a TSV with a header row)
        (r"Name the right (?:one with text_col|column)\b",
         f"{model[0].upper()}{model[1:]}: name the texts' column {column!r}{flag}"),
        # a TSV with neither the column nor the headerless layout (the model's column is 'text')
        (r" or name it with text_col \(CLI: --text-col NAME\)", f" ({model}){flag}"),
        # a line of the headerless 'label<TAB>text' layout that does not fit it; several columns, none 'text'
        (r"name the text column with text_col(?: \(CLI: --text-col NAME\))?",
         f"call the text column {column!r}, the one the model was fitted on{flag}"),
    ]
    for pattern, replacement in rules:
        message = re.sub(pattern, lambda _, text=replacement: text, message)
    return message


def _read(path: Path, label_col: str | None, id_cols: list[str] | None, require_label: bool = False,
          text_col: str | None = None):
    from oddkit.data import read_table

    if text_col is not None:
        from oddkit.data.text import read_text_table

        table = read_text_table(path, text_col=text_col, label_col=_label_col(label_col), id_cols=tuple(id_cols or ()))
    else:
        table = read_table(path, label_col=_label_col(label_col), id_cols=tuple(id_cols or ()))
    if require_label and table.y is None:
        raise OddkitError(f"{path} has no anomaly label column; name it with --label-col (1 = anomaly, 0 = normal)")
    return table


def _features_for(detector, frame: pd.DataFrame) -> pd.DataFrame:
    """Put a table's columns in the order the model was trained with (files may reorder them)."""
    names = getattr(detector, "feature_names_in_", None)
    if names is None:
        return frame
    missing = [n for n in names if n not in frame.columns]
    extra = [c for c in frame.columns if c not in set(names)]
    if missing or extra:
        from oddkit.exceptions import ColumnMismatchError

        raise ColumnMismatchError(
            f"the data's columns differ from training: missing {missing}, extra {extra}; "
            "pass extra columns as --id-col or --label-col, or remove them")
    return frame[list(names)]


def _carried(detector, id_col, *side: str | None) -> list[str]:
    """The columns to read beside the features: the --id-col columns, then each of ``side``
    (--group-col, --miss-cost-col) that is not one of the model's features. A side column the model
    was trained on stays a feature (it is read again apart when needed: :func:`_column_of`)."""
    names = getattr(detector, "feature_names_in_", None)
    features = set() if names is None else {str(n) for n in names}
    carried = list(id_col or [])
    for column in side:
        if column is not None and column not in carried and column not in features:
            carried.append(column)
    return carried


def _column_of(table, name: str):
    """Column ``name`` of a read table: a carried column, or else a feature."""
    if table.ids is not None and name in table.ids.columns:
        return table.ids[name]
    return table.X[name]


def _escaped(text: str) -> str:
    """``text`` with control characters other than newlines shown escaped (``\\x1b``): names and values come
    from data files and model folders, and a terminal would act on an escape sequence among them."""
    return "\n".join(line if line.isprintable() else line.encode("unicode_escape").decode("ascii")
                     for line in text.split("\n"))


def _print_metrics(title: str, rows: list[tuple[str, object]], header: str = "metric",
                   intervals: dict[str, tuple[float, float] | None] | None = None) -> None:
    """``rows`` as a two-column table under ``title`` (three with ``intervals``: a "95% interval" column for
    the rows it names). Every cell is plain text, never rich markup: names and values come from model folders
    and data files (a column named ``[/bold]`` prints as it is), and control characters in them are shown
    escaped (:func:`_escaped`)."""
    console.print(_escaped(title), markup=False, highlight=False)
    from rich.table import Table as RichTable
    from rich.text import Text

    table = RichTable()
    table.add_column(header)
    table.add_column("value", justify="right")
    if intervals is not None:
        table.add_column("95% interval", justify="right")
    for name, value in rows:
        cells = [Text(_escaped(str(name))), Text(_escaped(f"{value:.4f}" if isinstance(value, float) else str(value)))]
        if intervals is not None:
            interval = intervals.get(str(name))
            cells.append(Text("" if interval is None else f"{interval[0]:.4f} - {interval[1]:.4f}"))
        table.add_row(*cells)
    console.print(table)


def _image_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    height, sep, width = text.lower().partition("x")
    try:
        return (int(height), int(width)) if sep else (int(height), int(height))
    except ValueError:
        raise OddkitError(f"--image-size {text!r}: expected a number of pixels, e.g. 28 or 64x48") from None


def _read_for_model(detector, data: Path, label_col, id_col, image_size: str | None):
    """DATA for a fitted model: ("images", ImageSet), ("table", Table), features ready for it, or, for
    a model fitted on recordings, ("recordings", AudioData) (the model computes its own features)."""
    from oddkit.cli.audio import model_takes_recordings
    from oddkit.data.images import is_image_source, read_images

    shape = _model_image_shape(detector)
    if _model_text_col(detector) is not None:
        return "table", _read_model_texts(detector, data, label_col, id_col)
    if model_takes_recordings(detector):
        from oddkit.cli.audio import _read_for

        return "recordings", _read_for(detector, data)
    if is_image_source(data):
        if shape is None and hasattr(detector, "feature_names_in_"):
            raise OddkitError(f"{data} holds images but the model was trained on a table; pass a table file")
        size = _image_size(image_size) or (shape[1:] if shape is not None else None)
        images = read_images(data, size=size, channels=shape[0] if shape is not None else None)
        return "images", images
    if shape is not None:
        raise OddkitError(f"the model was trained on images of shape {shape}; pass an image folder or an .npz of images")
    table = _read(data, label_col, id_col)
    table.X = _features_for(detector, table.X)
    return "table", table


def _labelled_scores(detector, data: Path, label_col: str | None, id_col: list[str] | None,
                     strict_categories: bool = False, with_table: bool = False):
    """Anomaly labels (1 = anomaly) and the model's scores of labelled DATA: a table with a label
    column; for a model trained on images, an .npz with the labels in ``y`` (or the array named by
    --label-col), or a folder with the sub-folders ``normal`` and ``anomaly``. ``with_table`` adds a
    third item: the table's features for a model fitted on a table, else None."""
    import numpy as np

    from oddkit.cli.audio import labelled_recordings, model_takes_recordings

    if model_takes_recordings(detector):
        return labelled_recordings(detector, data, label_col)[:2] + ((None,) if with_table else ())
    shape = _model_image_shape(detector)
    if shape is None:
        texts = _model_text_col(detector) is not None
        table = (_read_model_texts(detector, data, label_col, id_col, require_label=True) if texts
                 else _read(data, label_col, id_col, require_label=True))
        X = _features_for(detector, table.X)
        scores = _score_rows(detector, X, strict_categories)[0]
        return (table.y, scores) + ((None if texts else X,) if with_table else ())
    from oddkit.data.images import is_image_source, read_images

    if not is_image_source(data):
        raise OddkitError(f"the model was trained on images of shape {shape}; pass an image folder or an .npz of images")
    key = label_col or "y"
    images = read_images(data, size=shape[1:], channels=shape[0], labels_key=key)
    if images.class_names:  # a folder: its sub-folders say which images are anomalies
        if sorted(images.class_names) != ["anomaly", "normal"]:
            raise OddkitError(f"{data} must have exactly the sub-folders 'normal' and 'anomaly' to be evaluated; "
                              f"it has {images.class_names}")
        y = (np.asarray(images.class_names)[images.labels] == "anomaly").astype(np.int64)
    elif images.labels is None:
        raise OddkitError(f"{data} holds no anomaly labels: save them in the .npz as {key!r} (1 = anomaly), "
                          "or name the array with --label-col")
    else:
        y = np.asarray(images.labels)
        if not np.isin(y, (0, 1)).all():
            raise OddkitError(f"the labels {key!r} in {data} must be 0 (normal) or 1 (anomaly)")
    return (y.astype(np.int64), detector.decision_function(images.X)) + ((None,) if with_table else ())


TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npy": "npy"}
"""Output formats of the tables commands write, by file name ending; '-' is CSV on standard output."""


def _table_format(out: Path) -> str:
    if str(out) == "-":
        return "stdout"
    fmt = TABLE_SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        raise OddkitError(f"cannot write a table to {out}: use a file name ending in .csv, .parquet or .npy, "
                          "or '-' for standard output")
    return fmt


def _check_output(out: Path, force: bool, table: bool = True) -> None:
    """Refuse, before any work, an output path that exists (without --force) or has no known format."""
    if table:
        _table_format(out)
    if str(out) != "-" and out.exists() and not force:
        raise OddkitError(f"{out} already exists; pass --force to replace it, or choose another --out")


def _check_model_folder(out: Path, force: bool) -> None:
    """Refuse, before any work, to write a model where something exists: a model folder only with
    --force; a file, or a folder holding anything but a model, never (--force would delete it)."""
    if not out.exists():
        return
    is_model = (out / "config.json").is_file()
    if not out.is_dir() or not (is_model or not any(out.iterdir())):
        what = "a file" if not out.is_dir() else "a folder that holds no oddkit model"
        raise OddkitError(f"{out} is {what}; choose another --out")
    if is_model and not force:
        raise OddkitError(f"{out} already holds a model; pass --force to replace it, or choose another --out")


class TableWriter:
    """Writes a table batch by batch in the format its name says: CSV (appended), Parquet (one row
    group per batch, through pyarrow), .npy (numbers, written at the end), or CSV on standard output
    for '-'. A file is written under a temporary name beside OUT and renamed to OUT by :meth:`close`,
    so a run that fails part-way leaves no partial table and no earlier OUT overwritten (use it as a
    context manager, or call :meth:`abort` on failure)."""

    def __init__(self, out: Path):
        import os

        self.target, self.format = out, _table_format(out)
        self.out = out if self.format == "stdout" else out.with_name(f".{out.name}.{os.getpid()}.partial")
        self._parquet = None
        self._blocks: list = []
        self._started = False

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def abort(self) -> None:
        """Drop what was written: the temporary file goes, OUT stays as it was."""
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self.format != "stdout":
            self.out.unlink(missing_ok=True)

    def write(self, frame) -> None:
        import sys

        if self.format == "stdout":
            frame.to_csv(sys.stdout, header=not self._started, index=False)
        elif self.format == "csv":
            if not self._started:
                self.out.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(self.out, mode="a" if self._started else "w", header=not self._started, index=False)
        elif self.format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            batch = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self.out.parent.mkdir(parents=True, exist_ok=True)
                self._parquet = pq.ParquetWriter(self.out, batch.schema)
            self._parquet.write_table(batch)
        else:
            import numpy as np

            try:
                self._blocks.append(frame.to_numpy(dtype=np.float64))
            except (TypeError, ValueError):
                raise OddkitError(f"{self.out}: .npy holds numbers only and this table has text columns "
                                  f"({', '.join(map(str, frame.select_dtypes(exclude='number').columns))}); "
                                  "write a .csv or .parquet file instead") from None
        self._started = True

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self.format == "npy" and self._blocks:
            import numpy as np

            self.out.parent.mkdir(parents=True, exist_ok=True)
            with open(self.out, "wb") as handle:  # np.save would add .npy to the temporary name
                np.save(handle, np.concatenate(self._blocks))
        if self.format != "stdout" and self.out.exists():
            self.out.replace(self.target)


def _write_table(frame, out: Path) -> None:
    """Write a whole table in the format of OUT's name ('-': CSV on standard output)."""
    with TableWriter(out) as writer:
        writer.write(frame)


UNSEEN_HINT = ("drop --strict-categories to score such rows as anomalies, or retrain with data that has them "
               "(fit --unknown-categories ignore)")


_LISTED_UNSEEN_VALUES = 100_000
"""Distinct unseen values kept per column while a file is scored in batches (to count them once
however many batches hold them); beyond that the count is a lower bound."""


def _score_rows(detector, X, strict_categories: bool, report: dict | None = None):
    """The model's scores of table X, and which rows hold a category never seen in training.

    Such rows are scored as anomalies (at least the model's out-of-range score, above every training
    score and the threshold) and counted in ``report`` (``{"rows": n, "columns": {column: distinct
    values}}``, the values kept under ``"values"`` so that a value in several batches counts once) or,
    without ``report``, warned about at once; with ``strict_categories`` such a category stops the
    command with an error naming it."""
    from oddkit.scoring import score_rows, unseen_values

    scores, unseen, counts = score_rows(detector, X, strict_categories=strict_categories, hint=UNSEEN_HINT)
    if report is None:
        if unseen.any():
            _warn_unseen({"rows": int(unseen.sum()), "columns": counts})
    elif unseen.any():
        report["rows"] = report.get("rows", 0) + int(unseen.sum())
        for name, values in unseen_values(detector, X).items():
            kept = report.setdefault("values", {}).setdefault(name, set())
            kept.update(values[:max(0, _LISTED_UNSEEN_VALUES - len(kept))])
            report.setdefault("columns", {})[name] = len(kept)
    return scores, unseen


def _score_summary(detector, n: int, n_flagged: int, what: str, out, where: str = "") -> str:
    """The line 'oddkit score' ends with: how many of the ``what`` (rows, texts, images, recordings) were
    scored and flagged, the threshold and its goal, and, for a threshold chosen on dev data, what it
    flagged there, so that a share far from it stands out (more anomalies than on dev, or other data)."""
    share = f"{n_flagged / n:.1%}; " if n else ""
    line = (f"scored {n:,} {what}{where}: {n_flagged:,} flagged as anomalies ({share}threshold "
            f"{detector.threshold_:.6g}, {detector.threshold_goal_})")
    provenance = getattr(detector, "threshold_provenance_", None)
    if provenance is not None and provenance.fpr is not None:
        line += (f"; on {provenance.data_name or 'its dev data'} it flagged {provenance.fpr:.1%} of the normal "
                 f"{what}" + ("" if provenance.recall is None else f" and {provenance.recall:.1%} of the anomalies"))
    return f"{line}; wrote {out}"


def _warn_unseen(report: dict) -> None:
    """One warning line on stderr: how many rows held categories never seen in training."""
    if report.get("rows"):
        columns = ", ".join(f"{name!r} ({n} value{'s' if n != 1 else ''})" for name, n in report["columns"].items())
        errors.print(f"warning: {report['rows']:,} row(s) hold categories never seen in training, in {columns}; "
                     "they are scored as anomalies (pass --strict-categories to stop instead)",
                     markup=False, highlight=False, soft_wrap=True)


def _is_image_stack(data) -> bool:
    import numpy as np

    return isinstance(data, np.ndarray) and data.ndim in (3, 4)


def _write_decoded(detector, data, out: Path) -> Path:
    """Write what a model decoded: images as a grid/npz/folder, rows as a table. Returns the path written."""
    import pandas as pd

    from oddkit.data.images import write_images

    if _is_image_stack(data):
        return write_images(data, out)
    _write_table(data if isinstance(data, pd.DataFrame) else _named_frame(detector, data), out)
    return out


def _named_frame(detector, rows) -> pd.DataFrame:
    """Rows as a table with the model's column names (x0, x1, ... when it was trained on an array)."""
    import numpy as np
    import pandas as pd

    rows = np.asarray(rows)
    names = getattr(detector, "feature_names_in_", None)
    columns = [str(c) for c in names] if names is not None and len(names) == rows.shape[1] else \
        [f"x{i}" for i in range(rows.shape[1])]
    return pd.DataFrame(rows, columns=columns)


def _require_codes(detector, model: Path, verb: str) -> None:
    """Refuse a model without a code to compress to (a Gaussian, a forest, ...) with a one-line error."""
    if not (hasattr(detector, "transform") and hasattr(detector, "inverse_transform")):
        raise OddkitError(f"{model} holds a {type(detector).__name__}, which has no code to {verb} with; fit an "
                          "auto-encoder (--detector autoencoder, vae or vqvae)")


def _load_model(model: Path):
    """Load MODEL, verifying its signature with the key in ODDKIT_MODEL_KEY when that is set."""
    from oddkit.persist import key_from_environment, load

    return load(model, key=key_from_environment())


def _save_model(detector, folder: Path, replace: bool = False) -> None:
    """Save, signed with the key in ODDKIT_MODEL_KEY when that is set.

    The model is written to a new sibling folder first and moved into place, so a replaced model
    (``replace``, from --force) holds no file of the old one and a failed save leaves the old one whole.
    """
    import shutil
    import tempfile

    from oddkit.persist import key_from_environment

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        detector.save(staging, key=key_from_environment())
        if folder.exists():
            if not replace:
                raise OddkitError(f"{folder} already exists; pass --force to replace it, or choose another --out")
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def threads_limited(command):
    """Run a command within ``_thread_limit(n_threads)``, its --n-threads option (see :data:`NThreads`)."""
    import functools

    @functools.wraps(command)
    def limited(*args, **kwargs):
        with _thread_limit(kwargs.get("n_threads")):
            return command(*args, **kwargs)

    return limited


def _check_plots(folder: Path, force: bool, prefix: str = "") -> None:
    """Refuse, before any work, to overwrite the curves (roc.png, pr.png) in FOLDER without --force."""
    existing = [folder / f"{prefix}{name}.png" for name in ("roc", "pr") if (folder / f"{prefix}{name}.png").exists()]
    if existing and not force:
        raise OddkitError(f"{existing[0]} already exists; pass --force to replace it, or choose another --plots folder")


class _thread_limit:
    """Within this block numpy's BLAS, OpenMP (scikit-learn) and torch use at most N threads (no limit
    when N is None): what --n-threads means for every detector.

    torch is capped only when it is loaded: a model without a network (a Gaussian, PCA, the table
    default) never loads it, and importing it would add a second or more to the command. torch loaded
    within the block reads ``OMP_NUM_THREADS``, set here for the block."""

    _VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

    def __init__(self, n_threads: int | None):
        self.n_threads, self.limits, self.torch_threads, self.environment = n_threads, None, None, None

    def __enter__(self):
        if self.n_threads is None:
            return self
        if isinstance(self.n_threads, bool) or self.n_threads < 1:
            raise OddkitError(f"--n-threads must be at least 1, got {self.n_threads}")
        import os
        import sys

        from threadpoolctl import threadpool_limits

        self.limits = threadpool_limits(limits=self.n_threads)
        torch = sys.modules.get("torch")
        if torch is not None:
            self.torch_threads = torch.get_num_threads()
            torch.set_num_threads(self.n_threads)
        else:
            self.environment = {name: os.environ.get(name) for name in self._VARIABLES}
            os.environ.update({name: str(self.n_threads) for name in self._VARIABLES})
        return self

    def __exit__(self, *exc_info):
        if self.limits is None:
            return False
        import os
        import sys

        if self.torch_threads is not None:
            sys.modules["torch"].set_num_threads(self.torch_threads)
        for name, value in (self.environment or {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.limits.restore_original_limits()
        return False


