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
        if group_col is not None or id_col or miss_cost_col is not None:
            raise OddkitError("--group-col, --id-col and --miss-cost-col name table columns; images have none, "
                              "leave them out")
        images, y = read_report_images(detector, data, label_col)
        return detector, images, y, None, None
    from oddkit.threshold import miss_cost_column

    # The column the threshold was chosen with (threshold --miss-cost-col) is set aside as --miss-cost-col is.
    carried = _carried(detector, id_col, group_col, miss_cost_column(detector, miss_cost_col))
    table = (_read(data, label_col, carried) if _model_text_col(detector) is None
             else _read_model_texts(detector, data, label_col, carried))
    groups = None if group_col is None else _column_of(table, group_col).to_numpy()
    ids = table.ids[list(id_col)] if id_col else None
    return detector, _features_for(detector, table.X), table.y, groups, ids


def read_report_images(detector, data: Path, label_col):
    """DATA (an image folder or an .npz) as the image model takes it, and its anomaly labels (1 = anomaly)
    as 'oddkit evaluate' reads them: a folder's sub-folders ``normal`` and ``anomaly`` (or one of them), an
    .npz's array ``y`` (or the one --label-col names); None when DATA has none (a folder without
    sub-folders, an .npz without that array)."""
    import numpy as np

    from oddkit.data.images import is_image_source, read_images

    shape = _model_image_shape(detector)
    if not is_image_source(data):
        raise OddkitError(f"the model was trained on images of shape {shape}; pass an image folder or an .npz "
                          "of images")
    key = label_col or "y"
    images = read_images(data, size=shape[1:], channels=shape[0], labels_key=key)
    if Path(data).is_dir():
        if not images.class_names:
            return images, None
        if not set(images.class_names) <= {"normal", "anomaly"}:
            raise OddkitError(f"{data} has the sub-folders {images.class_names}: to label its images, name them "
                              "'normal' and 'anomaly'; for no labels, put the images in the folder itself")
        return images, (np.asarray(images.class_names)[images.labels] == "anomaly").astype(np.int64)
    if images.labels is None:
        if label_col is not None:
            raise OddkitError(f"{data} holds no array {label_col!r} of anomaly labels (1 = anomaly)")
        return images, None
    y = np.asarray(images.labels)
    if not np.isin(y, (0, 1)).all():
        raise OddkitError(f"the labels {key!r} in {data} must be 0 (normal) or 1 (anomaly)")
    return images, y.astype(np.int64)


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
    data: Annotated[Path, typer.Argument(help="Data to report on (labelled for metrics and curves): a table, "
                                              "texts, recordings, or for an image model an image folder (labels: "
                                              "sub-folders 'normal' and 'anomaly') or an .npz (labels: 'y').")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    label_col: LabelCol = None,
    id_col: IdCols = None,
    group_col: GroupCol = None,
    prevalence: Prevalence = None,
    top: Annotated[int, typer.Option(help="How many of the top-scoring distinct rows (or images) to list with "
                                          "explanations (heat-maps for images).")] = 20,
    miss_cost_col: MissCostCol = None,
    strict_categories: StrictCategories = False,
    force: Force = False,
    n_threads: NThreads = None,
):
    """Write one self-contained HTML report (opens offline): data summary, metrics at the data's and the
    production anomaly rate, ROC/PR curves, score histograms, confusion matrix, top anomalies explained,
    a breakdown by --group-col, and a model card. For an image model, each top image is drawn with its heat-map
    and the region adding most to its score boxed. With --miss-cost-col, a missed anomaly costs its own value
    (times the cost goal's MISS) in the expected cost."""
    from oddkit.cli.scoring import _miss_costs

    _check_output(out, force, table=False)
    detector, X, y, groups, ids = read_report_table(model, data, label_col, id_col, group_col, miss_cost_col)
    written = write_html_report(detector, X, y, groups, out, model, data, prevalence, top,
                                _miss_costs(data, label_col, miss_cost_col, detector), ids, strict_categories)
    console.print(f"report: {written}")
