"""An auto-encoder ensemble (RandNet) and DTE's non-parametric estimator as members of the default.

Issue 22 names two more ideas for the default tabular detector's margin over the best single PyOD
detector: auto-encoder ensembles on subsamples with randomly dropped connections (RandNet: Chen,
Sathe, Aggarwal and Turaga 2017) and the non-parametric estimator of Diffusion Time Estimation
(DTE-NP: Livernoche, Jain, Hezaveh and Ravanbakhsh 2024). This script measures them as members of
``tabular_search.py``'s cache machinery, on the same splits, halves and PyOD targets as
TABULAR_SEARCH.md and TABULAR_INNE.md:

- ``randnet`` (``search_members.RandNetMember``): 20 small auto-encoders, each with a random
  connection mask and its own subsample of at most 1,024 rows grown over 20 epochs, scored by the
  median of the members' standardised reconstruction errors;
- ``dte-np`` (``search_members.DTENonParametric``): the posterior mean diffusion step given the mean
  squared distance to the 5 nearest training rows, as the authors' code computes it (formula in the
  class docstring);
- ``knn5-sqmean`` (the same class, ``posterior=False``): that mean squared distance itself, DTE-NP's
  monotone base, as a reference (not judged).

Decision rule, written before any ensemble result existed
---------------------------------------------------------
(Before it, the two members were run once each, alone, on seed 0 of three selection datasets in the
contaminated protocol, to check that they run and how long they take; no ensemble was scored and no
setting was changed afterwards.)

Margins are mean AUROC (over datasets, each the mean over seeds 0-2) minus the best single PyOD
detector on the same half and protocol (``tabular_search.peer_means``); the *worst margin* is the
worse of the clean and contaminated margins.

0. Check: the shipped default (knn1, sknn1-16, gauss-robust-t25; max), recomputed from this run's
   cache, must give TABULAR_SEARCH.md's selection figures (0.833 clean, 0.791 contaminated, to three
   decimals). If not, stop and report the mismatch; no verdict.
1. A new member X (``randnet``, ``dte-np``) is worth adding to the default only if, on the selection
   half, ``shipped default + X (max)`` raises the shipped default's worst margin by at least 0.005
   without lowering either protocol's mean AUROC by more than 0.002. ``knn1 + X + gauss-robust-t25
   (max)`` (X in place of the subsampled neighbour) is judged by the same rule against the shipped
   default, separately. Each of the four ensembles is judged on its own.
2. Only an ensemble that passes on the selection half counts on the confirmation half, where the
   same must hold (against the confirmation half's own PyOD targets) for the verdict "worth adding".
   An ensemble that fails on the selection half is "not worth adding", whatever else.
3. If time allows, the confirmation half may be fitted anyway; those figures are labelled "read
   after the verdict" when nothing passed on the selection half, and cannot change the verdict.
4. Time (fit + score seconds of each new member against ``knn1`` on the same jobs) is reported, not
   part of the rule.

    .venv/bin/python benchmarks/tabular_ae_ensemble.py --cache-dir /tmp/bound_cache --threads 1
    .venv/bin/python benchmarks/tabular_ae_ensemble.py --halves selection confirmation --time
    .venv/bin/python benchmarks/tabular_ae_ensemble.py --report-only   # the page from the records

Missing member jobs of the half are fitted into ``--cache-dir`` (tabular_bound.py's cache, where the
shipped default's members already are; per-job lines go to its fits.jsonl). Writes
``results/tabular_ae_ensemble.jsonl`` (one line per candidate and job, kind "candidate"; with
``--time`` one per timed member job, kind "time") and ``TABULAR_AE_ENSEMBLE.md``.

References
----------
Chen, Sathe, Aggarwal and Turaga (2017). Outlier detection with autoencoder ensembles. SIAM
International Conference on Data Mining (SDM), 90-98.
Livernoche, Jain, Hezaveh and Ravanbakhsh (2024). On diffusion modeling for anomaly detection.
ICLR 2024. Code: github.com/vicliv/DTE (``diffusion/non_param_dte.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import tabular_search as ts
from bench_runtime import append_record, limit_threads, read_records

HERE = Path(__file__).resolve().parent
RECORDS = HERE / "results" / "tabular_ae_ensemble.jsonl"
"""kind "candidate": one line per (candidate, half, dataset, protocol, seed), the AUROC
tabular_search.evaluate() gives on that job and its members' cached fit + score seconds; kind
"time": one line per (half, dataset, protocol, member) timed one after another (``--time``)."""
REPORT = HERE / "TABULAR_AE_ENSEMBLE.md"
SHIPPED = ("knn1", "sknn1-16", "gauss-robust-t25")
NEW = ("randnet", "dte-np")
REFERENCE = ("knn5-sqmean",)
MEMBERS = SHIPPED + NEW + REFERENCE
CANDIDATES = {
    **{name: ((name,), "max") for name in NEW + REFERENCE},
    "knn1": (("knn1",), "max"),
    "shipped default (max)": (SHIPPED, "max"),
    **{f"shipped default + {name} (max)": (SHIPPED + (name,), "max") for name in NEW},
    **{f"knn1 + {name} + gauss-robust-t25 (max)": (("knn1", name, "gauss-robust-t25"), "max") for name in NEW},
}
JUDGED = tuple(label for label in CANDIDATES if label.startswith(("shipped default +", "knn1 +")))
EXPECTED_SHIPPED_SELECTION = {"clean": 0.833, "contaminated": 0.791}  # TABULAR_SEARCH.md
RAISE, DROP = 0.005, 0.002
TIMED = ("knn1",) + NEW


def all_halves() -> dict[str, list[str]]:
    from bench_data import DATA_DIR, list_datasets

    return ts.halves([info.name for info in list_datasets(DATA_DIR)])


def fit(half: str, cache_dir: Path, threads: int) -> None:
    """Fit MEMBERS on every job of ``half`` missing from ``cache_dir`` with tabular_search's own
    fitting (its per-job lines go to ``cache_dir``/fits.jsonl, as tabular_bound.fit's do)."""
    ts.RECORDS = cache_dir / "fits.jsonl"
    args = ts.parse_args(["--members", *MEMBERS, "--datasets", *all_halves()[half], "--threads", str(threads),
                          "--cache-dir", str(cache_dir)])
    ts.fit_members(args)


def replace_records(replaced, lines: list[dict]) -> None:
    """Rewrite RECORDS: the records ``replaced`` selects give way to ``lines``; the others stay."""
    kept = [r for r in read_records(RECORDS) if not replaced(r)] if RECORDS.exists() else []
    RECORDS.parent.mkdir(parents=True, exist_ok=True)
    RECORDS.write_text("")
    for line in kept + lines:
        append_record(RECORDS, line)


def record(cache_dir: Path, half: str) -> int:
    """Replace ``half``'s candidate lines in RECORDS by tabular_search.evaluate() on every job in the
    cache (every candidate whose members are all cached for that job). Returns the number of lines."""
    cache = ts.load_cache(cache_dir)
    lines = []
    for label, (members, rule) in CANDIDATES.items():
        for dataset in all_halves()[half]:
            for protocol in ts.PROTOCOLS:
                for seed in ts.SEEDS:
                    if any((dataset, protocol, seed, m) not in cache for m in members):
                        continue
                    auc, seconds = ts.evaluate(cache, members, rule, [dataset], protocol, [seed], strict=True)
                    lines.append({"kind": "candidate", "candidate": label, "members": list(members), "rule": rule,
                                  "half": half, "dataset": dataset, "protocol": protocol, "seed": seed,
                                  "roc_auc": auc, "seconds": seconds})
    replace_records(lambda r: r["kind"] == "candidate" and r["half"] == half, lines)
    # the figures the report reads from these records must be evaluate()'s over the whole half
    mine = means(read_records(RECORDS), half)
    for label, (members, rule) in CANDIDATES.items():
        for protocol in ts.PROTOCOLS:
            whole, _ = ts.evaluate(cache, members, rule, all_halves()[half], protocol, ts.SEEDS, strict=True)
            if whole is not None and abs(whole - mine[label][protocol][0]) > 1e-12:
                raise SystemExit(f"records disagree with evaluate(): {label} {half} {protocol}")
    return len(lines)


def time_members(half: str, threads: int) -> None:
    """Fit and score each of TIMED on seed 0 of every job of ``half``, one after another in this
    process, so that the new members and knn1 are timed under the same load."""
    from bench_data import DATA_DIR, list_datasets, make_split

    builders = ts.member_builders()
    replace_records(lambda r: r["kind"] == "time" and r["half"] == half, [])
    for info in list_datasets(DATA_DIR):
        if info.name not in all_halves()[half]:
            continue
        split = make_split(info, 0)
        for protocol in ts.PROTOCOLS:
            X = split.fit_rows(protocol)
            for name in TIMED:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()
                    builders[name](0).fit(X).decision_function(split.X_test)
                    seconds = time.perf_counter() - start
                append_record(RECORDS, {"kind": "time", "half": half, "dataset": info.name, "protocol": protocol,
                                        "member": name, "seconds": seconds, "threads": threads})
        print(f"timed {info.name}", flush=True)


def means(records: list[dict], half: str) -> dict[str, dict[str, tuple[float, float]]]:
    """{candidate: {protocol: (mean over datasets of the mean over seeds, total seconds)}}, only
    where every dataset of the half has all three seeds."""
    import numpy as np

    datasets = all_halves()[half]
    found: dict = {}
    for r in records:
        if r["kind"] == "candidate" and r["half"] == half:
            found.setdefault((r["candidate"], r["protocol"]), {}).setdefault(r["dataset"], []).append(r)
    out: dict = {label: {} for label in CANDIDATES}
    for (label, protocol), per in found.items():
        if label not in out or set(per) != set(datasets) or any(len(v) != len(ts.SEEDS) for v in per.values()):
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


def complete(figures: dict, labels) -> bool:
    return all(len(figures[label]) == 2 for label in labels)


def write_report() -> None:
    """TABULAR_AE_ENSEMBLE.md from RECORDS and results/tabular.jsonl only (no cache needed)."""
    records = read_records(RECORDS)
    parts = all_halves()
    selection = means(records, "selection")
    passed = []
    if complete(selection, ("shipped default (max)",) + JUDGED):
        targets = {p: max(ts.peer_means(parts["selection"], p, ts.SEEDS).values()) for p in ts.PROTOCOLS}
        passed = [label for label in JUDGED if verdict(selection, targets, label)[0]]
    read_after = not passed
    lines = ["# An auto-encoder ensemble (RandNet) and DTE-NP as members of the default tabular ensemble", "",
             "Written by `benchmarks/tabular_ae_ensemble.py` (`--report-only` rewrites it from "
             f"`results/{RECORDS.name}` alone, with the PyOD targets in `results/tabular.jsonl`): one line per "
             "candidate and job, the AUROC `tabular_search.evaluate()` gave from the member scores cached by "
             "`tabular_search.fit_members` (same splits as `run_tabular.py`). Halves as in TABULAR_SEARCH.md; each "
             "figure is the mean over datasets of the mean over seeds 0, 1, 2.", "",
             "Members (`search_members.py`; details in the classes' docstrings):", "",
             "- `randnet`: after RandNet (Chen, Sathe, Aggarwal and Turaga 2017), 20 small auto-encoders "
             "(d, d/2, d/4, d/2, d units; sigmoid, ReLU, sigmoid, linear), each weight matrix under a fixed random "
             "mask keeping half the connections, each trained on its own random subsample of at most 1,024 rows, "
             "grown geometrically from 32 rows over 20 epochs (adaptive sampling; batches of 32, Adam); score: the "
             "median over members of the reconstruction error standardised by that member's training errors.",
             "- `dte-np`: DTE's non-parametric estimator (Livernoche et al. 2024) as the authors' code computes "
             "it (github.com/vicliv/DTE, `diffusion/non_param_dte.py`): with m(x) the mean squared distance to the "
             "K = 5 nearest training rows, the posterior over the T = 500 diffusion steps is proportional to the "
             "inverse-gamma density of the step's noise variance (1 - cumulative product of 1 - linspace(1e-4, "
             "0.01, T)) with shape d/2 - 1 and scale m(x)/2, and the score is the posterior mean step.",
             "- `knn5-sqmean`: m(x) itself, DTE-NP's monotone base (a reference, not judged).", "",
             "Both take columns standardised by the training rows' mean and standard deviation; their training "
             "scores (a training row's DTE-NP leaves itself out) normalise their test scores in the ensemble, as "
             "each member's do.", "",
             "The decision rule, written before any ensemble result existed (the module docstring of "
             "`tabular_ae_ensemble.py`): adding a member is worth it only if, on the selection half, the "
             f"ensemble raises the shipped default's worst margin (the worse of clean and contaminated, each minus "
             f"the best single PyOD detector on that half) by at least {RAISE} without lowering either protocol "
             f"by more than {DROP}; only then does the confirmation half count, where the same must hold.", "",
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
            if complete(figures, (label, "shipped default (max)")):
                verdicts.append(f"- {tag}, {label}: " + verdict(figures, targets, label)[1])
        knn_s = sum(s for _, s in figures["knn1"].values())
        for name in NEW + REFERENCE:
            if complete(figures, (name, "knn1")):
                own = sum(s for _, s in figures[name].values())
                verdicts.append(f"- {tag}: cached fit + score seconds of `{name}` {own:.1f} against `knn1` "
                                f"{knn_s:.1f} on the same jobs (x{own / knn_s:.1f}; fitted at different times on a "
                                "shared 2-core machine, one thread: noisy)")
    if complete(selection, ("shipped default (max)",) + JUDGED):
        shipped = selection["shipped default (max)"]
        same = all(round(shipped[p][0], 3) == EXPECTED_SHIPPED_SELECTION[p] for p in ts.PROTOCOLS)
        verdicts.insert(0, f"- check (rule step 0): the shipped default recomputed here gives {shipped['clean'][0]:.3f} "
                        f"clean, {shipped['contaminated'][0]:.3f} contaminated on the selection half; TABULAR_SEARCH.md "
                        f"gives {EXPECTED_SHIPPED_SELECTION['clean']:.3f}, {EXPECTED_SHIPPED_SELECTION['contaminated']:.3f}"
                        f": {'match' if same else 'MISMATCH (no verdict)'}")
        verdicts.append("")
        if not same:
            verdicts.append("**No verdict: the check of step 0 failed.**")
        else:
            verdicts.append("**Verdict (selection half, by the rule): "
                            + (f"{', '.join(passed)} passes; see the confirmation lines.**" if passed else
                               "none of the four ensembles passes: neither RandNet nor DTE-NP is worth adding to "
                               "the default.**"))
    lines += ["", "Seconds: cached fit + score seconds of the candidate's members over the half's jobs (both "
              "protocols)."]
    lines += timing(records)
    lines += ["", "## Per dataset", "",
              "Selection half (mean over seeds), each `shipped default + X (max)` minus the shipped default:", ""]
    lines += per_dataset(records)
    lines += same_as_base(records)
    lines += ["", "## The rule applied", ""] + verdicts
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT}")


def timing(records: list[dict]) -> list[str]:
    """Lines: the ``--time`` records, per half, each member's total and its ratio to knn1's."""
    lines = []
    for half in ("selection", "confirmation"):
        timed = [r for r in records if r["kind"] == "time" and r["half"] == half]
        if not timed:
            continue
        totals = {name: sum(r["seconds"] for r in timed if r["member"] == name) for name in TIMED}
        jobs = len({(r["dataset"], r["protocol"]) for r in timed})
        if not lines:
            lines += ["", "## Cost", "",
                      "Fit + score seconds summed over seed 0 of every dataset and protocol of the half, the members "
                      "one after another in one process at one thread (`--time`; a shared 2-core machine: noisy):", "",
                      "| half | jobs | member | seconds | x knn1 |", "|---|---:|---|---:|---:|"]
        lines += [f"| {half} | {jobs} | {name} | {totals[name]:.1f} | {totals[name] / totals['knn1']:.1f} |"
                  for name in TIMED]
    return lines


def same_as_base(records: list[dict]) -> list[str]:
    """Lines: how far ``dte-np`` alone is from its monotone base ``knn5-sqmean`` alone, job by job
    (they differ only where the posterior mean flattens and ties rows)."""
    values = {(r["candidate"], r["half"], r["dataset"], r["protocol"], r["seed"]): r["roc_auc"]
              for r in records if r["kind"] == "candidate" and r["candidate"] in ("dte-np", "knn5-sqmean")}
    lines = []
    for half in ("selection", "confirmation"):
        pairs = [(value, values[("knn5-sqmean",) + key[1:]]) for key, value in values.items()
                 if key[0] == "dte-np" and key[1] == half and ("knn5-sqmean",) + key[1:] in values]
        if pairs:
            same = sum(a == b for a, b in pairs)
            largest = max(abs(a - b) for a, b in pairs)
            lines.append(f"- {half}: `dte-np` alone gives the same AUROC as `knn5-sqmean` alone on {same} of "
                         f"{len(pairs)} jobs (largest difference {largest:.2g})"
                         + (": the posterior mean orders the test rows as the mean squared distance to the 5 "
                            "nearest training rows does" if same == len(pairs) else ""))
    return (["", "## DTE-NP and its base", ""] + lines) if lines else []


def per_dataset(records: list[dict]) -> list[str]:
    """Lines: per new member and protocol, the selection datasets where adding it changes the
    default's AUROC most."""
    import numpy as np

    lines = []
    values: dict = {}
    for r in records:
        if r["kind"] == "candidate" and r["half"] == "selection":
            values.setdefault((r["candidate"], r["protocol"], r["dataset"]), []).append(r["roc_auc"])
    for name in NEW:
        label = f"shipped default + {name} (max)"
        for protocol in ts.PROTOCOLS:
            change = {d: np.mean(values[(label, p, d)]) - np.mean(values[("shipped default (max)", p, d)])
                      for (c, p, d) in values if c == "shipped default (max)" and p == protocol
                      and (label, p, d) in values}
            if not change:
                continue
            ordered = sorted(change, key=change.get)
            shown = ", ".join(f"{d} {change[d]:+.3f}" for d in ordered[:3] + ordered[-2:][::-1])
            lines.append(f"- + {name}, {protocol}: higher on {sum(v > 0.0005 for v in change.values())}, lower on "
                         f"{sum(v < -0.0005 for v in change.values())} of {len(change)} (within 0.0005 on the rest); "
                         f"largest: {shown}")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--halves", nargs="+", choices=("selection", "confirmation"), default=["selection"],
                        help="halves to fit and record (the rule: the confirmation half counts only after a pass)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/bound_cache"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--time", action="store_true", help="also time knn1 and the new members on seed 0 of each half")
    parser.add_argument("--report-only", action="store_true", help="rewrite TABULAR_AE_ENSEMBLE.md from the records only")
    args = parser.parse_args(argv)
    if not args.report_only:
        limit_threads(args.threads)
        for half in args.halves:
            fit(half, args.cache_dir, args.threads)
            print(f"{half}: {record(args.cache_dir, half)} records", flush=True)
            if args.time:
                time_members(half, args.threads)
    write_report()


if __name__ == "__main__":
    sys.exit(main())
