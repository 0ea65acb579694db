"""Voice conversion from or to a silent recording: refused with a message that names the recording,
its level and the fix (a silent source came out, with no message, as faint sound without words:
on FSDD 13 dB below a conversion of speech); a very quiet one is converted with a warning; scoring
silence is not refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("librosa")
pytest.importorskip("torch")

from conftest import run_cli  # noqa: E402

from oddkit.data.audio import synthetic_speech, write_wav  # noqa: E402
from oddkit.detectors.voice import QUIET_DB, SILENT_DB, QuietRecordingWarning, VoiceConversion  # noqa: E402
from oddkit.exceptions import DataError, OddkitWarning  # noqa: E402

TINY = {"channels": 8, "speaker_dim": 8, "segment_frames": 8, "epochs": 2, "random_state": 0, "verbose": 0,
        "n_threads": 1}
RATE = 8000


@pytest.fixture(scope="module")
def speech():
    return synthetic_speech(n_speakers=2, n_words=2, n_takes=2, seconds=0.3, random_state=0)


@pytest.fixture(scope="module")
def model(speech):
    return VoiceConversion(**TINY).fit(speech)


def _noise(level_dbfs: float, n: int) -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 10 ** (level_dbfs / 20), n).astype(np.float32)


@pytest.mark.parametrize("silence", ["zeros", "noise at -80 dBFS", "speech 60 dB down"])
def test_a_silent_source_is_refused_with_its_level_and_the_fix(model, speech, silence):
    source = speech.waveforms[0]
    quiet = {"zeros": np.zeros_like(source), "noise at -80 dBFS": _noise(-80, len(source)),
             "speech 60 dB down": source * 1e-3}[silence]
    for convert in (model.convert, model.convert_spectrogram):
        with pytest.raises(DataError, match=r"^source is silent: .*no words in it to convert.*raise its level"):
            convert(quiet, speech.waveforms[-1], sample_rate=RATE)
    with pytest.raises(DataError, match="digital silence" if silence == "zeros" else r"reach -\d+ dBFS"):
        model.convert(quiet, speech.waveforms[-1], sample_rate=RATE)


def test_a_silent_reference_is_refused(model, speech):
    with pytest.raises(DataError, match=r"^reference is silent: .*no voice in it to take"):
        model.convert(speech.waveforms[0], np.zeros(2000, np.float32), sample_rate=RATE)
    with pytest.raises(DataError, match=r"^reference is silent"):
        model.convert(speech.waveforms[0], _noise(-80, 2000), sample_rate=RATE)


def test_a_very_quiet_source_is_converted_with_a_warning(model, speech):
    source, reference = speech.waveforms[0], speech.waveforms[-1]
    with pytest.warns(QuietRecordingWarning, match=r"^source is very quiet .*raise its level") as record:
        wave = model.convert(source * 0.01, reference, sample_rate=RATE)  # 40 dB down: ~12 dB above the floor
    assert issubclass(record[0].category, OddkitWarning)
    assert wave.shape == source.shape and np.isfinite(wave).all()
    with pytest.warns(QuietRecordingWarning, match=r"^reference is very quiet"):
        model.convert(source, reference * 0.01, sample_rate=RATE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # speech at its own level: no warning
        model.convert(source, reference, sample_rate=RATE)
    assert SILENT_DB < QUIET_DB


def test_silence_is_scored_as_an_anomaly(model, speech):
    """Scoring is not conversion: a recording silent to the model is scored, without an error or a
    warning, at least out_of_range_score() (an anomaly: no speech in it, however easily the model
    rebuilds its flat spectrogram); speech keeps its reconstruction score."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = model.decision_function([np.zeros(2400, np.float32), _noise(-80, 2400)], sample_rate=RATE)
        spoken = model.decision_function(speech.subset([0, 1]))
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert (scores >= model.out_of_range_score()).all() and model.predict(
        [np.zeros(2400, np.float32)], sample_rate=RATE).tolist() == [1]
    assert (spoken < model.out_of_range_score()).all()


def test_cli_convert_refuses_a_silent_file_in_one_line(model, speech, monkeypatch, capsys, tmp_path):
    model.save(tmp_path / "vc")
    write_wav(tmp_path / "silent.wav", np.zeros(2400, np.float32), RATE)
    write_wav(tmp_path / "ref.wav", speech.waveforms[-1], RATE)
    out = tmp_path / "out.wav"
    code, _, err = run_cli(monkeypatch, capsys, "convert", tmp_path / "vc", tmp_path / "silent.wav",
                           tmp_path / "ref.wav", "--out", out)
    assert code != 0 and "Traceback" not in err and not out.exists()
    assert "source silent.wav is silent: digital silence" in err
    code, _, err = run_cli(monkeypatch, capsys, "convert", tmp_path / "vc", tmp_path / "ref.wav",
                           tmp_path / "silent.wav", "--out", out)
    assert code != 0 and "reference silent.wav is silent" in err and not out.exists()
    write_wav(tmp_path / "quiet.wav", speech.waveforms[0] * 0.01, RATE)
    code, _, err = run_cli(monkeypatch, capsys, "convert", tmp_path / "vc", tmp_path / "quiet.wav",
                           tmp_path / "ref.wav", "--out", out)
    assert code == 0 and out.exists()
    assert "warning: source quiet.wav is very quiet" in err and "Traceback" not in err


def test_recordings_made_at_another_rate_warn(model, speech):
    """The voice model's spectrogram reaches the Nyquist frequency, which resampling alters: scoring
    or converting recordings made at another rate says so; at the model's rate it is silent."""
    from oddkit.data.audio import resample
    from oddkit.data.audio_features import ResampledAudioWarning

    wave = speech.waveforms[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResampledAudioWarning)
        model.decision_function([wave], sample_rate=RATE)
    with pytest.warns(ResampledAudioWarning, match=r"1 of 1 recordings .*16,000 Hz"):
        model.decision_function([resample(wave, RATE, 16000)], sample_rate=16000)
    with pytest.warns(ResampledAudioWarning):
        model.decision_function(speech.resampled(16000).subset([0, 1]))
