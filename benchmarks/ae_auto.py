"""Adaptive trimming (``robust="auto"``) for ``AutoEncoderDetector``: decided on the selection half, confirmed on the other.

``robust=True`` leaves the worst-reconstructed ``contamination`` share (0.1) of the training rows
out of every epoch; on clean training data that share is ordinary hard rows, on contaminated data
it holds the anomalies. ``robust="auto"`` trims only the rows whose loss stands apart: those whose
log loss lies above Tukey's fence, Q3 + 1.5 IQR of the log losses of the training rows under the
current network, at most the same 0.1 (and likewise for the held-out loss of early stopping and the
residual covariance).

Members (``tabular_search.py``'s builders, each with ``random_state=seed``): ``ae`` =
``AutoEncoderDetector()`` (``robust=False``), ``ae-robust`` = ``robust=True``, ``ae-auto`` =
``robust="auto"``, fitted on exactly ``run_tabular.py``'s splits (both protocols, seeds 0-2) and
recorded in ``results/tabular_search.jsonl``; this script reads the latest record of each job (the
``ae`` and ``ae-robust`` records are those ``ae_robust.py`` made). PyOD's AutoEncoder comes from
``results/tabular.jsonl`` (same splits). Halves as ``tabular_search.py``'s: datasets in name order,
even positions select, odd positions confirm.

The rule, fixed and committed before any ``ae-auto`` result was read: ``robust="auto"`` becomes the
default when, on the selection half (mean over datasets of the mean over seeds), its mean AUROC minus
PyOD AutoEncoder's on that half is at least 0.02 in both protocols, and in the clean protocol it is
at most 0.002 below ``robust=False``. The confirmation half is fitted and read afterwards; the change
stands only if the same holds there too. If it is not made the default, ``robust="auto"`` is kept as
an option only when it is above ``robust=False`` by more than 0.005 in the same protocol on both
halves; otherwise the option is removed again.

Round 2 (``--round 2``), after ``ae-auto`` failed on the confirmation half, with its own rule fixed
and committed before any of its results was read: two candidates with five members, ``ae-robust-e5``
(``robust=True, n_estimators=5``) and ``ae-e5`` (``n_estimators=5``), are fitted on the selection
half. Each passes there by the rule above (at least 0.02 above PyOD's AutoEncoder in both protocols,
clean at most 0.002 below ``robust=False``); of those that pass, the one with the larger mean of its
two margins over PyOD's AutoEncoder is the pick. Only the pick is fitted on the confirmation half
(``--round 2 --half confirmation`` fits nothing else), and its settings become the default only if
the rule holds there too. The confirmation half is not fresh by then: ``ae``, ``ae-robust`` and
``ae-auto`` have been read on it.

At review, ``robust="auto"`` was removed from the library again (measured at commit 03194d0; the
last section of AE_AUTO.md says why), so the ``ae-auto`` member can no longer be fitted: its records
remain, and ``--report-only`` rewrites the page from them. The review also applied AE_ROBUST.md's
rule for a new default to round 2's pick and checked it on the demo's breast-cancer split
(``--demo-check``); the default stayed. At stop 33 round 2's pick became the default on tables
(``robust="auto"`` and ``n_estimators="auto"``, which pick by the kind of input, not round 1's
adaptive trimming); the page's last section says why and gives its figures as ``run_tabular.py``
measured the default.

    .venv/bin/python benchmarks/ae_auto.py --round 2 --half selection   # fit round 2's candidates
    .venv/bin/python benchmarks/ae_auto.py --half selection      # (at 03194d0) fit ae-auto on the selection half, write AE_AUTO.md
    .venv/bin/python benchmarks/ae_auto.py --half confirmation   # then the confirmation half
    .venv/bin/python benchmarks/ae_auto.py --report-only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ae_robust
from bench_runtime import limit_threads, read_records

HERE = Path(__file__).resolve().parent
REPORT = HERE / "AE_AUTO.md"
ROUND1 = ("ae", "ae-robust", "ae-auto")
VARIANTS = (*ROUND1, "ae-robust-e5", "ae-e5")
CANDIDATE = "ae-auto"
ROUND2 = ("ae-robust-e5", "ae-e5")
"""Round 2's candidates, in this order (a tie in mean margin goes to the first)."""
SEEDS = (0, 1, 2)
PROTOCOLS = ("clean", "contaminated")
HALVES = ("selection", "confirmation")
TARGET = 0.02
"""Issue 22: at least this much mean AUROC above PyOD's AutoEncoder, in both protocols."""
CLEAN_TOLERANCE = 0.002
"""How far below ``robust=False`` the candidate may be in the clean protocol."""
OPTION_MARGIN = 0.005
"""Not the default: kept as an option only when above ``robust=False`` by more than this in the same
protocol on both halves."""
PEER = "pyod-AutoEncoder"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--half", choices=HALVES, help="fit the candidate's missing jobs on this half")
    parser.add_argument("--round", type=int, choices=(1, 2), default=1,
                        help="1: ae-auto; 2: ROUND2 on the selection half, then only the pick on the confirmation half")
    parser.add_argument("--threads", type=int, default=1, help="threads per job (default 1: the machine is shared)")
    parser.add_argument("--cache-dir", type=Path, help="tabular_search.py's score cache (default: its own)")
    parser.add_argument("--data-dir", type=Path, help="folder of .npz datasets (default: ../shared/data)")
    parser.add_argument("--max-seconds", type=float, help="start no new job after this many seconds")
    parser.add_argument("--report-only", action="store_true", help="write AE_AUTO.md from the records, fit nothing")
    parser.add_argument("--demo-check", action="store_true",
                        help="fit the review's four settings on the demo's breast-cancer split (seeds 0-2), then report")
    return parser.parse_args(argv)


def load(records: list[dict]) -> dict:
    """{(dataset, protocol, seed, variant): (AUROC, seconds)}, the latest record of each job (as ae_robust.py)."""
    return ae_robust.load(records, VARIANTS)


half_mean = ae_robust.half_means
"""Mean over datasets of the mean AUROC over seeds; None when a job is missing (ae_robust.py's)."""


def holds(auto: dict, plain: dict, peer: dict) -> bool:
    """The rule on one half: >= TARGET above PyOD's AutoEncoder in both protocols, and in the clean
    protocol at most CLEAN_TOLERANCE below robust=False (dicts by protocol)."""
    return (all(auto[p] - peer[p] >= TARGET for p in PROTOCOLS)
            and auto["clean"] >= plain["clean"] - CLEAN_TOLERANCE)


def fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def signed(value) -> str:
    return "-" if value is None else f"{value:+.3f}"


def write_report(records_path: Path) -> str:
    import tabular_search

    table = load(read_records(records_path))
    datasets = sorted({key[0] for key in table})
    parts = tabular_search.halves(datasets)
    parts["all"] = datasets
    means = {(half, protocol, variant): half_mean(table, parts[half], protocol, variant)
             for half in (*HALVES, "all") for protocol in PROTOCOLS for variant in VARIANTS}
    peers = {(half, protocol): tabular_search.peer_means(parts[half], protocol, SEEDS).get(PEER)
             for half in (*HALVES, "all") for protocol in PROTOCOLS}
    lines = [
        "# Adaptive trimming for the auto-encoder (`robust=\"auto\"`): selection half, then confirmation half",
        "",
        "Written by `.venv/bin/python benchmarks/ae_auto.py` (round 1: `ae-auto`; round 2 below) from `results/tabular_search.jsonl` (the latest record "
        "of each job) and, for PyOD's AutoEncoder on the same splits, `results/tabular.jsonl`. `ae` = "
        "`AutoEncoderDetector()` (`robust=False`), `ae-robust` = `robust=True` (the worst 0.1 of the training rows "
        "left out of each epoch from the second on), `ae-auto` = `robust=\"auto\"` (only the rows whose log loss lies "
        "above Tukey's fence, Q3 + 1.5 IQR of the training rows' log losses, left out, at most 0.1; the held-out loss "
        "of early stopping and the residual covariance alike), each with `random_state=seed`, fitted on "
        "`run_tabular.py`'s splits (stratified 70/30, at most 10,000 rows; clean: the normal training rows; "
        "contaminated: all training rows), seeds 0, 1, 2, one thread. The `ae` and `ae-robust` records are the "
        "ones [AE_ROBUST.md](AE_ROBUST.md) was written from; `ae-auto` was fitted for this page. Halves as in "
        "[TABULAR_SEARCH.md](TABULAR_SEARCH.md): datasets in name order, even positions select, odd positions "
        "confirm.",
        "",
        f"The rule, fixed and committed before any `ae-auto` result was read: `robust=\"auto\"` becomes the default "
        f"when, on the selection half, its mean AUROC minus PyOD AutoEncoder's on that half is at least {TARGET} in "
        f"both protocols, and in the clean protocol it is at most {CLEAN_TOLERANCE} below `robust=False`; the "
        "confirmation half is fitted and read afterwards, and the change stands only if the same holds there too. "
        "Otherwise `robust=\"auto\"` stays an option only when it is above `robust=False` by more than "
        f"{OPTION_MARGIN} in the same protocol on both halves, and is removed if not.",
        "",
        "Known before the rule was written (from the committed records): on the confirmation half, clean protocol, "
        "`robust=False` is only +0.010 above PyOD's AutoEncoder (0.906 against 0.896), so the candidate must gain "
        "about 0.01 over it there to pass. Also looked at before the rule (no AUROC, no test labels): the share of "
        "training rows above the log fence, per epoch of a `robust=True` fit, seed 0, on six selection-half datasets "
        "(cardio, glass, pima, vertebral, wbc, yeast): 0.0-9.2% (mean over epochs) clean and 0.3-7.9% contaminated, "
        "so the fence does not separate the two protocols as cleanly as hoped; on the raw losses the same fence "
        "would trim 8-18%, about what `robust=True` trims.",
        "",
        "| half | protocol | pyod-AutoEncoder | ae | ae-robust | ae-auto | ae-auto - PyOD | ae-auto - ae "
        "| better than ae by > 0.005 | worse by > 0.005 | seconds ae-auto |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for half in HALVES:
        for protocol in PROTOCOLS:
            plain, robust, auto = (means[(half, protocol, v)] for v in ROUND1)
            peer = peers[(half, protocol)]
            better = worse = "-"
            seconds = "-"
            if auto is not None and plain is not None:
                diffs = [sum(table[(d, protocol, s, CANDIDATE)][0] - table[(d, protocol, s, "ae")][0] for s in SEEDS)
                         / len(SEEDS) for d in parts[half]]
                better = f"{sum(x > 0.005 for x in diffs)} of {len(diffs)}"
                worse = str(sum(x < -0.005 for x in diffs))
                seconds = f"{sum(table[(d, protocol, s, CANDIDATE)][1] for d in parts[half] for s in SEEDS):.0f}"
            lines.append(f"| {half} | {protocol} | {fmt(peer)} | {fmt(plain)} | {fmt(robust)} | {fmt(auto)} | "
                         f"{signed(None if auto is None or peer is None else auto - peer)} | "
                         f"{signed(None if auto is None or plain is None else auto - plain)} | {better} | {worse} "
                         f"| {seconds} |")
    lines += ["", "Per seed (mean over the half's datasets):", "",
              "| half | protocol | seed | ae | ae-robust | ae-auto | ae-auto - ae |", "|---|---|---:|---:|---:|---:|---:|"]
    for half in HALVES:
        for protocol in PROTOCOLS:
            for seed in SEEDS:
                plain, robust, auto = (half_mean(table, parts[half], protocol, v, (seed,)) for v in ROUND1)
                if auto is not None:
                    lines.append(f"| {half} | {protocol} | {seed} | {fmt(plain)} | {fmt(robust)} | {fmt(auto)} | "
                                 f"{signed(None if plain is None else auto - plain)} |")
    verdicts, outcome = [], []
    for half in HALVES:
        auto = {p: means[(half, p, CANDIDATE)] for p in PROTOCOLS}
        plain = {p: means[(half, p, "ae")] for p in PROTOCOLS}
        peer = {p: peers[(half, p)] for p in PROTOCOLS}
        if None in (*auto.values(), *plain.values(), *peer.values()):
            verdicts.append(None)
            outcome.append(f"- {half} half: not (yet) fitted, no verdict.")
            continue
        verdicts.append(holds(auto, plain, peer))
        outcome.append(
            f"- {half} half: the rule {'holds' if verdicts[-1] else 'does not hold'} (above PyOD's AutoEncoder by "
            f"{auto['clean'] - peer['clean']:+.3f} clean and {auto['contaminated'] - peer['contaminated']:+.3f} "
            f"contaminated, {TARGET} needed in both; against `robust=False` {auto['clean'] - plain['clean']:+.3f} "
            f"clean, at least {-CLEAN_TOLERANCE} needed).")
    if verdicts == [True, True]:
        decision = "Chosen and confirmed: `robust=\"auto\"` is the default of `AutoEncoderDetector`."
    elif verdicts[0] is None or (verdicts[0] and verdicts[1] is None):
        decision = "Incomplete: no decision yet."
    else:
        where = "Not chosen on the selection half" if verdicts[0] is False else \
            "Chosen on the selection half, not confirmed on the other"
        keep = [p for p in PROTOCOLS
                if all(means[(h, p, CANDIDATE)] is not None and means[(h, p, "ae")] is not None
                       and means[(h, p, CANDIDATE)] - means[(h, p, "ae")] > OPTION_MARGIN for h in HALVES)]
        if keep:
            decision = (f"{where}: `AutoEncoderDetector` keeps `robust=False` as its default. `robust=\"auto\"` stays "
                        f"an option by this rule: it was above `robust=False` by more than {OPTION_MARGIN} in the "
                        f"{keep[0]} protocol on both halves. (At review it was removed all the same: see the last "
                        "section.)")
        elif None in verdicts:
            decision = f"{where}: `AutoEncoderDetector` keeps `robust=False` as its default (confirmation half not fitted)."
        else:
            decision = (f"{where}: `AutoEncoderDetector` keeps `robust=False` as its default, and `robust=\"auto\"` is "
                        f"not kept as an option (above `robust=False` by more than {OPTION_MARGIN} in neither "
                        "protocol on both halves).")
    lines += ["", "Verdict:", ""] + outcome + ["", decision]
    if None not in verdicts:
        lines += ["", "All 31 datasets (read after both verdicts), against the issue's target (PyOD's AutoEncoder "
                  f"+ {TARGET}):", "",
                  "| protocol | pyod-AutoEncoder | target | ae | ae-robust | ae-auto | ae-auto - PyOD |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for protocol in PROTOCOLS:
            peer = peers[("all", protocol)]
            plain, robust, auto = (means[("all", protocol, v)] for v in ROUND1)
            lines.append(f"| {protocol} | {fmt(peer)} | {fmt(None if peer is None else peer + TARGET)} | {fmt(plain)} "
                         f"| {fmt(robust)} | {fmt(auto)} | {signed(None if auto is None or peer is None else auto - peer)} |")
    lines += ["", "Seconds: fit + score of `ae-auto` over the half's datasets and seeds, one thread, on a 2-core "
              "machine shared with other jobs (noisy)."]
    lines += round2_section(table, parts, means, peers)
    lines += review_section(means, peers)
    lines += default_section(parts, peers)
    text = "\n".join(lines) + "\n"
    REPORT.write_text(text)
    print(f"wrote {REPORT}")
    return text


def round2_pick(means: dict, peers: dict):
    """Round 2's pick on the selection half: (pick or None, {candidate: verdict or None})."""
    verdicts, scored = {}, []
    plain = {p: means[("selection", p, "ae")] for p in PROTOCOLS}
    peer = {p: peers[("selection", p)] for p in PROTOCOLS}
    for name in ROUND2:
        auto = {p: means[("selection", p, name)] for p in PROTOCOLS}
        if None in (*auto.values(), *plain.values(), *peer.values()):
            verdicts[name] = None
            continue
        verdicts[name] = holds(auto, plain, peer)
        if verdicts[name]:
            scored.append((sum(auto[p] - peer[p] for p in PROTOCOLS) / 2, -ROUND2.index(name), name))
    if any(v is None for v in verdicts.values()):
        return None, verdicts
    return (max(scored)[2] if scored else None), verdicts


def round2_section(table: dict, parts: dict, means: dict, peers: dict) -> list[str]:
    lines = ["", "## Round 2: five members (`n_estimators=5`)", "",
             "Fixed and committed before any of its results was read, after `ae-auto` failed on the confirmation "
             "half: `ae-robust-e5` = `AutoEncoderDetector(robust=True, n_estimators=5)` and `ae-e5` = "
             "`AutoEncoderDetector(n_estimators=5)` (five auto-encoders from different initial weights, trained side "
             "by side, scores averaged) are fitted on the selection half. Each passes there by round 1's rule (at "
             f"least {TARGET} above PyOD's AutoEncoder in both protocols, clean at most {CLEAN_TOLERANCE} below "
             "`robust=False`); of those that pass, the one with the larger mean of its two margins over PyOD's "
             "AutoEncoder is the pick, and only the pick is fitted on the confirmation half, where the rule must "
             "hold again for its settings to become the default. The confirmation half is not fresh: `ae`, "
             "`ae-robust` and `ae-auto` had been read on it. Time is reported, not ruled on.", "",
             "| half | protocol | pyod-AutoEncoder | ae | ae-robust | " + " | ".join(ROUND2) + " | "
             + " | ".join(f"{n} - PyOD" for n in ROUND2) + " | " + " | ".join(f"seconds {n}" for n in ROUND2)
             + " | seconds ae-auto |",
             "|---|---|" + "---:|" * (3 + 3 * len(ROUND2) + 1)]
    for half in HALVES:
        for protocol in PROTOCOLS:
            peer = peers[(half, protocol)]
            values = [means[(half, protocol, n)] for n in ROUND2]
            if all(v is None for v in values):
                continue
            seconds = []
            for name in (*ROUND2, CANDIDATE):
                jobs = [table.get((d, protocol, s, name)) for d in parts[half] for s in SEEDS]
                seconds.append("-" if None in jobs else f"{sum(j[1] for j in jobs):.0f}")
            lines.append(f"| {half} | {protocol} | {fmt(peer)} | {fmt(means[(half, protocol, 'ae')])} | "
                         f"{fmt(means[(half, protocol, 'ae-robust')])} | " + " | ".join(fmt(v) for v in values) + " | "
                         + " | ".join(signed(None if v is None or peer is None else v - peer) for v in values)
                         + " | " + " | ".join(seconds) + " |")
    pick, verdicts = round2_pick(means, peers)
    lines += ["", "Verdict:", ""]
    for name in ROUND2:
        v = verdicts[name]
        lines.append(f"- `{name}` on the selection half: " + ("not (yet) fitted." if v is None else
                                                              ("the rule holds." if v else "the rule does not hold.")))
    if any(v is None for v in verdicts.values()):
        return lines + ["", "Incomplete: no pick yet."]
    if pick is None:
        return lines + ["", "No candidate passes on the selection half: the default is unchanged."]
    conf = {p: means[("confirmation", p, pick)] for p in PROTOCOLS}
    if None in conf.values():
        return lines + ["", f"Pick: `{pick}`; confirmation half not (yet) fitted."]
    ok = holds(conf, {p: means[("confirmation", p, "ae")] for p in PROTOCOLS},
               {p: peers[("confirmation", p)] for p in PROTOCOLS})
    lines += ["", f"Pick: `{pick}`. On the confirmation half the rule {'holds' if ok else 'does not hold'} "
              f"(above PyOD's AutoEncoder by {conf['clean'] - peers[('confirmation', 'clean')]:+.3f} clean and "
              f"{conf['contaminated'] - peers[('confirmation', 'contaminated')]:+.3f} contaminated; against "
              f"`robust=False` {conf['clean'] - means[('confirmation', 'clean', 'ae')]:+.3f} clean).", "",
              (f"Chosen and confirmed: `{pick}`'s settings are the default." if ok else
               "Not confirmed by this round's rule (the last section decides otherwise)."), "",
              "All 31 datasets (read after the verdict):", "",
              "| protocol | pyod-AutoEncoder | target | ae | " + pick + f" | {pick} - PyOD |", "|---|---:|---:|---:|---:|---:|"]
    for protocol in PROTOCOLS:
        peer, value = peers[("all", protocol)], means[("all", protocol, pick)]
        lines.append(f"| {protocol} | {fmt(peer)} | {fmt(None if peer is None else peer + TARGET)} | "
                     f"{fmt(means[('all', protocol, 'ae')])} | {fmt(value)} | "
                     f"{signed(None if value is None or peer is None else value - peer)} |")
    return lines


REVIEW_RULE_SOURCE = "AE_ROBUST.md"
"""Where the rule the review applies was written (stop 29, before any five-member result existed)."""
DEMO_RECORDS = HERE / "results" / "ae_auto_demo.jsonl"
DEMO_CONFIGS = {"ae": dict(robust=False, n_estimators=1), "ae-robust-e5": dict(robust=True, n_estimators=5),
                "ae-robust": dict(robust=True, n_estimators=1), "ae-e5": dict(robust=False, n_estimators=5)}
"""The settings the review checked on the demo's breast-cancer split (clean training rows)."""
DEFAULT_NAME = "oddkit-AutoEncoder"
"""run_tabular.py's name for ``AutoEncoderDetector()`` with the library's defaults."""


def demo_check(seeds=SEEDS) -> None:
    """Fit each of DEMO_CONFIGS on ``oddkit.demo.split_breast_cancer(random_state=seed)``'s training
    rows (normal only, as the README's quick start does) and record its test AUROC."""
    import warnings

    from bench_runtime import append_record
    from sklearn.metrics import roc_auc_score

    import oddkit
    from oddkit.demo import split_breast_cancer

    for seed in seeds:
        split = split_breast_cancer(random_state=seed)
        for name, params in DEMO_CONFIGS.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                detector = oddkit.AutoEncoderDetector(random_state=seed, verbose=0, **params).fit(split.train)
            auc = float(roc_auc_score(split.y_test, detector.decision_function(split.test)))
            append_record(DEMO_RECORDS, {"seed": seed, "variant": name, "roc_auc": auc})
            print(f"demo split seed={seed} {name}: AUROC {auc:.3f}", flush=True)


def review_section(means: dict, peers: dict) -> list[str]:
    """The decision taken at review: AE_ROBUST.md's rule for a new default, applied to round 2's pick,
    the demo split's check, and what became of ``robust="auto"``."""
    pick = "ae-robust-e5"
    if any(means[(h, p, v)] is None for h in HALVES for p in PROTOCOLS for v in ("ae", "ae-robust", CANDIDATE, pick)):
        return []
    lines = ["", "## At review: the default stays; `robust=\"auto\"` is removed", "",
             f"[{REVIEW_RULE_SOURCE}]({REVIEW_RULE_SOURCE})'s rule for a new default of `AutoEncoderDetector`, fixed "
             "before any five-member result existed: on the selection half, higher mean AUROC than `robust=False` "
             f"in the contaminated protocol and at most {CLEAN_TOLERANCE} lower in the clean one; the same on the "
             "confirmation half. It asks the candidate to improve on the present default; the rules of the rounds "
             f"above asked it, per half, to lead PyOD's AutoEncoder by {TARGET}, which on the confirmation half's clean "
             "protocol no variant measured does (the largest lead there is "
             + signed(max(means[("confirmation", "clean", v)] for v in ("ae", "ae-robust", CANDIDATE, pick))
                      - peers[("confirmation", "clean")]) + "). The rule was written before; applying it to round 2's "
             "pick was considered at review, after the confirmation half had been read for four variants.", "",
             f"| half | protocol | ae | {pick} | difference | needed |", "|---|---|---:|---:|---:|---|"]
    verdict = True
    for half in HALVES:
        for protocol in PROTOCOLS:
            plain, new = means[(half, protocol, "ae")], means[(half, protocol, pick)]
            needed = "> 0" if protocol == "contaminated" else f">= {-CLEAN_TOLERANCE}"
            verdict &= (new > plain) if protocol == "contaminated" else (new >= plain - CLEAN_TOLERANCE)
            lines.append(f"| {half} | {protocol} | {fmt(plain)} | {fmt(new)} | {signed(new - plain)} | {needed} |")
    lines += ["", f"That rule {'holds' if verdict else 'does not hold'} on both halves. On all 31 datasets `{pick}` "
              f"scores {fmt(means[('all', 'clean', pick)])} clean and {fmt(means[('all', 'contaminated', pick)])} "
              f"contaminated, against PyOD's AutoEncoder's {fmt(peers[('all', 'clean')])} and "
              f"{fmt(peers[('all', 'contaminated')])} ({signed(means[('all', 'clean', pick)] - peers[('all', 'clean')])}"
              f" and {signed(means[('all', 'contaminated', pick)] - peers[('all', 'contaminated')])}; issue 22 asks "
              f"{TARGET} in both)."]
    demo = {}
    if DEMO_RECORDS.exists():
        for record in read_records(DEMO_RECORDS):
            demo[(record["variant"], record["seed"])] = record["roc_auc"]
    if all((v, seed) in demo for v in DEMO_CONFIGS for seed in SEEDS):
        lines += ["", "Before changing a default that the README's quick start and the demo use, the review also fitted "
                  "the four settings on the demo's breast-cancer split (`oddkit.demo.split_breast_cancer`, normal "
                  "training rows only, test AUROC; `ae_auto.py --demo-check`, `results/ae_auto_demo.jsonl`):", "",
                  "| seed | " + " | ".join(f"`{v}`" for v in DEMO_CONFIGS) + " |",
                  "|---:|" + "---:|" * len(DEMO_CONFIGS)]
        for seed in SEEDS:
            lines.append(f"| {seed} | " + " | ".join(f"{demo[(v, seed)]:.3f}" for v in DEMO_CONFIGS) + " |")
        worse = sum(demo[(pick, seed)] < demo[("ae", seed)] for seed in SEEDS)
        lines += ["", f"`{pick}` is below `ae` on {worse} of {len(SEEDS)} seeds there: trimming a tenth of clean "
                  "training rows costs accuracy on this small clean table, as it did by 0.004 on the confirmation half "
                  "with one network. Five networks also change what `transform` returns (five codes side by side) and "
                  "what `oddkit.compress` stores, which the README's embedding and compression examples rely on. So "
                  f"the default stays one untrimmed network, and the docstrings of `robust` and `n_estimators` name "
                  f"`robust=True, n_estimators=5` as the measured choice for training data that may hold anomalies. "
                  "Issue 22's target for the auto-encoder is met by that setting, not by the default."]
    gains = {(h, p, v): means[(h, p, v)] - means[(h, p, "ae")] for h in HALVES for p in PROTOCOLS
             for v in ("ae-robust", CANDIDATE)}
    lines += ["", "`robust=\"auto\"` is removed from the library (it was measured at commit 03194d0): over "
              "`robust=False`, `robust=True` gained more in the contaminated protocol on both halves ("
              + ", ".join(f"{signed(gains[(h, 'contaminated', 'ae-robust')])} against "
                          f"{signed(gains[(h, 'contaminated', CANDIDATE)])}" for h in HALVES)
              + ") and about as much or as little in the clean one ("
              + ", ".join(f"{signed(gains[(h, 'clean', 'ae-robust')])} against {signed(gains[(h, 'clean', CANDIDATE)])}"
                          for h in HALVES)
              + "): a third setting of `robust` that does no better than the other two is a knob that does not work. "
              "Its records stay in `results/tabular_search.jsonl` for this page."]
    return lines


def default_section(parts: dict, peers: dict) -> list[str]:
    """Stop 33: round 2's pick becomes the table default; its figures as run_tabular.py measured the
    default (``oddkit-AutoEncoder`` in ``results/tabular.jsonl``)."""
    import tabular_search

    measured = {protocol: tabular_search.peer_means(parts["all"], protocol, SEEDS, prefix=DEFAULT_NAME).get(DEFAULT_NAME)
                for protocol in PROTOCOLS}
    if any(value is None for value in measured.values()):
        return []
    lines = ["", "## Stop 33: the default changes", "",
             "The review's two objections, and what became of them:", "",
             "- What `transform` returns is settled in the library: the first network's code (`latent_dim_` columns "
             "whatever `n_estimators` is), decoded by `inverse_transform` with that network. The README's embedding "
             "and `oddkit compress` keep their width.",
             "- The demo's split is one small clean table (seeds 0-2 above). The rule holds on both halves of the 31 "
             "datasets, and issue 22 asks the default to lead PyOD's AutoEncoder there. The cost on the demo is stated "
             "in the docstring of `robust`.", "",
             "So on a table `AutoEncoderDetector()` now trains round 2's pick: `robust=\"auto\"` and "
             "`n_estimators=\"auto\"` mean trimming and five networks. On images they mean one untrimmed network, as "
             "before: neither was measured there. This `\"auto\"` only looks at the kind of input. It is not round "
             "1's adaptive trimming, which stays removed.", "",
             f"Measured as the default by `run_tabular.py` (`{DEFAULT_NAME}` in `results/tabular.jsonl`, the same "
             "splits, all 31 datasets):", "",
             f"| protocol | pyod-AutoEncoder | target (+{TARGET}) | {DEFAULT_NAME} | lead | met |",
             "|---|---:|---:|---:|---:|---|"]
    for protocol in PROTOCOLS:
        peer, own = peers[("all", protocol)], measured[protocol]
        lines.append(f"| {protocol} | {fmt(peer)} | {fmt(peer + TARGET)} | {fmt(own)} | {signed(own - peer)} "
                     f"| {'yes' if own - peer >= TARGET else 'no'} |")
    return lines


def main(argv=None) -> None:
    args = parse_args(argv)
    limit_threads(args.threads)
    import tabular_search
    from bench_data import DATA_DIR, list_datasets

    if args.demo_check:
        demo_check()
    if not args.report_only and args.half:
        names = sorted(info.name for info in list_datasets(args.data_dir or DATA_DIR))
        members = [CANDIDATE]
        if args.round == 2:
            members = list(ROUND2)
            if args.half == "confirmation":
                table = load(read_records(tabular_search.RECORDS))
                parts = tabular_search.halves(names)
                means = {("selection", p, v): half_mean(table, parts["selection"], p, v)
                         for p in PROTOCOLS for v in VARIANTS}
                peers = {("selection", p): tabular_search.peer_means(parts["selection"], p, SEEDS).get(PEER)
                         for p in PROTOCOLS}
                pick, verdicts = round2_pick(means, peers)
                if pick is None:
                    raise SystemExit(f"no round-2 pick on the selection half ({verdicts}): nothing to confirm")
                members = [pick]
        job_args = tabular_search.parse_args(
            ["--members", *members, "--threads", str(args.threads), "--datasets", *tabular_search.halves(names)[args.half]]
            + (["--cache-dir", str(args.cache_dir)] if args.cache_dir else [])
            + (["--data-dir", str(args.data_dir)] if args.data_dir else [])
            + (["--max-seconds", str(args.max_seconds)] if args.max_seconds else []))
        tabular_search.fit_members(job_args)
    write_report(tabular_search.RECORDS)


if __name__ == "__main__":
    sys.exit(main())
