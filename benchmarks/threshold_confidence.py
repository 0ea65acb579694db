"""Does ``"fpr:0.05,0.95"`` keep its promise on real data, and what does the confidence cost in recall?

``oddkit.threshold.FPRGoal`` with a confidence (``"fpr:A,C"``) chooses the lowest threshold whose
one-sided Clopper-Pearson upper bound on the false-positive rate, from the ``m`` of ``n`` dev normals
it flags, is at most ``A``: the promise is that the threshold's false-positive rate on new normal rows
exceeds ``A`` with probability at most ``1 - C``. The plain goal ``"fpr:A"`` holds ``A`` on the dev
normals only. This study measures both on the tabular datasets of ``run_tabular.py``.

Protocol (fixed before the first run):

- Datasets: every dataset ``bench_data.list_datasets()`` gives ``run_tabular.py`` (31), cut as that
  runner cuts them for seed 0 (a stratified subsample of 10,000 rows, ``random_state=0``, for the 7
  larger ones), kept when the normals *not* used to fit the detector number at least
  ``max(DEV_SIZES) + MIN_PRODUCTION`` = 1,300, so that every dev size leaves at least 300 normals for
  production. (The brief said "at least 1,500 normal rows"; with half the normals spent on fitting,
  that would leave only 750 held-out normals on adbench_letter, 824 on adbench_cardiotocography and
  828 on adbench_cardio, too few for a dev set of 1,000 plus 300 production normals, so the rule was
  restated by its purpose before running.)
- Detector: ``oddkit.default_detector(random_state=0)``, fitted once per dataset on a fixed random
  half of the normals (``numpy.random.default_rng(0)``, ``n_normals // 2`` rows); its scores are
  computed once for the other normals (the held-out pool) and for all anomalies.
- Trials: for each dev size ``n`` in ``DEV_SIZES`` (200, 500, 1,000), ``TRIALS`` = 200 random draws
  (``default_rng([1, crc32(dataset), n])``): ``n`` normals of the held-out pool plus a random
  ``n_anomalies // 2`` of the anomalies form the dev set; the remaining held-out normals and
  anomalies are production. On each draw, for every goal in ``GOALS`` (``fpr:0.05``,
  ``fpr:0.05,0.95``, ``fpr:0.01``, ``fpr:0.01,0.95``; the same draw for all four),
  ``oddkit.threshold.choose_threshold(dev_scores, dev_y, goal)`` picks the threshold, and we record
  the dev normals it flags, the production normals it flags (production FPR), the production
  anomalies it flags (recall) and ``feasible``. A production FPR above the target counts as an
  exceedance.
- The production FPR is itself measured on a finite set of normals (300 to about 4,800), so even a
  threshold whose true FPR is below the target shows an exceedance now and then. References, exact for
  continuous (tie-free) scores whose dev and production normals are a random split of one pool, as here:
  a threshold that flags ``m`` of the ``n`` dev normals lies between the ``(m+1)``-th and the ``m``-th
  highest dev normal; ``choose_threshold`` takes the lowest dev score there (the ``m``-th normal's, or a
  dev anomaly's scoring in between). *bound*: a threshold just above the ``(m+1)``-th normal, the worst
  place, which FPRGoal's Clopper-Pearson rule bounds: its population FPR exceeds ``A`` with probability
  ``P(Binomial(n, A) <= m)`` (the mass above it is Beta(m+1, n-m)), at most ``1 - C`` for a feasible
  confidence goal. *at m*: a threshold at the ``m``-th normal, ``P(Binomial(n, A) <= m - 1)``. Seen through
  ``N`` production normals these become ``P(BetaBinomial(N, m+1, n-m) > A N)`` and
  ``P(BetaBinomial(N, m, n-m+1) > A N)``. Every trial records all four; the observed share of exceedances
  should fall between the two production references, and one above the production bound beyond binomial
  noise would break the promise (ties in the scores, or a fault in the code).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/threshold_confidence.py     # resumes per dataset
    .venv/bin/python benchmarks/threshold_confidence.py --report-only
    .venv/bin/python benchmarks/threshold_confidence.py --recheck adbench_mnist 1000 fpr:0.05,0.95 2000
        # a labelled follow-up outside the protocol: fresh draws for one cell (kind "recheck")

Writes ``results/threshold_confidence.jsonl`` (one ``dataset`` line per dataset, one ``trials`` line per
dataset, dev size and goal holding the 200 trials' counts, one ``run`` line per run, ``recheck`` lines
for follow-ups) and
``THRESHOLD_CONFIDENCE.md``, rendered from that file alone.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
import zlib
from pathlib import Path

from bench_runtime import (REPO_ROOT, append_record, command_line, git_state, limit_threads, read_records,
                           versions)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "threshold_confidence.jsonl"
REPORT = HERE / "THRESHOLD_CONFIDENCE.md"
DEV_SIZES = (200, 500, 1000)
MIN_PRODUCTION = 300
TRIALS = 200
GOALS = ("fpr:0.05", "fpr:0.05,0.95", "fpr:0.01", "fpr:0.01,0.95")
FIT_SEED = 0


def goal_parts(goal: str) -> tuple[float, float | None]:
    numbers = [float(x) for x in goal.split(":")[1].split(",")]
    return numbers[0], (numbers[1] if len(numbers) > 1 else None)


def largest_within(target: float, n_rows: int) -> int:
    """The most flagged rows of ``n_rows`` whose share is still <= target (the same float test as an
    exceedance, ``k / n_rows > target``)."""
    import numpy as np

    k = np.arange(n_rows + 1)
    return int(np.flatnonzero(k / n_rows <= target)[-1])


def load_capped(info):
    """The dataset as run_tabular.py uses it for seed 0 (stratified subsample of MAX_ROWS)."""
    import numpy as np
    from bench_data import MAX_ROWS
    from sklearn.model_selection import train_test_split

    with np.load(info.path) as archive:
        X, y = archive["X"], archive["y"].astype(np.int64)
    if len(y) > MAX_ROWS:
        X, _, y, _ = train_test_split(X, y, train_size=MAX_ROWS, stratify=y, random_state=0)
    return X, y


def eligible(infos) -> list:
    import numpy as np

    kept = []
    for info in infos:
        _, y = load_capped(info)
        n_normals = int(np.sum(y == 0))
        if n_normals - n_normals // 2 >= max(DEV_SIZES) + MIN_PRODUCTION:
            kept.append(info)
    return kept


def detector_scores(info) -> dict:
    """The default detector fitted on a fixed half of the normals; its scores of the other normals (the
    pool) and of every anomaly, with the dataset's facts."""
    import warnings

    import numpy as np
    import oddkit
    from sklearn.metrics import roc_auc_score

    X, y = load_capped(info)
    normals, anomalies = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    order = np.random.default_rng(FIT_SEED).permutation(normals)
    fit_rows, pool_rows = order[: normals.size // 2], order[normals.size // 2:]
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = oddkit.default_detector(random_state=0).fit(X[fit_rows])
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        pool = np.asarray(detector.decision_function(X[pool_rows]), dtype=np.float64)
        anom = np.asarray(detector.decision_function(X[anomalies]), dtype=np.float64)
    score_s = time.perf_counter() - started
    _, counts = np.unique(pool, return_counts=True)
    top = np.sort(pool)[::-1][: max(1, int(np.ceil(0.1 * pool.size)))]
    _, top_counts = np.unique(top, return_counts=True)
    facts = {
        "kind": "dataset", "dataset": info.name, "n_rows_original": info.n_rows, "n_rows_used": int(y.size),
        "n_features": int(X.shape[1]), "n_normals": int(normals.size), "n_anomalies": int(anomalies.size),
        "n_fit": int(fit_rows.size), "n_pool": int(pool.size),
        "auroc_pool_vs_anomalies": float(roc_auc_score(np.r_[np.zeros(pool.size), np.ones(anom.size)],
                                                       np.r_[pool, anom])),
        "distinct_pool_scores": int(counts.size), "largest_pool_tie": int(counts.max()),
        "largest_tie_in_top_decile": int(top_counts.max()), "top_decile_size": int(top.size),
        "anomaly_scores_tied_with_pool": int(np.isin(anom, pool).sum()),
        "fit_seconds": round(fit_s, 2), "score_seconds": round(score_s, 2),
    }
    return {"pool": pool, "anom": anom, "facts": facts}


def trial_records(name: str, pool, anom, n: int, goals, trials: int, seed: list[int],
                  kind: str = "trials") -> list[dict]:
    """``trials`` random dev/production draws of the pool and anomalies for dev size ``n``; one record per
    goal with every trial's counts and the exchangeability references (see the module docstring)."""
    import numpy as np
    from oddkit.threshold import choose_threshold
    from scipy.stats import betabinom, binom

    rng = np.random.default_rng(seed)
    n_prod = pool.size - n
    n_dev_anom = anom.size // 2
    per_goal = {g: {"dev_fp": [], "prod_fp": [], "caught": [], "feasible": [], "threshold_is_anomaly": []}
                for g in goals}
    for _ in range(trials):
        p = rng.permutation(pool.size)
        a = rng.permutation(anom.size)
        dev_norm, prod_norm = pool[p[:n]], pool[p[n:]]
        dev_anom, prod_anom = anom[a[:n_dev_anom]], anom[a[n_dev_anom:]]
        dev_scores = np.concatenate([dev_norm, dev_anom])
        dev_y = np.concatenate([np.zeros(n, np.int64), np.ones(dev_anom.size, np.int64)])
        for g in goals:
            choice = choose_threshold(dev_scores, dev_y, g)
            t = choice.threshold
            rec = per_goal[g]
            rec["dev_fp"].append(int(np.sum(dev_norm >= t)))
            rec["prod_fp"].append(int(np.sum(prod_norm >= t)))
            rec["caught"].append(int(np.sum(prod_anom >= t)))
            rec["feasible"].append(bool(choice.feasible))
            rec["threshold_is_anomaly"].append(bool(np.any(dev_anom == t) and not np.any(dev_norm == t)))
    records = []
    for g in goals:
        target, confidence = goal_parts(g)
        rec = per_goal[g]
        m = np.asarray(rec["dev_fp"])
        k_max = largest_within(target, n_prod)
        # bound: a threshold just above the (m+1)-th highest dev normal (the worst place that still flags m
        # of them; FPRGoal's condition where the threshold is a dev anomaly's score). at_m: a threshold at the
        # m-th highest dev
        # normal (where choose_threshold puts it unless a dev anomaly scores in between); 0 when m = 0.
        at_m = np.maximum(m, 1)
        records.append({
            "kind": kind, "dataset": name, "n_dev": n, "goal": g, "target": target,
            "confidence": confidence, "trials": trials, "seed": list(seed), "n_prod_normals": int(n_prod),
            "n_dev_anomalies": int(n_dev_anom), "n_prod_anomalies": int(anom.size - n_dev_anom),
            "max_prod_fp_within_target": k_max,
            **rec,
            "p_population_bound": [round(float(v), 5) for v in binom.cdf(m, n, target)],
            "p_population_at_m": [round(float(v), 5) for v in np.where(m > 0, binom.cdf(m - 1, n, target), 0.0)],
            "p_production_bound": [round(float(v), 5) for v in betabinom.sf(k_max, n_prod, m + 1, n - m)],
            "p_production_at_m": [round(float(v), 5) for v in
                                  np.where(m > 0, betabinom.sf(k_max, n_prod, at_m, n - at_m + 1), 0.0)],
        })
    return records


def run_dataset(info, code_hash: str) -> list[dict]:
    import zlib as _zlib

    scored = detector_scores(info)
    records = []
    started = time.perf_counter()
    for n in DEV_SIZES:
        records += trial_records(info.name, scored["pool"], scored["anom"], n, GOALS, TRIALS,
                                 [1, _zlib.crc32(info.name.encode()), n])
    facts = scored["facts"]
    facts.update({"trial_seconds": round(time.perf_counter() - started, 2), "threshold_py_sha256": code_hash,
                  "versions": versions(), "command": command_line()})
    return records + [facts]


def recheck(name: str, n: int, goal: str, trials: int) -> None:
    """A labelled follow-up, outside the fixed protocol: ``trials`` fresh draws (seed [2, crc32, n]) for one
    dataset, dev size and goal, with the same detector scores; recorded as kind "recheck"."""
    from bench_data import list_datasets

    info = next(i for i in list_datasets() if i.name == name)
    scored = detector_scores(info)
    for record in trial_records(name, scored["pool"], scored["anom"], n, [goal], trials,
                                [2, zlib.crc32(name.encode()), n], kind="recheck"):
        record["command"] = command_line()
        append_record(RESULTS, record)
    print(f"recheck {name} n={n} {goal}: {trials} trials recorded", flush=True)


def run(datasets: list[str] | None) -> None:
    from bench_data import list_datasets

    started = time.perf_counter()
    code_hash = hashlib.sha256((REPO_ROOT / "src" / "oddkit" / "threshold.py").read_bytes()).hexdigest()[:16]
    git = git_state("src/oddkit/threshold.py", "threshold_py_uncommitted")
    done = {r["dataset"] for r in read_records(RESULTS) if r.get("kind") == "dataset"}
    infos = eligible(list_datasets())
    if datasets:
        infos = [i for i in infos if i.name in datasets]
    print(f"{len(infos)} eligible datasets: {', '.join(i.name for i in infos)}", flush=True)
    ran = []
    for info in infos:
        if info.name in done:
            continue
        records = run_dataset(info, code_hash)
        records[-1].update(git)
        for record in records:  # the dataset line last: it marks the dataset done
            append_record(RESULTS, record)
        d = records[-1]
        ran.append(info.name)
        print(f"{info.name}: fit {d['fit_seconds']} s, score {d['score_seconds']} s, trials {d['trial_seconds']} s",
              flush=True)
    append_record(RESULTS, {"kind": "run", "datasets_run": ran, "wall_seconds": round(time.perf_counter() - started, 1),
                            "eligible": [i.name for i in infos], "threshold_py_sha256": code_hash,
                            "command": command_line()})


# ----------------------------------------------------------------------------------------------- report

def _pct(x: float) -> str:
    return "—" if x != x else f"{100 * x:.1f}%"


def write_report() -> None:
    import numpy as np
    from scipy.stats import binom

    records = read_records(RESULTS)
    info = {r["dataset"]: r for r in records if r.get("kind") == "dataset"}
    trials = {(r["dataset"], r["n_dev"], r["goal"]): r for r in records
              if r.get("kind") == "trials" and r["dataset"] in info}
    rechecks = [r for r in records if r.get("kind") == "recheck"]
    runs = [r for r in records if r.get("kind") == "run"]
    datasets = sorted(info)
    sizes = sorted({k[1] for k in trials})
    goals = [g for g in GOALS if any(k[2] == g for k in trials)]

    def stats(r: dict) -> dict:
        prod_fp = np.asarray(r["prod_fp"])
        exceed = prod_fp > r["max_prod_fp_within_target"]
        n_anom = r["n_prod_anomalies"]
        recall = np.asarray(r["caught"]) / n_anom if n_anom else np.full(prod_fp.size, np.nan)
        bound = float(np.mean(r["p_production_bound"]))
        n_exceed = int(exceed.sum())
        # Where the threshold sits: at the m-th dev normal (at_m) or at a dev anomaly's score (bound), the
        # condition FPRGoal's rule applies in each case.
        is_anomaly = np.asarray(r["threshold_is_anomaly"], dtype=bool)
        placed = {kind: float(np.mean(np.where(is_anomaly, r[f"p_{kind}_bound"], r[f"p_{kind}_at_m"])))
                  for kind in ("population", "production")}
        return {
            "exceed": float(exceed.mean()), "n_exceed": n_exceed, "trials": int(exceed.size),
            "prod_at_m": float(np.mean(r["p_production_at_m"])), "prod_bound": bound,
            "pop_at_m": float(np.mean(r["p_population_at_m"])), "pop_bound": float(np.mean(r["p_population_bound"])),
            "pop_placed": placed["population"], "prod_placed": placed["production"],
            # one-sided: is the observed count above what even the worst place in the gap would give?
            "p_above_bound": float(binom.sf(n_exceed - 1, exceed.size, bound)) if n_exceed else 1.0,
            "fpr": float(np.mean(prod_fp / r["n_prod_normals"])), "recall": float(np.nanmean(recall)),
            "recall_trials": recall, "infeasible": float(1 - np.mean(r["feasible"])),
            "dev_fp": float(np.mean(r["dev_fp"])),
            "threshold_is_anomaly": float(np.mean(r["threshold_is_anomaly"])),
        }

    S = {k: stats(r) for k, r in trials.items()}

    def cell(n, g):
        return [S[(d, n, g)] for d in datasets if (d, n, g) in S]

    def mean(values) -> float:
        return float(np.mean(list(values)))

    total_wall = sum(r["wall_seconds"] for r in runs)
    first = info[datasets[0]] if datasets else {}
    v = first.get("versions", {})
    n_trials = ", ".join(sorted({str(r["trials"]) for r in trials.values()}))
    lines = [
        "# Does `fpr:A,C` keep its promise? Thresholds with a confidence bound on real data",
        "",
        "Written by `benchmarks/threshold_confidence.py` from `results/threshold_confidence.jsonl` alone "
        "(`--report-only` rewrites it). "
        f"Command: `{first.get('command', '?')}`; wall time {total_wall:.0f} s on one thread "
        f"({len(runs)} run(s)). "
        f"oddkit {v.get('oddkit')} at commit {first.get('git_head')}, `src/oddkit/threshold.py` at sha256 "
        f"{first.get('threshold_py_sha256')} ("
        + {True: "with uncommitted changes", False: "as committed", None: "git state unknown"}[
            first.get("threshold_py_uncommitted")]
        + " when run); "
        f"numpy {v.get('numpy')}, scipy {v.get('scipy')}, scikit-learn {v.get('scikit-learn')}.",
        "",
        "## Protocol (fixed before running)",
        "",
        "- **Datasets**: those of `run_tabular.py` (31), cut as it cuts them for seed 0 (stratified subsample "
        "of 10,000 rows for the 7 larger ones), kept when the normals not used for fitting number at least "
        f"{max(DEV_SIZES) + MIN_PRODUCTION:,} ({max(DEV_SIZES):,} dev + {MIN_PRODUCTION} production). "
        f"{len(datasets)} qualify. The brief said \"at least 1,500 normal rows\"; with half the normals spent on "
        "fitting, that would have added adbench_cardio, adbench_cardiotocography and adbench_letter with only "
        "828, 824 and 750 held-out normals, too few for a dev set of 1,000, so the rule was restated by its "
        "purpose before the run.",
        "- **Detector**: `oddkit.default_detector(random_state=0)` fitted once per dataset on a fixed random half "
        "of the normals (`default_rng(0)`); its scores computed once for the other normals (the *pool*) and all "
        "anomalies.",
        f"- **Trials**: {n_trials} random draws per dataset and dev size n in {{{', '.join(map(str, sizes))}}}: "
        "n pool normals plus a random half (rounded down) of the anomalies are the dev set, the rest of the pool "
        "and of the anomalies are production. On every draw each goal's threshold is "
        "`choose_threshold(dev_scores, dev_y, goal)`; production FPR = share of the N production normals scoring "
        "at or above it, recall = share of production anomalies at or above it. *Exceeds* = production FPR "
        "above the target A.",
        "- **References.** A threshold that flags m of the n dev normals lies between the (m+1)-th and the m-th "
        "highest dev normal score. `choose_threshold` takes the lowest dev score there: the m-th normal's, or a "
        "dev anomaly's when one scores in between. Two places give two references, exact when the scores have "
        "no ties and dev and production normals are a random split of one pool (as here): *bound*, a threshold "
        "just above the (m+1)-th normal, the worst place (population FPR above A with probability "
        "P(Binomial(n, A) <= m)), and *at m*, a threshold at the m-th normal (probability P(Binomial(n, A) <= "
        "m - 1)). FPRGoal's rule applies the *at m* condition to a threshold at a dev normal's score and the "
        "*bound* to one at a dev anomaly's score, so *where it sits* (each trial's reference for the place its "
        "threshold took) is at most 1 - C for a feasible confidence goal: that is the promise. "
        "*Population* is that noise-free chance for unlimited new normals; *production* is the chance that this "
        "production set of N normals shows an exceedance, P(BetaBinomial(N, m+1, n-m) > A N) for the bound and "
        "P(BetaBinomial(N, m, n-m+1) > A N) at m. The observed share should fall between the two production "
        "references; a share above the production *bound* beyond binomial noise over the trials would break the "
        "promise (ties in the scores or a fault in the code). The promise itself is about the population. "
        "(The first run carried only the *bound* reference, as FPRGoal's docstring states it; the *at m* "
        "reference was added after that run showed tie-free datasets well below it with the plain goals, e.g. "
        "adbench_http, `fpr:0.01`, n = 200: 43% observed against 68%. The draws and measurements did not "
        "change: the rerun repeats the same seeded draws. Those runs also showed FPRGoal's first rule, the "
        "*bound* condition wherever the threshold sat, one dev normal more cautious than needed at a dev "
        "normal's score; the rule was changed to the *at m* condition there, and this run is with the new rule.)",
        "- **What this cannot show.** Dev and production are random splits of one pool of held-out normals, so "
        "they are exchangeable by construction: the study tests the code, the effect of ties and real score "
        "distributions, and how much noise a finite production set adds, not the assumption itself. Production "
        "normals that drift away from the dev normals (a later month, another sensor) are outside the promise.",
        "- Means are over datasets (each dataset's share over its trials weighs the same). An infeasible goal "
        "flags nothing on dev (threshold just above the highest dev score); its production FPR and recall are "
        "counted as they come.",
        "",
        "## Headline: share of trials whose production FPR exceeds the target",
        "",
        "| goal | dev normals n | exceeds (observed) | production reference, at m – bound | population where it "
        "sits, the promise (at m – bound) | worst dataset (its production bound, N) | mean production FPR | mean "
        "recall | infeasible |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for g in goals:
        for n in sizes:
            c = cell(n, g)
            if not c:
                continue
            worst_d = max((d for d in datasets if (d, n, g) in S), key=lambda d: (S[(d, n, g)]["exceed"], d))
            w = S[(worst_d, n, g)]
            lines.append(
                f"| `{g}` | {n:,} | **{_pct(mean(s['exceed'] for s in c))}** | "
                f"{_pct(mean(s['prod_at_m'] for s in c))} – {_pct(mean(s['prod_bound'] for s in c))} | "
                f"{_pct(mean(s['pop_placed'] for s in c))} ({_pct(mean(s['pop_at_m'] for s in c))} – "
                f"{_pct(mean(s['pop_bound'] for s in c))}) | "
                f"{_pct(w['exceed'])} {worst_d} ({_pct(w['prod_bound'])}, "
                f"N = {trials[(worst_d, n, g)]['n_prod_normals']:,}) | "
                f"{mean(s['fpr'] for s in c):.4f} | {mean(s['recall'] for s in c):.3f} | "
                f"{_pct(mean(s['infeasible'] for s in c))} |")
    feasible_cells = [s for s in S.values() if s["infeasible"] < 1]
    lines += ["", "The threshold was a dev anomaly's score (between the m-th and (m+1)-th dev normal) on "
              f"{_pct(mean(s['threshold_is_anomaly'] for s in feasible_cells))} of the feasible trials (mean over "
              "datasets, dev sizes and goals); otherwise it was the m-th dev normal's score, where the *at m* "
              "references are exact."]

    # The verdict, per confidence goal and dev size.
    n_tests = sum(1 for (d, n, g) in S if goal_parts(g)[1] is not None)
    lines += ["", "## Did \"at most 1 - C of the trials exceed the target\" hold?", "",
              f"A dataset is flagged when its observed share is above its production bound with p < 0.01 "
              f"(one-sided binomial over its trials); over the {n_tests} confidence-goal cells about "
              f"{0.01 * n_tests:.1f} such flags are expected by chance alone.", ""]
    # A plain summary first: the raw criterion cell by cell, then whether the excess is the production set's noise.
    conf_cells = [(g, n) for g in goals if goal_parts(g)[1] is not None for n in sizes if cell(n, g)]
    infeasible_cells = [(g, n) for g, n in conf_cells if mean(s["infeasible"] for s in cell(n, g)) == 1]
    conf_cells = [c for c in conf_cells if c not in infeasible_cells]
    held = [(g, n) for g, n in conf_cells if mean(s["exceed"] for s in cell(n, g)) <= 1 - goal_parts(g)[1]]
    failed = [(g, n) for g, n in conf_cells if (g, n) not in held]
    all_flags = [(d, n, g) for (d, n, g) in S if goal_parts(g)[1] is not None and S[(d, n, g)]["p_above_bound"] < 0.01]
    summary = (f"**In short.** Averaged over datasets, the share of trials exceeding the target was at most 1 - C in "
               f"{len(held)} of the {len(conf_cells)} feasible (goal, n) cells")
    if infeasible_cells:
        summary += (" (" + ", ".join(f"`{g}` at n = {n:,}" for g, n in infeasible_cells) + " was infeasible on every "
                    "trial and is not counted: its fallback threshold flags nothing on dev, and the promise does not "
                    "cover it)")
    if failed:
        summary += ("; it was above in " + ", ".join(
            f"`{g}` at n = {n:,} ({_pct(mean(s['exceed'] for s in cell(n, g)))}, production bound "
            f"{_pct(mean(s['prod_bound'] for s in cell(n, g)))}, population where the threshold sits "
            f"{_pct(mean(s['pop_placed'] for s in cell(n, g)))})" for g, n in failed)
            + ". There the excess is the production set's own noise: the threshold's FPR on unlimited new normals "
              "is within the target with the promised confidence (population where it sits at most 1 - C), but a "
              "few hundred "
              "to a few thousand production normals often show a rate above the target when the true rate sits "
              "just under it, as the production bound predicts")
    summary += (". Datasets above their production bound beyond noise: "
                + (", ".join(f"{d} (`{g}`, n = {n:,})" for d, n, g in all_flags) if all_flags else "none")
                + (f", against about {0.01 * n_tests:.1f} expected by chance" if all_flags else ""))
    if rechecks:
        summary += ("; rechecked with fresh draws: " + ", ".join(
            f"{r['dataset']} (`{r['goal']}`, n = {r['n_dev']:,}) {_pct(stats(r)['exceed'])} over {r['trials']:,} "
            f"trials against a production bound of {_pct(stats(r)['prod_bound'])}" for r in rechecks))
    lines += [summary + ".", ""]
    for g in goals:
        target, confidence = goal_parts(g)
        if confidence is None:
            continue
        alpha = 1 - confidence
        for n in sizes:
            ds = [d for d in datasets if (d, n, g) in S]
            if not ds:
                continue
            c = [S[(d, n, g)] for d in ds]
            mean_exceed = mean(s["exceed"] for s in c)
            over = [d for d in ds if S[(d, n, g)]["exceed"] > alpha]
            flagged = [d for d in ds if S[(d, n, g)]["p_above_bound"] < 0.01]
            text = (f"- `{g}`, n = {n:,}: **{_pct(mean_exceed)}** of trials exceeded {target:g} on average, "
                    f"{'within' if mean_exceed <= alpha else 'above'} {_pct(alpha)}; "
                    f"{len(over)} of {len(ds)} datasets above {_pct(alpha)}")
            if over:
                text += (" (" + ", ".join(f"{d} {_pct(S[(d, n, g)]['exceed'])} with N = "
                                          f"{trials[(d, n, g)]['n_prod_normals']:,}" for d in over) + ")")
            if mean(s["infeasible"] for s in c) == 1:
                text += (f". Infeasible on every trial ({n:,} dev normals cannot bound {target:g} at {confidence:g}; "
                         "`feasible` is False): the fallback threshold, just above the highest dev score, is outside "
                         f"the promise; its population exceedance is up to {_pct(mean(s['pop_bound'] for s in c))} "
                         "(when the highest dev score is a normal's)")
            else:
                text += (f". The promise (population, where the threshold sits) was at most "
                         f"{_pct(max(s['pop_placed'] for s in c))} on every dataset (mean "
                         f"{_pct(mean(s['pop_placed'] for s in c))}; the worst place in the gap, "
                         f"{_pct(mean(s['pop_bound'] for s in c))}); the production bound, which adds the noise of "
                         f"N production normals, averages {_pct(mean(s['prod_bound'] for s in c))}")
            text += ". Above the production bound beyond noise: " + (
                "; ".join(f"{d} ({_pct(S[(d, n, g)]['exceed'])} against {_pct(S[(d, n, g)]['prod_bound'])}, "
                          f"p = {S[(d, n, g)]['p_above_bound']:.2g})" for d in flagged) if flagged else "none") + "."
            lines.append(text)

    if rechecks:
        lines += ["", "## Rechecks (added after the run, outside the fixed protocol)", "",
                  "Fresh draws (seed [2, crc32(dataset), n]) of a flagged cell, with the same detector scores.", "",
                  "| dataset | n | goal | trials | exceeds (observed) | production reference, at m – bound "
                  "| p above bound |",
                  "|---|---:|---|---:|---:|---:|---:|"]
        for r in rechecks:
            s = stats(r)
            lines.append(f"| {r['dataset']} | {r['n_dev']:,} | `{r['goal']}` | {s['trials']:,} | {_pct(s['exceed'])} | "
                         f"{_pct(s['prod_at_m'])} – {_pct(s['prod_bound'])} | {s['p_above_bound']:.2g} |")

    # Recall cost of the confidence, paired trial by trial.
    lines += ["", "## What the confidence costs", "",
              "Same draws, the plain goal against the goal with 95% confidence; means over datasets "
              "(recall over the production anomalies).", "",
              "| target | n | dev normals flagged (plain / confident) | production FPR (plain / confident) "
              "| recall (plain / confident) | recall lost | recall lost, worst dataset |",
              "|---:|---:|---:|---:|---:|---:|---|"]
    for plain in [g for g in goals if goal_parts(g)[1] is None]:
        conf = next((g for g in goals if goal_parts(g)[0] == goal_parts(plain)[0] and goal_parts(g)[1] is not None),
                    None)
        if conf is None:
            continue
        for n in sizes:
            ds = [d for d in datasets if (d, n, plain) in S and (d, n, conf) in S]
            if not ds:
                continue
            loss = {d: float(np.nanmean(S[(d, n, plain)]["recall_trials"] - S[(d, n, conf)]["recall_trials"]))
                    for d in ds}
            worst = max(ds, key=lambda d: (loss[d], d))
            a, b = [S[(d, n, plain)] for d in ds], [S[(d, n, conf)] for d in ds]
            lines.append(
                f"| {goal_parts(plain)[0]:g} | {n:,} | {mean(s['dev_fp'] for s in a):.1f} / "
                f"{mean(s['dev_fp'] for s in b):.1f} | {mean(s['fpr'] for s in a):.4f} / "
                f"{mean(s['fpr'] for s in b):.4f} | {mean(s['recall'] for s in a):.3f} / "
                f"{mean(s['recall'] for s in b):.3f} | {mean(loss.values()):.3f} | {loss[worst]:.3f} {worst} |")

    cost_rows = []
    for plain in [g for g in goals if goal_parts(g)[1] is None]:
        conf = next((g for g in goals if goal_parts(g)[0] == goal_parts(plain)[0] and goal_parts(g)[1] is not None),
                    None)
        for n in sizes:
            if conf and cell(n, plain) and cell(n, conf):
                lost = mean(s['recall'] for s in cell(n, plain)) - mean(s['recall'] for s in cell(n, conf))
                cost_rows.append(f"{goal_parts(plain)[0]:g} at n = {n:,}: {lost:.3f}"
                                 + (" (infeasible: flags nothing)" if mean(s["infeasible"] for s in cell(n, conf)) == 1
                                    else ""))
    if cost_rows:
        lines += ["", "Mean recall lost to 95% confidence, by target and dev size: " + "; ".join(cost_rows) + "."]

    # Datasets.
    lines += ["", "## Datasets", "",
              "Pool = held-out normals (dev + production); N = production normals at n = "
              + " / ".join(f"{n:,}" for n in sizes) + ". Ties: distinct pool scores, the largest group of pool "
              "normals sharing one score, and the same within the pool's top 10% (where the thresholds sit).", "",
              "| dataset | rows used | normals | fit on | pool | N | anomalies dev / prod | AUROC (pool vs anomalies) "
              "| distinct pool scores | largest tie (all / top 10%) | fit + score s |",
              "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for d in datasets:
        r = info[d]
        ns = " / ".join(f"{trials[(d, n, goals[0])]['n_prod_normals']:,}" for n in sizes if (d, n, goals[0]) in trials)
        t0 = trials[(d, sizes[0], goals[0])]
        cut = f" (of {r['n_rows_original']:,})" if r["n_rows_original"] > r["n_rows_used"] else ""
        lines.append(
            f"| {d} | {r['n_rows_used']:,}{cut} | {r['n_normals']:,} | {r['n_fit']:,} | {r['n_pool']:,} | {ns} | "
            f"{t0['n_dev_anomalies']} / {t0['n_prod_anomalies']} | {r['auroc_pool_vs_anomalies']:.3f} | "
            f"{r['distinct_pool_scores']:,} | {r['largest_pool_tie']:,} / {r['largest_tie_in_top_decile']:,} | "
            f"{r['fit_seconds'] + r['score_seconds']:.1f} |")

    # Per-dataset rows.
    lines += ["", "## Per dataset", "",
              "Each cell: observed share of trials exceeding the target / production reference at m – bound / "
              "mean recall. `inf.` marks a goal infeasible on every trial; `!` an observed share above the "
              "production bound with p < 0.01.", "",
              "| dataset | n | N | " + " | ".join(f"`{g}`" for g in goals) + " |",
              "|---|---:|---:|" + "---:|" * len(goals)]
    for d in datasets:
        for n in sizes:
            if (d, n, goals[0]) not in S:
                continue
            cells = []
            for g in goals:
                s = S[(d, n, g)]
                flag = " !" if s["p_above_bound"] < 0.01 else ""
                inf = (" inf." if s["infeasible"] == 1 else
                       (f" ({_pct(s['infeasible'])} inf.)" if s["infeasible"] else ""))
                cells.append(f"{_pct(s['exceed'])} / {_pct(s['prod_at_m'])} – {_pct(s['prod_bound'])} / "
                             f"{s['recall']:.2f}{flag}{inf}")
            lines.append(f"| {d} | {n:,} | {trials[(d, n, goals[0])]['n_prod_normals']:,} | "
                         + " | ".join(cells) + " |")
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", help="only these (default: every eligible dataset)")
    parser.add_argument("--report-only", action="store_true", help="rewrite THRESHOLD_CONFIDENCE.md from the records")
    parser.add_argument("--recheck", nargs=4, metavar=("DATASET", "N", "GOAL", "TRIALS"),
                        help="a labelled follow-up outside the protocol: fresh draws for one cell")
    args = parser.parse_args(argv)
    if args.recheck:
        limit_threads(1)
        name, n, goal, n_trials = args.recheck
        recheck(name, int(n), goal, int(n_trials))
    elif not args.report_only:
        limit_threads(1)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        run(args.datasets)
    write_report()


if __name__ == "__main__":
    sys.exit(main())
