"""The speech application beside benchmarks/AUDIO_ANOMALY.md: test ROC AUC on the benchmark's protocol and
on this application's split, changing one thing at a time.

The benchmark enrols five speakers, trains on takes 5-49 and tests on takes 0-4 (the odd speaker's too),
leaving each speaker out in turn; the application (run.py, seed N) enrols four, draws 30 training and 10 test
takes at random, keeps the fifth speaker for its dev set and scores every recording of the sixth. Rows: the
application's split; the same with the benchmark's takes; the same with five enrolled speakers; the
benchmark's protocol for the application's test impostor, and its mean over the six speakers left out.

Columns: oddkit's default detector as fitted on recordings, the local outlier factor over 10 neighbours
(``EnsembleDetector(members=AUDIO_MEMBERS)``, benchmarks/AUDIO_SCORER.md); the default as fitted on a table, the
ensemble of knn1, knn1-sub16 and gaussian-robust25 (the default on recordings too until AUDIO_SCORER.md); the
nearest neighbour alone (``EnsembleDetector(members=("knn1",))``); the benchmark baseline's scorer (mean distance to
the 5 nearest training recordings, here on oddkit's MFCCs); PyOD's KNN (distance to the 5th); scikit-learn's LOF
(novelty, 20 neighbours) and IsolationForest. All on the same MFCC features (``AudioFeatures()``, fitted on the
whole archive: its fit only records the sample rate); the peers standardised on each training set. oddkit's
detectors are fitted on the feature table; the script first checks, on the application's split, that the first
column's detector scores as ``oddkit.default_detector`` fitted on the recordings themselves does.

Run:  python examples/speech/reconcile.py [--seed N]     (about 26 s; prints two markdown tables)
"""

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _apps  # noqa: E402
import _split  # noqa: E402

import oddkit  # noqa: E402
from oddkit.metrics import roc_auc  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--seed", type=int, default=0, help="the application's split (run.py --seed) and every detector's")
args = parser.parse_args()
path = _apps.shared_data("fsdd_spoken_digits")
missing = [name for name in ("librosa", "soundfile", "pyod") if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"reconcile needs {' and '.join(missing)}: pip install -e '.[audio,examples]'")

from oddkit.data.audio import read_audio  # noqa: E402
from oddkit.data.audio_features import AudioFeatures  # noqa: E402
from oddkit.detectors.ensemble import AUDIO_MEMBERS  # noqa: E402

recordings = read_audio(path)
labels = recordings.labels
X = AudioFeatures().fit(recordings).transform(recordings).astype(np.float64)
speaker, take = labels["speaker"].to_numpy(), labels["take"].to_numpy()
cut = _split.split(labels, args.seed)
names = cut.names


def scores(train: np.ndarray, test: np.ndarray) -> dict:
    from pyod.models.knn import KNN
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X[train])
    A, B = scaler.transform(X[train]), scaler.transform(X[test])
    return {"oddkit default on recordings (lof10)": oddkit.EnsembleDetector(members=AUDIO_MEMBERS,
                                                                          random_state=args.seed)
            .fit(X[train]).decision_function(X[test]),
            "oddkit default on a table": oddkit.default_detector(random_state=args.seed).fit(X[train])
            .decision_function(X[test]),
            "oddkit knn1": oddkit.EnsembleDetector(members=("knn1",)).fit(X[train]).decision_function(X[test]),
            "5-NN mean (the benchmark's baseline scorer)":
                NearestNeighbors(n_neighbors=5).fit(A).kneighbors(B)[0].mean(axis=1),
            "PyOD KNN": KNN().fit(A).decision_function(B),
            "sklearn LOF (novelty)": -LocalOutlierFactor(novelty=True).fit(A).score_samples(B),
            "sklearn IsolationForest": -IsolationForest(random_state=args.seed).fit(A).score_samples(B)}


def row(enrolled, train_takes, test_takes, impostor, impostor_takes=np.arange(50)) -> dict:
    known = np.isin(speaker, list(enrolled))
    train = np.flatnonzero(known & np.isin(take, train_takes))
    test = np.flatnonzero((known & np.isin(take, test_takes)) | ((speaker == impostor) & np.isin(take, impostor_takes)))
    y = (speaker[test] == impostor).astype(int)
    return {name: roc_auc(y, s) for name, s in scores(train, test).items()}


# The first column fits AUDIO_MEMBERS on the feature table; oddkit.default_detector fitted on the recordings
# themselves must score the same (it computes the same features and gives way to the same members).
train_rows, test_rows = cut.rows["train"], cut.rows["test"]
on_recordings = oddkit.default_detector(random_state=args.seed).fit(recordings.subset(train_rows)) \
    .decision_function(recordings.subset(test_rows))
on_table = oddkit.EnsembleDetector(members=AUDIO_MEMBERS, random_state=args.seed).fit(X[train_rows]) \
    .decision_function(X[test_rows])
if not np.allclose(on_recordings, on_table, rtol=1e-5, atol=1e-6):
    sys.exit(f"the default fitted on recordings no longer scores as {AUDIO_MEMBERS} on their features: "
             "update this script")
print(f"checked: the default fitted on the {len(train_rows)} training recordings scores as {AUDIO_MEMBERS} on their "
      f"features (largest difference {np.abs(on_recordings - on_table).max():.1e})\n", flush=True)

bench_train, bench_test = np.arange(5, 50), np.arange(5)
five = sorted(cut.enrolled + [cut.dev_impostor])
impostor = names[cut.test_impostor]
rows = {
    f"application, seed {args.seed}: 4 enrolled, drawn takes, {impostor} odd":
        row(cut.enrolled, cut.takes["train"], cut.takes["test"], cut.test_impostor),
    f"4 enrolled, the benchmark's takes (train 5-49, test 0-4), {impostor} odd":
        row(cut.enrolled, bench_train, bench_test, cut.test_impostor),
    f"5 enrolled ({names[cut.dev_impostor]} too), drawn takes, {impostor} odd":
        row(five, cut.takes["train"], cut.takes["test"], cut.test_impostor),
}
each = {s: row([o for o in names if o != s], bench_train, bench_test, s, bench_test) for s in sorted(names)}
rows[f"benchmark: 5 enrolled, takes 5-49 / 0-4 (the odd speaker's too), {impostor} odd"] = each[cut.test_impostor]
rows["benchmark: mean over the 6 speakers left out"] = pd.DataFrame(each).T.mean().to_dict()
table = pd.DataFrame(rows).T
table.index.name = "protocol (test ROC AUC)"
print(_apps.to_markdown(table))
print("\nbenchmark protocol, each speaker left out:")
per = pd.DataFrame(each).T.rename(index=names)
per.index.name = "speaker left out"
print(_apps.to_markdown(per))
