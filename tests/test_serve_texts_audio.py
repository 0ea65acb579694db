"""The scoring service for models trained on texts and on recordings: 'oddkit serve' in a subprocess (the
Service of test_serve.py), spoken to over HTTP. Scores equal to the library's to the last bit in every request
form, explanations, every bad input answered 4xx with a one-line message naming what is wrong, the limits
(texts, characters, recordings, seconds, samples), a decompression bomb refused before a sample is decoded,
a resampled recording flagged, and GET /model and the OpenAPI schema describing the input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from test_serve import SRC, Service, _free_port

pytest.importorskip("tokenizers")


def _multipart(files: list[tuple[str, bytes]], field: str = "file") -> tuple[bytes, str]:
    """A multipart/form-data body with one part per (file name, content), each in the field ``field``."""
    boundary = "oddkitboundary"
    body = b""
    for filename, content in files:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + content + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _check(answer, detector, scores) -> None:
    """Scores, labels, probabilities and threshold of an answer equal the library's, float64 to the last bit."""
    assert np.array_equal(np.asarray([row["score"] for row in answer["rows"]], dtype=np.float64), scores)
    assert [row["label"] for row in answer["rows"]] == (scores >= detector.threshold_).astype(int).tolist()
    assert np.array_equal(np.asarray([row["probability"] for row in answer["rows"]]),
                          detector.proba_from_scores(scores)[:, 1])
    assert answer["threshold"] == detector.threshold_ and answer["detector"] == type(detector).__name__


# -- texts -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus():
    from oddkit.data.text import synthetic_corpus

    texts, _ = synthetic_corpus(100, 10, random_state=0)
    return texts


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory, corpus):
    from oddkit import TextAutoEncoderDetector

    folder = tmp_path_factory.mktemp("serve-texts") / "texts"
    TextAutoEncoderDetector(epochs=2, hidden_size=8, embedding_dim=8, code_size=4, n_threads=1,
                            random_state=0).fit(corpus[:100]).save(folder)
    return folder


@pytest.fixture(scope="module")
def text_service(text_folder):
    running = Service(text_folder, "--max-rows", "40", "--max-text-chars", "300", "--n-threads", "1").wait()
    yield running
    running.stop()


def test_texts_score_bit_for_bit_in_every_request_form(text_service, text_folder, corpus):
    import oddkit

    detector = oddkit.load(text_folder)
    texts = corpus[95:]  # normal texts and the 10 malformed ones
    scores = detector.decision_function(texts)
    assert len(set((scores >= detector.threshold_).tolist())) == 2  # both labels occur
    table = pd.DataFrame({"id": range(len(texts)), "text": texts, "y": [0] * len(texts)})  # extra columns ignored
    parquet = io.BytesIO()
    table.to_parquet(parquet)
    tsv = "".join(f"ham\t{text}\n" for text in texts).encode()  # the headerless label<TAB>text layout
    forms = [
        text_service.score({"texts": texts}),
        text_service.score(texts),
        text_service.request("POST", "/score", table.to_csv(index=False).encode(), "text/csv"),
        text_service.request("POST", "/score", table.to_csv(index=False, sep="\t").encode(),
                             "text/tab-separated-values"),
        text_service.request("POST", "/score", parquet.getvalue(), "application/vnd.apache.parquet"),
        text_service.request("POST", "/score", *_multipart([("texts.csv", table.to_csv(index=False).encode())])),
        text_service.request("POST", "/score", *_multipart([("sms.tsv", tsv)])),
        text_service.request("POST", "/score", *_multipart([("texts.parquet", parquet.getvalue())])),
    ]
    for status, answer in forms:
        assert status == 200, answer
        _check(answer, detector, scores)
        assert set(answer) == {"rows", "threshold", "detector"} and "explanation" not in answer["rows"][0]


def test_text_explanations_are_the_tokens_shares(text_service, text_folder, corpus):
    import oddkit

    detector = oddkit.load(text_folder)
    texts = corpus[100:104]
    status, answer = text_service.score(texts, path="/score?explain=true")
    assert status == 200
    expected = detector.explain(texts)
    scores = detector.decision_function(texts)
    for i, row in enumerate(answer["rows"]):
        explanation, tokens = row["explanation"], expected[expected["row"] == i]
        assert set(explanation) == {"token", "word_index", "word", "contribution", "share"}
        assert explanation["token"] == tokens["token"].tolist() and explanation["token"][-1] == "[EOS]"
        assert explanation["word"] == tokens["word"].tolist()
        assert explanation["word"][:-1] == [texts[i].split()[w] for w in explanation["word_index"][:-1]]
        assert explanation["contribution"] == tokens["contribution"].tolist()
        # as documented: the contributions add up to the score, the shares to 1
        assert sum(explanation["contribution"]) == pytest.approx(scores[i], rel=1e-9)
        assert sum(explanation["share"]) == pytest.approx(1.0, rel=1e-9)
    _check(answer, detector, scores)


BAD_TEXTS = [
    ("no texts", json.dumps({"texts": []}).encode(), "application/json", 422, "holds no texts"),
    ("null", json.dumps({"texts": ["a cat", None]}).encode(), "application/json", 422, "text 1 is null"),
    ("a number", json.dumps(["a cat", "the dog", 7]).encode(), "application/json", 422,
     "text 2 is a number (7), not a string"),
    ("true", json.dumps([True]).encode(), "application/json", 422, "text 0 is true, not a string"),
    ("a nested list", json.dumps([["a cat"]]).encode(), "application/json", 422, "text 0 is a list, not a string"),
    ("an object", json.dumps([{"text": "a cat"}]).encode(), "application/json", 422, "text 0 is an object"),
    ("an empty text", json.dumps(["a cat", ""]).encode(), "application/json", 422, "text 1 is empty"),
    ("a blank text", json.dumps(["a cat", "the dog", " \t "]).encode(), "application/json", 422, "text 2 is blank"),
    ("a lone surrogate", b'["a cat", "\\ud800 dog"]', "application/json", 422,
     "text 1 holds a lone surrogate at character 0"),
    ("not UTF-8 JSON", '["caf\u00e9"]'.encode("latin-1"), "application/json", 422, "not UTF-8 text"),
    ("not UTF-8 CSV", "text\ncaf\u00e9\n".encode("latin-1"), "text/csv", 422, "as UTF-8 text"),
    ("'texts' not a list", json.dumps({"texts": "a cat"}).encode(), "application/json", 422,
     "'texts' must be a list of strings, not a string"),
    ("table rows", json.dumps({"rows": [{"text": "a cat"}]}).encode(), "application/json", 422,
     "this model scores texts: send {\"texts\""),
    ("a CSV without the text column", b"id,message\n1,a cat\n", "text/csv", 422,
     "Send the texts in the column 'text', the model's text column"),
    ("a CSV with an empty text", b"id,text\n1,a cat\n2,\n", "text/csv", 422, "line 3"),
    ("an empty CSV", b"", "text/csv", 422, "is empty"),
    ("a .npy body", b"\x93NUMPY", "application/x-npy", 422, "this model scores texts"),
    ("a text over the length limit", json.dumps(["a cat", "x" * 301]).encode(), "application/json", 413,
     "text 1 holds 301 characters, over the service's limit of 300 characters per text"),
    ("a CSV text over the length limit", b"text\na cat\n" + b"y" * 400 + b"\n", "text/csv", 413, "text 1 holds 400"),
    ("more texts than --max-rows", json.dumps(["a cat"] * 41).encode(), "application/json", 413,
     "the request holds 41 texts, over the service's limit of 40 texts per request"),
    ("a CSV of more texts than --max-rows", ("text\n" + "a cat\n" * 41).encode(), "text/csv", 413, "41 texts"),
]


@pytest.mark.parametrize("body, content_type, status, message", [case[1:] for case in BAD_TEXTS],
                         ids=[case[0] for case in BAD_TEXTS])
def test_bad_texts_get_4xx_with_a_one_line_message(text_service, body, content_type, status, message):
    got, answer = text_service.request("POST", "/score", body, content_type)
    assert got == status, answer
    assert message in answer["detail"] and "\n" not in answer["detail"], answer


def test_an_enormous_text_is_refused_at_once(text_service):
    """One text of 8 million characters (most of the body limit) is refused from its length, never tokenized
    (which alone would take seconds and gigabytes)."""
    started = time.monotonic()
    got, answer = text_service.request("POST", "/score", json.dumps(["a " * 4_000_000]).encode())
    assert got == 413 and "text 0 holds 8,000,000 characters" in answer["detail"]
    assert time.monotonic() - started < 5


def test_a_parquet_file_decompressing_to_more_than_its_texts_may_hold_is_refused(text_service):
    table = pd.DataFrame({"text": ["z" * 5_000_000]})
    parquet = io.BytesIO()
    table.to_parquet(parquet, compression="zstd")
    assert len(parquet.getvalue()) < 10_000  # 5 MB of text in a few kilobytes
    got, answer = text_service.request("POST", "/score", parquet.getvalue(), "application/vnd.apache.parquet")
    assert got == 413 and "bytes of data once decompressed for 1 rows" in answer["detail"], answer


def test_model_and_openapi_describe_the_texts(text_service):
    status, info = text_service.request("GET", "/model")
    assert status == 200
    assert info["input"] == {"kind": "texts", "text_column": "text", "tokenizer": "bpe",
                             "vocabulary_size": info["input"]["vocabulary_size"]}
    status, schema = text_service.request("GET", "/openapi.json")
    content = schema["paths"]["/score"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv", "text/tab-separated-values", "application/vnd.apache.parquet",
            "multipart/form-data"} <= set(content)
    strings = content["application/json"]["schema"]["anyOf"][1]
    assert strings["type"] == "array" and strings["items"]["type"] == "string"
    assert strings["items"]["maxLength"] == 300 and strings["maxItems"] == 40
    texts = schema["components"]["schemas"]["TextsBody"]["properties"]["texts"]
    assert texts["items"]["minLength"] == 1
    answer = schema["components"]["schemas"]["TextScore"]["properties"]
    assert {"score", "label", "probability", "explanation"} <= set(answer)


def test_oddkit_info_describes_the_texts(text_folder, monkeypatch, capsys):
    from conftest import run_cli

    code, out, _ = run_cli(monkeypatch, capsys, "info", text_folder)
    assert code == 0 and "texts, from the column 'text'" in " ".join(out.split()), out


def test_a_readable_code_text_model_is_served_without_explanations(corpus):
    """TextSummaryAutoEncoder and TreeAutoEncoder score texts ('oddkit score' scores them): served too; their
    score has no per-token split, so ?explain=true is refused with a sentence saying so."""
    from fastapi.testclient import TestClient

    from oddkit.detectors.readable import TextSummaryAutoEncoder
    from oddkit.serve import create_app

    detector = TextSummaryAutoEncoder(epochs=1, embed_dim=8, hidden_dim=8, n_threads=1, random_state=0).fit(
        corpus[:100])
    client = TestClient(create_app(detector))
    answer = client.post("/score", json={"texts": corpus[100:]})
    assert answer.status_code == 200
    _check(answer.json(), detector, detector.decision_function(corpus[100:]))
    answer = client.post("/score?explain=true", json=corpus[100:])
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("?explain=true: a TextSummaryAutoEncoder gives no per-token split")


# -- recordings --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def speech():
    pytest.importorskip("librosa")
    pytest.importorskip("soundfile")
    from oddkit.data.audio import synthetic_speech

    train = synthetic_speech(n_speakers=2, n_words=2, n_takes=6, seconds=0.2, random_state=0)
    test = synthetic_speech(n_speakers=2, n_words=3, n_takes=1, seconds=0.2, random_state=5)
    return train, test


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory, speech):
    from oddkit import GaussianDetector
    from oddkit.data.audio_features import AudioFeatures

    train, _ = speech
    train.features = AudioFeatures(representation="stats")
    folder = tmp_path_factory.mktemp("serve-audio") / "recordings"
    GaussianDetector().fit(train).save(folder)
    return folder


@pytest.fixture(scope="module")
def audio_service(audio_folder):
    running = Service(audio_folder, "--max-rows", "4", "--max-recording-seconds", "5", "--max-samples", "100000",
                      "--n-threads", "1").wait()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def wavs(tmp_path_factory, speech):
    """Three WAV files at the model's 8 kHz ('a', 'b', 'c': the odd word 2), and 'a' written at 16 kHz."""
    from oddkit.data.audio import resample, write_wav

    _, test = speech
    folder = tmp_path_factory.mktemp("wavs")
    for name, i in (("a", 0), ("b", 1), ("c", 2)):
        write_wav(folder / f"{name}.wav", test.waveforms[i], 8000)
    write_wav(folder / "a16.wav", resample(test.waveforms[0], 8000, 16000), 16000)
    return folder


def test_recordings_score_bit_for_bit_as_a_body_as_files_and_as_an_archive(audio_service, audio_folder, wavs):
    import oddkit
    from oddkit.data.audio import AudioData, read_audio

    detector = oddkit.load(audio_folder)
    # one WAV file as the body, under each content type
    one = read_audio(wavs / "c.wav")
    for content_type in ("audio/wav", "audio/x-wav", "audio/wave", "application/octet-stream"):
        status, answer = audio_service.request("POST", "/score", (wavs / "c.wav").read_bytes(), content_type)
        assert status == 200, answer
        _check(answer, detector, detector.decision_function(one))
        assert answer["rows"][0]["file"] is None and answer["sample_rate"] == 8000 and answer["warnings"] == []
    # several files, answered in upload order with their names, as the library scores the same recordings
    names = ["c.wav", "a.wav", "b.wav"]
    status, answer = audio_service.request("POST", "/score", *_multipart([(n, (wavs / n).read_bytes()) for n in names]))
    assert status == 200, answer
    read = [read_audio(wavs / n) for n in names]
    together = AudioData([r.waveforms[0] for r in read], 8000, pd.DataFrame({"file": names, "group": [""] * 3}))
    _check(answer, detector, detector.decision_function(together))
    assert [row["file"] for row in answer["rows"]] == names
    assert [row["resampled"] for row in answer["rows"]] == [False] * 3
    # an .npz of recordings (the FSDD layout), as the body and as an upload
    waves = [r.waveforms[0] for r in read]
    archive = io.BytesIO()
    np.savez(archive, audio=np.concatenate(waves), offsets=np.r_[0, np.cumsum([len(w) for w in waves])],
             sample_rate=8000, files=np.array(names))
    (wavs / "clips.npz").write_bytes(archive.getvalue())
    expected = detector.decision_function(read_audio(wavs / "clips.npz"))
    for status, answer in (audio_service.request("POST", "/score", archive.getvalue(), "application/x-npz"),
                           audio_service.request("POST", "/score", *_multipart([("clips.npz", archive.getvalue())]))):
        assert status == 200, answer
        _check(answer, detector, expected)
        assert [row["file"] for row in answer["rows"]] == names


def test_recording_explanations_are_explain_recordings(audio_service, audio_folder, wavs):
    import oddkit
    from oddkit.data.audio import read_audio
    from oddkit.data.audio_features import explain_recordings

    detector = oddkit.load(audio_folder)
    status, answer = audio_service.request("POST", "/score?explain=true", (wavs / "c.wav").read_bytes(), "audio/wav")
    assert status == 200, answer
    expected = explain_recordings(detector, read_audio(wavs / "c.wav"))
    explanation = answer["rows"][0]["explanation"]
    assert list(explanation) == [str(c) for c in expected.columns] and list(explanation)[0].startswith("mel0 (")
    np.testing.assert_array_equal(np.asarray(list(explanation.values())), expected.to_numpy()[0])
    assert sum(explanation.values()) == pytest.approx(1.0)


def test_a_recording_at_another_rate_is_resampled_and_flagged(audio_service, audio_folder, wavs):
    """Scored as the library scores it (resampled to the model's rate by the same resampler), and the answer says
    so: the row's rate and 'resampled', and a warning that this model's band is one resampling alters."""
    import oddkit
    from oddkit.data.audio import AudioData, read_audio

    detector = oddkit.load(audio_folder)
    with pytest.warns(UserWarning, match="resampled to the model's 8,000 Hz"):  # the library's own warning
        alone = detector.decision_function(read_audio(wavs / "a16.wav"))
    status, answer = audio_service.request("POST", "/score", (wavs / "a16.wav").read_bytes(), "audio/wav")
    assert status == 200 and answer["rows"][0]["score"] == alone[0], answer
    files = [("a.wav", (wavs / "a.wav").read_bytes()), ("a16.wav", (wavs / "a16.wav").read_bytes())]
    status, answer = audio_service.request("POST", "/score", *_multipart(files))
    assert status == 200, answer
    assert [(row["sample_rate"], row["resampled"]) for row in answer["rows"]] == [(8000, False), (16000, True)]
    together = AudioData([read_audio(wavs / "a.wav").waveforms[0], read_audio(wavs / "a16.wav").resampled(8000)
                          .waveforms[0]], 8000, pd.DataFrame({"file": ["a.wav", "a16.wav"], "group": ["", ""]}))
    _check(answer, detector, detector.decision_function(together))
    (warning,) = answer["warnings"]
    assert warning.startswith("1 of 2 recordings came at another rate (16,000 Hz) and were resampled to the model's "
                              "8,000 Hz; the model analyses up to 4,000 Hz")


def _float_wav(samples) -> bytes:
    import soundfile

    body = io.BytesIO()
    soundfile.write(body, np.asarray(samples, dtype=np.float32), 8000, format="WAV", subtype="FLOAT")
    return body.getvalue()


def _flac(seconds: float) -> bytes:
    """A FLAC file of ``seconds`` of silence at 8 kHz: about 25 bytes a second."""
    import soundfile

    body = io.BytesIO()
    with soundfile.SoundFile(body, "w", samplerate=8000, channels=1, format="FLAC", subtype="PCM_16") as flac:
        block = np.zeros(8000 * 60, dtype=np.int16)
        for _ in range(int(seconds // 60)):
            flac.write(block)
    return body.getvalue()


def _damaged_flac(wavs) -> bytes:
    import soundfile

    from oddkit.data.audio import read_audio

    body = io.BytesIO()
    soundfile.write(body, read_audio(wavs / "a.wav").waveforms[0], 8000, format="FLAC")
    data = bytearray(body.getvalue())
    data[200:-10] = bytes(len(data) - 210)
    return bytes(data)


def test_bad_recordings_get_4xx_with_a_one_line_message(audio_service, wavs):
    wav = (wavs / "a.wav").read_bytes()
    cases = [
        ("an empty body", b"", "audio/wav", 422, "the body is empty (0 bytes)"),
        ("not audio", b"this is not a recording at all", "audio/wav", 422, "the body: cannot be read as audio"),
        ("a damaged FLAC", _damaged_flac(wavs), "audio/flac", 422, "the body: cannot be read as audio"),
        ("NaN samples", _float_wav([0.1, np.nan, 0.2] * 100), "audio/wav", 422, "100 NaN or inf sample(s)"),
        ("no samples", _float_wav([]), "audio/wav", 422, "holds no samples"),
        ("JSON", b'{"texts": ["a cat"]}', "application/json", 422, "this model scores recordings: send a WAV"),
        ("a damaged archive", b"PK\x03\x04 not a zip", "application/x-npz", 422, "not an .npz archive"),
        ("an archive without audio", _npz(rate=np.array(8000)), "application/x-npz", 422,
         "needs the arrays 'audio' and 'sample_rate'"),
        ("a recording over --max-recording-seconds", _float_wav(np.full(8000 * 6, 0.1)), "audio/wav", 413,
         "the body lasts 6.0 s by its header (48,000 samples at 8,000 Hz), over the service's limit of 5 s"),
        ("more recordings than --max-rows", *_multipart([(f"{i}.wav", wav) for i in range(5)]), 413,
         "the request holds 5 recordings, over the service's limit of 4 recordings per request"),
        ("far more files than --max-rows", *_multipart([(f"{i}.wav", wav) for i in range(7)]), 413,
         "the request holds more than 4 files, over the service's limit of 4 recordings per request"),
        ("a text field instead of a file",
         b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc\r\n--b--\r\n',
         "multipart/form-data; boundary=b", 422, "upload each WAV or FLAC recording (or .npz)"),
    ]
    for what, body, content_type, status, message in cases:
        got, answer = audio_service.request("POST", "/score", body, content_type)
        assert got == status, (what, answer)
        assert message in answer["detail"] and "\n" not in answer["detail"], (what, answer)


def _npz(**arrays) -> bytes:
    body = io.BytesIO()
    np.savez_compressed(body, **arrays)
    return body.getvalue()


def test_decompression_bombs_are_refused_from_what_they_declare_before_decoding(audio_folder, monkeypatch):
    """An hour of silence is a FLAC file of 89 KB, and an .npz of 28.8 million zeros compresses as well: each is
    refused from its header (soundfile.info; the archive's array headers) before a sample is decoded, as are
    recordings that add up to more than max_samples, and a FLAC that does not state its length."""
    from fastapi.testclient import TestClient

    import oddkit.data.audio
    from oddkit.serve import create_app

    def decoded(*args, **kwargs):
        raise AssertionError("a sample was decoded")

    client = TestClient(create_app(audio_folder, max_samples=20 * 8000))  # 20 s at 8 kHz
    bomb = _flac(3600)
    assert len(bomb) < 200_000
    monkeypatch.setattr(oddkit.data.audio, "read_audio", decoded)
    started = time.monotonic()
    answer = client.post("/score", content=bomb, headers={"Content-Type": "audio/flac"})
    assert answer.status_code == 413 and time.monotonic() - started < 2
    assert answer.json()["detail"].startswith("the body lasts 3,600.0 s by its header (28,800,000 samples at 8,000 Hz)")
    # a FLAC whose header does not state its length (total samples 0): unbounded, refused
    unknown = bytearray(_flac(60))
    streaminfo = int.from_bytes(unknown[18:26], "big")
    unknown[18:26] = (streaminfo & ~((1 << 36) - 1)).to_bytes(8, "big")
    answer = client.post("/score", content=bytes(unknown), headers={"Content-Type": "audio/flac"})
    assert answer.status_code == 413 and "does not state its length" in answer.json()["detail"]
    # the archive: its 'audio' array's header declares 28.8 million samples
    archive = _npz(audio=np.zeros(8000 * 3600, dtype=np.int16), offsets=np.array([0, 8000 * 3600]),
                   sample_rate=np.array(8000))
    assert len(archive) < 200_000
    answer = client.post("/score", content=archive, headers={"Content-Type": "application/x-npz"})
    assert answer.status_code == 413 and "declare 28,800,000 samples" in answer.json()["detail"]
    # three recordings of 10 s each: within the length limit each, over the samples one together
    ten = _float_wav(np.full(8000 * 10, 0.1))
    answer = client.post("/score", files=[("file", (f"{i}.wav", ten)) for i in range(3)])
    assert answer.status_code == 413, answer.text
    assert answer.json()["detail"].startswith("the request's recordings declare 240,000 samples (as sent, or at the "
                                              "model's 8,000 Hz where that is more) by the end of 2.wav")


def test_a_voice_conversion_model_is_served(speech, wavs):
    """Voice conversion scores recordings with its own log-mel front end (no audio features): served as well,
    explained per mel band."""
    from fastapi.testclient import TestClient

    from oddkit import VoiceConversion
    from oddkit.data.audio import read_audio
    from oddkit.serve import create_app

    train, _ = speech
    detector = VoiceConversion(channels=8, speaker_dim=4, n_blocks=1, epochs=1, n_threads=1, verbose=0,
                               random_state=0).fit(train.subset(np.arange(8)))
    client = TestClient(create_app(detector))
    answer = client.post("/score?explain=true", files=[("file", ("c.wav", (wavs / "c.wav").read_bytes()))])
    assert answer.status_code == 200, answer.text
    _check(answer.json(), detector, detector.decision_function(read_audio(wavs / "c.wav")))
    explanation = answer.json()["rows"][0]["explanation"]
    assert len(explanation) == 40 and sum(explanation.values()) == pytest.approx(1.0)
    assert client.get("/model").json()["input"] == {"kind": "recordings", "sample_rate": 8000,
                                                    "features": "log-mel frames", "n_features": None, "n_mels": 40,
                                                    "max_frequency": 4000.0, "explanation": "band"}


def test_model_and_openapi_describe_the_recordings(audio_service):
    status, info = audio_service.request("GET", "/model")
    assert status == 200
    assert info["input"] == {"kind": "recordings", "sample_rate": 8000, "features": "stats", "n_features": 121,
                             "n_mels": 40, "max_frequency": 4000.0, "explanation": "band"}
    status, schema = audio_service.request("GET", "/openapi.json")
    body = schema["paths"]["/score"]["post"]["requestBody"]["content"]
    for content_type in ("audio/wav", "audio/x-wav", "audio/wave", "audio/flac", "audio/x-flac", "application/x-npz"):
        assert body[content_type]["schema"] == {"type": "string", "format": "binary"}
    assert "application/json" not in body
    assert body["multipart/form-data"]["schema"]["properties"]["file"]["type"] == "array"
    row = schema["components"]["schemas"]["RecordingScore"]["properties"]
    assert {"file", "score", "label", "probability", "sample_rate", "resampled", "explanation"} <= set(row)


def test_what_cannot_be_served_is_refused_at_start_up(speech, tmp_path, monkeypatch, capsys):
    """A model fitted on frames of recordings scores frames, not recordings ('oddkit score' cannot score it
    either): the service refuses it before it listens, with one line saying why."""
    from oddkit import GaussianDetector
    from oddkit.data.audio_features import AudioFeatures
    from oddkit.exceptions import OddkitError
    from oddkit.serve import create_app

    train, _ = speech
    frames = train.subset(np.arange(4))
    frames.features = AudioFeatures(representation="frames")
    GaussianDetector().fit(frames).save(tmp_path / "frames")
    with pytest.raises(OddkitError, match="trained on frames of recordings"):
        create_app(tmp_path / "frames")
    done = subprocess.run([sys.executable, "-m", "oddkit.cli", "serve", str(tmp_path / "frames"), "--port",
                           str(_free_port())], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": SRC})
    assert done.returncode == 2 and "trained on frames of recordings" in done.stderr
    # 'oddkit score' says the same in one line (it used to end in a pandas length-mismatch traceback).
    from conftest import run_cli
    from oddkit.data.audio import write_wav

    write_wav(tmp_path / "one.wav", train.waveforms[0], train.sample_rate)
    code, _, err = run_cli(monkeypatch, capsys, "score", tmp_path / "frames", tmp_path / "one.wav", "--out",
                           tmp_path / "scores.csv")
    assert code == 2 and "trained on frames of recordings" in err and "Traceback" not in err, err


def test_limits_that_are_not_positive_stop_the_command(monkeypatch, capsys, tmp_path):
    from conftest import run_cli

    for option in ("--max-text-chars", "--max-recording-seconds", "--max-samples"):
        code, _, err = run_cli(monkeypatch, capsys, "serve", tmp_path / "no-model", option, "0")
        assert code == 2 and f"{option} must be" in err, err


# -- hostile requests: each answered 4xx within the limits, never 500 --------------------------------------

@pytest.fixture(scope="module")
def text_client(text_folder):
    from fastapi.testclient import TestClient

    from oddkit.serve import create_app

    return TestClient(create_app(text_folder, max_rows=40, max_text_chars=300), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def audio_client(audio_folder):
    from fastapi.testclient import TestClient

    from oddkit.serve import create_app

    return TestClient(create_app(audio_folder, max_rows=4, max_samples=100_000), raise_server_exceptions=False)


def _refused(answer, status: int, message: str) -> None:
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert message in detail and "\n" not in detail and len(detail) < 600, detail


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    import zipfile

    body = io.BytesIO()
    with zipfile.ZipFile(body, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return body.getvalue()


def _npy(array) -> bytes:
    body = io.BytesIO()
    np.save(body, np.asarray(array))
    return body.getvalue()


def _no_decoding(monkeypatch) -> None:
    import oddkit.data.audio

    def decoded(*args, **kwargs):
        raise AssertionError("a sample was decoded")

    monkeypatch.setattr(oddkit.data.audio, "read_audio", decoded)


def test_an_archive_member_that_is_not_an_array_is_refused_before_it_is_read(audio_client, monkeypatch):
    """numpy.load hands a member not named NAME.npy over as raw bytes, read whole, whatever its zip header says
    it holds: a member 'offsets' (or 'files') of 300 MB of zeros deflates to 300 KB, and read_audio decoded it in
    full (21 GB of memory for 'files', a MemoryError and a 500 for 'offsets'). Refused from the archive's
    directory before any member is read."""
    _no_decoding(monkeypatch)
    audio, rate = _npy(np.zeros(800, np.int16)), _npy(np.array(8000))
    for members in ([("audio.npy", audio), ("sample_rate.npy", rate), ("offsets", bytes(50_000_000))],
                    [("audio.npy", audio), ("sample_rate.npy", rate), ("offsets.npy", _npy([0, 800])),
                     ("files", bytes(50_000_000))]):
        bomb = _zip(members)
        assert len(bomb) < 100_000
        answer = audio_client.post("/score", content=bomb, headers={"Content-Type": "application/x-npz"})
        _refused(answer, 422, f"the body: the member {members[-1][0]!r} is not a .npy array")


def test_an_archive_of_thousands_of_members_is_refused_from_its_directory(audio_client, monkeypatch):
    """Each member of a zip is a few dozen bytes of its directory: 64 MiB could list some 700,000, which the zip
    reader parses whole (16 MB of them took 8 s and 650 MB to read). Refused from the directory's size."""
    import zipfile

    _no_decoding(monkeypatch)
    members = [("audio.npy", _npy(np.zeros(800, np.int16))), ("sample_rate.npy", _npy(np.array(8000)))]
    archive = _zip(members + [(f"extra{i}.npy", _npy(np.array(0, np.int8))) for i in range(3000)])

    def parsed(*args, **kwargs):
        raise AssertionError("the archive's directory was parsed")

    monkeypatch.setattr(zipfile, "ZipFile", parsed)
    answer = audio_client.post("/score", content=archive, headers={"Content-Type": "application/x-npz"})
    _refused(answer, 413, "the body: its directory lists the archive's members in ")


BAD_ARCHIVES = [
    ("offsets of text", {"offsets": np.array(["0", "x"])}, "'offsets' holds <U1 values; store whole numbers"),
    ("offsets of complex numbers", {"offsets": np.array([0, 800], dtype=complex)}, "'offsets' holds complex128"),
    ("digits of text", {"digit": np.array(["x"])}, "'digit' holds <U1 values; store whole numbers"),
    ("speakers of text", {"speaker": np.array(["x"])}, "'speaker' holds <U1 values"),
    ("a NaN rate", {"sample_rate": np.array(np.nan)}, "'sample_rate' is nan; store the rate in Hz"),
    ("an infinite rate", {"sample_rate": np.array(np.inf)}, "'sample_rate' is inf; store the rate in Hz"),
    ("a rate of text", {"sample_rate": np.array("abc")}, "'sample_rate' holds <U3 values; store the rate in Hz"),
    ("a rate of 1e300 Hz", {"sample_rate": np.array(1e300)}, "'sample_rate' is 1e+300 Hz; oddkit reads recordings "
                                                              "at 1 to 384,000 Hz"),
    ("complex samples", {"audio": np.zeros(800, complex)}, "'audio' holds complex128 values; store int16"),
    ("more file names than recordings", {"files": np.array([f"{i}.wav" for i in range(100_000)])},
     "'files' holds 100,000 entries for 1 recording(s)"),
    ("far more speaker names than anyone needs", {"speaker": np.array([0]), "speaker_names": np.zeros(100_000)},
     "'speaker_names' holds 100,000 names"),
]


@pytest.mark.parametrize("arrays, message", [case[1:] for case in BAD_ARCHIVES], ids=[c[0] for c in BAD_ARCHIVES])
def test_archive_arrays_of_the_wrong_kind_or_size_get_422_before_decoding(audio_client, monkeypatch, arrays,
                                                                         message):
    """read_audio turned text offsets or labels, and a NaN, infinite or text rate, into a ValueError or an
    OverflowError (500); label arrays are what it turns into Python strings (a float array of 64 MiB in
    'speaker_names' into 1 GiB of them): refused from the archive's headers (the rate, one number, read)."""
    _no_decoding(monkeypatch)
    archive = {"audio": np.zeros(800, np.int16), "offsets": np.array([0, 800]), "sample_rate": np.array(8000),
               **arrays}
    answer = audio_client.post("/score", content=_npz(**archive), headers={"Content-Type": "application/x-npz"})
    _refused(answer, 422, message)


def test_a_file_of_texts_with_thousands_of_columns_is_refused_before_it_is_read(text_client, monkeypatch):
    """A CSV header of 300,000 columns (2.3 MB) took 25 s and 1.3 GB to read into a table, for one text column
    (a Parquet file of 10,000 columns, 1.2 s and 600 MB): refused from its first line (the Parquet file's
    metadata); a file of 1,000 columns or fewer is read as before."""
    import oddkit.data.text

    def read(*args, **kwargs):
        raise AssertionError("the file was read")

    wide = b",".join(b"c%d" % i for i in range(300_000))
    with monkeypatch.context() as patched:
        patched.setattr(oddkit.data.text, "read_text_table", read)
        for body, content_type in ((b"text," + wide + b"\na cat\n", "text/csv"),
                                   (b'"te\nxt",' + wide + b"\na cat\n", "text/csv"),  # a quoted line break
                                   (b"\n  \ntext\t" + wide.replace(b",", b"\t") + b"\na cat\n",
                                    "text/tab-separated-values")):
            answer = text_client.post("/score", content=body, headers={"Content-Type": content_type})
            _refused(answer, 413, "body has more than 1,000 columns; send the texts in the column 'text'")
        wide = pd.DataFrame({"text": ["a cat"], **{f"c{i}": [i] for i in range(1000)}})
        parquet = io.BytesIO()
        wide.to_parquet(parquet)
        answer = text_client.post("/score", content=parquet.getvalue(),
                                  headers={"Content-Type": "application/vnd.apache.parquet"})
        _refused(answer, 413, "body has more than 1,000 columns (1,001); send the texts in the column 'text'")
    table = pd.DataFrame({"text": ["a cat", "the dog"], **{f"c{i}": [i, i] for i in range(900)}})
    answer = text_client.post("/score", content=table.to_csv(index=False).encode(),
                              headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    parquet = io.BytesIO()
    table.to_parquet(parquet)
    answer = text_client.post("/score", content=parquet.getvalue(),
                              headers={"Content-Type": "application/vnd.apache.parquet"})
    assert answer.status_code == 200, answer.text


def test_a_file_of_more_texts_than_max_rows_is_refused_before_it_is_read(text_client, monkeypatch):
    """A CSV of 5 million one-word lines (15 MB) took 4 s and 1 GB to read before its 5,000,000 texts were
    counted: they are counted first (to ten times --max-rows at most). A quoted text holding line breaks is
    one text, and a file of as many texts as the limit is read."""
    import oddkit.data.text

    def read(*args, **kwargs):
        raise AssertionError("the file was read")

    with monkeypatch.context() as patched:
        patched.setattr(oddkit.data.text, "read_text_table", read)
        for body, content_type in ((b"text\n" + b"ab\n" * 1_000_000, "text/csv"),
                                   (b"ham\tab\n" * 1_000_000, "text/tab-separated-values"),
                                   # read line by line, where a quote is no quote: one left open hides nothing
                                   (b'ham\t"ab\n' + b"ham\tab\n" * 1_000_000, "text/tab-separated-values")):
            answer = text_client.post("/score", content=body, headers={"Content-Type": content_type})
            _refused(answer, 413, "the request holds more than 400 texts, over the service's limit of 40 texts")
    within = b"text\n" + b'"a\ncat"\n' * 40 + b"\n" * 50
    answer = text_client.post("/score", content=within, headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200 and len(answer.json()["rows"]) == 40, answer.text


def test_several_files_for_a_model_that_takes_one_are_refused(text_client):
    """A text (or table) model reads one file a request: a second file field was dropped without a word, and
    the answer held the scores of one of them."""
    files = [("file", ("a.csv", b"text\na cat\n")), ("file", ("b.csv", b"text\nthe dog\na bird\n"))]
    _refused(text_client.post("/score", files=files), 422,
             "the request uploads 2 files as the form field 'file'; upload one CSV, TSV or Parquet file of texts")


def test_json_mistakes_on_a_text_model_say_how_to_send_texts(text_client):
    for body, message in ((b'{"texts": [', "not valid JSON"), (b"", "the request body is empty"),
                          (b'{"texts": ["a"], "texts": ["b"]}', "gives the key 'texts' twice in one object")):
        answer = text_client.post("/score", content=body, headers={"Content-Type": "application/json"})
        _refused(answer, 422, message)
        assert "send {\"texts\": [\"...\", ...]}" in answer.json()["detail"] and "rows" not in answer.json()["detail"]


def test_an_archive_the_library_fails_to_read_is_answered_422(audio_client, monkeypatch):
    """Whatever read_audio raises on a file it was given (a ValueError from numpy, say) is the file's fault: 422
    naming it, not 500."""
    import oddkit.data.audio

    def fails(path, sample_rate=None):
        raise ValueError(f"cannot convert float NaN to integer (in {path})")

    monkeypatch.setattr(oddkit.data.audio, "read_audio", fails)
    archive = _npz(audio=np.zeros(800, np.int16), offsets=np.array([0, 800]), sample_rate=np.array(8000))
    answer = audio_client.post("/score", files=[("file", ("clips.npz", archive))])
    _refused(answer, 422, "clips.npz: cannot be read as an archive of recordings (ValueError: cannot convert float "
                          "NaN to integer (in clips.npz)); send numpy.savez's file")


def test_a_parquet_file_of_texts_that_are_not_utf8_or_of_repeated_columns_gets_422_in_one_line(text_client):
    """A Parquet string column holding bytes that are not UTF-8 made pyarrow fail deep inside read_text_table
    (500); a file naming its column twice was answered with pyarrow's message over six lines."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def parquet(table) -> bytes:
        body = io.BytesIO()
        pq.write_table(table, body)
        return body.getvalue()

    broken = pa.array([b"a cat", b"\xff\xfe dog"], type=pa.binary()).view(pa.string())
    answer = text_client.post("/score", content=parquet(pa.table({"text": broken})),
                              headers={"Content-Type": "application/vnd.apache.parquet"})
    _refused(answer, 422, "the Parquet body: its texts cannot be read (")
    assert answer.json()["detail"].endswith("store each text as a string of valid UTF-8")
    twice = pa.table([pa.array(["a cat"]), pa.array(["the dog"])], names=["text", "text"])
    answer = text_client.post("/score", files=[("file", ("texts.parquet", parquet(twice)))])
    _refused(answer, 422, "cannot read texts.parquet as Parquet")


def test_an_archive_needing_a_zip_version_python_lacks_gets_422(audio_client):
    """The zip reader raises NotImplementedError for a member that needs a later zip version (a byte of its
    directory): that was a 500."""
    archive = bytearray(_npz(audio=np.zeros(800, np.int16), offsets=np.array([0, 800]), sample_rate=np.array(8000)))
    entry = archive.index(b"PK\x01\x02")
    archive[entry + 6:entry + 8] = (96).to_bytes(2, "little")  # version needed to extract: 9.6
    answer = audio_client.post("/score", content=bytes(archive), headers={"Content-Type": "application/x-npz"})
    _refused(answer, 422, "the body: not an .npz archive (zip file version 9.6)")
