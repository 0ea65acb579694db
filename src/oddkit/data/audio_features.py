"""Recordings as fixed-length rows, so that every detector can learn from audio.

:class:`AudioFeatures` turns each recording (an :class:`~oddkit.data.audio.AudioData`) into one row
of numbers computed from its log-mel spectrogram (:class:`~oddkit.data.audio.LogMel`), after the
silence before and after the sound is trimmed. The representations:

- ``"mfcc"`` (the default): the mean and the standard deviation over frames of ``n_mfcc``
  mel-frequency cepstral coefficients (librosa's ``feature.mfcc`` of the log-mel frames in decibels: a type-II DCT across
  the bands, which decorrelates and compresses them; coefficient 0 is the overall level), computed
  with a floor of -100 dB (librosa's) instead of the log-mel default's -50 dB: ``2 * n_mfcc`` numbers
  whatever the length;
- ``"stats"``: for each mel band, the mean and the standard deviation of its log energy over the
  recording's frames and the standard deviation of its frame-to-frame change, plus the logarithm of
  the trimmed duration: ``3 * n_mels + 1`` numbers;
- ``"patch"``: the trimmed spectrogram stretched or squeezed in time to ``n_frames`` frames (linear
  interpolation), flattened: ``n_frames * n_mels`` numbers that keep the order of the sounds;
- ``"frames"``: one row per frame, not per recording: each log-mel frame with ``context`` frames on
  either side (``(2 * context + 1) * n_mels`` numbers), after the recording's mean log-mel is
  subtracted (cepstral mean normalisation's log-mel form, which removes much of the speaker's and
  the channel's fixed colouring). A detector fitted on these scores frames; this is what the speech
  units of :mod:`oddkit.detectors.units` learn from.

How the default was chosen, on training recordings only: ``benchmarks/AUDIO_ANOMALY.md``.

:class:`AudioPreprocessor` is what a detector fitted on recordings keeps as its ``preprocessor_``:
the features above, then the standardisation of :class:`~oddkit.data.TablePreprocessor` fitted on
the training rows. Its settings (sample rate, log-mel settings, representation) are saved in the
model's ``config.json``; recordings at another rate are resampled to the model's rate.

Features that do not change with the sample rate
------------------------------------------------
A recording made or stored at another rate reaches the features through a resampler, and every
resampler's anti-aliasing filter has a transition band just below the Nyquist frequency of the
lower rate: librosa's default (soxr, high quality) keeps the spectrum to within 0.2 dB up to 0.92
of it, then attenuates by 10 dB at 0.95 and by 55 dB from 0.97. Anything the features measure in
that band changes when the same sound arrives at another rate. ``AudioFeatures(bandwidth=0.9)``
(:data:`BANDWIDTH`) analyses frequencies up to 0.9 of the Nyquist frequency only (``fmax``: 3.6 kHz
at 8 kHz, 7.2 kHz at 16 kHz), and the silence trimming then measures each frame's energy in that
same band. On FSDD, the same test recordings written at 16 kHz instead of their own 8 kHz then move
their standardised features by 0.15 % of a training spread (the mean over a recording's features,
at the median recording) instead of 6.4 %, and the default detector's scores by at most 6.8 %
(median 0.08 %) instead of 68 % (median 1.2 %, 95th percentile 19 %).

The default stays the whole band (``bandwidth=1.0``), because the band left out costs accuracy on
recordings at the model's own rate: on FSDD, whose speakers' recording chains differ most there
(one loses 45 dB from 3.4 to 3.9 kHz, another none), the default detector's AUROC is 0.892 instead
of 0.902 on unseen digits and 0.966 instead of 0.980 on an unseen speaker (3 seeds), and the
figures of ``benchmarks/AUDIO_ANOMALY.md`` are those of the whole band. Instead, a whole-band
model that is given recordings at another rate says so (:class:`ResampledAudioWarning`): choose
``bandwidth=0.9`` when the recordings to be scored come at several rates.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from oddkit.data.audio import AudioData, LogMel, _check_rate, as_waveforms
from oddkit.data.preprocess import TablePreprocessor
from oddkit.exceptions import DataError, ModelFileError, OddkitWarning, ParameterError

__all__ = ["BANDWIDTH", "EXPLAIN_GROUPINGS", "REPRESENTATIONS", "AudioFeatures", "AudioPreprocessor",
           "ResampledAudioWarning", "explain_recordings", "explained_features", "warn_if_resampled"]

REPRESENTATIONS = ("stats", "mfcc", "patch", "frames")
"""The representations :class:`AudioFeatures` offers."""

EXPLAIN_GROUPINGS = ("feature", "band", "coefficient", "statistic", "segment")
"""How :func:`explain_recordings` can sum the per-feature shares (see :meth:`AudioFeatures.feature_groups`;
which apply to which representation: :meth:`AudioFeatures.groupings`)."""

_GROUPINGS = {"mfcc": ("coefficient", "statistic", "feature"), "stats": ("band", "statistic", "feature"),
              "patch": ("band", "segment", "feature"), "frames": ("band", "segment", "feature")}
# Why a grouping does not apply to the representations without it (for the errors that say so).
GROUPING_LIMITS = {"band": "they are cepstral coefficients, not mel bands",
                   "coefficient": "they are log-mel bands, not cepstral coefficients",
                   "statistic": "they keep time instead of pooling it into statistics",
                   "segment": "they pool over time, so they have no time segments"}

_STATE_VERSION = 1

FLOOR_RANGE = (1e-30, 1.0)
"""The log-mel ``floor`` :class:`AudioFeatures` accepts (and a saved model may hold): from -300 dB
to 0 dB, the order of a full-scale sine's mel power. Below, float32 rounds it to zero and silence
gives ``-inf``; above, it drowns the sounds themselves (1e300 overflows float32 to ``inf``)."""

MAX_FRAMES_PER_WINDOW = 64
"""The most analysis windows overlapping one sample (``n_fft / hop_length``): the spectrogram of a
recording holds about ``4 * n_fft / hop_length`` bytes per sample (the defaults: 3.2 windows,
librosa's: 4)."""

BANDWIDTH = 0.9
"""The ``bandwidth`` of :class:`AudioFeatures` for scores that do not depend on a recording's rate:
the share of the Nyquist frequency below the transition band of the usual resamplers'
anti-aliasing filters (see the module's notes), so that a recording resampled to the model's rate
gives the features it gives at that rate."""


class ResampledAudioWarning(OddkitWarning):
    """Recordings at another rate than the model's were resampled to it, and the model analyses the
    band up to the Nyquist frequency, which resampling alters: their scores may differ from those the
    same sounds get at the model's rate (on FSDD, the default detector, 8 kHz recordings resampled to
    16 kHz: 190 of 2,100 scores moved by more than a tenth of the training scores' range; with
    ``bandwidth=0.9``, 2; ``docs/guide/audio.md``). Fit with ``AudioFeatures(bandwidth=0.9)`` for scores
    that depend far less on the rate."""


class AudioFeatures:
    """Turn recordings into fixed-length rows of log-mel features.

    Parameters
    ----------
    representation : {"mfcc", "stats", "patch", "frames"}, default="mfcc"
        ``"stats"``: per mel band the mean and standard deviation over frames and the standard
        deviation of the frame-to-frame change, and the log of the trimmed duration
        (``3 * n_mels + 1`` values). ``"mfcc"``: the mean and standard deviation of ``n_mfcc``
        MFCCs (``2 * n_mfcc`` values). ``"patch"``: the trimmed log-mel spectrogram resampled in time to
        ``n_frames`` frames, flattened (``n_frames * n_mels`` values). ``"frames"``: one row per
        frame (see the module's description).
    n_frames : int, default=32
        Frames of the ``"patch"`` representation (at the default 10 ms hop, 0.32 s of frames for a
        word stretched or squeezed to it).
    n_mfcc : int, default=20
        Cepstral coefficients of the ``"mfcc"`` representation (at most ``n_mels``).
    context : int, default=2
        Frames on either side of each frame in the ``"frames"`` representation (edges repeat the
        first and last frame).
    trim_db : float or None, default=30.0
        Leading and trailing parts quieter than this many decibels below the recording's loudest
        frame are cut before the features are computed (the rule of ``librosa.effects.trim``, with
        each frame's energy measured up to ``fmax``); None keeps them.
    floor : float, optional
        Added to the mel power before its logarithm (:class:`~oddkit.data.audio.LogMel`'s ``floor``).
        Default: 1e-10 (-100 dB, librosa's ``amin``) for ``"mfcc"``, where quiet bands shape every
        coefficient; 1e-5 (-50 dB, LogMel's default) for the log-mel representations.
    sample_rate : int, optional
        Rate the recordings are resampled to. Default: the training recordings' rate.
    n_mels, n_fft, hop_length, fmin
        The :class:`~oddkit.data.audio.LogMel` settings (defaults: its defaults at the sample rate).
    fmax : float, optional
        Highest frequency analysed, in Hz, at most half the sample rate. Default: ``bandwidth``
        times half the sample rate.
    bandwidth : float, default=1.0
        Share of the Nyquist frequency analysed when ``fmax`` is not given, in (0, 1]. 1.0 (the
        whole band) is the most accurate on recordings at the model's rate; :data:`BANDWIDTH` (0.9)
        leaves out the band that resampling from another rate alters, so that recordings arriving at
        several rates score alike (on FSDD, for 0.01-0.014 AUROC; see the module's notes).

    Attributes
    ----------
    log_mel_ : LogMel
        The spectrogram settings, at the fitted sample rate.
    sample_rate_ : int
    n_features_ : int
        Width of the rows :meth:`transform` returns.
    feature_names_ : list of str
        One name per value, e.g. ``"mel0_mean"`` or ``"t3_mel12"``.

    Examples
    --------
    >>> from oddkit.data.audio import synthetic_speech
    >>> data = synthetic_speech(n_speakers=2, n_words=2, n_takes=2, seconds=0.2)
    >>> AudioFeatures().fit(data).transform(data).shape
    (8, 40)
    >>> AudioFeatures(representation="stats").fit(data).transform(data).shape
    (8, 121)
    """

    def __init__(self, representation: str = "mfcc", n_frames: int = 32, n_mfcc: int = 20, context: int = 2,
                 trim_db: float | None = 30.0, floor: float | None = None,
                 sample_rate: int | None = None, n_mels: int = 40, n_fft: int | None = None,
                 hop_length: int | None = None, fmin: float = 20.0, fmax: float | None = None,
                 bandwidth: float = 1.0):
        self.representation = representation
        self.n_frames = n_frames
        self.n_mfcc = n_mfcc
        self.context = context
        self.trim_db = trim_db
        self.floor = floor
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.fmin = fmin
        self.fmax = fmax
        self.bandwidth = bandwidth

    def __repr__(self) -> str:
        return f"AudioFeatures(representation={self.representation!r}, n_frames={self.n_frames!r}, " \
               f"trim_db={self.trim_db!r}, sample_rate={self.sample_rate!r})"

    _PARAMS = ("representation", "n_frames", "n_mfcc", "context", "trim_db", "floor", "sample_rate", "n_mels", "n_fft",
               "hop_length", "fmin", "fmax", "bandwidth")

    def clone(self) -> AudioFeatures:
        """An unfitted copy with the same parameters."""
        return AudioFeatures(**{name: getattr(self, name) for name in self._PARAMS})

    def _check_params(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise ParameterError(f"representation must be one of {', '.join(REPRESENTATIONS)}, "
                                 f"got {self.representation!r}")
        if isinstance(self.n_frames, bool) or not isinstance(self.n_frames, Integral) or not 2 <= self.n_frames <= 4096:
            raise ParameterError(f"n_frames must be a whole number from 2 to 4096, got {self.n_frames!r}")
        if isinstance(self.n_mfcc, bool) or not isinstance(self.n_mfcc, Integral) or not 1 <= self.n_mfcc <= 128:
            raise ParameterError(f"n_mfcc must be a whole number from 1 to 128, got {self.n_mfcc!r}")
        if isinstance(self.context, bool) or not isinstance(self.context, Integral) or not 0 <= self.context <= 64:
            raise ParameterError(f"context must be a whole number from 0 to 64, got {self.context!r}")
        if self.trim_db is not None and (isinstance(self.trim_db, bool) or not isinstance(self.trim_db, Real)
                                         or not math.isfinite(self.trim_db) or self.trim_db <= 0):
            raise ParameterError(f"trim_db must be a positive number of decibels or None, got {self.trim_db!r}")
        if isinstance(self.bandwidth, bool) or not isinstance(self.bandwidth, Real) \
                or not 0 < self.bandwidth <= 1:
            raise ParameterError(f"bandwidth must be a share of the Nyquist frequency in (0, 1], got {self.bandwidth!r}")

    def fit(self, recordings: AudioData, y=None) -> AudioFeatures:
        """Fix the sample rate (the recordings' unless ``sample_rate`` is set) and the log-mel settings."""
        self._check_params()
        if not isinstance(recordings, AudioData):
            raise DataError(f"AudioFeatures.fit takes AudioData (see oddkit.data.audio.read_audio), got "
                            f"{type(recordings).__name__}")
        rate = recordings.sample_rate if self.sample_rate is None else _check_rate(self.sample_rate)
        floor = self.floor if self.floor is not None else 1e-10 if self.representation == "mfcc" else 1e-5
        fmax = self.fmax if self.fmax is not None else None if self.bandwidth == 1 else self.bandwidth * rate / 2
        self.log_mel_ = LogMel(rate, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels,
                               fmin=self.fmin, fmax=fmax, floor=floor)
        _check_spectrogram(self.log_mel_, ParameterError)
        self.trim_in_band_ = True
        if self.representation == "mfcc" and self.n_mfcc > self.log_mel_.n_mels:
            raise ParameterError(f"n_mfcc ({self.n_mfcc}) must be at most n_mels ({self.log_mel_.n_mels}): the "
                                 "coefficients are computed from the mel bands")
        self._set_fitted()
        return self

    def _set_fitted(self) -> None:
        self.sample_rate_ = self.log_mel_.sample_rate
        n_mels = self.log_mel_.n_mels
        if self.representation == "stats":
            self.feature_names_ = ([f"mel{i}_mean" for i in range(n_mels)] + [f"mel{i}_std" for i in range(n_mels)]
                                   + [f"mel{i}_delta_std" for i in range(n_mels)] + ["log_duration"])
        elif self.representation == "mfcc":
            n = self.n_mfcc
            self.feature_names_ = [f"mfcc{i}_mean" for i in range(n)] + [f"mfcc{i}_std" for i in range(n)]
        elif self.representation == "patch":
            self.feature_names_ = [f"t{t}_mel{i}" for t in range(self.n_frames) for i in range(n_mels)]
        else:
            self.feature_names_ = [f"t{t:+d}_mel{i}" for t in range(-self.context, self.context + 1)
                                   for i in range(n_mels)]
        self.n_features_ = len(self.feature_names_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "log_mel_"):
            raise DataError("this AudioFeatures is not fitted yet; call fit(recordings) first")

    def trimmed(self, waveform: np.ndarray) -> np.ndarray:
        """``waveform`` without its quiet start and end (unchanged when ``trim_db`` is None or when
        trimming would leave less than one analysis window).

        The rule of ``librosa.effects.trim``: frames (``n_fft`` samples every ``hop_length``, centred)
        whose energy is more than ``trim_db`` below the loudest frame's are cut from both ends. The
        energy is that of the frequencies up to ``fmax`` (:func:`trim_silence`'s ``max_frequency``),
        so that a sound above the analysed band, which resampling may remove, does not move the cut
        (models saved before this rule measure the whole band, as they were fitted). Written here
        with NumPy because importing ``librosa.effects`` costs seconds (numba compilation).
        """
        if self.trim_db is None:
            return waveform
        mel = self.log_mel_
        band = mel.fmax if getattr(self, "trim_in_band_", False) else None
        return trim_silence(waveform, float(self.trim_db), mel.n_fft, mel.hop_length, max_frequency=band,
                            sample_rate=mel.sample_rate)

    def _waveforms(self, recordings) -> list[np.ndarray]:
        """``recordings``' waveforms at ``sample_rate_``, with a :class:`ResampledAudioWarning` when some
        were made at another rate and the features reach into the band resampling alters
        (:func:`warn_if_resampled`)."""
        if isinstance(recordings, AudioData):
            warn_if_resampled(recordings.rates_read(), self.sample_rate_, self.log_mel_.fmax, stacklevel=5)
        return as_waveforms(recordings, self.sample_rate_)

    def frames(self, recordings) -> list[np.ndarray]:
        """The trimmed log-mel frames of each recording, float32 (n_frames_i, n_mels)."""
        self._check_fitted()
        return [self.log_mel_.transform_one(self.trimmed(w)) for w in self._waveforms(recordings)]

    def cepstra(self, frames: np.ndarray) -> np.ndarray:
        """MFCCs of log-mel ``frames`` (n_frames, n_mels): float64 (n_frames, n_mfcc).

        librosa's ``feature.mfcc`` (type-II DCT, orthonormal, across the bands) of the log-mel power in
        decibels, as librosa computes MFCCs from a waveform (``10 log10`` of the mel power plus the
        log-mel ``floor``; librosa's ``top_db`` clipping 80 dB below the loudest bin is left out: on
        FSDD it changed no feature that mattered, see ``benchmarks/AUDIO_ANOMALY.md``).
        """
        import librosa.feature

        decibels = (10.0 / math.log(10.0)) * np.asarray(frames, dtype=np.float64).T
        return librosa.feature.mfcc(S=decibels, n_mfcc=int(self.n_mfcc)).T

    def _row(self, frames: np.ndarray, n_samples: int) -> np.ndarray:
        if self.representation == "mfcc":
            cepstra = self.cepstra(frames)
            return np.concatenate([cepstra.mean(axis=0), cepstra.std(axis=0)])
        if self.representation == "stats":
            delta = np.diff(frames, axis=0) if len(frames) > 1 else np.zeros_like(frames)
            duration = math.log(max(n_samples, 1) / self.sample_rate_)
            return np.concatenate([frames.mean(axis=0), frames.std(axis=0), delta.std(axis=0), [duration]])
        positions = np.linspace(0.0, len(frames) - 1.0, self.n_frames)
        source = np.arange(len(frames), dtype=np.float64)
        patch = np.stack([np.interp(positions, source, frames[:, i]) for i in range(frames.shape[1])], axis=1)
        return patch.reshape(-1)

    def frame_rows(self, recordings) -> list[np.ndarray]:
        """The ``"frames"`` rows of each recording apart: float32 arrays (n_frames_i, n_features_)."""
        self._check_fitted()
        if self.representation != "frames":
            raise DataError(f"frame_rows works on the 'frames' representation only; this AudioFeatures computes "
                            f"{self.representation!r}")
        out = []
        for frames in self.frames(recordings):
            frames = frames - frames.mean(axis=0, keepdims=True)
            padded = np.pad(frames, ((self.context, self.context), (0, 0)), mode="edge")
            windows = [padded[i:i + len(frames)] for i in range(2 * self.context + 1)]
            out.append(np.concatenate(windows, axis=1).astype(np.float32))
        return out

    def transform(self, recordings) -> np.ndarray:
        """One row per recording (per frame for ``"frames"``), float32 of shape (n_rows, n_features_).

        ``recordings``: :class:`~oddkit.data.audio.AudioData` (resampled to ``sample_rate_`` when its
        rate differs), or waveforms already at ``sample_rate_``.
        """
        self._check_fitted()
        if self.representation == "frames":
            return np.concatenate(self.frame_rows(recordings), axis=0)
        rows = []
        for wave in self._waveforms(recordings):
            cut = self.trimmed(wave)
            rows.append(self._row(self.log_mel_.transform_one(cut).astype(np.float64), len(cut)))
        return np.asarray(rows, dtype=np.float32)

    def fit_transform(self, recordings: AudioData, y=None) -> np.ndarray:
        """:meth:`fit` then :meth:`transform`."""
        return self.fit(recordings).transform(recordings)

    # -- naming the features -------------------------------------------------------------------

    def band_edges(self) -> np.ndarray:
        """Lower and upper edge in Hz of each mel band's triangular filter, float64 (n_mels, 2)
        (librosa's Slaney mel scale, as :class:`~oddkit.data.audio.LogMel` builds its filters)."""
        import librosa

        self._check_fitted()
        mel = self.log_mel_
        points = librosa.mel_frequencies(n_mels=mel.n_mels + 2, fmin=mel.fmin, fmax=mel.fmax)
        return np.stack([points[:-2], points[2:]], axis=1)

    def groupings(self) -> tuple[str, ...]:
        """The ``by`` values of :meth:`feature_groups` that apply to this representation, the default
        first: ``("coefficient", "statistic", "feature")`` for ``"mfcc"``, ``("band", "statistic",
        "feature")`` for ``"stats"``, ``("band", "segment", "feature")`` for ``"patch"`` and
        ``"frames"``."""
        return _GROUPINGS[self.representation]

    def feature_groups(self, by: str | None = None) -> list[str]:
        """A readable group name for each feature (in :attr:`feature_names_`'s order).

        Parameters
        ----------
        by : {"feature", "band", "coefficient", "statistic", "segment"}, optional
            ``"feature"``: the feature names themselves. ``"band"`` (log-mel representations): the
            mel band with its frequency range (e.g. ``"mel12 (1090-1310 Hz)"``); the duration is
            ``"duration"``. ``"coefficient"`` (``"mfcc"``): the cepstral coefficient (``"mfcc3"``).
            ``"statistic"`` (``"stats"`` and ``"mfcc"``): ``"mean"``, ``"std"``, ``"delta_std"`` or
            ``"duration"``. ``"segment"`` (``"patch"`` and ``"frames"``, which keep time): the time
            step, e.g. ``"t3 of 16"`` (a sixteenth of the trimmed recording) or ``"t-1"`` (one frame
            before the centre). Default: the first of :meth:`groupings` (``"coefficient"`` for MFCCs,
            ``"band"`` otherwise).

        Returns
        -------
        list of str

        Raises
        ------
        ParameterError
            ``by`` is not one of the above, or does not apply to this representation (the message
            names those that do).
        """
        self._check_fitted()
        allowed = self.groupings()
        by = allowed[0] if by is None else by
        if by not in EXPLAIN_GROUPINGS:
            raise ParameterError(f"by must be one of {', '.join(EXPLAIN_GROUPINGS)}, got {by!r}")
        if by not in allowed:
            raise ParameterError(f"grouping by {by} does not apply to {self.representation!r} features "
                                 f"({GROUPING_LIMITS[by]}); group by {', '.join(allowed)}")
        names = self.feature_names_
        if by == "feature":
            return list(names)
        if by == "statistic":
            return ["duration" if n == "log_duration" else n.split("_", 1)[1] for n in names]
        if by == "segment":
            if self.representation == "patch":
                return [f"{n.split('_', 1)[0]} of {self.n_frames}" for n in names]
            return [n.split("_", 1)[0] for n in names]
        if by == "coefficient":
            return [n.split("_", 1)[0] for n in names]
        bands = [f"mel{i} ({lo:.0f}-{hi:.0f} Hz)" for i, (lo, hi) in enumerate(self.band_edges())]
        return ["duration" if n == "log_duration" else bands[int(n.rsplit("mel", 1)[1].split("_", 1)[0])]
                for n in names]

    # -- saving --------------------------------------------------------------------------------

    def get_config(self) -> dict:
        """The fitted settings as a JSON-safe dict."""
        self._check_fitted()
        return {"representation": self.representation, "n_frames": int(self.n_frames), "n_mfcc": int(self.n_mfcc),
                "context": int(self.context),
                "trim_db": None if self.trim_db is None else float(self.trim_db), "log_mel": self.log_mel_.get_config(),
                "trim_in_band": bool(getattr(self, "trim_in_band_", False))}

    @classmethod
    def from_config(cls, config: dict, n_features: int | None = None) -> AudioFeatures:
        """Rebuild a fitted :class:`AudioFeatures` from :meth:`get_config`'s dict, validating it.

        Parameters
        ----------
        config : dict
            What :meth:`get_config` returned.
        n_features : int, optional
            The width the rows must have (the saved columns'): checked before the feature names
            are built, so that settings implying millions of columns are refused at once.

        Returns
        -------
        AudioFeatures
            Fitted.

        Raises
        ------
        ModelFileError
            A key missing or unknown, a value ``fit`` refuses, or a width other than ``n_features``.
        """
        keys = {"representation", "n_frames", "n_mfcc", "context", "trim_db", "log_mel", "trim_in_band"}
        # Folders saved before the MFCC representation have no "n_mfcc" (and never an "mfcc" representation);
        # folders saved before the trimming measured the analysed band only have no "trim_in_band".
        given = set(config) if isinstance(config, dict) else set()
        if not isinstance(config, dict) or not given <= keys or not keys - {"n_mfcc", "trim_in_band"} <= given \
                or ("n_mfcc" not in config and config.get("representation") == "mfcc") \
                or not isinstance(config.get("trim_in_band", False), bool):
            raise ModelFileError(f"the saved audio features must have the keys {sorted(keys)}")
        log_mel = LogMel.from_config(config["log_mel"])
        self = cls(representation=config["representation"], n_frames=config["n_frames"],
                   n_mfcc=config.get("n_mfcc", 20), context=config["context"],
                   trim_db=config["trim_db"], floor=log_mel.floor,
                   sample_rate=log_mel.sample_rate, n_mels=log_mel.n_mels, n_fft=log_mel.n_fft,
                   hop_length=log_mel.hop_length, fmin=log_mel.fmin, fmax=log_mel.fmax)
        try:
            self._check_params()
            if self.representation == "mfcc" and self.n_mfcc > log_mel.n_mels:
                raise ParameterError(f"n_mfcc ({self.n_mfcc}) exceeds n_mels ({log_mel.n_mels})")
        except ParameterError as exc:
            raise ModelFileError(f"the saved audio features are invalid: {exc}") from None
        if n_features is not None:
            width = _width(self.representation, log_mel.n_mels, int(self.n_mfcc), int(self.n_frames),
                           int(self.context))
            if width != n_features:
                raise ModelFileError(f"the saved audio features make {width} columns, but the model was saved with "
                                     f"{n_features}")
        self.log_mel_ = log_mel
        self.trim_in_band_ = bool(config.get("trim_in_band", False))
        self._set_fitted()
        return self


def _width(representation: str, n_mels: int, n_mfcc: int, n_frames: int, context: int) -> int:
    """The number of columns :meth:`AudioFeatures.transform` makes with these settings."""
    if representation == "stats":
        return 3 * n_mels + 1
    if representation == "mfcc":
        return 2 * n_mfcc
    if representation == "patch":
        return n_frames * n_mels
    return (2 * context + 1) * n_mels


def _check_spectrogram(log_mel: LogMel, error: type[Exception], prefix: str = "") -> None:
    """Refuse log-mel settings that :class:`LogMel` takes but that make no usable features: a
    ``floor`` outside :data:`FLOOR_RANGE` (features of ``-inf`` or ``inf``), or more than
    :data:`MAX_FRAMES_PER_WINDOW` windows over each sample (a spectrogram of gigabytes for a
    recording of seconds).

    Parameters
    ----------
    log_mel : LogMel
        The settings.
    error : type of Exception
        Raised: :class:`~oddkit.exceptions.ParameterError` at ``fit``,
        :class:`~oddkit.exceptions.ModelFileError` for a saved model.
    prefix : str, default=""
        Put before the message.
    """
    low, high = FLOOR_RANGE
    if not low <= log_mel.floor <= high:
        raise error(f"{prefix}the log-mel floor must be from {low:g} to {high:g}, got {log_mel.floor!r}")
    if log_mel.n_fft > MAX_FRAMES_PER_WINDOW * log_mel.hop_length:
        raise error(f"{prefix}n_fft ({log_mel.n_fft}) must be at most {MAX_FRAMES_PER_WINDOW} times hop_length "
                    f"({log_mel.hop_length}), or each sample is analysed more than {MAX_FRAMES_PER_WINDOW} times")


def warn_if_resampled(rates, model_rate: int, fmax: float, stacklevel: int = 2,
                      remedy: str = "fit with AudioFeatures(bandwidth=0.9)") -> None:
    """A :class:`ResampledAudioWarning` when recordings made at ``rates`` (one per recording, before
    any resampling) reach a model at ``model_rate`` that analyses up to ``fmax`` Hz, above
    :data:`BANDWIDTH` of the Nyquist frequency of the lower of the two rates: the band the resampler's
    anti-aliasing filter alters (see the module's notes). ``remedy`` ends the message: how to fit a
    model whose scores do not depend on the rate."""
    rates = np.asarray(rates, dtype=np.int64).reshape(-1)
    other = rates != model_rate
    altered = int(np.count_nonzero(fmax > BANDWIDTH * np.minimum(rates[other], model_rate) / 2 + 1e-9))
    if altered:
        found = ", ".join(f"{int(r):,} Hz" for r in np.unique(rates[other])[:3])
        warnings.warn(
            f"{altered:,} of {len(rates):,} recordings were made at another rate ({found}) and resampled to the "
            f"model's {model_rate:,} Hz; the model analyses up to {fmax:,.0f} Hz, into the band resampling alters, "
            f"so their scores can differ from those of the same sounds recorded at the model's rate ({remedy} "
            "for scores that depend far less on the rate)", ResampledAudioWarning,
            stacklevel=stacklevel + 1)


def _band_power(windows: np.ndarray, max_frequency: float, sample_rate: int) -> np.ndarray:
    """Energy of each frame (row of ``windows``) at frequencies up to ``max_frequency``: its
    Hann-windowed power spectrum summed over those bins (the Hann window, as in the spectrogram,
    keeps a louder sound above the band from leaking into it). Computed in blocks of frames."""
    frame_length = windows.shape[1]
    window = np.hanning(frame_length + 1)[:-1]
    keep = np.fft.rfftfreq(frame_length, 1.0 / sample_rate) <= max_frequency
    block = max(1, 2 ** 22 // frame_length)
    return np.concatenate([(np.abs(np.fft.rfft(windows[i:i + block] * window, axis=1)[:, keep]) ** 2).sum(axis=1)
                           for i in range(0, len(windows), block)])


def trim_silence(waveform: np.ndarray, top_db: float, frame_length: int, hop_length: int,
                 max_frequency: float | None = None, sample_rate: int | None = None) -> np.ndarray:
    """``waveform`` with the leading and trailing frames quieter than ``top_db`` below the loudest
    frame removed (as ``librosa.effects.trim``); the waveform itself when fewer than ``frame_length``
    samples would remain.

    Parameters
    ----------
    waveform : array-like of shape (n_samples,)
    top_db : float
        Frames more than this many decibels below the loudest frame are quiet.
    frame_length, hop_length : int
        Frames of ``frame_length`` samples every ``hop_length`` samples, centred (zero padding).
    max_frequency : float, optional
        Measure each frame's energy at frequencies up to this many Hz only (needs ``sample_rate``).
        Default, or at or above half of ``sample_rate``: the frame's mean square, all frequencies.
    sample_rate : int, optional
        The waveform's rate.

    Returns
    -------
    numpy.ndarray of float32
        A slice of ``waveform``.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if max_frequency is not None and sample_rate is None:
        raise ParameterError("trim_silence: max_frequency needs the waveform's sample_rate")
    padded = np.pad(waveform.astype(np.float64), frame_length // 2)
    if len(padded) < frame_length:
        return waveform
    windows = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length]
    if max_frequency is not None and max_frequency < sample_rate / 2:
        power = _band_power(windows, float(max_frequency), int(sample_rate))
    else:
        power = np.mean(windows ** 2, axis=1)
    loud = np.flatnonzero(10.0 * np.log10(np.maximum(power, 1e-20) / max(float(power.max()), 1e-20)) > -top_db)
    if loud.size == 0:
        return waveform
    start, stop = loud[0] * hop_length, min(len(waveform), (loud[-1] + 1) * hop_length)
    cut = waveform[start:stop]
    return cut if len(cut) >= frame_length else waveform


class AudioPreprocessor(TablePreprocessor):
    """Recordings -> standardised rows: :class:`AudioFeatures`, then a :class:`TablePreprocessor`
    fitted on the training recordings' features (each feature centred on its median and scaled as
    the table preprocessor does).

    Parameters
    ----------
    features : AudioFeatures, optional
        The feature settings (default ``AudioFeatures()``); fitted by :meth:`fit`.

    Attributes
    ----------
    features_ : AudioFeatures
        The fitted features.
    sample_rate_ : int
        The rate recordings are resampled to.
    """

    def __init__(self, features: AudioFeatures | None = None):
        super().__init__()
        self.features = features

    def __repr__(self) -> str:
        return f"AudioPreprocessor(features={self.features!r})"

    def _frame(self, rows: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(rows.astype(np.float64), columns=self.features_.feature_names_)

    def fit(self, recordings: AudioData) -> AudioPreprocessor:  # type: ignore[override]
        """Fit the features' settings and the standardisation on training recordings."""
        features = AudioFeatures() if self.features is None else self.features
        if not isinstance(features, AudioFeatures):
            raise ParameterError(f"features must be an AudioFeatures, got {type(features).__name__}")
        self.features_ = features.clone().fit(recordings)
        self.sample_rate_ = self.features_.sample_rate_
        self.raw_training_rows_ = self.features_.transform(recordings)
        super().fit(self._frame(self.raw_training_rows_))
        return self

    def transform(self, recordings) -> np.ndarray:  # type: ignore[override]
        """Recordings (resampled to ``sample_rate_``) -> float32 rows (n, n_outputs_)."""
        if not isinstance(recordings, AudioData):
            raise DataError(f"a model trained on recordings scores AudioData (oddkit.data.audio.read_audio), got "
                            f"{type(recordings).__name__}")
        return self.transform_rows(self.features_.transform(recordings))

    def transform_rows(self, rows: np.ndarray) -> np.ndarray:
        """Already computed feature rows (:meth:`AudioFeatures.transform`) -> standardised rows."""
        return super().transform(self._frame(np.asarray(rows)))

    def get_state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays, table_meta = super().get_state()
        return arrays, {"kind": "audio", "version": _STATE_VERSION, "features": self.features_.get_config(),
                        "table": table_meta}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict) -> AudioPreprocessor:
        """Rebuild from :meth:`get_state`'s output, checking every value (raises
        :class:`~oddkit.exceptions.ModelFileError`)."""
        keys = {"kind", "version", "features", "table"}
        if not isinstance(meta, dict) or set(meta) != keys or meta["kind"] != "audio":
            raise ModelFileError(f"the saved audio preprocessing is malformed: expected the keys {sorted(keys)}")
        if meta["version"] != _STATE_VERSION:
            raise ModelFileError(f"unknown audio preprocessing version {meta['version']!r}")
        table = TablePreprocessor.from_state(arrays, meta["table"])
        features = AudioFeatures.from_config(meta["features"], n_features=len(table.feature_names_in_))
        _check_spectrogram(features.log_mel_, ModelFileError, "the saved audio features are invalid: ")
        if list(table.feature_names_in_) != features.feature_names_ or table.categorical_columns_:
            raise ModelFileError("the saved audio preprocessing's columns do not match its feature settings")
        self = cls(features)
        self.__dict__.update({k: v for k, v in table.__dict__.items() if k != "features"})
        self.features_ = features
        self.sample_rate_ = features.sample_rate_
        return self


def audio_settings(detector: Any) -> AudioFeatures | None:
    """The fitted :class:`AudioFeatures` of a detector trained on recordings, else None."""
    preprocessor = getattr(detector, "preprocessor_", None)
    return preprocessor.features_ if isinstance(preprocessor, AudioPreprocessor) else None


def explained_features(detector: Any) -> AudioFeatures | None:
    """The :class:`AudioFeatures` naming the columns of ``detector.explain(recordings)``: the
    features of a detector trained on recordings, or those a voice-conversion model describes its
    per-band, per-stretch shares with (``explanation_features``); None for other detectors."""
    features = audio_settings(detector)
    if features is None and callable(getattr(detector, "explanation_features", None)):
        features = detector.explanation_features()
    return features


def explain_recordings(detector: Any, recordings, by: str | None = None) -> pd.DataFrame:
    """Each recording's share of its anomaly score carried by each mel band, MFCC coefficient,
    statistic or time segment of the features a detector trained on recordings computes.

    ``detector.explain(recordings)`` splits the score per feature (``mel12_mean``, ``t3_mel12``, ...;
    how each detector splits its score: :mod:`oddkit.explain`); this sums those shares over the
    features of each group :meth:`AudioFeatures.feature_groups` names.

    Parameters
    ----------
    detector : fitted detector
        Trained on recordings (:class:`~oddkit.data.audio.AudioData`), with an ``explain`` method,
        or a :class:`~oddkit.detectors.VoiceConversion` (whose shares are per mel band and stretch
        of time of its reconstruction error: group them by ``"band"`` or ``"segment"``).
    recordings : AudioData
        The recordings to explain (resampled to the model's rate when theirs differs).
    by : {"feature", "band", "coefficient", "statistic", "segment"}, optional
        The grouping (see :meth:`AudioFeatures.feature_groups`); default ``"coefficient"`` for an
        MFCC model, ``"band"`` for the others. Those that apply to a model:
        ``explained_features(detector).groupings()``.

    Returns
    -------
    pandas.DataFrame of shape (n_recordings, n_groups)
        Indexed by the recordings' files; one column per group, in the order of the features.
        A row's shares sum to 1 where the detector's do.

    Examples
    --------
    >>> import oddkit
    >>> from oddkit.data.audio import synthetic_speech
    >>> data = synthetic_speech(n_speakers=2, n_words=2, n_takes=3, seconds=0.2)
    >>> data.features = AudioFeatures(representation="stats")  # per mel band; the default MFCCs: per coefficient
    >>> shares = explain_recordings(oddkit.GaussianDetector().fit(data), data.subset([0]))
    >>> shares.shape, shares.columns[0]
    ((1, 41), 'mel0 (20-133 Hz)')
    """
    features = explained_features(detector)
    if features is None:
        raise DataError(f"explain_recordings explains a detector trained on recordings; this "
                        f"{type(detector).__name__} was not (use its explain method)")
    groups = features.feature_groups(by)
    shares = detector.explain(recordings)
    return shares.T.groupby(np.asarray(groups), sort=False).sum().T
