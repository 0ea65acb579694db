"""Card fraud at its real rate: a threshold that weighs a missed fraud's amount against a review.

Data: ../shared/data/creditcard_fraud.npz, a subsample of the ULB credit-card set (5,000 normal
transactions and all 492 frauds; columns Time, V1..V28, Amount). Time (seconds since the first
transaction, over two days) is not a feature: it is a timestamp, and every transaction a deployed
model scores is later than every one it trained on (the drift check below shows what it does to
the next day's alerts). Split: 60% of the normals train,
20% + half the frauds form the dev set, 20% + the other half the test set. The files hold 9% fraud;
production sees 0.17%, so every precision, alert count and cost is also given at that rate
(oddkit.metrics.at_prevalence re-weights the measured recall and false-positive rate; too few
frauds would remain to subsample the test set to 0.17%).

Threshold goal: cost:5,1,0.0017 with the Amount as per-row miss cost: a false alarm costs a 5 EUR
review, a missed fraud its Amount.

Drift: the dev set's normal rows are recorded as the model's drift reference (as 'oddkit threshold'
does) and the test set's normal rows are checked against it; then a model is fitted on the first
day's normal transactions and the second day's are checked, with Time as a feature and without.

Run:  python examples/fraud/run.py [--quick] [--out DIR]
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _apps  # noqa: E402

from oddkit import default_detector  # noqa: E402
from oddkit.drift import check_drift, record_reference  # noqa: E402
from oddkit.report import write_report  # noqa: E402

PREVALENCE, REVIEW = 0.0017, 5.0
GOAL = f"cost:{REVIEW:g},1,{PREVALENCE}"

args = _apps.arguments("fraud", __doc__.splitlines()[0])
with np.load(_apps.shared_data("creditcard_fraud"), allow_pickle=False) as data:
    table_all = pd.DataFrame(data["X"].astype(np.float64), columns=[str(c) for c in data["feature_names"]])
    y = data["y"].astype(int)
X = table_all.drop(columns="Time")  # a timestamp, not a feature (see the docstring)
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
dev_normal = dev[y[dev] == 0]
record_reference(detector, X.iloc[dev_normal], data_name="dev split (normal rows)")  # as 'oddkit threshold' does
# Each missed fraud costs its Amount (times the goal's MISS, 1), as the threshold was chosen.
report = write_report(detector, X.iloc[test], y[test], args.out / "report.html", miss_costs=amount[test],
                      training_fingerprint=_apps.fingerprint(X.iloc[normal[:n_train]]),
                      title="Card fraud: oddkit default detector on the test split",
                      data_name="creditcard_fraud.npz (test split)")
print(f"wrote {args.out / 'results.md'}, {args.out / 'results.csv'} and {report}")


def summary(report) -> str:
    top = ", ".join(f"{c.name} ({c.bin}: {c.reference_share:.0%} -> {c.share:.0%})" for c in report.columns[:3]
                    if c.drifted)
    return (f"{'DRIFT' if report.drifted else 'no drift'}; alerts {report.reference_alert_rate:.1%} -> "
            f"{report.alert_rate:.1%} (x{report.alert_ratio:.2f}); {len(report.drifted_columns)} of "
            f"{len(report.columns)} columns drifted" + (f", most: {top}" if top else ""))


lines = [f"test split, normal rows, against the dev split's: {summary(check_drift(detector, X.iloc[test[y[test] == 0]]))}"]
# The next day: a model fitted on the first day's normal transactions (70%; the other 30% its drift reference),
# checked on the second day's, with Time as a feature and without.
day = (table_all["Time"].to_numpy() >= 86_400).astype(int)
first = rng.permutation(normal[day[normal] == 0])
cut = int(0.7 * len(first))
for name, columns in (("with Time", list(table_all.columns)), ("without Time", list(X.columns))):
    model = default_detector(random_state=args.seed).fit(table_all.iloc[first[:cut]][columns])
    record_reference(model, table_all.iloc[first[cut:]][columns], data_name="day 1 (normal rows)")
    result = check_drift(model, table_all.iloc[normal[day[normal] == 1]][columns])
    lines.append(f"day 2 against day 1, {name}: {summary(result)}")
(args.out / "drift.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
print("\n".join(lines))
print(f"wrote {args.out / 'drift.txt'}")
