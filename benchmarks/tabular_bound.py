"""An oracle bound on the default's margin over PyOD, with PyOD's own detectors among the members.

Issue 22 asks the default tabular detector to lead the best single PyOD detector by at least 0.02
mean AUROC in both protocols. TABULAR_SEARCH.md ("How far the target is") bounds what oddkit's own
members can do; this script widens the member set to the union of ``tabular_search.CEILING_MEMBERS``,
``inne`` and eight PyOD detectors as run_tabular.py runs them (``search_members.PyODMember``: PyOD's
defaults, ``random_state`` = seed, standardised columns), fitted into a cache by
``tabular_search.fit_members`` on every dataset, protocol and seed 0-2.

Every pick below uses the test labels of the datasets it is scored on, so every figure is an upper
bound on what a detector built from these members could reach, not a candidate:

a. the best single member, picked per protocol;
b. the best ensemble of up to three members (max or mean of oddkit's normalised scores,
   ``oddkit.detectors.ensemble.combine_scores``), picked per protocol; and the best ensemble by the
   worse of its two protocol margins (one configuration for both);
c. the per-dataset oracle: on each dataset the member with the best mean AUROC over seeds;
d. the same, among oddkit's members only;

and, to see how much of (c) and (d) is the luck of the best of many noisy figures, the same oracles
picked on seeds 0 and 1 and read on seed 2. Last, a per-dataset choice that uses no labels at all:
on each job the member whose training-score ranking agrees best with the consensus of the pool's
(model centrality, ``centrality_pick``), which asks whether a label-free choice gets near (c).

Margins are mean AUROC (over datasets, each the mean over seeds) minus the best single PyOD detector
of that protocol on the same datasets (``tabular_search.peer_means``, from results/tabular.jsonl).

    .venv/bin/python benchmarks/tabular_bound.py --cache-dir /tmp/bound_cache --threads 1
    .venv/bin/python benchmarks/tabular_bound.py --report-only    # TABULAR_BOUND.md from the records

Writes ``benchmarks/results/tabular_bound.jsonl`` (one line per member job: its AUROC, raw and as a
one-member ensemble, and seconds; then one line per oracle figure the report prints) and
``benchmarks/TABULAR_BOUND.md``, which ``--report-only`` rewrites from that file alone.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import tabular_search as ts
from bench_runtime import append_record, limit_threads, read_records

HERE = Path(__file__).resolve().parent
RECORDS = HERE / "results" / "tabular_bound.jsonl"
REPORT = HERE / "TABULAR_BOUND.md"
ODDKIT_MEMBERS = ts.CEILING_MEMBERS
"""oddkit's own members (the ceiling's): the per-dataset oracle (d) chooses among these only."""
PYOD_MEMBERS = tuple(f"pyod-{name.lower()}" for name in ts.PYOD_MEMBERS)
MEMBERS = ODDKIT_MEMBERS + ("inne",) + PYOD_MEMBERS
"""The union: oddkit's members, iNNE (PyOD's code, measured as a member of the default in
TABULAR_INNE.md) and PyOD's detectors."""
RULES = ("max", "mean")
MAX_SIZE = 3
TOP = 5
TARGET = 0.02


def fit(cache_dir: Path, threads: int, members=MEMBERS) -> None:
    """Fit ``members`` on every job missing from ``cache_dir`` with tabular_search's own fitting (its
    per-job lines go to ``cache_dir``/fits.jsonl, not to tabular_search.jsonl)."""
    ts.RECORDS = cache_dir / "fits.jsonl"
    args = ts.parse_args(["--members", *members, "--threads", str(threads), "--cache-dir", str(cache_dir)])
    ts.fit_members(args)


def pool_of(members) -> str:
    return "oddkit" if set(members) <= set(ODDKIT_MEMBERS) else "union"


def peer_jobs(datasets: list[str]) -> list[dict]:
    """Every single PyOD detector's per-job AUROC in results/tabular.jsonl (last line per job), as
    ``tabular_search.peer_means`` reads them (the rank ensemble left out)."""
    import json

    found = {}
    for line in (HERE / "results" / "tabular.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if r["detector"].startswith("pyod-") and r["detector"] != "pyod-rank-ensemble" \
                    and r["dataset"] in datasets and r["seed"] in ts.SEEDS:
                found[(r["dataset"], r["protocol"], r["seed"], r["detector"])] = r["roc_auc"]
    return [{"dataset": d, "protocol": p, "seed": s, "detector": n, "roc_auc": v}
            for (d, p, s, n), v in sorted(found.items())]


def record(cache_dir: Path) -> int:
    """Rewrite RECORDS from the cache: every member job, then the oracle figures (every ensemble of
    up to MAX_SIZE members scored on every job). Stops if a member job is missing. Returns the
    number of lines."""
    import itertools

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from oddkit.detectors.ensemble import normalise_scores, score_quantiles

    cache = {key: value for key, value in ts.load_cache(cache_dir).items() if key[3] in MEMBERS}
    datasets = sorted({key[0] for key in cache})
    missing = [(d, p, s, m) for d in datasets for p in ts.PROTOCOLS for s in ts.SEEDS for m in MEMBERS
               if (d, p, s, m) not in cache]
    if missing:
        raise SystemExit(f"{len(missing)} member jobs missing from {cache_dir}, e.g. {missing[:3]}")
    parts = {**ts.halves(datasets), "all": datasets}
    lines = []
    normalised = {}  # (protocol, dataset, seed) -> (y_test, {member: normalised test scores})
    for (dataset, protocol, seed, member), entry in sorted(cache.items()):
        scores = normalise_scores(entry["test"], score_quantiles(entry["train"]))
        normalised.setdefault((protocol, dataset, seed), (entry["y_test"], {}))[1][member] = scores
        lines.append({"kind": "member", "dataset": dataset, "protocol": protocol, "seed": seed, "member": member,
                      "roc_auc": float(roc_auc_score(entry["y_test"], entry["test"])),
                      "roc_auc_normalised": float(ts._auroc(entry["y_test"], scores)),
                      "fit_seconds": float(entry["seconds"][0]), "score_seconds": float(entry["seconds"][1])})
    for half in ("all", "selection", "confirmation"):
        for protocol in ts.PROTOCOLS:
            peers = ts.peer_means(parts[half], protocol, ts.SEEDS)
            lines += [{"kind": "peer", "datasets": half, "protocol": protocol, "detector": name, "roc_auc": value}
                      for name, value in sorted(peers.items())]
    for job in peer_jobs(datasets):
        lines.append({"kind": "peer-job", **job})
    member_auc = {(r["dataset"], r["protocol"], r["seed"], r["member"]): r["roc_auc_normalised"]
                  for r in lines if r["kind"] == "member"}
    for pool, members in (("oddkit", ODDKIT_MEMBERS), ("union", MEMBERS)):
        for dataset in datasets:
            for protocol in ts.PROTOCOLS:
                for seed in ts.SEEDS:
                    member = centrality_pick({m: cache[(dataset, protocol, seed, m)]["train"] for m in members})
                    lines.append({"kind": "centrality", "pool": pool, "dataset": dataset, "protocol": protocol,
                                  "seed": seed, "member": member,
                                  "roc_auc_normalised": member_auc[(dataset, protocol, seed, member)]})
    per_dataset = {}  # (members, rule, protocol) -> {dataset: mean AUROC over seeds}
    for size in range(1, MAX_SIZE + 1):
        for chosen in itertools.combinations(MEMBERS, size):
            for rule in RULES if size > 1 else ("max",):
                for protocol in ts.PROTOCOLS:
                    found = per_dataset.setdefault((chosen, rule, protocol), {})
                    for dataset in datasets:
                        aucs = []
                        for seed in ts.SEEDS:
                            y, scores = normalised[(protocol, dataset, seed)]
                            stacked = np.stack([scores[m] for m in chosen])
                            combined = stacked.max(axis=0) if rule == "max" else stacked.mean(axis=0)
                            aucs.append(ts._auroc(y, combined))
                        found[dataset] = float(np.mean(aucs))
    for half in ("all", "selection"):
        means = {key: float(np.mean([v[d] for d in parts[half]])) for key, v in per_dataset.items()}
        targets = {p: max(r["roc_auc"] for r in lines if r["kind"] == "peer" and r["datasets"] == half
                          and r["protocol"] == p) for p in ts.PROTOCOLS}
        for pool in ("union", "oddkit"):
            for protocol in ts.PROTOCOLS:
                ranked = sorted((key for key in means if key[2] == protocol and (pool == "union" or
                                 pool_of(key[0]) == "oddkit")), key=lambda k: (-means[k], k))
                for place, (chosen, rule, _) in enumerate(ranked[:TOP if pool == "union" else 1]):
                    lines.append({"kind": "ensemble", "pool": pool, "datasets": half, "protocol": protocol,
                                  "place": place + 1, "members": list(chosen), "rule": rule,
                                  "roc_auc": means[(chosen, rule, protocol)]})
            both = {(chosen, rule): {p: means[(chosen, rule, p)] for p in ts.PROTOCOLS}
                    for (chosen, rule, protocol) in means if protocol == ts.PROTOCOLS[0]
                    and (pool == "union" or pool_of(chosen) == "oddkit")}
            worst = {key: min(v[p] - targets[p] for p in ts.PROTOCOLS) for key, v in both.items()}
            for place, key in enumerate(sorted(worst, key=lambda k: (-worst[k], k))[:TOP if pool == "union" else 1]):
                lines.append({"kind": "both", "pool": pool, "datasets": half, "place": place + 1,
                              "members": list(key[0]), "rule": key[1], **both[key]})
    # the recorded ensembles must be what tabular_search.evaluate() gives
    for line in lines:
        if line["kind"] in ("ensemble", "both") and line["place"] == 1:
            for protocol in ([line["protocol"]] if line["kind"] == "ensemble" else ts.PROTOCOLS):
                value = ts.evaluate(cache, tuple(line["members"]), line["rule"], parts[line["datasets"]], protocol,
                                    ts.SEEDS, strict=True)[0]
                mine = line["roc_auc"] if line["kind"] == "ensemble" else line[protocol]
                if abs(value - mine) > 1e-9:
                    raise SystemExit(f"oracle disagrees with evaluate(): {line} {protocol} {value}")
    RECORDS.parent.mkdir(parents=True, exist_ok=True)
    RECORDS.write_text("")
    for line in lines:
        append_record(RECORDS, line)
    return len(lines)


def centrality_pick(train_scores: dict) -> str:
    """The member whose training scores rank the rows most like the pool's consensus, with no labels.

    Model centrality (Ma, Zhao and Akoglu 2023, "MC"): each member's training scores become ranks in
    (0, 1], the consensus is their mean over members, and the member with the largest Spearman
    correlation to it is picked (ties to the first in ``train_scores``). Only the training rows are
    used, so the choice could be made at fit time.

    References
    ----------
    Ma, Zhao and Akoglu (2023). The need for unsupervised outlier model selection: a review and
    evaluation of internal evaluation strategies. ACM SIGKDD Explorations 25(1).
    """
    import numpy as np
    from scipy.stats import rankdata, spearmanr

    names = list(train_scores)
    ranks = np.stack([rankdata(train_scores[m]) / len(train_scores[m]) for m in names])
    consensus = ranks.mean(axis=0)
    agreement = [float(spearmanr(r, consensus)[0]) for r in ranks]
    return names[int(np.argmax(agreement))]


def member_means(records: list[dict], datasets: list[str], protocol: str, key: str = "roc_auc_normalised"):
    """{member: {dataset: mean over seeds of ``key``}} from the member lines."""
    import numpy as np

    found: dict = {}
    for r in records:
        if r["kind"] == "member" and r["protocol"] == protocol and r["dataset"] in datasets:
            found.setdefault(r["member"], {}).setdefault(r["dataset"], []).append(r[key])
    return {m: {d: float(np.mean(v)) for d, v in per.items()} for m, per in found.items()}


def per_dataset_oracle(means: dict, members, datasets: list[str]) -> tuple[float, dict]:
    """Mean over datasets of the best member's mean AUROC on each, and {member: datasets it wins}
    (ties go to the member first in MEMBERS)."""
    import numpy as np

    wins: dict = {}
    best = []
    for dataset in datasets:
        winner = max(members, key=lambda m: (means[m][dataset], -MEMBERS.index(m)))
        wins[winner] = wins.get(winner, 0) + 1
        best.append(means[winner][dataset])
    return float(np.mean(best)), wins


def by_count(counts: dict) -> str:
    """"member n, ..." from {member: n}, the most frequent first (ties by name)."""
    return ", ".join(f"{m} {n}" for m, n in sorted(counts.items(), key=lambda i: (-i[1], i[0])))


def signed(value: float, places: int = 3) -> str:
    """``value`` with its sign, and no "-0.000" for a value that rounds to zero."""
    return f"{round(value, places) + 0.0:+.{places}f}"


def held_out_oracle(records: list[dict], members, datasets: list[str], protocol: str, pick=(0, 1), read=2):
    """The per-dataset oracle picked on seeds ``pick`` and read on seed ``read`` (test labels of the
    picking seeds' splits only), and the oracle picked and read on seed ``read``; each the mean over
    datasets."""
    import numpy as np

    auc = {}
    for r in records:
        if r["kind"] == "member" and r["protocol"] == protocol and r["dataset"] in datasets and r["member"] in members:
            auc[(r["dataset"], r["seed"], r["member"])] = r["roc_auc_normalised"]
    held, same = [], []
    for dataset in datasets:
        key = lambda m: (np.mean([auc[(dataset, s, m)] for s in pick]), -MEMBERS.index(m))  # noqa: E731
        held.append(auc[(dataset, read, max(members, key=key))])
        same.append(max(auc[(dataset, read, m)] for m in members))
    return float(np.mean(held)), float(np.mean(same))


def write_report() -> None:
    """TABULAR_BOUND.md from RECORDS only (no cache, no other results file)."""
    import numpy as np

    records = read_records(RECORDS)
    datasets = sorted({r["dataset"] for r in records if r["kind"] == "member"})
    parts = {"all": datasets, **ts.halves(datasets)}
    peers = {(r["datasets"], r["protocol"]): {} for r in records if r["kind"] == "peer"}
    for r in records:
        if r["kind"] == "peer":
            peers[(r["datasets"], r["protocol"])][r["detector"]] = r["roc_auc"]
    targets = {key: max(v.items(), key=lambda item: item[1]) for key, v in peers.items()}
    seconds = {}
    for r in records:
        if r["kind"] == "member":
            seconds[r["member"]] = seconds.get(r["member"], 0.0) + r["fit_seconds"] + r["score_seconds"]
    label = {"all": f"all ({len(parts['all'])})", "selection": f"selection ({len(parts['selection'])})"}
    show = lambda line: " + ".join(line["members"]) + (f" ({line['rule']})" if len(line["members"]) > 1 else "")  # noqa: E731
    lines = ["# An oracle bound on the default's margin, PyOD's detectors included", "",
             "Written by `benchmarks/tabular_bound.py` (`--report-only` rewrites it from `results/tabular_bound.jsonl` "
             "alone). Same splits as `run_tabular.py` (stratified 70/30, at most 10,000 rows, seeds 0, 1, 2), member "
             "scores cached by `tabular_search.fit_members`; each figure is the mean over datasets of the mean over "
             "seeds. Datasets: all "
             f"{len(datasets)}, and the selection half of TABULAR_SEARCH.md (the even positions in name order).", "",
             f"Members ({len(MEMBERS)}): oddkit's {', '.join(ODDKIT_MEMBERS)} (TABULAR_SEARCH.md's ceiling); `inne` "
             "(PyOD's iNNE, TABULAR_INNE.md); and PyOD's detectors as run_tabular.py runs them, "
             + ", ".join(f"`{m}`" for m in PYOD_MEMBERS) + " (`search_members.PyODMember`: PyOD 3.6.7's defaults, "
             "random_state = seed where taken, columns standardised by the training rows' mean and standard "
             "deviation). Members are scored as ensembles score them: each member's test scores mapped through its "
             "own training scores by oddkit's normaliser, then the max or mean (`combine_scores`); a single member "
             "is scored the same way (its AUROC can differ from its raw scores' where test scores fall below every "
             "training score and tie at 0).", "",
             "**Every pick on this page uses the test labels of the datasets it is scored on.** These figures are "
             "upper bounds on what a detector built from these members could reach, not candidates for the "
             "default. Margin: mean AUROC minus the best single PyOD detector of that protocol on the same "
             "datasets (`tabular_search.peer_means`, from `results/tabular.jsonl`), as issue 22's target asks "
             f"(+{TARGET}).", "",
             "## Check: the PyOD members against results/tabular.jsonl", "",
             "Each PyOD member's mean AUROC of its raw scores on all datasets here, against the same detector's "
             "in `results/tabular.jsonl` (RESULTS.md's PyOD rows, fitted by run_tabular.py on the same splits).", "",
             "| member | clean here | clean RESULTS | difference | contaminated here | contaminated RESULTS "
             "| difference |", "|---|---:|---:|---:|---:|---:|---:|"]
    raw = {p: member_means(records, datasets, p, "roc_auc") for p in ts.PROTOCOLS}
    largest = 0.0
    for member, name in zip(PYOD_MEMBERS, ts.PYOD_MEMBERS):
        cells = []
        for p in ts.PROTOCOLS:
            here = float(np.mean(list(raw[p][member].values())))
            there = peers[("all", p)].get(f"pyod-{name}")
            if there is None:
                cells += [f"{here:.3f}", "-", "-"]
                continue
            largest = max(largest, abs(here - there))
            cells += [f"{here:.3f}", f"{there:.3f}", signed(here - there, 4)]
        lines.append(f"| {member} | " + " | ".join(cells) + " |")
    lines += ["", f"Largest difference of the means: {largest:.4f} ({'within' if largest <= 0.002 else 'beyond'} "
              "0.002). Per job (dataset, protocol, seed), the same comparison:", ""]
    jobs = {(r["dataset"], r["protocol"], r["seed"], r["detector"]): r["roc_auc"] for r in records
            if r["kind"] == "peer-job"}
    for member, name in zip(PYOD_MEMBERS, ts.PYOD_MEMBERS):
        diffs: dict = {(r["dataset"], r["protocol"], r["seed"]): r["roc_auc"] - jobs[(r["dataset"], r["protocol"], r["seed"],
                                                                                 f"pyod-{name}")]
                 for r in records if r["kind"] == "member" and r["member"] == member
                 and (r["dataset"], r["protocol"], r["seed"], f"pyod-{name}") in jobs}
        same = sum(abs(v) < 5e-5 for v in diffs.values())
        worst = max(diffs, key=lambda k: abs(diffs[k]))
        lines.append(f"- {member}: within 0.00005 on {same} of {len(diffs)} jobs; largest difference "
                     f"{abs(diffs[worst]):.4f}" + (f" ({', '.join(map(str, worst))}: {diffs[worst]:+.4f} here)"
                                                   if abs(diffs[worst]) >= 5e-5 else ""))
    lines += ["", "By hand, for two of the PyOD MCD jobs that differ: run_tabular.py's own job function "
              "(`run_tabular.run_job` with `bench_detectors.registry()['pyod-MCD']`) run here gives the cache's AUROC "
              "at one and at two threads, 0.835 where `results/tabular.jsonl` holds 0.759 (adbench_celeba, clean, "
              "seed 0) and 0.346 where it holds 0.513 (adbench_vertebral, contaminated, seed 0). The differences are "
              "between PyOD's MCD fitted here and in the recorded run (whose lines name the same library versions), "
              "not in the member's wrapper. The contaminated target is that recorded run's PyOD MCD "
              f"({peers[('all', 'contaminated')]['pyod-MCD']:.3f} on all datasets); refitted here it gives "
              f"{np.mean(list(raw['contaminated']['pyod-mcd'].values())):.3f}. The margins below are against the "
              "recorded figures, as RESULTS.md's are."]
    lines += ["", "## The bound", "",
              "(a) the best single member and (b) the best ensemble of up to three members (max or mean), each picked "
              "per protocol over these datasets; (c) the per-dataset oracle: on each dataset the member with the best "
              "mean AUROC over seeds, i.e. the ceiling of any per-dataset choice among these members (model "
              "selection, meta-learning); (d) the same among oddkit's members only. Margins in brackets.", "",
              "| datasets | protocol | best PyOD | (a) best member | (b) best ensemble | (c) per-dataset oracle "
              "| (d) oddkit's per-dataset oracle |", "|---|---|---|---|---|---:|---:|"]
    figures = {}
    for half in ("all", "selection"):
        for p in ts.PROTOCOLS:
            target_name, target = targets[(half, p)]
            means = member_means(records, parts[half], p)
            single = {m: float(np.mean(list(v.values()))) for m, v in means.items()}
            best_single = max(MEMBERS, key=lambda m: (single[m], -MEMBERS.index(m)))
            ensemble = next(r for r in records if r["kind"] == "ensemble" and r["pool"] == "union"
                            and r["datasets"] == half and r["protocol"] == p and r["place"] == 1)
            oracle, _ = per_dataset_oracle(means, MEMBERS, parts[half])
            oddkit_oracle, _ = per_dataset_oracle(means, ODDKIT_MEMBERS, parts[half])
            figures[(half, p)] = {"a": single[best_single] - target, "b": ensemble["roc_auc"] - target,
                                  "c": oracle - target, "d": oddkit_oracle - target}
            lines.append(f"| {label[half]} | {p} | {target_name} {target:.3f} | {best_single} {single[best_single]:.3f} "
                         f"({signed(single[best_single] - target)}) | {show(ensemble)} {ensemble['roc_auc']:.3f} "
                         f"({signed(ensemble['roc_auc'] - target)}) | {oracle:.3f} ({signed(oracle - target)}) "
                         f"| {oddkit_oracle:.3f} ({signed(oddkit_oracle - target)}) |")
    lines += ["", "## Is +0.02 reachable?", ""]
    for p in ts.PROTOCOLS:
        f = figures[("all", p)]
        said = [f"({k}) {'reaches' if f[k] >= TARGET else 'does not reach'} it ({signed(f[k])})" for k in "abc"]
        lines.append(f"- {p}, all {len(datasets)} datasets: even with test labels, {', '.join(said)}.")
    for p in ts.PROTOCOLS:
        f = figures[("selection", p)]
        said = [f"({k}) {signed(f[k])}" for k in "abc"]
        lines.append(f"- {p}, selection half: {', '.join(said)}.")
    lines += ["", "## The five best ensembles in each protocol", "",
              "Every ensemble of one to three members of the union, by max or mean, ranked by mean AUROC in one "
              "protocol (picked with that protocol's test labels); the best of oddkit's members alone below them.", "",
              "| datasets | protocol | place | ensemble | mean AUROC | margin |", "|---|---|---:|---|---:|---:|"]
    for half in ("all", "selection"):
        for p in ts.PROTOCOLS:
            target = targets[(half, p)][1]
            for r in records:
                if r["kind"] == "ensemble" and r["datasets"] == half and r["protocol"] == p:
                    place = r["place"] if r["pool"] == "union" else "oddkit's best"
                    lines.append(f"| {label[half]} | {p} | {place} | {show(r)} | {r['roc_auc']:.3f} "
                                 f"| {signed(r['roc_auc'] - target)} |")
    lines += ["", "## One configuration for both protocols", "",
              "The target asks one detector for both protocols. Every ensemble above ranked instead by the worse of its "
              "two margins (each protocol against its own best PyOD detector), still picked with test labels:", "",
              "| datasets | place | ensemble | clean | contaminated | worse margin |", "|---|---:|---|---:|---:|---:|"]
    candidate = None
    for half in ("all", "selection"):
        for r in records:
            if r["kind"] == "both" and r["datasets"] == half:
                margins = {p: r[p] - targets[(half, p)][1] for p in ts.PROTOCOLS}
                place = r["place"] if r["pool"] == "union" else "oddkit's best"
                lines.append(f"| {label[half]} | {place} | {show(r)} | {r['clean']:.3f} ({signed(margins['clean'])}) "
                             f"| {r['contaminated']:.3f} ({signed(margins['contaminated'])}) "
                             f"| {signed(min(margins.values()))} |")
                if half == "all" and r["pool"] == "union" and r["place"] == 1:
                    candidate = (r, min(margins.values()))
    r, worst = candidate
    if worst >= TARGET:
        lines += ["", f"One ensemble, {show(r)}, reaches +{TARGET} in both protocols on all {len(datasets)} datasets "
                  f"when picked with their test labels (worse margin {signed(worst)}). It is a candidate only: nothing is "
                  "shipped from this page; it would have to be tested by a rule committed before the selection-half "
                  "and confirmation-half measurements."]
    else:
        lines += ["", f"No ensemble of up to three of these members reaches +{TARGET} in both protocols on all "
                  f"{len(datasets)} datasets, even picked with their test labels: the best worse margin is "
                  f"{signed(worst)} ({show(r)})."]
    lines += ["", "## How much of the per-dataset oracle is picking on noise", "",
              "The per-dataset oracle takes the best of 19 members on each dataset, so part of its lead may be the "
              "luck of the best of many noisy figures. Here it is picked on seeds 0 and 1 (their splits' test labels) "
              "and read on seed 2, against the same oracle picked and read on seed 2 and the best single PyOD "
              "detector's mean on seed 2 (`results/tabular.jsonl`); margins in brackets.", "",
              "| datasets | protocol | best PyOD, seed 2 | (c) on seed 2 | (c) picked on seeds 0-1 | (d) on seed 2 "
              "| (d) picked on seeds 0-1 |", "|---|---|---|---:|---:|---:|---:|"]
    for half in ("all", "selection"):
        for p in ts.PROTOCOLS:
            seed2: dict = {}
            for r in records:
                if r["kind"] == "peer-job" and r["protocol"] == p and r["seed"] == 2 and r["dataset"] in parts[half]:
                    seed2.setdefault(r["detector"], []).append(r["roc_auc"])
            seed2 = {n: float(np.mean(v)) for n, v in seed2.items() if len(v) == len(parts[half])}
            name = max(seed2, key=seed2.get)
            held, same = held_out_oracle(records, MEMBERS, parts[half], p)
            odd_held, odd_same = held_out_oracle(records, ODDKIT_MEMBERS, parts[half], p)
            lines.append(f"| {label[half]} | {p} | {name} {seed2[name]:.3f} | "
                         + " | ".join(f"{v:.3f} ({signed(v - seed2[name])})" for v in (same, held, odd_same, odd_held))
                         + " |")
    lines += ["", "## Which member the per-dataset oracle picks", "",
              f"All {len(datasets)} datasets: the member with the best mean AUROC on each, and on how many datasets "
              "(ties to the member listed first above).", ""]
    for p in ts.PROTOCOLS:
        means = member_means(records, datasets, p)
        _, wins = per_dataset_oracle(means, MEMBERS, datasets)
        _, oddkit_wins = per_dataset_oracle(means, ODDKIT_MEMBERS, datasets)
        lines += [f"- {p}, union: {by_count(wins)}", f"- {p}, oddkit's members only: {by_count(oddkit_wins)}"]
    lines += ["", "## A choice per dataset without labels: model centrality", "",
              "The per-dataset oracle reaches the target; a detector would have to make that choice without "
              "labels. Model centrality (`centrality_pick`; Ma, Zhao and Akoglu 2023) picks, on each job, the member "
              "whose ranking of the *training* rows agrees best (Spearman) with the mean ranking of all members of "
              "its pool, so it could run at fit time. Mean AUROC of the picked member, margin against the best "
              "single PyOD detector of the same datasets in brackets, beside the per-dataset oracles (c) and (d):", "",
              "| datasets | protocol | best PyOD | centrality, oddkit's members | centrality, union | (d) oracle, "
              "oddkit's | (c) oracle, union |", "|---|---|---|---:|---:|---:|---:|"]
    centrality = [r for r in records if r["kind"] == "centrality"]
    for half in ("all", "selection", "confirmation"):
        for p in ts.PROTOCOLS:
            name, target = targets[(half, p)]
            cells = []
            for pool in ("oddkit", "union"):
                per: dict = {}
                for r in centrality:
                    if r["pool"] == pool and r["protocol"] == p and r["dataset"] in parts[half]:
                        per.setdefault(r["dataset"], []).append(r["roc_auc_normalised"])
                value = float(np.mean([np.mean(v) for v in per.values()]))
                cells.append(f"{value:.3f} ({signed(value - target)})")
            means = member_means(records, parts[half], p)
            for members in (ODDKIT_MEMBERS, MEMBERS):
                value = per_dataset_oracle(means, members, parts[half])[0]
                cells.append(f"{value:.3f} ({signed(value - target)})")
            lines.append(f"| {half} ({len(parts[half])}) | {p} | {name} {target:.3f} | " + " | ".join(cells) + " |")
    lines += ["", f"Members picked, over all {len(datasets) * len(ts.SEEDS)} jobs of each protocol:", ""]
    for pool, pool_name in (("oddkit", "oddkit's members"), ("union", "union")):
        for p in ts.PROTOCOLS:
            counts = Counter(r["member"] for r in centrality if r["pool"] == pool and r["protocol"] == p)
            lines.append(f"- {p}, {pool_name}: {by_count(counts)}")
    lines += ["", "Centrality was first tried in a scratch run on both halves (oddkit's members, on training and on "
              "test scores), so no half above is fresh for it. It is not a candidate: it leads the best PyOD "
              "detector by less than the target wherever the confirmation half is included, and on all 31 datasets "
              "it is below the shipped default on clean data and about level with it on contaminated data (RESULTS.md: "
              "0.873 and 0.806). It never picks knn1, the best member on clean data: the member nearest the consensus "
              "is a smooth one (a trimmed Gaussian, a subsampled or averaged neighbour distance), the average's own "
              "character, not the member that separates the anomalies best on that dataset."]
    lines += ["", "## Time", "",
              "Fit + score seconds of each member over all its jobs (every dataset, both protocols, three seeds; one "
              "thread on a 2-core machine shared with another job, two or three fits at a time: noisy):", "",
              ", ".join(f"{m} {seconds[m]:.0f}" for m in MEMBERS) + "."]
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/bound_cache"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--members", nargs="+", choices=MEMBERS, default=list(MEMBERS),
                        help="fit only these members (to split the fitting over processes); records need all")
    parser.add_argument("--fit-only", action="store_true", help="fit the missing member jobs, write nothing else")
    parser.add_argument("--report-only", action="store_true", help="rewrite TABULAR_BOUND.md from the records only")
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    if not args.report_only:
        fit(args.cache_dir, args.threads, args.members)
        if args.fit_only:
            return
        print(f"{record(args.cache_dir)} records")
    write_report()


if __name__ == "__main__":
    sys.exit(main())
