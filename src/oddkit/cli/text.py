"""Readable codes of text: 'oddkit summarize' (a short text per message) and 'oddkit parse' (a tree
per message), from a model folder of a TextSummaryAutoEncoder or a TreeAutoEncoder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from oddkit.cli._common import (Force, IdCols, NThreads, _check_output, _load_model, _read, _read_model_texts,
                                _write_table, app, console, threads_limited)
from oddkit.exceptions import OddkitError

TextCol = Annotated[Optional[str], typer.Option(
    "--text-col", help="Column holding the texts (default: the model's text column; a TSV without it is read "
                       "as label<TAB>text lines).")]


def _texts_for(model: Path, texts: Path, text_col: str | None, id_col, method: str, fit_with: str):
    """The model, the texts of TEXTS and their id columns (a DataFrame or None)."""
    detector = _load_model(model)
    if not hasattr(detector, method):
        raise OddkitError(f"{model} holds a {type(detector).__name__}, which has no {method.replace('_', ' ')}; "
                          f"fit one with --detector {fit_with}")
    if text_col is None:
        table = _read_model_texts(detector, texts, "none", id_col, text_col_option=True)
    else:
        table = _read(texts, "none", id_col, text_col=text_col)
    return detector, table.X.iloc[:, 0].tolist(), table.ids


def _with_ids(ids, columns: dict):
    import pandas as pd

    frame = pd.DataFrame(columns)
    return frame if ids is None else pd.concat([ids.reset_index(drop=True), frame], axis=1)


@app.command()
@threads_limited
def summarize(
    model: Annotated[Path, typer.Argument(help="A model folder of a TextSummaryAutoEncoder (--detector text-summary).")],
    texts: Annotated[Path, typer.Argument(help="Texts: CSV/TSV/Parquet with a text column, or label<TAB>text lines.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Table to write (.csv, .parquet; '-' for standard output): "
                                                          "ids, text, summary, rebuilt, score.")] = Path("summaries.csv"),
    text_col: TextCol = None,
    id_col: IdCols = None,
    force: Force = False,
    n_threads: NThreads = None,
):
    """Write each text's summary (its code: a few words of the vocabulary), the text the model
    rebuilds from that summary alone, and its anomaly score."""
    _check_output(out, force)
    detector, values, ids = _texts_for(model, texts, text_col, id_col, "encode_text", "text-summary")
    summaries, scores = detector.encode_text(values, return_scores=True)  # each text summarised once
    frame = _with_ids(ids, {"text": values, "summary": summaries, "rebuilt": detector.decode_text(summaries),
                          "score": scores})
    _write_table(frame, out)
    if str(out) != "-":
        console.print(f"summarized {len(values):,} texts; wrote {out}")


@app.command()
@threads_limited
def parse(
    model: Annotated[Path, typer.Argument(help="A model folder of a TreeAutoEncoder (--detector text-tree).")],
    texts: Annotated[Path, typer.Argument(help="Texts: CSV/TSV/Parquet with a text column, or label<TAB>text lines.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Table to write (.csv, .parquet; '-' for standard output): "
                                                          "ids, text, tree, score.")] = Path("trees.csv"),
    text_col: TextCol = None,
    id_col: IdCols = None,
    force: Force = False,
    n_threads: NThreads = None,
):
    """Write each text's tree (its code: a binary bracketing of its words, e.g. "((the dog) (ran away))")
    and its anomaly score."""
    _check_output(out, force)
    detector, values, ids = _texts_for(model, texts, text_col, id_col, "parse", "text-tree")
    frame = _with_ids(ids, {"text": values, "tree": detector.parse(values), "score": detector.decision_function(values)})
    _write_table(frame, out)
    if str(out) != "-":
        console.print(f"parsed {len(values):,} texts; wrote {out}")
