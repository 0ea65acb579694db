"""The command line: parses, calls the library, prints. Run ``oddkit --help``."""

from __future__ import annotations

import inspect
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table as RichTable

from oddkit.exceptions import OddkitError, OddkitWarning

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="oddkit: learn what normal looks like, score new data, choose a threshold, evaluate. "
                       "When the environment variable ODDKIT_MODEL_KEY is set, every model saved is signed "
                       "with it (HMAC-SHA256) and every model loaded must carry a valid signature.")
console = Console()
errors = Console(stderr=True)

DETECTOR_NAMES = {
    "autoencoder": "AutoEncoderDetector",
    "vae": "VAEDetector",
    "vqvae": "VQVAEDetector",
    "gaussian": "GaussianDetector",
    "pca": "PCADetector",
    "ocsvm": "OneClassSVMDetector",
    "iforest": "IsolationForestDetector",
    "knn": "KNNDetector",
    "default": "EnsembleDetector",
    "classifier": "ClassifierConfidenceDetector",
    "transforms": "TransformationDetector",
    "disentangled": "DisentangledAutoEncoderDetector",
}
CLASS_DETECTORS = {"classifier": "open-set recognition", "disentangled": "a class part and a style part"}
"""The detectors that learn from each training row's class (--class-col), and what they do with it."""
_state = {"debug": False}

LabelCol = Annotated[Optional[str], typer.Option(
    "--label-col", help="Anomaly label column (1 = anomaly, 0 = normal); never a feature. "
                        "Default: 'y' when present.")]
IdCols = Annotated[Optional[list[str]], typer.Option(
    "--id-col", help="Column carried through to the output and never used as a feature (repeatable).")]
ImageSize = Annotated[Optional[str], typer.Option(
    "--image-size", help="Images: resize to SIZE or HEIGHTxWIDTH pixels (default: the model's size).")]


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")] = False):
    _state["debug"] = debug


def _label_col(value: str | None) -> str:
    return "auto" if value is None else value


def _parse_value(text: str):
    """A command-line value: JSON (numbers, null, true, [lists]) or comma lists or a plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if text.lower() == "none":
        return None
    if "," in text:
        return [_parse_value(part) for part in text.split(",")]
    return text


SEQUENCE_PARAMS = {"hidden_sizes", "conv_channels", "members"}
"""Parameters that take a list: one value on the command line (``--hidden-sizes 64``) is a list of one."""


def _param_value(name: str, text: str):
    """A detector parameter from the command line; the detector's own validation judges the value."""
    value = _parse_value(text)
    if name in SEQUENCE_PARAMS and value is not None and not isinstance(value, list):
        value = [value]
    return value


def _detector_class(name: str):
    from oddkit.detectors import DETECTORS

    if name not in DETECTOR_NAMES:
        raise OddkitError(f"unknown detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")
    return DETECTORS[DETECTOR_NAMES[name]]


def _read(path: Path, label_col: str | None, id_cols: list[str] | None, require_label: bool = False):
    from oddkit.data import read_table

    table = read_table(path, label_col=_label_col(label_col), id_cols=tuple(id_cols or ()))
    if require_label and table.y is None:
        raise OddkitError(f"{path} has no anomaly label column; name it with --label-col (1 = anomaly, 0 = normal)")
    return table


def _features_for(detector, frame: pd.DataFrame) -> pd.DataFrame:
    """Put a table's columns in the order the model was trained with (files may reorder them)."""
    names = getattr(detector, "feature_names_in_", None)
    if names is None:
        return frame
    missing = [n for n in names if n not in frame.columns]
    extra = [c for c in frame.columns if c not in set(names)]
    if missing or extra:
        from oddkit.exceptions import ColumnMismatchError

        raise ColumnMismatchError(
            f"the data's columns differ from training: missing {missing}, extra {extra}; "
            "pass extra columns as --id-col or --label-col, or remove them")
    return frame[list(names)]


@app.command()
def fit(
    data: Annotated[Path, typer.Argument(help="Training data: CSV, Parquet, .npy or .npz; or images: a folder "
                                              "(sub-folders = classes) or an .npz of X (n, [C,] H, W).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to save the model in.")],
    detector: Annotated[str, typer.Option(help=f"One of: {', '.join(DETECTOR_NAMES)}.")] = "autoencoder",
    label_col: LabelCol = None,
    id_col: IdCols = None,
    contamination: Annotated[Optional[float], typer.Option(help="Expected anomaly share of the training data.")] = None,
    random_state: Annotated[Optional[int], typer.Option(help="Seed, for detectors that are random.")] = 0,
    impute: Annotated[Optional[str], typer.Option(help="'median' fills NaN/inf instead of failing.")] = None,
    unknown_categories: Annotated[Optional[str], typer.Option(help="'error' (default) or 'ignore'.")] = None,
    column_type: Annotated[Optional[list[str]], typer.Option(
        "--column-type", help="A column's kind as COLUMN=numeric (cells that are not numbers become missing, "
                              "then --impute decides) or COLUMN=categorical (one-hot, even if it looks like "
                              "numbers, dates or ids); repeatable.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Auto-encoder: most training epochs.")] = None,
    hidden_sizes: Annotated[Optional[str], typer.Option(help="Auto-encoder: hidden widths, e.g. 64,32.")] = None,
    latent_dim: Annotated[Optional[int], typer.Option(help="Auto-encoder: code width.")] = None,
    noise: Annotated[Optional[str], typer.Option(help="Auto-encoder: 'gaussian' or 'mask' (de-noising).")] = None,
    device: Annotated[Optional[str], typer.Option(help="Auto-encoder: 'cpu', 'cuda' or 'auto'.")] = None,
    n_threads: Annotated[Optional[int], typer.Option(help="Auto-encoder: torch threads.")] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", help="Any detector parameter as NAME=VALUE (repeatable), e.g. -p nu=0.1.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    image_size: ImageSize = None,
    class_col: Annotated[Optional[str], typer.Option(
        "--class-col", help="Classifier and disentangled: the column holding each normal row's class (never a "
                            "feature); for an .npz of images the array of classes (default 'labels'), for a "
                            "folder its sub-folders.")] = None,
    known_anomalies: Annotated[Optional[Path], typer.Option(
        "--known-anomalies", help="Classifier and auto-encoders: a table or images of anomaly examples, kept "
                                  "apart from DATA (outlier exposure; a margin loss for the auto-encoders).")] = None,
):
    """Train a detector on DATA (mostly normal rows) and save it to --out."""
    cls = _detector_class(detector)
    given = {"contamination": contamination, "random_state": random_state, "impute": impute,
             "unknown_categories": unknown_categories, "epochs": epochs, "latent_dim": latent_dim,
             "hidden_sizes": None if hidden_sizes is None else _param_value("hidden_sizes", hidden_sizes),
             "noise": noise, "device": device, "n_threads": n_threads,
             "column_types": _parse_column_types(column_type)}
    accepted = set(cls._get_param_names())
    params = {k: v for k, v in given.items() if v is not None and k in accepted}
    ignored = [k for k, v in given.items() if v is not None and k not in accepted and k != "random_state"]
    if ignored:
        raise OddkitError(f"{detector} does not take {', '.join('--' + k.replace('_', '-') for k in ignored)}; "
                          f"its parameters are {', '.join(sorted(accepted))}")
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep or name not in accepted:
            raise OddkitError(f"--param {item!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(accepted))}")
        params[name] = _param_value(name, value)
    if "verbose" in accepted:
        params.setdefault("verbose", 0 if quiet else 1)
    from oddkit.data.images import is_image_source

    if known_anomalies is not None and "known_anomalies" not in inspect.signature(cls.fit).parameters:
        raise OddkitError(f"{detector} cannot learn from --known-anomalies; the classifier, autoencoder, vae and "
                          "vqvae detectors can")
    if detector in CLASS_DETECTORS or class_col is not None:
        return _fit_with_classes(detector, params, data, out, class_col, known_anomalies, label_col, id_col,
                                 image_size)
    if is_image_source(data):
        return _fit_images(cls, params, data, out, image_size, known_anomalies)
    table = _read(data, label_col, id_col)
    anomalies = None if known_anomalies is None else _read_known_anomalies(known_anomalies, table.X, label_col, id_col)
    model = cls(**params)
    started = time.perf_counter()
    model.fit(table.X, **({} if anomalies is None else {"known_anomalies": anomalies}))
    _save_model(model, out)
    console.print(f"trained {cls.__name__} on {len(table.X):,} rows x {table.X.shape[1]} columns"
                  f"{_known_note(anomalies)} in {time.perf_counter() - started:.1f} s; threshold "
                  f"{model.threshold_:.6g} ({model.threshold_goal_}); saved to {out}")


def _parse_column_types(items: list[str] | None) -> dict[str, str] | None:
    """--column-type COLUMN=KIND options as the column_types dict (None when none were given)."""
    if not items:
        return None
    kinds = {}
    for item in items:
        name, sep, kind = item.rpartition("=")
        if not sep or not name or kind not in ("numeric", "categorical"):
            raise OddkitError(f"--column-type {item!r}: expected COLUMN=numeric or COLUMN=categorical")
        if kinds.get(name, kind) != kind:
            raise OddkitError(f"--column-type names column {name!r} twice, as {kinds[name]} and as {kind}")
        kinds[name] = kind
    return kinds


def _read_known_anomalies(path: Path, X, label_col: str | None, drop_cols: list[str] | None):
    """Examples of anomalies for --known-anomalies, read like the training data ``X``: images of
    its shape, or a table with its feature columns (put in its order; label and id columns dropped)."""
    from oddkit.data.images import is_image_source, read_images

    if isinstance(X, np.ndarray) and X.ndim == 4:
        return read_images(path, size=X.shape[2:], channels=X.shape[1]).X
    if is_image_source(path):
        raise OddkitError(f"{path} holds images but the training data is a table; pass a table of anomalies")
    frame = _read(path, label_col, None).X
    if not hasattr(X, "columns"):  # an .npy or .npz table has no names: the detector checks the width
        return frame.to_numpy() if hasattr(frame, "to_numpy") else frame
    frame = frame.drop(columns=[c for c in drop_cols or [] if c in frame.columns])
    missing, extra = [c for c in X.columns if c not in frame.columns], [c for c in frame.columns if c not in X.columns]
    if missing or extra:
        raise OddkitError(f"{path} must have the training data's feature columns: missing {missing}, extra {extra}")
    return frame[list(X.columns)]


def _known_note(anomalies) -> str:
    return "" if anomalies is None else f" with {len(anomalies):,} known anomalies"


@app.command()
def score(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit'.")],
    data: Annotated[Path, typer.Argument(help="Rows to score: CSV, Parquet, .npy or .npz; images (folder, .npz) "
                                              "for a model trained on images.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write: id columns, score, label.")] = Path("scores.csv"),
    label_col: LabelCol = None,
    id_col: IdCols = None,
    batch_rows: Annotated[int, typer.Option(help="Rows read and scored at a time.")] = 100_000,
):
    """Score DATA with MODEL: one row per input row with its score and label (1 = anomaly)."""
    from oddkit.data import iter_table_batches

    detector = _load_model(model)
    if _model_image_shape(detector) is not None:
        return _score_images(detector, data, out)
    n_rows = n_flagged = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    for i, batch in enumerate(iter_table_batches(data, batch_rows=batch_rows, label_col=_label_col(label_col),
                                                 id_cols=tuple(id_col or ()))):
        scores = detector.decision_function(_features_for(detector, batch.X))
        labels = (scores >= detector.threshold_).astype(np.int64)
        frame = batch.ids.reset_index(drop=True) if batch.ids is not None else pd.DataFrame(index=range(len(scores)))
        frame = frame.assign(score=scores, label=labels)
        if hasattr(detector, "predict_class"):  # a classifier detector gives the known class too
            frame = frame.assign(**{"class": detector.predict_class(_features_for(detector, batch.X))})
        frame.to_csv(out, mode="w" if i == 0 else "a", header=i == 0, index=False)
        n_rows, n_flagged = n_rows + len(scores), n_flagged + int(labels.sum())
    console.print(f"scored {n_rows:,} rows: {n_flagged:,} flagged as anomalies "
                  f"(threshold {detector.threshold_:.6g}, {detector.threshold_goal_}); wrote {out}")


def _print_metrics(title: str, rows: list[tuple[str, object]]) -> None:
    console.print(title)
    table = RichTable()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit'.")],
    data: Annotated[Path, typer.Argument(help="Labelled test data (label column: 1 = anomaly).")],
    label_col: LabelCol = None,
    id_col: IdCols = None,
    plots: Annotated[Optional[Path], typer.Option(help="Folder for roc.png and pr.png (default: beside the model).")] = None,
):
    """Evaluate MODEL on labelled DATA at its stored threshold: AUCs, precision, recall, F1, FPR."""
    from oddkit.metrics import evaluate as evaluate_scores
    from oddkit.report.plots import plot_curves

    detector = _load_model(model)
    y, scores = _labelled_scores(detector, data, label_col, id_col)
    report = evaluate_scores(y, scores, threshold=detector.threshold_)
    _print_metrics(f"{type(detector).__name__} on {data.name} (threshold {detector.threshold_:.6g}, "
                   f"{detector.threshold_goal_})", report.as_rows())
    folder = plots if plots is not None else model.parent / f"{model.name}-evaluation"
    written = plot_curves({model.name: (y, scores)}, folder, thresholds={model.name: detector.threshold_})
    console.print("curves: " + ", ".join(str(p) for p in written.values()))


@app.command()
def threshold(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit'.")],
    dev: Annotated[Path, typer.Argument(help="Labelled dev data (label column: 1 = anomaly).")],
    goal: Annotated[str, typer.Option(help="f1 | fpr:0.01 | recall:0.95 | cost:FALSE_ALARM,MISS[,ANOMALY_RATE]")] = "f1",
    label_col: LabelCol = None,
    id_col: IdCols = None,
):
    """Choose MODEL's threshold on labelled DEV data for a goal, and store it in the model."""
    from oddkit.threshold import choose_threshold

    detector = _load_model(model)
    y, scores = _labelled_scores(detector, dev, label_col, id_col)
    choice = choose_threshold(scores, y, goal)
    detector.set_threshold(choice)
    _save_model(detector, model)
    rows = [(k, v) for k, v in choice.to_dict().items() if v not in (None, "") and k not in ("goal", "note", "feasible")]
    _print_metrics(f"threshold for {choice.goal} on {dev.name}, stored in {model}", rows)
    if not choice.feasible or choice.note:
        errors.print(f"warning: {choice.note or f'no threshold meets {choice.goal} on the dev data'}")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option(help="Where the model, table and plots go.")] = Path("oddkit-demo"),
    goal: Annotated[str, typer.Option(help="Threshold goal on the dev split.")] = "recall:0.95",
    random_state: Annotated[int, typer.Option(help="Seed of the split and the detectors.")] = 0,
):
    """Cancer detection on scikit-learn's breast-cancer data, every detector side by side.

    Detectors train on benign cases only, a threshold is chosen on a dev split, test metrics follow.
    """
    from oddkit.demo import run_demo

    started = time.perf_counter()
    console.print("Wisconsin diagnostic breast cancer: detectors learn from benign cases only; "
                  f"threshold chosen on a dev split for {goal}; metrics on the test split.")
    table, paths = run_demo(out_dir, goal=goal, random_state=random_state)
    rich_table = RichTable(title="test split (threshold chosen on dev)")
    rich_table.add_column("detector")
    for column in table.columns:
        rich_table.add_column(column, justify="right")
    for name, row in table.iterrows():
        rich_table.add_row(name, *(f"{v:.3f}" for v in row))
    console.print(rich_table)
    for name, path in paths.items():
        console.print(f"{name}: {path}")
    console.print(f"done in {time.perf_counter() - started:.1f} s")


# -- codes: embed, generate, compress, decompress (and image data) ---------------------------------

def _image_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    height, sep, width = text.lower().partition("x")
    try:
        return (int(height), int(width)) if sep else (int(height), int(height))
    except ValueError:
        raise OddkitError(f"--image-size {text!r}: expected a number of pixels, e.g. 28 or 64x48") from None


def _model_image_shape(detector) -> tuple[int, ...] | None:
    """(C, H, W) of the images a model was trained on, or None for a table model."""
    shape = getattr(detector, "image_shape_", None)
    return None if shape is None else tuple(int(v) for v in shape)


def _read_for_model(detector, data: Path, label_col, id_col, image_size: str | None):
    """DATA for a fitted model: ("images", ImageSet) or ("table", Table), features ready for it."""
    from oddkit.data.images import is_image_source, read_images

    shape = _model_image_shape(detector)
    if is_image_source(data):
        if shape is None and hasattr(detector, "feature_names_in_"):
            raise OddkitError(f"{data} holds images but the model was trained on a table; pass a table file")
        size = _image_size(image_size) or (shape[1:] if shape is not None else None)
        images = read_images(data, size=size, channels=shape[0] if shape is not None else None)
        return "images", images
    if shape is not None:
        raise OddkitError(f"the model was trained on images of shape {shape}; pass an image folder or an .npz of images")
    table = _read(data, label_col, id_col)
    table.X = _features_for(detector, table.X)
    return "table", table


def _labelled_scores(detector, data: Path, label_col: str | None, id_col: list[str] | None):
    """Anomaly labels (1 = anomaly) and the model's scores of labelled DATA: a table with a label
    column; for a model trained on images, an .npz with the labels in ``y`` (or the array named by
    --label-col), or a folder with the sub-folders ``normal`` and ``anomaly``."""
    shape = _model_image_shape(detector)
    if shape is None:
        table = _read(data, label_col, id_col, require_label=True)
        return table.y, detector.decision_function(_features_for(detector, table.X))
    from oddkit.data.images import is_image_source, read_images

    if not is_image_source(data):
        raise OddkitError(f"the model was trained on images of shape {shape}; pass an image folder or an .npz of images")
    key = label_col or "y"
    images = read_images(data, size=shape[1:], channels=shape[0], labels_key=key)
    if images.class_names:  # a folder: its sub-folders say which images are anomalies
        if sorted(images.class_names) != ["anomaly", "normal"]:
            raise OddkitError(f"{data} must have exactly the sub-folders 'normal' and 'anomaly' to be evaluated; "
                              f"it has {images.class_names}")
        y = (np.asarray(images.class_names)[images.labels] == "anomaly").astype(np.int64)
    elif images.labels is None:
        raise OddkitError(f"{data} holds no anomaly labels: save them in the .npz as {key!r} (1 = anomaly), "
                          "or name the array with --label-col")
    else:
        y = np.asarray(images.labels)
        if not np.isin(y, (0, 1)).all():
            raise OddkitError(f"the labels {key!r} in {data} must be 0 (normal) or 1 (anomaly)")
    return y.astype(np.int64), detector.decision_function(images.X)


def _write_table(frame: pd.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame.to_parquet(out, index=False)
    elif suffix == ".csv":
        frame.to_csv(out, index=False)
    elif suffix == ".npy":
        np.save(out, frame.to_numpy(dtype=np.float64))
    else:
        raise OddkitError(f"cannot write a table to {out}: use a .csv, .parquet or .npy file name")


def _is_image_stack(data) -> bool:
    return isinstance(data, np.ndarray) and data.ndim in (3, 4)


def _write_decoded(detector, data, out: Path) -> Path:
    """Write what a model decoded: images as a grid/npz/folder, rows as a table. Returns the path written."""
    from oddkit.data.images import write_images

    if _is_image_stack(data):
        return write_images(data, out)
    _write_table(data if isinstance(data, pd.DataFrame) else _named_frame(detector, data), out)
    return out


def _named_frame(detector, rows) -> pd.DataFrame:
    """Rows as a table with the model's column names (x0, x1, ... when it was trained on an array)."""
    rows = np.asarray(rows)
    names = getattr(detector, "feature_names_in_", None)
    columns = [str(c) for c in names] if names is not None and len(names) == rows.shape[1] else \
        [f"x{i}" for i in range(rows.shape[1])]
    return pd.DataFrame(rows, columns=columns)


def _require_codes(detector, model: Path, verb: str) -> None:
    """Refuse a model without a code to compress to (a Gaussian, a forest, ...) with a one-line error."""
    if not (hasattr(detector, "transform") and hasattr(detector, "inverse_transform")):
        raise OddkitError(f"{model} holds a {type(detector).__name__}, which has no code to {verb} with; fit an "
                          "auto-encoder (--detector autoencoder, vae or vqvae)")


def _load_model(model: Path):
    """Load MODEL, verifying its signature with the key in ODDKIT_MODEL_KEY when that is set."""
    from oddkit.persist import key_from_environment, load

    return load(model, key=key_from_environment())


def _save_model(detector, folder: Path) -> None:
    """Save, signed with the key in ODDKIT_MODEL_KEY when that is set."""
    from oddkit.persist import key_from_environment

    detector.save(folder, key=key_from_environment())


@app.command()
def embed(
    model: Annotated[Path, typer.Argument(help="An auto-encoder model folder written by 'oddkit fit'.")],
    data: Annotated[Path, typer.Argument(help="A table (CSV, Parquet, .npy, .npz) or images (folder, .npz).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Codes to write: .parquet, .csv, .npy or .npz.")]
    = Path("embedding.parquet"),
    label_col: LabelCol = None,
    id_col: IdCols = None,
    image_size: ImageSize = None,
):
    """Write the auto-encoder's code (embedding) of every row or image of DATA: columns z0, z1, ...

    Id columns (tables), or the image name and class (images), come first.
    """
    detector = _load_model(model)
    if not hasattr(detector, "transform"):
        raise OddkitError(f"{model} holds a {type(detector).__name__}, which has no embedding; "
                          "fit an auto-encoder (--detector autoencoder)")
    kind, source = _read_for_model(detector, data, label_col, id_col, image_size)
    codes = np.asarray(detector.transform(source.X), dtype=np.float32).reshape(len(source.X), -1)
    suffix = out.suffix.lower()
    if suffix in (".npy", ".npz"):
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".npy":
            np.save(out, codes)
        else:
            labels = getattr(source, "labels", None) if kind == "images" else source.y
            np.savez(out, X=codes, **({} if labels is None else {"labels": labels}))
    else:
        frame = pd.DataFrame(codes, columns=[f"z{i}" for i in range(codes.shape[1])])
        if kind == "images":
            front = {"image": source.names}
            if source.labels is not None:
                front["class"] = ([source.class_names[i] for i in source.labels] if source.class_names
                                  and len(source.class_names) > int(source.labels.max()) else source.labels)
            frame = pd.concat([pd.DataFrame(front), frame], axis=1)
        elif source.ids is not None:
            frame = pd.concat([source.ids.reset_index(drop=True), frame], axis=1)
        _write_table(frame, out)
    console.print(f"embedded {len(codes):,} {'images' if kind == 'images' else 'rows'} into "
                  f"{codes.shape[1]} dimensions; wrote {out}")


@app.command()
def generate(
    model: Annotated[Path, typer.Argument(help="A generative model folder (a VAE) written by 'oddkit fit'.")],
    n: Annotated[int, typer.Option("-n", "--n-samples", help="How many samples.")] = 64,
    out: Annotated[Path, typer.Option("--out", "-o", help="Images: a .png grid, an .npz or a folder; "
                                                          "tables: .csv, .parquet or .npy.")] = Path("samples.png"),
    random_state: Annotated[Optional[int], typer.Option(help="Seed of the samples.")] = 0,
):
    """Draw N new examples from a generative model: an image grid (PNG) or a table."""
    detector = _load_model(model)
    if not hasattr(detector, "generate"):
        raise OddkitError(f"{model} holds a {type(detector).__name__}, which cannot generate; "
                          "fit a variational auto-encoder (--detector vae)")
    if n < 1:
        raise OddkitError(f"-n must be at least 1, got {n}")
    samples = detector.generate(n, random_state=random_state)
    written = _write_decoded(detector, samples, out)
    console.print(f"generated {n:,} samples with {type(detector).__name__}; wrote {written}")


@app.command()
def compress(
    model: Annotated[Path, typer.Argument(help="An auto-encoder model folder written by 'oddkit fit'.")],
    data: Annotated[Path, typer.Argument(help="A table (CSV, Parquet, .npy, .npz) or images (folder, .npz).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The compressed file to write.")] = Path("data.oddz"),
    bits: Annotated[int, typer.Option(help="Bits per code dimension, 1 to 16 (VQ models: set by the codebook).")] = 8,
    label_col: LabelCol = None,
    id_col: IdCols = None,
    image_size: ImageSize = None,
):
    """Compress DATA to the model's quantised codes (lossy); 'oddkit decompress' reads it back.

    Only the features are stored (not ids or labels); decompressing needs the same model folder.
    """
    from oddkit.compress import compress as compress_codes
    from oddkit.compress import read_header

    detector = _load_model(model)
    _require_codes(detector, model, "compress")
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
def decompress(
    model: Annotated[Path, typer.Argument(help="The model folder that compressed FILE.")],
    file: Annotated[Path, typer.Argument(help="A file written by 'oddkit compress'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Images: a folder of PNGs, an .npz or a .png grid; "
                                                          "tables: .csv, .parquet or .npy.")],
):
    """Rebuild the data in FILE with MODEL (the model that compressed it)."""
    from oddkit.compress import decompress as decompress_codes

    detector = _load_model(model)
    _require_codes(detector, model, "decompress")
    decoded = decompress_codes(detector, file.read_bytes())
    written = _write_decoded(detector, decoded, out)
    kind = "images" if _is_image_stack(decoded) else "rows"
    console.print(f"decompressed {len(decoded):,} {kind}; wrote {written}")


@app.command()
def swap(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit --detector disentangled'.")],
    class_data: Annotated[Path, typer.Argument(help="Rows or images that give their class part.")],
    style_data: Annotated[Path, typer.Argument(help="Rows or images that give their style part.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Images: a .png grid, an .npz or a folder; "
                                                          "tables: .csv, .parquet or .npy.")] = Path("swapped.png"),
    label_col: LabelCol = None,
    id_col: IdCols = None,
    image_size: ImageSize = None,
):
    """Decode the class of each row of CLASS_DATA in the style of the same row of STYLE_DATA.

    Both must hold as many rows (or images), or one of them a single one, which is then paired with
    every row of the other: one digit in many handwritings, or many digits in one.
    """
    detector = _load_model(model)
    if not hasattr(detector, "swap"):
        raise OddkitError(f"{model} holds a {type(detector).__name__}, whose code has no class and style parts; "
                          "fit one with --detector disentangled --class-col COLUMN")
    _, class_source = _read_for_model(detector, class_data, label_col, id_col, image_size)
    _, style_source = _read_for_model(detector, style_data, label_col, id_col, image_size)
    swapped = detector.swap(class_source.X, style_source.X)
    written = _write_decoded(detector, swapped, out)
    console.print(f"swapped {len(swapped):,} {'images' if _is_image_stack(swapped) else 'rows'}: the class parts of "
                  f"{class_data} in the styles of {style_data}; wrote {written}")


def _score_images(detector, data: Path, out: Path) -> None:
    """The image branch of 'oddkit score': one CSV row per image (its name), score and label."""
    _, images = _read_for_model(detector, data, None, None, None)
    scores = detector.decision_function(images.X)
    labels = (scores >= detector.threshold_).astype(np.int64)
    frame = pd.DataFrame({"image": images.names, "score": scores, "label": labels})
    if hasattr(detector, "predict_class"):
        frame["class"] = detector.predict_class(images.X)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    console.print(f"scored {len(frame):,} images: {int(labels.sum()):,} flagged as anomalies "
                  f"(threshold {detector.threshold_:.6g}, {detector.threshold_goal_}); wrote {out}")


def _fit_images(cls, params: dict, data: Path, out: Path, image_size: str | None, known_anomalies: Path | None) -> None:
    """The image branch of 'oddkit fit': read a folder or .npz of images and fit on (n, C, H, W)."""
    from oddkit.data.images import read_images

    images = read_images(data, size=_image_size(image_size))
    anomalies = None if known_anomalies is None else _read_known_anomalies(known_anomalies, images.X, None, None)
    model = cls(**params)
    started = time.perf_counter()
    model.fit(images.X, **({} if anomalies is None else {"known_anomalies": anomalies}))
    _save_model(model, out)
    console.print(f"trained {cls.__name__} on {len(images):,} images of {'x'.join(map(str, images.X.shape[1:]))} "
                  f"(channels x height x width){_known_note(anomalies)} in {time.perf_counter() - started:.1f} s; "
                  f"threshold {model.threshold_:.6g} ({model.threshold_goal_}); saved to {out}")


def _fit_with_classes(detector: str, params: dict, data: Path, out: Path, class_col: str | None,
                      known_anomalies: Path | None, label_col: str | None, id_col: list[str] | None,
                      image_size: str | None) -> None:
    """The branch of 'oddkit fit' for detectors that learn from classes: normal data with its classes
    (--class-col), and for the classifier optionally examples of anomalies (--known-anomalies) for
    outlier exposure."""
    from oddkit.data.images import is_image_source, read_images

    if detector not in CLASS_DETECTORS:
        raise OddkitError("--class-col is for " + " and ".join(
            f"--detector {name} ({use})" for name, use in CLASS_DETECTORS.items()))
    cls = _detector_class(detector)
    if class_col is not None and class_col == label_col:
        raise OddkitError(f"--class-col and --label-col both name {class_col!r}: classes of normal data and "
                          "anomaly labels are different columns")
    images = is_image_source(data)
    if images:
        read = read_images(data, size=_image_size(image_size), labels_key=class_col or "labels")
        if read.labels is None:
            raise OddkitError(f"{data} holds no classes: save them in the .npz as {class_col or 'labels'!r} "
                              "(name the array with --class-col), or use one sub-folder per class")
        X = read.X
        classes = np.asarray(read.class_names, dtype=object)[read.labels] if read.class_names else read.labels
        shape = "x".join(map(str, X.shape[1:]))
        what = f"{len(X):,} images of {shape} (channels x height x width)"
    else:
        if class_col is None:
            raise OddkitError(f"--detector {detector} needs --class-col: the column holding each training row's class")
        table = _read(data, label_col, [*(id_col or []), class_col])
        X, classes = table.X, table.ids[class_col].to_numpy()
        what = f"{len(X):,} rows x {X.shape[1]} columns"
    anomalies = None if known_anomalies is None else _read_known_anomalies(
        known_anomalies, X, label_col, [*(id_col or []), *([class_col] if class_col else [])])
    model = cls(**params)
    started = time.perf_counter()
    model.fit(X, classes, **({} if anomalies is None else {"known_anomalies": anomalies}))
    _save_model(model, out)
    exposure = "" if anomalies is None else f" with {len(anomalies):,} known anomalies (outlier exposure)"
    dev_accuracy = getattr(model, "dev_accuracy_", None)
    accuracy = "" if dev_accuracy is None else f"; held-out class accuracy {dev_accuracy:.4f}"
    console.print(f"trained {cls.__name__} on {what}, {len(model.classes_)} classes{exposure}, in "
                  f"{time.perf_counter() - started:.1f} s{accuracy}; threshold {model.threshold_:.6g} "
                  f"({model.threshold_goal_}); saved to {out}")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """oddkit's own warnings as one line on stderr, ``warning: ...``; others as Python shows them."""
    if issubclass(category, OddkitWarning) and not _state["debug"]:
        errors.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)
    else:
        (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))


def main() -> None:
    """Entry point: run the app; turn oddkit's errors into one line on stderr and exit code 2."""
    warnings.showwarning = _show_warning
    try:
        app(standalone_mode=False)
    except MemoryError as exc:
        if _state["debug"]:
            raise
        errors.print(f"error: not enough memory ({exc or 'MemoryError'}); use less data, a smaller --image-size "
                     "or smaller --batch-rows", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except (OddkitError, OSError) as exc:
        # OSError: a file that is missing or unreadable is the user's to fix, not a bug to trace.
        if _state["debug"]:
            raise
        errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except Exception as exc:  # click's usage errors and aborts
        try:
            from click import ClickException
            from click.exceptions import Abort
        except ImportError:  # typer >= 0.26 bundles its own click (typer._click), without Abort
            from typer._click.exceptions import ClickException

            Abort = ()
        if isinstance(exc, ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if Abort and isinstance(exc, Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
