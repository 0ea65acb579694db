"""The speech application's threshold with and without a confidence: ``fpr:0.05`` against ``fpr:0.05,0.95``.

For each of the six draws of run.py (``--seed`` 0-5), the default on recordings (the local outlier factor over
10 neighbours, as run.py fits it, here on the same MFCC feature table) scores the dev and test recordings; each
goal picks its threshold on dev, and the test set gives the false-rejection rate among the enrolled speakers'
utterances and the share of the impostor's caught. ``fpr:0.05,0.95`` promises at most 5% on new utterances with
95% confidence only when they are like the dev ones (``oddkit.threshold.FPRGoal``); the test takes here come
from other recording sessions than the dev takes.

Run:  python examples/speech/confidence_goal.py     (about 15 s; prints a markdown table)
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _apps  # noqa: E402
import _split  # noqa: E402

import oddkit  # noqa: E402
from oddkit.threshold import choose_threshold  # noqa: E402

GOALS = ("fpr:0.05", "fpr:0.05,0.95")

path = _apps.shared_data("fsdd_spoken_digits")
missing = [name for name in ("librosa", "soundfile") if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"confidence_goal needs {' and '.join(missing)}: pip install -e '.[audio]'")

from oddkit.data.audio import read_audio  # noqa: E402
from oddkit.data.audio_features import AudioFeatures  # noqa: E402

recordings = read_audio(path)
X = AudioFeatures().fit(recordings).transform(recordings)
print("| seed | " + " | ".join(f"{g}: dev FPR / test FPR / recall" for g in GOALS) + " |")
print("|---|" + "---|" * len(GOALS))
totals = {g: [] for g in GOALS}
for seed in range(6):
    cut = _split.split(recordings.labels, seed)
    part = {name: X[rows] for name, rows in cut.rows.items()}
    detector = oddkit.LOFDetector(n_neighbors=10).fit(part["train"])
    dev, test = detector.decision_function(part["dev"]), detector.decision_function(part["test"])
    cells = []
    for goal in GOALS:
        choice = choose_threshold(dev, cut.y["dev"], goal)
        flagged = test >= choice.threshold
        rates = (choice.fpr, flagged[cut.y["test"] == 0].mean(), flagged[cut.y["test"] == 1].mean())
        totals[goal].append(rates)
        cells.append(" / ".join(f"{r:.3f}" for r in rates))
    print(f"| {seed} | " + " | ".join(cells) + " |")
print("| mean | " + " | ".join(" / ".join(f"{r:.3f}" for r in np.mean(totals[g], axis=0)) for g in GOALS) + " |")
