"""Should ``AutoEncoderDetector`` train robustly by default? Decided on the selection half, confirmed on the other.

``robust=True`` leaves the share of training rows the network reconstructs worst out of each epoch
(``contamination``, 0.1 by default). It was measured to help when anomalies hide in the training
data; the question here is whether it costs anything on clean training data, so that one
configuration can serve both protocols of ``run_tabular.py``.

Both variants (``ae``: ``AutoEncoderDetector()``, ``ae-robust``: ``AutoEncoderDetector(robust=True)``,
each with ``random_state=seed``) are fitted by ``tabular_search.py``'s job runner on exactly the
runner's splits (both protocols, seeds 0-2, all datasets) and recorded in
``results/tabular_search.jsonl``; this script reads the latest record of each job. The halves are
``tabular_search.py``'s (datasets in name order: even positions select, odd positions confirm).

The rule, fixed before the selection half's results were read: ``robust=True`` becomes the default
when, on the selection half (mean over datasets of the mean over seeds), it is higher than
``robust=False`` in the contaminated protocol and at most 0.002 lower in the clean protocol. The
confirmation half is read afterwards; the change stands only if the same holds there.

    .venv/bin/python benchmarks/ae_robust.py                 # fit the missing jobs, write AE_ROBUST.md
    .venv/bin/python benchmarks/ae_robust.py --report-only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench_runtime import limit_threads, read_records

HERE = Path(__file__).resolve().parent
REPORT = HERE / "AE_ROBUST.md"
VARIANTS = ("ae", "ae-robust")
SEEDS = (0, 1, 2)
PROTOCOLS = ("clean", "contaminated")
CLEAN_TOLERANCE = 0.002
"""How much lower than the plain auto-encoder the robust one may be on clean data (selection half)."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="threads per job (default 1: the machine is shared)")
    parser.add_argument("--cache-dir", type=Path, help="tabular_search.py's score cache (default: its own)")
    parser.add_argument("--data-dir", type=Path, help="folder of .npz datasets (default: ../shared/data)")
    parser.add_argument("--report-only", action="store_true", help="write AE_ROBUST.md from the records, fit nothing")
    return parser.parse_args(argv)


def load(records: list[dict], variants=VARIANTS):
    """{(dataset, protocol, seed, variant): (AUROC, seconds)}, the latest record of each job of ``variants``."""
    table = {}
    for r in records:
        if r.get("member") in variants:
            table[(r["dataset"], r["protocol"], int(r["seed"]), r["member"])] = (
                float(r["roc_auc"]), float(r["fit_seconds"]) + float(r["score_seconds"]))
    return table


def half_means(table: dict, datasets: list[str], protocol: str, variant: str, seeds=SEEDS):
    """Mean over ``datasets`` of the mean AUROC over ``seeds``; None when a job is missing."""
    per_dataset = []
    for dataset in datasets:
        values = [table.get((dataset, protocol, s, variant)) for s in seeds]
        if any(v is None for v in values):
            return None
        per_dataset.append(sum(v[0] for v in values) / len(values))
    return sum(per_dataset) / len(per_dataset)


def verdict(plain: float, robust: float, clean_plain: float, clean_robust: float) -> bool:
    """The rule: better when contaminated, at most CLEAN_TOLERANCE worse when clean."""
    return robust > plain and clean_robust >= clean_plain - CLEAN_TOLERANCE


def write_report(records_path: Path) -> str:
    import tabular_search

    table = load(read_records(records_path))
    datasets = sorted({key[0] for key in table})
    parts = tabular_search.halves(datasets)
    lines = [
        "# The auto-encoder's `robust` default: selection half, then confirmation half",
        "",
        "Written by `.venv/bin/python benchmarks/ae_robust.py` from `results/tabular_search.jsonl` (the latest "
        "record of each job). `ae` = `AutoEncoderDetector()` with `robust=False`, `ae-robust` = "
        "`AutoEncoderDetector(robust=True)` (the worst-reconstructed `contamination` share, 0.1, of the training "
        "rows left out of each epoch from the second on, of early stopping's held-out loss and of the residual "
        "covariance), both with `random_state=seed`, fitted on `run_tabular.py`'s splits (stratified 70/30, at "
        "most 10,000 rows; clean: the normal training rows; contaminated: all training rows), seeds 0, 1, 2. "
        "Halves as in [TABULAR_SEARCH.md](TABULAR_SEARCH.md): datasets in name order, even positions select, "
        "odd positions confirm. Records accumulate: part of the contaminated protocol's seeds 0 and 1 was fitted by "
        "an earlier session (commit ab894e1), the rest in this one; the latest record of each job counts.",
        "",
        f"The rule, fixed before the selection half's results were read: `robust=True` becomes the default when, "
        f"on the selection half, its mean AUROC is higher than `robust=False`'s in the contaminated protocol and "
        f"at most {CLEAN_TOLERANCE} lower in the clean protocol; the confirmation half is read afterwards, and the "
        "change stands only if the same holds there.",
        "",
        "| half | protocol | ae | ae-robust | difference | datasets better by > 0.005 | worse by > 0.005 "
        "| seconds ae | seconds ae-robust |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    means = {}
    for half in ("selection", "confirmation"):
        for protocol in PROTOCOLS:
            plain = half_means(table, parts[half], protocol, "ae")
            robust = half_means(table, parts[half], protocol, "ae-robust")
            means[(half, protocol)] = (plain, robust)
            if plain is None or robust is None:
                cells = [f"{v:.3f}" if v is not None else "-" for v in (plain, robust)]
                lines.append(f"| {half} | {protocol} | {cells[0]} | {cells[1]} | (jobs missing) | | | | |")
                continue
            better = worse = 0
            seconds = {v: 0.0 for v in VARIANTS}
            for dataset in parts[half]:
                diff = sum(table[(dataset, protocol, s, "ae-robust")][0] - table[(dataset, protocol, s, "ae")][0]
                           for s in SEEDS) / len(SEEDS)
                better += diff > 0.005
                worse += diff < -0.005
                for v in VARIANTS:
                    seconds[v] += sum(table[(dataset, protocol, s, v)][1] for s in SEEDS)
            lines.append(f"| {half} | {protocol} | {plain:.3f} | {robust:.3f} | {robust - plain:+.3f} | "
                         f"{better} of {len(parts[half])} | {worse} | {seconds['ae']:.0f} | "
                         f"{seconds['ae-robust']:.0f} |")
    lines += ["", "Per seed (mean over the half's datasets):", "",
              "| half | protocol | seed | ae | ae-robust | difference |", "|---|---|---:|---:|---:|---:|"]
    for half in ("selection", "confirmation"):
        for protocol in PROTOCOLS:
            for seed in SEEDS:
                plain = half_means(table, parts[half], protocol, "ae", (seed,))
                robust = half_means(table, parts[half], protocol, "ae-robust", (seed,))
                if plain is not None and robust is not None:
                    lines.append(f"| {half} | {protocol} | {seed} | {plain:.3f} | {robust:.3f} | "
                                 f"{robust - plain:+.3f} |")
    lines += ["", "All datasets (read after both verdicts, for the record), beside PyOD's AutoEncoder on the same splits "
              "(`results/tabular.jsonl`):", "", "| protocol | ae | ae-robust | pyod-AutoEncoder |", "|---|---:|---:|---:|"]
    for protocol in PROTOCOLS:
        plain = half_means(table, datasets, protocol, "ae")
        robust = half_means(table, datasets, protocol, "ae-robust")
        peer = tabular_search.peer_means(datasets, protocol, SEEDS).get("pyod-AutoEncoder")
        cells = [f"{v:.3f}" if v is not None else "-" for v in (plain, robust, peer)]
        lines.append(f"| {protocol} | " + " | ".join(cells) + " |")
    outcome, verdicts = [], []
    for half in ("selection", "confirmation"):
        (cp, cr), (xp, xr) = means[(half, "clean")], means[(half, "contaminated")]
        if None in (cp, cr, xp, xr):
            verdicts.append(None)
            outcome.append(f"- {half} half: incomplete, no verdict.")
        else:
            verdicts.append(verdict(xp, xr, cp, cr))
            outcome.append(f"- {half} half: the rule {'holds' if verdicts[-1] else 'does not hold'} "
                           f"(contaminated {xr - xp:+.3f}, clean {cr - cp:+.3f}).")
    if verdicts == [True, True]:
        decision = "Chosen and confirmed: `robust=True` is the default of `AutoEncoderDetector`."
    elif verdicts == [True, False]:
        decision = ("Chosen on the selection half, not confirmed on the other: `AutoEncoderDetector` keeps "
                    "`robust=False` as its default. `robust=True` stays an option for training data that may hold "
                    "anomalies, where it was ahead on both halves.")
    elif verdicts[0] is False:
        decision = "Not chosen on the selection half: `AutoEncoderDetector` keeps `robust=False` as its default."
    else:
        decision = "Incomplete: no decision yet."
    lines += ["", "Verdict:", ""] + outcome + ["", decision]
    lines += ["", "Seconds: fit + score over the half's datasets and seeds, one thread, on a 2-core machine shared "
              "with other jobs (noisy)."]
    text = "\n".join(lines) + "\n"
    REPORT.write_text(text)
    print(f"wrote {REPORT}")
    return text


def main(argv=None) -> None:
    args = parse_args(argv)
    limit_threads(args.threads)
    import tabular_search

    if not args.report_only:
        job_args = tabular_search.parse_args(["--members", *VARIANTS, "--threads", str(args.threads)]
                                             + (["--cache-dir", str(args.cache_dir)] if args.cache_dir else [])
                                             + (["--data-dir", str(args.data_dir)] if args.data_dir else []))
        tabular_search.fit_members(job_args)
    write_report(tabular_search.RECORDS)


if __name__ == "__main__":
    sys.exit(main())
