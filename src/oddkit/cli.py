"""The command line: parses, calls the library, prints. Run ``oddkit --help``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table as RichTable

from oddkit.exceptions import OddkitError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="oddkit: learn what normal looks like, score new data, choose a threshold, evaluate.")
console = Console()
errors = Console(stderr=True)

DETECTOR_NAMES = {
    "autoencoder": "AutoEncoderDetector",
    "gaussian": "GaussianDetector",
    "pca": "PCADetector",
    "ocsvm": "OneClassSVMDetector",
    "iforest": "IsolationForestDetector",
    "knn": "KNNDetector",
    "default": "EnsembleDetector",
}
_state = {"debug": False}

LabelCol = Annotated[Optional[str], typer.Option(
    "--label-col", help="Anomaly label column (1 = anomaly, 0 = normal); never a feature. "
                        "Default: 'y' when present.")]
IdCols = Annotated[Optional[list[str]], typer.Option(
    "--id-col", help="Column carried through to the output and never used as a feature (repeatable).")]


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
    data: Annotated[Path, typer.Argument(help="Training data: CSV, Parquet, .npy or .npz.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to save the model in.")],
    detector: Annotated[str, typer.Option(help=f"One of: {', '.join(DETECTOR_NAMES)}.")] = "autoencoder",
    label_col: LabelCol = None,
    id_col: IdCols = None,
    contamination: Annotated[Optional[float], typer.Option(help="Expected anomaly share of the training data.")] = None,
    random_state: Annotated[Optional[int], typer.Option(help="Seed, for detectors that are random.")] = 0,
    impute: Annotated[Optional[str], typer.Option(help="'median' fills NaN/inf instead of failing.")] = None,
    unknown_categories: Annotated[Optional[str], typer.Option(help="'error' (default) or 'ignore'.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Auto-encoder: most training epochs.")] = None,
    hidden_sizes: Annotated[Optional[str], typer.Option(help="Auto-encoder: hidden widths, e.g. 64,32.")] = None,
    latent_dim: Annotated[Optional[int], typer.Option(help="Auto-encoder: code width.")] = None,
    noise: Annotated[Optional[str], typer.Option(help="Auto-encoder: 'gaussian' or 'mask' (de-noising).")] = None,
    device: Annotated[Optional[str], typer.Option(help="Auto-encoder: 'cpu', 'cuda' or 'auto'.")] = None,
    n_threads: Annotated[Optional[int], typer.Option(help="Auto-encoder: torch threads.")] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", help="Any detector parameter as NAME=VALUE (repeatable), e.g. -p nu=0.1.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """Train a detector on DATA (mostly normal rows) and save it to --out."""
    cls = _detector_class(detector)
    given = {"contamination": contamination, "random_state": random_state, "impute": impute,
             "unknown_categories": unknown_categories, "epochs": epochs, "latent_dim": latent_dim,
             "hidden_sizes": None if hidden_sizes is None else _parse_value(hidden_sizes),
             "noise": noise, "device": device, "n_threads": n_threads}
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
        params[name] = _parse_value(value)
    if "verbose" in accepted:
        params.setdefault("verbose", 0 if quiet else 1)
    table = _read(data, label_col, id_col)
    model = cls(**params)
    started = time.perf_counter()
    model.fit(table.X)
    model.save(out)
    console.print(f"trained {cls.__name__} on {len(table.X):,} rows x {table.X.shape[1]} columns "
                  f"in {time.perf_counter() - started:.1f} s; threshold {model.threshold_:.6g} "
                  f"({model.threshold_goal_}); saved to {out}")


@app.command()
def score(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit'.")],
    data: Annotated[Path, typer.Argument(help="Rows to score: CSV, Parquet, .npy or .npz.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write: id columns, score, label.")] = Path("scores.csv"),
    label_col: LabelCol = None,
    id_col: IdCols = None,
    batch_rows: Annotated[int, typer.Option(help="Rows read and scored at a time.")] = 100_000,
):
    """Score DATA with MODEL: one row per input row with its score and label (1 = anomaly)."""
    from oddkit.data import iter_table_batches
    from oddkit.persist import load

    detector = load(model)
    n_rows = n_flagged = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    for i, batch in enumerate(iter_table_batches(data, batch_rows=batch_rows, label_col=_label_col(label_col),
                                                 id_cols=tuple(id_col or ()))):
        scores = detector.decision_function(_features_for(detector, batch.X))
        labels = (scores >= detector.threshold_).astype(np.int64)
        frame = batch.ids.reset_index(drop=True) if batch.ids is not None else pd.DataFrame(index=range(len(scores)))
        frame = frame.assign(score=scores, label=labels)
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
    from oddkit.persist import load
    from oddkit.report.plots import plot_curves

    detector = load(model)
    table = _read(data, label_col, id_col, require_label=True)
    scores = detector.decision_function(_features_for(detector, table.X))
    report = evaluate_scores(table.y, scores, threshold=detector.threshold_)
    _print_metrics(f"{type(detector).__name__} on {data.name} (threshold {detector.threshold_:.6g}, "
                   f"{detector.threshold_goal_})", report.as_rows())
    folder = plots if plots is not None else model.parent / f"{model.name}-evaluation"
    written = plot_curves({model.name: (table.y, scores)}, folder, thresholds={model.name: detector.threshold_})
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
    from oddkit.persist import load
    from oddkit.threshold import choose_threshold

    detector = load(model)
    table = _read(dev, label_col, id_col, require_label=True)
    choice = choose_threshold(detector.decision_function(_features_for(detector, table.X)), table.y, goal)
    detector.set_threshold(choice)
    detector.save(model)
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


def main() -> None:
    """Entry point: run the app; turn oddkit's errors into one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except (OddkitError, OSError) as exc:
        # OSError: a file that is missing or unreadable is the user's to fix, not a bug to trace.
        if _state["debug"]:
            raise
        errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except Exception as exc:  # click's usage errors and aborts
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
