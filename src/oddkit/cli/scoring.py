"""Scoring and choosing: 'oddkit score', 'evaluate' and 'threshold'."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from oddkit.cli._common import (Force, GroupCol, IdCols, LabelCol, NThreads, Prevalence, Quiet, StrictCategories,
                                TableWriter, _carried, _check_model_folder, _check_plots, _column_of,
                                _check_output, _features_for, _label_col, _labelled_scores, _load_model,
                                _model_image_shape, _model_text_col, _print_metrics, _read_for_model, _save_model,
                                _score_rows, _score_summary, UNSEEN_HINT, _warn_unseen, _write_table, app, console,
                                errors, threads_limited)
from oddkit.exceptions import DataError, OddkitError


@app.command()
@threads_limited
def score(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit'.")],
    data: Annotated[Path, typer.Argument(help="Rows to score: CSV, Parquet, .npy or .npz, or a folder of Parquet "
                                              "(or CSV) files; images (folder, .npz) for a model trained on images; "
                                              "recordings (.wav/.flac, folder, .npz) for a model trained on "
                                              "recordings.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Table to write (id columns, score, label; and "
                                                          "unseen_category for a model with categorical columns), "
                                                          "in the format of its name: .csv, .parquet or .npy; '-' "
                                                          "for CSV on standard output.")] = Path("scores.csv"),
    label_col: LabelCol = None,
    id_col: IdCols = None,
    batch_rows: Annotated[int, typer.Option(help="Rows read and scored at a time.")] = 100_000,
    strict_categories: StrictCategories = False,
    quiet: Quiet = False,
    force: Force = False,
    n_threads: NThreads = None,
    engine: Annotated[str, typer.Option(help="local: stream DATA through this process; spark: a Spark job "
                                             "(DATA a Parquet file or folder, --out a Parquet folder; needs "
                                             "'pip install oddkit\\[spark]' and Java 17).")] = "local",
    spark_master: Annotated[str, typer.Option(help="Spark master URL for --engine spark.")] = "local[*]",
):
    """Score DATA with MODEL: one row per input row with its score and label (1 = anomaly).

    Large files, and folders of Parquet files (one after the other), are read and scored --batch-rows at a time,
    with a progress bar on stderr (off with --quiet).
    """
    if engine != "local":
        return _score_on_spark(model, data, out, engine, spark_master, id_col, label_col, force, strict_categories)
    import numpy as np
    import pandas as pd
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from oddkit.data import iter_table_batches

    _check_output(out, force)
    detector = _load_model(model)
    from oddkit.cli.audio import model_takes_recordings, score_recordings

    if model_takes_recordings(detector):
        return score_recordings(detector, data, out)
    if _model_image_shape(detector) is not None:
        return _score_images(detector, data, out)
    if _model_text_col(detector) is not None:
        return _score_texts(detector, data, out, label_col, id_col)
    n_rows = n_flagged = 0
    unseen: dict = {}
    writer = TableWriter(out)
    progress = Progress(SpinnerColumn(), TextColumn("scoring {task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("rows"), TimeElapsedColumn(), console=errors, disable=quiet or not errors.is_terminal,
                        transient=True)
    if data.is_dir():  # a folder of Parquet (or CSV) files, streamed file after file
        from oddkit.data.stream import TableSource

        source = TableSource(data, batch_rows=batch_rows, label_col=_label_col(label_col), id_cols=tuple(id_col or ()))
        batches, total = source.tables(), source.n_rows
    else:
        batches = iter_table_batches(data, batch_rows=batch_rows, label_col=_label_col(label_col),
                                     id_cols=tuple(id_col or ()))
        total = _row_count(data)
    # A model with categorical columns writes which rows held a category never seen in training (their
    # scores were raised to the out-of-range score), so that such alerts can be told apart.
    flags_unseen = bool(getattr(getattr(detector, "preprocessor_", None), "categorical_columns_", None))
    with writer, progress:
        task = progress.add_task(data.name, total=total)
        for batch in batches:
            X = _features_for(detector, batch.X)
            scores, unseen_rows = _score_rows(detector, X, strict_categories, report=unseen)
            labels = (scores >= detector.threshold_).astype(np.int64)
            frame = batch.ids.reset_index(drop=True) if batch.ids is not None else pd.DataFrame(index=range(len(scores)))
            frame = frame.assign(score=scores, label=labels)
            if flags_unseen:
                frame = frame.assign(unseen_category=unseen_rows)
            if hasattr(detector, "predict_class"):  # a classifier detector gives the known class too
                frame = frame.assign(**{"class": detector.predict_class(X)})
            writer.write(frame)
            n_rows, n_flagged = n_rows + len(scores), n_flagged + int(labels.sum())
            progress.update(task, advance=len(scores))
    _warn_unseen(unseen)
    (errors if str(out) == "-" else console).print(
        _score_summary(detector, n_rows, n_flagged, "rows", out), markup=False, highlight=False)


def _score_on_spark(model: Path, data: Path, out: Path, engine: str, master: str, id_col, label_col, force: bool,
                    strict_categories: bool) -> None:
    """'oddkit score --engine spark': the library's oddkit.spark.score_files, and its summary line."""
    if engine != "spark":
        raise OddkitError(f"unknown --engine {engine!r}; choose local or spark")
    from oddkit.cli._common import _state
    from oddkit.exceptions import UnseenCategoryError
    from oddkit.scoring import with_hint
    from oddkit.spark import score_files

    try:  # quiet: Spark's start-up log and notices and pyspark's pandas warning kept off stderr, unless --debug
        n_rows, n_flagged, detector, unseen = score_files(
            model, data, out, master=master, id_cols=tuple(id_col or ()), label_col=_label_col(label_col),
            force=force, strict_categories=strict_categories, quiet=not _state["debug"])
    except UnseenCategoryError as error:
        raise with_hint(error, UNSEEN_HINT) from None
    _warn_unseen(unseen)
    console.print(_score_summary(detector, n_rows, n_flagged, "rows", out, f" on Spark ({master})"), markup=False,
                  highlight=False)


def _row_count(path: Path) -> int | None:
    """Rows in a Parquet or .npy file, read from its metadata (None for CSV: unknown until read)."""
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if name.endswith(".npy"):
            import numpy as np

            return int(np.load(path, mmap_mode="r").shape[0])
    except Exception:  # noqa: BLE001 - a damaged file: reading it will say what is wrong
        return None
    return None


def _score_texts(detector, data: Path, out: Path, label_col, id_col) -> None:
    """Score the messages of DATA with a text model (read whole: texts are small beside tables)."""
    import numpy as np
    import pandas as pd

    _, table = _read_for_model(detector, data, label_col, id_col, None)
    scores = detector.decision_function(table.X)
    labels = (scores >= detector.threshold_).astype(np.int64)
    frame = table.ids if table.ids is not None else pd.DataFrame(index=range(len(scores)))
    _write_table(frame.assign(score=scores, label=labels), out)
    (errors if str(out) == "-" else console).print(
        _score_summary(detector, len(scores), int(labels.sum()), "texts", out), markup=False, highlight=False)


def _score_images(detector, data: Path, out: Path) -> None:
    """The image branch of 'oddkit score': one row per image (its name), score and label."""
    import numpy as np
    import pandas as pd

    _, images = _read_for_model(detector, data, None, None, None)
    scores = detector.decision_function(images.X)
    labels = (scores >= detector.threshold_).astype(np.int64)
    frame = pd.DataFrame({"image": images.names, "score": scores, "label": labels})
    if hasattr(detector, "predict_class"):
        frame["class"] = detector.predict_class(images.X)
    _write_table(frame, out)
    (errors if str(out) == "-" else console).print(
        _score_summary(detector, len(frame), int(labels.sum()), "images", out), markup=False, highlight=False)


MissCostCol = Annotated[Optional[str], typer.Option(
    "--miss-cost-col", help="Column whose value is what missing that row's anomaly costs (e.g. Amount), in units of "
                            "the cost goal's MISS: a missed anomaly costs MISS x its value.")]


@app.command()
@threads_limited
def evaluate(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit'.")],
    data: Annotated[Path, typer.Argument(help="Labelled test data (label column: 1 = anomaly).")],
    label_col: LabelCol = None,
    id_col: IdCols = None,
    plots: Annotated[Optional[Path], typer.Option(help="Folder for roc.png and pr.png (default: beside the model).")] = None,
    strict_categories: StrictCategories = False,
    prevalence: Prevalence = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Write every number to a .json or .csv metrics file.")] = None,
    report: Annotated[Optional[Path], typer.Option(
        "--report", help="Also write the HTML report (as 'oddkit report') to this file.")] = None,
    group_col: GroupCol = None,
    miss_cost_col: MissCostCol = None,
    force: Force = False,
    n_threads: NThreads = None,
):
    """Evaluate MODEL on labelled DATA at its stored threshold: AUCs, precision, recall, F1, FPR, and, at a
    stated production anomaly rate (--prevalence, or the goal's), precision, F1, alerts and cost.

    A threshold chosen with --miss-cost-col COLUMN prices each missed anomaly by DATA's COLUMN here too
    (DATA must hold it; --miss-cost-col names another).
    """
    from oddkit.metrics import metric_intervals, operating_report, write_metrics
    from oddkit.report.plots import plot_curves
    from oddkit.threshold import prevalence_and_costs_from_goal

    for path in (out, report):
        if path is not None:
            _check_output(path, force, table=False)
    folder = plots if plots is not None else model.parent / f"{model.name}-evaluation"
    _check_plots(folder, force)
    detector = _load_model(model)
    if miss_cost_col is None and getattr(detector, "threshold_miss_cost_col_", None) is not None:
        # the column the model's threshold was chosen with (threshold --miss-cost-col)
        from oddkit.threshold import miss_cost_column

        miss_cost_col = miss_cost_column(detector, columns=_data_columns(data), data_name=data.name)
    carried = _carried(detector, id_col, group_col, miss_cost_col)
    y, scores = _labelled_scores(detector, data, label_col, carried, strict_categories)
    prevalence, costs = prevalence_and_costs_from_goal(detector.threshold_goal_, prevalence)
    miss_costs = _miss_costs(data, label_col, miss_cost_col, detector)
    numbers = operating_report(y, scores, detector.threshold_, prevalence=prevalence, costs=costs,
                               miss_costs=miss_costs)
    priced = "" if miss_costs is None else f", each miss priced by {miss_cost_col}"
    intervals = metric_intervals(y, scores, detector.threshold_)  # how far more data like DATA could move them
    _print_metrics(f"{type(detector).__name__} on {data.name} (threshold {detector.threshold_:.6g}, "
                   f"{detector.threshold_goal_}{priced})", _operating_rows(numbers),
                   header="at the data's anomaly rate",
                   intervals={"ROC AUC": intervals["roc_auc"], "PR AUC (average precision)": intervals["pr_auc"],
                              "recall": intervals["recall"],
                              "false-positive rate": intervals["fpr"], "precision": intervals["precision"]})
    if numbers["production"] is not None:
        _print_metrics(f"at the production anomaly rate {prevalence:g}", _rate_rows(numbers["production"]),
                       header="in production")
    if group_col is not None:
        _print_groups(detector, data, label_col, carried, group_col, y, scores)
    if out is not None:  # with the intervals printed above, as low and high (None: nothing flagged)
        numbers["intervals_95"] = {name: {"low": None if bounds is None else bounds[0],
                                          "high": None if bounds is None else bounds[1]}
                                   for name, bounds in intervals.items()}
        console.print(f"metrics: {write_metrics(numbers, out)}")
    if report is not None:
        from oddkit.cli.report import read_report_table, write_html_report

        detector, X, y_report, groups, ids = read_report_table(model, data, label_col, id_col, group_col,
                                                               miss_cost_col)
        written = write_html_report(detector, X, y_report, groups, report, model, data, prevalence, 20, miss_costs,
                                    ids, strict_categories)
        console.print(f"report: {written}")
    written = plot_curves({model.name: (y, scores)}, folder, thresholds={model.name: detector.threshold_})
    console.print("curves: " + ", ".join(str(p) for p in written.values()))


def _data_columns(data: Path) -> list[str] | None:
    """The column names of a CSV or Parquet file, read from its header; None where they cannot be read
    that cheaply (other formats, folders, damaged files: reading DATA says what is wrong)."""
    name = data.name.lower()
    try:
        if name.endswith((".csv", ".csv.gz")):
            import pandas as pd

            return [str(c) for c in pd.read_csv(data, nrows=0).columns]
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            from oddkit.data.io import parquet_columns

            return [str(c) for c in parquet_columns(pq.read_schema(data))]
    except Exception:  # noqa: BLE001
        return None
    return None


def _side_columns(detector, data: Path, label_col, carried: list[str]):
    """DATA read as DETECTOR reads it (a text model's TSV layouts included), with the CARRIED columns
    (--group-col, --miss-cost-col) in ``.ids``."""
    from oddkit.cli._common import _model_text_col, _read, _read_model_texts

    if detector is not None and _model_text_col(detector) is not None:
        return _read_model_texts(detector, data, label_col, carried)
    return _read(data, label_col, carried)


def _miss_costs(data: Path, label_col, column: str | None, detector=None):
    """The --miss-cost-col column of DATA as floats (DATA read as DETECTOR reads it, when given).
    Without the option, the column DETECTOR's threshold was chosen with (``threshold_miss_cost_col_``),
    which DATA must then hold; None when there is neither."""
    if column is None and getattr(detector, "threshold_miss_cost_col_", None) is not None:
        from oddkit.threshold import miss_cost_column

        column = miss_cost_column(detector, columns=_data_columns(data), data_name=data.name)
    if column is None:
        return None
    import pandas as pd

    from oddkit.exceptions import DataError

    values = _side_columns(detector, data, label_col, [column]).ids[column]  # read apart, even when a feature
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna()
    if bad.any():
        raise DataError(f"--miss-cost-col {column!r} must hold numbers (the cost of missing each row); "
                        f"{int(bad.sum()):,} of {data.name}'s rows do not, e.g. {values[bad].iloc[0]!r}")
    return numbers.to_numpy(dtype=float)


RATE_NAMES = {"prevalence": "anomaly rate", "fpr": "false-positive rate", "f1": "F1",
              "flag_rate": "share flagged", "alerts_per_10000": "alerts per 10,000 rows",
              "expected_cost": "expected cost per row"}
"""How 'evaluate' names the numbers of :func:`oddkit.metrics.at_prevalence` (others keep their names)."""


def _rate_rows(section: dict) -> list[tuple[str, object]]:
    return [(RATE_NAMES.get(k, k), v) for k, v in section.items() if v is not None]


def _operating_rows(numbers: dict) -> list[tuple[str, object]]:
    confusion = numbers["confusion"]
    rows = [("rows", numbers["n"]), ("anomalies", numbers["n_anomalies"]), ("ROC AUC", numbers["roc_auc"]),
            ("PR AUC (average precision)", numbers["pr_auc"]), ("true positives", confusion["tp"]),
            ("false positives", confusion["fp"]), ("true negatives", confusion["tn"]),
            ("false negatives", confusion["fn"])]
    return rows + _rate_rows(numbers["data"])


def _print_groups(detector, data: Path, label_col, carried, group_col: str, y, scores) -> None:
    """Per group (e.g. attack type): rows, anomalies, the share flagged and the mean score."""
    import pandas as pd

    groups = _column_of(_side_columns(detector, data, label_col, carried), group_col).to_numpy()
    frame = pd.DataFrame({"group": groups, "anomaly": y, "flagged": scores >= detector.threshold_})
    table = frame.groupby("group", sort=True).agg(rows=("anomaly", "size"), anomalies=("anomaly", "sum"),
                                                  flagged=("flagged", "mean"))
    _print_metrics(f"by {group_col}", [(str(g), f"{int(r.rows):,} rows, {int(r.anomalies):,} anomalies, "
                                                f"{r.flagged:.1%} flagged") for g, r in table.iterrows()],
                   header=group_col)


@app.command()
@threads_limited
def threshold(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit'.")],
    dev: Annotated[Path, typer.Argument(help="Labelled dev data (label column: 1 = anomaly).")],
    goal: Annotated[str, typer.Option(help="f1 | fpr:0.01[,CONFIDENCE] | recall:0.95 | "
                                           "precision:0.9[,ANOMALY_RATE] | cost:FALSE_ALARM,MISS[,ANOMALY_RATE]")
                    ] = "f1",
    label_col: LabelCol = None,
    id_col: IdCols = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="New model folder for the model with its new threshold (MODEL is left as it is).")] = None,
    strict_categories: StrictCategories = False,
    prevalence: Prevalence = None,
    miss_cost_col: MissCostCol = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Store the threshold in MODEL itself (or replace "
                                                                "the model folder --out names).")] = False,
    n_threads: NThreads = None,
):
    """Choose MODEL's threshold on labelled DEV data for a goal; save the model with it to --out.

    fpr:R,C holds the false-positive rate at most R on new normal rows with confidence C (e.g. fpr:0.05,0.95),
    where fpr:R holds it on DEV's normals only, which new normals exceed about half the time.
    precision:P takes the most recall with at least P of the flagged rows anomalies, at the production anomaly
    rate when one is stated (precision:P,RATE or --prevalence RATE), else at DEV's own anomaly share. The model
    records the goal, --miss-cost-col and where the threshold came from (DEV's name, size and rates: 'oddkit
    info'). Without --out the model is updated in place, which needs --force: a model folder is never replaced
    silently.
    """
    from oddkit.threshold import choose_threshold

    target = model if out is None else out
    if out is None and not force:
        raise OddkitError(f"threshold would replace {model} in place; pass --out NEW_FOLDER to save the model "
                          "with its new threshold apart, or --force to update it in place")
    if out is not None:
        _check_model_folder(out, force)
    detector = _load_model(model)
    y, scores, X = _labelled_scores(detector, dev, label_col, _carried(detector, id_col, miss_cost_col),
                                    strict_categories, with_table=True)
    miss_costs = None if miss_cost_col is None else _miss_costs(dev, label_col, miss_cost_col, detector)
    choice = choose_threshold(scores, y, goal, prevalence=prevalence, miss_costs=miss_costs,
                              miss_cost_col=miss_cost_col, data_name=dev.name)
    detector.set_threshold(choice)
    reference_note = _record_dev_reference(detector, dev, X, y, scores)
    _save_model(detector, target, replace=True if out is None else force)
    # expected_cost is the goal's objective, a copy of dev_ or production_expected_cost: shown under those names.
    hidden = ("goal", "note", "feasible", "expected_cost", "data_name")
    undefined = ("precision", "recall", "f1")  # None without dev anomalies: undefined, not 0
    rows = [(k, "n/a" if v is None else v) for k, v in choice.to_dict().items()
            if k not in hidden and (v not in (None, "") or k in undefined)]
    _print_metrics(f"threshold for {choice.goal} on {dev.name}, stored in {target}", rows)
    if not choice.feasible:
        errors.print(f"warning: {choice.note or f'no threshold meets {choice.goal} on the dev data'}")
    elif choice.note:  # met, with a remark on what it means (a coarse rate, a confidence bound)
        errors.print(f"note: {choice.note}")
    errors.print(f"note: {reference_note}", markup=False, highlight=False)


def _record_dev_reference(detector, dev: Path, X, y, scores) -> str:
    """Record DEV's normal rows as the model's drift reference ('oddkit drift' compares new rows with
    them); with too few normal rows, keep none. Says which, for the command to print."""
    import numpy as np

    from oddkit.drift import MIN_ROWS, record_reference

    normal = np.asarray(y) == 0
    if normal.sum() < MIN_ROWS:
        detector.drift_reference_ = None
        return (f"no drift reference recorded: {dev.name} has {int(normal.sum())} normal rows, fewer than {MIN_ROWS}; "
                "'oddkit drift' will need --reference")
    rows = None if X is None else X[normal]
    try:
        record_reference(detector, rows, data_name=f"{dev.name} (normal rows)", scores=np.asarray(scores)[normal])
    except DataError as exc:  # DEV's normal rows are the training rows: their scores are in-sample
        detector.drift_reference_ = None
        return f"no drift reference recorded: {exc}"
    return (f"{int(normal.sum()):,} normal rows of {dev.name} recorded as the drift reference: 'oddkit drift MODEL "
            "DATA' compares new rows with them")
