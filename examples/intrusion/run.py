"""Network intrusion on NSL-KDD as published, with the attack types never seen in training apart.

Data: ../shared/data/nslkdd.npz: X_train/y_train = KDDTrain+_20Percent, X/y = KDDTest+ (attack = 1),
`attack`/`attack_train` index `attack_names`. Every detector trains on 80% of the training file's
normal connections; the threshold (goal f1) is chosen on a dev split held out of the training file
(the other 20% of its normals and its attacks), never on KDDTest+. KDDTest+ is the test set, with
recall broken down by attack type; the types absent from the training file are reported apart.
Run:  python examples/intrusion/run.py [--quick] [--out DIR]
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _apps  # noqa: E402

from oddkit.report import write_report  # noqa: E402

GOAL = "f1"

args = _apps.arguments("intrusion", __doc__.splitlines()[0])
with np.load(_apps.shared_data("nslkdd"), allow_pickle=False) as data:
    columns = [str(c) for c in data["feature_names"]]
    X_file = pd.DataFrame(data["X_train"].astype(np.float64), columns=columns)
    y_file = data["y_train"].astype(int)
    X_test = pd.DataFrame(data["X"].astype(np.float64), columns=columns)
    y_test = data["y"].astype(int)
    names = np.asarray([str(n) for n in data["attack_names"]])
    attack_test, attack_file = names[data["attack"]], names[data["attack_train"]]
rng = np.random.default_rng(args.seed)
normal, attacks = rng.permutation(np.flatnonzero(y_file == 0)), rng.permutation(np.flatnonzero(y_file == 1))
test_rows = np.arange(len(y_test))
if args.quick:
    normal, attacks, test_rows = normal[:1000], attacks[:300], rng.permutation(test_rows)[:1500]
n_train = int(0.8 * len(normal))
train, dev = normal[:n_train], np.r_[normal[n_train:], attacks]
X_test, y_test, attack_test = X_test.iloc[test_rows], y_test[test_rows], attack_test[test_rows]
seen = set(attack_file[y_file == 1])
unseen = np.array([y == 1 and a not in seen for y, a in zip(y_test, attack_test)])
print(f"intrusion: train {len(train)} normal rows of KDDTrain+_20Percent; dev {len(dev)} rows ({len(attacks)} "
      f"attacks of {len(seen)} types); test KDDTest+ {len(y_test)} rows ({int(y_test.sum())} attacks, "
      f"{int(unseen.sum())} of types absent from training); goal {GOAL}")

table, fitted = _apps.compare(X_file.iloc[train], X_file.iloc[dev], y_file[dev], X_test, y_test, GOAL, args.seed)
# Recall on the attack types seen in training and on the unseen ones, as two more columns.
for name, (_, choice, scores) in fitted.items():
    flagged = scores >= choice.threshold
    table.loc[name, "recall seen types"] = flagged[(y_test == 1) & ~unseen].mean()
    table.loc[name, "recall unseen types"] = flagged[unseen].mean()
markdown = _apps.write_table(table, args.out)

# Per attack type: rows and each detector's recall (share flagged); normal rows give the FPR.
kind = np.where(y_test == 0, "normal", np.where(unseen, "unseen", "seen in training"))
by_type = pd.DataFrame({"attack type": attack_test, "kind": kind})
for name, (_, choice, scores) in fitted.items():
    by_type[name] = scores >= choice.threshold
per_type = by_type.groupby(["kind", "attack type"]).agg(rows=("kind", "size"), **{
    name: (name, "mean") for name in fitted})
per_type = per_type.sort_values(["kind", "rows"], ascending=[True, False]).reset_index(level=0)
per_type.index = [f"{t} ({k})" for t, k in zip(per_type.index, per_type.pop("kind"))]
per_type.index.name = "attack type (flagged share)"
by_type_md = _apps.write_table(per_type, args.out, "by_attack_type")
print(markdown)
print()
print(by_type_md)
detector, choice, _ = fitted["oddkit default_detector"]
detector.set_threshold(choice)  # the report and its model card show the threshold and its goal
groups = [t if k != "unseen" else f"{t} (unseen)" for t, k in zip(attack_test, kind)]
report = write_report(detector, X_test, y_test, args.out / "report.html", groups=groups,
                      training_fingerprint=_apps.fingerprint(X_file.iloc[train]), title="NSL-KDD: oddkit default detector on KDDTest+", data_name="KDDTest+ (nslkdd.npz)")
print(f"wrote {args.out}/results.md|csv, by_attack_type.md|csv and {report}")
