"""Anomalies in audio on the Free Spoken Digit Dataset (FSDD, ../shared/data/fsdd_spoken_digits.npz).

    .venv/bin/python benchmarks/audio_anomaly.py            # choose the representation, then evaluate
    .venv/bin/python benchmarks/audio_anomaly.py --quick    # seed 0 only (a smoke run)

Protocol: takes 5-49 of every speaker and digit are training data, takes 0-4 test data.

- digits: train on digits 0-4 (training takes); score the test takes of all ten digits; digits 5-9
  are the anomalies.
- speakers: for each speaker in turn, train on the other five (training takes); score every
  speaker's test takes; the left-out speaker is the anomaly. The mean over the six is reported.

Detectors, each fitted on the recordings' features: oddkit's default detector
(``oddkit.default_detector``), ``AutoEncoderDetector`` (defaults), and the baseline: mean and
standard deviation of 20 MFCCs per recording, standardised, scored by the mean distance to the 5
nearest training recordings (scikit-learn). Seeds 0, 1, 2 for the chosen representation, seed 0
for the other (the baseline has no randomness).

The representation (``AudioFeatures``: log-mel statistics or a time-normalised patch) is chosen
before any test take is read, on the training takes alone: inner folds train on takes 15-49 and
validate on takes 5-14, leaving out in turn each digit of 0-4 (digit folds) and each speaker
(speaker folds); the representation with the highest mean AUROC of the default detector (seed 0)
over the eleven folds becomes ``AudioFeatures``' default. Features are computed once per
representation and fed to the detectors as a table; that this equals fitting on the recordings
(``detector.fit(AudioData)``) is checked at the start.

Writes benchmarks/AUDIO_ANOMALY.md and benchmarks/results/audio_anomaly.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "fsdd_spoken_digits.npz"
REPORT = HERE / "AUDIO_ANOMALY.md"
RESULTS = HERE / "results" / "audio_anomaly.json"
CANDIDATES = {"stats": {"representation": "stats"}, "patch32": {"representation": "patch", "n_frames": 32}}


def mfcc_rows(waveforms, sample_rate, trim):
    import librosa

    rows = []
    for wave in waveforms:
        wave = trim(wave)
        mfcc = librosa.feature.mfcc(y=wave, sr=sample_rate, n_mfcc=20, n_fft=256, hop_length=80, n_mels=40)
        rows.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
    return np.asarray(rows)


def knn_baseline(train, test, k=5):
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train)
    neighbours = NearestNeighbors(n_neighbors=k).fit(scaler.transform(train))
    distances, _ = neighbours.kneighbors(scaler.transform(test))
    return distances.mean(axis=1)


def make_detector(name, seed):
    import oddkit

    if name == "oddkit default":
        return oddkit.default_detector(random_state=seed)
    return oddkit.AutoEncoderDetector(random_state=seed, verbose=0)


def auroc(y, scores):
    from oddkit.metrics import roc_auc

    return float(roc_auc(y, scores))


def tasks(labels, takes_train, takes_test, digits_normal=range(5)):
    """(name, train mask, test mask, y) for the digit task and each speaker task."""
    digit, speaker, take = (labels[c].to_numpy() for c in ("digit", "speaker", "take"))
    train_takes, test_takes = np.isin(take, takes_train), np.isin(take, takes_test)
    out = [("digits 0-4 normal", train_takes & np.isin(digit, list(digits_normal)), test_takes,
            (~np.isin(digit, list(digits_normal)))[test_takes].astype(int))]
    for s in np.unique(speaker):
        out.append((f"speaker {s} odd", train_takes & (speaker != s), test_takes, (speaker == s)[test_takes].astype(int)))
    return out


def inner_folds(labels):
    """Folds on the training takes only: train on takes 15-49, validate on takes 5-14."""
    digit, speaker, take = (labels[c].to_numpy() for c in ("digit", "speaker", "take"))
    fit, val = (take >= 15), (take >= 5) & (take < 15)
    folds = []
    for d in range(5):
        normal = np.isin(digit, [x for x in range(5) if x != d])
        folds.append((f"digit {d} left out", fit & normal, val & np.isin(digit, range(5)),
                      (digit == d)[val & np.isin(digit, range(5))].astype(int)))
    for s in np.unique(speaker):
        folds.append((f"speaker {s} left out", fit & (speaker != s), val, (speaker == s)[val].astype(int)))
    return folds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seed 0 only")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} is missing (the shared FSDD file); nothing to run")
    import torch

    import oddkit
    from oddkit.data.audio import read_audio
    from oddkit.data.audio_features import AudioFeatures

    torch.set_num_threads(args.threads)
    seeds = [0] if args.quick else [0, 1, 2]
    started = time.time()
    data = read_audio(DATA)
    labels = data.labels
    print(f"{len(data)} recordings at {data.sample_rate} Hz", flush=True)

    features, feature_seconds = {}, {}
    for name, params in CANDIDATES.items():
        t = time.time()
        extractor = AudioFeatures(**params).fit(data)
        features[name] = extractor.transform(data)
        feature_seconds[name] = time.time() - t
        print(f"features {name}: {features[name].shape} in {feature_seconds[name]:.1f} s", flush=True)
    t = time.time()
    trimmer = AudioFeatures().fit(data)
    mfcc = mfcc_rows(data.waveforms, data.sample_rate, trimmer.trimmed)
    feature_seconds["mfcc"] = time.time() - t

    # The table route equals fitting on the recordings themselves.
    check = labels["take"].to_numpy() >= 40
    subset = data.subset(check)
    direct = oddkit.GaussianDetector().fit(subset).decision_function(subset)
    via_table = oddkit.GaussianDetector().fit(features["stats"][check]).decision_function(features["stats"][check])
    assert np.allclose(direct, via_table, rtol=1e-6), "fitting on AudioData differs from fitting on its features"

    # 1. Choose the representation on the training takes (default detector, seed 0).
    selection = {}
    for name in CANDIDATES:
        X = features[name]
        for fold, train, val, y in inner_folds(labels):
            scores = make_detector("oddkit default", 0).fit(X[train]).decision_function(X[val])
            selection.setdefault(name, {})[fold] = auroc(y, scores)
        print(f"selection {name}: mean AUROC {np.mean(list(selection[name].values())):.3f}", flush=True)
    chosen = max(selection, key=lambda n: np.mean(list(selection[n].values())))
    print(f"chosen representation: {chosen}", flush=True)

    # 2. Evaluate on the test takes.
    results = []
    for task, train, test, y in tasks(labels, range(5, 50), range(0, 5)):
        results.append({"task": task, "detector": "MFCC + KNN (baseline)", "representation": "mfcc", "seed": None,
                        "auroc": auroc(y, knn_baseline(mfcc[train], mfcc[test]))})
        for name in CANDIDATES:
            X = features[name]
            for detector in ("oddkit default", "AutoEncoderDetector"):
                for seed in (seeds if name == chosen else seeds[:1]):
                    t = time.time()
                    model = make_detector(detector, seed).fit(X[train])
                    score = auroc(y, model.decision_function(X[test]))
                    results.append({"task": task, "detector": detector, "representation": name, "seed": seed,
                                    "auroc": score, "seconds": time.time() - t})
                    print(f"{task} | {detector} | {name} | seed {seed}: {score:.3f} ({time.time() - t:.0f} s)",
                          flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    record = {"speakers": labels.groupby("speaker")["group"].first().tolist(), "selection": selection, "chosen": chosen, "results": results, "seeds": seeds,
              "feature_seconds": feature_seconds, "minutes": (time.time() - started) / 60,
              "versions": {"python": platform.python_version(), "torch": torch.__version__, "oddkit": oddkit.__version__},
              "threads": args.threads}
    RESULTS.write_text(json.dumps(record, indent=1))
    write_report(record)


def _mean(rows, **match):
    values = [r["auroc"] for r in rows if all(r[k] == v for k, v in match.items())]
    return float(np.mean(values)), float(np.std(values))


def write_report(record) -> None:
    results, seeds = record["results"], record["seeds"]
    speaker_tasks = sorted({r["task"] for r in results if r["task"].startswith("speaker")})
    lines = ["# Anomalies in audio (FSDD)", "",
             "Produced by `.venv/bin/python benchmarks/audio_anomaly.py` (protocol in its docstring); numbers from "
             "`benchmarks/results/audio_anomaly.json`. AUROC on the test takes (0-4) of the Free Spoken Digit "
             f"Dataset, models trained on takes 5-49; seeds {seeds} for the chosen representation (seed 0 for the "
             "other), mean ± standard deviation over seeds. "
             f"The machine (2 cores) was shared with other jobs, {record['threads']} torch threads: times are noisy, "
             f"the whole run took {record['minutes']:.0f} min.", "",
             "## How the default representation was chosen (training takes only)", "",
             "Inner folds: fit on takes 15-49, validate on takes 5-14 (no test take is read); leave out each of "
             "the digits 0-4 in turn (digit folds) and each speaker in turn (speaker folds); oddkit's default "
             "detector, seed 0. AUROC:", "",
             "| representation | digit folds (mean of 5) | speaker folds (mean of 6) | all 11 folds |", "|---|---|---|---|"]
    for name, folds in record["selection"].items():
        digit = np.mean([v for k, v in folds.items() if k.startswith("digit")])
        speaker = np.mean([v for k, v in folds.items() if k.startswith("speaker")])
        mark = " (chosen: `AudioFeatures()` default)" if name == record["chosen"] else ""
        lines.append(f"| {name}{mark} | {digit:.3f} | {speaker:.3f} | {np.mean(list(folds.values())):.3f} |")
    lines += ["", "## Test AUROC", "",
              "| detector | features | digits 0-4 normal, 5-9 odd | a sixth speaker odd (mean of 6) |", "|---|---|---|---|"]
    combos = [("MFCC + KNN (baseline)", "mfcc")] + [(d, n) for n in record["selection"]
                                                    for d in ("oddkit default", "AutoEncoderDetector")]
    for detector, rep in combos:
        digit = _mean(results, task="digits 0-4 normal", detector=detector, representation=rep)
        per_seed = []
        for seed in ({None} if rep == "mfcc" else seeds if rep == record["chosen"] else seeds[:1]):
            per_seed.append(np.mean([_mean(results, task=t, detector=detector, representation=rep, seed=seed)[0]
                                     for t in speaker_tasks]))
        label = f"log-mel {rep}" + (" (default)" if rep == record["chosen"] else "") if rep != "mfcc" else "MFCC mean+std"
        lines.append(f"| {detector} | {label} | {digit[0]:.3f} ± {digit[1]:.3f} | "
                     f"{np.mean(per_seed):.3f} ± {np.std(per_seed):.3f} |")
    lines += ["", "### Each speaker left out (AUROC, mean over seeds)", "",
              "| detector | features | " + " | ".join(t.replace(" odd", "") for t in speaker_tasks) + " |",
              "|---|---|" + "---|" * len(speaker_tasks)]
    for detector, rep in combos:
        cells = [f"{_mean(results, task=t, detector=detector, representation=rep)[0]:.3f}" for t in speaker_tasks]
        lines.append(f"| {detector} | {rep} | " + " | ".join(cells) + " |")
    lines += ["", "Speakers by index: " + ", ".join(f"{i} = {n}" for i, n in enumerate(record["speakers"])) + ".", ""]
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT}")


if __name__ == "__main__":
    main()
