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
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from oddkit.data.audio import AudioData, LogMel, _check_rate, as_waveforms
from oddkit.data.preprocess import TablePreprocessor
from oddkit.exceptions import DataError, ModelFileError, ParameterError

__all__ = ["EXPLAIN_GROUPINGS", "REPRESENTATIONS", "AudioFeatures", "AudioPreprocessor", "explain_recordings",
           "explained_features"]

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
        frame are cut before the features are computed (``librosa.effects.trim``); None keeps them.
    floor : float, optional
        Added to the mel power before its logarithm (:class:`~oddkit.data.audio.LogMel`'s ``floor``).
        Default: 1e-10 (-100 dB, librosa's ``amin``) for ``"mfcc"``, where quiet bands shape every
        coefficient; 1e-5 (-50 dB, LogMel's default) for the log-mel representations.
    sample_rate : int, optional
        Rate the recordings are resampled to. Default: the training recordings' rate.
    n_mels, n_fft, hop_length, fmin, fmax
        The :class:`~oddkit.data.audio.LogMel` settings (defaults: its defaults at the sample rate).

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
                 hop_length: int | None = None, fmin: float = 20.0, fmax: float | None = None):
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

    def __repr__(self) -> str:
        return f"AudioFeatures(representation={self.representation!r}, n_frames={self.n_frames!r}, " \
               f"trim_db={self.trim_db!r}, sample_rate={self.sample_rate!r})"

    _PARAMS = ("representation", "n_frames", "n_mfcc", "context", "trim_db", "floor", "sample_rate", "n_mels", "n_fft",
               "hop_length", "fmin", "fmax")

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

    def fit(self, recordings: AudioData, y=None) -> AudioFeatures:
        """Fix the sample rate (the recordings' unless ``sample_rate`` is set) and the log-mel settings."""
        self._check_params()
        if not isinstance(recordings, AudioData):
            raise DataError(f"AudioFeatures.fit takes AudioData (see oddkit.data.audio.read_audio), got "
                            f"{type(recordings).__name__}")
        rate = recordings.sample_rate if self.sample_rate is None else _check_rate(self.sample_rate)
        floor = self.floor if self.floor is not None else 1e-10 if self.representation == "mfcc" else 1e-5
        self.log_mel_ = LogMel(rate, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels,
                               fmin=self.fmin, fmax=self.fmax, floor=floor)
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
        whose RMS is more than ``trim_db`` below the loudest frame's are cut from both ends. Written
        here with NumPy because importing ``librosa.effects`` costs seconds (numba compilation).
        """
        if self.trim_db is None:
            return waveform
        return trim_silence(waveform, float(self.trim_db), self.log_mel_.n_fft, self.log_mel_.hop_length)

    def frames(self, recordings) -> list[np.ndarray]:
        """The trimmed log-mel frames of each recording, float32 (n_frames_i, n_mels)."""
        self._check_fitted()
        return [self.log_mel_.transform_one(self.trimmed(w)) for w in as_waveforms(recordings, self.sample_rate_)]

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
        for wave in as_waveforms(recordings, self.sample_rate_):
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
                "trim_db": None if self.trim_db is None else float(self.trim_db), "log_mel": self.log_mel_.get_config()}

    @classmethod
    def from_config(cls, config: dict) -> AudioFeatures:
        """Rebuild a fitted :class:`AudioFeatures` from :meth:`get_config`'s dict, validating it
        (raises :class:`~oddkit.exceptions.ModelFileError`)."""
        keys = {"representation", "n_frames", "n_mfcc", "context", "trim_db", "log_mel"}
        # Folders saved before the MFCC representation have no "n_mfcc" (and never an "mfcc" representation).
        if not isinstance(config, dict) or set(config) not in (keys, keys - {"n_mfcc"}) \
                or ("n_mfcc" not in config and config.get("representation") == "mfcc"):
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
        self.log_mel_ = log_mel
        self._set_fitted()
        return self


def trim_silence(waveform: np.ndarray, top_db: float, frame_length: int, hop_length: int) -> np.ndarray:
    """``waveform`` with the leading and trailing frames quieter than ``top_db`` below the loudest
    frame removed (as ``librosa.effects.trim``); the waveform itself when fewer than ``frame_length``
    samples would remain."""
    waveform = np.asarray(waveform, dtype=np.float32)
    padded = np.pad(waveform.astype(np.float64), frame_length // 2)
    if len(padded) < frame_length:
        return waveform
    windows = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length]
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
        features = AudioFeatures.from_config(meta["features"])
        table = TablePreprocessor.from_state(arrays, meta["table"])
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
