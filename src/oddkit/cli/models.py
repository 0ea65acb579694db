"""Looking inside a model: 'oddkit info' (what a model folder holds) and 'oddkit explain' (why rows
scored high)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from oddkit.cli._common import (Force, IdCols, LabelCol, NThreads, StrictCategories, _check_output, _load_model,
                                _model_image_shape, _model_text_col, _print_metrics, _read_for_model, _score_rows,
                                UNSEEN_HINT, _write_table, app, console, threads_limited)
from oddkit.exceptions import OddkitError


@app.command()
def info(model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit'.")]):
    """Show what MODEL holds: detector, parameters, columns, threshold, training size, versions.

    Columns are listed with their kinds (numeric, categorical), and the threshold with its goal.
    The folder is loaded as for scoring, so its integrity (and signature, with ODDKIT_MODEL_KEY) is checked.
    """
    detector = _load_model(model)
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    rows: list[tuple[str, object]] = [("detector", type(detector).__name__)]
    n_rows = getattr(detector, "n_training_rows_", None)
    if n_rows is None and getattr(detector, "decision_scores_", None) is not None:
        n_rows = len(detector.decision_scores_)
    if n_rows is not None:
        rows.append(("training rows", f"{n_rows:,}"))
    rows.append(("training data fingerprint", getattr(detector, "training_fingerprint_", None)
                 or "not recorded (a streamed fit, or a model saved before oddkit recorded it)"))
    rows += [("threshold", f"{detector.threshold_:.6g}"), ("threshold goal", detector.threshold_goal_)]
    from rich.markup import escape  # names from the folder are text, never markup

    if getattr(detector, "threshold_miss_cost_col_", None) is not None:
        column = escape(detector.threshold_miss_cost_col_)
        rows.append(("threshold miss costs", f"column {column} (a missed anomaly costs MISS x its value; evaluate "
                                             "and report use it)"))
    provenance = getattr(detector, "threshold_provenance_", None)
    if provenance is not None:
        rows.append(("threshold chosen on", escape(str(provenance))))
    elif detector.threshold_goal_.startswith("contamination"):
        rows.append(("threshold chosen on", "the training scores (contamination), no labelled dev data"))
    else:
        rows.append(("threshold chosen on", "not recorded (set by hand, or saved before oddkit recorded it)"))
    shape = _model_image_shape(detector)
    preprocessor = getattr(detector, "preprocessor_", None)
    from oddkit.cli.audio import describe_features
    from oddkit.data.audio_features import audio_settings

    audio = audio_settings(detector)
    if shape is not None:
        rows.append(("input", "images of " + "x".join(map(str, shape)) + " (channels x height x width)"))
    elif audio is not None:
        rows.append(("input", f"recordings at {audio.sample_rate_:,} Hz"))
        rows.append(("audio features", describe_features(audio)))
    elif getattr(detector, "log_mel_", None) is not None:  # voice conversion: log-mel frames, no features
        rows.append(("input", f"recordings at {detector.log_mel_.sample_rate:,} Hz, as frames of "
                              f"{detector.log_mel_.n_mels} log-mel bands"))
    elif preprocessor is not None and hasattr(preprocessor, "kinds_"):
        columns = [f"{name} ({kind}" + (f", {len(preprocessor.categories_[name])} values)"
                                        if kind == "categorical" else ")")
                   for name, kind in zip(preprocessor.feature_names_in_, preprocessor.kinds_)]
        rows.append((f"columns ({len(columns)})", ", ".join(columns)))
    rows += [(f"parameter {name}", json.dumps(value, default=str)) for name, value in
             sorted(detector.get_params(deep=False).items())]
    rows += [(f"version {name}", str(value)) for name, value in sorted((config.get("versions") or {}).items())]
    _print_metrics(f"{model}", rows, header="")
    fingerprint = getattr(detector, "training_fingerprint_", None)
    if fingerprint is not None:  # whole on one line, to copy and compare (the table may fold it)
        console.print(f"training data sha256: {fingerprint}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@threads_limited
def explain(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit' (on a table, texts or recordings).")],
    data: Annotated[Path, typer.Argument(help="Rows to explain: CSV, Parquet, .npy or .npz; recordings (.wav/.flac, "
                                              "a folder, .npz) for a model trained on recordings.")],
    top: Annotated[int, typer.Option("--top", help="How many of the highest-scoring rows to explain.")] = 20,
    out: Annotated[Path, typer.Option("--out", "-o", help="Table to write (.csv, .parquet, .npy; '-' for "
                                                          "standard output).")] = Path("explanations.csv"),
    label_col: LabelCol = None,
    id_col: IdCols = None,
    strict_categories: StrictCategories = False,
    force: Force = False,
    n_threads: NThreads = None,
    by: Annotated[Optional[str], typer.Option(
        "--by", help="Models trained on recordings: sum the shares per 'coefficient' (MFCC models; their "
                     "default), 'band' (mel band; the default of the others), 'statistic' (mean, std, ...; "
                     "pooled features), 'segment' (time step of a patch or voice model) or 'feature'.")
    ] = None,
):
    """Explain the TOP highest-scoring rows of DATA: each column's share of the row's score.

    One output row per explained row, highest score first: its id columns, its row number in DATA, score,
    label, 'unseen_category' (models with categorical columns: the row holds a category never seen in
    training; when that is what made it an anomaly its shares are split over those columns), 'top_column'
    (the column with the largest share) and share_COLUMN for every column (summing to 1).
    For a model trained on recordings (DATA: a .wav/.flac file, a folder or an .npz of them): file, group,
    score, label, 'top_coefficient' (MFCC models) or 'top_band' (or top_statistic, ... with --by) and
    share_GROUP for every coefficient, mel band, statistic or segment.
    """
    import numpy as np
    import pandas as pd

    if top < 1:
        raise OddkitError(f"--top must be at least 1, got {top}")
    _check_output(out, force)
    detector = _load_model(model)
    from oddkit.cli.audio import explain_recordings, model_takes_recordings

    if model_takes_recordings(detector):
        return explain_recordings(detector, data, top, out, by)
    if by is not None:
        raise OddkitError("--by groups the shares of a model trained on recordings; a table's shares are per "
                          "column, leave it out")
    if _model_image_shape(detector) is not None:
        raise OddkitError(f"{model} was trained on images; 'oddkit explain' explains table rows")
    if _model_text_col(detector) is not None:
        return _explain_texts(detector, data, top, out, label_col, id_col)
    _, table = _read_for_model(detector, data, label_col, id_col, None)
    from oddkit.scoring import explain_rows

    scores, unseen = _score_rows(detector, table.X, strict_categories)
    order = np.argsort(-scores, kind="stable")[:top]
    rows = table.X.iloc[order]
    shares = explain_rows(detector, rows, strict_categories=strict_categories, hint=UNSEEN_HINT)
    shares = pd.DataFrame(np.asarray(shares, dtype=np.float64), columns=[str(c) for c in rows.columns])
    front = table.ids.iloc[order].reset_index(drop=True) if table.ids is not None else pd.DataFrame(
        index=range(len(order)))
    front = front.assign(row=rows.index.to_numpy(), score=scores[order],
                         label=(scores[order] >= detector.threshold_).astype(np.int64))
    if getattr(detector.preprocessor_, "categorical_columns_", None):
        front = front.assign(unseen_category=unseen[order])
    front = front.assign(top_column=shares.idxmax(axis=1).to_numpy())
    frame = pd.concat([front, shares.add_prefix("share_")], axis=1)
    _write_table(frame, out)
    if str(out) != "-":
        console.print(f"explained the {len(frame):,} highest-scoring of {len(scores):,} rows of {data.name} "
                      f"with {type(detector).__name__}; wrote {out}")



TOP_TOKENS = 5
"""Words and tokens listed per explained text by 'oddkit explain' on a text model."""


def _explain_texts(detector, data: Path, top: int, out: Path, label_col, id_col) -> None:
    """The TOP highest-scoring texts of DATA with the tokens that raise their scores most."""
    import numpy as np
    import pandas as pd

    _, table = _read_for_model(detector, data, label_col, id_col, None)
    scores = detector.decision_function(table.X)
    order = np.argsort(-scores, kind="stable")[:top]
    rows = table.X.iloc[order]
    tokens = detector.explain(rows)
    listed, words = [], []
    for row in rows.index:
        part = tokens[tokens["row"] == row]
        worst = part.nlargest(TOP_TOKENS, "contribution")
        listed.append(", ".join(f"{t} ({c:.3g})" for t, c in zip(worst["token"], worst["contribution"])))
        by_word = part.groupby(["word_index", "word"], sort=False)["contribution"].sum().nlargest(TOP_TOKENS)
        words.append(", ".join(f"{w} ({c:.3g})" for (_, w), c in by_word.items()))
    front = table.ids.iloc[order].reset_index(drop=True) if table.ids is not None else pd.DataFrame(
        index=range(len(order)))
    frame = front.assign(row=rows.index.to_numpy(), score=scores[order],
                         label=(scores[order] >= detector.threshold_).astype(np.int64),
                         top_words=words, top_tokens=listed, text=rows.iloc[:, 0].to_numpy())
    _write_table(frame, out)
    if str(out) != "-":
        console.print(f"explained the {len(frame):,} highest-scoring of {len(scores):,} texts of {data.name} "
                      f"with {type(detector).__name__} (the {TOP_TOKENS} words and tokens adding most to each "
                      f"score); wrote {out}")
