"""What the three applications (fraud, intrusion, cancer) share: finding the data, fitting oddkit's
default detector beside scikit-learn's IsolationForest and LOF and PyOD's KNN on the same rows,
choosing each one's threshold on the same dev split, and writing the side-by-side table.

Each application's run.py imports this module; it is not part of the oddkit package.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import oddkit
from oddkit.data.datasets import shared_dataset_path
from oddkit.metrics import operating_report
from oddkit.threshold import choose_threshold

HERE = Path(__file__).resolve().parent


def arguments(app: str, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=HERE / app / "out",
                        help="output folder (default: examples/%(prog)s/out)".replace("%(prog)s", app))
    parser.add_argument("--quick", action="store_true",
                        help="subsample the rows for a fast smoke run (the tests use it); figures are not comparable")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of every detector")
    return parser.parse_args()


def shared_data(name: str) -> Path:
    """``../shared/data/<name>.npz`` (or under $ODDKIT_SHARED_DATA); exit 0 with a message when absent."""
    path = shared_dataset_path(name)
    if path is None:
        print(f"skipped: {name}.npz is not in the shared data folder (../shared/data beside the checkout, "
              "or set ODDKIT_SHARED_DATA to the folder that holds it)")
        sys.exit(0)
    return path


class _Scaled:
    """A scikit-learn or PyOD detector on standardised columns, scored higher = more anomalous."""

    def __init__(self, model, sign: float, method: str):
        from sklearn.preprocessing import StandardScaler

        self.scaler, self.model, self.sign, self.method = StandardScaler(), model, sign, method

    def fit(self, X):
        self.model.fit(self.scaler.fit_transform(np.asarray(X, dtype=np.float64)))
        return self

    def decision_function(self, X):
        return self.sign * getattr(self.model, self.method)(self.scaler.transform(np.asarray(X, dtype=np.float64)))


def detectors(seed: int) -> dict:
    """oddkit's recommended default and the three peers, with their libraries' default settings
    (the peers on standardised columns, LOF as a novelty detector)."""
    from pyod.models.knn import KNN
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    return {
        "oddkit default_detector": oddkit.default_detector(random_state=seed),
        "sklearn IsolationForest": _Scaled(IsolationForest(random_state=seed), -1.0, "score_samples"),
        "sklearn LOF (novelty)": _Scaled(LocalOutlierFactor(novelty=True), -1.0, "score_samples"),
        "PyOD KNN": _Scaled(KNN(), 1.0, "decision_function"),
    }


def compare(train, dev, y_dev, test, y_test, goal: str, seed: int, *, prevalence=None, costs=None,
            miss_cost_dev=None, miss_cost_test=None) -> tuple[pd.DataFrame, dict]:
    """Fit every detector on ``train`` (normal rows), choose its threshold for ``goal`` on the
    labelled dev rows, and measure it on the test rows.

    Returns the table (one row per detector) and, per detector, ``(fitted, ThresholdChoice, test scores)``.
    """
    rows, fitted = [], {}
    for name, detector in detectors(seed).items():
        start = time.perf_counter()
        detector.fit(train)
        choice = choose_threshold(detector.decision_function(dev), y_dev, goal, prevalence=prevalence,
                                  miss_costs=miss_cost_dev)
        scores = detector.decision_function(test)
        seconds = time.perf_counter() - start
        r = operating_report(y_test, scores, choice.threshold, prevalence=prevalence, costs=costs,
                             miss_costs=miss_cost_test)
        row = {"detector": name, "ROC AUC": r["roc_auc"], "PR AUC": r["pr_auc"],
               "precision": r["data"]["precision"], "recall": r["data"]["recall"], "FPR": r["data"]["fpr"],
               "F1": r["data"]["f1"]}
        if r["production"] is not None:
            row.update({"precision @ prod": r["production"]["precision"], "F1 @ prod": r["production"]["f1"],
                        "alerts /10k @ prod": r["production"]["alerts_per_10000"]})
            if costs is not None:
                row["cost /row @ prod"] = r["production"]["expected_cost"]
        row["fit+score s"] = seconds
        rows.append(row)
        fitted[name] = (detector, choice, scores)
        print(f"  {name}: ROC AUC {r['roc_auc']:.3f}, recall {r['data']['recall']:.3f} ({seconds:.1f} s)", flush=True)
    return pd.DataFrame(rows).set_index("detector"), fitted


def fingerprint(X) -> str:
    """sha256 of the training rows as float64, for the report's model card."""
    import hashlib

    return "sha256 " + hashlib.sha256(np.ascontiguousarray(np.asarray(X, dtype=np.float64)).tobytes()).hexdigest()


def write_table(table: pd.DataFrame, out: Path, name: str = "results") -> str:
    """Write ``name.csv`` and ``name.md`` into ``out``; return the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{name}.csv", float_format="%.6g")
    markdown = to_markdown(table)
    (out / f"{name}.md").write_text(markdown + "\n", encoding="utf-8")
    return markdown


def to_markdown(table: pd.DataFrame) -> str:
    """A pipe table, floats to 3 decimals (pandas' to_markdown would need tabulate)."""
    def cell(v):
        return f"{v:.3f}" if isinstance(v, (float, np.floating)) else str(v)

    head = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]
    for index, *row in table.itertuples():
        lines.append("| " + " | ".join([str(index)] + [cell(v) for v in row]) + " |")
    return "\n".join(lines)
