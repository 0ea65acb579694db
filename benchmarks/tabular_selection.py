"""Two label-free ways to choose the default's member per dataset: meta-learning and synthetic anomalies.

TABULAR_BOUND.md shows that issue 22's target (the default +0.02 mean AUROC over the best single
PyOD detector in both protocols) is out of reach of any fixed configuration of the measured members,
and that only a per-dataset choice could reach it: among oddkit's ten ceiling members
(``tabular_search.CEILING_MEMBERS``), the per-dataset oracle leads by +0.025 clean and +0.043
contaminated. That page tried one label-free choice, model centrality, which got none of the lead.
This script measures the two other families the literature offers, on the same members and splits
(stratified 70/30, at most 10,000 rows, seeds 0-2, both protocols):

a. **Meta-learning** (MetaOD; Zhao, Rossi and Akoglu 2021): describe each job by features of its
   training rows alone (``meta_features``: the members' agreement on those rows, the shape of each
   member's training scores, the numbers of rows and columns), and choose for a dataset the member
   that did best, by test AUROC, on the most similar jobs of *the other* 30 datasets (leave one
   dataset out, both of its protocols together, so no label of the dataset scored is used): the
   mean over the k nearest jobs (k = 1, 3, 5, 10) or a random forest's prediction of each member's
   AUROC (minus the job's mean over members).
b. **Synthetic anomalies** (the four types of ADBench; Han, Hu, Huang, Jiang and Zhao 2022): on each
   job, split the training rows 80/20, fit every member on the 80%, and score the held-out 20%
   against synthetic anomalies made from the 80% (``synthetic_anomalies``); choose the member with
   the best validation AUROC, by type or averaged over the four. For the clustered type a quarter of
   the cluster is added to the rows the member is fitted on, as issue 22's failure case has it (a
   group of anomalies in the training rows).

Both read the training rows only (and, for a, other datasets' labels), so either could run inside
``fit``. Both were first run in a scratch script on all 31 datasets before this one was written, so
no half of the datasets is fresh: the figures are exploratory, for the question "does a label-free
choice get near the oracle?", and neither would be shipped without a new, untouched test.

Test AUROCs are the members' one-member-ensemble figures (``roc_auc_normalised``) in
results/tabular_bound.jsonl, the figures TABULAR_BOUND.md's oracle is built from; margins are
against ``tabular_search.peer_means`` (results/tabular.jsonl), as there.

    .venv/bin/python benchmarks/tabular_selection.py --cache-dir /tmp/bound_cache --processes 2
    .venv/bin/python benchmarks/tabular_selection.py --report-only   # TABULAR_SELECTION.md from the records

``--cache-dir`` is tabular_bound.py's member cache (the training scores the meta-features are made
of; missing member jobs are fitted first). Writes ``results/tabular_selection.jsonl``: one ``meta``
line per job (its features) and one ``validation`` line per job (each member's validation AUROC per
synthetic type), resuming where a run stopped; ``--report-only`` rewrites TABULAR_SELECTION.md from
that file and results/tabular_bound.jsonl alone.

References
----------
Zhao, Rossi and Akoglu (2021). Automatic unsupervised outlier model selection. NeurIPS.
Han, Hu, Huang, Jiang and Zhao (2022). ADBench: anomaly detection benchmark. NeurIPS.
Ma, Zhao and Akoglu (2023). The need for unsupervised outlier model selection: a review and
evaluation of internal evaluation strategies. ACM SIGKDD Explorations 25(1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tabular_bound as tb
import tabular_search as ts
from bench_runtime import append_record, limit_threads, read_records, record_in_processes, recorded_jobs

HERE = Path(__file__).resolve().parent
RECORDS = HERE / "results" / "tabular_selection.jsonl"
REPORT = HERE / "TABULAR_SELECTION.md"
MEMBERS = tb.ODDKIT_MEMBERS
SYNTHETIC_TYPES = ("global", "dependency", "local", "cluster")
HELD_OUT = 0.2
"""Share of a job's training rows held out as the validation's normal rows."""
NEIGHBOURS = (1, 3, 5, 10)
JOB = ("dataset", "protocol", "seed")


def synthetic_anomalies(rows, rng, n: int) -> dict:
    """``n`` synthetic anomalies of each of ADBench's four types, made from ``rows`` alone.

    Simplified from Han et al. (2022), who fit a Gaussian mixture or a vine copula first:

    - ``global``: uniform over each column's range widened by a tenth on both sides;
    - ``dependency``: each column drawn on its own from that column's values, which keeps every
      marginal and breaks the columns' dependence;
    - ``local``: a random row plus Gaussian noise of half each column's standard deviation;
    - ``cluster``: a tight group (a tenth of each column's standard deviation) around one random row
      moved by 1.5 standard deviations in a random direction.
    """
    import numpy as np

    low, high = rows.min(axis=0), rows.max(axis=0)
    span, scale = high - low, rows.std(axis=0) + 1e-12
    width = rows.shape[1]
    base = rows[rng.integers(0, len(rows), n)]
    centre = rows[rng.integers(len(rows))] + rng.normal(0, 1, width) * scale * 1.5
    return {
        "global": rng.uniform(low - 0.1 * span, high + 0.1 * span, size=(n, width)),
        "dependency": np.stack([rng.choice(rows[:, j], n) for j in range(width)], axis=1),
        "local": base + rng.normal(0, 1, base.shape) * scale * 0.5,
        "cluster": centre + rng.normal(0, 1, (n, width)) * scale * 0.1,
    }


def validate_job(job: tuple) -> dict:
    """Each member's validation AUROC per synthetic type on one job's training rows (no labels); a
    job is (``bench_data.DatasetInfo``, protocol, seed)."""
    import warnings

    import numpy as np
    from bench_data import make_split
    from sklearn.metrics import roc_auc_score

    info, protocol, seed = job
    rows = make_split(info, seed).fit_rows(protocol).astype(np.float64)
    rng = np.random.default_rng(1000 + seed)
    order = rng.permutation(len(rows))
    cut = int((1 - HELD_OUT) * len(rows))
    fit_rows, held_out = rows[order[:cut]], rows[order[cut:]]
    n = max(len(held_out) // 4, 20)
    anomalies = synthetic_anomalies(fit_rows, rng, n)
    planted = max(n // 4, 5)  # the cluster's rows put into the fitted rows
    builders = ts.member_builders()

    def auroc(detector, anomalous):
        normal = detector.decision_function(held_out)
        scores = np.concatenate([normal, detector.decision_function(anomalous)])
        return float(roc_auc_score(np.r_[np.zeros(len(normal)), np.ones(len(anomalous))], scores))

    found = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for member in MEMBERS:
            clean = builders[member](seed).fit(fit_rows)
            planted_fit = builders[member](seed).fit(np.vstack([fit_rows, anomalies["cluster"][:planted]]))
            found[member] = {kind: auroc(clean, anomalies[kind]) for kind in SYNTHETIC_TYPES[:3]}
            found[member]["cluster"] = auroc(planted_fit, anomalies["cluster"][planted:])
    return {"kind": "validation", "dataset": info.name, "protocol": protocol, "seed": seed, "auroc": found}


def meta_features(train_scores: dict, n_features: int) -> list[float]:
    """A job's description from its training rows only: the Spearman correlation of every pair of
    members' training scores, each member's robust skewness and log kurtosis of them (scaled by the
    median and inter-quartile range, clipped so a constant member gives finite values), and the log
    numbers of rows and columns."""
    import numpy as np
    from scipy.stats import kurtosis, rankdata, skew

    names = list(train_scores)
    ranks = np.stack([rankdata(train_scores[m]) for m in names])
    upper = np.triu_indices(len(names), 1)
    features = [float(c) for c in np.nan_to_num(np.corrcoef(ranks)[upper])]
    for m in names:
        scores = train_scores[m]
        q25, q50, q75 = np.percentile(scores, [25, 50, 75])
        z = (scores - q50) / (q75 - q25 + 1e-12)
        features += [float(np.clip(np.nan_to_num(skew(z)), -50, 50)),
                     float(np.log1p(np.clip(np.nan_to_num(kurtosis(z)), -3, 1e6) + 3))]
    return features + [float(np.log(len(train_scores[names[0]]))), float(np.log(n_features))]


def record(cache_dir: Path, processes: int) -> None:
    """Append the meta lines (from the cache) and the validation lines (fitted here) still missing."""
    from bench_data import list_datasets

    jobs = [(i, p, s) for s in ts.SEEDS for i in list_datasets() for p in ("clean", "contaminated")]
    done = recorded_jobs(RECORDS, ("kind", *JOB))
    missing_meta = [(i, p, s) for i, p, s in jobs if ("meta", i.name, p, s) not in done]
    if missing_meta:
        cache = ts.load_cache(cache_dir)
        for info, protocol, seed in missing_meta:
            scores = {m: cache[(info.name, protocol, seed, m)]["train"] for m in MEMBERS}
            append_record(RECORDS, {"kind": "meta", "dataset": info.name, "protocol": protocol, "seed": seed,
                                    "features": meta_features(scores, info.n_features)})
    missing = [(i, p, s) for i, p, s in jobs if ("validation", i.name, p, s) not in done]
    for line in record_in_processes(validate_job, missing, processes, RECORDS):
        print(line["dataset"], line["protocol"], line["seed"], flush=True)


def test_aurocs(bound: list[dict]) -> dict:
    """{(dataset, protocol, seed): {member: test AUROC}} from results/tabular_bound.jsonl's lines."""
    found: dict = {}
    for r in bound:
        if r["kind"] == "member" and r["member"] in MEMBERS:
            found.setdefault((r["dataset"], r["protocol"], r["seed"]), {})[r["member"]] = r["roc_auc_normalised"]
    return found


def meta_choices(meta: dict, aucs: dict, how) -> dict:
    """{job: member} chosen for each dataset from the other datasets' jobs only (leave one dataset
    out): ``how`` is k for the mean test AUROC of the k nearest jobs (standardised features,
    Euclidean), or "forest" for a random forest predicting each member's AUROC minus the job's mean."""
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    jobs = sorted(meta)
    X = np.array([meta[j] for j in jobs])
    Y = np.array([[aucs[j][m] for m in MEMBERS] for j in jobs])
    datasets = np.array([j[0] for j in jobs])
    chosen = {}
    for dataset in sorted(set(datasets)):
        train, test = datasets != dataset, datasets == dataset
        if how == "forest":
            target = Y[train] - Y[train].mean(axis=1, keepdims=True)
            model = RandomForestRegressor(n_estimators=300, min_samples_leaf=3, random_state=0)
            predicted = model.fit(X[train], target).predict(X[test])
        else:
            mean, std = X[train].mean(axis=0), X[train].std(axis=0) + 1e-9
            a, b = (X[train] - mean) / std, (X[test] - mean) / std
            nearest = np.argsort(((b[:, None] - a[None]) ** 2).sum(axis=-1), axis=1)[:, :how]
            predicted = Y[train][nearest].mean(axis=1)
        for job, row in zip([j for j, t in zip(jobs, test) if t], predicted):
            chosen[job] = MEMBERS[int(np.argmax(row))]
    return chosen


def mean_of_choice(chosen: dict, aucs: dict, datasets: list[str], protocol: str) -> float:
    """Mean over datasets of the mean over seeds of the chosen member's test AUROC."""
    import numpy as np

    return float(np.mean([np.mean([aucs[(d, protocol, s)][chosen[(d, protocol, s)]] for s in ts.SEEDS])
                          for d in datasets]))


def write_report() -> None:
    """TABULAR_SELECTION.md from RECORDS and results/tabular_bound.jsonl only."""
    import numpy as np

    records, bound = read_records(RECORDS), read_records(tb.RECORDS)
    aucs = test_aurocs(bound)
    meta = {tuple(r[k] for k in JOB): r["features"] for r in records if r["kind"] == "meta"}
    valid = {tuple(r[k] for k in JOB): r["auroc"] for r in records if r["kind"] == "validation"}
    datasets = sorted({job[0] for job in valid})
    protocols = ("clean", "contaminated")
    peers = {p: max(ts.peer_means(datasets, p, ts.SEEDS).items(), key=lambda i: i[1]) for p in protocols}
    default = {p: ts.peer_means(datasets, p, ts.SEEDS, prefix="oddkit-default")["oddkit-default"]
               for p in protocols}

    def every(pick) -> dict:
        return {job: pick(job) for job in valid}

    rows = [("shipped default (knn1, sknn1-16, gauss-robust-t25; max), for reference", default, "")]
    for member in MEMBERS:
        rows.append((f"always {member}", {p: mean_of_choice(every(lambda j, m=member: m), aucs, datasets, p)
                                          for p in protocols}, "fixed"))
    oracle = {p: tb.per_dataset_oracle(tb.member_means(bound, datasets, p), MEMBERS,
                                       datasets)[0] for p in protocols}
    rows.append(("per-dataset oracle (test labels of the dataset scored)", oracle, "bound"))
    for how in (*NEIGHBOURS, "forest"):
        chosen = meta_choices(meta, aucs, how)
        label = ("meta-learned, random forest" if how == "forest" else "meta-learned, the nearest job" if how == 1
                 else f"meta-learned, mean of the {how} nearest jobs")
        rows.append((label, {p: mean_of_choice(chosen, aucs, datasets, p) for p in protocols}, "a"))
    for kind in SYNTHETIC_TYPES:
        chosen = every(lambda j, k=kind: max(MEMBERS, key=lambda m: valid[j][m][k]))
        rows.append((f"synthetic, {kind} only", {p: mean_of_choice(chosen, aucs, datasets, p) for p in protocols},
                     "b"))
    chosen = every(lambda j: max(MEMBERS, key=lambda m: np.mean([valid[j][m][k] for k in SYNTHETIC_TYPES])))
    rows.append(("synthetic, mean of the four types", {p: mean_of_choice(chosen, aucs, datasets, p)
                                                       for p in protocols}, "b"))

    lines = [
        "# Choosing a member per dataset without labels: meta-learning and synthetic anomalies",
        "",
        "Written by `benchmarks/tabular_selection.py` (`--report-only` rewrites it from "
        "`results/tabular_selection.jsonl` and `results/tabular_bound.jsonl`). The method, the members and "
        f"the splits are in the script's docstring; in short: oddkit's {len(MEMBERS)} ceiling members "
        f"({', '.join(MEMBERS)}), all {len(datasets)} datasets, both protocols, seeds 0-2; (a) choose on "
        "each dataset the member that did best on the most similar jobs of the other datasets "
        "(MetaOD-style meta-learning, leave one dataset out); (b) choose on each job the member that best "
        "separates held-out training rows from synthetic anomalies (ADBench's four types). Neither uses a "
        "label of the dataset it is scored on.",
        "",
        "**Exploratory.** Both were run on all datasets in a scratch script before this one was written, so "
        "no half is fresh; they are measured to see whether a label-free choice gets near the per-dataset "
        "oracle, not as candidates for the default.",
        "",
        f"Margins against the best single PyOD detector of each protocol (results/tabular.jsonl): "
        f"{peers['clean'][0]} {peers['clean'][1]:.3f} clean, {peers['contaminated'][0]} "
        f"{peers['contaminated'][1]:.3f} contaminated; issue 22 asks +0.020 in both.",
        "",
        "| choice | kind | clean | margin | contaminated | margin |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, means, kind in rows:
        lines.append(f"| {label} | {kind} | {means['clean']:.3f} | {tb.signed(means['clean'] - peers['clean'][1])} | "
                     f"{means['contaminated']:.3f} | "
                     f"{tb.signed(means['contaminated'] - peers['contaminated'][1])} |")
    labelled = [(label, means) for label, means, kind in rows if kind in ("a", "b")]
    best_worst = max(labelled, key=lambda r: min(r[1][p] - peers[p][1] for p in protocols))
    worst = {p: best_worst[1][p] - peers[p][1] for p in protocols}
    lines += [
        "",
        "Kinds: fixed = the same member on every job (no choice); bound = picked with test labels; "
        "a = meta-learned; b = synthetic anomalies.",
        "",
        "## Reading",
        "",
        f"- The label-free choice with the best worse-of-two margin is \"{best_worst[0]}\": "
        f"{tb.signed(worst['clean'])} clean, {tb.signed(worst['contaminated'])} contaminated, against the "
        f"oracle's {tb.signed(oracle['clean'] - peers['clean'][1])} / "
        f"{tb.signed(oracle['contaminated'] - peers['contaminated'][1])} and the shipped default's "
        f"{tb.signed(default['clean'] - peers['clean'][1])} / "
        f"{tb.signed(default['contaminated'] - peers['contaminated'][1])}.",
        f"- Label-free choices that reach +0.020 in both protocols: "
        f"{sum(all(m[p] - peers[p][1] >= tb.TARGET for p in protocols) for _, m in labelled)} of {len(labelled)}.",
        f"- Label-free choices above the shipped default in both protocols: "
        f"{sum(all(m[p] > default[p] for p in protocols) for _, m in labelled)} of {len(labelled)}.",
    ]
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/bound_cache"))
    parser.add_argument("--processes", type=int, default=2, help="jobs validated at once, one thread each")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite TABULAR_SELECTION.md from the records only")
    args = parser.parse_args(argv)
    if not args.report_only:
        limit_threads(1)
        tb.fit(args.cache_dir, 1, MEMBERS)
        record(args.cache_dir, args.processes)
    write_report()


if __name__ == "__main__":
    sys.exit(main())
