"""Write the demo's breast-cancer split as CSV files, for trying the command line.

train.csv holds benign cases only; dev.csv and test.csv are labelled (column y: 1 = malignant).
Every file has a `case` id column. Run: .venv/bin/python examples/make_breast_cancer_csv.py
"""

from pathlib import Path

from oddkit.demo import split_breast_cancer

folder = Path(__file__).parent / "breast_cancer"
folder.mkdir(exist_ok=True)
split = split_breast_cancer(random_state=0)
for name, frame, y in [("train", split.train, None), ("dev", split.dev, split.y_dev), ("test", split.test, split.y_test)]:
    frame = frame.assign(case=[f"case-{i}" for i in frame.index])
    if y is not None:
        frame = frame.assign(y=y)
    frame.to_csv(folder / f"{name}.csv", index=False, float_format="%.6g")
    print(f"wrote {folder / name}.csv: {len(frame)} rows")
