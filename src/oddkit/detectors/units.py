"""Discrete speech units: a VQ-VAE on log-mel frames, one code per frame.

:func:`fit_speech_units` trains :class:`~oddkit.VQVAEDetector` on the ``"frames"`` representation of
:class:`~oddkit.data.audio_features.AudioFeatures` (each 10 ms log-mel frame with two frames of
context on either side, the recording's mean removed) with one code position per frame: the code
chosen for a frame is its unit, a small inventory of sound classes learned without labels (van den
Oord et al., 2017, section 4.3). :func:`speech_units` returns the units of each recording and
:func:`unit_vectors` the code vectors they stand for. The model is an ordinary oddkit model: it is
saved and loaded with ``save`` / :func:`oddkit.load`, its spectrogram and frame settings included.

How well the units carry what is said rather than who says it (codebook usage, perplexity, mutual
information with digits and with speakers, across-speaker ABX error against MFCCs and log-mel
frames) is measured by ``benchmarks/speech_units.py`` (``benchmarks/SPEECH_UNITS.md``).

References
----------
- van den Oord, A., Vinyals, O. and Kavukcuoglu, K. "Neural discrete representation learning."
  NeurIPS, 2017.
- Schatz, T. et al. "Evaluating speech features with the minimal-pair ABX task: analysis of the
  classical MFC/PLP pipeline." Interspeech, 2013.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from oddkit.data.audio import AudioData
from oddkit.data.audio_features import AudioFeatures, AudioPreprocessor
from oddkit.detectors.vqvae import VQVAEDetector
from oddkit.exceptions import DataError

__all__ = ["fit_speech_units", "speech_units", "unit_vectors"]


def fit_speech_units(recordings: AudioData, codebook_size: int = 64, code_dim: int = 16, context: int = 2,
                     epochs: int = 30, random_state=None, verbose: int = 0, **params) -> VQVAEDetector:
    """Train a VQ-VAE on the log-mel frames of ``recordings``, one code per frame.

    Parameters
    ----------
    recordings : AudioData
        Speech (any sample rate; the spectrogram settings follow it).
    codebook_size : int, default=64
        Number of units (the order of a language's phone inventory).
    code_dim : int, default=16
        Length of each unit's code vector.
    context : int, default=2
        Frames on either side that each frame's encoder sees (5 frames: 50 ms at the 10 ms hop).
    epochs : int, default=30
    random_state : int, RandomState or None
    verbose : int, default=0
    **params
        Any other :class:`~oddkit.VQVAEDetector` parameter (``hidden_sizes``, ``lr``, ...).

    Returns
    -------
    VQVAEDetector
        Fitted on one row per frame (``n_positions_ == 1``); its ``codebook_usage_`` and
        ``perplexity_`` describe the units on the training frames.

    Examples
    --------
    >>> from oddkit.data.audio import synthetic_speech
    >>> data = synthetic_speech(n_speakers=2, n_words=2, n_takes=2, seconds=0.2)
    >>> model = fit_speech_units(data, codebook_size=8, epochs=2, random_state=0)
    >>> units = speech_units(model, data)
    >>> len(units) == len(data), int(units[0].max()) < 8
    (True, True)
    """
    if not isinstance(recordings, AudioData):
        raise DataError(f"fit_speech_units takes AudioData (oddkit.data.audio.read_audio), got "
                        f"{type(recordings).__name__}")
    base = recordings.features if recordings.features is not None else AudioFeatures()
    frames = base.clone()
    frames.representation, frames.context = "frames", context
    training = AudioData(recordings.waveforms, recordings.sample_rate, recordings.labels, recordings.source, frames)
    model = VQVAEDetector(codebook_size=codebook_size, code_dim=code_dim, n_positions=1, epochs=epochs,
                          random_state=random_state, verbose=verbose, **params)
    return model.fit(training)


def _frame_rows(model: VQVAEDetector, recordings) -> list[np.ndarray]:
    check_is_fitted(model)
    preprocessor = getattr(model, "preprocessor_", None)
    if not isinstance(preprocessor, AudioPreprocessor) or preprocessor.features_.representation != "frames" \
            or getattr(model, "n_positions_", None) != 1:
        raise DataError("speech units need a VQVAEDetector trained by fit_speech_units (one code per log-mel frame)")
    if not isinstance(recordings, AudioData):
        raise DataError(f"speech_units takes AudioData (oddkit.data.audio.read_audio), got {type(recordings).__name__}")
    return preprocessor.features_.frame_rows(recordings)


def speech_units(model: VQVAEDetector, recordings: AudioData) -> list[np.ndarray]:
    """The unit (code index) of every frame of every recording.

    Parameters
    ----------
    model : VQVAEDetector
        As :func:`fit_speech_units` returns it (or :func:`oddkit.load` of its folder).
    recordings : AudioData
        Resampled to the model's rate when needed.

    Returns
    -------
    list of numpy.ndarray of int64
        One array per recording, one unit in ``0 .. codebook_size_ - 1`` per 10 ms frame (of the
        recording with its quiet start and end trimmed).
    """
    rows = _frame_rows(model, recordings)
    indices = model._indices(model.preprocessor_.transform_rows(np.concatenate(rows, axis=0)))[:, 0]
    return np.split(indices, np.cumsum([len(r) for r in rows])[:-1])


def unit_vectors(model: VQVAEDetector, recordings: AudioData) -> list[np.ndarray]:
    """The code vector of every frame's unit: float32 arrays (n_frames_i, code_dim_), one per recording."""
    codebook = model.model_.quantizer.codebook.detach().cpu().numpy().astype(np.float32)
    return [codebook[u] for u in speech_units(model, recordings)]
