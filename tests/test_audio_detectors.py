"""Detectors on recordings: features, ranking of an odd sound, save/load identity, resampling, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("librosa")
pytest.importorskip("soundfile")

import oddkit  # noqa: E402
from oddkit.data.audio import synthetic_speech  # noqa: E402
from oddkit.data.audio_features import AudioFeatures, AudioPreprocessor  # noqa: E402
from oddkit.exceptions import ColumnMismatchError, ExplainError, ModelFileError, ParameterError  # noqa: E402
from oddkit.metrics import roc_auc  # noqa: E402


@pytest.fixture(scope="module")
def split():
    """Words 0 and 1 are normal; word 2 (another formant path) is the odd sound."""
    data = synthetic_speech(n_speakers=2, n_words=3, n_takes=8, seconds=0.3, random_state=0)
    labels = data.labels
    train = data.subset((labels["word"] < 2) & (labels["take"] < 5))
    test = data.subset(labels["take"] >= 5)
    y = (test.labels["word"] == 2).to_numpy().astype(int)
    return train, test, y


def test_features_shapes_and_names(split):
    train, _, _ = split
    stats = AudioFeatures().fit(train)
    rows = stats.transform(train)
    assert rows.shape == (len(train), 3 * 40 + 1) and rows.dtype == np.float32
    assert stats.feature_names_[0] == "mel0_mean" and stats.feature_names_[-1] == "log_duration"
    patch = AudioFeatures(representation="patch", n_frames=8).fit(train)
    assert patch.transform(train).shape == (len(train), 8 * 40)
    # Trimming removes the quiet ends: a recording padded with silence gives the same statistics.
    padded = train.waveforms[0].copy()
    padded = np.concatenate([np.zeros(2000, np.float32), padded, np.zeros(2000, np.float32)])
    untrimmed = AudioFeatures(trim_db=None).fit(train)
    gap_trimmed = np.abs(stats.transform([padded])[0][:40] - rows[0][:40]).mean()
    gap_untrimmed = np.abs(untrimmed.transform([padded])[0][:40] - untrimmed.transform(train)[0][:40]).mean()
    assert gap_trimmed < 0.25 * gap_untrimmed
    with pytest.raises(ParameterError, match="representation"):
        AudioFeatures(representation="mfcc").fit(train)


@pytest.mark.parametrize("make", [
    lambda: oddkit.AutoEncoderDetector(epochs=40, random_state=0, verbose=0),
    lambda: oddkit.default_detector(random_state=0),
], ids=["autoencoder", "default"])
def test_odd_sound_ranks_above_normal_and_survives_save_load(tmp_path, split, make):
    train, test, y = split
    detector = make().fit(train)
    scores = detector.decision_function(test)
    assert np.all(np.isfinite(scores))
    assert roc_auc(y, scores) >= 0.9
    detector.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    saved = config["preprocessor"] if "preprocessor" in config else config["detector"]["preprocessor"]
    assert saved["kind"] == "audio" and saved["features"]["log_mel"]["sample_rate"] == 8000
    back = oddkit.load(tmp_path / "m")
    np.testing.assert_array_equal(back.decision_function(test), scores)
    # Recordings at another rate are resampled to the model's 8 kHz and still ranked.
    assert roc_auc(y, back.decision_function(test.resampled(16000))) >= 0.9


def test_patch_representation_through_audio_data(split):
    train, test, y = split
    train = train.subset(np.arange(len(train)))
    train.features = AudioFeatures(representation="patch", n_frames=16)
    detector = oddkit.KNNDetector(n_neighbors=1).fit(train)
    assert detector.n_features_in_ == 16 * 40
    assert roc_auc(y, detector.decision_function(test)) >= 0.9


def test_wrong_kind_of_data_is_refused(split):
    train, test, _ = split
    detector = oddkit.GaussianDetector().fit(train)
    with pytest.raises(ColumnMismatchError, match="recordings"):
        detector.decision_function(np.zeros((3, detector.n_features_in_)))
    with pytest.raises(ExplainError, match="recordings"):
        detector.explain(test)
    table_model = oddkit.GaussianDetector().fit(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(ColumnMismatchError, match="table"):
        table_model.decision_function(test)


def test_saved_audio_settings_are_validated(split):
    train, _, _ = split
    pre = AudioPreprocessor().fit(train)
    arrays, meta = pre.get_state()
    clone = AudioPreprocessor.from_state(arrays, json.loads(json.dumps(meta)))
    np.testing.assert_array_equal(clone.transform(train), pre.transform(train))
    bad = json.loads(json.dumps(meta))
    bad["features"]["log_mel"]["n_mels"] = 20  # no longer matches the saved columns
    with pytest.raises(ModelFileError, match="columns"):
        AudioPreprocessor.from_state(arrays, bad)
    bad = json.loads(json.dumps(meta))
    bad["features"]["representation"] = "code"
    with pytest.raises(ModelFileError, match="representation"):
        AudioPreprocessor.from_state(arrays, bad)


def test_trim_matches_librosa_and_frames_representation(split):
    import librosa

    from oddkit.data.audio_features import trim_silence

    train, _, _ = split
    for wave in train.waveforms[:3]:
        padded = np.concatenate([np.zeros(1500, np.float32), wave, np.zeros(900, np.float32)])
        expected, _ = librosa.effects.trim(padded, top_db=30, frame_length=256, hop_length=80)
        np.testing.assert_array_equal(trim_silence(padded, 30, 256, 80), expected)
    frames = AudioFeatures(representation="frames", context=2).fit(train)
    rows = frames.frame_rows(train.subset([0, 1]))
    mel = frames.frames(train.subset([0]))[0]
    assert rows[0].shape == (len(mel), 5 * 40)
    centred = mel - mel.mean(axis=0)
    np.testing.assert_allclose(rows[0][3, 80:120], centred[3], atol=1e-5)  # the middle of the window
    np.testing.assert_allclose(rows[0][0, :40], centred[0], atol=1e-5)  # the edge repeats the first frame
    assert frames.transform(train.subset([0, 1])).shape[0] == len(rows[0]) + len(rows[1])


def test_speech_units_follow_the_word_and_survive_save_load(tmp_path):
    from oddkit.detectors.units import fit_speech_units, speech_units, unit_vectors

    data = synthetic_speech(n_speakers=2, n_words=2, n_takes=3, seconds=0.3, random_state=1)
    model = fit_speech_units(data, codebook_size=16, epochs=15, random_state=0)
    assert model.n_positions_ == 1 and 0 < model.codebook_usage_ <= 1 and 1 <= model.perplexity_ <= 16
    units = speech_units(model, data)
    assert len(units) == len(data) and all(u.dtype == np.int64 and u.min() >= 0 and u.max() < 16 for u in units)
    # The two words glide in opposite directions: their unit histograms differ more across words than
    # across speakers saying the same word.
    hist = np.stack([np.bincount(u, minlength=16) / len(u) for u in units])
    words, speakers = data.labels["word"].to_numpy(), data.labels["speaker"].to_numpy()
    same_word = [np.abs(hist[i] - hist[j]).sum() for i in range(len(data)) for j in range(len(data))
                 if i < j and words[i] == words[j] and speakers[i] != speakers[j]]
    other_word = [np.abs(hist[i] - hist[j]).sum() for i in range(len(data)) for j in range(len(data))
                  if i < j and words[i] != words[j]]
    assert np.mean(same_word) < np.mean(other_word)
    model.save(tmp_path / "units")
    back = oddkit.load(tmp_path / "units")
    assert all(np.array_equal(a, b) for a, b in zip(units, speech_units(back, data), strict=True))
    vectors = unit_vectors(back, data)
    assert vectors[0].shape == (len(units[0]), 16)


@pytest.fixture(scope="module")
def recording_folders(tmp_path_factory):
    """train/ (words 0 and 1 of two speakers, as WAV) and test/normal, test/anomaly (word 2 is odd)."""
    from oddkit.data.audio import write_recordings

    root = tmp_path_factory.mktemp("cli-audio")
    data = synthetic_speech(n_speakers=2, n_words=3, n_takes=6, seconds=0.3, random_state=3)
    labels = data.labels
    write_recordings(data.subset((labels["word"] < 2) & (labels["take"] < 4)), root / "train")
    test = data.subset(labels["take"] >= 4)
    test.labels["file"] = [("anomaly/" if w == 2 else "normal/") + f.replace("/", "_")
                           for f, w in zip(test.labels["file"], test.labels["word"], strict=True)]
    write_recordings(test, root / "test")
    return root


def test_cli_round_trip_on_recordings(monkeypatch, capsys, recording_folders):
    import pandas as pd

    from conftest import run_cli as run

    root = recording_folders
    code, out, err = run(monkeypatch, capsys, "fit", root / "train", "--detector", "knn", "--out", root / "m",
                         "--n-threads", 1)
    assert code == 0, err
    assert "16 recordings at 8000 Hz" in out
    code, out, err = run(monkeypatch, capsys, "score", root / "m", root / "test", "--out", root / "s.csv")
    assert code == 0, err
    scores = pd.read_csv(root / "s.csv")
    assert scores.columns.tolist() == ["file", "group", "score", "label"] and len(scores) == 12
    odd = scores["group"] == "anomaly"
    assert scores.loc[odd, "score"].min() > scores.loc[~odd, "score"].max()
    code, out, err = run(monkeypatch, capsys, "threshold", root / "m", root / "test", "--goal", "f1",
                         "--out", root / "m2")
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "evaluate", root / "m2", root / "test", "--plots", root / "plots",
                         "--out", root / "metrics.json")
    assert code == 0, err
    metrics = json.loads((root / "metrics.json").read_text())
    assert metrics["roc_auc"] == pytest.approx(1.0)
    code, out, err = run(monkeypatch, capsys, "report", root / "m2", root / "test", "--out", root / "r.html")
    assert code == 0, err
    assert "anomaly/speaker" in (root / "r.html").read_text()  # top anomalies named by their file
    # A table for a model trained on recordings, and a damaged recording, are refused by name.
    pd.DataFrame({"a": [1.0, 2.0]}).to_csv(root / "t.csv", index=False)
    code, _, err = run(monkeypatch, capsys, "score", root / "m", root / "t.csv", "--out", root / "x.csv")
    assert code == 2 and "trained on recordings" in err
    (root / "bad").mkdir()
    (root / "bad" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    code, _, err = run(monkeypatch, capsys, "score", root / "m", root / "bad", "--out", root / "y.csv")
    assert code == 2 and "broken.wav" in err
