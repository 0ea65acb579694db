"""Does the split code separate class from style? DisentangledAutoEncoderDetector on MNIST digits.

Data: the MNIST test set (``../shared/data/mnist_test.npz``) split at random (seed 0) into 6,000
training and 4,000 evaluation images, as in ``open_set.py``; the digit is the class. Each
configuration is fitted on the 6,000 images with their digits, at the library's defaults except
as named, and judged on the 4,000:

- **class part / style part -> digit**: a logistic regression fitted on the training images'
  class parts (or style parts) predicts the digits of the evaluation images from theirs. The
  class part should tell the digit (high), the style part should not (chance is about 0.10).
- **swaps**: each evaluation image gives its class part to a swap with the style part of another
  evaluation image of a different digit, drawn at random (seeded). A judge — scikit-learn's
  ``MLPClassifier`` (256 hidden units) fitted on the 6,000 training images' pixels, independent
  of the auto-encoder — reads each swap: the share read as the class source's digit (the class
  moved) and as the style source's digit (the class leaked through the style part).
- **style kept**: the swaps are encoded again, and the mean correlation between their style
  parts and their style sources' (per dimension, over the swaps) says whether the style moved.
- **reconstructions read right**: the judge on plain reconstructions, the ceiling for swaps.

Configurations, in the same run: the default; ``adversary_weight=0`` (no adversary);
``swap_weight=0, adversary_weight=0`` (a plain auto-encoder whose code is cut in two).
One JSON line per (configuration, seed) in ``benchmarks/results/disentangle.jsonl``; the run
resumes. ``--figure`` draws a grid of swaps with the default configuration (seed 0) into
``benchmarks/results/mnist_swaps.png``.

    .venv/bin/python benchmarks/disentangle.py                       # seeds 0 1 2, resuming
    .venv/bin/python benchmarks/disentangle.py --seeds 0 --figure
    .venv/bin/python benchmarks/disentangle.py --report-only         # rewrite DISENTANGLE.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench_runtime import append_record, command_line, limit_threads, read_records, recorded_jobs, versions

HERE = Path(__file__).resolve().parent
RESULTS_FILE = HERE / "results" / "disentangle.jsonl"
REPORT_FILE = HERE / "DISENTANGLE.md"
FIGURE_FILE = HERE / "results" / "mnist_swaps.png"
CONFIGS = {
    "default": {},
    "adversary_weight=0": {"adversary_weight": 0.0},
    "swap_weight=0, adversary_weight=0": {"swap_weight": 0.0, "adversary_weight": 0.0},
}
JOB_KEY = ("config", "seed")


def mnist_split():
    import numpy as np
    from bench_data import DATA_DIR

    with np.load(DATA_DIR / "mnist_test.npz") as data:
        X, labels = data["X"], data["labels"].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(X))
    train, test = order[:6000], order[6000:]
    return X[train], labels[train], X[test], labels[test]


def style_partners(digits, rng):
    """For each image, another image of a different digit (random, seeded)."""
    import numpy as np

    partners = rng.permutation(len(digits))
    same = digits[partners] == digits
    while same.any():
        partners[same] = rng.choice(len(digits), size=int(same.sum()))
        same = digits[partners] == digits
    return partners


def judge(X_train, d_train):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(256,), random_state=0, max_iter=200).fit(
        X_train.reshape(len(X_train), -1) / 255.0, d_train)


def measure(config: str, seed: int, split, reader):
    """The record of one (configuration, seed), and the fitted model."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import oddkit

    X_train, d_train, X_test, d_test = split
    started = time.perf_counter()
    model = oddkit.DisentangledAutoEncoderDetector(random_state=seed, verbose=0, **CONFIGS[config]).fit(X_train, d_train)
    fit_seconds = time.perf_counter() - started

    def probe(part) -> float:
        return float(LogisticRegression(max_iter=3000).fit(part(X_train), d_train).score(part(X_test), d_test))

    def read(images) -> np.ndarray:
        return reader.predict(np.asarray(images).reshape(len(images), -1))

    partners = style_partners(d_test, np.random.default_rng(seed))
    swaps = model.swap(X_test, X_test[partners])
    read_swaps = read(swaps)
    style_then, style_now = model.style_code(X_test[partners]), model.style_code(swaps)
    correlations = [np.corrcoef(style_then[:, k], style_now[:, k])[0, 1] for k in range(style_then.shape[1])]
    reconstructions = model.inverse_transform(model.transform(X_test))
    return model, {"config": config, "seed": seed, "latent_dim": model.latent_dim_, "class_dim": model.class_dim_,
            "epochs_run": len(model.history_["train_loss"]), "fit_seconds": round(fit_seconds, 1),
            "class_part_accuracy": probe(model.class_code), "style_part_accuracy": probe(model.style_code),
            "swap_reads_class_source": float(np.mean(read_swaps == d_test)),
            "swap_reads_style_source": float(np.mean(read_swaps == d_test[partners])),
            "style_kept_correlation": float(np.nanmean(correlations)),
            "reconstruction_reads_right": float(np.mean(read(reconstructions) == d_test)),
            "judge_accuracy_on_images": float(np.mean(read(X_test / 255.0) == d_test)),
            "versions": versions(), "command": command_line()}


def figure(split, out: Path, model=None) -> None:
    """The grid of swaps, with ``model`` (the default configuration at seed 0) or one fitted here."""
    import numpy as np

    import oddkit
    from oddkit.data.images import save_image_grid

    X_train, d_train, X_test, d_test = split
    if model is None:
        model = oddkit.DisentangledAutoEncoderDetector(random_state=0, verbose=0).fit(X_train, d_train)
    class_sources = np.array([np.flatnonzero(d_test == digit)[0] for digit in range(10)])
    style_sources = np.random.default_rng(1).choice(len(X_test), size=8, replace=False)
    rows = [np.concatenate([[np.zeros((28, 28), np.float32)], X_test[class_sources] / 255.0])]
    for s in style_sources:
        rows.append(np.concatenate([[X_test[s] / 255.0], model.swap(X_test[class_sources], X_test[s:s + 1])]))
    save_image_grid(np.concatenate(rows).astype(np.float32), out, ncols=11)
    print(f"wrote {out}")


def report(results: Path, out: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(read_records(results)).drop_duplicates(JOB_KEY, keep="last")
    columns = {"class_part_accuracy": "class part -> digit", "style_part_accuracy": "style part -> digit",
               "swap_reads_class_source": "swap read as the class source's digit",
               "swap_reads_style_source": "swap read as the style source's digit",
               "style_kept_correlation": "style kept (correlation)",
               "reconstruction_reads_right": "reconstruction read right", "epochs_run": "epochs run",
               "fit_seconds": "fit (s)"}
    means = frame.groupby("config")[list(columns)].mean().reindex([c for c in CONFIGS if c in set(frame["config"])])
    seeds = frame.groupby("config")["seed"].nunique()
    first = frame.iloc[0]
    lines = ["# Feature disentanglement: class and style of MNIST digits", "",
             (f"Written by `benchmarks/disentangle.py` (method in its docstring). DisentangledAutoEncoderDetector "
              f"trained on 6,000 MNIST test-set images with their digits, judged on the other 4,000; code of "
              f"{first['latent_dim']} numbers, class part {first['class_dim']}. The judge (an MLPClassifier on "
              f"pixels, trained on the same 6,000 images) reads {first['judge_accuracy_on_images']:.3f} of the "
              "evaluation images right. Means over seeds; fit times from a 2-core machine shared with other jobs."),
             "", "| configuration | seeds | " + " | ".join(columns.values()) + " |",
             "|---|---:|" + "---:|" * len(columns)]
    for config, row in means.iterrows():
        lines.append(f"| {config} | {seeds[config]} | "
                     + " | ".join(f"{row[c]:.1f}" if c in ("fit_seconds", "epochs_run") else f"{row[c]:.3f}"
                                for c in columns) + " |")
    lines += ["", *reading(means)]
    if FIGURE_FILE.exists():
        lines += ["", "Swaps with the default configuration (seed 0): the top row gives the class part (one "
                      "image of each digit), the left column the style part; each other cell is the swap.", "",
                  f"![MNIST swaps](results/{FIGURE_FILE.name})"]
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


# The measures that say whether the parts are disentangled, and which way is better.
JUDGED = {"style_part_accuracy": ("the style part tells the digit", min),
          "swap_reads_class_source": "swaps read as the class source's digit",
          "swap_reads_style_source": ("swaps read as the style source's digit", min),
          "style_kept_correlation": "the style survives a swap"}


def reading(means) -> list[str]:
    """One sentence per disentangling measure naming the best configuration, then whether the
    default beats both ablations on all of them: written from the records, never by hand."""
    if "default" not in means.index or len(means) < 2:
        return []
    lines, behind = ["Reading (seed means above; one seed is a single draw, not a verdict):", ""], []
    for column, spec in JUDGED.items():
        text, best = spec if isinstance(spec, tuple) else (spec, max)
        winner = means[column].idxmin() if best is min else means[column].idxmax()
        if winner != "default":
            behind.append(text)
        values = ", ".join(f"`{config}` {value:.3f}" for config, value in means[column].items())
        lines.append(f"- {text}: {'least' if best is min else 'most'} with `{winner}` ({values}).")
    verdict = ("The default beats both ablations on every one of these measures." if not behind else
               f"The default does not beat the ablations on {len(behind)} of these {len(JUDGED)} measures "
               f"({'; '.join(behind)}).")
    caveat = ("\"Style kept\" is high too when a swap changes nothing at all (the style part then carries "
              "the digit as well, and the swap is read as the style source's digit): it counts only beside "
              "the two swap columns.")
    return lines + ["", verdict, "", caveat]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--figure", action="store_true", help="also draw the grid of swaps")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    limit_threads(args.threads)
    if not args.report_only:
        split = mnist_split()
        reader = figure_model = None
        done = recorded_jobs(args.results, JOB_KEY)
        for seed in args.seeds:
            for config in args.configs:
                if (config, seed) in done:
                    continue
                reader = reader or judge(split[0], split[1])
                model, record = measure(config, seed, split, reader)
                if (config, seed) == ("default", 0):
                    figure_model = model  # the figure's model: no second fit of the same one
                append_record(args.results, record)
                print({k: v for k, v in record.items() if k not in ("versions", "command")}, flush=True)
        if args.figure:
            figure(split, FIGURE_FILE, figure_model)
    if args.results.exists():
        report(args.results, REPORT_FILE)


if __name__ == "__main__":
    main()
