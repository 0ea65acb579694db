"""Inputs found by trying to break the promises through the public API: a 1-D array, recordings built
in memory with NaN or inf samples, texts holding lone surrogates. Each is the documented oddkit error
with a one-line message naming the place, never a raw numpy, librosa or tokenizers exception."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oddkit import GaussianDetector, KNNDetector
from oddkit.exceptions import DataError, NonFiniteError


@pytest.fixture(scope="module")
def knn():
    return KNNDetector().fit(np.random.default_rng(0).normal(size=(30, 3)))


@pytest.mark.parametrize("X", [np.zeros(3), np.zeros(5000), 5.0], ids=["1-D", "long 1-D", "scalar"])
def test_an_array_that_is_not_a_table_is_refused_in_one_line(knn, X):
    with pytest.raises(DataError) as caught:
        knn.decision_function(X)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 300, message
    assert "reshape(1, -1)" in message and "reshape(-1, 1)" in message


def test_masked_cells_are_missing_values_not_the_hidden_numbers_beneath():
    """The mask used to be dropped: the hidden value was scored as if it were data."""
    train = np.random.default_rng(0).normal(size=(30, 3))
    mask = np.zeros((2, 3), dtype=bool)
    mask[0, 1] = True
    rows = np.ma.masked_array(train[:2], mask=mask)
    with pytest.raises(NonFiniteError, match="column 'x1'.*first rows: 0"):
        KNNDetector().fit(train).decision_function(rows)
    with pytest.raises(NonFiniteError, match="column 'x1'"):
        KNNDetector().fit(np.ma.masked_array(train, mask=np.eye(30, 3, dtype=bool) & (np.arange(3) == 1)))
    imputing = KNNDetector(impute="median").fit(train)
    with_nan = np.where(mask, np.nan, train[:2])
    np.testing.assert_array_equal(imputing.decision_function(rows), imputing.decision_function(with_nan))
    integers = np.ma.masked_array((train[:2] * 10).astype(np.int64), mask=mask)
    np.testing.assert_array_equal(imputing.decision_function(integers),
                                  imputing.decision_function(np.where(mask, np.nan, integers.data)))
    # Nothing masked: scored exactly as the plain array.
    np.testing.assert_array_equal(imputing.decision_function(np.ma.masked_array(train[:2])),
                                  imputing.decision_function(train[:2]))


@pytest.mark.parametrize("column", [pd.to_timedelta([1, 2], unit="s"), pd.date_range("2020", periods=2, tz="UTC"),
                                    pd.period_range("2020", periods=2, freq="D")], ids=["timedelta", "tz", "period"])
def test_a_frame_of_dates_scored_by_a_model_fitted_on_an_array_names_the_column(knn, column):
    """Such a frame went to NumPy as a whole: its message named no column (or spoke of DType promotion)."""
    frame = pd.DataFrame({"x0": [0.0, 1.0], "x1": column, "x2": [0.0, 0.0]})
    with pytest.raises(DataError, match="column 'x1' holds .* values \\(dates or times\\)") as caught:
        knn.decision_function(frame)
    assert "\n" not in str(caught.value)


def _recordings(waves, rate):
    from oddkit.data.audio import AudioData

    return AudioData(waveforms=[np.asarray(w, dtype=np.float32) for w in waves], sample_rate=rate,
                     labels=pd.DataFrame({"file": [f"clip{i}.wav" for i in range(len(waves))],
                                          "group": [""] * len(waves)}))


@pytest.mark.filterwarnings("ignore::oddkit.data.audio_features.ResampledAudioWarning")
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_recordings_with_non_finite_samples_are_a_named_error_at_fit_and_score(bad):
    pytest.importorskip("librosa")
    from oddkit.data.audio import synthetic_speech

    data = synthetic_speech(n_speakers=2, n_words=2, n_takes=3, seconds=0.2, random_state=0)
    detector = GaussianDetector().fit(data)
    waves = [w.copy() for w in data.waveforms[:3]]
    waves[2][10] = bad
    broken = _recordings(waves, data.sample_rate)
    with pytest.raises(NonFiniteError, match=r"recording 2 is 'clip2.wav'") as caught:
        detector.decision_function(broken)
    assert "\n" not in str(caught.value)
    with pytest.raises(NonFiniteError, match="recording 2"):
        GaussianDetector().fit(_recordings(waves * 2, data.sample_rate))
    # At another rate too: refused before resampling.
    with pytest.raises(NonFiniteError, match="recording 2"):
        detector.decision_function(_recordings(waves, data.sample_rate * 2))


@pytest.fixture(scope="module")
def text_model():
    pytest.importorskip("tokenizers")
    from oddkit import TextAutoEncoderDetector
    from oddkit.data.text import synthetic_corpus

    train, _ = synthetic_corpus(60, 0, random_state=0)
    return TextAutoEncoderDetector(embedding_dim=8, hidden_size=8, code_size=4, epochs=1, n_threads=1,
                                   random_state=0).fit(train)


def test_a_lone_surrogate_is_a_data_error_naming_the_row(text_model):
    texts = ["the cat sees a dog", "fine \u00e9\u00e8 text \U0001f600", "bad \udcff byte"]
    with pytest.raises(DataError, match="first rows: 2") as caught:
        text_model.decision_function(texts)
    assert "\n" not in str(caught.value) and "surrogate" in str(caught.value)
    with pytest.raises(DataError, match="first rows: 2"):
        text_model.decision_function(pd.DataFrame({"text": pd.Series(texts, dtype=object)}))
    with pytest.raises(DataError, match="surrogate"):
        type(text_model)(epochs=1).fit(["the cat sees a dog"] * 5 + ["\ud800"])
    # Emoji, accents and control characters are text: scored finitely.
    scores = text_model.decision_function(texts[:2] + ["\x00\x01\x7f", "\U0001f600" * 3])
    assert np.isfinite(scores).all()
