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

__all__ = ["build_report", "sha256_of_file", "write_report"]

_TOP_COLUMNS = 5
"""Columns drawn per explained anomaly (the largest shares)."""
_MAX_SUMMARY_COLUMNS = 60
_MAX_GROUPS = 60


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


def _curve_images(y: np.ndarray, scores: np.ndarray, threshold: float, confusion: dict) -> dict[str, str]:
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
               label=f"chance (anomaly rate {y.mean():.3g})")
    precision, recall, _ = precision_recall_curve(y, scores)
    ax.plot(recall, precision, drawstyle="steps-post", linewidth=1.6, label="detector")
    if confusion["tp"] + confusion["fp"] > 0:
        ax.plot(confusion["recall"], confusion["precision"], marker="o", markersize=8, linestyle="none",
                color="crimson", markeredgecolor="black", label=f"threshold {threshold:.4g}")
    ax.legend(loc="best", fontsize="small")
    return {"roc": roc, "pr": _png(fig)}


def _histogram_image(scores: np.ndarray, y: np.ndarray | None, threshold: float) -> str:
    fig, ax = _figure("Anomaly scores", "score (higher = more anomalous)",
                      "density" if y is not None else "rows", size=(7.5, 4.2))
    low, high = float(scores.min()), float(scores.max())
    if high <= low:
        high = low + 1.0
    bins = np.linspace(low, high, 51)
    if y is None:
        ax.hist(scores, bins=bins, color="steelblue", alpha=0.8, label="all rows")
    else:
        for label, name, colour in ((0, "normal (label 0)", "steelblue"), (1, "anomaly (label 1)", "crimson")):
            part = scores[y == label]
            if part.size:
                ax.hist(part, bins=bins, density=True, color=colour, alpha=0.55, label=f"{name}, {part.size:,} rows")
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1.2, label=f"threshold {threshold:.4g}")
    ax.legend(loc="best", fontsize="small")
    return _png(fig)


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


def _data_summary(frame: pd.DataFrame | None, X: Any, y: np.ndarray | None, scores: np.ndarray) -> dict:
    summary: dict[str, Any] = {"rows": len(scores), "columns": [], "more_columns": 0}
    if frame is None:
        shape = np.asarray(X).shape
        summary["shape"] = " × ".join(str(s) for s in shape)
        summary["n_columns"] = None
    else:
        summary["shape"] = f"{frame.shape[0]:,} rows × {frame.shape[1]:,} columns"
        summary["n_columns"] = frame.shape[1]
        summary["missing"] = int(frame.isna().to_numpy().sum())
        for name in list(frame.columns)[:_MAX_SUMMARY_COLUMNS]:
            col = frame[name]
            numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
            entry = {"name": str(name), "dtype": str(col.dtype), "missing": int(col.isna().sum())}
            if numeric:
                values = pd.to_numeric(col, errors="coerce")
                entry["detail"] = (f"mean {_fmt(values.mean())}, sd {_fmt(values.std())}, "
                                   f"min {_fmt(values.min())}, max {_fmt(values.max())}")
            else:
                counts = col.astype("string").value_counts(dropna=True)
                top = ", ".join(f"{k} ({v:,})" for k, v in counts.head(3).items())
                entry["detail"] = f"{counts.size:,} distinct; most common: {top}"
            summary["columns"].append(entry)
        summary["more_columns"] = max(0, frame.shape[1] - _MAX_SUMMARY_COLUMNS)
    if y is not None:
        summary["anomalies"] = int(y.sum())
        summary["anomaly_rate"] = _pct(float(y.mean()))
    summary["score_range"] = f"{_fmt(float(scores.min()))} to {_fmt(float(scores.max()))}"
    return summary


def _metric_rows(report: dict) -> list[dict]:
    data, prod = report["data"], report["production"]
    spec = [
        ("anomaly rate", "prevalence", _pct),
        ("recall (anomalies caught)", "recall", _fmt),
        ("false-positive rate", "fpr", _fmt),
        ("precision (alerts that are anomalies)", "precision", _fmt),
        ("F1", "f1", _fmt),
        ("alerts per 10,000 rows", "alerts_per_10000", lambda v: _fmt(v, 2)),
        ("expected cost per row", "expected_cost", _fmt),
    ]
    return [{"name": name, "data": show(data[key]), "production": None if prod is None else show(prod[key])}
            for name, key, show in spec]


def _explanations(detector, X: Any, frame: pd.DataFrame | None, top_positions: np.ndarray) -> tuple[list, str]:
    """Per-row list of (column, share) for the top anomalies, and a note when they cannot be drawn."""
    if not hasattr(detector, "explain"):
        return [], f"{type(detector).__name__} has no explain method, so the anomalies are listed without explanations."
    if frame is None:
        return [], "Explanations are drawn for tables only."
    subset = X.iloc[top_positions] if isinstance(X, pd.DataFrame) else np.asarray(X)[top_positions]
    try:
        shares = detector.explain(subset)
    except Exception as exc:  # noqa: BLE001 - an explanation failing must not sink the report
        return [], f"explain failed ({type(exc).__name__}: {exc}); the anomalies are listed without explanations."
    if not isinstance(shares, pd.DataFrame) or len(shares) != len(top_positions):
        return [], "explain did not return one row of per-column shares per anomaly; nothing drawn."
    drawn = []
    for i in range(len(shares)):
        row = shares.iloc[i].astype(float).sort_values(ascending=False).head(_TOP_COLUMNS)
        drawn.append([{"column": str(col), "share": float(v), "width": max(0.0, min(100.0, 100 * float(v)))}
                      for col, v in row.items()])
    return drawn, ""


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
    return {
        "detector": type(detector).__name__,
        "params": params,
        "training_rows": None if training_rows is None else _fmt(training_rows),
        "n_features": _fmt(getattr(detector, "n_features_in_", None)),
        "threshold": _fmt(threshold, 6),
        "threshold_goal": threshold_goal,
        "fingerprint": fingerprint,
        "fingerprint_of": fingerprint_of,
        "seed": repr(detector.get_params(deep=False).get("random_state")),
        "versions": versions,
        "model_folder": None if model_folder is None else str(model_folder),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def build_report(
    detector,
    X: Any,
    y: ArrayLike | None = None,
    *,
    groups: ArrayLike | str | None = None,
    prevalence: float | None = None,
    costs: tuple[float, float] | None = None,
    threshold: float | None = None,
    top: int = 20,
    title: str | None = None,
    data_name: str | None = None,
    model_folder: str | os.PathLike[str] | None = None,
    training_fingerprint: str | None = None,
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

    from oddkit.metrics import _check_y, operating_report

    check_is_fitted(detector)
    if isinstance(groups, str):
        if not isinstance(X, pd.DataFrame) or groups not in X.columns:
            raise DataError(f"group column {groups!r} is not a column of the data; pass one of its columns "
                            "or an array with one group per row")
        group_values = X[groups].to_numpy()
        if groups not in list(getattr(detector, "feature_names_in_", [])):
            X = X.drop(columns=[groups])
    else:
        group_values = None if groups is None else np.asarray(groups, dtype=object)
    try:
        top = int(top)
    except (TypeError, ValueError):
        raise DataError(f"top must be a whole number of anomalies to list, got {top!r}") from None
    if top < 0:
        raise DataError(f"top must be >= 0 (anomalies to list), got {top}")

    scores = np.asarray(detector.decision_function(X), dtype=np.float64)
    n = scores.shape[0]
    y_arr = None if y is None else _check_y(y)
    if y_arr is not None and y_arr.shape[0] != n:
        raise DataError(f"y has {y_arr.shape[0]} labels but the data has {n} rows; pass one label per row")
    if group_values is not None and group_values.shape[0] != n:
        raise DataError(f"groups has {group_values.shape[0]} values but the data has {n} rows; pass one group per row")
    threshold_goal = getattr(detector, "threshold_goal_", "")
    if threshold is None:
        threshold = float(detector.threshold_)
    else:
        threshold_goal = "given to the report"
    from oddkit.threshold import prevalence_and_costs_from_goal

    prevalence, costs = prevalence_and_costs_from_goal(threshold_goal, prevalence, costs)
    flagged = scores >= threshold
    frame = _as_frame(X)

    metrics = None
    labels_note = ""
    if y_arr is None:
        labels_note = ("No labels were given, so there are no metrics, curves or confusion matrix: "
                       "pass labelled data (1 = anomaly) to see how well the threshold does.")
    elif y_arr.min() == y_arr.max():
        labels_note = (f"Every label is {int(y_arr[0])}, so recall, precision and the curves cannot be computed: "
                       "pass data with both normal rows and anomalies.")
    else:
        metrics = operating_report(y_arr, scores, threshold, prevalence=prevalence, costs=costs)

    order = np.argsort(-scores, kind="stable")[:top]
    explanations, explain_note = _explanations(detector, X, frame, order) if top else ([], "")
    index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(n)
    anomalies = []
    for rank, pos in enumerate(order, start=1):
        anomalies.append({
            "rank": rank,
            "row": str(index[pos]),
            "score": _fmt(float(scores[pos]), 6),
            "flagged": bool(flagged[pos]),
            "label": None if y_arr is None else int(y_arr[pos]),
            "group": None if group_values is None else str(group_values[pos]),
            "shares": explanations[rank - 1] if explanations else [],
        })

    context = {
        "title": title or f"oddkit report: {type(detector).__name__}" + (f" on {data_name}" if data_name else ""),
        "data_name": data_name,
        "summary": _data_summary(frame, X, y_arr, scores),
        "threshold": _fmt(threshold, 6),
        "threshold_goal": threshold_goal,
        "flagged": _fmt(int(flagged.sum())),
        "flag_rate": _pct(float(flagged.mean())),
        "labels_note": labels_note,
        "metrics": None,
        "histogram": _histogram_image(scores, y_arr, threshold),
        "anomalies": anomalies,
        "explain_note": explain_note,
        "has_labels": y_arr is not None,
        "has_groups": group_values is not None,
        "groups": None if group_values is None else _group_rows(group_values, scores, flagged, y_arr)[:_MAX_GROUPS],
        "card": _model_card(detector, model_folder, training_fingerprint, threshold, threshold_goal),
        "prevalence_note": "",
    }
    if metrics is not None:
        prod = metrics["production"]
        context["metrics"] = {
            "roc_auc": _fmt(metrics["roc_auc"]),
            "pr_auc": _fmt(metrics["pr_auc"]),
            "rows": _metric_rows(metrics),
            "has_production": prod is not None,
            "data_rate": _pct(metrics["data"]["prevalence"]),
            "production_rate": None if prod is None else _pct(prod["prevalence"]),
            "confusion": metrics["confusion"],
            "costs": None if metrics["costs"] is None else {k: _fmt(v) for k, v in metrics["costs"].items()},
            "images": _curve_images(y_arr, scores, threshold, {**metrics["confusion"], **{
                k: metrics["data"][k] for k in ("recall", "fpr", "precision")}}),
        }
        if prod is None:
            context["prevalence_note"] = ("No production anomaly rate was stated (a cost goal's third number or "
                                          "prevalence=...), so precision, F1, alerts and cost hold at this data's "
                                          "own anomaly rate only.")
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
    threshold: float | None = None,
    top: int = 20,
    title: str | None = None,
    data_name: str | None = None,
    model_folder: str | os.PathLike[str] | None = None,
    training_fingerprint: str | None = None,
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
    X : DataFrame or array of shape (n, d)
        The data to report on, as the detector takes it.
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
    threshold : float, optional
        Flag rows scoring at or above it; defaults to ``detector.threshold_``.
    top : int, default 20
        How many of the highest-scoring rows to list and explain.
    title, data_name : str, optional
        The page title and the data's name (e.g. the file name) shown in it.
    model_folder : str or path-like, optional
        The model's folder; the model card then shows it and, without ``training_fingerprint``,
        the sha256 of its ``integrity.json``.
    training_fingerprint : str, optional
        A fingerprint of the training data (e.g. :func:`sha256_of_file` of the training file).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    DataError
        If ``y`` or ``groups`` do not have one value per row, ``prevalence`` or ``costs`` are
        out of range, or ``groups`` names no column.
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
        detector, X, y, groups=groups, prevalence=prevalence, costs=costs, threshold=threshold, top=top,
        title=title, data_name=data_name, model_folder=model_folder, training_fingerprint=training_fingerprint,
    )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
