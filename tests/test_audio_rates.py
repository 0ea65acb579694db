"""Recordings at another sample rate than the model's: resampled to the model's rate. With
``AudioFeatures(bandwidth=0.9)`` they score as at that rate: the features leave out the band that
resampling alters (the resampler's transition band just below the Nyquist frequency), and the
silence trimming measures the same band. The default analyses the whole band (more accurate at the
model's own rate) and says so when it is given recordings made at another rate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("librosa")
pytest.importorskip("soundfile")

import oddkit  # noqa: E402
from oddkit.data.audio import AudioData, read_audio, resample, synthetic_speech, write_recordings  # noqa: E402
from oddkit.data.audio_features import (  # noqa: E402
    BANDWIDTH,
    AudioFeatures,
    AudioPreprocessor,
    ResampledAudioWarning,
    trim_silence,
)
from oddkit.data.datasets import shared_dataset_path  # noqa: E402
from oddkit.exceptions import ModelFileError, ParameterError  # noqa: E402
from oddkit.metrics import roc_auc  # noqa: E402

FSDD = shared_dataset_path("fsdd_spoken_digits")


def _written_at(recordings: AudioData, rate: int, folder: Path) -> AudioData:
    """``recordings`` resampled to ``rate`` by librosa (as a user's tool would), written as 16-bit WAV
    files and read back: the same sounds, stored at another rate."""
    waves = [resample(w, recordings.sample_rate, rate) for w in recordings.waveforms]
    write_recordings(AudioData(waves, rate, recordings.labels.copy()), folder)
    data = read_audio(folder)
    assert data.sample_rate == rate and data.labels["file"].tolist() == sorted(recordings.labels["file"])
    return data


@pytest.fixture(scope="module")
def split():
    """Words 0 and 1 are normal; word 2 is the odd sound. Test takes sorted by file (as read back)."""
    data = synthetic_speech(n_speakers=2, n_words=3, n_takes=8, seconds=0.3, random_state=0)
    labels = data.labels
    train = data.subset((labels["word"] < 2) & (labels["take"] < 5))
    test = data.subset(labels["take"] >= 5)
    test = test.subset(np.argsort(test.labels["file"].to_numpy(), kind="stable"))
    return train, test, (test.labels["word"] == 2).to_numpy().astype(int)


def _band_limited(train: AudioData) -> AudioData:
    """``train`` with the rate-independent features, ``AudioFeatures(bandwidth=BANDWIDTH)``."""
    out = train.subset(np.arange(len(train)))
    out.features = AudioFeatures(bandwidth=BANDWIDTH)
    return out


def test_the_same_recordings_written_at_16_and_44_1_khz_score_as_at_8_khz(split, tmp_path):
    """The synthetic speech holds white noise up to the Nyquist frequency, as real recordings do:
    with features that used the top of the band, the copies at 16 and 44.1 kHz (brought back to the
    model's 8 kHz) moved the scores by up to 12 % of the scores' spread (2 % median of each score).
    What still differs is what no resampler keeps exactly: its pass-band ripple (under 0.2 dB below
    0.92 of the Nyquist frequency), the copies' own 16-bit rounding and the filter's ringing at the
    ends of a recording — measured at most 2.9 % of the spread, 0.1 % median; the bounds below (5 %
    and 0.5 %) sit between that and the defect."""
    train, test, y = split
    detector = oddkit.KNNDetector(n_neighbors=1).fit(_band_limited(train))
    native = detector.decision_function(_written_at(test, 8000, tmp_path / "r8000"))
    np.testing.assert_allclose(native, detector.decision_function(test), rtol=1e-3, atol=1e-3)  # 16-bit WAV only
    spread = native.std()
    for rate in (16000, 44100):
        scores = detector.decision_function(_written_at(test, rate, tmp_path / f"r{rate}"))
        gap = np.abs(scores - native)
        assert gap.max() < 0.05 * spread, (rate, gap.max() / spread)
        assert np.median(gap / native) < 0.005, (rate, np.median(gap / native))
        assert abs(roc_auc(y, scores) - roc_auc(y, native)) < 0.02


def test_the_whole_band_model_warns_of_recordings_made_at_another_rate(split, tmp_path):
    """The default analyses up to the Nyquist frequency: recordings read at another rate (resampled to
    the model's in the reader or by the model) score with a ResampledAudioWarning; recordings at the
    model's rate, or a band-limited model, score without one."""
    import warnings

    train, test, _ = split
    detector = oddkit.KNNDetector(n_neighbors=1).fit(train)
    assert detector.preprocessor_.features_.log_mel_.fmax == train.sample_rate / 2  # the whole band, as before
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResampledAudioWarning)
        detector.decision_function(test)
        detector.decision_function(_written_at(test, 8000, tmp_path / "r8000"))
        band_limited = oddkit.KNNDetector(n_neighbors=1).fit(_band_limited(train))
        band_limited.decision_function(_written_at(test, 16000, tmp_path / "r16000"))
    with pytest.warns(ResampledAudioWarning, match=rf"{len(test)} of {len(test)} recordings .*16,000 Hz.*8,000 Hz"):
        detector.decision_function(read_audio(tmp_path / "r16000"))
    # Read back at the model's rate by the reader itself: the rate they were made at is kept.
    at_model_rate = read_audio(tmp_path / "r16000", sample_rate=8000)
    assert at_model_rate.sample_rate == 8000 and set(at_model_rate.rates_read()) == {16000}
    with pytest.warns(ResampledAudioWarning):
        detector.decision_function(at_model_rate.subset([0, 1]))


def test_the_band_limited_features_stop_below_the_resamplers_transition_band(split, tmp_path):
    train, test, _ = split
    for rate in (8000, 16000):
        features = AudioFeatures(bandwidth=BANDWIDTH).fit(train.resampled(rate))
        assert features.log_mel_.fmax == BANDWIDTH * rate / 2 and features.trim_in_band_
    # An explicit fmax is kept, up to the Nyquist frequency.
    assert AudioFeatures(fmax=4000.0).fit(train).log_mel_.fmax == 4000.0
    with pytest.raises(ParameterError, match="fmax"):
        AudioFeatures(fmax=4100.0).fit(train)
    for bad in (0, 1.5, True, "0.9"):
        with pytest.raises(ParameterError, match="bandwidth"):
            AudioFeatures(bandwidth=bad).fit(train)
    # Saved with the model, and loaded as saved.
    detector = oddkit.GaussianDetector().fit(_band_limited(train))
    detector.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["preprocessor"]["features"]
    assert saved["log_mel"]["fmax"] == 3600.0 and saved["trim_in_band"] is True
    back = oddkit.load(tmp_path / "m")
    assert back.preprocessor_.features_.trim_in_band_
    np.testing.assert_array_equal(back.decision_function(test), detector.decision_function(test))
    # A round trip through 16 kHz in memory (no 16-bit rounding) barely moves the features, in
    # training spreads: median 0.002 and mean 0.008, against 0.14 and 0.26 up to the Nyquist frequency.
    features = detector.preprocessor_.features_
    rows, spread = features.transform(test), features.transform(train).std(axis=0)
    moved = np.abs(features.transform(test.resampled(16000)) - rows) / spread
    assert np.median(moved) < 0.01 and moved.mean() < 0.03, (np.median(moved), moved.mean())


def test_trimming_measures_the_analysed_band_only():
    """A tone above fmax (which resampling from another rate may remove) before the word does not
    move the cut; without the band it keeps the tone. The whole band is the mean square, as before."""
    rate, n_fft, hop = 8000, 256, 80
    word = synthetic_speech(n_speakers=1, n_words=1, n_takes=1, seconds=0.3, random_state=0).waveforms[0]
    time = np.arange(1600) / rate
    tone = (0.3 * np.sin(2 * np.pi * 3900.0 * time)).astype(np.float32)  # above 3600 Hz
    quiet = np.zeros(1600, np.float32)
    with_tone = np.concatenate([tone, quiet, word, quiet])
    plain = np.concatenate([quiet, quiet, word, quiet])
    band = trim_silence(with_tone, 30.0, n_fft, hop, max_frequency=3600.0, sample_rate=rate)
    assert len(band) == len(trim_silence(plain, 30.0, n_fft, hop, max_frequency=3600.0, sample_rate=rate))
    assert len(band) < len(word) + 2 * n_fft
    assert len(trim_silence(with_tone, 30.0, n_fft, hop)) > len(word) + 3000  # the whole band keeps the tone
    # At or above the Nyquist frequency: exactly the whole-band rule.
    for limit in (4000.0, 5000.0):
        np.testing.assert_array_equal(trim_silence(with_tone, 30.0, n_fft, hop, max_frequency=limit, sample_rate=rate),
                                      trim_silence(with_tone, 30.0, n_fft, hop))
    with pytest.raises(ParameterError, match="sample_rate"):
        trim_silence(with_tone, 30.0, n_fft, hop, max_frequency=3600.0)


def test_folders_saved_before_the_band_limited_trimming_trim_as_they_did(split):
    train, _, _ = split
    pre = AudioPreprocessor(AudioFeatures(fmax=3000.0)).fit(train)
    arrays, meta = pre.get_state()
    old = json.loads(json.dumps(meta))
    del old["features"]["trim_in_band"]
    back = AudioPreprocessor.from_state(arrays, old)
    assert not back.features_.trim_in_band_ and back.features_.get_config()["trim_in_band"] is False
    wave = np.concatenate([0.3 * np.sin(2 * np.pi * 3900.0 * np.arange(1600) / 8000), train.waveforms[0]])
    np.testing.assert_array_equal(back.features_.trimmed(wave.astype(np.float32)),
                                  trim_silence(wave, 30.0, 256, 80))
    bad = json.loads(json.dumps(meta))
    bad["features"]["trim_in_band"] = "yes"
    with pytest.raises(ModelFileError, match="keys"):
        AudioPreprocessor.from_state(arrays, bad)


@pytest.mark.skipif(FSDD is None, reason="../shared/data/fsdd_spoken_digits.npz is not available")
def test_fsdd_recordings_written_at_16_khz_score_as_at_8_khz(tmp_path):
    """Real speech: 100 FSDD recordings of five speakers train a nearest-neighbour detector; their
    held-out takes and a sixth speaker's, written at 16 kHz, score as at 8 kHz: the largest change
    5 % of the scores' spread, the median 0.08 % of a score, against 43 % and 0.8 % when the features
    reached the Nyquist frequency (bounds: 10 % and 0.3 %)."""
    fsdd = read_audio(FSDD)
    speaker, take = fsdd.labels["speaker"].to_numpy(), fsdd.labels["take"].to_numpy()
    train = fsdd.subset((speaker < 5) & (take >= 5) & (take < 7))
    test = fsdd.subset(((speaker < 5) & (take < 2)) | ((speaker == 5) & (take < 1)))
    test = test.subset(np.argsort(test.labels["file"].to_numpy(), kind="stable"))
    detector = oddkit.KNNDetector(n_neighbors=1).fit(_band_limited(train))
    native = detector.decision_function(test)
    scores = detector.decision_function(_written_at(test, 16000, tmp_path / "r16000"))
    gap = np.abs(scores - native)
    assert gap.max() < 0.1 * native.std() and np.median(gap / native) < 0.003, \
        (gap.max() / native.std(), np.median(gap / native))


def test_oddkit_score_resamples_a_mixed_folder_once_straight_to_the_models_rate(split, tmp_path, monkeypatch,
                                                                                capsys):
    """A folder mixing rates, mostly 16 kHz, scored by an 8 kHz model: 'oddkit score' used to read it at the
    folder's commonest rate (the 8 kHz file up to 16 kHz) and the model then brought everything back down,
    so the 8 kHz file was resampled twice. Now each file is resampled once, straight to the model's rate, as
    the scoring service does: the 8 kHz file scores exactly as on its own at its own rate, and the command
    still warns of the files made at another rate."""
    import shutil

    import pandas as pd

    from conftest import run_cli

    train, test, _ = split
    detector = oddkit.GaussianDetector().fit(train)
    detector.save(tmp_path / "model")
    folder = tmp_path / "mixed"
    _written_at(test.subset([0, 1]), 16000, tmp_path / "r16000")
    _written_at(test.subset([2]), 8000, tmp_path / "r8000")
    shutil.copytree(tmp_path / "r16000", folder)
    shutil.copytree(tmp_path / "r8000", folder, dirs_exist_ok=True)
    [own] = list((tmp_path / "r8000").rglob("*.wav"))
    assert read_audio(folder).sample_rate == 16000  # the commonest rate, which the command no longer reads at
    code, _, err = run_cli(monkeypatch, capsys, "score", tmp_path / "model", folder, "--out", tmp_path / "s.csv")
    assert code == 0, err
    assert "2 of 3 recordings were made at another rate (16,000 Hz)" in " ".join(err.split()), err
    scores = pd.read_csv(tmp_path / "s.csv").set_index("file")["score"]
    with pytest.warns(ResampledAudioWarning):
        expected = detector.decision_function(read_audio(folder, sample_rate=8000))
    np.testing.assert_array_equal(scores.to_numpy(), expected)
    alone = detector.decision_function(read_audio(own))
    [at] = [i for i, name in enumerate(scores.index) if str(name).endswith(own.name)]
    assert scores.iloc[at] == pytest.approx(alone[0], rel=1e-9)
