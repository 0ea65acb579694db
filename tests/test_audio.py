"""oddkit.data.audio: reading, writing, resampling, log-mel and its inverse, synthetic speech."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("librosa")
pytest.importorskip("soundfile")

from oddkit.data.audio import (  # noqa: E402
    AudioData,
    LogMel,
    as_waveforms,
    is_audio_source,
    read_audio,
    synthetic_speech,
    write_wav,
)
from oddkit.exceptions import (  # noqa: E402
    DataError,
    EmptyDataError,
    ModelFileError,
    NonFiniteError,
    ParameterError,
    UnreadableAudioError,
)


@pytest.fixture(scope="module")
def speech():
    return synthetic_speech(n_speakers=2, n_words=2, n_takes=2, seconds=0.25, random_state=0)


def test_synthetic_speech_shapes_labels_and_seed(speech):
    assert len(speech) == 8 and speech.sample_rate == 8000
    assert all(w.dtype == np.float32 and w.ndim == 1 for w in speech.waveforms)
    assert all(np.abs(w).max() <= 1.0 for w in speech.waveforms)
    assert speech.labels.columns.tolist() == ["file", "group", "speaker", "word", "take"]
    assert sorted(speech.labels["group"].unique()) == ["speaker0", "speaker1"]
    again = synthetic_speech(n_speakers=2, n_words=2, n_takes=2, seconds=0.25, random_state=0)
    assert all(np.array_equal(a, b) for a, b in zip(speech.waveforms, again.waveforms, strict=True))
    other = synthetic_speech(n_speakers=2, n_words=2, n_takes=2, seconds=0.25, random_state=1)
    assert not np.array_equal(speech.waveforms[0][:100], other.waveforms[0][:100])


def test_speakers_differ_in_pitch(speech):
    # The speaker sets the fundamental (95 Hz, then x1.35): measured by YIN, an independent estimator.
    import librosa

    f0 = [float(np.median(librosa.yin(w, fmin=60, fmax=400, sr=8000, frame_length=512))) for w in speech.waveforms]
    s0 = [f for f, s in zip(f0, speech.labels["speaker"], strict=True) if s == 0]
    s1 = [f for f, s in zip(f0, speech.labels["speaker"], strict=True) if s == 1]
    assert all(85 < f < 110 for f in s0) and all(115 < f < 145 for f in s1)


def test_write_read_wav_round_trip_and_resampling(tmp_path, speech):
    wave = speech.waveforms[0]
    path = tmp_path / "one.wav"
    write_wav(path, wave, 8000)
    back = read_audio(path)
    assert back.sample_rate == 8000 and len(back) == 1
    assert back.labels.to_dict("records") == [{"file": "one.wav", "group": ""}]
    np.testing.assert_allclose(back.waveforms[0], wave, atol=1.0 / 32768 + 1e-6)  # 16-bit PCM
    up = read_audio(path, sample_rate=16000)
    assert up.sample_rate == 16000
    assert abs(len(up.waveforms[0]) - 2 * len(wave)) <= 2
    # A 440 Hz tone keeps its pitch through resampling.
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)).astype(np.float32)
    write_wav(tmp_path / "tone.wav", tone, 8000)
    resampled = read_audio(tmp_path / "tone.wav", sample_rate=11025).waveforms[0]
    freqs = np.fft.rfftfreq(len(resampled), 1 / 11025)
    assert abs(freqs[np.argmax(np.abs(np.fft.rfft(resampled)))] - 440) < 5


def test_read_folder_groups_and_mixed_rates(tmp_path, speech):
    for i, (wave, row) in enumerate(zip(speech.waveforms, speech.labels.itertuples(), strict=True)):
        write_wav(tmp_path / row.group / f"{i}.wav", wave, 8000)
    import soundfile

    soundfile.write(tmp_path / "speaker1" / "stereo16k.flac",
                    np.stack([speech.waveforms[0]] * 2, axis=1)[::1], 16000)
    data = read_audio(tmp_path)
    assert is_audio_source(tmp_path)
    assert len(data) == 9 and data.sample_rate == 8000  # the rate most files have
    assert data.labels["group"].value_counts().to_dict() == {"speaker1": 5, "speaker0": 4}
    flac = data.labels.index[data.labels["file"] == "speaker1/stereo16k.flac"][0]
    assert data.waveforms[flac].ndim == 1  # stereo mixed down
    assert abs(len(data.waveforms[flac]) - len(speech.waveforms[0]) // 2) <= 2  # 16 kHz -> 8 kHz


def test_read_fsdd_npz_layout(tmp_path):
    pieces = [np.full(n, v, dtype=np.int16) for n, v in ((100, 16384), (50, -32768), (70, 0))]
    path = tmp_path / "digits.npz"
    np.savez(path, audio=np.concatenate(pieces), offsets=np.array([0, 100, 150, 220]),
             digit=np.array([3, 4, 3], dtype=np.int8), speaker=np.array([1, 0, 1], dtype=np.int8),
             take=np.array([0, 7, 2]), sample_rate=np.int32(8000),
             files=np.array(["3_b_0.wav", "4_a_7.wav", "3_b_2.wav"]), speaker_names=np.array(["a", "b"]))
    data = read_audio(path)
    assert [len(w) for w in data.waveforms] == [100, 50, 70]
    assert data.waveforms[0][0] == pytest.approx(0.5) and data.waveforms[1][0] == pytest.approx(-1.0)
    assert data.labels.columns.tolist() == ["file", "group", "digit", "speaker", "take"]
    assert data.labels["group"].tolist() == ["b", "a", "b"]
    assert data.labels["digit"].tolist() == [3, 4, 3]
    assert is_audio_source(path) and not is_audio_source(tmp_path / "missing.csv")
    assert len(data.subset(data.labels["digit"] == 3)) == 2


@pytest.mark.parametrize("content", [b"", b"RIFF\x24\x00\x00\x00WAVEfmt garbage", b"not audio at all" * 10])
def test_damaged_file_names_the_file(tmp_path, content):
    bad = tmp_path / "voices" / "broken.wav"
    bad.parent.mkdir()
    bad.write_bytes(content)
    with pytest.raises(UnreadableAudioError, match="broken.wav"):
        read_audio(bad)
    with pytest.raises(UnreadableAudioError, match="broken.wav"):
        read_audio(tmp_path)


def test_empty_recording_and_empty_folder(tmp_path):
    import soundfile

    soundfile.write(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(UnreadableAudioError, match="silent.wav.*no samples"):
        read_audio(tmp_path / "silent.wav")
    (tmp_path / "none").mkdir()
    with pytest.raises(EmptyDataError, match="no .wav/.flac files"):
        read_audio(tmp_path / "none")
    with pytest.raises(NonFiniteError):
        write_wav(tmp_path / "x.wav", np.array([0.0, np.nan]), 8000)


def test_log_mel_shapes_defaults_and_config_round_trip(speech):
    mel = LogMel()
    assert (mel.n_fft, mel.hop_length, mel.n_mels, mel.fmax) == (256, 80, 40, 4000.0)
    assert (LogMel(16000).n_fft, LogMel(16000).hop_length) == (512, 160)
    frames = mel.transform(speech)
    assert len(frames) == len(speech)
    for f, w in zip(frames, speech.waveforms, strict=True):
        assert f.dtype == np.float32 and f.shape == (1 + len(w) // 80, 40)
        assert np.all(np.isfinite(f)) and f.min() >= np.log(mel.floor) - 1e-4
    config = json.loads(json.dumps(mel.get_config()))
    assert LogMel.from_config(config) == mel
    # Same recordings at 16 kHz are resampled to the LogMel's 8 kHz: nearly the same spectrogram.
    resampled = mel.transform(speech.resampled(16000))
    assert np.corrcoef(resampled[0][2:-2].ravel(), frames[0][2:-2].ravel())[0, 1] > 0.98


def test_log_mel_from_config_validates():
    good = LogMel().get_config()
    with pytest.raises(ModelFileError, match="keys"):
        LogMel.from_config({**good, "extra": 1})
    with pytest.raises(ModelFileError, match="fmax"):
        LogMel.from_config({**good, "fmax": 9000.0})
    with pytest.raises(ModelFileError, match="n_fft"):
        LogMel.from_config({**good, "n_fft": "256"})
    with pytest.raises(ParameterError, match="sample_rate"):
        LogMel(sample_rate=0)


def test_griffin_lim_inverse_resembles_the_input(speech):
    mel = LogMel()
    original = speech.waveforms[0]
    frames = mel.transform_one(original)
    wave = mel.inverse(frames, n_iter=32, length=len(original))
    assert wave.shape == original.shape and wave.dtype == np.float32
    again = mel.transform_one(wave)
    # The spectrogram of the reconstruction tracks the input's far better than another word's does.
    other = mel.transform_one(speech.waveforms[2][: len(original)])
    n = min(len(frames), len(other))
    err_self = np.mean((again[:n] - frames[:n]) ** 2)
    err_other = np.mean((other[:n] - frames[:n]) ** 2)
    assert err_self < 0.5 * err_other
    np.testing.assert_array_equal(wave, mel.inverse(frames, n_iter=32, length=len(original)))


def test_as_waveforms_errors():
    with pytest.raises(EmptyDataError):
        as_waveforms([], 8000)
    with pytest.raises(DataError, match="recording 1"):
        as_waveforms([np.zeros(10), np.zeros((2, 2))], 8000)
    with pytest.raises(DataError, match="read_audio"):
        as_waveforms("speech.wav", 8000)
    data = AudioData([np.zeros(10, dtype=np.float32)], 8000, synthetic_speech(1, 1, 1, seconds=0.05).labels)
    assert len(as_waveforms(data, 8000)) == 1
