"""An unknown speaker at a voice interface: enrolled on four speakers, flag a voice it has never heard.

Data: ../shared/data/fsdd_spoken_digits.npz, the Free Spoken Digit Dataset (6 speakers x 10 digits x 50
takes, 8 kHz). The seed draws two speakers as impostors, one for the dev set and the other for the test
set; the remaining four are the enrolled users, and their takes (0-49, the same for every digit) are
drawn into 30 training takes, 10 dev takes and 10 test takes. Train: the enrolled speakers' training
takes only (1,200 recordings). Dev: their dev takes (400) and every recording of the dev impostor (500).
Test: their test takes (400) and every recording of the test impostor (500), a voice no detector and no
threshold has heard. --quick keeps 12 training takes, 5 dev and 5 test takes and 100 recordings of each
impostor.

Detectors: oddkit's default for recordings (``oddkit.default_detector`` fitted on the recordings, as
``oddkit fit FOLDER_OF_WAVS --detector default`` builds it: MFCC statistics, ``AudioFeatures()``),
beside scikit-learn's IsolationForest and LOF (novelty) and PyOD's KNN (when installed) on the same
MFCC features, computed by the same ``AudioFeatures`` and standardised on the training recordings.

Threshold goal: fpr:0.05 on the dev set: at most 5% of the enrolled users' utterances rejected.
Run:  python examples/speech/run.py [--quick] [--out DIR] [--seed N] [--wavs DIR]
"""

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _apps  # noqa: E402
import _split  # noqa: E402  (beside this script: the split, shared with reconcile.py)

import oddkit  # noqa: E402
from oddkit.metrics import operating_report  # noqa: E402
from oddkit.threshold import choose_threshold  # noqa: E402

GOAL = "fpr:0.05"
TOP = 20  # test alerts explained in top_alerts.csv

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=_apps.HERE / "speech" / "out",
                    help="output folder (default: examples/speech/out)")
parser.add_argument("--quick", action="store_true",
                    help="subsample the recordings for a fast smoke run (the tests use it); figures are not comparable")
parser.add_argument("--seed", type=int, default=0, help="seed of the split and of every detector")
parser.add_argument("--wavs", type=Path, default=None,
                    help="also write the split as WAV files for the command line: DIR/train/SPEAKER/, "
                         "DIR/dev/normal|anomaly/ and DIR/test/normal|anomaly/")
args = parser.parse_args()

path = _apps.shared_data("fsdd_spoken_digits")
missing = [name for name in ("librosa", "soundfile") if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"speech needs {' and '.join(missing)}: pip install -e '.[audio]'")

from oddkit.data.audio import read_audio, write_recordings  # noqa: E402
from oddkit.data.audio_features import AudioFeatures, explain_recordings  # noqa: E402
from oddkit.report import write_report  # noqa: E402

recordings = read_audio(path)
cut = _split.split(recordings.labels, args.seed, args.quick)
names, y = cut.names, cut.y
parts = {part: recordings.subset(index) for part, index in cut.rows.items()}
print(f"speech: enrolled {', '.join(names[s] for s in cut.enrolled)}; dev impostor {names[cut.dev_impostor]}, "
      f"test impostor {names[cut.test_impostor]}; train {len(parts['train'])} recordings; dev {len(parts['dev'])} "
      f"({int(y['dev'].sum())} impostor); test {len(parts['test'])} ({int(y['test'].sum())} impostor); enrolled "
      f"takes: test {cut.takes['test'].tolist()}, dev {cut.takes['dev'].tolist()}; goal {GOAL}", flush=True)

if args.wavs is not None:  # the same split as folders, for 'oddkit fit / threshold / evaluate' (walk-through)
    for part, data in parts.items():
        data = data.subset(np.arange(len(data)))  # a copy: the file names change
        if part == "train":
            data.labels["file"] = [f"{g}/{f}" for g, f in zip(data.labels["group"], data.labels["file"])]
        else:
            data.labels["file"] = [("anomaly/" if a else "normal/") + f for a, f in zip(y[part], data.labels["file"])]
        write_recordings(data, args.wavs / part)
    print(f"wrote the split as WAV files under {args.wavs}", flush=True)

# The peers see exactly the features oddkit's detector computes: AudioFeatures() (20 MFCCs, mean and
# standard deviation over the trimmed recording's frames), fitted on the training recordings.
features, feature_seconds, tables = AudioFeatures().fit(parts["train"]), {}, {}
features.transform(parts["train"].subset([0]))  # librosa's first call sets itself up: not timed
for part, data in parts.items():
    started = time.perf_counter()
    tables[part] = features.transform(data)
    feature_seconds[part] = time.perf_counter() - started

from sklearn.ensemble import IsolationForest  # noqa: E402
from sklearn.neighbors import LocalOutlierFactor  # noqa: E402

# The peers with their libraries' defaults, on the features standardised on the training recordings.
detectors = {"oddkit default_detector": oddkit.default_detector(random_state=args.seed),
             "sklearn IsolationForest": _apps._Scaled(IsolationForest(random_state=args.seed), -1.0, "score_samples"),
             "sklearn LOF (novelty)": _apps._Scaled(LocalOutlierFactor(novelty=True), -1.0, "score_samples")}
try:
    from pyod.models.knn import KNN
except ImportError:
    print("  PyOD KNN: skipped, pyod is not installed (pip install -e '.[examples]')")
else:
    detectors["PyOD KNN"] = _apps._Scaled(KNN(), 1.0, "decision_function")

table, fitted = [], {}
for name, detector in detectors.items():
    # oddkit's detector takes the recordings and computes their features itself; the peers take the
    # feature table, and the seconds computing it are added to theirs (fit: train, score: test).
    own = name.startswith("oddkit")
    data = parts if own else tables
    extra = {part: 0.0 if own else seconds for part, seconds in feature_seconds.items()}
    started = time.perf_counter()
    detector.fit(data["train"])
    fit_seconds = time.perf_counter() - started + extra["train"]
    choice = choose_threshold(detector.decision_function(data["dev"]), y["dev"], GOAL)
    started = time.perf_counter()
    scores = detector.decision_function(data["test"])
    score_seconds = time.perf_counter() - started + extra["test"]
    r = operating_report(y["test"], scores, choice.threshold)
    table.append({"detector": name, "ROC AUC": r["roc_auc"], "PR AUC": r["pr_auc"],
                  "precision": r["data"]["precision"], "recall": r["data"]["recall"], "FPR": r["data"]["fpr"],
                  "F1": r["data"]["f1"], "dev FPR": choice.fpr, "fit s": fit_seconds, "score s": score_seconds})
    fitted[name] = (detector, choice, scores)
    print(f"  {name}: ROC AUC {r['roc_auc']:.3f}, recall {r['data']['recall']:.3f}, FPR {r['data']['fpr']:.3f} "
          f"(fit {fit_seconds:.1f} s, score {score_seconds:.1f} s)", flush=True)
table = pd.DataFrame(table).set_index("detector")
markdown = _apps.write_table(table, args.out)
print(markdown)

# The test set's highest-scoring recordings under oddkit's detector, each score split over the 20 MFCC
# coefficients it is made of (mean and spread of each coefficient summed), as 'oddkit explain' does.
detector, choice, scores = fitted["oddkit default_detector"]
detector.set_threshold(choice)  # the report and its model card show the threshold and its goal
top = np.argsort(-scores, kind="stable")[:TOP]
shares = explain_recordings(detector, parts["test"].subset(top), by="coefficient").reset_index(drop=True)
test_labels = parts["test"].labels.iloc[top].reset_index(drop=True)
alerts = pd.DataFrame({"file": test_labels["file"], "speaker": test_labels["group"], "digit": test_labels["digit"],
                       "take": test_labels["take"],
                       "truth": np.where(y["test"][top] == 1, "impostor", "enrolled"), "score": scores[top],
                       "flagged": (scores[top] >= choice.threshold).astype(int),
                       "top_coefficient": shares.idxmax(axis=1), "top_share": shares.max(axis=1)})
alerts = pd.concat([alerts, shares.add_prefix("share_")], axis=1)
alerts.to_csv(args.out / "top_alerts.csv", index=False, float_format="%.6g")
print(f"\ntop {TOP} test alerts: {int((alerts['truth'] == 'impostor').sum())} impostor, "
      f"{int((alerts['truth'] == 'enrolled').sum())} enrolled; coefficients carrying most: "
      f"{alerts['top_coefficient'].value_counts().head(3).to_dict()}")

# The report's breakdown by speaker: an enrolled speaker's flagged share is his false-rejection rate.
report = write_report(detector, parts["test"], y["test"], args.out / "report.html",
                      groups=parts["test"].labels["group"].to_numpy(),
                      title="Unknown speaker: oddkit default detector on the test split",
                      data_name=f"fsdd_spoken_digits.npz (test split: the enrolled speakers' test takes and "
                                f"every recording of {names[cut.test_impostor]})")
print(f"wrote {args.out / 'results.md'}, {args.out / 'results.csv'}, {args.out / 'top_alerts.csv'} and {report}")
