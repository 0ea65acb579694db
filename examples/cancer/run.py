"""Malignant tumours as anomalies: the Wisconsin diagnostic breast-cancer (WDBC) demo.

Data: the 569 fine-needle aspirates that ship inside scikit-learn (30 features of the cell nuclei,
212 malignant), split as `oddkit demo` and examples/breast_cancer/*.csv split them: 60% of the
benign cases train, the other benign cases and all malignant ones are halved into dev and test.
Threshold goal recall:0.95 on dev (miss at most 1 malignant case in 20), measured on test.
No shared data needed. Run:  python examples/cancer/run.py [--quick] [--out DIR]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _apps  # noqa: E402

from oddkit.demo import split_breast_cancer  # noqa: E402
from oddkit.report import write_report  # noqa: E402

GOAL = "recall:0.95"

args = _apps.arguments("cancer", __doc__.splitlines()[0])
split = split_breast_cancer(random_state=args.seed)
print(f"cancer: train {len(split.train)} benign rows; dev {len(split.dev)} rows ({int(split.y_dev.sum())} malignant); "
      f"test {len(split.test)} rows ({int(split.y_test.sum())} malignant); goal {GOAL}")
table, fitted = _apps.compare(split.train, split.dev, split.y_dev, split.test, split.y_test, GOAL, args.seed)
print(_apps.write_table(table, args.out))
detector, choice, _ = fitted["oddkit default_detector"]
detector.set_threshold(choice)  # the report and its model card show the threshold and its goal
report = write_report(detector, split.test, split.y_test, args.out / "report.html",
                      training_fingerprint=_apps.fingerprint(split.train),
                      title="WDBC: oddkit default detector on the test split", data_name="WDBC (scikit-learn), test split")
print(f"wrote {args.out / 'results.md'}, {args.out / 'results.csv'} and {report}")
