"""'oddkit generate': new examples from a VAE model, or pseudo-anomalies made from a data file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from oddkit.cli._common import (Force, IdCols, ImageSize, LabelCol, NThreads, _check_output, _image_size,
                                _is_image_stack, _load_model, _read, _write_decoded, app, console, errors,
                                threads_limited)
from oddkit.exceptions import OddkitError

PSEUDO_METHODS = ("auto", "vae-between", "vae-tail", "permute")  # oddkit.detectors.pseudo's, without importing it
MODEL_METHODS = ("prior", "vae-tail")


@app.command()
@threads_limited
def generate(
    source: Annotated[Path, typer.Argument(
        help="A VAE model folder written by 'oddkit fit', or training data (a table: CSV, Parquet, .npy, .npz; "
             "images: a folder or an .npz) to make pseudo-anomalies from.")],
    n: Annotated[int, typer.Option("-n", "--n-samples", help="How many samples.")] = 64,
    out: Annotated[Path, typer.Option("--out", "-o", help="Images: a .png grid, an .npz or a folder; tables: .csv, "
                                                          ".parquet, .npy, or '-' for standard output.")]
    = Path("samples.png"),
    method: Annotated[Optional[str], typer.Option(
        help="A model: 'prior' (default; new examples) or 'vae-tail' (pseudo-anomalies from the prior's tail). "
             "Data: 'auto' (default), 'vae-between', 'vae-tail' or 'permute': the pseudo-anomalies "
             "'fit --known-anomalies generate' trains with.")] = None,
    class_col: Annotated[Optional[str], typer.Option(
        "--class-col", help="Data: the column (table) or array (.npz) of each row's class; 'vae-between' then "
                            "mixes rows of different classes. A folder of images: its sub-folders.")] = None,
    label_col: LabelCol = None,
    id_col: IdCols = None,
    image_size: ImageSize = None,
    epochs: Annotated[int, typer.Option(help="Data, 'vae-*' methods: most epochs of the VAE.")] = 20,
    random_state: Annotated[Optional[int], typer.Option(help="Seed of the samples.")] = 0,
    force: Force = False,
    n_threads: NThreads = None,
):
    """Draw N examples: from a VAE model, or pseudo-anomalies made from training DATA alone.

    Pseudo-anomalies are what 'oddkit fit --known-anomalies generate' teaches a detector to distrust.
    Images go to a PNG grid (or an .npz or a folder), tables to a table.
    """
    _check_output(out, force, table=False)
    if n < 1:
        raise OddkitError(f"-n must be at least 1, got {n}")
    if (source / "config.json").is_file():
        _from_model(source, n, out, method or "prior", random_state)
    else:
        _from_data(source, n, out, method or "auto", class_col, label_col, id_col, image_size, epochs, random_state,
                   n_threads)


def _from_model(model: Path, n: int, out: Path, method: str, random_state: int | None) -> None:
    """Samples of a saved VAE: from its prior, or from the prior's tail."""
    if method not in MODEL_METHODS:
        raise OddkitError(f"--method {method} needs the training data, which a model folder does not hold: pass the "
                          f"data file instead of {model}, or use --method {' or --method '.join(MODEL_METHODS)}")
    detector = _load_model(model)
    if not hasattr(detector, "generate"):
        raise OddkitError(f"{model} holds a {type(detector).__name__}, which cannot generate; fit a variational "
                          "auto-encoder (--detector vae), or pass training data to make pseudo-anomalies from")
    samples = detector.generate(n, random_state=random_state, tail=method == "vae-tail")
    written = _write(detector, samples, out)
    what = "samples" if method == "prior" else "pseudo-anomalies (the prior's tail)"
    _done(f"generated {n:,} {what} with {type(detector).__name__}; wrote {written}", out)


def _from_data(data: Path, n: int, out: Path, method: str, class_col, label_col, id_col, image_size, epochs: int,
               random_state: int | None, n_threads: int | None) -> None:
    """Pseudo-anomalies of DATA (:class:`oddkit.PseudoAnomalies`), written as images or a table."""
    if method not in PSEUDO_METHODS:
        raise OddkitError(f"--method {method}: with data, use one of {', '.join(PSEUDO_METHODS)} ('prior' needs "
                          "a VAE model folder)")
    import numpy as np

    from oddkit.data.images import is_image_source, read_images
    from oddkit.detectors.pseudo import DEFAULT_METHOD, PseudoAnomalies

    spec = PseudoAnomalies(method, n_samples=n, epochs=epochs, random_state=random_state)
    if is_image_source(data):
        images = read_images(data, size=_image_size(image_size), labels_key=class_col or "labels")
        classes = images.labels
        X = images.X
        what = f"{len(X):,} images"
    else:
        table = _read(data, label_col, [*(id_col or []), *([class_col] if class_col else [])])
        X, classes = table.X, None if class_col is None else table.ids[class_col].to_numpy()
        if table.y is not None:  # anomalies in the training file are not what normal looks like
            X = X[np.asarray(table.y) == 0]
            classes = None if classes is None else classes[np.asarray(table.y) == 0]
        what = f"{len(X):,} rows"
    samples = spec.generate(X, classes, n_threads=n_threads)
    written = _write(None, samples, out)
    name = f"auto = {DEFAULT_METHOD}" if method == "auto" else method
    _done(f"generated {n:,} pseudo-anomalies ({name}) from {what} of {data}; wrote {written}", out)


def _write(detector, samples, out: Path):
    """Write the samples (images or rows); '-' (standard output) takes tables only."""
    if str(out) == "-" and _is_image_stack(samples):
        raise OddkitError("--out - writes tables; write images to a .png grid, an .npz or a folder")
    return _write_decoded(detector, samples, out)


def _done(message: str, out: Path) -> None:
    """The summary line: on stderr when the samples went to standard output."""
    (errors if str(out) == "-" else console).print(message, soft_wrap=True)
