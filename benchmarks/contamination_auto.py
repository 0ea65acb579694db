"""How close does ``contamination="auto"`` come to the true anomaly share, and do its labels beat 0.1's?

On the contaminated protocol of ``run_tabular.py`` (same datasets and splits: stratified 70/30, at
most 10,000 rows, fitted on the whole 70% with its anomalies, no labels), each detector is fitted
once per (dataset, seed); for every method of ``oddkit.detectors.contamination.estimate_contamination``
the share it estimates from the training scores is compared with the true share of anomalies in
the training rows (absolute error), and the labels it gives the test rows (score >= the threshold
that flags the estimated share of training rows) are compared with the test labels by F1, beside
the labels of the fixed ``contamination=0.1``. For the ensemble, the estimate is the median of its
members' estimates, as ``EnsembleDetector`` computes it.

The method ``"auto"`` uses is chosen on the selection half of the datasets (the even positions in
name order, as ``tabular_search.py``) by mean absolute error; the confirmation half checks it.

    .venv/bin/python benchmarks/contamination_auto.py             # resumable; writes CONTAMINATION_AUTO.md
    .venv/bin/python benchmarks/contamination_auto.py --report-only
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from bench_runtime import append_record, limit_threads, read_records, recorded_jobs

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "contamination_auto.jsonl"
REPORT = HERE / "CONTAMINATION_AUTO.md"
DETECTORS = ("oddkit-default", "oddkit-IsolationForest", "oddkit-KNN")
FIXED = 0.1


def build(name: str, seed: int):
    import oddkit

    if name == "oddkit-default":
        return oddkit.default_detector(random_state=seed)
    if name == "oddkit-IsolationForest":
        return oddkit.IsolationForestDetector(random_state=seed)
    return oddkit.KNNDetector()


def run(args) -> None:
    import numpy as np
    from bench_data import DATA_DIR, list_datasets, make_split
    from sklearn.metrics import f1_score

    from oddkit.detectors.contamination import METHODS, estimate_contamination
    from oddkit.threshold import contamination_threshold

    done = recorded_jobs(RESULTS, ("dataset", "seed", "detector"))
    for seed in args.seeds:
        for info in list_datasets(args.data_dir or DATA_DIR):
            split = None
            for name in DETECTORS:
                if (info.name, seed, name) in done:
                    continue
                split = split or make_split(info, seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    detector = build(name, seed).fit(split.X_train)
                    test_scores = detector.decision_function(split.X_test)
                train_scores = detector.decision_scores_
                members = getattr(detector, "members_", None)
                record = {"dataset": info.name, "seed": seed, "detector": name,
                          "true_share": float(split.y_train.mean()), "estimates": {}, "f1": {}}
                for method in METHODS:
                    if members is not None:
                        share = float(np.median([estimate_contamination(m.decision_scores_, method) for m in members]))
                    else:
                        share = estimate_contamination(train_scores, method)
                    record["estimates"][method] = share
                for label, share in [*record["estimates"].items(), ("fixed", FIXED)]:
                    threshold = contamination_threshold(train_scores, share)
                    record["f1"][label] = float(f1_score(split.y_test, test_scores >= threshold, zero_division=0))
                append_record(RESULTS, record)
                print(f"{info.name} seed={seed} {name}: true {record['true_share']:.3f} "
                      + " ".join(f"{m} {v:.3f}" for m, v in record["estimates"].items()), flush=True)


def report() -> None:
    import numpy as np
    import pandas as pd

    from oddkit.detectors.contamination import AUTO_METHOD, METHODS

    records = read_records(RESULTS)
    if not records:
        return
    rows = []
    for r in records:
        for method in (*METHODS, "fixed"):
            estimate = r["estimates"].get(method, FIXED)
            rows.append({"dataset": r["dataset"], "seed": r["seed"], "detector": r["detector"], "method": method,
                         "error": abs(estimate - r["true_share"]), "f1": r["f1"][method]})
    frame = pd.DataFrame(rows)
    datasets = sorted(frame.dataset.unique())
    halves = {"selection": datasets[0::2], "confirmation": datasets[1::2]}
    lines = [
        "# contamination=\"auto\": estimated against true anomaly shares",
        "",
        "Written by `.venv/bin/python benchmarks/contamination_auto.py` (method in its docstring). Contaminated "
        f"protocol of `run_tabular.py`, {len(datasets)} datasets, seeds "
        f"{', '.join(map(str, sorted(frame.seed.unique())))}. Per half of the datasets (selection = even positions "
        "in name order, confirmation = odd), per detector and method: the mean absolute error of the estimated "
        "share against the true share of anomalies among the training rows (means over datasets of the means "
        "over seeds), and the mean F1 of the test labels the estimated share's threshold gives. `fixed` is "
        f"`contamination={FIXED}`. True shares range from {min(r['true_share'] for r in records):.3f} to "
        f"{max(r['true_share'] for r in records):.3f} (mean "
        f"{np.mean([r['true_share'] for r in records]):.3f}).",
        "",
        f"`\"auto\"` uses `{AUTO_METHOD}`.",
        "",
        "| half | detector | method | mean abs. error | mean F1 |",
        "|---|---|---|---:|---:|",
    ]
    for half, names in halves.items():
        part = frame[frame.dataset.isin(names)]
        for detector in DETECTORS:
            sub = part[part.detector == detector]
            for method in (*METHODS, "fixed"):
                cell = sub[sub.method == method].groupby("dataset")[["error", "f1"]].mean().mean()
                mark = " (auto)" if method == AUTO_METHOD else ""
                lines.append(f"| {half} | {detector} | {method}{mark} | {cell.error:.3f} | {cell.f1:.3f} |")
    selection = frame[frame.dataset.isin(halves["selection"]) & (frame.detector == "oddkit-default")]
    errors = selection.groupby(["method", "dataset"]).error.mean().groupby("method").mean()
    best = errors.drop("fixed").idxmin()
    lines += ["", f"On the selection half, the default's lowest mean absolute error among the methods is `{best}`'s "
              f"({errors[best]:.3f}; the fixed {FIXED}: {errors['fixed']:.3f}), hence `\"auto\"` = `{AUTO_METHOD}`. "
              "No method estimates the share better than the fixed 0.1 on average, here: the anomalies of most of "
              "these datasets do not stand apart in the training scores (shares up to a third, many clustered), and "
              "every method counts only the rows that do. A labelled dev set (`oddkit.threshold`) remains the way to "
              "set a threshold that matters."]
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    if not args.report_only:
        run(args)
    report()


if __name__ == "__main__":
    sys.exit(main())
