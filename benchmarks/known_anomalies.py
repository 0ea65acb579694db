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
stopped. The tables average the (dataset, seed) pairs measured under every arm shown.

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

    cls = {"oddkit-AutoEncoder": oddkit.AutoEncoderDetector, "oddkit-VAE": oddkit.VAEDetector}[name]
    return cls(random_state=seed, verbose=0)


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


def report(results: Path, out: Path) -> None:
    import pandas as pd

    records = read_records(results)
    frame = pd.DataFrame(records).drop_duplicates(JOB_KEY, keep="last")
    frame["arm"] = frame["n_known"].astype(str)  # the numbers of real anomalies and the methods
    reachable = frame[frame["reachable"]]
    lines = ["# Known anomalies: the auto-encoders with a few labelled anomalies, or generated ones", "",
             "Written by `benchmarks/known_anomalies.py` (method in its docstring): clean protocol, "
             "`k` of the training split's anomalies passed as `known_anomalies`, or (`permute`, `vae-between`, "
             "`vae-tail`) "
             "pseudo-anomalies made from the split's normal training rows alone by that method of "
             "`oddkit.PseudoAnomalies` (`permute` is `known_anomalies=\"generate\"`); defaults everywhere. Each "
             "table averages the (dataset, seed) pairs measured under all of its arms (a generated arm run on "
             "fewer pairs is left out of it).", ""]
    for detector in [d for d in DETECTORS if d in set(reachable["detector"])]:
        mine = reachable[reachable["detector"] == detector]
        # Means over the (dataset, seed) pairs measured at every arm, so that each column averages
        # the same datasets; while no pair has them all, the generated arm run least is left out.
        pairs = mine.groupby(["dataset", "seed"])["arm"].agg(set)
        arms = [str(k) for k in N_KNOWN if str(k) in set(mine["arm"])]
        while True:
            complete = pairs[pairs.map(set(arms).issubset)].index
            generated = [a for a in arms if a in GENERATED]
            if len(complete) or not generated:
                break
            arms.remove(min(generated, key=lambda a: int((mine["arm"] == a).sum())))
        if not len(complete) or "0" not in arms:
            continue
        kept = mine[mine["arm"].isin(arms)].set_index(["dataset", "seed"]).loc[complete].reset_index()
        auroc = kept.pivot_table(index=["dataset", "seed"], columns="arm", values="roc_auc")
        pr = kept.pivot_table(index=["dataset", "seed"], columns="arm", values="pr_auc")
        base = auroc["0"]
        lines += [f"## {detector}", "",
                  f"{len(complete)} (dataset, seed) pairs ({kept['dataset'].nunique()} datasets, seeds "
                  f"{', '.join(str(int(s)) for s in sorted(kept['seed'].unique()))}).", "",
                  "| known anomalies | mean AUROC | mean PR AUC | AUROC gain over none | better / worse (by > 0.005) |",
                  "|---|---|---|---|---|"]
        for k in arms:
            gain = auroc[k] - base
            lines.append(f"| {k} | {auroc[k].mean():.3f} | {pr[k].mean():.3f} | {gain.mean():+.3f} | "
                         + ("—" if k == "0" else f"{int((gain > 0.005).sum())} / {int((gain < -0.005).sum())}") + " |")
        per_dataset = auroc.groupby(level="dataset").mean()
        lines += ["", "Mean AUROC per dataset (over seeds):", "",
                  "| dataset | " + " | ".join(k if k in GENERATED else f"k={k}" for k in arms) + " |",
                  "|---|" + "---|" * len(arms)]
        for name, row in per_dataset.iterrows():
            lines.append(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in arms) + " |")
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
