"""Recordings shorter than the networks' two frames, and shorter than one FFT window: voice
conversion scores, explains, converts and fits them (a frame repeated, as training pads), and no
librosa warning reaches the user; 'oddkit embed' and 'compress' on a model fitted on recordings."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("librosa")
pytest.importorskip("torch")

from conftest import run_cli  # noqa: E402

from oddkit.data.audio import AudioData, LogMel, synthetic_speech, write_recordings, write_wav  # noqa: E402
from oddkit.detectors.voice import MIN_FRAMES, VoiceConversion  # noqa: E402

TINY = {"channels": 8, "speaker_dim": 8, "segment_frames": 8, "epochs": 1, "random_state": 0, "verbose": 0,
        "n_threads": 1}


@pytest.fixture(scope="module")
def speech():
    return synthetic_speech(n_speakers=2, n_words=2, n_takes=2, seconds=0.2, random_state=0)


@pytest.fixture(scope="module")
def model(speech):
    return VoiceConversion(**TINY).fit(speech)


def _tiny(speech, samples: int) -> np.ndarray:
    """``samples`` samples from the middle of a word (its start fades in: too quiet to convert)."""
    wave = speech.waveforms[0]
    return wave[len(wave) // 2:len(wave) // 2 + samples].copy()


def test_a_clip_shorter_than_one_hop_is_scored_explained_and_converted(model, speech):
    hop = model.log_mel_.hop_length
    tiny = _tiny(speech, 10)
    assert len(LogMel(speech.sample_rate).transform([tiny])[0]) < MIN_FRAMES  # one frame: the network's edge
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # librosa's "n_fft is too large" included
        score = model.decision_function([tiny], sample_rate=speech.sample_rate)
        assert score.shape == (1,) and np.isfinite(score).all()
        why = model.explain([tiny], sample_rate=speech.sample_rate)
        assert why.shape[0] == 1 and np.isclose(why.to_numpy().sum(), 1.0)
        wave = model.convert(tiny, speech.waveforms[-1], sample_rate=speech.sample_rate)
        assert wave.shape == (10,) and np.isfinite(wave).all()
        assert model.convert_spectrogram(tiny, speech.waveforms[-1], sample_rate=speech.sample_rate).shape == \
            (1, model.n_features_in_)
        back = model.convert(speech.waveforms[0], tiny, sample_rate=speech.sample_rate)  # tiny reference
        assert back.shape == speech.waveforms[0].shape
        assert model.content_codes([tiny], sample_rate=speech.sample_rate)[0].shape == (1, model.content_dim)
        assert model.speaker_embedding([tiny], sample_rate=speech.sample_rate).shape == (1, model.speaker_dim)
    # The network sees the clip's frame repeated; the output kept is that of the clip's own frame.
    frames = model._frames([tiny])
    twice = [np.repeat(frames[0], MIN_FRAMES, axis=1)]
    assert np.allclose(model._run(model.model_, frames)[0], model._run(model.model_, twice)[0][:, :1])
    # A clip of exactly one hop has two frames and takes the ordinary path.
    assert model.decision_function([_tiny(speech, hop)], sample_rate=speech.sample_rate).shape == (1,)


def test_fit_takes_a_tiny_clip_among_the_training_recordings(speech):
    waves = [*speech.waveforms, _tiny(speech, 10)]
    labels = pd.DataFrame({"file": [f"r{i}.wav" for i in range(len(waves))], "group": ""})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vc = VoiceConversion(**TINY).fit(AudioData(waves, speech.sample_rate, labels))
    assert vc.decision_scores_.shape == (len(waves),) and np.isfinite(vc.decision_scores_).all()


def test_log_mel_of_a_clip_shorter_than_the_fft_window_is_quiet_and_centred():
    mel = LogMel(8000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frames = mel.transform([np.full(10, 0.1, np.float32)])[0]
        assert frames.shape == (1, mel.n_mels) and np.isfinite(frames).all()
        assert mel.inverse(frames, n_iter=2, length=10).shape == (10,)
    # Only that warning is silenced, and only for short signals: others still reach the caller.
    with pytest.warns(UserWarning, match="too large"):
        import librosa

        librosa.stft(np.zeros(10, np.float32), n_fft=256)


def test_cli_scores_a_folder_holding_a_tiny_clip(model, speech, monkeypatch, capsys, tmp_path):
    model.save(tmp_path / "vc")
    folder = tmp_path / "clips"
    write_recordings(speech, folder)
    write_wav(folder / "tiny.wav", _tiny(speech, 10), speech.sample_rate)
    code, out, err = run_cli(monkeypatch, capsys, "score", tmp_path / "vc", folder, "--out", "-")
    assert code == 0, err
    assert "tiny.wav" in out and "Warning" not in err and "Traceback" not in err
    code, out, err = run_cli(monkeypatch, capsys, "explain", tmp_path / "vc", folder / "tiny.wav", "--out", "-")
    assert code == 0, err


@pytest.fixture(scope="module")
def recordings_ae(speech, tmp_path_factory):
    """An auto-encoder fitted on recordings (MFCC features) saved, and the recordings' folder."""
    import oddkit

    root = tmp_path_factory.mktemp("ae")
    write_recordings(speech, root / "clips")
    oddkit.AutoEncoderDetector(epochs=1, random_state=0, verbose=0, n_threads=1).fit(speech).save(root / "ae")
    return root


def test_cli_embed_writes_one_row_of_codes_per_recording(recordings_ae, speech, monkeypatch, capsys):
    import oddkit
    from oddkit.data.audio import read_audio

    out = recordings_ae / "codes.csv"
    code, _, err = run_cli(monkeypatch, capsys, "embed", recordings_ae / "ae", recordings_ae / "clips", "--out", out)
    assert code == 0, err
    frame = pd.read_csv(out, keep_default_na=False)
    recordings = read_audio(recordings_ae / "clips")
    assert list(frame.columns[:2]) == ["file", "group"] and frame.columns[2] == "z0"
    assert frame["file"].tolist() == recordings.labels["file"].tolist()
    assert frame["group"].tolist() == recordings.labels["group"].tolist()
    expected = oddkit.load(recordings_ae / "ae").transform(recordings)
    assert np.allclose(frame.filter(like="z").to_numpy(), expected, atol=1e-6)
    code, _, err = run_cli(monkeypatch, capsys, "embed", recordings_ae / "ae", recordings_ae / "clips", "--out",
                           recordings_ae / "codes.npz")
    assert code == 0, err
    with np.load(recordings_ae / "codes.npz") as archive:
        assert archive["X"].shape == expected.shape


def test_cli_compress_refuses_recordings_in_one_line(recordings_ae, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "compress", recordings_ae / "ae", recordings_ae / "clips", "--out",
                           recordings_ae / "x.oddz")
    assert code != 0 and "Traceback" not in err
    assert "tables and images" in err and "fitted on recordings" in err
    assert not (recordings_ae / "x.oddz").exists()
    # A table for a model fitted on recordings: told to pass recordings.
    (recordings_ae / "t.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    code, _, err = run_cli(monkeypatch, capsys, "embed", recordings_ae / "ae", recordings_ae / "t.csv", "--out",
                           recordings_ae / "c.csv")
    assert code != 0 and "trained on recordings" in err and "Traceback" not in err
