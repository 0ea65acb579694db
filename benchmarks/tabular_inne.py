"""iNNE (Bandaragoda et al. 2018) as a member of the default tabular ensemble: is it worth adding?

Issue 22 names iNNE (isolation using nearest-neighbour ensembles: hyperspheres around small random
subsamples, reported to resist clustered anomalies) among ideas for the default's margin. This script
measures PyOD's ``pyod.models.inne.INNE`` (its defaults, ``random_state`` = seed) as the member
``inne`` of ``tabular_search.py``'s cache machinery, on the same splits, halves and PyOD targets as
TABULAR_SEARCH.md.

Decision rule, written and committed before any iNNE result existed
------------------------------------------------------------------
Margins are mean AUROC (over datasets, each the mean over seeds 0-2) minus the best single PyOD
detector on the same half and protocol (``tabular_search.peer_means``); the *worst margin* is the
worse of the clean and contaminated margins.

0. Check: the shipped default (knn1, sknn1-16, gauss-robust-t25; max), recomputed from this run's
   cache, must give TABULAR_SEARCH.md's selection figures (0.833 clean, 0.791 contaminated, to three
   decimals). If not, stop and report the mismatch; no verdict.
1. iNNE is worth adding to the default only if, on the selection half, ``shipped default + inne
   (max)`` raises the shipped default's worst margin by at least 0.005 without lowering either
   protocol's mean AUROC by more than 0.002. ``knn1 + inne + gauss-robust-t25 (max)`` (iNNE in place
   of the subsampled neighbour) is judged by the same rule against the shipped default, separately.
2. Only an ensemble that passes on the selection half is fitted on the confirmation half, and the
   same must hold there (against the confirmation half's own PyOD targets) for the verdict "worth
   adding". An ensemble that fails on the selection half is "not worth adding", whatever else.
3. If time allows, the confirmation half may be fitted anyway; those figures are labelled "read
   after the verdict" and cannot change it.
4. Time (fit + score seconds of ``inne`` against ``knn1`` on the same jobs) is reported, not part of
   the rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tabular_search as ts
from bench_runtime import append_record, limit_threads, read_records

HERE = Path(__file__).resolve().parent
MEMBER_RECORDS = HERE / "results" / "tabular_inne_members.jsonl"
"""One line per member job fitted here (tabular_search.fit_members' records, kept apart from
tabular_search.jsonl): AUROC, fit and score seconds."""
RECORDS = HERE / "results" / "tabular_inne.jsonl"
"""One line per (candidate, half, dataset, protocol, seed): the AUROC tabular_search.evaluate()
gives on that job, and its members' fit + score seconds. TABULAR_INNE.md is written from these."""
REPORT = HERE / "TABULAR_INNE.md"
MEMBERS = ("knn1", "sknn1-16", "gauss-robust-t25", "inne")
SHIPPED = ("knn1", "sknn1-16", "gauss-robust-t25")
CANDIDATES = {
    "inne": (("inne",), "max"),
    "knn1": (("knn1",), "max"),
    "shipped default (max)": (SHIPPED, "max"),
    "shipped default + inne (max)": (SHIPPED + ("inne",), "max"),
    "knn1 + inne + gauss-robust-t25 (max)": (("knn1", "inne", "gauss-robust-t25"), "max"),
}
JUDGED = ("shipped default + inne (max)", "knn1 + inne + gauss-robust-t25 (max)")
EXPECTED_SHIPPED_SELECTION = {"clean": 0.833, "contaminated": 0.791}  # TABULAR_SEARCH.md
RAISE, DROP = 0.005, 0.002


def all_halves() -> dict[str, list[str]]:
    from bench_data import DATA_DIR, list_datasets

    return ts.halves([info.name for info in list_datasets(DATA_DIR)])


def fit(half: str, cache_dir: Path, threads: int) -> None:
    """Fit MEMBERS on every job of ``half`` into ``cache_dir`` with tabular_search's own fitting."""
    ts.RECORDS = MEMBER_RECORDS
    args = ts.parse_args(["--members", *MEMBERS, "--datasets", *all_halves()[half], "--threads", str(threads),
                          "--cache-dir", str(cache_dir)])
    ts.fit_members(args)


def record(cache_dir: Path, half: str) -> int:
    """Replace ``half``'s lines in RECORDS by tabular_search.evaluate() on every job in the cache
    (every candidate whose members are all cached for that job). Returns the number of lines."""
    cache = ts.load_cache(cache_dir)
    kept = [r for r in read_records(RECORDS) if r["half"] != half]
    RECORDS.parent.mkdir(parents=True, exist_ok=True)
    RECORDS.write_text("")
    for line in kept:
        append_record(RECORDS, line)
    written = 0
    for label, (members, rule) in CANDIDATES.items():
        for dataset in all_halves()[half]:
            for protocol in ts.PROTOCOLS:
                for seed in ts.SEEDS:
                    if any((dataset, protocol, seed, m) not in cache for m in members):
                        continue
                    auc, seconds = ts.evaluate(cache, members, rule, [dataset], protocol, [seed], strict=True)
                    append_record(RECORDS, {"candidate": label, "members": list(members), "rule": rule, "half": half,
                                            "dataset": dataset, "protocol": protocol, "seed": seed,
                                            "roc_auc": auc, "seconds": seconds})
                    written += 1
    # the figures the report reads from these records must be evaluate()'s over the whole half
    for label, (members, rule) in CANDIDATES.items():
        for protocol in ts.PROTOCOLS:
            whole, _ = ts.evaluate(cache, members, rule, all_halves()[half], protocol, ts.SEEDS, strict=True)
            mine = means(read_records(RECORDS), half)[label].get(protocol)
            if whole is not None and abs(whole - mine[0]) > 1e-12:
                raise SystemExit(f"records disagree with evaluate(): {label} {half} {protocol} {mine[0]} {whole}")
    return written


def means(records: list[dict], half: str) -> dict[str, dict[str, tuple[float, float]]]:
    """{candidate: {protocol: (mean over datasets of the mean over seeds, total seconds)}}, only
    where every dataset of the half has all three seeds."""
    import numpy as np

    datasets = all_halves()[half]
    found: dict = {}
    for r in records:
        if r["half"] == half:
            found.setdefault((r["candidate"], r["protocol"]), {}).setdefault(r["dataset"], []).append(r)
    out: dict = {label: {} for label in CANDIDATES}
    for (label, protocol), per in found.items():
        if set(per) != set(datasets) or any(len(v) != len(ts.SEEDS) for v in per.values()):
            continue
        out[label][protocol] = (float(np.mean([np.mean([r["roc_auc"] for r in v]) for v in per.values()])),
                                float(sum(r["seconds"] for v in per.values() for r in v)))
    return out


def verdict(figures: dict, targets: dict, label: str) -> tuple[bool, str]:
    base, cand = figures["shipped default (max)"], figures[label]
    margin = lambda f: min(f[p][0] - targets[p] for p in ts.PROTOCOLS)  # noqa: E731
    raised = margin(cand) - margin(base)
    drops = {p: base[p][0] - cand[p][0] for p in ts.PROTOCOLS}
    ok = raised >= RAISE and all(d <= DROP for d in drops.values())
    return ok, (f"worst margin {margin(base):+.3f} -> {margin(cand):+.3f} ({raised:+.4f}, needs >= +{RAISE}); "
                f"change clean {-drops['clean']:+.4f}, contaminated {-drops['contaminated']:+.4f} "
                f"(each needs >= -{DROP}): {'passes' if ok else 'fails'}")


def write_report() -> None:
    """TABULAR_INNE.md from RECORDS and results/tabular.jsonl only (no cache needed). Confirmation
    figures are labelled "read after the verdict" when no ensemble passed on the selection half (the
    rule fits the confirmation half only after a pass)."""
    import inspect

    from pyod.models.inne import INNE

    records = read_records(RECORDS)
    parts = all_halves()
    selection = means(records, "selection")
    passed = []
    if all(len(selection[label]) == 2 for label in ("shipped default (max)",) + JUDGED):
        targets = {p: max(ts.peer_means(parts["selection"], p, ts.SEEDS).values()) for p in ts.PROTOCOLS}
        passed = [label for label in JUDGED if verdict(selection, targets, label)[0]]
    read_after = not passed
    defaults = {k: v.default for k, v in inspect.signature(INNE).parameters.items()}
    lines = ["# iNNE as a member of the default tabular ensemble", "",
             "Written by `benchmarks/tabular_inne.py --report-only` from `results/tabular_inne.jsonl` (one line per "
             "candidate and job: the AUROC `tabular_search.evaluate()` gave from the member scores cached by "
             "`tabular_search.fit_members`, same splits as `run_tabular.py`) and the PyOD targets in "
             "`results/tabular.jsonl`. Halves as in TABULAR_SEARCH.md; each figure is the mean over datasets of "
             "the mean over seeds 0, 1, 2.", "",
             f"`inne` = PyOD's `pyod.models.inne.INNE` with its defaults (n_estimators={defaults['n_estimators']}, "
             f"max_samples={defaults['max_samples']!r}, i.e. min(8, rows); contamination={defaults['contamination']}, "
             "which does not touch the scores) and random_state = seed, on columns standardised by the training "
             "rows' mean and standard deviation (as run_tabular.py feeds PyOD); its training scores "
             "(`decision_scores_`) normalise its test scores in the ensemble, as each member's do.", "",
             "The decision rule, committed before any iNNE result existed (the module docstring of "
             "`tabular_inne.py`): an iNNE ensemble is worth adding only if, on the selection half, it raises the "
             f"shipped default's worst margin (the worse of clean and contaminated, each minus the best single PyOD "
             f"detector on that half) by at least {RAISE} without lowering either protocol by more than {DROP}; "
             "only then is the confirmation half fitted, and the same must hold there.", "",
             "| candidate | half | clean | contaminated | worst margin | seconds |", "|---|---|---:|---:|---:|---:|"]
    verdicts = []
    for half in ("selection", "confirmation"):
        figures = means(records, half)
        if not any(figures.values()):
            continue
        targets = {p: max(ts.peer_means(parts[half], p, ts.SEEDS).values()) for p in ts.PROTOCOLS}
        tag = half + (" (read after the verdict)" if half == "confirmation" and read_after else "")
        for label, per in figures.items():
            if len(per) < 2:
                continue
            margin = min(per[p][0] - targets[p] for p in ts.PROTOCOLS)
            lines.append(f"| {label} | {tag} | {per['clean'][0]:.3f} | {per['contaminated'][0]:.3f} | {margin:+.3f} "
                         f"| {sum(s for _, s in per.values()):.1f} |")
        lines.append(f"| best single PyOD | {tag} | {targets['clean']:.3f} | {targets['contaminated']:.3f} | | |")
        for label in JUDGED:
            if len(figures[label]) == 2 and len(figures["shipped default (max)"]) == 2:
                verdicts.append(f"- {tag}, {label}: " + verdict(figures, targets, label)[1])
        inne_s = sum(s for _, s in figures["inne"].values())
        knn_s = sum(s for _, s in figures["knn1"].values())
        verdicts.append(f"- {tag}: fit + score seconds of `inne` {inne_s:.1f} against `knn1` {knn_s:.1f} on the "
                        f"same jobs (x{inne_s / knn_s:.1f}; a shared 2-core machine, one thread: noisy)")
    if all(len(selection[label]) == 2 for label in ("shipped default (max)",) + JUDGED):
        shipped = selection["shipped default (max)"]
        same = all(round(shipped[p][0], 3) == EXPECTED_SHIPPED_SELECTION[p] for p in ts.PROTOCOLS)
        verdicts.insert(0, f"- check (rule step 0): the shipped default recomputed here gives {shipped['clean'][0]:.3f} "
                        f"clean, {shipped['contaminated'][0]:.3f} contaminated on the selection half; TABULAR_SEARCH.md "
                        f"gives {EXPECTED_SHIPPED_SELECTION['clean']:.3f}, {EXPECTED_SHIPPED_SELECTION['contaminated']:.3f}"
                        f": {'match' if same else 'MISMATCH (no verdict)'}")
        verdicts.append("")
        verdicts.append(f"**Verdict (selection half, by the committed rule): "
                        + (f"{', '.join(passed)} passes; see the confirmation lines.**" if passed else
                           "neither iNNE ensemble passes: iNNE is not worth adding to the default.**"))
    lines += ["", "Seconds: fit + score of the candidate's members over the half's jobs (both protocols).", "",
              "Per dataset on the selection half (mean over seeds), `shipped default + inne (max)` minus the "
              "shipped default:", ""] + per_dataset(records) + ["", "## The rule applied", ""] + verdicts
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT}")


def per_dataset(records: list[dict]) -> list[str]:
    """Lines: per protocol, the selection datasets where adding inne changes the default's AUROC most."""
    import numpy as np

    lines = []
    for protocol in ts.PROTOCOLS:
        values = {}
        for r in records:
            if r["half"] == "selection" and r["protocol"] == protocol:
                values.setdefault((r["candidate"], r["dataset"]), []).append(r["roc_auc"])
        change = {d: np.mean(values[("shipped default + inne (max)", d)]) - np.mean(values[("shipped default (max)", d)])
                  for (c, d) in values if c == "shipped default (max)" and ("shipped default + inne (max)", d) in values}
        if not change:
            continue
        ordered = sorted(change, key=change.get)
        shown = ", ".join(f"{d} {change[d]:+.3f}" for d in ordered[:3] + ordered[-2:][::-1])
        lines.append(f"- {protocol}: higher on {sum(v > 0.0005 for v in change.values())}, lower on "
                     f"{sum(v < -0.0005 for v in change.values())} of {len(change)} (within 0.0005 on the rest); "
                     f"largest: {shown}")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--halves", nargs="+", choices=("selection", "confirmation"), default=["selection"],
                        help="halves to fit and record (the rule: the confirmation half only after selection passes)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/inne_cache"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report-only", action="store_true", help="rewrite TABULAR_INNE.md from the records only")
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    if not args.report_only:
        for half in args.halves:
            fit(half, args.cache_dir, args.threads)
            print(f"{half}: {record(args.cache_dir, half)} records")
    write_report()


if __name__ == "__main__":
    sys.exit(main())
