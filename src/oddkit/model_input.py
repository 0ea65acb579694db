"""What a fitted model takes as input: a table, images, texts or recordings.

Every front end asks this of a loaded model before it reads data for it: the command line (``oddkit
score``, ``evaluate``, ``explain``, ``report``), the scoring service and the HTML report. One answer,
read from what the fitted model keeps, so that they cannot disagree:

- **recordings**: audio features in its preprocessing (:class:`~oddkit.data.audio_features.AudioPreprocessor`),
  or its own log-mel front end (voice conversion);
- **texts**: a tokenizer in its preprocessing (the text auto-encoders and the readable-code models);
- **images**: the image shape it was fitted on;
- **table**: table preprocessing with named columns.

And, for an ensemble, which detectors it fitted (:func:`fitted_members`): its ``members`` parameter
names what was asked for, which the default gives up on images and recordings for other members.
"""

from __future__ import annotations

from typing import Any

__all__ = ["fitted_members", "image_shape", "input_kind", "recording_rate_and_band", "takes_recordings",
           "text_column"]


def takes_recordings(detector: Any) -> bool:
    """Whether ``detector`` scores recordings: audio features in its preprocessing, or its own log-mel front
    end (voice conversion, which scores by reconstruction error)."""
    from oddkit.data.audio_features import audio_settings

    return audio_settings(detector) is not None or getattr(detector, "log_mel_", None) is not None


def text_column(detector: Any) -> str | None:
    """The text column a model trained on texts reads (``"text"`` when it learned from a list), else None."""
    preprocessor = getattr(detector, "preprocessor_", None)
    if getattr(preprocessor, "tokenizer_", None) is None:
        return None
    return getattr(preprocessor, "text_col_", None) or "text"


def image_shape(detector: Any) -> tuple[int, ...] | None:
    """``(C, H, W)`` of the images a model was trained on, or None for a model of other input."""
    shape = getattr(detector, "image_shape_", None)
    return None if shape is None else tuple(int(v) for v in shape)


def recording_rate_and_band(detector: Any) -> tuple[int, float]:
    """The sample rate (Hz) a model trained on recordings resamples them to, and the highest frequency (Hz)
    it analyses.

    Raises
    ------
    ValueError
        ``detector`` was not trained on recordings (:func:`takes_recordings`).
    """
    from oddkit.data.audio_features import audio_settings

    features = audio_settings(detector)
    log_mel = features.log_mel_ if features is not None else getattr(detector, "log_mel_", None)
    if log_mel is None:
        raise ValueError(f"{type(detector).__name__} was not trained on recordings")
    return int(log_mel.sample_rate), float(log_mel.fmax)


def input_kind(detector: Any) -> str | None:
    """``"recordings"``, ``"texts"``, ``"images"`` or ``"table"``: what ``detector`` scores (None: none of
    these, e.g. a model whose preprocessing is not oddkit's)."""
    if takes_recordings(detector):
        return "recordings"
    if text_column(detector) is not None:
        return "texts"
    if image_shape(detector) is not None:
        return "images"
    preprocessor = getattr(detector, "preprocessor_", None)
    return "table" if preprocessor is not None and hasattr(preprocessor, "kinds_") else None


def fitted_members(detector: Any) -> list[str] | None:
    """The detectors an ensemble fitted, each as its class and the parameters it was given (scikit-learn's
    repr, e.g. ``"LOFDetector(n_neighbors=10)"``), or None for a model that is not an ensemble.

    These can differ from the ensemble's ``members`` parameter: the default members give way to
    ``GradientKNNDetector`` on images and to ``LOFDetector(n_neighbors=10)`` on recordings, and a
    neighbour count is lowered on a small training set."""
    members = getattr(detector, "members_", None)
    if members is None:
        return None
    return [" ".join(repr(member).split()) for member in members]
