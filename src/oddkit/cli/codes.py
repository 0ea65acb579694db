"""The auto-encoders' codes: 'oddkit embed', 'compress', 'decompress' and 'swap' ('generate' is in
:mod:`oddkit.cli.generate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from oddkit.cli._common import (Force, IdCols, ImageSize, LabelCol, NThreads, _check_output, _is_image_stack,
                                _load_model, _read_for_model, _require_codes, _write_decoded, _write_table, app, console,
                                threads_limited)
from oddkit.exceptions import OddkitError


def _refuse_recordings(detector, model: Path, command: str, covers: str) -> None:
    """Stop COMMAND on a model fitted on recordings: its code decodes to the model's audio features
    (MFCC statistics, log-mel bands), not to audio."""
    from oddkit.cli.audio import model_takes_recordings

    if model_takes_recordings(detector):
        raise OddkitError(f"'oddkit {command}' {covers}; {model} was fitted on recordings, whose codes decode to "
                          "audio features, not audio ('oddkit embed' writes their codes)")


@app.command()
@threads_limited
def embed(
    model: Annotated[Path, typer.Argument(help="An auto-encoder model folder written by 'oddkit fit'.")],
    data: Annotated[Path, typer.Argument(help="A table (CSV, Parquet, .npy, .npz), images (folder, .npz) or, for a "
                                              "model fitted on recordings, recordings (.wav/.flac, folder, .npz).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Codes to write: .parquet, .csv, .npy or .npz.")]
    = Path("embedding.parquet"),
    label_col: LabelCol = None,
    id_col: IdCols = None,
    image_size: ImageSize = None,
    force: Force = False,
    n_threads: NThreads = None,
):
    """Write the auto-encoder's code (embedding) of every row, image or recording of DATA: columns z0, z1, ...

    Id columns (tables), the image name and class (images), or each recording's file and group come first.
    """
    _check_output(out, force, table=False)
    import numpy as np
    import pandas as pd

    detector = _load_model(model)
    if not hasattr(detector, "transform"):
        raise OddkitError(f"{model} holds a {type(detector).__name__}, which has no embedding; "
                          "fit an auto-encoder (--detector autoencoder)")
    kind, source = _read_for_model(detector, data, label_col, id_col, image_size)
    inputs = source if kind == "recordings" else source.X
    codes = np.asarray(detector.transform(inputs), dtype=np.float32).reshape(len(inputs), -1)
    suffix = out.suffix.lower()
    if suffix in (".npy", ".npz"):
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".npy":
            np.save(out, codes)
        else:
            labels = (None if kind == "recordings" else
                      getattr(source, "labels", None) if kind == "images" else source.y)
            np.savez(out, X=codes, **({} if labels is None else {"labels": labels}))
    else:
        frame = pd.DataFrame(codes, columns=[f"z{i}" for i in range(codes.shape[1])])
        if kind == "recordings":
            frame = pd.concat([source.labels[["file", "group"]].reset_index(drop=True), frame], axis=1)
        elif kind == "images":
            front = {"image": source.names}
            if source.labels is not None:
                front["class"] = ([source.class_names[i] for i in source.labels] if source.class_names
                                  and len(source.class_names) > int(source.labels.max()) else source.labels)
            frame = pd.concat([pd.DataFrame(front), frame], axis=1)
        elif source.ids is not None:
            frame = pd.concat([source.ids.reset_index(drop=True), frame], axis=1)
        _write_table(frame, out)
    console.print(f"embedded {len(codes):,} {kind if kind in ('images', 'recordings') else 'rows'} into "
                  f"{codes.shape[1]} dimensions; wrote {out}")


@app.command()
@threads_limited
def compress(
    model: Annotated[Path, typer.Argument(help="An auto-encoder model folder written by 'oddkit fit'.")],
    data: Annotated[Path, typer.Argument(help="A table (CSV, Parquet, .npy, .npz) or images (folder, .npz); "
                                              "not recordings.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The compressed file to write.")] = Path("data.oddz"),
    bits: Annotated[int, typer.Option(help="Bits per code dimension, 1 to 16 (VQ models: set by the codebook).")] = 8,
    label_col: LabelCol = None,
    id_col: IdCols = None,
    image_size: ImageSize = None,
    force: Force = False,
    n_threads: NThreads = None,
):
    """Compress DATA to the model's quantised codes (lossy); 'oddkit decompress' reads it back.

    Tables and images only. Only the features are stored (not ids or labels); decompressing needs
    the same model folder.
    """
    _check_output(out, force, table=False)
    from oddkit.compress import compress as compress_codes
    from oddkit.compress import read_header

    detector = _load_model(model)
    _require_codes(detector, model, "compress")
    _refuse_recordings(detector, model, "compress", "compresses tables and images")
    kind, source = _read_for_model(detector, data, label_col, id_col, image_size)
    blob = compress_codes(detector, source.X, bits=bits)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(blob)
    header = read_header(blob)
    raw = (source.X.size if kind == "images" else source.X.shape[0] * source.X.shape[1]) * 4
    console.print(f"compressed {header['n']:,} {'images' if kind == 'images' else 'rows'} to {len(blob):,} bytes "
                  f"({len(blob) * 8 / header['n']:.1f} bits each; {raw / len(blob):.1f}x smaller than float32; "
                  f"{header['dims']} codes x {header['bits']} bits, {header['codec']}); wrote {out}")


@app.command()
@threads_limited
def decompress(
    model: Annotated[Path, typer.Argument(help="The model folder that compressed FILE.")],
    file: Annotated[Path, typer.Argument(help="A file written by 'oddkit compress'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Images: a folder of PNGs, an .npz or a .png grid; "
                                                          "tables: .csv, .parquet or .npy.")],
    force: Force = False,
    n_threads: NThreads = None,
):
    """Rebuild the data in FILE with MODEL (the model that compressed it)."""
    _check_output(out, force, table=False)
    from oddkit.compress import decompress as decompress_codes

    detector = _load_model(model)
    _require_codes(detector, model, "decompress")
    decoded = decompress_codes(detector, file.read_bytes())
    written = _write_decoded(detector, decoded, out)
    kind = "images" if _is_image_stack(decoded) else "rows"
    console.print(f"decompressed {len(decoded):,} {kind}; wrote {written}")


@app.command()
@threads_limited
def swap(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit --detector disentangled'.")],
    class_data: Annotated[Path, typer.Argument(help="Rows or images that give their class part.")],
    style_data: Annotated[Path, typer.Argument(help="Rows or images that give their style part.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Images: a .png grid, an .npz or a folder; "
                                                          "tables: .csv, .parquet or .npy.")] = Path("swapped.png"),
    label_col: LabelCol = None,
    id_col: IdCols = None,
    image_size: ImageSize = None,
    force: Force = False,
    n_threads: NThreads = None,
):
    """Decode the class of each row of CLASS_DATA in the style of the same row of STYLE_DATA.

    Both must hold as many rows (or images), or one of them a single one, which is then paired with
    every row of the other: one digit in many handwritings, or many digits in one.
    """
    _check_output(out, force, table=False)
    detector = _load_model(model)
    _refuse_recordings(detector, model, "swap", "swaps the parts of table rows and images")
    if not hasattr(detector, "swap"):
        raise OddkitError(f"{model} holds a {type(detector).__name__}, whose code has no class and style parts; "
                          "fit one with --detector disentangled --class-col COLUMN")
    _, class_source = _read_for_model(detector, class_data, label_col, id_col, image_size)
    _, style_source = _read_for_model(detector, style_data, label_col, id_col, image_size)
    swapped = detector.swap(class_source.X, style_source.X)
    written = _write_decoded(detector, swapped, out)
    console.print(f"swapped {len(swapped):,} {'images' if _is_image_stack(swapped) else 'rows'}: the class parts of "
                  f"{class_data} in the styles of {style_data}; wrote {written}")
