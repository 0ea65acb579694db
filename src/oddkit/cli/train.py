"""'oddkit fit': train a detector on a table, on images or on recordings and save it."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from oddkit.cli._common import (CLASS_DETECTORS, DETECTOR_NAMES, TEXT_DETECTORS, Force, IdCols, ImageSize, LabelCol,
                                Quiet, TextCol,
                                _check_model_folder, _detector_class, _image_size, _label_col, _param_value, _read,
                               _save_model,
                                _thread_limit, app, console)
from oddkit.exceptions import OddkitError


@app.command()
def fit(
    data: Annotated[Path, typer.Argument(help="Training data: CSV, Parquet, .npy or .npz; or images: a folder "
                                              "(sub-folders = classes) or an .npz of X (n, [C,] H, W); or "
                                              "recordings: a .wav/.flac file, a folder of them or an .npz of "
                                              "audio.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to save the model in.")],
    detector: Annotated[str, typer.Option(help=f"One of: {', '.join(DETECTOR_NAMES)}.")] = "autoencoder",
    label_col: LabelCol = None,
    id_col: IdCols = None,
    text_col: TextCol = None,
    contamination: Annotated[Optional[float], typer.Option(help="Expected anomaly share of the training data.")] = None,
    random_state: Annotated[Optional[int], typer.Option(help="Seed, for detectors that are random.")] = 0,
    impute: Annotated[Optional[str], typer.Option(
        help="'median' fills NaN (and infinities a column held in training) instead of failing; another "
             "infinity scores as out of range.")] = None,
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
    n_threads: Annotated[Optional[int], typer.Option(
        help="Threads for training and for the model's scoring where it keeps them (any detector: torch, "
             "BLAS/OpenMP and scikit-learn's n_jobs).")] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", help="Any detector parameter as NAME=VALUE (repeatable), e.g. -p nu=0.1.")] = None,
    quiet: Quiet = False,
    keep_anomalies: Annotated[bool, typer.Option(
        "--keep-anomalies", help="With a label column in DATA, train on every row; by default the rows "
                                 "labelled 1 (anomalies) are left out and counted.")] = False,
    force: Force = False,
    image_size: ImageSize = None,
    image_channels: Annotated[Optional[int], typer.Option(
        "--image-channels", help="Images: convert every image to 1 (grayscale) or 3 (RGB) channels, for a "
                                 "folder that mixes the two (default: the images' own mode).")] = None,
    class_col: Annotated[Optional[str], typer.Option(
        "--class-col", help="Classifier and disentangled: the column holding each normal row's class (never a "
                            "feature); for an .npz of images the array of classes (default 'labels'), for a "
                            "folder its sub-folders.")] = None,
    known_anomalies: Annotated[Optional[Path], typer.Option(
        "--known-anomalies", help="Classifier and auto-encoders: a table or images of anomaly examples, kept "
                                  "apart from DATA (outlier exposure; a margin loss for the auto-encoders); "
                                  "'generate': pseudo-anomalies made from DATA (see 'oddkit generate').")] = None,
    stream: Annotated[bool, typer.Option(
        "--stream", help="Auto-encoders: train on a Parquet or CSV file or folder larger than memory, reading "
                         "it in batches (memory bounded whatever its size; see "
                         "AutoEncoderDetector.fit_stream).")] = False,
    audio_features: Annotated[Optional[str], typer.Option(
        "--audio-features", help="Recordings: what each recording becomes before the detector sees it: 'mfcc' "
                                 "(the default: mean and spread of 20 MFCCs), 'stats' (per mel band: mean, "
                                 "spread and frame-to-frame change, and the duration) or 'patch' (the "
                                 "log-mel spectrogram resized to 32 frames, which keeps the order of the "
                                 "sounds). Saved with the model; 'oddkit info' shows it.")] = None,
    audio_bandwidth: Annotated[Optional[float], typer.Option(
        "--audio-bandwidth", help="Recordings (and --detector voice): the share of the Nyquist frequency analysed, "
                                  "in (0, 1]. Default 1 (the whole band, the most accurate at the model's own "
                                  "rate); 0.9 leaves out the band that resampling alters, so that recordings made "
                                  "at other rates score alike (see the audio guide).")] = None,
):
    """Train a detector on DATA (mostly normal rows) and save it to --out (a new folder, or --force).

    When DATA has an anomaly label column (--label-col, or 'y'), only its normal rows (0) are used unless
    --keep-anomalies. With --stream, DATA may be a folder of Parquet (or CSV) files of any size.
    """
    detector = _detector_for_texts(detector, data, text_col)
    cls = _detector_class(detector)
    if n_threads is not None and n_threads < 1:
        raise OddkitError(f"--n-threads must be at least 1, got {n_threads}")
    _check_model_folder(out, force)
    given = {"contamination": contamination, "random_state": random_state, "impute": impute,
             "unknown_categories": unknown_categories, "epochs": epochs, "latent_dim": latent_dim,
             "hidden_sizes": None if hidden_sizes is None else _param_value("hidden_sizes", hidden_sizes),
             "noise": noise, "device": device,
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
    if n_threads is not None:
        for name in ("n_threads", "n_jobs"):  # the detector keeps them for scoring too
            if name in accepted:
                params.setdefault(name, n_threads)
    from oddkit.data.images import is_image_source

    if known_anomalies is not None and "known_anomalies" not in inspect.signature(cls.fit).parameters:
        raise OddkitError(f"{detector} cannot learn from --known-anomalies; the classifier, autoencoder, vae and "
                          "vqvae detectors can")
    if detector in TEXT_DETECTORS:
        text_col = params["text_col"] = text_col or "text"
    elif text_col is not None:
        raise OddkitError(f"--text-col is for the text detectors (--detector {', '.join(sorted(TEXT_DETECTORS))}); "
                          f"{detector} learns from a table's columns")
    if detector == "voice":  # voice conversion trains on speech (oddkit.cli.voice)
        from oddkit.cli.audio import check_audio_bandwidth
        from oddkit.cli.voice import fit_voice

        if audio_features is not None:
            raise OddkitError("--detector voice reads log-mel frames of its own; leave --audio-features out (it "
                              "picks the features of the other detectors trained on recordings)")
        return fit_voice(cls, params, data, out, n_threads, force, check_audio_bandwidth(audio_bandwidth))
    from oddkit.cli.audio import check_audio_bandwidth, check_audio_features, fit_recordings, is_recordings

    if is_recordings(data):
        unsupported = [flag for flag, value in (("--stream", stream), ("--known-anomalies", known_anomalies),
                                                ("--class-col", class_col), ("--image-size", image_size),
                                                ("--image-channels", image_channels),
                                                ("--id-col", id_col)) if value]
        return fit_recordings(cls, params, data, out, label_col, keep_anomalies, n_threads, force, unsupported,
                              check_audio_features(audio_features), check_audio_bandwidth(audio_bandwidth))
    for flag, value in (("--audio-features", audio_features), ("--audio-bandwidth", audio_bandwidth)):
        if value is not None:
            raise OddkitError(f"{flag} sets the features of recordings, and {data} holds none (a .wav/.flac file, a "
                              "folder of them or an .npz of audio); leave it out")
    if image_channels is not None and not is_image_source(data):
        raise OddkitError(f"--image-channels converts images, and {data} holds none (a folder or .npz of images); "
                          "leave it out")
    if stream:
        return _fit_stream(cls, params, data, out, label_col, id_col, keep_anomalies, known_anomalies, n_threads, force)
    if detector in CLASS_DETECTORS or class_col is not None:
        return _fit_with_classes(detector, params, data, out, class_col, known_anomalies, label_col, id_col,
                                 image_size, image_channels, n_threads, force)
    if is_image_source(data):
        return _fit_images(cls, params, data, out, image_size, image_channels, known_anomalies, n_threads, force)
    table = _read(data, label_col, id_col, text_col=text_col)
    X, left_out = table.X, ""
    if table.y is not None and not keep_anomalies:
        normal = table.y == 0
        X = table.X[normal]
        if not normal.all():
            left_out = (f"; left out the {int((~normal).sum()):,} rows labelled anomalies (pass --keep-anomalies "
                        "to train on them too)")
        if not len(X):
            raise OddkitError(f"every row of {data} is labelled an anomaly; pass --keep-anomalies to train on them, "
                              "or name the right --label-col")
    anomalies = None if known_anomalies is None else _read_known_anomalies(known_anomalies, table.X, label_col, id_col)
    model = cls(**params)
    started = time.perf_counter()
    with _thread_limit(n_threads):
        model.fit(X, **({} if anomalies is None else {"known_anomalies": anomalies}))
    _save_model(model, out, replace=force)
    console.print(f"trained {cls.__name__} on {len(X):,} rows x {X.shape[1]} columns{left_out}"
                  f"{_known_note(anomalies)} in {time.perf_counter() - started:.1f} s; threshold "
                  f"{model.threshold_:.6g} ({model.threshold_goal_}); saved to {out}")


TEXT_SUFFIXES = (".tsv", ".tsv.gz", ".txt")
"""Files 'oddkit fit' reads as messages, never as a table (the table readers take CSV, Parquet and .npy)."""


def _detector_for_texts(detector: str, data: Path, text_col: str | None) -> str:
    """The detector 'oddkit fit' trains: the text auto-encoder where the auto-encoder or the default was asked
    for (the default --detector) on messages (a .tsv/.txt file, or --text-col naming a column of them), as
    the image default is built for images; a table detector asked for on a file of messages is refused."""
    holds_texts = data.is_file() and data.name.lower().endswith(TEXT_SUFFIXES)
    if detector in TEXT_DETECTORS or not (holds_texts or text_col is not None):
        return detector
    if detector in ("autoencoder", "default"):
        return "text"
    if text_col is None:
        raise OddkitError(f"{data} holds messages (a {data.suffix} file): train a text detector on it (--detector "
                          f"{', '.join(sorted(TEXT_DETECTORS))}); {detector} learns from a table's columns")
    return detector

def _fit_stream(cls, params: dict, data: Path, out: Path, label_col: str | None, id_col: list[str] | None,
                keep_anomalies: bool, known_anomalies: Path | None, n_threads: int | None, force: bool) -> None:
    """'oddkit fit --stream': train an auto-encoder on a file or folder read a batch at a time."""
    from oddkit.data.stream import TableSource
    from oddkit.detectors.autoencoder import AutoEncoderDetector

    if not issubclass(cls, AutoEncoderDetector) or cls.__name__ == "DisentangledAutoEncoderDetector":
        raise OddkitError("--stream trains the autoencoder, vae and vqvae detectors; fit other detectors in memory")
    if known_anomalies is not None:
        raise OddkitError("--stream cannot be combined with --known-anomalies; fit in memory to use them")
    source = TableSource(data, label_col=_label_col(label_col), id_cols=tuple(id_col or ()),
                         keep_anomalies=keep_anomalies)
    model = cls(**params)
    started = time.perf_counter()
    with _thread_limit(n_threads):
        model.fit_stream(source)
    _save_model(model, out, replace=force)
    info = model.stream_info_
    console.print(f"trained {cls.__name__} streamed on {info['rows']:,} rows x {model.n_features_in_} columns "
                  f"({info['passes']} passes, at most {info['max_rows_read_at_once']:,} rows read at once) in "
                  f"{time.perf_counter() - started:.1f} s; threshold {model.threshold_:.6g} ({model.threshold_goal_}, "
                  f"from {info['score_sample_rows']:,} sampled training scores); saved to {out}")


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
    import numpy as np

    from oddkit.data.images import is_image_source, read_images

    if str(path) == "generate" and not path.exists():
        return "generate"
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
    if isinstance(anomalies, str):
        return " with generated pseudo-anomalies"
    return "" if anomalies is None else f" with {len(anomalies):,} known anomalies"


def _image_channels(channels: int | None) -> int | None:
    if channels not in (None, 1, 3):
        raise OddkitError(f"--image-channels {channels}: choose 1 (grayscale) or 3 (RGB)")
    return channels


def _fit_images(cls, params: dict, data: Path, out: Path, image_size: str | None, image_channels: int | None,
                known_anomalies: Path | None, n_threads: int | None, force: bool) -> None:
    """The image branch of 'oddkit fit': read a folder or .npz of images and fit on (n, C, H, W)."""
    from oddkit.data.images import read_images

    images = read_images(data, size=_image_size(image_size), channels=_image_channels(image_channels))
    anomalies = None if known_anomalies is None else _read_known_anomalies(known_anomalies, images.X, None, None)
    model = cls(**params)
    started = time.perf_counter()
    with _thread_limit(n_threads):
        model.fit(images.X, **({} if anomalies is None else {"known_anomalies": anomalies}))
    _save_model(model, out, replace=force)
    console.print(f"trained {cls.__name__} on {len(images):,} images of {'x'.join(map(str, images.X.shape[1:]))} "
                  f"(channels x height x width){_known_note(anomalies)} in {time.perf_counter() - started:.1f} s; "
                  f"threshold {model.threshold_:.6g} ({model.threshold_goal_}); saved to {out}")


def _fit_with_classes(detector: str, params: dict, data: Path, out: Path, class_col: str | None,
                      known_anomalies: Path | None, label_col: str | None, id_col: list[str] | None,
                      image_size: str | None, image_channels: int | None, n_threads: int | None,
                      force: bool) -> None:
    """The branch of 'oddkit fit' for detectors that learn from classes: normal data with its classes
    (--class-col), and for the classifier optionally examples of anomalies (--known-anomalies) for
    outlier exposure."""
    import numpy as np

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
        read = read_images(data, size=_image_size(image_size), channels=_image_channels(image_channels),
                           labels_key=class_col or "labels")
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
    with _thread_limit(n_threads):
        model.fit(X, classes, **({} if anomalies is None else {"known_anomalies": anomalies}))
    _save_model(model, out, replace=force)
    exposure = "" if anomalies is None else f"{_known_note(anomalies)} (outlier exposure)"
    dev_accuracy = getattr(model, "dev_accuracy_", None)
    accuracy = "" if dev_accuracy is None else f"; held-out class accuracy {dev_accuracy:.4f}"
    console.print(f"trained {cls.__name__} on {what}, {len(model.classes_)} classes{exposure}, in "
                  f"{time.perf_counter() - started:.1f} s{accuracy}; threshold {model.threshold_:.6g} "
                  f"({model.threshold_goal_}); saved to {out}")
