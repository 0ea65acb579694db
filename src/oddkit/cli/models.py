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
    rows: list[tuple[str, object]] = [("detector", type(detector).__name__)]
    n_rows = getattr(detector, "n_training_rows_", None)
    if n_rows is None and getattr(detector, "decision_scores_", None) is not None:
        n_rows = len(detector.decision_scores_)
    if n_rows is not None:
        rows.append(("training rows", f"{n_rows:,}"))
    rows.append(("training data fingerprint", getattr(detector, "training_fingerprint_", None)
                 or "not recorded (a streamed fit, or a model saved before oddkit recorded it)"))
    rows += [("threshold", f"{detector.threshold_:.6g}"), ("threshold goal", detector.threshold_goal_)]
    if getattr(detector, "threshold_miss_cost_col_", None) is not None:
        column = detector.threshold_miss_cost_col_
        rows.append(("threshold miss costs", f"column {column} (a missed anomaly costs MISS x its value; evaluate "
                                             "and report use it)"))
    provenance = getattr(detector, "threshold_provenance_", None)
    if provenance is not None:
        rows.append(("threshold chosen on", str(provenance)))
    elif detector.threshold_goal_.startswith("contamination"):
        rows.append(("threshold chosen on", "the training scores (contamination), no labelled dev data"))
    else:
        rows.append(("threshold chosen on", "not recorded (set by hand, or saved before oddkit recorded it)"))
    reference = getattr(detector, "drift_reference_", None)
    rows.append(("drift reference", "none ('oddkit drift' needs --reference)" if reference is None else
                 f"{reference.n_rows:,} rows" + (f" of {reference.data_name}" if reference.data_name else "")
                 + (f", {len(reference.columns)} columns" if reference.columns else "")))
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
    elif _model_text_col(detector) is not None:
        tokenizer = detector.preprocessor_.tokenizer_
        rows.append(("input", f"texts, from the column {_model_text_col(detector)!r} of a table ("
                              f"{tokenizer.kind} tokenizer, {tokenizer.vocab_size_:,} tokens)"))
    elif preprocessor is not None and hasattr(preprocessor, "kinds_"):
        columns = [f"{name} ({kind}" + (f", {len(preprocessor.categories_[name])} values)"
                                        if kind == "categorical" else ")")
                   for name, kind in zip(preprocessor.feature_names_in_, preprocessor.kinds_)]
        rows.append((f"columns ({len(columns)})", ", ".join(columns)))
    rows += [(f"parameter {name}", json.dumps(value, default=str)) for name, value in
             sorted(detector.get_params(deep=False).items())]
    from oddkit.model_input import fitted_members

    members = fitted_members(detector)  # an ensemble: what it fitted, which its members parameter may not say
    if members is not None:
        rows.append(("fitted members", ", ".join(members)))
    rows += [(f"version {name}", str(value)) for name, value in sorted((getattr(detector, "saved_versions_", None) or {}).items())]
    _print_metrics(f"{model}", rows, header="")
    fingerprint = getattr(detector, "training_fingerprint_", None)
    if fingerprint is not None:  # whole on one line, to copy and compare (the table may fold it)
        console.print(f"training data sha256: {fingerprint}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@threads_limited
def explain(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit' (on a table, texts, "
                                               "recordings or images).")],
    data: Annotated[Path, typer.Argument(help="Rows to explain: CSV, Parquet, .npy or .npz; recordings (.wav/.flac, "
                                              "a folder, .npz) for a model trained on recordings; images (a folder, "
                                              "an image file, .npz) for a model trained on images.")],
    top: Annotated[int, typer.Option("--top", help="How many of the highest-scoring rows (or images) to "
                                                   "explain.")] = 20,
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
    maps: Annotated[Optional[Path], typer.Option(
        "--maps", help="Models trained on images: also write, into this folder, one PNG per explained image: "
                       "the image beside its heat-map, the regions boxed.")] = None,
    regions: Annotated[Optional[int], typer.Option(
        "--regions", help="Models trained on images: regions listed per image (one output row each), "
                          "largest contribution first, not overlapping (default 1).")] = None,
    patch_size: Annotated[Optional[int], typer.Option(
        "--patch-size", help="Models trained on images: side of the regions and of the occluded patches, in the "
                             "model's pixels (default: a seventh of the shorter side, at least 2).")] = None,
    method: Annotated[Optional[str], typer.Option(
        "--method", help="Models trained on images: 'auto' (the detector's own split of its score where it has "
                         "one, else occlusion; the default) or 'occlusion' (for any detector).")] = None,
):
    """Explain the TOP highest-scoring rows of DATA: each column's share of the row's score (images: where).

    One output row per explained row, highest score first: its id columns, its row number in DATA, score,
    label, 'unseen_category' (models with categorical columns: the row holds a category never seen in
    training; when that is what made it an anomaly its shares are split over those columns), 'top_column'
    (the column with the largest share) and share_COLUMN for every column (summing to 1).
    For a model trained on recordings (DATA: a .wav/.flac file, a folder or an .npz of them): file, group,
    score, label, 'top_coefficient' (MFCC models) or 'top_band' (or top_statistic, ... with --by) and
    share_GROUP for every coefficient, mel band, statistic or segment.
    For a model trained on images: one output row per region (--regions, default 1) of each explained image:
    image, row, score, label, region (1 = adding most), left, top, right, bottom (its box in the image file's
    pixels, right and bottom exclusive), share (its part of the image's heat-map), and map (the PNG, with --maps).
    """
    import numpy as np
    import pandas as pd

    if top < 1:
        raise OddkitError(f"--top must be at least 1, got {top}")
    _check_output(out, force)
    image_options = [flag for flag, value in (("--maps", maps), ("--regions", regions), ("--patch-size", patch_size),
                                              ("--method", method)) if value is not None]
    detector = _load_model(model)
    if _model_image_shape(detector) is not None:
        if by is not None:
            raise OddkitError("--by groups the shares of a model trained on recordings; an image's explanation is a "
                              "map over its pixels, leave it out")
        return _explain_images(detector, data, top, out, maps, 1 if regions is None else regions, patch_size,
                               method or "auto", force)
    if image_options:
        raise OddkitError(f"{', '.join(image_options)} explain models trained on images; {model} was not, leave "
                          f"{'it' if len(image_options) == 1 else 'them'} out")
    from oddkit.cli.audio import explain_recordings, model_takes_recordings

    if model_takes_recordings(detector):
        return explain_recordings(detector, data, top, out, by)
    if by is not None:
        raise OddkitError("--by groups the shares of a model trained on recordings; a table's shares are per "
                          "column, leave it out")
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


def _explain_images(detector, data: Path, top: int, out: Path, maps: Path | None, regions: int,
                    patch_size: int | None, method: str, force: bool) -> None:
    """The image branch of 'oddkit explain': the TOP highest-scoring images of DATA, each with its
    regions adding most to the score (boxes in the file's pixels) and, with MAPS, a heat-map PNG
    (:func:`oddkit.image_explanations.explain_images` and :func:`~oddkit.image_explanations.top_regions`)."""
    import numpy as np
    import pandas as pd

    from oddkit.image_explanations import IMAGE_METHODS, default_patch_size, explain_images, top_regions

    if regions < 1:
        raise OddkitError(f"--regions must be at least 1, got {regions}")
    if patch_size is not None and patch_size < 1:
        raise OddkitError(f"--patch-size must be at least 1 pixel, got {patch_size}")
    if method not in IMAGE_METHODS:
        raise OddkitError(f"--method must be {' or '.join(IMAGE_METHODS)}, got {method!r}")
    if maps is not None and maps.exists() and (not maps.is_dir() or (any(maps.iterdir()) and not force)):
        raise OddkitError(f"{maps} is a file; choose another --maps folder" if not maps.is_dir() else
                          f"{maps} already holds files; pass --force to write into it, or choose another --maps folder")
    _, images = _read_for_model(detector, data, None, None, None)
    scores = np.asarray(detector.decision_function(images.X), dtype=np.float64)
    order = np.argsort(-scores, kind="stable")[:top]
    explanation = explain_images(detector, images.X[order], method=method,
                                 patch_size=patch_size or default_patch_size(images.X.shape))
    _, height, width = images.X.shape[1:]
    records = []
    for rank, index in enumerate(order):
        found = top_regions(explanation.maps[rank], explanation.patch_size, regions)
        # Boxes in the file's own pixels: the model's pixels scaled back where the image was resized.
        original = (images.original_sizes[index] if images.original_sizes is not None else (height, width))
        fy, fx = original[0] / height, original[1] / width
        picture = None
        if maps is not None:
            from oddkit.data.images import save_heatmap

            stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(images.names[index]).stem)
            picture = save_heatmap(images.X[index], explanation.maps[rank], maps / f"{rank + 1:03d}-{stem}.png",
                                   boxes=[(r.left, r.top, r.right, r.bottom) for r in found])
        for number, region in enumerate(found, start=1):
            records.append({"image": images.names[index], "row": int(index), "score": scores[index],
                            "label": int(scores[index] >= detector.threshold_), "region": number,
                            "left": int(np.floor(region.left * fx)), "top": int(np.floor(region.top * fy)),
                            "right": int(np.ceil(region.right * fx)), "bottom": int(np.ceil(region.bottom * fy)),
                            "share": region.share, "note": explanation.notes[rank] or "",
                            **({} if picture is None else {"map": str(picture)})})
    _write_table(pd.DataFrame.from_records(records), out)
    if str(out) != "-":
        written = f"; wrote {out}" + ("" if maps is None else f" and {len(order):,} heat-maps in {maps}")
        console.print(f"explained the {len(order):,} highest-scoring of {len(scores):,} images of {data.name} with "
                      f"{type(detector).__name__} ({explanation.method}: {explanation.description}; regions of "
                      f"{explanation.patch_size}x{explanation.patch_size} model pixels){written}",
                      markup=False, highlight=False)
