"""The training data's fingerprint: recorded at fit by every detector, saved and validated by persist,
shown by 'oddkit info' and the report's model card; old folders without it still load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli as run
from oddkit import load
from oddkit.detectors import GaussianDetector, IsolationForestDetector, LOFDetector, PCADetector
from oddkit.detectors.base import training_fingerprint
from oddkit.exceptions import ModelFileError


def _frame(seed=0, n=120):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    frame["kind"] = rng.choice(["x", "y"], n)
    return frame


def test_same_data_same_fingerprint_and_one_changed_cell_changes_it():
    frame = _frame()
    first = GaussianDetector().fit(frame)
    assert len(first.training_fingerprint_) == 64 and int(first.training_fingerprint_, 16) >= 0
    assert first.n_training_rows_ == len(frame)
    assert GaussianDetector(contamination=0.05).fit(frame.copy()).training_fingerprint_ == first.training_fingerprint_
    assert training_fingerprint(frame.set_index(np.arange(len(frame)) + 7)) == first.training_fingerprint_

    numbers = frame.copy()
    numbers.loc[5, "b"] += 1e-12
    words = frame.copy()
    words.loc[5, "kind"] = "y" if frame.loc[5, "kind"] == "x" else "x"
    for changed in (numbers, words):
        assert GaussianDetector().fit(changed).training_fingerprint_ != first.training_fingerprint_
    renamed = frame.rename(columns={"a": "A"})
    assert training_fingerprint(renamed) != first.training_fingerprint_
    assert training_fingerprint(frame.iloc[:-1]) != first.training_fingerprint_

    array = frame[["a", "b", "c"]].to_numpy().copy()
    from_array = PCADetector().fit(array).training_fingerprint_
    assert from_array == IsolationForestDetector(random_state=0).fit(array).training_fingerprint_
    assert from_array == LOFDetector().fit(array).training_fingerprint_
    array[0, 0] = np.nextafter(array[0, 0], np.inf)  # the smallest change a float64 can take
    assert PCADetector().fit(array).training_fingerprint_ != from_array


def test_images_are_fingerprinted_too():
    from oddkit.detectors import AutoEncoderDetector

    images = np.random.default_rng(0).random((8, 6, 6)).astype(np.float32)
    detector = AutoEncoderDetector(epochs=1, verbose=0, random_state=0).fit(images)
    assert detector.n_training_rows_ == 8 and detector.training_fingerprint_ == training_fingerprint(images)
    images[3, 2, 2] += 0.5
    assert training_fingerprint(images) != detector.training_fingerprint_


def test_the_fingerprint_survives_save_and_load_and_is_validated(tmp_path, monkeypatch, capsys):
    frame = _frame()
    detector = GaussianDetector().fit(frame)
    detector.save(tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert loaded.training_fingerprint_ == detector.training_fingerprint_
    assert loaded.n_training_rows_ == len(frame)

    from oddkit.persist import seal

    config_path = tmp_path / "m" / "config.json"
    original = json.loads(config_path.read_text())
    for bad in ({"training_fingerprint": "abc"}, {"training_fingerprint": "G" * 64},
                {"training_fingerprint": 12}, {"n_training_rows": 0}, {"n_training_rows": True}):
        config = json.loads(json.dumps(original))
        config["detector"].update(bad)
        config_path.write_text(json.dumps(config))
        seal(tmp_path / "m")  # a folder whose integrity holds but whose value is wrong
        with pytest.raises(ModelFileError, match="training_fingerprint|n_training_rows"):
            load(tmp_path / "m")

    old = json.loads(json.dumps(original))  # a folder saved before the fingerprint was recorded
    del old["detector"]["training_fingerprint"], old["detector"]["n_training_rows"]
    config_path.write_text(json.dumps(old))
    seal(tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert not hasattr(loaded, "training_fingerprint_") and not hasattr(loaded, "n_training_rows_")
    code, out, err = run(monkeypatch, capsys, "info", tmp_path / "m")
    assert code == 0, err
    assert "not recorded" in out and "training data sha256" not in out


def test_info_and_the_model_card_show_it(tmp_path, monkeypatch, capsys):
    from oddkit.report.html import _model_card

    frame = _frame()
    frame.to_csv(tmp_path / "train.csv", index=False)
    code, _, err = run(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--detector", "gaussian",
                       "--out", tmp_path / "m")
    assert code == 0, err
    detector = load(tmp_path / "m")
    code, out, err = run(monkeypatch, capsys, "info", tmp_path / "m")
    assert code == 0, err
    assert f"training data sha256: {detector.training_fingerprint_}\n" in out and "training data fingerprint" in out
    card = _model_card(detector, tmp_path / "m", None, detector.threshold_, detector.threshold_goal_)
    assert card["fingerprint"] == detector.training_fingerprint_ and "training data" in card["fingerprint_of"]
    assert card["training_rows"].replace(",", "") == "120"

    del detector.training_fingerprint_  # a model saved before: the card says what it shows instead
    card = _model_card(detector, tmp_path / "m", None, detector.threshold_, detector.threshold_goal_)
    assert "integrity.json" in card["fingerprint_of"]
