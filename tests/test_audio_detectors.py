"""Detectors on recordings: features, ranking of an odd sound, save/load identity, resampling, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("librosa")
pytest.importorskip("soundfile")

import oddkit  # noqa: E402
from oddkit.data.audio import synthetic_speech  # noqa: E402
from oddkit.data.audio_features import AudioFeatures, AudioPreprocessor, ResampledAudioWarning  # noqa: E402
from oddkit.exceptions import ColumnMismatchError, ExplainError, ModelFileError, ParameterError  # noqa: E402
from oddkit.metrics import roc_auc  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """These models are tiny: one thread is fastest, and on a busy machine more threads only spin."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
    stats = AudioFeatures(representation="stats").fit(train)
    rows = stats.transform(train)
    assert rows.shape == (len(train), 3 * 40 + 1) and rows.dtype == np.float32
    assert stats.feature_names_[0] == "mel0_mean" and stats.feature_names_[-1] == "log_duration"
    patch = AudioFeatures(representation="patch", n_frames=8).fit(train)
    assert patch.transform(train).shape == (len(train), 8 * 40)
    # Trimming removes the quiet ends: a recording padded with silence gives the same statistics.
    padded = train.waveforms[0].copy()
    padded = np.concatenate([np.zeros(2000, np.float32), padded, np.zeros(2000, np.float32)])
    untrimmed = AudioFeatures(representation="stats", trim_db=None).fit(train)
    gap_trimmed = np.abs(stats.transform([padded])[0][:40] - rows[0][:40]).mean()
    gap_untrimmed = np.abs(untrimmed.transform([padded])[0][:40] - untrimmed.transform(train)[0][:40]).mean()
    assert gap_trimmed < 0.25 * gap_untrimmed
    with pytest.raises(ParameterError, match="representation"):
        AudioFeatures(representation="cepstrum").fit(train)


def test_mfcc_representation_is_the_dct_of_the_log_mel_frames(tmp_path, split):
    from scipy.fft import dct

    train, test, y = split
    mfcc = AudioFeatures(representation="mfcc", n_mfcc=13).fit(train)
    rows = mfcc.transform(train)
    assert rows.shape == (len(train), 2 * 13) and mfcc.feature_names_[:2] == ["mfcc0_mean", "mfcc1_mean"]
    assert mfcc.feature_names_[-1] == "mfcc12_std" and mfcc.log_mel_.floor == 1e-10
    # An independent oracle: scipy's orthonormal DCT-II across the bands of the log-mel power in dB.
    frames = AudioFeatures(representation="stats", floor=1e-10).fit(train).frames(train.subset([0]))[0]
    frames = frames.astype(np.float64)
    cepstra = dct(10 * np.log10(np.e) * frames, type=2, norm="ortho", axis=1)[:, :13]
    np.testing.assert_allclose(rows[0][:13], cepstra.mean(axis=0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(rows[0][13:], cepstra.std(axis=0), rtol=1e-4, atol=1e-3)
    with pytest.raises(ParameterError, match="n_mfcc"):
        AudioFeatures(representation="mfcc", n_mfcc=41).fit(train)
    # Through a detector: ranks the odd word, saves n_mfcc, loads to identical scores.
    train = train.subset(np.arange(len(train)))
    train.features = AudioFeatures(representation="mfcc", n_mfcc=13)
    detector = oddkit.KNNDetector(n_neighbors=1).fit(train)
    scores = detector.decision_function(test)
    assert detector.n_features_in_ == 26 and roc_auc(y, scores) >= 0.9
    detector.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["preprocessor"]["features"]
    assert saved["representation"] == "mfcc" and saved["n_mfcc"] == 13 and saved["log_mel"]["floor"] == 1e-10
    np.testing.assert_array_equal(oddkit.load(tmp_path / "m").decision_function(test), scores)


def test_folders_saved_before_mfcc_still_load(split):
    """Audio settings saved before the MFCC representation existed have no 'n_mfcc'."""
    train, _, _ = split
    pre = AudioPreprocessor(AudioFeatures(representation="stats")).fit(train)
    arrays, meta = pre.get_state()
    old = json.loads(json.dumps(meta))
    del old["features"]["n_mfcc"]
    np.testing.assert_array_equal(AudioPreprocessor.from_state(arrays, old).transform(train), pre.transform(train))
    old["features"]["representation"] = "mfcc"  # an MFCC model always saved its n_mfcc
    with pytest.raises(ModelFileError, match="keys"):
        AudioPreprocessor.from_state(arrays, old)


@pytest.mark.parametrize("make", [
    lambda: oddkit.AutoEncoderDetector(epochs=20, random_state=0, verbose=0),
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
    saved = config["preprocessor"]
    assert saved["kind"] == "audio" and saved["features"]["log_mel"]["sample_rate"] == 8000
    back = oddkit.load(tmp_path / "m")
    np.testing.assert_array_equal(back.decision_function(test), scores)
    # Recordings at another rate are resampled to the model's 8 kHz (saying so) and still ranked.
    with pytest.warns(ResampledAudioWarning, match="resampled to the model's 8,000 Hz"):
        assert roc_auc(y, back.decision_function(test.resampled(16000))) >= 0.9


def test_the_default_on_recordings_is_the_local_outlier_factor(split):
    # benchmarks/AUDIO_SCORER.md: fitted on one row per recording, the default members give way to
    # LOF over 10 neighbours; frames (many rows per recording) and named members keep theirs.
    train, test, y = split
    detector = oddkit.default_detector(random_state=0).fit(train)
    assert [type(m).__name__ for m in detector.members_] == ["LOFDetector"]
    assert detector.members_[0].n_neighbors_ == 10
    alone = oddkit.LOFDetector(n_neighbors=10).fit(train)
    assert roc_auc(y, detector.decision_function(test)) == pytest.approx(roc_auc(y, alone.decision_function(test)))
    framed = train.subset(np.arange(len(train)))
    framed.features = AudioFeatures(representation="frames", context=1)
    frames_model = oddkit.default_detector(random_state=0).fit(framed)
    assert [type(m).__name__ for m in frames_model.members_] == ["KNNDetector", "KNNDetector", "GaussianDetector"]
    named = oddkit.EnsembleDetector(members=("knn1", "lof10"), random_state=0).fit(train)
    assert [type(m).__name__ for m in named.members_] == ["KNNDetector", "LOFDetector"]


def test_info_the_service_and_the_model_card_name_the_fitted_members(tmp_path, monkeypatch, capsys, split):
    # The default's members parameter still reads knn1, knn1-sub16, gaussian-robust25 on recordings; what it
    # fitted, LOF over 10 neighbours, is what the front ends must show.
    from fastapi.testclient import TestClient

    from conftest import run_cli as run
    from oddkit.report.html import _model_card
    from oddkit.serve import create_app

    train, _, _ = split
    oddkit.default_detector(random_state=0).fit(train).save(tmp_path / "m")
    model = oddkit.load(tmp_path / "m")
    code, out, err = run(monkeypatch, capsys, "info", tmp_path / "m")
    assert code == 0, err
    assert "fitted members LOFDetector(n_neighbors=10)" in " ".join(out.replace("│", " ").split())
    assert TestClient(create_app(model)).get("/model").json()["members"] == ["LOFDetector(n_neighbors=10)"]
    assert _model_card(model, tmp_path / "m", None, model.threshold_, None)["members"] == [
        "LOFDetector(n_neighbors=10)"]
    assert "members" not in TestClient(create_app(oddkit.LOFDetector(n_neighbors=10).fit(train))).get(
        "/model").json()


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
    table_model = oddkit.GaussianDetector().fit(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(ColumnMismatchError, match="table"):
        table_model.decision_function(test)


def _with_tone(recordings, hz=3000.0, amplitude=0.3):
    """The recordings with a steady tone added (a hum at HZ: one mel band's energy raised)."""
    from oddkit.data.audio import AudioData

    waves = [w + (amplitude * np.sin(2 * np.pi * hz * np.arange(len(w)) / recordings.sample_rate)).astype(np.float32)
             for w in recordings.waveforms]
    return AudioData(waves, recordings.sample_rate, recordings.labels.copy(), None)


@pytest.mark.parametrize("make", [
    lambda: oddkit.GaussianDetector(),
    lambda: oddkit.AutoEncoderDetector(epochs=20, random_state=0, verbose=0),
], ids=["gaussian", "autoencoder"])
def test_explain_puts_a_planted_tone_in_its_mel_band(split, make):
    from oddkit.data.audio_features import explain_recordings

    train, test, _ = split
    train = train.subset(np.arange(len(train)))
    train.features = AudioFeatures(representation="stats")  # per mel band
    detector = make().fit(train)
    normal = test.subset(test.labels["word"].to_numpy() < 2)
    hummed = _with_tone(normal.subset([0, 1, 2]))
    features = detector.preprocessor_.features_
    lo, hi = features.band_edges().T
    tone_bands = {features.feature_groups("band")[i] for i in np.flatnonzero((lo < 3000) & (hi > 3000))}
    shares = explain_recordings(detector, hummed)
    assert list(shares.index) == list(hummed.labels["file"])
    assert shares.shape[1] == 41 and shares.columns[-1] == "duration"
    assert set(shares.idxmax(axis=1)) <= tone_bands, shares.idxmax(axis=1)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-6)
    # The per-feature shares underneath: the tone raises the band's mean energy.
    per_feature = detector.explain(hummed)
    assert per_feature.shape == (3, 121) and per_feature.idxmax(axis=1).str.endswith("_mean").all()
    by_statistic = explain_recordings(detector, hummed, by="statistic")
    assert list(by_statistic.columns) == ["mean", "std", "delta_std", "duration"]
    assert (by_statistic.idxmax(axis=1) == "mean").all()
    with pytest.raises(ParameterError, match="segment"):
        explain_recordings(detector, hummed, by="segment")


def test_explain_on_patch_and_mfcc_models_names_segments_and_coefficients(split):
    from oddkit.data.audio_features import explain_recordings

    train, test, _ = split
    patch_train = train.subset(np.arange(len(train)))
    patch_train.features = AudioFeatures(representation="patch", n_frames=4)
    detector = oddkit.KNNDetector(n_neighbors=1).fit(patch_train)
    # A burst of noise over the last 15 % of each recording: the last time step (the patch's last
    # frame, which the burst covers) carries the score.
    clicked = test.subset([0, 1, 2])
    clicked.waveforms = [w.copy() for w in clicked.waveforms]
    for w in clicked.waveforms:
        end = len(w)
        w[int(0.85 * end):] += np.random.default_rng(0).normal(0, 0.5, end - int(0.85 * end))
    segments = explain_recordings(detector, clicked, by="segment")
    assert list(segments.columns) == ["t0 of 4", "t1 of 4", "t2 of 4", "t3 of 4"]
    assert (segments.idxmax(axis=1) == "t3 of 4").all(), segments
    mfcc_train = train.subset(np.arange(len(train)))
    mfcc_train.features = AudioFeatures(n_mfcc=10)  # the default representation
    mfcc_model = oddkit.GaussianDetector().fit(mfcc_train)
    coefficients = explain_recordings(mfcc_model, test.subset([0]))  # an MFCC model's default: per coefficient
    assert list(coefficients.columns) == [f"mfcc{i}" for i in range(10)]
    assert explain_recordings(mfcc_model, test.subset([0]), by="coefficient").equals(coefficients)
    assert mfcc_model.preprocessor_.features_.groupings() == ("coefficient", "statistic", "feature")
    with pytest.raises(ParameterError, match="not mel bands.*group by coefficient, statistic, feature"):
        explain_recordings(mfcc_model, test.subset([0]), by="band")
    with pytest.raises(ParameterError, match="not cepstral coefficients.*group by band, segment, feature"):
        explain_recordings(detector, clicked, by="coefficient")  # the patch model: log-mel bands


def test_saved_audio_settings_are_validated(split):
    train, _, _ = split
    pre = AudioPreprocessor().fit(train)
    arrays, meta = pre.get_state()
    clone = AudioPreprocessor.from_state(arrays, json.loads(json.dumps(meta)))
    np.testing.assert_array_equal(clone.transform(train), pre.transform(train))
    bad = json.loads(json.dumps(meta))
    bad["features"]["n_mfcc"] = 12  # no longer matches the saved columns
    with pytest.raises(ModelFileError, match="columns"):
        AudioPreprocessor.from_state(arrays, bad)
    bad = json.loads(json.dumps(meta))
    bad["features"]["log_mel"]["n_mels"] = 10  # fewer bands than the saved coefficients
    with pytest.raises(ModelFileError, match="n_mfcc"):
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
    model = fit_speech_units(data, codebook_size=16, epochs=8, random_state=0)
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


def test_cli_fit_audio_features_picks_the_representation_and_info_shows_it(monkeypatch, capsys, recording_folders,
                                                                          tmp_path):
    import pandas as pd

    from conftest import run_cli as run
    from oddkit.data.audio import read_audio

    root = recording_folders
    expected = {"mfcc": ("mfcc: mean and standard deviation of 20 MFCCs of 40 log-mel bands (40 features)", 40),
                "stats": ("stats: per band of 40 log-mel bands: mean, standard deviation and frame-to-frame change; "
                          "and the duration (121 features)", 121),
                "patch": ("patch: the spectrogram of 40 log-mel bands resized to 32 frames (1,280 features)", 1280)}
    for representation, (words, width) in expected.items():
        code, out, err = run(monkeypatch, capsys, "fit", root / "train", "--detector", "gaussian", "--audio-features",
                             representation, "--out", tmp_path / representation)
        assert code == 0, err
        assert words in " ".join(out.split())
        model = oddkit.load(tmp_path / representation)
        features = model.preprocessor_.features_
        assert features.representation == representation and model.n_features_in_ == width
        config = json.loads((tmp_path / representation / "config.json").read_text())
        assert json.dumps(config).count(f'"representation": "{representation}"') == 1  # saved with the model
        code, out, err = run(monkeypatch, capsys, "info", tmp_path / representation)
        assert code == 0, err
        flat = " ".join(out.replace("│", " ").split())  # the table may fold a long value over lines
        assert f"audio features {words}" in flat and "input recordings at 8,000 Hz" in flat
        # The saved representation is the one scoring uses: the CLI's scores are the library's.
        code, _, err = run(monkeypatch, capsys, "score", tmp_path / representation, root / "test", "--out",
                           tmp_path / f"{representation}.csv")
        assert code == 0, err
        train = read_audio(root / "train")
        train.features = AudioFeatures(representation=representation)
        np.testing.assert_allclose(pd.read_csv(tmp_path / f"{representation}.csv")["score"],
                                   oddkit.GaussianDetector().fit(train).decision_function(read_audio(root / "test")),
                                   rtol=1e-5)
    # Without the flag: the library's default (MFCCs).
    code, out, err = run(monkeypatch, capsys, "fit", root / "train", "--detector", "gaussian", "--out",
                         tmp_path / "default")
    assert code == 0 and expected["mfcc"][0] in " ".join(out.split()), err
    # Refused: an unknown value, frames (one row per frame), a table, the voice model.
    code, _, err = run(monkeypatch, capsys, "fit", root / "train", "--audio-features", "cepstrum", "--out",
                       tmp_path / "x")
    assert code == 2 and "mfcc, stats, patch" in err and "cepstrum" in err
    code, _, err = run(monkeypatch, capsys, "fit", root / "train", "--audio-features", "frames", "--out",
                       tmp_path / "x")
    assert code == 2 and "scores frames" in err and "--audio-features mfcc, stats, patch" in err
    pd.DataFrame({"a": [1.0, 2.0, 3.0]}).to_csv(tmp_path / "t.csv", index=False)
    code, _, err = run(monkeypatch, capsys, "fit", tmp_path / "t.csv", "--audio-features", "stats", "--out",
                       tmp_path / "x")
    assert code == 2 and "leave it out" in err
    code, _, err = run(monkeypatch, capsys, "fit", root / "train", "--detector", "voice", "--audio-features", "stats",
                       "--out", tmp_path / "x")
    assert code == 2 and "leave --audio-features out" in err
    assert not (tmp_path / "x").exists()


def test_cli_explain_on_recordings_names_the_band_of_a_planted_tone(monkeypatch, capsys, recording_folders,
                                                                     tmp_path):
    import pandas as pd

    from conftest import run_cli as run
    from oddkit.data.audio import read_audio, write_recordings

    root = recording_folders
    train = read_audio(root / "train")
    train.features = AudioFeatures(representation="stats")  # per mel band (the default MFCCs: per coefficient)
    oddkit.GaussianDetector().fit(train).save(tmp_path / "m")
    normal = read_audio(root / "test" / "normal")
    hummed = _with_tone(normal.subset([0, 1]))
    hummed.labels["file"] = [f"hum_{i}.wav" for i in range(2)]
    quiet = normal.subset([2, 3])
    write_recordings(hummed, tmp_path / "mixed")
    write_recordings(quiet, tmp_path / "mixed")
    code, out, err = run(monkeypatch, capsys, "explain", tmp_path / "m", tmp_path / "mixed", "--top", 2,
                         "--out", tmp_path / "e.csv")
    assert code == 0, err
    assert "2 highest-scoring of 4 recordings" in out
    frame = pd.read_csv(tmp_path / "e.csv")
    assert sorted(frame["file"]) == ["hum_0.wav", "hum_1.wav"]  # the hummed recordings score highest
    assert frame["top_band"].str.endswith("Hz)").all()
    low, high = (float(v) for v in frame["top_band"][0].split("(")[1].split(" Hz")[0].split("-"))
    assert low < 3000 < high
    shares = frame.filter(like="share_")
    assert shares.shape[1] == 41 and np.allclose(shares.sum(axis=1), 1.0)
    code, out, err = run(monkeypatch, capsys, "explain", tmp_path / "m", tmp_path / "mixed", "--by", "statistic",
                         "--out", "-")
    assert code == 0, err
    assert "top_statistic" in out.splitlines()[0]
    code, _, err = run(monkeypatch, capsys, "explain", tmp_path / "m", tmp_path / "mixed", "--by", "segment",
                       "--out", tmp_path / "x.csv")
    assert code == 2 and "use --by band, --by statistic, --by feature" in " ".join(err.split())
    code, _, err = run(monkeypatch, capsys, "explain", tmp_path / "m", tmp_path / "mixed", "--by", "coefficient",
                       "--out", tmp_path / "x.csv")
    assert code == 2 and "not cepstral coefficients" in " ".join(err.split())
    # An MFCC model (the default features): the CSV names its groups coefficients, and --by band is
    # refused with the values that work.
    code, out, err = run(monkeypatch, capsys, "fit", root / "train", "--detector", "gaussian", "--out",
                         tmp_path / "mfcc")
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "explain", tmp_path / "mfcc", tmp_path / "mixed", "--top", 2,
                         "--out", tmp_path / "c.csv")
    assert code == 0, err
    frame = pd.read_csv(tmp_path / "c.csv")
    assert "top_band" not in frame and frame["top_coefficient"].str.fullmatch(r"mfcc\d+").all()
    assert list(frame.filter(like="share_").columns) == [f"share_mfcc{i}" for i in range(20)]
    assert "shares per coefficient" in " ".join(out.split())
    code, out, err = run(monkeypatch, capsys, "explain", tmp_path / "mfcc", tmp_path / "mixed", "--top", 2,
                         "--by", "coefficient", "--out", "-")
    assert code == 0 and out.splitlines()[0].startswith("file,group,score,label,top_coefficient,share_mfcc0"), err
    code, _, err = run(monkeypatch, capsys, "explain", tmp_path / "mfcc", tmp_path / "mixed", "--by", "band",
                       "--out", tmp_path / "y.csv")
    err = " ".join(err.split())
    assert code == 2 and "not mel bands" in err and "use --by coefficient, --by statistic, --by feature" in err
    assert not (tmp_path / "y.csv").exists()


def test_cli_fit_audio_bandwidth_makes_a_rate_independent_model(monkeypatch, capsys, recording_folders, tmp_path):
    """--audio-bandwidth 0.9 stops the features at 0.9 of the Nyquist frequency (saved with the model);
    a whole-band model scoring recordings made at 16 kHz warns in one line and names that flag;
    bad values and a table are refused."""
    import pandas as pd

    from conftest import run_cli as run
    from oddkit.data.audio import read_audio, write_recordings

    root = recording_folders
    code, _, err = run(monkeypatch, capsys, "fit", root / "train", "--detector", "gaussian", "--audio-bandwidth", "0.9",
                       "--out", tmp_path / "band")
    assert code == 0, err
    assert oddkit.load(tmp_path / "band").preprocessor_.features_.log_mel_.fmax == 0.9 * 8000 / 2
    write_recordings(read_audio(root / "test").resampled(16000), tmp_path / "at16k")
    code, _, err = run(monkeypatch, capsys, "score", tmp_path / "band", tmp_path / "at16k", "--out", tmp_path / "b.csv")
    assert code == 0 and "resampl" not in err, err
    code, _, err = run(monkeypatch, capsys, "fit", root / "train", "--detector", "gaussian", "--out", tmp_path / "whole")
    assert code == 0, err
    code, _, err = run(monkeypatch, capsys, "score", tmp_path / "whole", tmp_path / "at16k", "--out", tmp_path / "w.csv")
    assert code == 0 and "16,000 Hz" in err and "fit with --audio-bandwidth 0.9" in err, err
    for bad in ("0", "1.5"):
        code, _, err = run(monkeypatch, capsys, "fit", root / "train", "--audio-bandwidth", bad, "--out", tmp_path / "x")
        assert code == 2 and "(0, 1]" in err, err
    pd.DataFrame({"a": [1.0, 2.0, 3.0]}).to_csv(tmp_path / "t.csv", index=False)
    code, _, err = run(monkeypatch, capsys, "fit", tmp_path / "t.csv", "--audio-bandwidth", "0.9", "--out", tmp_path / "x")
    assert code == 2 and "--audio-bandwidth" in err and "leave it out" in err
