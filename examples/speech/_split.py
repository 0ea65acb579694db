"""The speech application's split of the Free Spoken Digit Dataset, shared by run.py and reconcile.py.

The seed draws the dev impostor, the test impostor (two of the six speakers) and the order of the 50
takes: the first 10 drawn are the enrolled speakers' test takes, the next 10 their dev takes, the other
30 their training takes. --quick keeps the first 12 training, 5 dev and 5 test takes of that order and
100 recordings of each impostor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TAKES = {"test": 10, "dev": 10, "train": 30}
QUICK_TAKES, QUICK_IMPOSTOR = {"test": 5, "dev": 5, "train": 12}, 100


@dataclass
class Split:
    rows: dict  # "train", "dev", "test" -> positions in the archive
    y: dict  # "dev", "test" -> 1 for the impostor's recordings
    enrolled: list  # speaker indices
    dev_impostor: int
    test_impostor: int
    takes: dict  # "train", "dev", "test" -> the enrolled speakers' takes
    names: dict  # speaker index -> name


def split(labels: pd.DataFrame, seed: int, quick: bool = False) -> Split:
    """Positions of the train, dev and test recordings in ``labels`` (read_audio's table of the archive)."""
    speaker, take = labels["speaker"].to_numpy(), labels["take"].to_numpy()
    names = {int(s): str(g) for s, g in zip(labels["speaker"], labels["group"])}
    rng = np.random.default_rng(seed)
    order = rng.permutation(sorted(names))
    dev_impostor, test_impostor, enrolled = int(order[0]), int(order[1]), sorted(int(s) for s in order[2:])
    drawn = rng.permutation(50)
    counts = QUICK_TAKES if quick else TAKES
    takes = {"test": drawn[:counts["test"]], "dev": drawn[TAKES["test"]:TAKES["test"] + counts["dev"]],
             "train": drawn[TAKES["test"] + TAKES["dev"]:][:counts["train"]]}
    is_enrolled = np.isin(speaker, enrolled)
    rows = {"train": np.flatnonzero(is_enrolled & np.isin(take, takes["train"]))}
    y = {}
    for part, who in (("dev", dev_impostor), ("test", test_impostor)):
        impostor = np.flatnonzero(speaker == who)
        if quick:
            impostor = np.sort(rng.permutation(impostor)[:QUICK_IMPOSTOR])
        rows[part] = np.r_[np.flatnonzero(is_enrolled & np.isin(take, takes[part])), impostor]
        y[part] = (speaker[rows[part]] == who).astype(int)
    return Split(rows, y, enrolled, dev_impostor, test_impostor, {k: np.sort(v) for k, v in takes.items()}, names)
