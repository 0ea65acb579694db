"""Watching a deployed model: 'oddkit drift' (do new rows still look like the reference rows?)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from oddkit.cli._common import (IdCols, LabelCol, NThreads, _escaped, _features_for, _label_col, _load_model,
                                _model_image_shape, _model_text_col, _read_for_model, app, console, errors,
                                threads_limited)
from oddkit.exceptions import OddkitError


def _rows(detector, data: Path, label_col, id_col, normal_only: bool):
    """DATA's rows as the model takes them; with ``normal_only``, a table's normal rows when it has labels."""
    kind, data_set = _read_for_model(detector, data, label_col, id_col, None)
    if kind == "recordings":
        return data_set
    if normal_only and kind == "table" and data_set.y is not None:
        return data_set.X[data_set.y == 0]
    return data_set.X


def _batches(detector, data: Path, label_col, id_col, batch_rows: int):
    """DATA as the model takes it, in batches: a table (or a folder of Parquet files) ``batch_rows`` rows at a
    time, as 'oddkit score' reads it; images, texts and recordings whole."""
    from oddkit.cli.audio import model_takes_recordings

    if model_takes_recordings(detector) or _model_image_shape(detector) is not None \
            or _model_text_col(detector) is not None:
        yield _rows(detector, data, label_col, id_col, normal_only=False)
        return
    if data.is_dir():
        from oddkit.data.stream import TableSource

        batches = TableSource(data, batch_rows=batch_rows, label_col=_label_col(label_col),
                              id_cols=tuple(id_col or ())).tables()
    else:
        from oddkit.data import iter_table_batches

        batches = iter_table_batches(data, batch_rows=batch_rows, label_col=_label_col(label_col),
                                     id_cols=tuple(id_col or ()))
    for batch in batches:
        yield _features_for(detector, batch.X)


@app.command()
@threads_limited
def drift(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit'.")],
    data: Annotated[Path, typer.Argument(help="New rows to check (a batch of production data), in any form 'oddkit "
                                              "score' reads (a table or a folder of Parquet files is read "
                                              "--batch-rows at a time); a label column is left out.")],
    reference: Annotated[Optional[Path], typer.Option(
        help="Normal rows the model did not train on, to compare with instead of the model's recorded reference "
             "(only the normal rows when it has a label column).")] = None,
    label_col: LabelCol = None,
    id_col: IdCols = None,
    batch_rows: Annotated[int, typer.Option(help="Rows of DATA read and scored at a time.")] = 100_000,
    alpha: Annotated[float, typer.Option(help="Family-wise error over all checks: data drawn like the reference is "
                                              "reported as drifted with at most this probability.")] = 0.01,
    min_psi: Annotated[float, typer.Option(help="Smallest population stability index reported as a shift of the "
                                                "scores or of a column.")] = 0.1,
    min_alert_ratio: Annotated[float, typer.Option(help="Smallest factor by which the alert rate must change to be "
                                                        "reported.")] = 1.25,
    json_out: Annotated[Optional[Path], typer.Option(
        "--json", help="Also write the whole report as JSON to this file ('-': standard output, instead of "
                       "the text).")] = None,
    fail_on_drift: Annotated[bool, typer.Option(
        "--fail-on-drift", help="Exit with status 1 when drift is found (0 when not; 2 on errors), for "
                                "schedulers and CI.")] = False,
    n_threads: NThreads = None,
):
    """Check whether DATA still looks like the normal rows MODEL's threshold was chosen on.

    Compares the alert rate at the model's threshold, the score distribution, and (for a model fitted on a
    table) each column's distribution with the model's drift reference, which 'oddkit threshold' records from
    the dev set's normal rows, or with --reference. Every p-value is adjusted over all checks (Holm), so that
    undrifted data is reported as drifted with probability at most --alpha; a shift must also be large
    (--min-psi, --min-alert-ratio) to be reported.
    """
    import json

    from oddkit.drift import DriftReference, check_drift_batches

    detector = _load_model(model)
    given = None
    if reference is not None:
        given = DriftReference.from_data(detector, _rows(detector, reference, label_col, id_col, normal_only=True),
                                         data_name=reference.name)
    elif getattr(detector, "drift_reference_", None) is None:
        raise OddkitError(f"{model} holds no drift reference; pass --reference NORMAL_ROWS (held-out normal rows), "
                          "or choose the model's threshold on a dev set with 'oddkit threshold', which records its "
                          "normal rows")
    if batch_rows < 1:
        raise OddkitError(f"--batch-rows must be at least 1, got {batch_rows}")
    report = check_drift_batches(detector, _batches(detector, data, label_col, id_col, batch_rows), given,
                                 alpha=alpha, min_psi=min_psi, min_alert_ratio=min_alert_ratio)
    text = json.dumps(report.to_dict(), indent=2, allow_nan=False)
    if json_out is not None and str(json_out) == "-":
        print(text)
    else:
        console.print(_escaped(str(report)), markup=False, highlight=False, soft_wrap=True)
        if json_out is not None:
            json_out.write_text(text + "\n", encoding="utf-8")
            errors.print(f"report written to {json_out}", markup=False, highlight=False)
    if fail_on_drift and report.drifted:
        sys.exit(1)  # not typer.Exit: the entry point runs the app outside click's standalone mode
