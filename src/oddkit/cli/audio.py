"""Recordings on the command line: the audio branches of 'oddkit fit', 'score', 'evaluate',
'threshold', 'explain' and 'report'.

RECORDINGS is a .wav/.flac file, a folder of them (sub-folders = speakers, classes or machines) or an
.npz of recordings (keys audio, offsets, sample_rate). Anomaly labels for 'evaluate' and 'threshold':
a folder with the sub-folders 'normal' and 'anomaly', or an .npz with a 0/1 array 'y' (or the array
--label-col names). 'fit' on such a labelled folder or .npz trains on the normal recordings only,
unless --keep-anomalies.
"""

from __future__ import annotations

import time
from pathlib import Path

from oddkit.cli._common import _save_model, _score_summary, _thread_limit, _write_table, console, errors
from oddkit.exceptions import OddkitError
from oddkit.model_input import takes_recordings as model_takes_recordings  # noqa: F401 - the commands' name


def is_recordings(path: Path) -> bool:
    """Whether PATH holds recordings (checked before images: a folder of .wav files is not images)."""
    from oddkit.data.audio import is_audio_source

    return is_audio_source(path)




def _anomaly_labels(data, path: Path, label_col: str | None, required: bool):
    """0/1 per recording from 'normal'/'anomaly' sub-folders or the .npz array 'y' (--label-col), else None."""
    import numpy as np

    groups = set(data.labels["group"])
    if groups == {"normal", "anomaly"} or (groups <= {"normal", "anomaly"} and not required and groups):
        return (data.labels["group"] == "anomaly").to_numpy().astype(np.int64)
    if path.suffix.lower() == ".npz":
        key = label_col or "y"
        with np.load(path, allow_pickle=False) as archive:
            if key in archive.files:
                y = np.asarray(archive[key]).reshape(-1)
                if len(y) != len(data) or not np.isin(y, (0, 1)).all():
                    raise OddkitError(f"the labels {key!r} in {path} must be one 0 (normal) or 1 (anomaly) per "
                                      f"recording ({len(data)})")
                return y.astype(np.int64)
    if required:
        raise OddkitError(f"{path} holds no anomaly labels: put the recordings in the sub-folders 'normal' and "
                          "'anomaly', or save a 0/1 array 'y' in the .npz (or name it with --label-col)")
    return None


CLI_REPRESENTATIONS = ("mfcc", "stats", "patch")
"""The values of 'oddkit fit --audio-features': the representations of AudioFeatures with one row per
recording (the "frames" representation gives one row per frame, and scores frames, not recordings)."""


def check_audio_features(value: str | None) -> str | None:
    """--audio-features checked against :data:`CLI_REPRESENTATIONS` (None: the library's default)."""
    if value is None or value in CLI_REPRESENTATIONS:
        return value
    if value == "frames":
        raise OddkitError("--audio-features frames gives one row per frame, and a model fitted on them scores frames, "
                          f"not recordings; 'oddkit fit' takes --audio-features {', '.join(CLI_REPRESENTATIONS)}")
    raise OddkitError(f"--audio-features must be one of {', '.join(CLI_REPRESENTATIONS)}, got {value!r}")


def check_audio_bandwidth(value: float | None) -> float | None:
    """--audio-bandwidth checked: a share of the Nyquist frequency in (0, 1] (None: the whole band)."""
    import math

    if value is None or (math.isfinite(value) and 0 < value <= 1):
        return value
    raise OddkitError(f"--audio-bandwidth is the share of the Nyquist frequency analysed, in (0, 1] (0.9 for "
                      f"scores that do not depend on the recordings' rate), got {value:g}")


def describe_features(features) -> str:
    """A fitted AudioFeatures in words, e.g. 'mfcc: mean and standard deviation of 20 MFCCs of 40 log-mel
    bands (40 features)'."""
    bands = f"{features.log_mel_.n_mels} log-mel bands"
    what = {
        "mfcc": f"mean and standard deviation of {features.n_mfcc} MFCCs of {bands}",
        "stats": f"per band of {bands}: mean, standard deviation and frame-to-frame change; and the duration",
        "patch": f"the spectrogram of {bands} resized to {features.n_frames} frames",
        "frames": f"each frame of {bands} with {features.context} on either side",
    }[features.representation]
    return f"{features.representation}: {what} ({features.n_features_:,} features)"


def fit_recordings(cls, params: dict, data: Path, out: Path, label_col: str | None, keep_anomalies: bool,
                   n_threads: int | None, force: bool, unsupported: list[str], representation: str | None = None,
                   bandwidth: float | None = None) -> None:
    """'oddkit fit RECORDINGS': log-mel features (the model keeps their settings; REPRESENTATION, from
    --audio-features, and BANDWIDTH, from --audio-bandwidth, pick them), then the detector."""
    from oddkit.data.audio import read_audio
    from oddkit.data.audio_features import AudioFeatures

    if unsupported:
        raise OddkitError(f"{', '.join(unsupported)} cannot be used with recordings; leave it out")
    recordings = read_audio(data)
    y = _anomaly_labels(recordings, data, label_col, required=False)
    left_out = ""
    if y is not None and not keep_anomalies:
        if y.all():
            raise OddkitError(f"every recording in {data} is labelled an anomaly; pass --keep-anomalies to train on "
                              "them")
        if y.any():
            left_out = f"; left out the {int(y.sum()):,} recordings labelled anomalies (--keep-anomalies keeps them)"
        recordings = recordings.subset(y == 0)
    if representation is not None or bandwidth is not None:
        chosen = {"representation": representation, "bandwidth": bandwidth}
        recordings.features = AudioFeatures(**{k: v for k, v in chosen.items() if v is not None})
    model = cls(**params)
    started = time.perf_counter()
    with _thread_limit(n_threads):
        model.fit(recordings)
    _save_model(model, out, replace=force)
    features = model.preprocessor_.features_
    console.print(f"trained {cls.__name__} on {len(recordings):,} recordings at {features.sample_rate_} Hz "
                  f"({describe_features(features)}){left_out} in {time.perf_counter() - started:.1f} s; threshold "
                  f"{model.threshold_:.6g} ({model.threshold_goal_}); saved to {out}", markup=False, highlight=False)


def _read_for(detector, data: Path):
    """DATA's recordings for DETECTOR, each resampled once, straight to the model's rate (as the service
    does): a folder mixing rates is not first brought to its commonest rate. The model still warns about
    recordings that came at another rate (their rates are kept)."""
    from oddkit.data.audio import read_audio
    from oddkit.data.audio_features import audio_settings
    from oddkit.model_input import recording_rate_and_band

    features = audio_settings(detector)
    if features is not None and features.representation == "frames":
        raise OddkitError(f"this {type(detector).__name__} model was trained on frames of recordings (audio features "
                          "'frames'): it scores each frame, not a recording; score its frames in Python "
                          "(oddkit.load(MODEL).decision_function)")
    if not is_recordings(data):
        raise OddkitError(f"the model was trained on recordings; pass a .wav/.flac file, a folder of them or an "
                          f".npz of recordings, not {data}")
    return read_audio(data, sample_rate=recording_rate_and_band(detector)[0])


def score_recordings(detector, data: Path, out: Path) -> None:
    """'oddkit score MODEL RECORDINGS': one row per recording (file, group, score, label)."""
    import numpy as np

    recordings = _read_for(detector, data)
    scores = detector.decision_function(recordings)
    labels = (scores >= detector.threshold_).astype(np.int64)
    frame = recordings.labels[["file", "group"]].assign(score=scores, label=labels)
    _write_table(frame, out)
    (errors if str(out) == "-" else console).print(
        _score_summary(detector, len(frame), int(labels.sum()), "recordings", out), markup=False,
        highlight=False)


def explain_recordings(detector, data: Path, top: int, out: Path, by: str | None) -> None:
    """'oddkit explain MODEL RECORDINGS': the TOP highest-scoring recordings, each with its score's
    shares per mel band, MFCC coefficient, statistic or time segment (BY; default the coefficient for
    an MFCC model, the band for the others), the largest in 'top_BY'."""
    import numpy as np
    import pandas as pd

    from oddkit.data.audio_features import GROUPING_LIMITS, EXPLAIN_GROUPINGS, explained_features
    from oddkit.data.audio_features import explain_recordings as shares_per_group

    features = explained_features(detector)
    if features is None:
        raise OddkitError(f"a {type(detector).__name__} scores a recording as a whole, with no per-band split of "
                          "its score; 'oddkit explain' works on detectors fitted on recordings ('oddkit fit RECORDINGS "
                          "--detector ...')")
    allowed = features.groupings()
    flags = ", ".join(f"--by {value}" for value in allowed)
    if by is not None and by not in EXPLAIN_GROUPINGS:
        raise OddkitError(f"--by must be one of {', '.join(EXPLAIN_GROUPINGS)}, got {by!r}; this model takes {flags}")
    if by is not None and by not in allowed:
        raise OddkitError(f"--by {by} does not apply to this model, whose features are {features.representation!r} "
                          f"({GROUPING_LIMITS[by]}); use {flags}")
    by = by or allowed[0]
    recordings = _read_for(detector, data)
    scores = detector.decision_function(recordings)
    order = np.argsort(-scores, kind="stable")[:top]
    shares = shares_per_group(detector, recordings.subset(order), by=by).reset_index(drop=True)
    frame = recordings.labels[["file", "group"]].iloc[order].reset_index(drop=True).assign(
        score=scores[order], label=(scores[order] >= detector.threshold_).astype(np.int64))
    frame[f"top_{by}"] = shares.idxmax(axis=1).to_numpy()
    frame = pd.concat([frame, shares.add_prefix("share_")], axis=1)
    _write_table(frame, out)
    if str(out) != "-":
        console.print(f"explained the {len(frame):,} highest-scoring of {len(scores):,} recordings of {data.name} "
                      f"with {type(detector).__name__} (shares per {by}); wrote {out}", markup=False, highlight=False)


def labelled_recordings(detector, data: Path, label_col: str | None):
    """Anomaly labels and scores of labelled RECORDINGS (for 'evaluate', 'threshold' and 'report')."""
    recordings = _read_for(detector, data)
    y = _anomaly_labels(recordings, data, label_col, required=True)
    return y, detector.decision_function(recordings), recordings


def report_table(detector, data: Path, label_col: str | None):
    """The report's inputs for a model trained on recordings: the model, the recordings' log-mel
    features as a table (one row per recording, indexed by its file; the model scores this table
    exactly as it scores the recordings) and the labels when DATA has them. A voice-conversion
    model, which has no table of features, gets the recordings themselves (the report explains
    them per mel band)."""
    import pandas as pd

    from oddkit.data.audio_features import audio_settings

    recordings = _read_for(detector, data)
    y = _anomaly_labels(recordings, data, label_col, required=False)
    if audio_settings(detector) is None:
        return detector, recordings, y
    raw = detector.preprocessor_.features_.transform(recordings)
    X = pd.DataFrame(raw.astype("float64"), columns=detector.preprocessor_.features_.feature_names_,
                     index=recordings.labels["file"].to_numpy())
    return detector, X, y
