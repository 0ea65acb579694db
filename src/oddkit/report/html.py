"""One self-contained HTML report on a detector's scores of a data set.

The report is rendered from the Jinja2 templates in ``oddkit/report/templates`` with every
string escaped; plots are inline base64 PNGs and the CSS is inline, and a Content-Security-Policy
forbids fetching anything, so the file opens offline and can be mailed as it is.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import io
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from oddkit.exceptions import DataError
from oddkit.model_input import fitted_members

__all__ = ["build_report", "sha256_of_file", "write_report"]

_TOP_COLUMNS = 5
"""Columns drawn per explained anomaly (the largest shares)."""
_MAX_SUMMARY_COLUMNS = 50
"""Rows of the data summary's column table; one-hot groups count as one row, the rest are counted."""
_MAX_GROUPS = 60
_HISTOGRAM_QUANTILE = 0.99
"""The histogram's axis ends near this quantile of the scores (or the threshold, if higher) when
the highest scores lie so far beyond it that drawing them would squash every other bar."""
_LOG_AXIS_RATIO = 100.0
"""The histogram's axis is logarithmic when all scores are positive and the highest drawn is at
least this many times the lowest."""
_SAME_SCORE = 1e-6
"""Relative difference below which two scores count as the same for the top anomalies' list (the
report shows six significant digits; float32 models differ in the last bits between rows)."""
_SHOWN_DUPLICATE_IDS = 3
"""Row ids listed for a top anomaly that occurs several times in the data."""
_THUMBNAIL_SIDE = 96
"""Side, in pixels, that each top image and its heat-map are drawn at in the report: small images are
enlarged by a whole factor to at least this (each pixel a visible square), large ones shrunk to it, so
that twenty of them keep the report small."""


def sha256_of_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, as hex (e.g. the training file, for the model card).

    Parameters
    ----------
    path : str or path-like
        The file to hash.
    chunk_size : int, default 1 MiB
        Bytes read at a time.

    Returns
    -------
    str
        64 hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(title: str, xlabel: str, ylabel: str, *, size=(6.0, 4.6)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def precision_recall_at_prevalence(y: np.ndarray, scores: np.ndarray, prevalence: float) -> tuple[np.ndarray, np.ndarray]:
    """The precision-recall curve re-weighted to a stated anomaly rate.

    Every threshold's recall and false-positive rate are rates within a class, so they hold at any
    anomaly rate ``p``; its precision there is ``recall * p / (recall * p + fpr * (1 - p))``
    (Bayes' rule, as :func:`oddkit.metrics.at_prevalence` computes it for one threshold).

    Returns
    -------
    recall, precision : ndarray
        One point per distinct threshold, from the highest threshold down (points that flag
        nothing are left out).
    """
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=False)
    flagged = tpr * prevalence + fpr * (1.0 - prevalence)
    keep = flagged > 0
    return tpr[keep], tpr[keep] * prevalence / flagged[keep]


def _curve_images(y: np.ndarray, scores: np.ndarray, threshold: float, confusion: dict,
                  production: dict | None) -> dict[str, str]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    fig, ax = _figure("ROC curve", "false-positive rate", "recall (true-positive rate)")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    fpr, tpr, _ = roc_curve(y, scores)
    ax.plot(fpr, tpr, linewidth=1.6, label="detector")
    ax.plot(confusion["fpr"], confusion["recall"], marker="o", markersize=8, linestyle="none",
            color="crimson", markeredgecolor="black", label=f"threshold {threshold:.4g}")
    ax.legend(loc="lower right", fontsize="small")
    roc = _png(fig)

    fig, ax = _figure("Precision-recall curve", "recall", "precision")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.axhline(float(y.mean()), linestyle="--", color="grey", linewidth=1,
               label=f"chance at this data's rate ({y.mean():.3g})")
    precision, recall, _ = precision_recall_curve(y, scores)
    (line,) = ax.plot(recall, precision, drawstyle="steps-post", linewidth=1.6,
                      label=f"detector at this data's rate ({_pct(float(y.mean()))})")
    flags = confusion["tp"] + confusion["fp"] > 0
    if flags:
        ax.plot(confusion["recall"], confusion["precision"], marker="o", markersize=8, linestyle="none",
                color="crimson", markeredgecolor="black", label=f"threshold {threshold:.4g}")
    if production is not None:
        rate = production["prevalence"]
        r_prod, p_prod = precision_recall_at_prevalence(y, scores, rate)
        ax.plot(r_prod, p_prod, drawstyle="steps-pre", linestyle="--", linewidth=1.6, color=line.get_color(), alpha=0.9,
                label=f"detector at the production rate ({_pct(rate)})")
        if flags:
            ax.plot(production["recall"], production["precision"], marker="D", markersize=7, linestyle="none",
                    color="darkorange", markeredgecolor="black",
                    label=f"threshold {threshold:.4g} at {_pct(rate)}: precision {production['precision']:.3g}")
    ax.legend(loc="best", fontsize="small")
    return {"roc": roc, "pr": _png(fig)}


def histogram_range(scores: np.ndarray, threshold: float) -> tuple[float, float, int]:
    """The score axis of the histogram: ``(low, high, rows_beyond)``.

    The axis runs from the lowest score to the highest, unless the highest lie so far out that
    the rest would be squashed into a few bars: when the top score is more than twice as far from
    the lowest as the 99th percentile (or the threshold, if higher) is, the axis ends at the
    highest score within that distance and ``rows_beyond`` counts the rows above it (the report
    says how many, and how high they go).
    """
    low, top = float(scores.min()), float(scores.max())
    if top <= low:
        return low, low + 1.0, 0
    anchor = max(float(np.quantile(scores, _HISTOGRAM_QUANTILE)), min(float(threshold), top))
    limit = low + 2.0 * (anchor - low)
    if anchor > low and top > limit:
        high = max(float(scores[scores <= limit].max()), min(float(threshold), top))
        return low, high, int((scores > high).sum())
    return low, top, 0


def _histogram_image(scores: np.ndarray, y: np.ndarray | None, threshold: float) -> tuple[str, str]:
    """The histogram as a data URL, and a note on the rows beyond its axis ("" when none)."""
    fig, ax = _figure("Anomaly scores", "score (higher = more anomalous)",
                      "density" if y is not None else "rows", size=(7.5, 4.2))
    low, high, beyond = histogram_range(scores, threshold)
    # Positive scores spanning orders of magnitude (the normal rows in one bar near zero, the
    # anomalies spread far to the right) read better on a logarithmic axis.
    log_axis = low > 0 and high / low >= _LOG_AXIS_RATIO
    bins = np.geomspace(low, high, 51) if log_axis else np.linspace(low, high, 51)
    if log_axis:
        ax.set_xscale("log")
    drawn = scores <= high
    if y is None:
        ax.hist(scores[drawn], bins=bins, color="steelblue", alpha=0.8, label="all rows")
    else:
        for label, name, colour in ((0, "normal (label 0)", "steelblue"), (1, "anomaly (label 1)", "crimson")):
            part = scores[drawn & (y == label)]
            if part.size:
                ax.hist(part, bins=bins, density=True, color=colour, alpha=0.55, label=f"{name}, {part.size:,} rows")
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1.2, label=f"threshold {threshold:.4g}")
    note = ""
    if beyond:
        kinds = "" if y is None else (f" ({int(y[~drawn].sum()):,} labelled anomalies, "
                                      f"{int((y[~drawn] == 0).sum()):,} normal)")
        note = (f"{beyond:,} {'row scores' if beyond == 1 else 'rows score'} above {_fmt(high)}{kinds}, up to "
                f"{_fmt(float(scores.max()))}: beyond the axis, cut so that the other bars stay readable (the "
                f"highest score within twice the {100 * _HISTOGRAM_QUANTILE:g}th percentile's distance from the lowest).")
        ax.set_xlim(low, high)
        ax.annotate(f"{beyond:,} more → up to {float(scores.max()):.3g}", xy=(1.0, 0.5), xycoords="axes fraction",
                    ha="right", va="center", fontsize="small", color="dimgray")
    if log_axis:
        ax.set_xlabel("score (higher = more anomalous), logarithmic axis")
        note = (note + " " if note else "") + (
            f"The score axis is logarithmic: the scores shown run from {_fmt(low)} to {_fmt(high)}, "
            f"{math.log10(high / low):.1f} orders of magnitude.")
    ax.legend(loc="best", fontsize="small")
    return _png(fig), note


def _as_frame(X: Any) -> pd.DataFrame | None:
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X)
    if arr.ndim == 2:
        return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
    return None


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 10 ** -digits):
            return f"{v:.{digits - 1}e}"
        text = f"{v:,.{digits}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.3g}%"


def _is_indicator(col: pd.Series) -> bool:
    """A numeric or boolean column holding only 0 and 1 (a dummy / one-hot output)."""
    if pd.api.types.is_bool_dtype(col):
        return True
    if not pd.api.types.is_numeric_dtype(col):
        return False
    values = col.dropna().unique()
    return values.size > 0 and bool(np.isin(values, (0, 1)).all())


def one_hot_groups(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Groups of one-hot (dummy) columns: prefix -> its columns, in the frame's order.

    A group is two or more 0/1 columns whose names share a prefix before ``=`` (``service=http``)
    or before the last ``_`` (pandas' ``get_dummies`` and scikit-learn's ``OneHotEncoder``
    names, ``service_http``), with at most one 1 per row among them.
    """
    candidates: dict[str, list[str]] = {}
    for name in frame.columns:
        text = str(name)
        if "=" in text:
            prefix = text.split("=", 1)[0] + "="
        elif "_" in text.strip("_"):
            prefix = text.rsplit("_", 1)[0] + "_"
        else:
            continue
        candidates.setdefault(prefix, []).append(name)
    groups = {}
    for prefix, names in candidates.items():
        if len(names) < 2 or not all(_is_indicator(frame[n]) for n in names):
            continue
        if (frame[names].fillna(0).astype(float).sum(axis=1) <= 1).all():
            groups[prefix] = names
    return groups


def _is_recordings(X: Any) -> bool:
    from oddkit.data.audio import AudioData

    return isinstance(X, AudioData)


def _is_images(X: Any) -> bool:
    from oddkit.data.images import ImageSet

    return isinstance(X, ImageSet)


def _as_images(detector, X: Any) -> Any:
    """``X`` as an :class:`~oddkit.data.images.ImageSet` when ``detector`` was fitted on images and ``X``
    is a stack of them (n, H, W) or (n, C, H, W); ``X`` itself otherwise."""
    shape = getattr(detector, "image_shape_", None)
    if shape is None or _is_images(X) or isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim not in (3, 4):
        return X
    from oddkit.data.images import ImageSet, as_image_batch

    shape = tuple(int(v) for v in shape)
    batch = as_image_batch(array, channels=shape[0])
    return ImageSet(X=batch, labels=None, class_names=None, names=[str(i) for i in range(len(batch))],
                    source=Path("."), original_sizes=None)


def _image_summary(images, summary: dict) -> None:
    """The data summary of an ImageSet: how many images, their size and channels as the model takes
    them, and how many were resized to it (with the sizes they had)."""
    n, channels, height, width = images.X.shape
    kind = {1: "grayscale", 3: "RGB"}.get(channels, f"{channels} channels")
    summary["shape"] = f"{n:,} images, {height}×{width} pixels (height × width), {kind}"
    summary["n_columns"] = None
    resized = images.resized
    if images.original_sizes is not None:
        summary["resized"] = (f"none: every image is {height}×{width}, the model's size" if not resized.any() else
                              f"{int(resized.sum()):,} of {n:,} resized to the model's {height}×{width}")
        sizes = pd.Series([f"{int(s[0])}×{int(s[1])}" for s, r in zip(images.original_sizes, resized)
                           if r]).value_counts()
        if len(sizes):
            summary["resized"] += "; they were " + ", ".join(
                f"{size} ({count:,})" for size, count in sizes.head(5).items()) + (", …" if len(sizes) > 5 else "")
    if images.class_names:
        counts = np.bincount(images.labels, minlength=len(images.class_names)) if images.labels is not None else []
        summary["classes"] = ", ".join(f"{name} ({int(c):,})" for name, c in zip(images.class_names, counts))


def _data_summary(frame: pd.DataFrame | None, X: Any, y: np.ndarray | None, scores: np.ndarray) -> dict:
    summary: dict[str, Any] = {"rows": len(scores), "columns": [], "more_columns": 0, "more_names": ""}
    if _is_images(X):
        _image_summary(X, summary)
    elif _is_recordings(X):
        seconds = sum(len(w) for w in X.waveforms) / X.sample_rate
        summary["shape"] = f"{len(X):,} recordings at {X.sample_rate:,} Hz ({seconds:,.1f} s in all)"
        summary["n_columns"] = None
    elif frame is None:
        shape = np.asarray(X).shape
        summary["shape"] = " × ".join(str(s) for s in shape)
        summary["n_columns"] = None
    else:
        summary["shape"] = f"{frame.shape[0]:,} rows × {frame.shape[1]:,} columns"
        summary["n_columns"] = frame.shape[1]
        summary["missing"] = int(frame.isna().to_numpy().sum())
        groups = one_hot_groups(frame)
        grouped = {name: prefix for prefix, names in groups.items() for name in names}
        entries: list[tuple[str, Any]] = []  # ("column", name) or ("one-hot", prefix), in the frame's order
        for name in frame.columns:
            if name not in grouped:
                entries.append(("column", name))
            elif groups[grouped[name]][0] == name:
                entries.append(("one-hot", grouped[name]))
        for kind, key in entries[:_MAX_SUMMARY_COLUMNS]:
            if kind == "one-hot":
                names = groups[key]
                part = frame[names].fillna(0).astype(float)
                ones = part.sum(axis=0).sort_values(ascending=False, kind="stable")
                none = int((part.sum(axis=1) == 0).sum())
                top = ", ".join(f"{str(n)[len(key):]} ({_pct(v / len(part))})" for n, v in ones.head(3).items())
                detail = f"{len(names):,} categories; most common: {top}"
                if none:
                    detail += f"; {none:,} rows in none of them"
                summary["columns"].append({"name": f"{key}… ({len(names):,} columns)", "dtype": "one-hot 0/1",
                                           "missing": int(frame[names].isna().to_numpy().sum()), "detail": detail})
                continue
            col = frame[key]
            numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
            entry = {"name": str(key), "dtype": str(col.dtype), "missing": int(col.isna().sum())}
            if numeric:
                values = pd.to_numeric(col, errors="coerce")
                entry["detail"] = (f"mean {_fmt(values.mean())}, sd {_fmt(values.std())}, "
                                   f"min {_fmt(values.min())}, max {_fmt(values.max())}")
            else:
                counts = col.astype("string").value_counts(dropna=True)
                top = ", ".join(f"{k} ({v:,})" for k, v in counts.head(3).items())
                entry["detail"] = f"{counts.size:,} distinct; most common: {top}"
            summary["columns"].append(entry)
        rest = entries[_MAX_SUMMARY_COLUMNS:]
        summary["more_columns"] = sum(len(groups[k]) if kind == "one-hot" else 1 for kind, k in rest)
        shown = [f"{k}…" if kind == "one-hot" else str(k) for kind, k in rest[:10]]
        summary["more_names"] = ", ".join(shown) + (", …" if len(rest) > 10 else "")
        summary["one_hot_note"] = (
            f"{sum(len(v) for v in groups.values()):,} one-hot columns are summarised as {len(groups):,} "
            "categorical columns (the share of rows with a 1 per category)." if groups else "")
    if y is not None:
        summary["anomalies"] = int(y.sum())
        summary["anomaly_rate"] = _pct(float(y.mean()))
    summary["score_range"] = f"{_fmt(float(scores.min()))} to {_fmt(float(scores.max()))}"
    return summary


def _interval(bounds: tuple[float, float] | None) -> str:
    """`` (95%: LOW to HIGH)`` for :func:`oddkit.metrics.metric_intervals`' bounds, or nothing."""
    return "" if bounds is None else f" (95%: {_fmt(bounds[0])} to {_fmt(bounds[1])})"


def _metric_rows(report: dict, intervals: dict | None = None) -> list[dict]:
    """The metrics table's rows; the data column's recall, false-positive rate and precision carry their
    95% intervals when ``intervals`` (:func:`oddkit.metrics.metric_intervals`) are given."""
    data, prod = report["data"], report["production"]
    intervals = intervals or {}
    spec = [
        ("anomaly rate", "prevalence", _pct),
        ("recall (anomalies caught)", "recall", _fmt),
        ("false-positive rate", "fpr", _fmt),
        ("precision (alerts that are anomalies)", "precision", _fmt),
        ("F1", "f1", _fmt),
        ("alerts per 10,000 rows", "alerts_per_10000", lambda v: _fmt(v, 2)),
        ("expected cost per row", "expected_cost", _fmt),
    ]
    return [{"name": name, "data": show(data[key]) + _interval(intervals.get(key)),
             "production": None if prod is None else show(prod[key])} for name, key, show in spec]


def _explanations(detector, X: Any, frame: pd.DataFrame | None, top_positions: np.ndarray) -> tuple[list, str]:
    """Per-row list of (column, share) for the top anomalies, and a note when they cannot be drawn."""
    if not hasattr(detector, "explain"):
        return [], f"{type(detector).__name__} has no explain method, so the anomalies are listed without explanations."
    recordings = _is_recordings(X)
    if frame is None and not recordings:
        return [], "Explanations are drawn for tables and recordings only."
    try:
        if recordings:  # summed per mel band (or MFCC coefficient), as 'oddkit explain' does by default
            from oddkit.data.audio_features import explain_recordings

            shares = explain_recordings(detector, X.subset(top_positions))
        else:
            from oddkit.scoring import explain_rows

            subset = X.iloc[top_positions] if isinstance(X, pd.DataFrame) else np.asarray(X)[top_positions]
            shares = explain_rows(detector, subset)  # a strict report has refused unseen categories already
    except Exception as exc:  # noqa: BLE001 - an explanation failing must not sink the report
        return [], f"explain failed ({type(exc).__name__}: {exc}); the anomalies are listed without explanations."
    if not isinstance(shares, pd.DataFrame) or len(shares) != len(top_positions):
        return [], "explain did not return one row of per-column shares per anomaly; nothing drawn."
    drawn = []
    for i in range(len(shares)):
        row = shares.iloc[i].astype(float)
        total = float(row.abs().sum())
        largest = row.reindex(row.abs().sort_values(ascending=False, kind="stable").index).head(_TOP_COLUMNS)
        # Bar length: the column's part of the row's summed absolute shares, so a row's bars never
        # add up to more than 100% even where negative shares push others above 1; the number
        # beside it is the signed share itself.
        drawn.append([{"column": str(col), "share": float(v), "negative": v < 0,
                       "width": 0.0 if total == 0 else 100 * abs(float(v)) / total}
                      for col, v in largest.items()])
    return drawn, ""


def _heatmap_png(image: np.ndarray, heat: np.ndarray, box: tuple[int, int, int, int]) -> tuple[str, int, int]:
    """The image beside its heat-map with ``box`` drawn (:func:`oddkit.data.images.heatmap_picture`), at
    :data:`_THUMBNAIL_SIDE` pixels high, as a data URL, with its width and height."""
    from PIL import Image

    from oddkit.data.images import heatmap_picture

    picture = heatmap_picture(image, heat, boxes=[box], min_side=_THUMBNAIL_SIDE)
    if picture.height > _THUMBNAIL_SIDE:  # a large image: shrink the pair, keeping its proportions
        width = max(1, round(picture.width * _THUMBNAIL_SIDE / picture.height))
        picture = picture.resize((width, _THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return ("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), picture.width,
            picture.height)


def _image_explanations(detector, images, top_positions: np.ndarray) -> tuple[list, str, str]:
    """For a detector fitted on images: per top image, its heat-map PNG with the region adding most to
    its score boxed (:func:`oddkit.image_explanations.explain_images` and
    :func:`~oddkit.image_explanations.top_regions`), the box in the file's own pixels and its share;
    what the maps show; and a note when they cannot be drawn."""
    from oddkit.image_explanations import explain_images, top_regions

    try:
        explanation = explain_images(detector, images.X[top_positions])
    except Exception as exc:  # noqa: BLE001 - an explanation failing must not sink the report
        return [], "", (f"explain_images failed ({type(exc).__name__}: {exc}); the images are listed without "
                        "heat-maps.")
    height, width = images.X.shape[2:]
    drawn = []
    for rank, pos in enumerate(top_positions):
        region = top_regions(explanation.maps[rank], explanation.patch_size)[0]
        box = (region.left, region.top, region.right, region.bottom)
        png, w, h = _heatmap_png(images.X[pos], explanation.maps[rank], box)
        # The box in the file's own pixels: the model's pixels scaled back where the image was resized.
        original = images.original_sizes[pos] if images.original_sizes is not None else (height, width)
        fy, fx = original[0] / height, original[1] / width
        drawn.append({"png": png, "width": w, "height": h, "share": _pct(region.share),
                      "note": explanation.notes[rank] if explanation.notes else None,
                      "box": (f"columns {int(np.floor(region.left * fx))}–{int(np.ceil(region.right * fx)) - 1}, "
                              f"rows {int(np.floor(region.top * fy))}–{int(np.ceil(region.bottom * fy)) - 1}")})
    said = explanation.description.strip()
    description = (f"{explanation.method}: {said}{'' if said.endswith('.') else '.'} The box marks the "
                   f"{explanation.patch_size}×{explanation.patch_size}-pixel region (in the model's pixels) "
                   "adding most to the score.")
    return drawn, description, ""


_TEXT_HIGHLIGHTS = 3
"""Words highlighted in each explained text (those whose tokens carry the largest shares)."""


def _takes_texts(detector) -> bool:
    """Whether ``detector`` was trained on texts (its preprocessing holds a tokenizer)."""
    from oddkit.model_input import text_column

    return text_column(detector) is not None


def _text_explanations(detector, X: Any, top_positions: np.ndarray) -> tuple[list, list, str]:
    """For a detector trained on texts: per top anomaly, bars of its words' shares of the score
    (largest first) and the text as a list of words, those with the largest shares highlighted;
    and a note when they cannot be drawn.

    The words' shares are the sums of their tokens' shares (``explain``'s per-token negative
    log-likelihoods over the text's total; the end of the text is the word ``[EOS]``)."""
    subset = X.iloc[top_positions] if isinstance(X, pd.DataFrame) else [X[i] for i in top_positions]
    try:
        tokens = detector.explain(subset)
    except Exception as exc:  # noqa: BLE001 - an explanation failing must not sink the report
        return [], [], f"explain failed ({type(exc).__name__}: {exc}); the anomalies are listed without explanations."
    if not isinstance(tokens, pd.DataFrame) or not {"row", "word_index", "word", "share"} <= set(tokens.columns):
        return [], [], "explain did not return per-token shares; nothing drawn."
    rows = list(subset.index) if isinstance(subset, pd.DataFrame) else list(range(len(subset)))
    texts = subset.iloc[:, 0].astype(str).tolist() if isinstance(subset, pd.DataFrame) else [str(t) for t in subset]
    bars, marked = [], []
    for row, text in zip(rows, texts):
        part = tokens[tokens["row"] == row]
        by_word = part.groupby("word_index", sort=True).agg(word=("word", "first"), share=("share", "sum"),
                                                            tokens=("token", lambda t: " ".join(map(str, t))))
        largest = by_word.sort_values("share", ascending=False, kind="stable")
        total = float(by_word["share"].abs().sum())
        bars.append([{"column": str(w.word), "share": float(w.share), "negative": w.share < 0,
                      "width": 0.0 if total == 0 else 100 * abs(float(w.share)) / total}
                     for w in largest.head(_TOP_COLUMNS).itertuples()])
        highlighted = set(largest.index[:_TEXT_HIGHLIGHTS])
        top = float(largest["share"].iloc[0]) if len(largest) else 0.0
        words = text.split()
        marked.append([{"word": word, "mark": i in highlighted,
                        "share": float(by_word["share"].get(i, 0.0)),
                        "tokens": str(by_word["tokens"].get(i, "")),
                        "strength": 0.0 if top <= 0 else max(0.25, float(by_word["share"].get(i, 0.0)) / top)}
                       for i, word in enumerate(words + (["[EOS]"] if len(words) in by_word.index else []))])
    return bars, marked, ""


def _id_values(ids: Any, n: int) -> list[str] | None:
    """Each row's identifiers as one string (``a=1, b=x`` for several id columns), or None."""
    if ids is None:
        return None
    frame = ids if isinstance(ids, pd.DataFrame) else pd.DataFrame({"id": np.asarray(ids, dtype=object).ravel()})
    if len(frame) != n:
        raise DataError(f"ids has {len(frame)} rows but the data has {n}; pass one id per row")
    if frame.shape[1] == 1:
        return [str(v) for v in frame.iloc[:, 0].tolist()]
    names = [str(c) for c in frame.columns]
    return [", ".join(f"{k}={v}" for k, v in zip(names, row)) for row in frame.itertuples(index=False)]


def _image_keys(X: np.ndarray) -> np.ndarray:
    """One hash per image of its pixels (identical images, equal keys)."""
    return np.array([int.from_bytes(hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=8).digest(),
                                    "little") for x in X], dtype=np.uint64)


def _row_keys(frame: pd.DataFrame | None, n: int) -> np.ndarray:
    """One hash per row of its values (equal rows, equal keys), or the positions when not a table."""
    if frame is None:
        return np.arange(n, dtype=np.uint64)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def distinct_top(keys: np.ndarray, scores: np.ndarray, top: int, context: np.ndarray | None = None) -> list[np.ndarray]:
    """The ``top`` highest-scoring distinct rows, each as the positions of the rows it stands for.

    Rows are ranked by score (stable, so ties keep the data's order). A row joins a
    higher-ranked entry instead of taking a rank of its own when its values equal that entry's
    (equal ``keys``), or when it has the same score (to a relative 1e-6) as the entry just above it and the same
    ``context`` (e.g. label and group): such rows the report would show alike, and a mass attack
    of near-identical rows would otherwise fill the whole list. Each entry's first position is its
    highest-scoring row.
    """
    order = np.argsort(-scores, kind="stable")
    entries: list[tuple[int, set]] = []  # (first position, keys of the rows it stands for)
    where: dict = {}
    for pos in order:
        key = keys[pos]
        if key in where:
            continue
        if entries:
            first, members = entries[-1]
            if math.isclose(scores[first], scores[pos], rel_tol=_SAME_SCORE, abs_tol=0.0) and (
                    context is None or context[first] == context[pos]):
                members.add(key)
                where[key] = len(entries) - 1
                continue
        if len(entries) >= top:
            break
        entries.append((int(pos), {key}))
        where[key] = len(entries) - 1
    out = []
    for first, members in entries:
        rows = np.flatnonzero(np.isin(keys, np.fromiter(members, dtype=keys.dtype, count=len(members))))
        rows = rows[np.argsort(-scores[rows], kind="stable")]
        out.append(np.r_[first, rows[rows != first]].astype(np.int64))
    return out


def _group_rows(groups: np.ndarray, scores: np.ndarray, flagged: np.ndarray, y: np.ndarray | None) -> list[dict]:
    frame = pd.DataFrame({"group": pd.Series(groups).astype("string").fillna("(missing)").to_numpy(),
                          "score": scores, "flagged": flagged})
    if y is not None:
        frame["y"] = y
    rows = []
    for name, part in frame.groupby("group", sort=False):
        entry = {"group": str(name), "rows": len(part), "flagged": int(part["flagged"].sum()),
                 "flag_rate": _pct(float(part["flagged"].mean())), "mean_score": _fmt(float(part["score"].mean()))}
        if y is not None:
            anomalies = part["y"] == 1
            entry["anomalies"] = int(anomalies.sum())
            entry["recall"] = _fmt(float(part.loc[anomalies, "flagged"].mean())) if anomalies.any() else "–"
        rows.append(entry)
    rows.sort(key=lambda r: -r["rows"])
    return rows


def _threshold_source(detector, threshold_goal: str) -> str:
    """Where the threshold came from, for the model card: the dev data it was chosen on and the rates it
    reached there (``threshold_provenance_``), the training scores, or neither."""
    if threshold_goal == "given to the report":
        return "given to the report"
    provenance = getattr(detector, "threshold_provenance_", None)
    column = getattr(detector, "threshold_miss_cost_col_", None)
    priced = f"; each missed anomaly priced by its {column}" if column else ""
    if provenance is not None:
        return f"chosen on {provenance}{priced}"
    if str(threshold_goal).startswith("contamination"):
        return "the training scores (the contamination share), no labelled dev data"
    return "not recorded (set by hand, or saved before oddkit recorded it)"


_DRIFT_COLUMNS = 10
"""Columns the report's drift section lists (the drifted first, then the most significant)."""


def _drift_section(detector, frame, scores: np.ndarray, y: np.ndarray | None, threshold: float) -> dict:
    """The report's drift section: this data's normal rows (all rows without labels) against the model's
    drift reference, as :func:`oddkit.drift.check_drift` compares them, at the report's threshold."""
    from oddkit.drift import (ALPHA, MIN_ALERT_RATIO, MIN_PSI, _column_values, _compare, _table_preprocessor,
                              model_fingerprint)
    from oddkit.drift import _p as _p_value  # p-values shown as 'oddkit drift' shows them

    reference = getattr(detector, "drift_reference_", None)
    if reference is None:
        return {"note": "The model holds no drift reference, so this data is not compared with the rows its "
                        "threshold was chosen on: choose the threshold with 'oddkit threshold MODEL DEV' (which "
                        "records DEV's normal rows), or call oddkit.drift.record_reference."}
    if reference.model_fingerprint != model_fingerprint(detector):
        return {"note": "The model's drift reference was recorded before it was fitted again; it is not used."}
    rows = np.ones(len(scores), dtype=bool) if y is None else y == 0
    if rows.sum() < 2:
        return {"note": "Fewer than 2 normal rows: nothing to compare with the drift reference."}
    counts = {}
    if reference.columns:
        values = _column_values(detector, frame.iloc[np.flatnonzero(rows)])
        counts = {c.name: c.bin_counts(values[c.name]) for c in reference.columns}
    report = _compare(reference, float(threshold), scores[rows], counts, _table_preprocessor(detector) is not None,
                      ALPHA, MIN_PSI, MIN_ALERT_RATIO)
    n = _fmt(report.n_rows)
    which = f"all {n} rows (no labels)" if y is None else f"the {n} normal rows (label 0)"
    return {
        "note": None,
        "drifted": report.drifted,
        "which": which,
        "reference": f"{_fmt(report.n_reference)} rows" + (f" of {report.reference_name}" if report.reference_name
                                                           else ""),
        "alerts": f"{_pct(report.reference_alert_rate)} of the reference, {_pct(report.alert_rate)} here "
                  f"(×{report.alert_ratio:.2f}, adjusted p {_p_value(report.alert_adjusted_p_value)})",
        "alerts_changed": report.alerts_changed,
        "scores": f"median {_fmt(report.score_quantiles['50'][0], 4)} → {_fmt(report.score_quantiles['50'][1], 4)}, "
                  f"99th percentile {_fmt(report.score_quantiles['99'][0], 4)} → "
                  f"{_fmt(report.score_quantiles['99'][1], 4)}; KS {report.score_ks:.3f}, PSI {report.score_psi:.3f}, "
                  f"adjusted p {_p_value(report.score_adjusted_p_value)}",
        "scores_shifted": report.scores_shifted,
        "columns": [{"name": c.name, "psi": f"{c.psi:.3f}", "p": _p_value(c.adjusted_p_value), "drifted": c.drifted,
                     "change": f"{c.bin}: {_pct(c.reference_share)} → {_pct(c.share)}"}
                    for c in report.columns[:_DRIFT_COLUMNS]],
        "more_columns": max(0, len(report.columns) - _DRIFT_COLUMNS),
        "more_drifted": sum(c.drifted for c in report.columns[_DRIFT_COLUMNS:]),
        "notes": list(report.notes),
    }


def _model_card(detector, model_folder, training_fingerprint, threshold, threshold_goal) -> dict:
    import jinja2
    import matplotlib
    import sklearn

    from oddkit import __version__

    params = {}
    for name, value in sorted(detector.get_params(deep=False).items()):
        params[name] = repr(value) if not isinstance(value, str) else value
    fingerprint, fingerprint_of = "not recorded", ""
    own = getattr(detector, "training_fingerprint_", None)  # recorded by fit, saved with the model
    integrity = None
    if model_folder is not None and (Path(model_folder) / "integrity.json").is_file():
        integrity = sha256_of_file(Path(model_folder) / "integrity.json")
    if training_fingerprint:
        fingerprint, fingerprint_of = str(training_fingerprint), "training data (sha256)"
    elif own:
        fingerprint, fingerprint_of = str(own), "the training data as the detector saw it at fit (sha256)"
        if integrity is not None:
            fingerprint_of += f"; the model folder's integrity.json has sha256 {integrity}"
    elif integrity is not None:
        fingerprint = integrity
        fingerprint_of = "the model folder's integrity.json (sha256; the training data's was not recorded)"
    versions = {"oddkit": __version__, "python": platform.python_version(), "numpy": np.__version__,
                "pandas": pd.__version__, "scikit-learn": sklearn.__version__,
                "matplotlib": matplotlib.__version__, "jinja2": jinja2.__version__}
    try:
        import torch

        versions["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    training_rows = getattr(detector, "n_training_rows_", None)
    if training_rows is None and getattr(detector, "decision_scores_", None) is not None:
        training_rows = len(detector.decision_scores_)
    reference = getattr(detector, "drift_reference_", None)
    drift = ("none ('oddkit drift' needs --reference)" if reference is None else
             f"{_fmt(reference.n_rows)} rows" + (f" of {reference.data_name}" if reference.data_name else ""))
    return {
        "detector": type(detector).__name__,
        "params": params,
        "members": fitted_members(detector),
        "training_rows": None if training_rows is None else _fmt(training_rows),
        "n_features": _fmt(getattr(detector, "n_features_in_", None)),
        "image_shape": (None if getattr(detector, "image_shape_", None) is None else
                        " × ".join(str(int(v)) for v in detector.image_shape_) + " (channels × height × width)"),
        "threshold": _fmt(threshold, 6),
        "threshold_goal": threshold_goal,
        "threshold_source": _threshold_source(detector, threshold_goal),
        "drift_reference": drift,
        "fingerprint": fingerprint,
        "fingerprint_of": fingerprint_of,
        "seed": repr(detector.get_params(deep=False).get("random_state")),
        "versions": versions,
        "model_folder": None if model_folder is None else str(model_folder),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _per_row(detector, X: Any, values: ArrayLike | str | None, what: str, fix: str) -> tuple[Any, Any]:
    """A per-row argument given as values or as the name of a column of ``X``.

    A named column is taken out of ``X`` unless the detector was trained on it (a transaction's
    amount can be both a feature and what missing it costs). Returns ``(values, X)``.
    """
    if not isinstance(values, str):
        return values, X
    if not isinstance(X, pd.DataFrame) or values not in X.columns:
        raise DataError(f"{what} column {values!r} is not a column of the data; pass one of its columns or an "
                        f"array with {fix}")
    column = X[values].to_numpy()
    if values not in list(getattr(detector, "feature_names_in_", [])):
        X = X.drop(columns=[values])
    return column, X


def _labels_of(labels: np.ndarray) -> str:
    """A top anomaly's label; for identical rows labelled differently, how many are anomalies."""
    if labels.min() == labels.max():
        return str(int(labels[0]))
    return f"{int(labels.sum()):,} of {labels.size:,} are 1"


def _groups_of(groups: np.ndarray) -> str:
    distinct = list(dict.fromkeys(str(g) for g in groups))
    return ", ".join(distinct[:3]) + (f" (+{len(distinct) - 3} more)" if len(distinct) > 3 else "")


def build_report(
    detector,
    X: Any,
    y: ArrayLike | None = None,
    *,
    groups: ArrayLike | str | None = None,
    prevalence: float | None = None,
    costs: tuple[float, float] | None = None,
    miss_costs: ArrayLike | str | None = None,
    threshold: float | None = None,
    top: int = 20,
    title: str | None = None,
    data_name: str | None = None,
    model_folder: str | os.PathLike[str] | None = None,
    training_fingerprint: str | None = None,
    ids: ArrayLike | pd.DataFrame | None = None,
    strict_categories: bool = False,
) -> tuple[str, dict[str, Any] | None]:
    """Render the HTML report as a string; see :func:`write_report` for the parameters.

    Returns
    -------
    html : str
        The whole report.
    metrics : dict or None
        The :func:`oddkit.metrics.operating_report` it shows, or ``None`` without labels
        (write it with :func:`oddkit.metrics.write_metrics`).
    """
    import jinja2
    from sklearn.utils.validation import check_is_fitted

    from oddkit.metrics import _check_y, metric_intervals, operating_report

    check_is_fitted(detector)
    if miss_costs is None and isinstance(X, pd.DataFrame):  # the column the threshold was chosen with, if any
        from oddkit.threshold import miss_cost_column

        miss_costs = miss_cost_column(detector, columns=[str(c) for c in X.columns], data_name=data_name)
    group_values, X = _per_row(detector, X, groups, "group", "one group per row")
    group_values = None if group_values is None else np.asarray(group_values, dtype=object)
    row_costs, X = _per_row(detector, X, miss_costs, "miss cost", "one miss cost per row (e.g. the amount)")
    try:
        top = int(top)
    except (TypeError, ValueError):
        raise DataError(f"top must be a whole number of anomalies to list, got {top!r}") from None
    if top < 0:
        raise DataError(f"top must be >= 0 (anomalies to list), got {top}")

    X = _as_images(detector, X)
    images = X if _is_images(X) else None
    if images is not None:  # pixels hold no categories
        scores = np.asarray(detector.decision_function(images.X), dtype=np.float64)
        unseen, unseen_columns = np.zeros(len(scores), dtype=bool), {}
    else:
        from oddkit.scoring import score_rows

        scores, unseen, unseen_columns = score_rows(detector, X, strict_categories=strict_categories,
                                                    hint="leave out strict_categories to report such rows as "
                                                         "anomalies")
    n = scores.shape[0]
    id_values = _id_values(ids, n)
    y_arr = None if y is None else _check_y(y)
    if y_arr is not None and y_arr.shape[0] != n:
        raise DataError(f"y has {y_arr.shape[0]} labels but the data has {n} rows; pass one label per row")
    if group_values is not None and group_values.shape[0] != n:
        raise DataError(f"groups has {group_values.shape[0]} values but the data has {n} rows; pass one group per row")
    if row_costs is not None and np.shape(row_costs)[0] != n:
        raise DataError(f"miss_costs has {np.shape(row_costs)[0]} values but the data has {n} rows; "
                        "pass one miss cost per row (e.g. the amount)")
    threshold_goal = getattr(detector, "threshold_goal_", "")
    if threshold is None:
        threshold = float(detector.threshold_)
    else:
        threshold_goal = "given to the report"
    from oddkit.threshold import prevalence_and_costs_from_goal

    prevalence, costs = prevalence_and_costs_from_goal(threshold_goal, prevalence, costs)
    flagged = scores >= threshold
    frame = None if _is_recordings(X) or images is not None else _as_frame(X)

    metrics = None
    labels_note = ""
    if y_arr is None:
        labels_note = ("No labels were given, so there are no metrics, curves or confusion matrix: "
                       "pass labelled data (1 = anomaly) to see how well the threshold does.")
    elif y_arr.min() == y_arr.max():
        labels_note = (f"Every label is {int(y_arr[0])}, so recall, precision and the curves cannot be computed: "
                       "pass data with both normal rows and anomalies.")
    else:
        metrics = operating_report(y_arr, scores, threshold, prevalence=prevalence, costs=costs,
                                   miss_costs=row_costs)
        intervals = metric_intervals(y_arr, scores, threshold)

    keys = _row_keys(frame, n) if images is None else _image_keys(images.X)
    context = None
    if y_arr is not None or group_values is not None:
        context = np.array([f"{'' if y_arr is None else y_arr[i]}|{'' if group_values is None else group_values[i]}"
                            for i in range(n)], dtype=object)
    entries = distinct_top(keys, scores, top, context) if top else []
    firsts = np.array([rows[0] for rows in entries], dtype=np.int64)
    explained_texts: list = []
    explained_images: list = []
    images_description = ""
    if top and images is not None:
        explained_images, images_description, explain_note = _image_explanations(detector, images, firsts)
        explanations = []
    elif top and _takes_texts(detector):
        explanations, explained_texts, explain_note = _text_explanations(detector, X, firsts)
    else:
        explanations, explain_note = _explanations(detector, X, frame, firsts) if top else ([], "")
    index = (X.index if isinstance(X, pd.DataFrame) else pd.Index(X.labels["file"].astype(str))
             if _is_recordings(X) else pd.Index(images.names) if images is not None else pd.RangeIndex(n))
    anomalies = []
    for rank, rows in enumerate(entries, start=1):
        pos = rows[0]
        anomalies.append({
            "rank": rank,
            "row": str(index[pos]),
            "count": len(rows),
            "identical": int((keys[rows] == keys[pos]).sum()),
            "others": ", ".join(str(index[r]) for r in rows[1:1 + _SHOWN_DUPLICATE_IDS])
                      + (", …" if len(rows) > 1 + _SHOWN_DUPLICATE_IDS else ""),
            "id": None if id_values is None else id_values[pos],
            "score": _fmt(float(scores[pos]), 6),
            "flagged": bool(flagged[pos]),
            "unseen": bool(unseen[pos]),
            "label": None if y_arr is None else _labels_of(y_arr[rows]),
            "group": None if group_values is None else _groups_of(group_values[rows]),
            "shares": explanations[rank - 1] if explanations else [],
            "text": explained_texts[rank - 1] if explained_texts else [],
            "image": explained_images[rank - 1] if explained_images else None,
        })
    histogram, histogram_note = _histogram_image(scores, y_arr, threshold)

    context = {
        "title": title or f"oddkit report: {type(detector).__name__}" + (f" on {data_name}" if data_name else ""),
        "data_name": data_name,
        "summary": _data_summary(frame, X, y_arr, scores),
        "unseen": None if not unseen.any() else {
            "rows": _fmt(int(unseen.sum())),
            "columns": ", ".join(f"{name} ({count:,} value{'s' if count != 1 else ''})"
                                 for name, count in unseen_columns.items())},
        "has_ids": id_values is not None,
        "threshold": _fmt(threshold, 6),
        "threshold_goal": threshold_goal,
        "flagged": _fmt(int(flagged.sum())),
        "flag_rate": _pct(float(flagged.mean())),
        "labels_note": labels_note,
        "metrics": None,
        "histogram": histogram,
        "histogram_note": histogram_note,
        "anomalies": anomalies,
        "anomaly_rows": sum(a["count"] for a in anomalies),
        "top_columns": _TOP_COLUMNS,
        "explain_note": explain_note,
        "explains_texts": bool(explained_texts),
        "is_images": images is not None,
        "explains_images": bool(explained_images),
        "images_description": images_description,
        "unit": "images" if images is not None else "rows",
        "text_highlights": _TEXT_HIGHLIGHTS,
        "has_labels": y_arr is not None,
        "has_groups": group_values is not None,
        "groups": None if group_values is None else _group_rows(group_values, scores, flagged, y_arr)[:_MAX_GROUPS],
        "card": _model_card(detector, model_folder, training_fingerprint, threshold, threshold_goal),
        "drift": _drift_section(detector, frame, scores, y_arr, threshold),
        "prevalence_note": "",
    }
    if metrics is not None:
        prod = metrics["production"]
        context["metrics"] = {
            "roc_auc": _fmt(metrics["roc_auc"]) + _interval(intervals["roc_auc"]),
            "pr_auc": _fmt(metrics["pr_auc"]) + _interval(intervals["pr_auc"]),
            "rows": _metric_rows(metrics, intervals),
            "has_production": prod is not None,
            "data_rate": _pct(metrics["data"]["prevalence"]),
            "production_rate": None if prod is None else _pct(prod["prevalence"]),
            "confusion": metrics["confusion"],
            "costs": None if metrics["costs"] is None else {k: _fmt(v) for k, v in metrics["costs"].items()},
            "miss_costs": None if metrics["miss_costs"] is None else {
                k: _fmt(v, 2) for k, v in metrics["miss_costs"].items()},
            "images": _curve_images(y_arr, scores, threshold, {**metrics["confusion"], **{
                k: metrics["data"][k] for k in ("recall", "fpr", "precision")}}, prod),
            "production_precision": None if prod is None else _fmt(prod["precision"]),
            "data_precision": _fmt(metrics["data"]["precision"]),
        }
        if prod is None:
            context["prevalence_note"] = ("No production anomaly rate was stated (a cost goal's third number, or "
                                          "the report's prevalence: --prevalence on the command line), so "
                                          "precision, F1, alerts and cost hold at this data's own anomaly rate only.")
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("oddkit.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = environment.get_template("report.html.j2").render(**context)
    return html, metrics


def write_report(
    detector,
    X: Any,
    y: ArrayLike | None = None,
    out: str | os.PathLike[str] = "report.html",
    *,
    groups: ArrayLike | str | None = None,
    prevalence: float | None = None,
    costs: tuple[float, float] | None = None,
    miss_costs: ArrayLike | str | None = None,
    threshold: float | None = None,
    top: int = 20,
    title: str | None = None,
    data_name: str | None = None,
    model_folder: str | os.PathLike[str] | None = None,
    training_fingerprint: str | None = None,
    ids: ArrayLike | pd.DataFrame | None = None,
    strict_categories: bool = False,
) -> Path:
    """Write one self-contained HTML report on ``detector``'s scores of ``X``.

    The file needs nothing else to open (plots are inline PNGs, CSS is inline, no scripts, and
    its Content-Security-Policy forbids any fetch). Sections: data summary; metrics at the
    threshold at the data's own anomaly rate and at the stated production rate, with alerts per
    10,000 rows and expected cost; ROC and PR curves with the operating point; score histograms
    by label; the confusion matrix; the top anomalies with their explanations drawn; a
    breakdown by group; a model card. Without labels the metric sections are replaced by a note.

    Parameters
    ----------
    detector : fitted oddkit detector
        Scores with ``decision_function``; explained with ``explain`` when it has one.
    X : DataFrame or array of shape (n, d), or AudioData
        The data to report on, as the detector takes it. Recordings
        (:class:`~oddkit.data.audio.AudioData`) are listed by file, and their explanations summed
        per mel band (MFCC coefficient for an MFCC model) by
        :func:`~oddkit.data.audio_features.explain_recordings`. For a detector fitted on images, an
        :class:`~oddkit.data.images.ImageSet` (:func:`~oddkit.data.images.read_images`; or an array
        of images, (n, H, W) or (n, C, H, W)): listed by file name, summarised by count, size,
        channels and how many were resized, and each top image drawn as a small thumbnail beside its
        heat-map with the region adding most to its score boxed
        (:func:`~oddkit.image_explanations.explain_images`, :func:`~oddkit.image_explanations.top_regions`).
    y : array-like of shape (n,), optional
        Labels, 1 = anomaly, 0 = normal. Without them there are no metrics, curves or confusion
        matrix.
    out : str or path-like, default "report.html"
        Where to write; parent folders are created and an existing file is replaced.
    groups : array-like of shape (n,) or str, optional
        One group per row (e.g. attack type) for the breakdown table, or the name of a column of
        ``X`` holding them (dropped from the features unless the detector was trained on it).
    prevalence : float, optional
        Anomaly rate expected in production, in (0, 1); defaults to the rate of the detector's
        ``cost:FALSE_ALARM,MISS,RATE`` threshold goal.
    costs : (float, float), optional
        ``(false_alarm, miss)`` cost of one false alarm and one missed anomaly; defaults to the
        detector's cost goal's costs. Gives the expected cost per row.
    miss_costs : array-like of shape (n,) or str, optional
        What missing each row's anomaly costs (e.g. a transaction's amount), or the name of a
        column of ``X`` holding it (kept as a feature when the detector was trained on it).
        Defaults, for a DataFrame ``X``, to the column the threshold was chosen with
        (``threshold_miss_cost_col_``; :func:`oddkit.threshold.miss_cost_column`). A
        missed anomaly then costs ``miss`` times its own value, as in
        :func:`oddkit.threshold.choose_threshold`; the expected cost, at the data's rate and at
        the production rate, charges the missed anomalies' summed values. Needs ``costs`` (or a
        cost goal).
    threshold : float, optional
        Flag rows scoring at or above it; defaults to ``detector.threshold_``.
    top : int, default 20
        How many of the highest-scoring distinct rows to list and explain; rows whose values are
        all equal share one entry, with their count.
    title, data_name : str, optional
        The page title and the data's name (e.g. the file name) shown in it.
    model_folder : str or path-like, optional
        The model's folder; the model card then shows it and, without ``training_fingerprint``,
        the sha256 of its ``integrity.json``.
    training_fingerprint : str, optional
        A fingerprint of the training data (e.g. :func:`sha256_of_file` of the training file).
    ids : DataFrame or array-like of shape (n,), optional
        Each row's identifiers (a transaction or case id; a DataFrame for several id columns),
        shown beside each top anomaly so that a reader can find it in their own systems.
    strict_categories : bool, default False
        A row holding a category never seen in training is scored as an anomaly (its score raised
        to at least the model's out-of-range score), marked in the top anomalies and counted in the
        data summary, as :func:`oddkit.scoring.score_rows` does; its explanation is split over the
        columns holding such categories when that raise is what made it an anomaly
        (:func:`oddkit.scoring.explain_rows`). With ``True`` such a row raises
        :class:`~oddkit.exceptions.UnseenCategoryError` instead.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    UnseenCategoryError
        With ``strict_categories``, when a row holds a category never seen in training.
    DataError
        If ``y``, ``groups``, ``miss_costs`` or ``ids`` do not have one value per row, ``prevalence``,
        ``costs`` or a miss cost are out of range, ``miss_costs`` come without costs, or
        ``groups`` or ``miss_costs`` names no column.
    LabelError
        If ``y`` is not 0/1.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from oddkit import GaussianDetector
    >>> rng = np.random.default_rng(0)
    >>> det = GaussianDetector().fit(rng.normal(size=(200, 3)))
    >>> X = np.r_[rng.normal(size=(95, 3)), rng.normal(5, 1, size=(5, 3))]
    >>> y = np.r_[np.zeros(95), np.ones(5)]
    >>> write_report(det, X, y, os.path.join(tempfile.mkdtemp(), "r.html"), prevalence=0.001).suffix
    '.html'
    """
    html, _ = build_report(
        detector, X, y, groups=groups, prevalence=prevalence, costs=costs, miss_costs=miss_costs,
        threshold=threshold, top=top,
        title=title, data_name=data_name, model_folder=model_folder, training_fingerprint=training_fingerprint,
        ids=ids, strict_categories=strict_categories,
    )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
