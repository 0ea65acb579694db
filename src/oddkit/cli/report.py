"""``oddkit report``: one self-contained HTML report on a model's scores of a data file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oddkit.cli._common import (
    Force,
    NThreads,
    GroupCol,
    IdCols,
    LabelCol,
    Prevalence,
    StrictCategories,
    _carried,
    _check_output,
    _column_of,
    _features_for,
    _load_model,
    _model_image_shape,
    _model_text_col,
    _read,
    _read_model_texts,
    app,
    console,
    threads_limited,
)
from oddkit.cli.scoring import MissCostCol
from oddkit.exceptions import OddkitError

def read_report_table(model: Path, data: Path, label_col, id_col, group_col, miss_cost_col=None):
    """The model and DATA's features, labels (None when the file has none), groups and ids (the
    --id-col columns, None without), for a report (the --group-col and --miss-cost-col columns set
    aside unless the model was trained on them)."""
    detector = _load_model(model)
    from oddkit.cli.audio import model_takes_recordings, report_table

    if model_takes_recordings(detector):
        if group_col is not None or id_col:
            raise OddkitError("--group-col and --id-col name table columns; recordings have none, leave them out")
        return (*report_table(detector, data, label_col), None, None)
    if _model_image_shape(detector) is not None:
        raise OddkitError(f"{model} was trained on images; the HTML report covers tables")
    from oddkit.threshold import miss_cost_column

    # The column the threshold was chosen with (threshold --miss-cost-col) is set aside as --miss-cost-col is.
    carried = _carried(detector, id_col, group_col, miss_cost_column(detector, miss_cost_col))
    table = (_read(data, label_col, carried) if _model_text_col(detector) is None
             else _read_model_texts(detector, data, label_col, carried))
    groups = None if group_col is None else _column_of(table, group_col).to_numpy()
    ids = table.ids[list(id_col)] if id_col else None
    return detector, _features_for(detector, table.X), table.y, groups, ids


def write_html_report(detector, X, y, groups, out: Path, model: Path, data: Path,
                      prevalence: float | None, top: int, miss_costs=None, ids=None,
                      strict_categories: bool = False) -> Path:
    """The library's report, titled after the detector and DATA; the model card fingerprints MODEL.

    ``miss_costs`` (the --miss-cost-col values) price each missed anomaly, in units of the MISS of
    the model's cost goal, which they need; ``ids`` (the --id-col columns) are shown beside each top
    anomaly; rows with categories never seen in training are reported as anomalies unless
    ``strict_categories``."""
    from oddkit.report import write_report
    from oddkit.threshold import prevalence_and_costs_from_goal

    if miss_costs is not None and prevalence_and_costs_from_goal(detector.threshold_goal_)[1] is None:
        raise OddkitError(f"--miss-cost-col prices each missed anomaly in units of a cost goal's MISS, but {model}'s "
                          f"threshold goal is {detector.threshold_goal_!r}; choose its threshold with "
                          "'oddkit threshold MODEL DEV --goal cost:FALSE_ALARM,MISS[,ANOMALY_RATE] --miss-cost-col "
                          "COLUMN' first")
    return write_report(detector, X, y, out, groups=groups, prevalence=prevalence, top=top, data_name=data.name,
                        model_folder=model, title=f"{type(detector).__name__} on {data.name}",
                        miss_costs=miss_costs, ids=ids, strict_categories=strict_categories)


@app.command()
@threads_limited
def report(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit'.")],
    data: Annotated[Path, typer.Argument(help="Data to report on (labelled for metrics and curves).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    label_col: LabelCol = None,
    id_col: IdCols = None,
    group_col: GroupCol = None,
    prevalence: Prevalence = None,
    top: Annotated[int, typer.Option(help="How many of the top-scoring distinct rows to list with explanations.")] = 20,
    miss_cost_col: MissCostCol = None,
    strict_categories: StrictCategories = False,
    force: Force = False,
    n_threads: NThreads = None,
):
    """Write one self-contained HTML report (opens offline): data summary, metrics at the data's and the
    production anomaly rate, ROC/PR curves, score histograms, confusion matrix, top anomalies explained,
    a breakdown by --group-col, and a model card. With --miss-cost-col, a missed anomaly costs its own value
    (times the cost goal's MISS) in the expected cost."""
    from oddkit.cli.scoring import _miss_costs

    _check_output(out, force, table=False)
    detector, X, y, groups, ids = read_report_table(model, data, label_col, id_col, group_col, miss_cost_col)
    written = write_html_report(detector, X, y, groups, out, model, data, prevalence, top,
                                _miss_costs(data, label_col, miss_cost_col, detector), ids, strict_categories)
    console.print(f"report: {written}")
