"""Does a handful of labelled anomalies help? The auto-encoder with and without ``known_anomalies``.

For every tabular dataset of the clean protocol (benchmarks/bench_data.py: the same stratified
70/30 split, trained on the split's normal rows), ``k`` of the split's own training anomalies —
drawn without replacement and seeded, never from the test 30% — are passed as ``known_anomalies``
(k = 0 is the plain detector). Three further arms pass no real anomaly but pseudo-anomalies made
from the training split's normal rows alone (issue 23): ``permute`` (``known_anomalies="generate"``,
the default method of :class:`oddkit.PseudoAnomalies`), ``vae-between`` and ``vae-tail``
(``PseudoAnomalies("vae-between")``, ...). Detectors at their defaults, also for
the margin loss (``exposure_margin``, ``exposure_weight``). A dataset whose split holds fewer than
``k`` anomalies is marked and left out of the means at that ``k``. One JSON line per (dataset,
seed, k, detector) in ``benchmarks/results/known_anomalies.jsonl``; the run resumes where it
stopped. Each row of the tables compares one arm with no known anomaly on the (dataset, seed) pairs
where both were measured.

    .venv/bin/python benchmarks/known_anomalies.py                # everything, resuming
    .venv/bin/python benchmarks/known_anomalies.py --seeds 0 --max-seconds 1200
    .venv/bin/python benchmarks/known_anomalies.py --detectors oddkit-AutoEncoder --arms permute
    .venv/bin/python benchmarks/known_anomalies.py --report-only  # rewrite KNOWN_ANOMALIES.md
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

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "known_anomalies.jsonl"
REPORT_FILE = Path(__file__).resolve().parent / "KNOWN_ANOMALIES.md"
GENERATED = ("permute", "vae-between", "vae-tail")
N_KNOWN = (0, 5, 20, *GENERATED)
"""The arms: how many real training anomalies are passed, or the method of the pseudo-anomalies."""
DETECTORS = ("oddkit-AutoEncoder", "oddkit-VAE")
JOB_KEY = ("dataset", "seed", "n_known", "detector")


def build(name: str, seed: int):
    import oddkit

    if name == "oddkit-AutoEncoder":
        # One untrimmed network, the default until stop 32, as the records were measured.
        return oddkit.AutoEncoderDetector(robust=False, n_estimators=1, random_state=seed, verbose=0)
    return oddkit.VAEDetector(random_state=seed, verbose=0)


def run(args) -> None:
    import numpy as np
    from bench_data import list_datasets, make_split
    from sklearn.metrics import average_precision_score, roc_auc_score

    done = recorded_jobs(args.results, JOB_KEY)
    infos = [i for i in list_datasets() if not args.datasets or i.name in args.datasets]
    started = time.monotonic()
    for seed in args.seeds:
        for info in infos:
            split = None
            for detector in args.detectors:
                for k in args.arms:
                    if (info.name, seed, k, detector) in done:
                        continue
                    if args.max_seconds and time.monotonic() - started > args.max_seconds:
                        print("time budget spent; rerun to continue")
                        return
                    split = split or make_split(info, seed)
                    anomalies = split.X_train[split.y_train == 1]
                    generated = k in GENERATED
                    record = {"dataset": info.name, "seed": seed, "n_known": k, "detector": detector,
                              "reachable": generated or k <= len(anomalies)}
                    if record["reachable"]:
                        known = None
                        if generated:
                            from oddkit import PseudoAnomalies

                            known = PseudoAnomalies(k)
                        elif k:
                            known = anomalies[np.random.default_rng(seed).choice(len(anomalies), size=k,
                                                                                   replace=False)]
                        t = time.perf_counter()
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            model = build(detector, seed).fit(split.X_train[split.y_train == 0],
                                                              known_anomalies=known)
                            scores = model.decision_function(split.X_test)
                        record.update(roc_auc=float(roc_auc_score(split.y_test, scores)),
                                      pr_auc=float(average_precision_score(split.y_test, scores)),
                                      fit_seconds=time.perf_counter() - t)
                    record.update(versions=versions(), command=command_line())
                    append_record(args.results, record)
                    print(info.name, seed, k, detector, record.get("roc_auc", "unreachable"), flush=True)


def _gain_rows(auroc, pr, arms) -> list[str]:
    """Table rows: each arm against no known anomaly (arm "0") on the (dataset, seed) pairs where
    both were measured."""
    from scipy.stats import wilcoxon

    lines = []
    for k in arms:
        both = auroc[["0", k]].dropna()
        gain = both[k] - both["0"]
        moved = gain[gain != 0]
        p_value = f"{wilcoxon(moved).pvalue:.2g}" if len(moved) >= 6 else "—"
        pr_both = pr.loc[both.index, ["0", k]]
        lines.append(f"| {k} | {len(both)} ({both.index.get_level_values('dataset').nunique()}) | "
                     f"{both['0'].mean():.3f} | {both[k].mean():.3f} | {gain.mean():+.3f} | "
                     f"{pr_both['0'].mean():.3f} | {pr_both[k].mean():.3f} | "
                     f"{int((gain > 0.005).sum())} / {int((gain < -0.005).sum())} | {p_value} |")
    return lines


def report(results: Path, out: Path) -> None:
    import pandas as pd

    records = read_records(results)
    frame = pd.DataFrame(records).drop_duplicates(JOB_KEY, keep="last")
    frame["arm"] = frame["n_known"].astype(str)  # the numbers of real anomalies and the methods
    reachable = frame[frame["reachable"]]
    lines = ["# Known anomalies: the auto-encoders with a few labelled anomalies, or generated ones", "",
             "Written by `benchmarks/known_anomalies.py` (method in its docstring): clean protocol, "
             "`k` of the training split's anomalies passed as `known_anomalies`, or (`permute`, `vae-between`, "
             "`vae-tail`) pseudo-anomalies made from the split's normal training rows alone by that method of "
             "`oddkit.PseudoAnomalies` (`permute` is `known_anomalies=\"generate\"`); defaults everywhere. "
             "Every row compares an arm with no known anomaly (`0`) on the (dataset, seed) pairs where both "
             "were measured, so each row names its own pairs (and datasets); better / worse: pairs where the "
             "arm's AUROC is higher / lower than without by more than 0.005; Wilcoxon p: the signed-rank test's "
             "two-sided p-value for the pairs' AUROC gains (pairs with no change left out; — under 6 pairs).", ""]
    header = ["| arm | pairs (datasets) | AUROC without | AUROC with | AUROC gain | PR AUC without | PR AUC with "
              "| better / worse | Wilcoxon p |", "|---|---|---|---|---|---|---|---|---|"]
    for detector in [d for d in DETECTORS if d in set(reachable["detector"])]:
        mine = reachable[reachable["detector"] == detector]
        auroc = mine.pivot_table(index=["dataset", "seed"], columns="arm", values="roc_auc")
        pr = mine.pivot_table(index=["dataset", "seed"], columns="arm", values="pr_auc")
        if "0" not in auroc:
            continue
        real = [str(k) for k in N_KNOWN if str(k) in auroc and str(k) not in GENERATED and k != 0]
        generated = [k for k in GENERATED if k in auroc]
        seeds = ", ".join(str(int(s)) for s in sorted(mine["seed"].unique()))
        lines += [f"## {detector}", "", f"Seeds {seeds}.", ""]
        if real:
            lines += ["Real known anomalies (`k` of the training split's own):", "", *header,
                      *_gain_rows(auroc, pr, real), ""]
        if generated:
            lines += ["Generated pseudo-anomalies, no real anomaly:", "", *header,
                      *_gain_rows(auroc, pr, generated), ""]
        arms = [*real, *generated]
        base = auroc["0"].groupby(level="dataset").mean()
        gains = {k: (auroc[k] - auroc["0"]).groupby(level="dataset").mean() for k in arms}
        counts = {k: (auroc[k] - auroc["0"]).groupby(level="dataset").count() for k in arms}
        lines += ["Per dataset: mean AUROC without known anomalies, and each arm's mean gain over it (on "
                  "the seeds measured under both; the number of seeds in brackets where fewer than all):", "",
                  "| dataset | none | " + " | ".join(k if k in GENERATED else f"k={k}" for k in arms) + " |",
                  "|---|---|" + "---|" * len(arms)]
        n_seeds = mine["seed"].nunique()

        def cell(k, name):
            n = int(counts[k].get(name, 0))
            if not n:
                return "—"
            return f"{gains[k][name]:+.3f}" + (f" ({n})" if n < n_seeds else "")

        for name, value in base.items():
            lines.append(f"| {name} | {value:.3f} | " + " | ".join(cell(k, name) for k in arms) + " |")
        lines.append("")
    unreachable = frame[~frame["reachable"]][["dataset", "seed", "n_known"]].drop_duplicates()
    if len(unreachable):
        lines += ["Left out (the split holds fewer anomalies than k): " + ", ".join(
            f"{r.dataset} seed {r.seed} k={r.n_known}" for r in unreachable.itertuples()) + ".", ""]
    out.write_text("\n".join(lines))
    print(out.read_text())


def _arm(text: str):
    """An arm on the command line: a generation method or a number of real anomalies of N_KNOWN."""
    arm = text if text in GENERATED else int(text)
    if arm not in N_KNOWN:
        raise ValueError(f"{text!r} is not one of {N_KNOWN}")
    return arm


def main() -> None:
    parser = study_parser(__doc__, RESULTS_FILE)
    parser.add_argument("--detectors", nargs="+", choices=DETECTORS, default=list(DETECTORS))
    parser.add_argument("--arms", nargs="+", type=_arm, default=list(N_KNOWN),
                        help="which arms to run: numbers of real anomalies (0, 5, 20) and/or generation methods "
                             f"({', '.join(GENERATED)})")
    run_study(parser.parse_args(), run, report, REPORT_FILE)


if __name__ == "__main__":
    main()
