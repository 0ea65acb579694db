"""Voice conversion (AdaIN-VC) on synthetic speech: shapes, the voice moves and the words stay,
saving, errors, and the command line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

import oddkit
from oddkit.data.audio import synthetic_speech, write_wav
from oddkit.data.audio_features import ResampledAudioWarning
from oddkit.detectors.voice import VoiceConversion
from oddkit.exceptions import DataError, EmptyDataError, LabelError, ModelFileError, ParameterError, TooFewRowsError
from oddkit.nn.speech import VoiceConversionNet, voice_conversion_loss

pytest.importorskip("librosa")

FAST = {"channels": 32, "segment_frames": 16, "epochs": 40, "random_state": 0, "verbose": 0, "n_threads": 1}


@pytest.fixture(scope="module")
def speech():
    """Three synthetic speakers (pitch and timbre) saying three words (formant paths): training
    takes, and new takes of the same speakers and words for conversion."""
    return (synthetic_speech(n_speakers=3, n_words=3, n_takes=4, seconds=0.3, random_state=0),
            synthetic_speech(n_speakers=3, n_words=3, n_takes=1, seconds=0.3, random_state=1))


@pytest.fixture(scope="module")
def model(speech):
    train, _ = speech
    return VoiceConversion(**FAST).fit(train, speakers="speaker")


# -- the networks ----------------------------------------------------------------------------------

def test_the_networks_keep_the_frames_and_pool_the_speaker_over_the_utterance():
    net = VoiceConversionNet(n_mels=12, channels=8, content_dim=3, speaker_dim=5).eval()
    x = torch.randn(2, 12, 20)
    assert net.content(x).shape == (2, 3, 20)
    assert net(x).shape == (2, 12, 20)
    assert net.speaker(x).shape == (2, 5)
    # The speaker vector is an average over time: a longer reference gives a vector all the same.
    assert net.speaker(torch.randn(1, 12, 7)).shape == (1, 5)
    assert net.convert(x[:1], torch.randn(1, 12, 33)).shape == (1, 12, 20)
    loss = voice_conversion_loss(net.train(), x, kl_weight=0.01, generator=torch.Generator().manual_seed(0))
    assert loss.shape == (2,) and torch.isfinite(loss).all()


def test_content_noise_is_added_in_training_only_and_scales_with_its_spread():
    torch.manual_seed(0)
    net = VoiceConversionNet(n_mels=12, channels=8, content_dim=3, speaker_dim=5)
    x = torch.randn(4, 12, 20)

    def loss(noise_std, training=True, seed=0):
        net.train(training)
        with torch.no_grad():
            return voice_conversion_loss(net, x, 0.01, torch.Generator().manual_seed(seed), noise_std=noise_std)

    clean = loss(0.0, training=False)
    assert torch.equal(loss(0.0), clean)  # no noise: training loss is the evaluation loss
    assert torch.equal(loss(0.3, training=False), clean)  # evaluation never adds noise
    # In training the noise moves the loss, more for a larger spread, and the same seed repeats it.
    small, large = (loss(0.1) - clean).abs().mean(), (loss(1.0) - clean).abs().mean()
    assert 0 < small < large
    assert torch.equal(loss(0.3), loss(0.3)) and not torch.equal(loss(0.3, seed=0), loss(0.3, seed=1))


def test_content_noise_must_not_be_negative(speech):
    train, _ = speech
    with pytest.raises(ParameterError, match="content_noise"):
        VoiceConversion(content_noise=-0.1).fit(train)
    assert VoiceConversion().get_params()["content_noise"] == 0.3


def test_the_content_encoder_is_deaf_to_a_louder_voice_and_the_ablation_is_not():
    x = torch.randn(1, 12, 20)
    torch.manual_seed(0)
    normalised = VoiceConversionNet(n_mels=12, channels=8, n_blocks=0).eval()
    torch.manual_seed(0)
    plain = VoiceConversionNet(n_mels=12, channels=8, n_blocks=0, instance_norm=False).eval()
    with torch.no_grad():
        # Without blocks the first convolution is linear: a gain on the input is a gain on its
        # output, before the ReLU (which keeps positive gains), and instance normalisation removes it.
        for net, same in ((normalised, True), (plain, False)):
            bias = net.content_encoder.inp.bias.detach().clone()
            net.content_encoder.inp.bias.zero_()
            a, b = net.content(x), net.content(3.0 * x)
            net.content_encoder.inp.bias.copy_(bias)
            assert torch.allclose(a, b, atol=1e-3) is same  # (up to the normalisation's epsilon)


def test_without_a_speaker_encoder_every_reference_gives_the_same_voice():
    net = VoiceConversionNet(n_mels=12, channels=8, speaker_encoder=False).eval()
    x = torch.randn(1, 12, 20)
    assert torch.equal(net.convert(x, torch.randn(1, 12, 9)), net.convert(x, torch.randn(1, 12, 30)))


# -- the estimator ---------------------------------------------------------------------------------

def test_shapes_and_types(model, speech):
    _, test = speech
    wave = model.convert(test.waveforms[0], test.waveforms[-1])
    assert wave.dtype == np.float32 and wave.shape == test.waveforms[0].shape
    assert np.all(np.abs(wave) <= 1.0) and np.abs(wave).max() > 0.01
    assert model.speaker_embedding(test).shape == (len(test), model.speaker_dim)
    codes = model.content_codes(test)
    frames = model.log_mel_.transform(test)
    assert [c.shape for c in codes] == [(f.shape[0], model.content_dim) for f in frames]
    scores = model.decision_function(test)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    assert list(model.speakers_) == [0, 1, 2]
    assert model.sample_rate_ == 8000 and model.n_features_in_ == model.log_mel_.n_mels
    assert model.convert_spectrogram(test.waveforms[0], test.waveforms[1]).shape == frames[0].shape


def _thirds(frames):
    return np.concatenate([part.mean(axis=0) for part in np.array_split(frames, 3)])


def test_conversion_takes_the_reference_voice_and_keeps_the_words(model, speech):
    """Judges fitted on the real training spectrograms (mean log-mel -> speaker; the mean of each
    third -> word) read the conversions of new takes: the voice is the reference's, the word the
    source's."""
    train, test = speech
    frames = model.log_mel_.transform(train)
    speaker_judge = LogisticRegression(max_iter=5000).fit([f.mean(axis=0) for f in frames], train.labels.speaker)
    word_judge = LogisticRegression(max_iter=5000).fit([_thirds(f) for f in frames], train.labels.word)
    labels = test.labels
    to_reference = kept = unconverted = n = 0
    for i in range(len(test)):
        for j in range(len(test)):
            if labels.speaker[i] == labels.speaker[j] or labels.word[i] == labels.word[j]:
                continue
            converted = model.convert_spectrogram(test.waveforms[i], test.waveforms[j])
            to_reference += speaker_judge.predict([converted.mean(axis=0)])[0] == labels.speaker[j]
            kept += word_judge.predict([_thirds(converted)])[0] == labels.word[i]
            source = model.log_mel_.transform([test.waveforms[i]])[0]
            unconverted += speaker_judge.predict([source.mean(axis=0)])[0] == labels.speaker[j]
            n += 1
    assert unconverted / n == 0.0  # the judge does not give the sources to the reference speaker
    assert to_reference / n >= 0.55  # chance: 1/3 of the speakers; measured 0.67 (0.69 with content noise 1)
    assert kept / n >= 0.6  # chance 1/3; measured 1.00 (0.72 with content noise 1)


def test_the_voice_lives_in_the_speaker_vector(model, speech):
    _, test = speech
    embeddings = model.speaker_embedding(test)
    speakers = test.labels.speaker.to_numpy()
    distances = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1)
    same = distances[(speakers[:, None] == speakers[None]) & ~np.eye(len(test), dtype=bool)].mean()
    other = distances[speakers[:, None] != speakers[None]].mean()
    assert same < other


def _altered(recordings, change):
    """A copy of RECORDINGS with CHANGE(waveform, rate) applied to each waveform."""
    from oddkit.data.audio import AudioData

    return AudioData([change(w.copy(), recordings.sample_rate) for w in recordings.waveforms],
                     recordings.sample_rate, recordings.labels.copy(), None)


def _tone(wave, rate, hz=3000.0):
    return wave + (0.3 * np.sin(2 * np.pi * hz * np.arange(len(wave)) / rate)).astype(np.float32)


def _burst_at_the_end(wave, rate):
    start = int(0.9 * len(wave))
    wave[start:] += np.random.default_rng(0).normal(0, 0.5, len(wave) - start).astype(np.float32)
    return wave


def test_explain_splits_the_reconstruction_error_over_bands_and_stretches_of_time(model, speech):
    from oddkit.data.audio_features import explain_recordings
    from oddkit.detectors.voice import EXPLAIN_SEGMENTS

    _, test = speech
    n_mels = model.n_features_in_
    shares = model.explain(test)
    assert shares.shape == (len(test), EXPLAIN_SEGMENTS * n_mels)
    assert list(shares.index) == list(test.labels["file"]) and shares.index.name == "file"
    assert shares.columns[0] == "t0_mel0" and shares.columns[n_mels] == "t1_mel0"
    assert (shares.to_numpy() >= 0).all()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-9)
    # An exact split of the score: the shares of one cell, times the score, are that cell's mean error.
    frames = model._frames([test.waveforms[0]])[0]
    error = np.abs(model._run(model.model_, [frames])[0] - frames)
    first_stretch = np.array_split(error, EXPLAIN_SEGMENTS, axis=1)[0]
    np.testing.assert_allclose(shares.iloc[0, 3] * model.decision_function(test.subset([0]))[0],
                               first_stretch[3].sum() / error.size, rtol=1e-4)
    # A hum at 3 kHz raises the score, and every hummed recording's largest share is the hum's band.
    hummed = _altered(test, _tone)
    assert (model.decision_function(hummed) > model.decision_function(test)).all()
    bands = explain_recordings(model, hummed, by="band")
    assert bands.shape == (len(test), n_mels) and np.allclose(bands.sum(axis=1), 1.0)
    features = model.explanation_features()
    lo, hi = features.band_edges().T
    tone_bands = {features.feature_groups("band")[i] for i in np.flatnonzero((lo < 3000) & (hi > 3000))}
    assert set(bands.idxmax(axis=1)) <= tone_bands, bands.idxmax(axis=1)
    # A burst of noise in the last tenth: the last stretch carries the largest share.
    stretches = explain_recordings(model, _altered(test, _burst_at_the_end), by="segment")
    assert list(stretches.columns) == [f"t{i} of {EXPLAIN_SEGMENTS}" for i in range(EXPLAIN_SEGMENTS)]
    assert (stretches.idxmax(axis=1) == f"t{EXPLAIN_SEGMENTS - 1} of {EXPLAIN_SEGMENTS}").all(), stretches
    with pytest.raises(ParameterError, match="statistic"):
        explain_recordings(model, test, by="statistic")


def test_explain_takes_waveforms_and_short_recordings(model, speech):
    from oddkit.detectors.voice import EXPLAIN_SEGMENTS

    _, test = speech
    short = test.waveforms[0][:400]  # 50 ms: fewer frames than stretches, the last ones empty
    shares = model.explain([short, test.waveforms[1]], sample_rate=8000)
    assert list(shares.index) == [0, 1]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-9)
    n_frames = model.log_mel_.transform([short])[0].shape[0]
    assert n_frames < EXPLAIN_SEGMENTS
    empty = [c for c in shares.columns if int(c.split("_")[0][1:]) >= n_frames]
    assert empty and (shares.loc[0, empty] == 0).all()
    np.testing.assert_allclose(shares.loc[1], model.explain(test.subset([1])).iloc[0], rtol=1e-6)


def test_save_and_load_give_identical_outputs(model, speech, tmp_path):
    _, test = speech
    model.save(tmp_path / "vc")
    loaded = oddkit.load(tmp_path / "vc")
    assert isinstance(loaded, VoiceConversion) and loaded.log_mel_ == model.log_mel_
    assert np.array_equal(loaded.convert(test.waveforms[0], test.waveforms[4]),
                          model.convert(test.waveforms[0], test.waveforms[4]))
    assert np.array_equal(loaded.decision_function(test), model.decision_function(test))
    assert np.array_equal(loaded.speaker_embedding(test), model.speaker_embedding(test))
    assert list(loaded.speakers_) == list(model.speakers_) and loaded.threshold_ == model.threshold_


def test_a_damaged_saved_configuration_is_refused(model, tmp_path):
    import json

    from oddkit.persist import seal

    model.save(tmp_path / "vc")
    config = json.loads((tmp_path / "vc" / "config.json").read_text())
    config["model"]["log_mel"]["n_mels"] = 7
    (tmp_path / "vc" / "config.json").write_text(json.dumps(config))
    seal(tmp_path / "vc")
    with pytest.raises(ModelFileError, match="mel bands"):
        oddkit.load(tmp_path / "vc")


def test_the_same_seed_gives_the_same_model_and_other_rates_are_resampled(speech):
    train, test = speech
    small = train.subset(train.labels["take"] < 2)
    a = VoiceConversion(**{**FAST, "epochs": 2}).fit(small)
    b = clone(a).fit(small)
    assert np.array_equal(a.decision_function(test), b.decision_function(test))
    assert a.speakers_ is None
    at_16k = test.resampled(16000)
    assert at_16k.sample_rate == 16000
    # Resampled back to the model's 8 kHz: close to the original (not bit-identical: two resamplings),
    # and each call says that the resampling alters the top of the band the model reads.
    with pytest.warns(ResampledAudioWarning):
        np.testing.assert_allclose(a.decision_function(at_16k), a.decision_function(test), rtol=0.1)
    with pytest.warns(ResampledAudioWarning):
        wave = a.convert(at_16k.waveforms[0], at_16k.waveforms[1], sample_rate=16000)
    assert abs(len(wave) - len(test.waveforms[0])) <= 1  # the model's 8 kHz
    with pytest.warns(ResampledAudioWarning):
        assert np.array_equal(a.convert(at_16k.subset([0]), at_16k.subset([1])), wave)  # AudioData carry their rate


def test_waveform_lists_need_their_rate(speech):
    train, _ = speech
    with pytest.raises(DataError, match="sample_rate"):
        VoiceConversion(**FAST).fit(train.waveforms)
    model = VoiceConversion(**{**FAST, "epochs": 1}).fit(train.waveforms[:4], sample_rate=8000)
    assert model.sample_rate_ == 8000


def test_bad_input_is_refused_with_the_recording_named(speech, tmp_path):
    train, _ = speech
    with pytest.raises(TooFewRowsError, match="at least 2"):
        VoiceConversion(**FAST).fit([train.waveforms[0]], sample_rate=8000)
    with pytest.raises(EmptyDataError):
        VoiceConversion(**FAST).fit([], sample_rate=8000)
    with pytest.raises(DataError, match="recording 1"):
        VoiceConversion(**FAST).fit([train.waveforms[0], np.zeros(0, np.float32)], sample_rate=8000)
    with pytest.raises(DataError, match="recording 0 holds NaN"):
        VoiceConversion(**FAST).fit([np.full(800, np.nan, np.float32), train.waveforms[1]], sample_rate=8000)
    with pytest.raises(LabelError):
        VoiceConversion(**FAST).fit(train, speakers=np.zeros(len(train)))  # a single speaker
    with pytest.raises(DataError, match="column"):
        VoiceConversion(**FAST).fit(train, speakers="who")
    with pytest.raises(ParameterError, match="kernel_size"):
        VoiceConversion(kernel_size=4).fit(train)
    with pytest.raises(ParameterError, match="spectrogram"):
        VoiceConversion(spectrogram={"sample_rate": 16000}).fit(train)


def test_an_empty_or_damaged_file_is_named(model, speech, tmp_path):
    _, test = speech
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    damaged = tmp_path / "damaged.wav"
    damaged.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    good = tmp_path / "good.wav"
    write_wav(good, test.waveforms[0], test.sample_rate)
    for path in (empty, damaged):
        with pytest.raises(DataError, match=path.name):
            model.convert(path, good)
    assert model.convert(good, good).shape == test.waveforms[0].shape


# -- the command line --------------------------------------------------------------------------------

def test_cli_fit_voice_audio_bandwidth_sets_the_spectrograms_top(speech, monkeypatch, capsys, tmp_path):
    """--audio-bandwidth 0.9 on the voice model: its spectrogram stops at 0.9 of the Nyquist frequency
    (3,600 Hz at 8 kHz), saved with the model."""
    from conftest import run_cli

    train, _ = speech
    folder = tmp_path / "speech"
    small = train.subset(train.labels["take"] < 1)
    for wave, name in zip(small.waveforms, small.labels.file):
        write_wav(folder / name, wave, small.sample_rate)
    code, _, err = run_cli(monkeypatch, capsys, "fit", folder, "--detector", "voice", "--out", tmp_path / "vc",
                           "--epochs", "1", "-p", "channels=8", "--n-threads", "1", "--quiet", "--audio-bandwidth", "0.9")
    assert code == 0, err
    model = oddkit.load(tmp_path / "vc")
    assert model.log_mel_.fmax == 3600.0 and model.spectrogram == {"fmax": 3600.0}


def test_cli_fit_and_convert_round_trip(speech, monkeypatch, capsys, tmp_path):
    from conftest import run_cli

    from oddkit.data.audio import read_audio

    train, test = speech
    folder = tmp_path / "speech"
    small = train.subset(train.labels["take"] < 2)
    for wave, name in zip(small.waveforms, small.labels.file):
        write_wav(folder / name, wave, small.sample_rate)  # speaker0/word0_take0.wav, ...
    code, out, err = run_cli(monkeypatch, capsys, "fit", folder, "--detector", "voice", "--out", tmp_path / "vc",
                             "--epochs", "2", "-p", "channels=16", "--n-threads", "1", "--quiet")
    assert code == 0, err
    assert "3 speakers named by the group sub-folders" in " ".join(out.split())
    assert list(oddkit.load(tmp_path / "vc").speakers_) == ["speaker0", "speaker1", "speaker2"]
    code, out, err = run_cli(monkeypatch, capsys, "info", tmp_path / "vc")
    assert code == 0, err
    assert "recordings at 8,000 Hz, as frames of 40 log-mel bands" in " ".join(out.replace("│", " ").split())
    source, reference = folder / "speaker0" / "word1_take0.wav", folder / "speaker2" / "word0_take1.wav"
    converted = tmp_path / "converted.wav"
    code, out, err = run_cli(monkeypatch, capsys, "convert", tmp_path / "vc", source, reference, "--out", converted,
                             "--n-threads", "1")
    assert code == 0, err
    result = read_audio(converted)
    assert result.sample_rate == 8000 and len(result.waveforms[0]) == len(read_audio(source).waveforms[0])
    expected = oddkit.load(tmp_path / "vc").convert(source, reference)
    np.testing.assert_allclose(result.waveforms[0], expected, atol=1 / 32767 + 1e-6)  # 16-bit WAV
    # A voice model scores recordings (reconstruction error) like any audio model, explains them
    # per mel band or stretch of time, and has a report.
    code, out, err = run_cli(monkeypatch, capsys, "score", tmp_path / "vc", folder, "--out", tmp_path / "s.csv")
    assert code == 0, err
    scores = pd.read_csv(tmp_path / "s.csv")
    assert len(scores) == len(small.waveforms) and np.isfinite(scores["score"]).all()
    loaded = oddkit.load(tmp_path / "vc")
    np.testing.assert_allclose(scores["score"], loaded.decision_function(read_audio(folder)), rtol=1e-6)
    code, out, err = run_cli(monkeypatch, capsys, "explain", tmp_path / "vc", folder, "--top", "3",
                             "--out", tmp_path / "e.csv")
    assert code == 0, err
    explained = pd.read_csv(tmp_path / "e.csv")
    assert list(explained["file"]) == list(scores.sort_values("score", ascending=False, kind="stable")["file"][:3])
    assert explained["top_band"].str.endswith("Hz)").all()
    shares = explained.filter(like="share_")
    assert shares.shape[1] == loaded.n_features_in_ and np.allclose(shares.sum(axis=1), 1.0)
    code, out, err = run_cli(monkeypatch, capsys, "explain", tmp_path / "vc", folder, "--by", "segment",
                             "--out", "-")
    assert code == 0, err
    assert "top_segment" in out.splitlines()[0] and "share_t7 of 8" in out.splitlines()[0]
    code, _, err = run_cli(monkeypatch, capsys, "explain", tmp_path / "vc", folder, "--by", "statistic",
                           "--out", tmp_path / "x.csv")
    assert code == 2 and "use --by band, --by segment, --by feature" in " ".join(err.split())
    code, _, err = run_cli(monkeypatch, capsys, "report", tmp_path / "vc", folder, "--out", tmp_path / "r.html")
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    top_file = scores.sort_values("score", ascending=False, kind="stable")["file"].iloc[0]
    assert f"{len(small.waveforms)} recordings at 8,000 Hz" in page and top_file in page
    assert "Hz)</span>" in page and "Explanations are drawn" not in page  # bars named by mel band
    # Nothing is overwritten without --force, and the model must be a voice model.
    code, _, err = run_cli(monkeypatch, capsys, "convert", tmp_path / "vc", source, reference, "--out", converted)
    assert code == 2 and "--force" in err
    code, _, err = run_cli(monkeypatch, capsys, "fit", folder, "--detector", "voice", "--out", tmp_path / "vc")
    assert code == 2 and "--force" in err
    code, _, err = run_cli(monkeypatch, capsys, "convert", tmp_path / "vc", source, reference, "--out",
                           tmp_path / "converted.csv")
    assert code == 2 and ".wav" in err
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    code, _, err = run_cli(monkeypatch, capsys, "convert", tmp_path / "vc", empty, reference, "--out",
                           tmp_path / "other.wav")
    assert code == 2 and "empty.wav" in err and not (tmp_path / "other.wav").exists()
