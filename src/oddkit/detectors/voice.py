"""Voice conversion: who speaks and what is said, learned apart from recordings (AdaIN-VC)."""

from __future__ import annotations

from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from oddkit.detectors.base import BaseDetector, refuse_sparse, training_fingerprint
from oddkit.detectors.params import Interval, fraction_below_one, non_negative_float, positive_float, positive_int
from oddkit.exceptions import DataError, EmptyDataError, ModelFileError, OddkitWarning, ParameterError, TooFewRowsError

_LOG_MEL_KEYS = {"n_fft", "hop_length", "n_mels", "fmin", "fmax", "floor"}

EXPLAIN_SEGMENTS = 8
"""Equal stretches of frames :meth:`VoiceConversion.explain` cuts a recording into."""

MIN_FRAMES = 2
"""Fewest log-mel frames the networks take (instance normalisation needs two). A recording with
fewer (shorter than ``hop_length`` samples: 80 at 8 kHz) is run with its frame repeated, as training
pads short utterances with their edge frames, and the outputs are cut back to its own frames."""


SILENT_DB = 10.0
"""A recording none of whose log-mel cells (one mel band in one frame) rises this many decibels above
the spectrogram's ``floor`` is silent to the model: what it sees is the floor. Converted, a silent
source gives sound the decoder makes up, with no words (on FSDD 13 dB fainter than a conversion of
speech; on the synthetic speech as loud), and a silent reference a made-up voice.
:meth:`VoiceConversion.convert` refuses either. For scale, at the default floor: digital silence
is -65 dB, white noise at -60 dBFS +2 dB, the quietest FSDD recording (loudest 32 ms at -46 dBFS)
+23 dB and the median FSDD recording +48 dB."""

QUIET_DB = 20.0
"""A source or reference whose loudest log-mel cell rises less than this many decibels above the
floor (but at least :data:`SILENT_DB`) is converted with a :class:`QuietRecordingWarning`: most
of it is at the floor, and the conversion is poor."""


class QuietRecordingWarning(OddkitWarning):
    """A recording given to :meth:`VoiceConversion.convert` is so quiet that most of its spectrogram
    lies at the floor; the conversion was made, but is poor. Raise the recording's level."""


class VoiceConversion(BaseDetector):
    """One-shot voice conversion by separating speaker and content (AdaIN-VC), trained without labels.

    ``fit(recordings)`` learns from speech alone — no transcripts, no speaker labels, no parallel
    recordings — the three networks of Chou, Yeh and Lee (2019) over log-mel frames
    (:class:`oddkit.nn.speech.VoiceConversionNet`): a *content encoder* whose instance
    normalisation (without affine parameters) takes away each channel's mean and spread over the
    utterance, where the voice lives, and whose narrow bottleneck (``content_dim`` numbers per
    frame) leaves room for little else than what is said; a *speaker encoder* that averages the
    whole utterance into one vector; and a *decoder* that puts a voice back with adaptive instance
    normalisation from that vector. Training reconstructs each utterance (random segments of
    ``segment_frames`` frames) from its own two codes, with Gaussian noise on the content code
    (``content_noise``) and the paper's small KL term (``kl_weight``).

    :meth:`convert` then decodes the content of one utterance with the speaker vector of another,
    and turns the log-mel frames back into audio by Griffin-Lim. The reconstruction error of an
    utterance from its own codes is also an anomaly score (``decision_function``: higher = less like
    the training speech), with the threshold set from ``contamination`` as for every detector.

    Recordings are an :class:`oddkit.data.audio.AudioData`, a path (a WAV/FLAC file, a folder of
    them or an FSDD-style ``.npz``, read by :func:`oddkit.data.audio.read_audio`), or 1-D waveforms
    (one array or a list) with their ``sample_rate``. The model keeps its sample rate and log-mel
    settings; recordings at another rate are resampled.

    Parameters
    ----------
    channels : int, default=96
        Width of every convolution. Training time grows with its square; fewer (e.g. 48) train
        faster and convert less well (``benchmarks/VOICE_CONVERSION.md``).
    content_dim : int, default=4
        Numbers per frame in the content code (the bottleneck).
    speaker_dim : int, default=64
        Size of the speaker vector.
    n_blocks : int, default=2
        Residual blocks of two convolutions in each of the three networks.
    kernel_size : int, default=5
        Frames each convolution sees (odd).
    instance_norm : bool, default=True
        Instance normalisation in the content encoder (False is the ablation without it).
    speaker_encoder : bool, default=True
        Learn a speaker encoder (False is the ablation without it: the decoder always gets the same
        learned vector, so a conversion only re-synthesises the source).
    kl_weight : float, default=0.01
        Weight of the KL term on the content code.
    content_noise : float, default=0.3
        Standard deviation of the Gaussian noise added to the (standardised) content code while
        training only, never when scoring or converting. Noise keeps the decoder from reading fine
        detail of the code, which pushes what is left of the voice out of it; too much noise drowns
        what is said. The paper uses 1; the default was chosen on FSDD
        (``benchmarks/VOICE_CONVERSION.md``); 0 adds none.
    segment_frames : int, default=32
        Length of the training segments in frames (shorter utterances are padded with their edge
        frames).
    sample_rate : int, optional
        Rate the model works at; default the training recordings' rate.
    spectrogram : dict, optional
        Log-mel settings other than the rate (``n_fft``, ``hop_length``, ``n_mels``, ``fmin``,
        ``fmax``, ``floor``), passed to :class:`oddkit.data.audio.LogMel`; default its defaults.
        The default spectrogram reaches the Nyquist frequency, which resampling alters, so
        recordings made at another rate score differently (a
        :class:`~oddkit.data.audio_features.ResampledAudioWarning` says so; on synthetic speech,
        16 kHz copies of 8 kHz recordings moved scores by 6.7 % at the median);
        ``{"fmax": 0.9 * sample_rate / 2}`` (``oddkit fit --audio-bandwidth 0.9``) leaves that band
        out (0.04 %), and the converted audio with it.
    griffin_lim_iter : int, default=32
        Griffin-Lim iterations when turning converted frames into audio.
    epochs : int, default=40
        Most passes over the training segments.
    batch_size : int, default=32
    lr : float, default=1e-3
        Adam's learning rate.
    validation_fraction : float, default=0.1
        Share of segments held out for early stopping (none below 8 segments).
    patience : int, default=10
        Epochs without a better held-out loss before training stops (the best weights are kept).
    contamination : float, default=0.1
        Share of training utterances above the anomaly threshold.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.
    n_threads : int, optional
        Threads torch may use for training and inference.
    random_state : int, RandomState instance or None
        Seed of the weights, the segments' order and the noise; the same seed gives the same model.
    verbose : int, default=1
        Show a progress bar while training.

    Attributes
    ----------
    model_ : oddkit.nn.speech.VoiceConversionNet
        The trained networks (evaluation mode).
    log_mel_ : oddkit.data.audio.LogMel
        The spectrogram settings, saved with the model.
    sample_rate_ : int
        Rate of the audio the model takes and returns.
    speakers_ : ndarray or None
        The distinct speaker labels ``fit`` was given (None when trained without them).
    preprocessor_ : oddkit.data.TablePreprocessor
        Standardisation of each mel band (mean and spread over every training frame).
    n_features_in_ : int
        Mel bands per frame.
    history_ : dict
        Training and held-out losses per epoch (absent from a loaded model).
    decision_scores_, threshold_, labels_
        As for every detector: reconstruction errors of the training utterances, the threshold,
        the training labels.

    References
    ----------
    J. Chou, C. Yeh and H. Lee, "One-shot voice conversion by separating speaker and content
    representations with instance normalization", Interspeech 2019, arXiv:1904.05742.

    Examples
    --------
    >>> from oddkit.data.audio import synthetic_speech
    >>> from oddkit.detectors.voice import VoiceConversion
    >>> data = synthetic_speech(n_speakers=2, n_words=2, n_takes=3, seconds=0.3)
    >>> vc = VoiceConversion(epochs=2, random_state=0, verbose=0).fit(data)
    >>> wave = vc.convert(data.waveforms[0], data.waveforms[-1])  # word 0 of speaker 0 in speaker 1's voice
    >>> wave.dtype, vc.speaker_embedding(data).shape
    (dtype('float32'), (12, 64))
    """

    _parameter_constraints: dict = {
        "channels": [positive_int],
        "content_dim": [positive_int],
        "speaker_dim": [positive_int],
        "n_blocks": [Interval(Integral, 0, None, closed="left")],
        "kernel_size": [positive_int],
        "instance_norm": ["boolean"],
        "speaker_encoder": ["boolean"],
        "kl_weight": [non_negative_float],
        "content_noise": [non_negative_float],
        "segment_frames": [Interval(Integral, 4, None, closed="left")],
        "sample_rate": [Interval(Integral, 1000, 384_000, closed="both"), None],
        "spectrogram": [dict, None],
        "griffin_lim_iter": [positive_int],
        "epochs": [positive_int],
        "batch_size": [positive_int],
        "lr": [positive_float],
        "validation_fraction": [fraction_below_one],
        "patience": [positive_int, None],
    }

    def __init__(self, channels=96, content_dim=4, speaker_dim=64, n_blocks=2, kernel_size=5, instance_norm=True,
                 speaker_encoder=True, kl_weight=0.01, content_noise=0.3, segment_frames=32, sample_rate=None, spectrogram=None,
                 griffin_lim_iter=32, epochs=40, batch_size=32, lr=1e-3, validation_fraction=0.1, patience=10,
                 contamination=0.1, device="cpu", n_threads=None, random_state=None, verbose=1):
        self.channels = channels
        self.content_dim = content_dim
        self.speaker_dim = speaker_dim
        self.n_blocks = n_blocks
        self.kernel_size = kernel_size
        self.instance_norm = instance_norm
        self.speaker_encoder = speaker_encoder
        self.kl_weight = kl_weight
        self.content_noise = content_noise
        self.segment_frames = segment_frames
        self.sample_rate = sample_rate
        self.spectrogram = spectrogram
        self.griffin_lim_iter = griffin_lim_iter
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.contamination = contamination
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def _check_param_combinations(self) -> None:
        if self.kernel_size % 2 == 0:
            raise ParameterError(f"VoiceConversion: kernel_size must be odd (frames centred on each frame), "
                                 f"got {self.kernel_size!r}")
        if self.spectrogram is not None:
            unknown = sorted(set(self.spectrogram) - _LOG_MEL_KEYS)
            if unknown:
                raise ParameterError(f"VoiceConversion: spectrogram takes the keys {sorted(_LOG_MEL_KEYS)}, got "
                                     f"{unknown} (the rate is the sample_rate parameter)")

    # -- recordings in -----------------------------------------------------------------------------

    def _waveforms(self, recordings, sample_rate, target_rate: int | None, what: str) -> tuple[list, int]:
        """Recordings as float32 waveforms at ``target_rate`` (or at their own rate when None)."""
        from oddkit.data.audio import AudioData, as_waveforms, read_audio, resample

        refuse_sparse(recordings)
        if isinstance(recordings, (str, Path)):
            recordings = read_audio(recordings, sample_rate=target_rate)
        if isinstance(recordings, AudioData):
            if sample_rate is not None and int(sample_rate) != recordings.sample_rate:
                raise DataError(f"{what}: sample_rate={sample_rate} was given but the AudioData is at "
                                f"{recordings.sample_rate} Hz; leave sample_rate out for AudioData")
            if len(recordings) == 0:
                raise EmptyDataError(f"{what}: no recordings given; pass at least one")
            rate = recordings.sample_rate if target_rate is None else target_rate
            self._warn_if_resampled(recordings.rates_read(), target_rate)
            return as_waveforms(recordings, rate), rate
        rate = sample_rate if sample_rate is not None else target_rate
        if rate is None:
            raise DataError(f"{what}: waveforms were given without their rate; give the sample_rate argument "
                            "(samples per second), or an AudioData from oddkit.data.audio.read_audio")
        waves = as_waveforms(recordings, int(rate))
        self._warn_if_resampled([int(rate)] * len(waves), target_rate)
        if target_rate is not None and int(rate) != target_rate:
            waves = [resample(w, int(rate), target_rate) for w in waves]
            rate = target_rate
        return waves, int(rate)

    def _warn_if_resampled(self, rates, target_rate: int | None) -> None:
        """The spectrogram reaches the Nyquist frequency: say when recordings made at other ``rates``
        are resampled to ``target_rate`` (:func:`oddkit.data.audio_features.warn_if_resampled`)."""
        if target_rate is not None:
            from oddkit.data.audio_features import warn_if_resampled

            warn_if_resampled(rates, target_rate, self.log_mel_.fmax, stacklevel=5,
                              remedy=f"fit with spectrogram={{'fmax': {0.9 * target_rate / 2:g}}}, 0.9 of "
                                     "the Nyquist frequency,")

    def _frames(self, waves: list, raw: list | None = None) -> list[np.ndarray]:
        """Standardised log-mel frames of each waveform, float32 (n_mels, n_frames); ``raw``: their
        log-mel frames already computed (``self.log_mel_.transform(waves)``)."""
        return [np.ascontiguousarray(self.preprocessor_.transform(f.astype(np.float64)).T)
                for f in (self.log_mel_.transform(waves) if raw is None else raw)]

    def _level_above_floor(self, raw: np.ndarray) -> float:
        """How many decibels the loudest cell of a recording's log-mel frames ``raw`` (one mel band in
        one frame, before standardisation) rises above the spectrogram's floor."""
        floor = self.log_mel_.floor
        power = float(np.exp(np.float64(raw.max()))) - floor
        return 10.0 * np.log10(max(power, 1e-30) / floor)

    def _segments(self, frames: list[np.ndarray], speaker_codes: np.ndarray) -> np.ndarray:
        """Every utterance cut into segments of ``segment_frames`` frames, half overlapping (the last
        one ends on the last frame; shorter utterances are padded with their edge frames), float32
        (n_segments, n_mels + 1, segment_frames): the last row holds the utterance's speaker code, so
        that batches and the held-out split keep each segment with its speaker."""
        length = int(self.segment_frames)
        segments = []
        for f, code in zip(frames, speaker_codes):
            if f.shape[1] < length:
                f = np.pad(f, ((0, 0), (0, length - f.shape[1])), mode="edge")
            starts = list(range(0, f.shape[1] - length + 1, max(1, length // 2)))
            if starts[-1] != f.shape[1] - length:
                starts.append(f.shape[1] - length)
            segments.extend(np.vstack([f[:, s:s + length], np.full((1, length), code)]) for s in starts)
        return np.stack(segments).astype(np.float32)

    @staticmethod
    def _speaker_codes(X, speakers, n: int) -> tuple[np.ndarray | None, np.ndarray]:
        """The distinct speakers and each recording's index into them (None and -1 without speakers)."""
        from oddkit.data.audio import AudioData
        from oddkit.data.labels import encode_classes

        if speakers is None:
            return None, np.full(n, -1, dtype=np.int64)
        if isinstance(speakers, str):
            if not isinstance(X, AudioData) or speakers not in X.labels.columns:
                columns = list(X.labels.columns) if isinstance(X, AudioData) else []
                raise DataError(f"VoiceConversion.fit: speakers={speakers!r} names a column of an AudioData's labels "
                                f"({columns}); pass recordings read with read_audio, or one speaker label per "
                                "recording")
            speakers = X.labels[speakers].to_numpy()
        return encode_classes(speakers, n, "VoiceConversion.fit")

    # -- fitting -----------------------------------------------------------------------------------

    def _build_module(self, n_mels: int):
        from oddkit.nn.speech import VoiceConversionNet

        return VoiceConversionNet(n_mels, channels=int(self.channels), content_dim=int(self.content_dim),
                                  speaker_dim=int(self.speaker_dim), n_blocks=int(self.n_blocks),
                                  kernel_size=int(self.kernel_size), instance_norm=bool(self.instance_norm),
                                  speaker_encoder=bool(self.speaker_encoder))

    def fit(self, X, y=None, speakers=None, sample_rate=None):
        """Learn the content and speaker encoders and the decoder from recordings ``X``.

        Parameters
        ----------
        X : AudioData, path, 1-D array or list of 1-D arrays
            Speech recordings (at least two); no transcripts and no parallel recordings.
        y : ignored
        speakers : array-like of shape (n_recordings,) or str, optional
            Who speaks in each recording (a str names a column of an AudioData's ``labels``, e.g.
            ``"group"`` for the sub-folders of a folder, ``"speaker"`` for the FSDD archive).
            Without them each segment is reconstructed with its own speaker vector, as in the
            paper. With them, with the speaker vector of another segment of the same speaker in the
            batch: the speaker vector is then of no use for what was said, and carries the voice
            only (on FSDD, where a time-averaged digit is recognisable, this is what keeps the
            digit through a conversion; see ``benchmarks/VOICE_CONVERSION.md``).
        sample_rate : int, optional
            Rate of waveforms given as arrays (an AudioData or a file carries its own).

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            A parameter outside its allowed values (checked before ``X`` is read).
        DataError, EmptyDataError, TooFewRowsError
            No or a single recording, an empty, damaged or non-finite one (the file or the
            recording's position is named), waveforms without their rate.
        """
        import torch

        from oddkit.data import TablePreprocessor
        from oddkit.data.audio import LogMel
        from oddkit.nn.disentangle import same_class_partners
        from oddkit.nn.speech import voice_conversion_loss
        from oddkit.train import fit_module, resolve_device, seeded, torch_threads

        self._validate_params()
        waves, rate = self._waveforms(X, sample_rate, self.sample_rate, "VoiceConversion.fit")
        if len(waves) < 2:
            raise TooFewRowsError(f"VoiceConversion.fit needs at least 2 recordings, got {len(waves)}")
        self.speakers_, speaker_codes = self._speaker_codes(X, speakers, len(waves))
        self.log_mel_ = LogMel(sample_rate=rate, **(self.spectrogram or {}))
        self.sample_rate_ = rate
        raw = self.log_mel_.transform(waves)
        self.preprocessor_ = TablePreprocessor().fit(np.concatenate(raw).astype(np.float64))
        self.n_features_in_ = self.log_mel_.n_mels
        self.training_fingerprint_ = training_fingerprint(np.concatenate(waves))
        self.n_training_rows_ = len(waves)
        frames = [np.ascontiguousarray(self.preprocessor_.transform(f.astype(np.float64)).T) for f in raw]
        segments = self._segments(frames, speaker_codes)
        device = resolve_device(self.device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        kl_weight = float(self.kl_weight)
        noise_std = float(self.content_noise)

        with_speakers = self.speakers_ is not None

        def row_loss(module, batch, generator):
            x = batch[:, :-1]
            reference = None
            if with_speakers:
                reference = x[same_class_partners(batch[:, -1, 0].to(torch.int64), generator)]
            return voice_conversion_loss(module, x, kl_weight, generator, reference, noise_std)

        with torch_threads(self.n_threads), seeded(seed) as generator:
            module = self._build_module(self.n_features_in_).to(device)
            history = fit_module(module, row_loss, torch.from_numpy(segments).to(device), epochs=int(self.epochs),
                                 batch_size=int(self.batch_size), lr=float(self.lr),
                                 validation_fraction=float(self.validation_fraction), patience=self.patience,
                                 generator=generator, verbose=int(self.verbose), description="voice conversion")
        self.model_ = module.eval()
        self.history_ = history.to_dict()

        self.decision_scores_ = self._checked_training_scores(self._reconstruction_errors(frames))
        self._set_score_statistics(self.decision_scores_)
        self._set_contamination_threshold()  # the threshold's provenance and miss-cost column reset too
        return self

    def fit_predict(self, X, y=None, speakers=None, sample_rate=None) -> np.ndarray:
        """Fit on ``X`` (see :meth:`fit`) and return the training labels ``labels_``."""
        return self.fit(X, speakers=speakers, sample_rate=sample_rate).labels_

    # -- the networks on whole utterances -----------------------------------------------------------

    def _run(self, function, frames: list[np.ndarray]) -> list[np.ndarray]:
        """``function(tensor (1, n_mels, T)) -> tensor`` on each utterance, without gradients.

        An utterance of fewer than :data:`MIN_FRAMES` frames is padded with its last frame (as
        :meth:`_segments` pads at training time) and the outputs over time are cut back to its T
        frames, so every caller sees outputs of the utterance's own length."""
        import torch

        from oddkit.train import torch_threads

        device = next(self.model_.parameters()).device
        outputs = []
        with torch_threads(self.n_threads), torch.no_grad():
            for f in frames:
                length = f.shape[1]
                if length < MIN_FRAMES:
                    f = np.pad(f, ((0, 0), (0, MIN_FRAMES - length)), mode="edge")
                out = function(torch.from_numpy(np.ascontiguousarray(f))[None].to(device))[0].cpu().numpy()
                if length < MIN_FRAMES and out.ndim >= 2 and out.shape[-1] == MIN_FRAMES:
                    out = out[..., :length]
                outputs.append(out)
        return outputs

    def _reconstruction_errors(self, frames: list[np.ndarray]) -> np.ndarray:
        outputs = self._run(self.model_, frames)
        return np.array([np.abs(out - f).mean() for out, f in zip(outputs, frames)], dtype=np.float64)

    def decision_function(self, X, sample_rate=None) -> np.ndarray:
        """Anomaly score of each recording: the mean absolute error of its standardised log-mel frames
        reconstructed from its own content and speaker codes (higher = less like the training speech).

        Parameters
        ----------
        X : AudioData, path, 1-D array or list of 1-D arrays
            Recordings; at another rate than the model's they are resampled.
        sample_rate : int, optional
            Rate of waveforms given as arrays (default: the model's).

        Returns
        -------
        ndarray of float64, shape (n_recordings,)
            A recording silent to the model (no log-mel cell :data:`SILENT_DB` dB above the
            spectrogram's floor: digital silence, a muted take) scores at least
            :meth:`out_of_range_score`, an anomaly: it holds no speech, although the model rebuilds
            its flat spectrogram easily (on a model fitted on 300 FSDD recordings, silence scored 0.18
            against 0.55 for the median speech recording before this rule, and was labelled normal).
        """
        check_is_fitted(self)
        waves = self._waveforms(X, sample_rate, self.sample_rate_, "decision_function")[0]
        raw = self.log_mel_.transform(waves)
        frames = self._frames(waves, raw)
        # Each utterance's frame of largest magnitude stands for it in the out-of-range check: it is
        # clipped at the standardised bound if any frame is.
        loudest = np.stack([f[:, np.abs(f).max(axis=0).argmax()] for f in frames])
        scores = self._guarded_scores(self._reconstruction_errors(frames), loudest)
        silent = np.array([self._level_above_floor(r) < SILENT_DB for r in raw])
        if silent.any():
            scores[silent] = np.maximum(scores[silent], self.out_of_range_score())
        return scores

    def predict(self, X, sample_rate=None) -> np.ndarray:
        """1 for recordings scoring at or above ``threshold_`` (anomalies), 0 otherwise."""
        return (self.decision_function(X, sample_rate) >= self.threshold_).astype(np.int64)

    def predict_proba(self, X, method: str = "auto", sample_rate=None) -> np.ndarray:
        """Probability of each recording being normal (column 0) and anomalous (column 1); see
        :meth:`oddkit.detectors.base.BaseDetector.predict_proba`."""
        return self.proba_from_scores(self.decision_function(X, sample_rate), method)

    def explain(self, X, sample_rate=None) -> pd.DataFrame:
        """Each recording's share of its anomaly score carried by each mel band in each part of it.

        The score (:meth:`decision_function`) is the mean absolute reconstruction error over the
        recording's standardised log-mel frames and bands; here the recording is cut into
        :data:`EXPLAIN_SEGMENTS` equal stretches of frames (the last ones empty, with zero shares,
        when it has fewer frames), and each (stretch, band) cell gets its summed error divided by
        the recording's whole: an exact split, the shares of a row sum to 1 (all zero for a
        recording reconstructed perfectly) and none is negative.

        The columns are named and ordered as the ``"patch"`` features of
        :class:`~oddkit.data.audio_features.AudioFeatures` (``t3_mel12``: band 12 in the fourth
        stretch), so :func:`~oddkit.data.audio_features.explain_recordings` sums them per mel band
        (``by="band"``) or per stretch of time (``by="segment"``), as for the other detectors
        trained on recordings; :meth:`explanation_features` describes them.

        Parameters
        ----------
        X : AudioData, path, 1-D array or list of 1-D arrays
            Recordings, as for :meth:`decision_function`.
        sample_rate : int, optional
            Rate of waveforms given as arrays (default: the model's).

        Returns
        -------
        pandas.DataFrame of shape (n_recordings, EXPLAIN_SEGMENTS * n_mels)
            Indexed by the recordings' files for an AudioData or a path (index name ``"file"``),
            else by position.
        """
        check_is_fitted(self)
        from oddkit.data.audio import AudioData, read_audio

        if isinstance(X, (str, Path)):
            X = read_audio(X, sample_rate=self.sample_rate_)
        frames = self._frames(self._waveforms(X, sample_rate, self.sample_rate_, "explain")[0])
        rows = []
        for out, f in zip(self._run(self.model_, frames), frames):
            error = np.abs(out.astype(np.float64) - f)  # (n_mels, n_frames)
            cells = np.stack([part.sum(axis=1) for part in np.array_split(error, EXPLAIN_SEGMENTS, axis=1)])
            total = cells.sum()
            rows.append((cells / total if total > 0 else np.zeros_like(cells)).reshape(-1))
        features = self.explanation_features()
        index = (pd.Index(X.labels["file"].astype(str).to_numpy(), name="file") if isinstance(X, AudioData)
                 else pd.RangeIndex(len(rows)))
        return pd.DataFrame(np.asarray(rows), columns=features.feature_names_, index=index)

    def explanation_features(self):
        """The :class:`~oddkit.data.audio_features.AudioFeatures` whose feature names and groups
        (mel bands with their frequencies, stretches of time) are :meth:`explain`'s columns: the
        ``"patch"`` representation of :data:`EXPLAIN_SEGMENTS` steps over this model's log-mel
        settings."""
        check_is_fitted(self)
        from oddkit.data.audio_features import AudioFeatures

        return AudioFeatures.from_config({"representation": "patch", "n_frames": EXPLAIN_SEGMENTS, "n_mfcc": 1,
                                          "context": 0, "trim_db": None, "log_mel": self.log_mel_.get_config()})

    def speaker_embedding(self, X, sample_rate=None) -> np.ndarray:
        """The speaker vector of each recording, float32 of shape (n_recordings, speaker_dim)."""
        check_is_fitted(self)
        frames = self._frames(self._waveforms(X, sample_rate, self.sample_rate_, "speaker_embedding")[0])
        return np.stack(self._run(self.model_.speaker, frames)).astype(np.float32)

    def content_codes(self, X, sample_rate=None) -> list[np.ndarray]:
        """The content code of each recording, one float32 array (n_frames, content_dim) each."""
        check_is_fitted(self)
        frames = self._frames(self._waveforms(X, sample_rate, self.sample_rate_, "content_codes")[0])
        return [code.T.astype(np.float32) for code in self._run(self.model_.content, frames)]

    def _one(self, recording, sample_rate, what: str) -> np.ndarray:
        waves = self._waveforms(recording, sample_rate, self.sample_rate_, what)[0]
        if len(waves) != 1:
            raise DataError(f"{what} must be one recording, got {len(waves)}; convert them one at a time")
        return waves[0]

    def _check_audible(self, wave: np.ndarray, raw: np.ndarray, recording, role: str) -> None:
        """Refuse a ``role`` ("source" or "reference") recording that is silent to the model (no log-mel
        cell :data:`SILENT_DB` above the floor); warn when it is barely above (:data:`QUIET_DB`).
        ``raw``: its log-mel frames before standardisation."""
        import warnings

        above = self._level_above_floor(raw)
        if above >= QUIET_DB:
            return
        n_fft, hop = self.log_mel_.n_fft, self.log_mel_.hop_length
        padded = np.pad(np.asarray(wave, dtype=np.float64), n_fft // 2)
        if len(padded) < n_fft:
            padded = np.pad(padded, (0, n_fft - len(padded)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
        loudest = float(np.sqrt(np.mean(windows ** 2, axis=1)).max())
        level = "digital silence (every sample 0)" if loudest == 0 else \
            f"its loudest {1000 * n_fft / self.sample_rate_:.0f} ms reach {20 * np.log10(loudest):.0f} dBFS"
        name = f"{role} {Path(recording).name}" if isinstance(recording, (str, Path)) else role
        if above < SILENT_DB:
            consequence = ("there are no words in it to convert (the output would be sound the decoder makes up "
                           "from nothing)" if role == "source" else
                           "there is no voice in it to take (the output would be in a made-up voice)")
            raise DataError(f"{name} is silent: {level}; no mel band of any frame rises {SILENT_DB:g} dB above the "
                            f"spectrogram's floor, so {consequence}. Check that the file holds the recording (not an "
                            f"empty, muted or cut take), or raise its level")
        warnings.warn(f"{name} is very quiet ({level}): its loudest mel band rises only {above:.0f} dB above the "
                      f"spectrogram's floor (speech usually {QUIET_DB:g} dB or more), so most of it is lost and the "
                      "conversion is poor; raise its level (normalise it) and convert again",
                      QuietRecordingWarning, stacklevel=4)

    def convert_spectrogram(self, source, reference, sample_rate=None) -> np.ndarray:
        """The log-mel frames of ``source`` said in the voice of ``reference`` (before Griffin-Lim).

        Returns
        -------
        ndarray of float32, shape (n_frames of source, n_mels)
            In :attr:`log_mel_`'s units (natural log of mel power).

        Raises
        ------
        DataError
            ``source`` or ``reference`` is silent to the model: none of its log-mel cells rises
            :data:`SILENT_DB` (10) dB above the spectrogram's floor (digital silence, a muted or
            empty take, or a level some 60 dB below speech). A conversion from it would be sound
            the decoder makes up.

        Warns
        -----
        QuietRecordingWarning
            ``source`` or ``reference`` rises less than :data:`QUIET_DB` (20) dB above the floor:
            converted, but poorly.
        """
        check_is_fitted(self)
        import torch

        waves = [self._one(source, sample_rate, "source"), self._one(reference, sample_rate, "reference")]
        raw = self.log_mel_.transform(waves)
        for wave, frames, recording, role in zip(waves, raw, (source, reference), ("source", "reference")):
            self._check_audible(wave, frames, recording, role)
        source_frames, reference_frames = [np.ascontiguousarray(self.preprocessor_.transform(f.astype(np.float64)).T)
                                           for f in raw]
        speaker = self._run(self.model_.speaker, [reference_frames])[0]
        speaker = torch.from_numpy(speaker)[None]
        converted = self._run(lambda x: self.model_.decode(self.model_.content(x), speaker.to(x.device)),
                              [source_frames])[0]
        return self.preprocessor_.inverse_transform(converted.T).to_numpy(dtype=np.float32)

    def convert(self, source, reference, sample_rate=None) -> np.ndarray:
        """What ``source`` says, in the voice of ``reference``: a waveform at :attr:`sample_rate_`.

        Parameters
        ----------
        source, reference : 1-D array, path or AudioData of one recording
            Two recordings (any speakers, neither needs to be in the training data); arrays at
            ``sample_rate`` (default the model's), files and AudioData at their own rate, resampled.
        sample_rate : int, optional
            Rate of the arrays given.

        Returns
        -------
        ndarray of float32, shape (len(source) at the model's rate,)
            The converted log-mel frames (:meth:`convert_spectrogram`) turned into audio by
            Griffin-Lim (``griffin_lim_iter`` iterations, seeded: the same call gives the same
            waveform), values in [-1, 1].

        Raises
        ------
        DataError
            ``source`` or ``reference`` is silent to the model (see :meth:`convert_spectrogram`):
            a silent source would come out as faint sound with no words, a silent reference in a
            made-up voice.

        Warns
        -----
        QuietRecordingWarning
            ``source`` or ``reference`` is barely above silence; the conversion is poor.
        """
        log_mel = self.convert_spectrogram(source, reference, sample_rate)
        length = len(self._one(source, sample_rate, "source"))
        return self.log_mel_.inverse(log_mel, n_iter=int(self.griffin_lim_iter), length=length, random_state=0)

    # -- persistence -----------------------------------------------------------------------------

    def _get_model_state(self) -> tuple[dict[str, np.ndarray], dict, dict[str, bytes]]:
        arrays = {name: tensor.detach().cpu().numpy() for name, tensor in self.model_.state_dict().items()}
        from oddkit.data.labels import classes_state

        speakers = None if self.speakers_ is None else classes_state(self.speakers_)
        return arrays, {"log_mel": self.log_mel_.get_config(), "speakers": speakers}, {}

    def _set_model_state(self, arrays: dict[str, np.ndarray], meta: dict, files: dict[str, bytes]) -> None:
        from oddkit.data.audio import LogMel
        from oddkit.persist import load_module_weights
        from oddkit.train import resolve_device

        from oddkit.data.labels import restore_classes

        self.log_mel_ = LogMel.from_config(meta["log_mel"])
        self.speakers_ = None if meta["speakers"] is None else restore_classes(meta["speakers"])
        self.sample_rate_ = self.log_mel_.sample_rate
        if self.log_mel_.n_mels != self.n_features_in_:
            raise ModelFileError(f"the saved log-mel settings have {self.log_mel_.n_mels} mel bands but the model "
                                 f"takes {self.n_features_in_}")
        if self.sample_rate is not None and self.sample_rate != self.sample_rate_:
            raise ModelFileError(f"the saved sample_rate parameter ({self.sample_rate}) differs from the log-mel "
                                 f"settings' rate ({self.sample_rate_})")
        try:
            module = load_module_weights(lambda: self._build_module(self.n_features_in_), arrays, "voice conversion")
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"the saved voice conversion networks cannot be built: {exc}") from None
        self.model_ = module.to(resolve_device(self.device)).eval()
