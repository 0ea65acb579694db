"""'oddkit export': a model as a portable ONNX graph, preprocessing included (see :mod:`oddkit.export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oddkit.cli._common import _load_model, app, console
from oddkit.exceptions import OddkitError


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write, e.g. model.onnx.")] = Path("model.onnx"),
    format: Annotated[str, typer.Option("--format", help="Only 'onnx'.")] = "onnx",  # noqa: A002
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing output file.")] = False,
):
    """Export MODEL as an ONNX graph that scores rows as oddkit does (preprocessing included).

    Auto-encoders (tables and images), VAE, Gaussian and PCA models export (not those fitted on recordings);
    others say why they cannot, and nothing is written.
    Inputs: 'numeric' (float64, the numeric columns in training order) and one string tensor per categorical
    column; outputs 'score' (float64), 'label' (int64) and 'unseen_category' (bool). A category never seen in
    training raises the row's score to the out-of-range floor and is flagged, as 'oddkit score' does. The
    column lists and threshold are in the graph's metadata. The graph never answers NaN: a NaN where the model
    does not impute (oddkit refuses it) scores the out-of-range floor and is labelled an anomaly.
    """
    if format.lower() != "onnx":
        raise OddkitError(f"--format {format!r} is not supported; use --format onnx")
    if out.exists() and not force:
        raise OddkitError(f"{out} exists; pass --force to replace it")
    from oddkit.export import export_onnx

    detector = _load_model(model)
    export_onnx(detector, out)
    console.print(f"exported {type(detector).__name__} from {model} to {out} ({out.stat().st_size:,} bytes); "
                  "outputs score, label and unseen_category (a category never seen in training raises the row's "
                  "score and is flagged there, as 'oddkit score' does)", markup=False, highlight=False)
