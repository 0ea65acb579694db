"""Readable codes of text: 'oddkit summarize' (a short text per message) and 'oddkit parse' (a tree
per message), from a model folder of a TextSummaryAutoEncoder or a TreeAutoEncoder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from oddkit.cli._common import Force, NThreads, _check_output, _load_model, _write_table, app, console, threads_limited
from oddkit.exceptions import OddkitError

TextCol = Annotated[Optional[str], typer.Option(
    "--text-col", help="Column holding the texts (default: 'text', or the only column; a headerless TSV is "
                       "read as label<TAB>text).")]


def _texts_for(model: Path, texts: Path, text_col: str | None, method: str, fit_with: str):
    from oddkit.data.text import read_texts

    detector = _load_model(model)
    if not hasattr(detector, method):
        raise OddkitError(f"{model} holds a {type(detector).__name__}, which has no {method.replace('_', ' ')}; "
                          f"fit one with --detector {fit_with}")
    values, _ = read_texts(texts, text_col=text_col)
    return detector, values


@app.command()
@threads_limited
def summarize(
    model: Annotated[Path, typer.Argument(help="A model folder of a TextSummaryAutoEncoder (--detector text-summary).")],
    texts: Annotated[Path, typer.Argument(help="Texts: CSV/TSV/Parquet with a text column, or label<TAB>text lines.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Table to write (.csv, .parquet; '-' for standard output): "
                                                          "text, summary, rebuilt, score.")] = Path("summaries.csv"),
    text_col: TextCol = None,
    force: Force = False,
    n_threads: NThreads = None,
):
    """Write each text's summary (its code: a few words of the vocabulary), the text the model
    rebuilds from that summary alone, and its anomaly score."""
    _check_output(out, force)
    import pandas as pd

    detector, values = _texts_for(model, texts, text_col, "encode_text", "text-summary")
    summaries = detector.encode_text(values)
    frame = pd.DataFrame({"text": values, "summary": summaries, "rebuilt": detector.decode_text(summaries),
                          "score": detector.decision_function(values)})
    _write_table(frame, out)
    if str(out) != "-":
        console.print(f"summarized {len(values):,} texts; wrote {out}")


@app.command()
@threads_limited
def parse(
    model: Annotated[Path, typer.Argument(help="A model folder of a TreeAutoEncoder (--detector text-tree).")],
    texts: Annotated[Path, typer.Argument(help="Texts: CSV/TSV/Parquet with a text column, or label<TAB>text lines.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Table to write (.csv, .parquet; '-' for standard output): "
                                                          "text, tree, score.")] = Path("trees.csv"),
    text_col: TextCol = None,
    force: Force = False,
    n_threads: NThreads = None,
):
    """Write each text's tree (its code: a binary bracketing of its words, e.g. "((the dog) (ran away))")
    and its anomaly score."""
    _check_output(out, force)
    import pandas as pd

    detector, values = _texts_for(model, texts, text_col, "parse", "text-tree")
    frame = pd.DataFrame({"text": values, "tree": detector.parse(values), "score": detector.decision_function(values)})
    _write_table(frame, out)
    if str(out) != "-":
        console.print(f"parsed {len(values):,} texts; wrote {out}")
