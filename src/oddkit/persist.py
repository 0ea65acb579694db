"""Saving and loading detectors as a folder, without pickle.

A saved model is a folder holding ``config.json`` (class, hyper-parameters, preprocessing,
threshold, versions and a sha256 of every other file) and ``weights.safetensors`` (every array:
network weights, preprocessing statistics, training scores). Detectors wrapping a scikit-learn
estimator add ``estimator.skops``. Loading reads JSON, safetensors and skops with an explicit list
of trusted types: a folder from a stranger can make loading fail, never run code.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from pathlib import Path

import numpy as np
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as dump_arrays
from sklearn.utils.validation import check_is_fitted

from oddkit.data import TablePreprocessor
from oddkit.data.image_preprocess import ImagePreprocessor
from oddkit.detectors.base import DETECTORS, BaseDetector
from oddkit.exceptions import ModelFileError, OddkitError

FORMAT = "oddkit-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
# The only file names a model folder may list: the weights, and scikit-learn estimators saved by
# skops, for an ensemble's members too ("member2.estimator.skops").
ALLOWED_FILE = re.compile(r"(member\d+\.)*estimator\.skops")
_PREFIXES = ("detector.", "preprocessor.", "model.")


def _versions() -> dict[str, str]:
    import safetensors
    import sklearn
    import skops
    import torch

    from oddkit import __version__

    return {"oddkit": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "scikit-learn": sklearn.__version__, "skops": skops.__version__,
            "safetensors": safetensors.__version__}


def _json_params(detector: BaseDetector) -> dict:
    params = {}
    for name, value in detector.get_params(deep=False).items():
        if isinstance(value, tuple):
            value = list(value)
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise OddkitError(
                f"cannot save parameter {name}={value!r}: only numbers, strings, lists and None can be "
                "saved (pass random_state as an int, for instance)") from None
        params[name] = value
    return params


def detector_state(detector: BaseDetector) -> tuple[dict[str, np.ndarray], dict, dict[str, bytes]]:
    """Everything needed to rebuild a fitted detector: arrays (for safetensors), JSON metadata
    (class, parameters, fitted attributes, preprocessing, model) and extra files by name."""
    check_is_fitted(detector)
    model_arrays, model_meta, files = detector._get_model_state()
    preprocessor_arrays, preprocessor_meta = detector.preprocessor_.get_state()
    arrays = {"detector.decision_scores": np.asarray(detector.decision_scores_, dtype=np.float64)}
    arrays.update({f"preprocessor.{k}": v for k, v in preprocessor_arrays.items()})
    arrays.update({f"model.{k}": v for k, v in model_arrays.items()})
    names = getattr(detector, "feature_names_in_", None)
    meta = {
        "class": type(detector).__name__,
        "params": _json_params(detector),
        "detector": {
            "n_features_in": int(detector.n_features_in_),
            "feature_names_in": None if names is None else [str(n) for n in names],
            "threshold": detector.threshold_,
            "threshold_goal": detector.threshold_goal_,
            "calibration": None if detector.calibration_ is None else list(detector.calibration_),
            "score_statistics": [detector.score_mean_, detector.score_std_, detector.score_min_, detector.score_max_],
        },
        "preprocessor": preprocessor_meta,
        "model": model_meta,
    }
    return arrays, meta, files


def save(detector: BaseDetector, folder) -> Path:
    """Write a fitted detector to ``folder`` (created if needed; files there of the same names are
    replaced). Returns the folder's path."""
    arrays, meta, files = detector_state(detector)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payloads = {WEIGHTS_FILE: dump_arrays({k: np.ascontiguousarray(v) for k, v in arrays.items()}), **files}
    for name, payload in payloads.items():
        (folder / name).write_bytes(payload)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **meta,
        "versions": _versions(),
        "files": {name: hashlib.sha256(payload).hexdigest() for name, payload in payloads.items()},
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, allow_nan=False) + "\n")
    return folder


def _read_config(folder: Path) -> dict:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ModelFileError(f"{folder} is not a saved oddkit model: {CONFIG_FILE} is missing")
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}); the folder was damaged or edited") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an oddkit model configuration")
    if config.get("format_version") != FORMAT_VERSION:
        saved_by = (config.get("versions") or {}).get("oddkit", "unknown")
        raise ModelFileError(
            f"{folder} was saved in model format {config.get('format_version')!r} (oddkit {saved_by}); "
            f"this oddkit reads format {FORMAT_VERSION}: retrain, or load it with the oddkit that saved it")
    return config


def _read_verified_files(folder: Path, config: dict) -> dict[str, bytes]:
    listed = config.get("files")
    if not isinstance(listed, dict) or WEIGHTS_FILE not in listed:
        raise ModelFileError(f"{folder}/{CONFIG_FILE} does not list {WEIGHTS_FILE} and its checksum")
    files = {}
    for name, digest in listed.items():
        if name != WEIGHTS_FILE and not ALLOWED_FILE.fullmatch(name):
            raise ModelFileError(f"{CONFIG_FILE} names an unexpected file {name!r}")
        path = folder / name
        if not path.is_file():
            raise ModelFileError(f"{path} is missing; copy the whole model folder")
        payload = path.read_bytes()
        if hashlib.sha256(payload).hexdigest() != digest:
            raise ModelFileError(f"{path} does not match the checksum in {CONFIG_FILE}: it was modified or damaged")
        files[name] = payload
    return files


def load(folder) -> BaseDetector:
    """Load a detector saved with ``detector.save(folder)``; it scores exactly as the saved one.

    Raises
    ------
    ModelFileError
        When the folder is missing files, was modified after saving (checksums), names an unknown
        class or parameter, or comes from an incompatible format version.
    """
    folder = Path(folder)
    config = _read_config(folder)
    files = _read_verified_files(folder, config)
    try:
        arrays = load_arrays(files.pop(WEIGHTS_FILE))
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise ModelFileError(f"{WEIGHTS_FILE} is not a valid safetensors file: {exc}") from None
    return restore_detector(config, arrays, files)


def restore_detector(meta: dict, arrays: dict[str, np.ndarray], files: dict[str, bytes]) -> BaseDetector:
    """Rebuild a detector from what :func:`detector_state` produced, checking it on the way."""
    cls = DETECTORS.get(meta.get("class"))
    if cls is None:
        raise ModelFileError(f"the model holds an unknown detector class {meta.get('class')!r}")
    params = meta.get("params")
    allowed = set(cls._get_param_names())
    if not isinstance(params, dict) or not set(params) <= allowed:
        unknown = sorted(set(params) - allowed) if isinstance(params, dict) else params
        raise ModelFileError(f"{CONFIG_FILE} has parameters {unknown} that {cls.__name__} does not take")
    grouped = {prefix: {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)} for prefix in _PREFIXES}

    detector = cls(**params)
    try:
        state = meta["detector"]
        detector.n_features_in_ = int(state["n_features_in"])
        if state["feature_names_in"] is not None:
            detector.feature_names_in_ = np.asarray(state["feature_names_in"], dtype=object)
        preprocessing = meta["preprocessor"]
        if isinstance(preprocessing, dict) and preprocessing.get("kind") == "images":
            detector.preprocessor_ = ImagePreprocessor.from_state(grouped["preprocessor."], preprocessing)
            detector.image_shape_ = detector.preprocessor_.image_shape_
        else:
            detector.preprocessor_ = TablePreprocessor.from_state(grouped["preprocessor."], preprocessing)
        detector.decision_scores_ = grouped["detector."]["decision_scores"]
        detector.score_mean_, detector.score_std_, detector.score_min_, detector.score_max_ = (
            float(v) for v in state["score_statistics"])
        detector.threshold_ = float(state["threshold"])
        detector.threshold_goal_ = str(state["threshold_goal"])
        calibration = state["calibration"]
        detector.calibration_ = None if calibration is None else (float(calibration[0]), float(calibration[1]))
        model_meta = meta["model"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{CONFIG_FILE} is incomplete or malformed ({type(exc).__name__}: {exc})") from None
    detector._set_model_state(grouped["model."], model_meta, files)
    detector.labels_ = (detector.decision_scores_ >= detector.threshold_).astype(np.int64)
    return detector
