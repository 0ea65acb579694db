"""ROC and precision-recall curves for one or more detectors, saved as PNG.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas rather than through
``pyplot``, so plotting works without a display and never changes matplotlib's global backend or
figure registry (no figures pile up in long-running processes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from oddkit.exceptions import DataError
from oddkit.metrics import _check_threshold, _confusion, check_labels

__all__ = ["plot_curves", "plot_pr", "plot_roc"]

Curves = Mapping[str, tuple[ArrayLike, ArrayLike]]


def _checked(curves: Curves, thresholds: Mapping[str, float] | None, what: str) -> dict:
    if not curves:
        raise DataError(f"no curves to plot; pass a mapping detector name -> (y, scores) to the {what} plot")
    unknown = set(thresholds or {}) - set(curves)
    if unknown:
        raise DataError(
            f"thresholds given for {sorted(unknown)} but no curve has that name; "
            f"use names from {sorted(curves)}"
        )
    out = {}
    for name, pair in curves.items():
        try:
            y, scores = pair
        except (TypeError, ValueError):
            raise DataError(f"curve {name!r} must be a (y, scores) pair") from None
        out[name] = check_labels(
            y, scores, need_normals=True, need_anomalies=True, purpose=f"the {what} curve of {name!r}"
        )
    return out


def _new_figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, object]:
    fig = Figure(figsize=(6.4, 5.2), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0.0, 1.0), ylim=(0.0, 1.02))
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def _mark_operating_point(ax, line, x: float, y: float, label: str) -> None:
    """A dot, in the curve's colour, where the detector's threshold puts it on its curve."""
    ax.plot(x, y, marker="o", markersize=7, linestyle="none", color=line.get_color(),
            markeredgecolor="black", label=label)


def plot_roc(
    curves: Curves,
    path: str | os.PathLike[str],
    title: str = "ROC curve",
    *,
    thresholds: Mapping[str, float] | None = None,
) -> Path:
    """Plot the ROC curves of one or more detectors into one PNG.

    Parameters
    ----------
    curves : mapping of str to (y, scores)
        Detector name -> its labels (0 normal, 1 anomaly) and scores (higher = more anomalous).
    path : str or path-like
        Where to write the image; parent folders are created.
    title : str, default "ROC curve"
        Figure title.
    thresholds : mapping of str to float, optional
        Detector name -> decision threshold; its operating point (FPR, recall) at
        ``score >= threshold`` is marked on that detector's curve.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> y = np.array([0, 0, 1, 1]); s = np.array([0.1, 0.4, 0.35, 0.8])
    >>> out = plot_roc({"ae": (y, s)}, os.path.join(tempfile.mkdtemp(), "roc.png"), thresholds={"ae": 0.5})
    >>> out.exists()
    True
    """
    data = _checked(curves, thresholds, "ROC")
    fig, ax = _new_figure(title, "false-positive rate", "recall (true-positive rate)")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance (AUC = 0.5)")
    for name, (y, scores) in data.items():
        fpr, tpr, _ = roc_curve(y, scores)
        (line,) = ax.plot(fpr, tpr, linewidth=1.6, label=f"{name} (AUC = {roc_auc_score(y, scores):.3f})")
        if thresholds and name in thresholds:
            t = _check_threshold(thresholds[name])
            c = _confusion(y, scores, t)
            _mark_operating_point(ax, line, c["fpr"], c["recall"], f"{name} at threshold {t:.4g}")
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def plot_pr(
    curves: Curves,
    path: str | os.PathLike[str],
    title: str = "Precision-recall curve",
    *,
    thresholds: Mapping[str, float] | None = None,
) -> Path:
    """Plot the precision-recall curves of one or more detectors into one PNG.

    Parameters
    ----------
    curves : mapping of str to (y, scores)
        Detector name -> its labels (0 normal, 1 anomaly) and scores (higher = more anomalous).
    path : str or path-like
        Where to write the image; parent folders are created.
    title : str, default "Precision-recall curve"
        Figure title.
    thresholds : mapping of str to float, optional
        Detector name -> decision threshold; its operating point (recall, precision) at
        ``score >= threshold`` is marked on that detector's curve (omitted if it flags nothing,
        where precision is undefined).

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> y = np.array([0, 0, 1, 1]); s = np.array([0.1, 0.4, 0.35, 0.8])
    >>> plot_pr({"ae": (y, s)}, os.path.join(tempfile.mkdtemp(), "pr.png")).suffix
    '.png'
    """
    data = _checked(curves, thresholds, "precision-recall")
    fig, ax = _new_figure(title, "recall", "precision")
    # A random ranking has precision equal to the anomaly rate; detectors evaluated on different
    # label sets get one chance line per distinct rate.
    for prevalence in sorted({round(float(y.mean()), 6) for y, _ in data.values()}):
        ax.axhline(
            prevalence,
            linestyle="--",
            color="grey",
            linewidth=1,
            label=f"chance (anomaly rate {prevalence:.3g})",
        )
    for name, (y, scores) in data.items():
        precision, recall, _ = precision_recall_curve(y, scores)
        ap = average_precision_score(y, scores)
        (line,) = ax.plot(
            recall, precision, drawstyle="steps-post", linewidth=1.6, label=f"{name} (AP = {ap:.3f})"
        )
        if thresholds and name in thresholds:
            t = _check_threshold(thresholds[name])
            c = _confusion(y, scores, t)
            if c["tp"] + c["fp"] > 0:
                _mark_operating_point(ax, line, c["recall"], c["precision"], f"{name} at threshold {t:.4g}")
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def plot_curves(
    curves: Curves,
    folder: str | os.PathLike[str],
    prefix: str = "",
    *,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, Path]:
    """Write both ``{prefix}roc.png`` and ``{prefix}pr.png`` into ``folder``.

    Parameters
    ----------
    curves : mapping of str to (y, scores)
        Detector name -> its labels and scores, as for :func:`plot_roc`.
    folder : str or path-like
        Output folder; created if missing.
    prefix : str, default ""
        Prepended to the file names, e.g. ``"test_"``.
    thresholds : mapping of str to float, optional
        Operating points to mark, as for :func:`plot_roc`.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"roc": ..., "pr": ...}``.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> y = np.array([0, 0, 1, 1]); s = np.array([0.1, 0.4, 0.35, 0.8])
    >>> sorted(plot_curves({"ae": (y, s)}, tempfile.mkdtemp(), prefix="test_"))
    ['pr', 'roc']
    """
    folder = Path(folder)
    return {
        "roc": plot_roc(curves, folder / f"{prefix}roc.png", thresholds=thresholds),
        "pr": plot_pr(curves, folder / f"{prefix}pr.png", thresholds=thresholds),
    }
