"""Would the robust auto-encoder find its hidden anomalies better by an earlier or an averaged loss?

``robust=True`` leaves out, at each epoch, the ``contamination`` share of rows with the largest
reconstruction loss under the current weights. Networks fit the common patterns of their data
first and its rare ones later (the "memorisation effect" that noisy-label methods such as
Co-teaching and O2U-Net exploit), so the hidden anomalies might stand out more in early epochs,
or in the loss averaged over training, than in the current one. This study records, in the
library's own robust training run, the loss of every training row at the start of every epoch
(the ranking the trimming uses; the library's code, read through a wrapper around
``oddkit.train.row_losses``) and measures how well each ranks the injected anomalies (AUROC,
injected vs normal rows):

- **current**: that epoch's losses (what ``robust=True`` trims by);
- **running mean**: the mean over the epochs so far of each epoch's losses standardised across
  rows (O2U-Net's statistic), so that a row that was hard for most of training ranks high.

Same datasets, splits and 10% injection as ``contamination.py`` and ``trimming_bound.py``, defaults
everywhere. The report sets these beside the oracle ranking of ``trimming_bound.py`` (an
auto-encoder trained on the other half's normal rows), whose trimming did not reach issue 5's
target either. One JSON line per (dataset, seed) in ``benchmarks/results/loss_trajectory.jsonl``;
the run resumes.

    .venv/bin/python benchmarks/loss_trajectory.py --threads 1     # about 3 minutes
    .venv/bin/python benchmarks/loss_trajectory.py --report-only   # rewrite LOSS_TRAJECTORY.md
"""

from __future__ import annotations

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

HERE = Path(__file__).resolve().parent
RESULTS_FILE = HERE / "results" / "loss_trajectory.jsonl"
REPORT_FILE = HERE / "LOSS_TRAJECTORY.md"
ORACLE_FILE = HERE / "results" / "trimming_bound.jsonl"
LEVEL = 0.10
JOB_KEY = ("dataset", "seed")
EPOCHS_SHOWN = (1, 2, 3, 5, 10, 20, 40)


def recorded_training_losses(detector, X):
    """Fit ``detector`` on ``X`` and return the per-row losses its training loop computed over all
    training rows at the start of each trimmed epoch, as (epochs, len(X)) with NaN for the rows
    held out for early stopping."""
    import numpy as np

    import oddkit.train

    original, calls = oddkit.train.row_losses, []

    def recording(module, loss, rows, generator, *args, **kwargs):
        losses = original(module, loss, rows, generator, *args, **kwargs)
        calls.append((rows.cpu().numpy(), losses.cpu().numpy()))
        return losses

    oddkit.train.row_losses = recording
    try:
        detector.fit(X)
    finally:
        oddkit.train.row_losses = original
    Z = detector._prepare(X, reset=False)
    position = {row.tobytes(): i for i, row in reversed(list(enumerate(Z)))}
    n_train = max(len(rows) for rows, _ in calls)  # the other calls score the held-out rows
    epochs = []
    for rows, losses in calls:
        if len(rows) == n_train:
            full = np.full(len(Z), np.nan)
            full[[position[row.tobytes()] for row in rows]] = losses
            epochs.append(full)
    return np.stack(epochs)


def run(args) -> None:
    import numpy as np
    from bench_data import list_datasets, make_split
    from contamination import injected_training_rows
    from sklearn.metrics import roc_auc_score

    import oddkit

    done = recorded_jobs(args.results, JOB_KEY)
    for seed in args.seeds:
        for info in list_datasets():
            if (args.datasets and info.name not in args.datasets) or (info.name, seed) in done:
                continue
            split = make_split(info, seed)
            X, n_injected = injected_training_rows(split, LEVEL, seed)
            if X is None:
                continue
            injected = np.arange(len(X)) >= len(X) - n_injected
            detector = oddkit.AutoEncoderDetector(robust=True, n_estimators=1, random_state=seed, verbose=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                losses = recorded_training_losses(detector, X)
            trained = ~np.isnan(losses[0])
            standardised = (losses - np.nanmean(losses, axis=1, keepdims=True)) / np.nanstd(losses, axis=1,
                                                                                             keepdims=True)
            running = np.cumsum(standardised, axis=0) / np.arange(1, len(losses) + 1)[:, None]
            record = {
                "dataset": info.name, "seed": seed,
                "current_auroc": [float(roc_auc_score(injected[trained], e[trained])) for e in losses],
                "running_mean_auroc": [float(roc_auc_score(injected[trained], e[trained])) for e in running],
                "final_score_auroc": float(roc_auc_score(injected, detector.decision_scores_)),
                "versions": versions(), "command": command_line(),
            }
            append_record(args.results, record)
            print(info.name, seed, f"epochs {len(losses)}", f"current {record['current_auroc'][-1]:.3f}",
                  f"running mean {record['running_mean_auroc'][-1]:.3f}", flush=True)


def _at_epoch(curve: list[float], epoch: int) -> float:
    """The ranking's AUROC after ``epoch`` epochs of training (the first trimmed epoch starts
    after one), or the last one when early stopping ended the run before."""
    return curve[min(epoch, len(curve)) - 1]


def report(results: Path, out: Path) -> None:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(read_records(results)).drop_duplicates(JOB_KEY, keep="last").set_index(list(JOB_KEY))
    oracle = pd.DataFrame(read_records(ORACLE_FILE)).drop_duplicates(JOB_KEY).set_index(list(JOB_KEY))
    oracle = oracle["oracle_ranking_auroc"].reindex(frame.index)
    seeds = ", ".join(str(s) for s in sorted(frame.index.get_level_values("seed").unique()))
    lines = ["# Would an earlier or an averaged loss find the hidden anomalies better?", "",
             (f"Written by `benchmarks/loss_trajectory.py` (method in its docstring). The robust auto-encoder's "
              f"own training runs at 10% hidden anomalies, {len(frame)} (dataset, seed) pairs "
              f"({frame.index.get_level_values('dataset').nunique()} datasets, seeds {seeds}). Mean AUROC of the "
              "injected vs the normal training rows, ranked by each epoch's losses (what `robust=True` trims "
              "by) and by their running mean (standardised per epoch); runs that stopped early keep their last "
              "value."), "",
             "| ranking, after | " + " | ".join(f"{e} epoch{'s' * (e > 1)}" for e in EPOCHS_SHOWN) + " | the last epoch |",
             "|---|" + "---:|" * (len(EPOCHS_SHOWN) + 1)]
    for column, label in (("current_auroc", "current loss"), ("running_mean_auroc", "running mean")):
        curves = frame[column]
        lines.append(f"| {label} | " + " | ".join(f"{curves.map(lambda c: _at_epoch(c, e)).mean():.3f}"
                                                 for e in EPOCHS_SHOWN) + f" | {curves.map(lambda c: c[-1]).mean():.3f} |")
    best_epoch = frame["current_auroc"].map(max).mean()
    best_running = frame["running_mean_auroc"].map(max).mean()
    lines += ["", (f"Choosing each run's best epoch after seeing the labels (an upper bound for any rule that picks an "
                   f"epoch) gives {best_epoch:.3f} with the current loss and {best_running:.3f} with the running mean. "
                   f"The detector's final scores rank them at {frame['final_score_auroc'].mean():.3f}; the oracle "
                   f"ranking of `trimming_bound.py` (an auto-encoder trained on the other half's normal rows) at "
                   f"{np.nanmean(oracle):.3f}, and trimming by that oracle kept more than half of the plain "
                   "auto-encoder's loss ([TRIMMING_BOUND.md](TRIMMING_BOUND.md))."), "",
              "By dataset (mean over seeds): the losses after one epoch, after the last, and their running mean.", "",
              "| dataset | after 1 epoch | after the last | running mean | oracle |",
              "|---|---:|---:|---:|---:|"]
    by_dataset = pd.DataFrame({
        "first": frame["current_auroc"].map(lambda c: c[0]), "last": frame["current_auroc"].map(lambda c: c[-1]),
        "running": frame["running_mean_auroc"].map(lambda c: c[-1]), "oracle": oracle,
    }).groupby(level="dataset").mean().sort_values("oracle", ascending=False)
    for dataset, row in by_dataset.iterrows():
        lines.append(f"| {dataset} | {row['first']:.3f} | {row['last']:.3f} | {row['running']:.3f} | "
                     f"{row['oracle']:.3f} |")
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


def main() -> None:
    parser = study_parser(__doc__, RESULTS_FILE)
    run_study(parser.parse_args(), run, report, REPORT_FILE)


if __name__ == "__main__":
    main()
