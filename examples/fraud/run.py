"""Card fraud at its real rate: a threshold that weighs a missed fraud's amount against a review.

Data: ../shared/data/creditcard_fraud.npz, a subsample of the ULB credit-card set (5,000 normal
transactions and all 492 frauds; columns Time, V1..V28, Amount). Split: 60% of the normals train,
20% + half the frauds form the dev set, 20% + the other half the test set. The files hold 9% fraud;
production sees 0.17%, so every precision, alert count and cost is also given at that rate
(oddkit.metrics.at_prevalence re-weights the measured recall and false-positive rate; too few
frauds would remain to subsample the test set to 0.17%).

Threshold goal: cost:5,1,0.0017 with the Amount as per-row miss cost: a false alarm costs a 5 EUR
review, a missed fraud its Amount. Run:  python examples/fraud/run.py [--quick] [--out DIR]
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _apps  # noqa: E402

from oddkit.report import write_report  # noqa: E402

PREVALENCE, REVIEW = 0.0017, 5.0
GOAL = f"cost:{REVIEW:g},1,{PREVALENCE}"

args = _apps.arguments("fraud", __doc__.splitlines()[0])
with np.load(_apps.shared_data("creditcard_fraud"), allow_pickle=False) as data:
    X = pd.DataFrame(data["X"].astype(np.float64), columns=[str(c) for c in data["feature_names"]])
    y = data["y"].astype(int)
rng = np.random.default_rng(args.seed)
normal, fraud = rng.permutation(np.flatnonzero(y == 0)), rng.permutation(np.flatnonzero(y == 1))
if args.quick:
    normal, fraud = normal[:1500], fraud[:200]
n_train, n_dev, half = int(0.6 * len(normal)), int(0.2 * len(normal)), len(fraud) // 2
dev = np.r_[normal[n_train:n_train + n_dev], fraud[:half]]
test = np.r_[normal[n_train + n_dev:], fraud[half:]]
amount = X["Amount"].to_numpy()
print(f"fraud: train {n_train} normal rows; dev {len(dev)} rows ({half} frauds); test {len(test)} rows "
      f"({len(fraud) - half} frauds); goal {GOAL} with Amount as the miss cost")

table, fitted = _apps.compare(X.iloc[normal[:n_train]], X.iloc[dev], y[dev], X.iloc[test], y[test], GOAL, args.seed,
                              prevalence=PREVALENCE, costs=(REVIEW, 1.0), miss_cost_dev=amount[dev],
                              miss_cost_test=amount[test])
# What production would lose with no detector at all: every fraud missed, its amount lost.
nothing = PREVALENCE * amount[test][y[test] == 1].mean()
markdown = _apps.write_table(table, args.out)
print(markdown)
print(f"\nflagging nothing would cost {nothing:.3f} EUR per transaction at {PREVALENCE:.2%} fraud")
detector, choice, _ = fitted["oddkit default_detector"]
detector.set_threshold(choice)  # the report and its model card show the threshold and its cost goal
# Each missed fraud costs its Amount (times the goal's MISS, 1), as the threshold was chosen.
report = write_report(detector, X.iloc[test], y[test], args.out / "report.html", miss_costs=amount[test],
                      training_fingerprint=_apps.fingerprint(X.iloc[normal[:n_train]]),
                      title="Card fraud: oddkit default detector on the test split",
                      data_name="creditcard_fraud.npz (test split)")
print(f"wrote {args.out / 'results.md'}, {args.out / 'results.csv'} and {report}")
