"""Choose the default detector's members on half of the tabular datasets, confirm on the other half.

The full runner (``run_tabular.py``) fits every detector from scratch; choosing among ensembles
that way costs minutes per candidate. Here each candidate *member* is fitted once per (dataset,
protocol, seed) on exactly the runner's splits (``bench_data.make_split``) and its training and test
scores are cached (``--cache-dir``, default ``benchmarks/results/search_cache``, not committed);
every ensemble of cached members is then scored in milliseconds, with oddkit's own normaliser and
combination rules (``oddkit.detectors.ensemble.combine_scores``).

The datasets, sorted by name, are split once into two fixed halves: the even positions (0, 2, 4,
...) are the *selection* half, the odd positions the *confirmation* half. Choices are made on the
selection half's mean AUROC (both protocols); the confirmation half's numbers are read afterwards
only to check them. Test labels of the confirmation half are never used for a choice.

    .venv/bin/python benchmarks/tabular_search.py                  # fit missing members, write the table
    .venv/bin/python benchmarks/tabular_search.py --members knn1 sknn1-256
    .venv/bin/python benchmarks/tabular_search.py --report-only    # rewrite TABULAR_SEARCH.md only
    .venv/bin/python benchmarks/tabular_search.py --search-section-only   # only its search section

Writes ``benchmarks/TABULAR_SEARCH.md`` and ``benchmarks/results/tabular_search.jsonl`` (one line
per member job: AUROC and seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from bench_runtime import append_record, limit_threads

HERE = Path(__file__).resolve().parent
CACHE_DIR = HERE / "results" / "search_cache"
RECORDS = HERE / "results" / "tabular_search.jsonl"
REPORT = HERE / "TABULAR_SEARCH.md"
SEEDS = (0, 1, 2)
PROTOCOLS = ("clean", "contaminated")


def member_builders() -> dict:
    """Candidate members by name: (seed) -> an unfitted oddkit detector."""
    import oddkit
    import search_members

    knn = oddkit.KNNDetector
    ae = oddkit.AutoEncoderDetector
    return {
        "knn1": lambda seed: knn(n_neighbors=1),
        "knn5": lambda seed: knn(n_neighbors=5),
        "knn10mean": lambda seed: knn(n_neighbors=10, method="mean"),
        "knn50mean": lambda seed: knn(n_neighbors=50, method="mean"),
        "gauss": lambda seed: oddkit.GaussianDetector(),
        "gauss-robust": lambda seed: oddkit.GaussianDetector(robust=True),
        "gauss-robust-t25": lambda seed: oddkit.GaussianDetector(robust=True, contamination=0.25),
        "gauss-robust-t50": lambda seed: oddkit.GaussianDetector(robust=True, contamination=0.5),
        "knn2": lambda seed: knn(n_neighbors=2),
        "knn3": lambda seed: knn(n_neighbors=3),
        "iforest": lambda seed: oddkit.IsolationForestDetector(random_state=seed),
        "sknn1-16": lambda seed: knn(n_neighbors=1, max_samples=16, random_state=seed),
        "sknn1-32": lambda seed: knn(n_neighbors=1, max_samples=32, random_state=seed),
        "sknn1-64": lambda seed: knn(n_neighbors=1, max_samples=64, random_state=seed),
        "sknn1-256": lambda seed: knn(n_neighbors=1, max_samples=256, random_state=seed),
        "sknn1-1024": lambda seed: knn(n_neighbors=1, max_samples=1024, random_state=seed),
        "sknn5-1024": lambda seed: knn(n_neighbors=5, max_samples=1024, random_state=seed),
        "ae": lambda seed: ae(robust=False, n_estimators=1, random_state=seed, verbose=0),
        "ae-robust": lambda seed: ae(robust=True, n_estimators=1, random_state=seed, verbose=0),
        "ae-e5": lambda seed: ae(robust=False, n_estimators=5, random_state=seed, verbose=0),
        "ae-robust-e5": lambda seed: ae(robust=True, n_estimators=5, random_state=seed, verbose=0),
        # Ideas measured after the choice (search_members.py): FastMCD as PyOD's MCD, the default
        # refitted without its highest-scoring training rows, neighbours after whitening.
        "mcd": lambda seed: search_members.MCDGaussianDetector(seed=seed),
        "mcd-t25": lambda seed: search_members.MCDGaussianDetector(support=0.75, seed=seed),
        "wknn1-r1": lambda seed: search_members.WhitenedKNNDetector(ridge=1.0),
        "wknn1-r01": lambda seed: search_members.WhitenedKNNDetector(ridge=0.1),
        "wknn1-r10": lambda seed: search_members.WhitenedKNNDetector(ridge=10.0),
        "trim10": lambda seed: search_members.TrimmedEnsembleDetector(share=0.1, random_state=seed),
        "trim05": lambda seed: search_members.TrimmedEnsembleDetector(share=0.05, random_state=seed),
        "trimauto": lambda seed: search_members.TrimmedEnsembleDetector(share="auto", random_state=seed),
        "ae-code-knn1": lambda seed: search_members.AutoEncoderCodeKNN(seed=seed),
        # The robust Gaussian's starts and the columns' ranks (tabular_robust_gauss.py)
        "cstep-t25": lambda seed: search_members.DeterministicMCDGaussian(starts="full"),
        "detmcd-t25": lambda seed: search_members.DeterministicMCDGaussian(starts="detmcd"),
        "q-knn1": lambda seed: search_members.QuantileMember(lambda: knn(n_neighbors=1)),
        "q-sknn1-16": lambda seed: search_members.QuantileMember(
            lambda: knn(n_neighbors=1, max_samples=16, random_state=seed)),
        "q-gauss-robust-t25": lambda seed: search_members.QuantileMember(
            lambda: oddkit.GaussianDetector(robust=True, contamination=0.25)),
        # iNNE (PyOD's, its defaults; tabular_inne.py, TABULAR_INNE.md)
        "inne": lambda seed: search_members.PyODINNE(seed=seed),
        # An auto-encoder ensemble after RandNet and DTE's non-parametric estimator, with its monotone
        # base (tabular_ae_ensemble.py, TABULAR_AE_ENSEMBLE.md)
        "randnet": lambda seed: search_members.RandNetMember(seed=seed),
        "dte-np": lambda seed: search_members.DTENonParametric(),
        "knn5-sqmean": lambda seed: search_members.DTENonParametric(posterior=False),
        # PyOD's detectors as run_tabular.py runs them, as members (tabular_bound.py, TABULAR_BOUND.md)
        **{f"pyod-{name.lower()}": (lambda seed, name=name: search_members.PyODMember(name, seed=seed))
           for name in PYOD_MEMBERS},
    }


PYOD_MEMBERS = ("COPOD", "ECOD", "HBOS", "LOF", "IForest", "MCD", "KNN", "OCSVM")
"""PyOD classes (bench_detectors.PYOD_CLASSES) fitted as members ``pyod-<name in lower case>``."""


DEFAULT_MEMBERS = ("knn1", "knn5", "knn10mean", "knn50mean", "gauss", "gauss-robust", "iforest", "sknn1-64",
                   "sknn1-256", "sknn1-1024", "sknn5-1024")

CANDIDATES = {
    # name: (members, rule); single members are added automatically
    "**new default** (knn1, sknn1-16, gauss-robust-t25; max)": (("knn1", "sknn1-16", "gauss-robust-t25"), "max"),
    "current default (knn1, knn50mean, gauss-robust, ae-robust; max)":
        (("knn1", "knn50mean", "gauss-robust", "ae-robust"), "max"),
    "current default without the AE (max)": (("knn1", "knn50mean", "gauss-robust"), "max"),
    "knn1 + knn50mean + gauss-robust (mean)": (("knn1", "knn50mean", "gauss-robust"), "mean"),
    "knn5 + sknn1-256 (mean)": (("knn5", "sknn1-256"), "mean"),
    "knn5 + sknn1-256 + gauss-robust (mean)": (("knn5", "sknn1-256", "gauss-robust"), "mean"),
    "knn5 + sknn1-256 + gauss-robust (max)": (("knn5", "sknn1-256", "gauss-robust"), "max"),
    "knn1 + sknn1-256 + gauss-robust (mean)": (("knn1", "sknn1-256", "gauss-robust"), "mean"),
    "knn5 + sknn1-64 + gauss-robust (mean)": (("knn5", "sknn1-64", "gauss-robust"), "mean"),
    "knn5 + sknn1-1024 + gauss-robust (mean)": (("knn5", "sknn1-1024", "gauss-robust"), "mean"),
    "knn5 + iforest + gauss-robust (mean)": (("knn5", "iforest", "gauss-robust"), "mean"),
    "sknn1-256 + gauss-robust (mean)": (("sknn1-256", "gauss-robust"), "mean"),
    "sknn1-1024 + gauss-robust (mean)": (("sknn1-1024", "gauss-robust"), "mean"),
    "sknn5-1024 + gauss-robust (mean)": (("sknn5-1024", "gauss-robust"), "mean"),
    "knn5 + sknn1-256 + sknn1-64 + gauss-robust (mean)": (("knn5", "sknn1-256", "sknn1-64", "gauss-robust"), "mean"),
    "knn5 + knn50mean + sknn1-256 + gauss-robust (mean)": (("knn5", "knn50mean", "sknn1-256", "gauss-robust"), "mean"),
}


SEARCH_MEMBERS = ("knn1", "knn50mean", "gauss-robust", "gauss-robust-t25", "gauss-robust-t50", "sknn1-16", "sknn1-32",
                  "sknn1-64")
"""The members ``--search`` combines, up to four at a time (the cheap ones: each at most about
three times ``knn5``'s time in the table)."""
SEARCH_RULE = 0.005
"""The choice: among the ensembles whose worst margin over the two protocols on the selection half
is within this of the best, the one with the highest mean selection AUROC over both protocols."""
TIE_MARGIN = 0.005
"""The tie-break the shipped default follows (written after the confirmation half had been seen):
eligible ensembles whose mean selection AUROC is within this of the rule's pick are tied; among them,
those with a subsampled nearest-neighbour member (``sknn...``) are preferred, and of those the one
with the best worst margin is taken."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", nargs="+", metavar="NAME", help="members to fit (default: the cheap ones)")
    parser.add_argument("--datasets", nargs="+", metavar="NAME", help="dataset names (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, help="start no new job after this many seconds")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    parser.add_argument("--data-dir", type=Path, help="folder of .npz datasets (default: ../shared/data)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--search", action="store_true",
                        help="also rank every ensemble of up to 4 SEARCH_MEMBERS on the selection half (minutes)")
    parser.add_argument("--search-section-only", action="store_true",
                        help="rewrite only TABULAR_SEARCH.md's search section (needs only SEARCH_MEMBERS cached), "
                             "keeping the candidates table above it")
    return parser.parse_args(argv)


def cache_path(cache_dir: Path, dataset: str, protocol: str, seed: int, member: str) -> Path:
    return cache_dir / f"{dataset}__{protocol}__{seed}__{member}.npz"


def fit_members(args: argparse.Namespace) -> None:
    import numpy as np
    from bench_data import DATA_DIR, list_datasets, make_split
    from sklearn.metrics import roc_auc_score

    builders = member_builders()
    members = args.members or list(DEFAULT_MEMBERS)
    unknown = sorted(set(members) - set(builders))
    if unknown:
        raise SystemExit(f"unknown members: {', '.join(unknown)}; known: {', '.join(builders)}")
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    (args.cache_dir / ".gitignore").write_text("*\n")
    datasets = [info for info in list_datasets(args.data_dir or DATA_DIR)
                if args.datasets is None or info.name in args.datasets]
    started = time.monotonic()
    for seed in args.seeds:
        for info in datasets:
            split = None
            for protocol in args.protocols:
                for member in members:
                    path = cache_path(args.cache_dir, info.name, protocol, seed, member)
                    if path.exists():
                        continue
                    if args.max_seconds is not None and time.monotonic() - started > args.max_seconds:
                        print("--max-seconds reached: stopping (run again to continue)", flush=True)
                        return
                    split = split or make_split(info, seed)
                    X_fit = split.fit_rows(protocol)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        detector = builders[member](seed)
                        start = time.perf_counter()
                        detector.fit(X_fit)
                        fit_seconds = time.perf_counter() - start
                        start = time.perf_counter()
                        test = detector.decision_function(split.X_test)
                        score_seconds = time.perf_counter() - start
                    train = detector.decision_scores_
                    y_fit = split.y_train if protocol == "contaminated" else np.zeros(len(X_fit), dtype=np.int64)
                    np.savez(path, train=train, test=test, y_test=split.y_test, y_fit=y_fit,
                             seconds=np.array([fit_seconds, score_seconds]))
                    auc = float(roc_auc_score(split.y_test, test))
                    append_record(RECORDS, {"dataset": info.name, "protocol": protocol, "seed": seed,
                                            "member": member, "roc_auc": auc, "fit_seconds": fit_seconds,
                                            "score_seconds": score_seconds})
                    print(f"{info.name} {protocol} seed={seed} {member}: AUROC {auc:.3f} "
                          f"({fit_seconds + score_seconds:.2f} s)", flush=True)


def load_cache(cache_dir: Path) -> dict:
    """{(dataset, protocol, seed, member): npz contents}."""
    import numpy as np

    found = {}
    for path in sorted(cache_dir.glob("*.npz")):
        dataset, protocol, seed, member = path.stem.split("__")
        with np.load(path) as archive:
            found[(dataset, protocol, int(seed), member)] = {key: archive[key] for key in archive.files}
    return found


def halves(datasets: list[str]) -> dict[str, list[str]]:
    ordered = sorted(datasets)
    return {"selection": ordered[0::2], "confirmation": ordered[1::2]}


def evaluate(cache: dict, members: tuple[str, ...], rule: str, datasets: list[str], protocol: str, seeds,
             strict: bool = False):
    """Mean over datasets of the mean over seeds of the ensemble's AUROC, and its total seconds.

    ``rule`` is oddkit's "max" or "mean", or "top2" (the mean of each row's two largest normalised
    scores) or "fisher" (:func:`fisher`), ideas measured after the choice. A seed missing for some
    member is left out of its dataset's mean; with ``strict`` any missing job gives (None, None), as
    does a dataset with none."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from oddkit.detectors.ensemble import combine_scores, normalise_scores, score_quantiles

    per_dataset, seconds = [], 0.0
    for dataset in datasets:
        aucs = []
        for seed in seeds:
            entries = [cache.get((dataset, protocol, seed, m)) for m in members]
            if any(e is None for e in entries):
                if strict:
                    return None, None
                continue  # a seed not (yet) run for some member: the dataset's mean is over the others
            if rule in ("top2", "fisher"):
                stacked = np.stack([normalise_scores(e["test"], score_quantiles(e["train"])) for e in entries])
                scores = np.sort(stacked, axis=0)[-2:].mean(axis=0) if rule == "top2" else fisher(stacked).sum(axis=0)
            else:
                scores = combine_scores([e["test"] for e in entries],
                                        [score_quantiles(e["train"]) for e in entries], rule)
            aucs.append(roc_auc_score(entries[0]["y_test"], scores))
            seconds += sum(float(e["seconds"].sum()) for e in entries)
        if not aucs:
            return None, None
        per_dataset.append(np.mean(aucs))
    return float(np.mean(per_dataset)), seconds


def fisher(normalised, floor: float = 0.001):
    """Fisher's combination of normalised scores, summed over members by the caller: each score's
    share of training rows above it, -log (floored at ``floor``), plus its excess past the largest
    training score divided by ``floor``, so rows beyond every training row stay ordered."""
    import numpy as np

    inside = np.minimum(normalised, 1.0)
    return -np.log(np.maximum(1.0 - inside, floor)) + np.maximum(normalised - 1.0, 0.0) / floor


def _auroc(y, scores):
    """ROC AUC by ranks (ties averaged), as scikit-learn computes it, without its checks."""
    import numpy as np
    from scipy.stats import rankdata

    positives = y == 1
    n1, n0 = int(positives.sum()), int((~positives).sum())
    return (rankdata(scores)[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def search_combinations(cache: dict, members: list[str], datasets: list[str], seeds, targets: dict,
                        max_size: int = 3, top: int = 12) -> list[tuple]:
    """Every ensemble of up to ``max_size`` of ``members``, combined by max and by mean, ranked by
    its worst margin over the two protocols: mean AUROC on ``datasets`` minus ``targets[protocol]``
    (the best single PyOD detector there). Returns the ``top`` (margin, members, rule) triples."""
    import itertools

    import numpy as np

    from oddkit.detectors.ensemble import normalise_scores, score_quantiles

    normalised = {}  # (protocol, dataset, seed) -> (y_test, {member: normalised test scores})
    for protocol in PROTOCOLS:
        for dataset in datasets:
            for seed in seeds:
                entries = {m: cache.get((dataset, protocol, seed, m)) for m in members}
                if any(e is None for e in entries.values()):
                    continue
                y = next(iter(entries.values()))["y_test"]
                normalised[(protocol, dataset, seed)] = (y, {
                    m: normalise_scores(e["test"], score_quantiles(e["train"])) for m, e in entries.items()})
    ranked = []
    for size in range(1, max_size + 1):
        for chosen in itertools.combinations(members, size):
            for rule in ("max", "mean") if size > 1 else ("max",):
                margins = []
                for protocol in PROTOCOLS:
                    per_dataset = {}
                    for (p, dataset, seed), (y, scores) in normalised.items():
                        if p != protocol:
                            continue
                        stacked = np.stack([scores[m] for m in chosen])
                        combined = stacked.max(axis=0) if rule == "max" else stacked.mean(axis=0)
                        per_dataset.setdefault(dataset, []).append(_auroc(y, combined))
                    margins.append(np.mean([np.mean(v) for v in per_dataset.values()]) - targets[protocol])
                ranked.append((min(margins), chosen, rule))
    ranked.sort(key=lambda r: -r[0])
    return ranked[:top]


def peer_means(datasets: list[str], protocol: str, seeds, prefix: str = "pyod-") -> dict[str, float]:
    """Mean AUROC of each single PyOD detector (or, with another ``prefix``, of run_tabular.py's
    detectors so named) in run_tabular.py's results, on these datasets."""
    import pandas as pd

    path = HERE / "results" / "tabular.jsonl"
    if not path.exists():
        return {}
    frame = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
    frame = frame.drop_duplicates(["dataset", "protocol", "seed", "detector"], keep="last")
    frame = frame[frame.detector.str.startswith(prefix) & (frame.detector != "pyod-rank-ensemble")
                  & (frame.protocol == protocol)
                  & frame.dataset.isin(datasets) & frame.seed.isin(seeds)]
    per = frame.groupby(["detector", "dataset"]).roc_auc.mean().groupby("detector")
    return {name: float(group.mean()) for name, group in per if group.size == len(datasets)}


def search_section(cache: dict, parts: dict, seeds) -> list[str]:
    targets = {p: max(peer_means(parts["selection"], p, seeds).values()) for p in PROTOCOLS}
    ranked = search_combinations(cache, list(SEARCH_MEMBERS), parts["selection"], seeds, targets, max_size=4,
                                 top=10 ** 6)
    best = ranked[0][0]
    eligible = []  # (mean selection AUROC, worst margin, members, rule), every ensemble within SEARCH_RULE
    lines = ["", "## Every ensemble of up to four cheap members, on the selection half", "",
             f"Members: {', '.join(SEARCH_MEMBERS)}; combined by max or mean. Margin: mean selection AUROC minus "
             f"the best single PyOD detector on the selection half ({targets['clean']:.3f} clean, "
             f"{targets['contaminated']:.3f} contaminated), the worse of the two protocols. The rule, fixed before "
             f"the confirmation half was read: among the ensembles within {SEARCH_RULE} of the best worst margin, "
             "the highest mean selection AUROC over both protocols. The 40 best by worst margin:", "",
             "| worst margin | members | rule | selection clean | selection contaminated | confirmation clean "
             "| confirmation contaminated |", "|---:|---|---|---:|---:|---:|---:|"]
    for place, (margin, chosen, rule) in enumerate(ranked):
        if place >= 40 and margin < best - SEARCH_RULE:
            break
        sel = [evaluate(cache, chosen, rule, parts["selection"], p, seeds)[0] for p in PROTOCOLS]
        if margin >= best - SEARCH_RULE:
            eligible.append((sum(sel) / 2, margin, chosen, rule))
        if place < 40:
            conf = [evaluate(cache, chosen, rule, parts["confirmation"], p, seeds)[0] for p in PROTOCOLS]
            lines.append(f"| {margin:+.3f} | {', '.join(chosen)} | {rule} | {sel[0]:.3f} | {sel[1]:.3f} "
                         f"| {conf[0]:.3f} | {conf[1]:.3f} |")
    mean, _, chosen, rule = max(eligible)
    lines += ["", f"Chosen by the rule: {', '.join(chosen)} ({rule}), mean selection AUROC {mean:.3f} "
              f"(of {len(eligible)} ensembles within {SEARCH_RULE} of the best worst margin)."]
    tied = [e for e in eligible if e[0] >= mean - TIE_MARGIN]
    subsampled = [e for e in tied if any(name.startswith("sknn") for name in e[2])]
    if subsampled:
        shipped_mean, margin, shipped, shipped_rule = max(subsampled, key=lambda e: e[1])
        conf = {c: [evaluate(cache, c[0], c[1], parts["confirmation"], p, seeds)[0] for p in PROTOCOLS]
                for c in ((chosen, rule), (shipped, shipped_rule))}
        lines += [
            "",
            f"**Shipped instead: {', '.join(shipped)} ({shipped_rule})**, mean selection AUROC {shipped_mean:.3f}, "
            f"worst margin {margin:+.3f}. The rule above does not pick it. It follows a tie-break that was written "
            "after the confirmation half had been seen, so the confirmation half does not confirm it "
            f"independently: the eligible ensembles within {TIE_MARGIN} of the rule's pick in mean selection AUROC "
            f"are tied ({len(tied)} of them); among the tied, those with a subsampled nearest-neighbour member "
            f"({len(subsampled)}) are preferred, because subsampling is what resists anomalies that form a group "
            "of their own in the training data (issue 22's failure case), and of those the best worst margin is "
            f"taken. On the confirmation half the rule's pick scores {conf[(chosen, rule)][0]:.3f} clean and "
            f"{conf[(chosen, rule)][1]:.3f} contaminated, the shipped ensemble {conf[(shipped, shipped_rule)][0]:.3f} "
            f"and {conf[(shipped, shipped_rule)][1]:.3f}: the tie-break was stated knowing that.",
        ]
    return lines


IDEAS = {
    # label: (members, rule); "top2" = the mean of each row's two largest normalised scores, a rule
    # between max (one member decides) and mean (all do) that oddkit's ensemble does not offer.
    "shipped default (max)": (("knn1", "sknn1-16", "gauss-robust-t25"), "max"),
    "shipped default (top2)": (("knn1", "sknn1-16", "gauss-robust-t25"), "top2"),
    "shipped default + gauss-robust-t50 (max)": (("knn1", "sknn1-16", "gauss-robust-t25", "gauss-robust-t50"), "max"),
    "shipped default + gauss-robust-t50 (top2)": (("knn1", "sknn1-16", "gauss-robust-t25", "gauss-robust-t50"),
                                                  "top2"),
    "shipped default + ae-robust (max)": (("knn1", "sknn1-16", "gauss-robust-t25", "ae-robust"), "max"),
    "shipped default (fisher)": (("knn1", "sknn1-16", "gauss-robust-t25"), "fisher"),
    "knn1 + sknn1-16 + mcd (max)": (("knn1", "sknn1-16", "mcd"), "max"),
    "knn1 + sknn1-16 + mcd-t25 (max)": (("knn1", "sknn1-16", "mcd-t25"), "max"),
    "knn1 + sknn1-16 + mcd-t25 (fisher)": (("knn1", "sknn1-16", "mcd-t25"), "fisher"),
    "knn1 + mcd-t25 (max)": (("knn1", "mcd-t25"), "max"),
    "wknn1-r1 + sknn1-16 + gauss-robust-t25 (max)": (("wknn1-r1", "sknn1-16", "gauss-robust-t25"), "max"),
    "shipped default refitted without its top 5% (trim05)": (("trim05",), "max"),
    "shipped default refitted without its top 10% (trim10)": (("trim10",), "max"),
    "shipped default refitted without its fence's share (trimauto)": (("trimauto",), "max"),
    "shipped default + ae-code-knn1 (max)": (("knn1", "sknn1-16", "gauss-robust-t25", "ae-code-knn1"), "max"),
}
"""Ideas for the default's margin measured after the choice, on the selection half first."""


def ideas_section(cache: dict, parts: dict, seeds) -> list[str]:
    targets = {p: max(peer_means(parts["selection"], p, seeds).values()) for p in PROTOCOLS}
    lines = ["", "## Ideas after the choice", "",
             "Measured after the default was shipped, selection half first, against the same PyOD targets "
             f"({targets['clean']:.3f} clean, {targets['contaminated']:.3f} contaminated). `top2` averages each "
             "row's two largest normalised scores, `fisher` combines them by Fisher's method (oddkit's ensemble "
             "offers only max and mean); the members are described below the table. Time: fit + score "
             "seconds of the members over the selection half, both protocols, against `knn5`'s on the same jobs.",
             "", "| idea | selection clean | selection contaminated | worst margin | confirmation clean "
             "| confirmation contaminated | x knn5 |", "|---|---:|---:|---:|---:|---:|---:|"]
    best_margin = -1.0
    for label, (members, rule) in IDEAS.items():
        sel = [evaluate(cache, members, rule, parts["selection"], p, seeds, strict=True) for p in PROTOCOLS]
        conf = [evaluate(cache, members, rule, parts["confirmation"], p, seeds, strict=True)[0] for p in PROTOCOLS]
        knn = [evaluate(cache, ("knn5",), "max", parts["selection"], p, seeds, strict=True)[1] for p in PROTOCOLS]
        if any(a is None for a, _ in sel):
            lines.append(f"| {label} | (jobs missing) | | | | | |")
            continue
        margin = min(sel[0][0] - targets["clean"], sel[1][0] - targets["contaminated"])
        ratio = f"{sum(t for _, t in sel) / sum(knn):.1f}" if None not in knn else "-"
        cells = [f"{v:.3f}" if v is not None else "-" for v in conf]
        lines.append(f"| {label} | {sel[0][0]:.3f} | {sel[1][0]:.3f} | {margin:+.3f} | {cells[0]} | {cells[1]} "
                     f"| {ratio} |")
        best_margin = max(best_margin, margin)
    lines += ["", f"Best worst margin among these on the selection half: {best_margin:+.3f}, against the +0.02 the "
              "target asks (the search above already reaches -0.013 with Gaussians alone). None is shipped: no idea "
              "comes near the target, `top2` and `fisher` would need a new combination rule in the library, and the "
              "auto-encoder members cost far more than the 5x budget for the default's time.",
              "",
              "The ideas' members (`search_members.py`): `mcd` and `mcd-t25` are a Gaussian fitted by scikit-learn's "
              "FastMCD (`MinCovDet`, many random starts, as PyOD's MCD) on its default support or on three quarters of "
              "the rows, where `gauss-robust-t25` runs the concentration steps from the full data only; `trim05`, "
              "`trim10` and `trimauto` fit the shipped default, leave out the 5%, 10% or Tukey-fence share of training "
              "rows it scores highest, and fit it again; `wknn1-r1` is the nearest neighbour after whitening by the "
              "training covariance plus the identity; `ae-code-knn1` the nearest neighbour in the code space of "
              "`AutoEncoderDetector()`; `fisher` sums each member's -log of the share of training scores above its "
              "score. DTE's non-parametric estimator (Livernoche et al. 2024) was not added: as its authors' code "
              "computes it, the score is the posterior mean diffusion step under an inverse-gamma posterior whose "
              "scale is the mean squared distance to the 5 nearest training rows, an increasing function of that "
              "mean; measured with the RandNet auto-encoder ensemble in TABULAR_AE_ENSEMBLE.md, alone it gives that "
              "mean's AUROC (to within 3e-6 on every job), and neither it nor RandNet raises the shipped default's "
              "worst margin on the selection half."]
    return lines


CEILING_MEMBERS = SEARCH_MEMBERS + ("mcd", "mcd-t25")
"""The members whose ensembles (up to three) the ceiling section searches per protocol."""


def ceiling_section(cache: dict, parts: dict, seeds) -> list[str]:
    """How far the +0.02 target is: the best that any cached member, or any ensemble of up to three
    ``CEILING_MEMBERS``, reaches in each protocol taken alone (as if the detector were told whether its
    training rows are clean and could change configuration), against the best single PyOD detector of
    that protocol; then every detector of run_tabular.py judged as one configuration over both."""
    import itertools

    import numpy as np

    lines = ["", "## How far the target is", "",
             "An upper bound on what these members can do: the best single member, and the best ensemble of up "
             f"to three of {', '.join(CEILING_MEMBERS)} (max or mean), picked *separately in each protocol* "
             "with that protocol's test labels, as if the detector knew whether its training rows were clean "
             "and could change configuration. The target asks one configuration for both, so it asks more "
             "than this.", "",
             "| datasets | protocol | best PyOD | best member | margin | best ensemble | margin |",
             "|---|---|---|---|---:|---|---:|"]
    members = sorted({key[3] for key in cache})
    for half in ("selection", "all"):
        for protocol in PROTOCOLS:
            peers = peer_means(parts[half], protocol, seeds)
            target_name = max(peers, key=peers.get)
            target = peers[target_name]
            singles = {m: evaluate(cache, (m,), "max", parts[half], protocol, seeds, strict=True)[0] for m in members}
            singles = {m: v for m, v in singles.items() if v is not None}
            best_single = max(singles, key=singles.get)
            best = (-1.0, None, None)
            for size in (2, 3):
                for chosen in itertools.combinations(CEILING_MEMBERS, size):
                    for rule in ("max", "mean"):
                        value = evaluate(cache, chosen, rule, parts[half], protocol, seeds, strict=True)[0]
                        if value is not None and value > best[0]:
                            best = (value, chosen, rule)
            lines.append(f"| {half} ({len(parts[half])}) | {protocol} | {target_name} {target:.3f} "
                         f"| {best_single} {singles[best_single]:.3f} | {singles[best_single] - target:+.3f} "
                         f"| {' + '.join(best[1])} ({best[2]}) {best[0]:.3f} | {best[0] - target:+.3f} |")
    lines += ["", "One configuration over both protocols (`results/tabular.jsonl`, all datasets): each detector's "
              "mean AUROC in each protocol, their mean, and the worse of the two. The target compares oddkit's "
              "default with a different PyOD detector in each protocol.", "",
              "| detector | clean | contaminated | mean of both | worse of both |", "|---|---:|---:|---:|---:|"]
    both = {}
    for prefix in ("pyod-", "oddkit-default"):
        per_protocol = [peer_means(parts["all"], p, seeds, prefix=prefix) for p in PROTOCOLS]
        for name in set(per_protocol[0]) & set(per_protocol[1]):
            both[name] = (per_protocol[0][name], per_protocol[1][name])
    for name, (clean, dirty) in sorted(both.items(), key=lambda item: -sum(item[1]))[:8]:
        lines.append(f"| {name} | {clean:.3f} | {dirty:.3f} | {(clean + dirty) / 2:.3f} | {min(clean, dirty):.3f} |")
    if "oddkit-default" in both:
        default = both.pop("oddkit-default")
        by_mean = max(both, key=lambda n: sum(both[n]))
        by_worst = max(both, key=lambda n: min(both[n]))
        lines += ["", f"By the mean of both protocols the default leads the best PyOD detector ({by_mean}) by "
                  f"{np.mean(default) - np.mean(both[by_mean]):+.3f}; by the worse of the two it trails the best "
                  f"({by_worst}) by {min(default) - min(both[by_worst]):+.3f}."]
    return lines


def write_report(cache_dir: Path, seeds=SEEDS, search: bool = False) -> None:
    cache = load_cache(cache_dir)
    datasets = sorted({key[0] for key in cache})
    parts = halves(datasets)
    members = sorted({key[3] for key in cache})
    candidates = {name: ((name,), "max") for name in members}
    candidates.update(CANDIDATES)
    columns = [(half, protocol) for half in ("selection", "confirmation") for protocol in PROTOCOLS]
    rows = []
    for name, (chosen, rule) in candidates.items():
        values, total = [], 0.0
        for half, protocol in columns:
            auc, secs = evaluate(cache, chosen, rule, parts[half], protocol, seeds)
            values.append(auc)
            total += secs or 0.0
        if all(v is None for v in values):
            continue
        rows.append((name, values, total))
    knn_seconds = next((t for n, v, t in rows if n == "knn5" and None not in v), None)
    lines = [
        "# Choosing the default's members: selection half, then confirmation half",
        "",
        f"Written by `.venv/bin/python benchmarks/tabular_search.py` from the member scores cached under "
        f"`{cache_dir.relative_to(HERE.parent) if cache_dir.is_relative_to(HERE.parent) else cache_dir}`. "
        "Same splits as `run_tabular.py` (stratified 70/30, at most 10,000 rows, seeds "
        f"{', '.join(map(str, seeds))}); every member with its library defaults except as named; "
        "members' scores normalised by their training scores and combined as `EnsembleDetector` does.",
        "",
        f"Selection half ({len(parts['selection'])} datasets, the even positions in name order): "
        + ", ".join(parts["selection"]) + ".",
        "",
        f"Confirmation half ({len(parts['confirmation'])}): " + ", ".join(parts["confirmation"]) + ".",
        "",
        "A member fitted on fewer seeds (the auto-encoders, run last, contaminated protocol only) is averaged "
        "over the seeds it has, per dataset. Choices are made on the selection columns only. Time: fit + score seconds of the members over "
        "every dataset and seed of both halves and protocols (a shared 2-core machine: noisy), and the ratio "
        "to `knn5` (oddkit's `KNNDetector()`) in the same cache.",
        "",
        "Members: `knnK` = `KNNDetector(n_neighbors=K)`, `knnKmean` with `method=\"mean\"`, `sknnK-S` = "
        "`KNNDetector(n_neighbors=K, max_samples=S)` (mean over 50 random subsamples of S rows), `gauss(-robust)` "
        "= `GaussianDetector(robust=...)`, `iforest` = `IsolationForestDetector()`, `ae(-robust)` = "
        "`AutoEncoderDetector(robust=...)`.",
        "",
        "| candidate | selection clean | selection contaminated | confirmation clean | confirmation contaminated "
        "| seconds | x knn5 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, values, total in sorted(rows, key=lambda r: -(sum(v or 0 for v in r[1][:2]))):
        ratio = f"{total / knn_seconds:.1f}" if knn_seconds else "-"
        cells = [f"{v:.3f}" if v is not None else "-" for v in values]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {total:.0f} | {ratio} |")
    lines += ["", "Best single PyOD detectors on the same halves (from `results/tabular.jsonl`):", "",
              "| half | protocol | best PyOD | mean AUROC | target (+0.02) |", "|---|---|---|---:|---:|"]
    for half, protocol in columns:
        peers = peer_means(parts[half], protocol, seeds)
        if peers:
            best = max(peers, key=peers.get)
            lines.append(f"| {half} | {protocol} | {best} | {peers[best]:.3f} | {peers[best] + 0.02:.3f} |")
    if search:
        lines += search_section(cache, parts, seeds) + ideas_section(cache, parts, seeds)
        lines += ceiling_section(cache, {**parts, "all": datasets}, seeds)
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT}")


def write_search_section(cache_dir: Path, seeds=SEEDS) -> None:
    """Replace the search section of the existing report, keeping the candidates table above it."""
    cache = load_cache(cache_dir)
    parts = halves(sorted({key[0] for key in cache}))
    head = REPORT.read_text().split("\n## Every ensemble")[0].rstrip("\n")
    sections = (search_section(cache, parts, seeds) + ideas_section(cache, parts, seeds)
                + ceiling_section(cache, {**parts, "all": sorted({key[0] for key in cache})}, seeds))
    REPORT.write_text(head + "\n" + "\n".join(sections) + "\n")
    print(f"wrote the search section of {REPORT}")


def main(argv=None) -> None:
    args = parse_args(argv)
    limit_threads(args.threads)
    if args.search_section_only:
        write_search_section(args.cache_dir, tuple(args.seeds))
        return
    if not args.report_only:
        fit_members(args)
    write_report(args.cache_dir, tuple(args.seeds), search=args.search)


if __name__ == "__main__":
    sys.exit(main())
