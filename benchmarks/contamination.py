"""How much do hidden anomalies in the training data hurt? Plain vs robust auto-encoder, Gaussian, IForest.

For every tabular dataset of the clean protocol (benchmarks/bench_data.py: the same stratified
70/30 split), the training data is the split's normal rows plus ``a`` of the split's own anomalies,
drawn without replacement and seeded, so that ``a / (n + a)`` is 0%, 1%, 5% or 10%. A level that
needs more anomalies than the split holds is recorded as unreachable and left out of the means.
Every detector keeps the library's default ``contamination`` (0.1) at every level: the true rate is
never given. Test: the split's 30%, as in the clean protocol. One JSON line per (dataset, seed,
level, detector) in ``benchmarks/results/contamination.jsonl``; the run resumes where it stopped.

    .venv/bin/python benchmarks/contamination.py                 # everything, resuming
    .venv/bin/python benchmarks/contamination.py --seeds 0 --max-seconds 1800
    .venv/bin/python benchmarks/contamination.py --report-only   # rewrite CONTAMINATION.md
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from bench_runtime import (
    append_record,
    command_line,
    read_records,
    recorded_jobs,
    run_study,
    study_parser,
    versions,
)

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "contamination.jsonl"
REPORT_FILE = Path(__file__).resolve().parent / "CONTAMINATION.md"
LEVELS = (0.0, 0.01, 0.05, 0.10)
DETECTORS = ("oddkit-AutoEncoder", "oddkit-AutoEncoder-robust", "oddkit-Gaussian", "oddkit-IsolationForest")
JOB_KEY = ("dataset", "seed", "level", "detector")


def build(name: str, seed: int):
    import oddkit

    return {
        "oddkit-AutoEncoder": lambda: oddkit.AutoEncoderDetector(robust=False, n_estimators=1, random_state=seed, verbose=0),
        "oddkit-AutoEncoder-robust": lambda: oddkit.AutoEncoderDetector(robust=True, n_estimators=1, random_state=seed, verbose=0),
        "oddkit-Gaussian": lambda: oddkit.GaussianDetector(),
        "oddkit-IsolationForest": lambda: oddkit.IsolationForestDetector(random_state=seed),
    }[name]()


def injected_training_rows(split, level: float, seed: int):
    """The split's normal rows plus enough of its anomalies for ``level``; None when it has too few."""
    import numpy as np

    normal = split.X_train[split.y_train == 0]
    anomalies = split.X_train[split.y_train == 1]
    n_injected = round(level * len(normal) / (1.0 - level))
    if n_injected > len(anomalies):
        return None, n_injected
    chosen = np.random.default_rng(seed).choice(len(anomalies), size=n_injected, replace=False)
    return np.vstack([normal, anomalies[chosen]]), n_injected


def run(args) -> None:
    import numpy as np
    from bench_data import list_datasets, make_split
    from sklearn.metrics import roc_auc_score

    done = recorded_jobs(args.results, JOB_KEY)
    infos = [i for i in list_datasets() if not args.datasets or i.name in args.datasets]
    started = time.monotonic()
    for seed in args.seeds:
        for info in infos:
            split = None
            for level in LEVELS:
                for detector in DETECTORS:
                    if (info.name, seed, level, detector) in done:
                        continue
                    if args.max_seconds and time.monotonic() - started > args.max_seconds:
                        print("time budget spent; rerun to continue")
                        return
                    split = split or make_split(info, seed)
                    X_fit, n_injected = injected_training_rows(split, level, seed)
                    record = {"dataset": info.name, "seed": seed, "level": level, "detector": detector,
                              "n_injected": n_injected, "reachable": X_fit is not None}
                    if X_fit is not None:
                        t = time.perf_counter()
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            model = build(detector, seed).fit(X_fit)
                            scores = model.decision_function(split.X_test)
                        record.update(roc_auc=float(roc_auc_score(split.y_test, scores)),
                                      fit_seconds=time.perf_counter() - t, n_fit=len(X_fit))
                        if n_injected:
                            # How well the detector sees the anomalies it was trained on: a robust
                            # fit can only leave out the ones it ranks among the worst.
                            injected = np.arange(len(X_fit)) >= len(X_fit) - n_injected
                            record.update(training_auroc=float(roc_auc_score(injected, model.decision_scores_)),
                                          injected_flagged=float(model.labels_[injected].mean()))
                    record.update(versions=versions(), command=command_line())
                    append_record(args.results, record)
                    print(info.name, seed, level, detector, record.get("roc_auc", "unreachable"), flush=True)


def report(results: Path, out: Path) -> None:
    import pandas as pd

    records = read_records(results)
    frame = pd.DataFrame(records).drop_duplicates(JOB_KEY, keep="last")
    reachable = frame[frame["reachable"]]
    # Means over the (dataset, seed) pairs that reach every level for every detector, so that
    # each column averages the same datasets.
    complete = reachable.groupby(["dataset", "seed"]).size()
    complete = complete[complete == len(LEVELS) * len(DETECTORS)].index
    if not len(complete):
        out.write_text("# Training on contaminated data\n\nNo dataset has results at every level yet.\n")
        return
    kept = reachable.set_index(["dataset", "seed"]).loc[complete].reset_index()
    table = kept.pivot_table(index="detector", columns="level", values="roc_auc", aggfunc="mean")
    table = table.reindex(list(DETECTORS))
    seeds = ", ".join(str(int(v)) for v in sorted(kept["seed"].unique()))
    lines = ["# Training on contaminated data", "",
             (f"Written by `benchmarks/contamination.py` (method in its docstring). Mean AUROC over the "
              f"{len(complete)} (dataset, seed) pairs that reach every level "
              f"({kept['dataset'].nunique()} datasets, seeds {seeds}); "
              "every detector at the library's default `contamination`."), "",
             "| detector | " + " | ".join(f"{level:.0%}" for level in table.columns) + " | loss 0% -> 10% |",
             "|---|" + "---|" * (len(table.columns) + 1)]
    for name, row in table.iterrows():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + f" | {row.iloc[0] - row.iloc[-1]:+.3f} |")
    if "injected_flagged" in kept:
        seen = kept[kept["level"] > 0].pivot_table(index="detector", columns="level",
                                                    values=["injected_flagged", "training_auroc"], aggfunc="mean")
        seen = seen.reindex(list(DETECTORS))
        levels = list(seen["injected_flagged"].columns)
        lines += ["", ("How well each detector sees the anomalies hidden in its own training data, over the same "
                       "pairs: the share of them among the training rows it flags (its top `contamination` = 10% "
                       "of scores; for the robust auto-encoder about the rows its last epoch left out), and the "
                       "AUROC of its training scores, injected vs normal rows."), "",
                  "| detector | " + " | ".join(f"flagged at {level:.0%}" for level in levels) + " | "
                  + " | ".join(f"training AUROC at {level:.0%}" for level in levels) + " |",
                  "|---|" + "---|" * (2 * len(levels))]
        for name, row in seen.iterrows():
            lines.append(f"| {name} | " + " | ".join(f"{row[('injected_flagged', level)]:.2f}" for level in levels)
                         + " | " + " | ".join(f"{row[('training_auroc', level)]:.3f}" for level in levels) + " |")
    lines += _by_dataset(kept)
    unreachable = frame[~frame["reachable"]][["dataset", "seed", "level"]].drop_duplicates()
    if len(unreachable):
        lines += ["", "Unreachable levels (too few anomalies in the split): " + ", ".join(
            f"{r.dataset} seed {r.seed} at {r.level:.0%}" for r in unreachable.itertuples()) + "."]
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


SEPARABLE_AUROC = 0.8  # the plain auto-encoder's AUROC at 0% from which a dataset counts as separable


def _by_dataset(kept) -> list[str]:
    """Each dataset's AUROC at 0% and loss 0% -> 10% (mean over its seeds), easiest first; and the
    mean losses over the datasets the plain auto-encoder separates well at 0% and over the rest. A
    robust fit can only leave out hidden anomalies it ranks among the worst rows, so what it saves
    should depend on how separable the anomalies are at all."""
    means = kept.pivot_table(index=["dataset", "detector"], columns="level", values="roc_auc", aggfunc="mean")
    clean, dirty = means[LEVELS[0]].unstack(), means[LEVELS[-1]].unstack()
    loss = (clean - dirty)[list(DETECTORS)]
    order = clean[DETECTORS[0]].sort_values(ascending=False).index
    names = [name.removeprefix("oddkit-") for name in DETECTORS]
    lines = ["", (f"By dataset (mean over its seeds), easiest first: AUROC at 0% and the loss 0% -> 10%. "
                  f"Below, the mean loss over the datasets where the plain auto-encoder reaches AUROC >= "
                  f"{SEPARABLE_AUROC} at 0% and over the rest (a split made after the results were seen, "
                  "to show where trimming can help; on datasets ranked near or below chance, the rows a "
                  "detector reconstructs worst are not the anomalies, and leaving them out cannot help)."), "",
             "| dataset | " + " | ".join(f"{n} at 0%" for n in names) + " | "
             + " | ".join(f"{n} loss" for n in names) + " |",
             "|---|" + "---:|" * (2 * len(names))]
    for dataset in order:
        lines.append(f"| {dataset} | " + " | ".join(f"{clean.loc[dataset, d]:.3f}" for d in DETECTORS) + " | "
                     + " | ".join(f"{loss.loc[dataset, d]:+.3f}" for d in DETECTORS) + " |")
    separable = clean[DETECTORS[0]] >= SEPARABLE_AUROC
    lines += ["", "| datasets | n | " + " | ".join(f"{n} loss" for n in names) + " |",
              "|---|---:|" + "---:|" * len(names)]
    for label, chosen in ((f"plain AE AUROC >= {SEPARABLE_AUROC} at 0%", separable),
                          (f"plain AE AUROC < {SEPARABLE_AUROC} at 0%", ~separable)):
        lines.append(f"| {label} | {int(chosen.sum())} | "
                     + " | ".join(f"{loss.loc[chosen, d].mean():+.3f}" for d in DETECTORS) + " |")
    return lines


def main() -> None:
    parser = study_parser(__doc__, RESULTS_FILE)
    run_study(parser.parse_args(), run, report, REPORT_FILE)


if __name__ == "__main__":
    main()
