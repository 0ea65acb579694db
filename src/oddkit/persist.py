"""Saving and loading detectors as a folder, without pickle; sealing and signing it.

A saved model is a folder holding exactly these regular files:

``config.json``
    Class, hyper-parameters, preprocessing, threshold, drift reference, versions.
``weights.safetensors``
    Every array: network weights, preprocessing statistics, training scores, a drift reference's scores.
``estimator.skops`` (and ``member<i>.estimator.skops``, ``classifier.estimator.skops``)
    A scikit-learn estimator saved by skops, for the detectors that wrap one.
``tokenizer.json``
    A text detector's tokenizer, as the Hugging Face ``tokenizers`` library writes it (JSON).
``integrity.json``
    The sha256 of every other file, ``config.json`` included, and, when the folder was saved with
    a key, an HMAC-SHA256 signature of that list.

Loading refuses, before parsing anything, a folder holding any other entry (unknown names,
sub-folders, symlinks, devices), files over :data:`MAX_FILE_BYTES` (all of them together over
:data:`MAX_FOLDER_BYTES`), pickles and ``torch.save`` archives, and any file whose sha256 differs from
``integrity.json``. skops files are walked and refused unless every node names a type of
:data:`oddkit._trusted.TRUSTED_SKOPS_TYPES`; arrays must be numeric or boolean and finite; every loaded
value is checked as ``fit`` checks it, and network shapes are compared with the architecture before
any network is allocated (a network asking for more layers than the file has weights is stopped while
it is being built).

What the checksums stop and what they do not: they catch damage and any edit of one file made
without rewriting ``integrity.json``. Whoever can write every file of the folder can recompute
them (:func:`seal` does exactly that). Signing closes that gap: ``save(folder, key=...)`` adds an
HMAC-SHA256 over the checksums with a secret key, and ``load(folder, key=...)`` refuses a folder
that is unsigned or signed with another key. The command line signs and verifies with the key in
the environment variable ``ODDKIT_MODEL_KEY`` when it is set.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import math
import os
import platform
import re
import stat
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
from sklearn.utils.validation import check_is_fitted

from oddkit.data import TablePreprocessor
from oddkit.data.image_preprocess import ImagePreprocessor
from oddkit.detectors.base import DETECTORS, BaseDetector
from oddkit.drift import DriftReference, model_fingerprint
from oddkit.exceptions import ModelFileError, OddkitError
from oddkit.threshold import ThresholdProvenance, _check_name

FORMAT = "oddkit-model"
FORMAT_VERSION = 2
INTEGRITY_FORMAT = "oddkit-integrity"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
INTEGRITY_FILE = "integrity.json"
KEY_ENVIRONMENT_VARIABLE = "ODDKIT_MODEL_KEY"
# scikit-learn estimators saved by skops, for an ensemble's members and a transformation
# detector's classifier too ("member2.estimator.skops", "classifier.estimator.skops").
ALLOWED_FILE = re.compile(r"((member\d+|classifier)\.)*estimator\.skops")
TOKENIZER_FILE = "tokenizer.json"
"""A text detector's tokenizer: the Hugging Face ``tokenizers`` library's own JSON (data, no code)."""
MAX_FILE_BYTES = 4 * 1024**3
"""Largest file a model folder may hold (4 GiB); ``config.json`` and ``integrity.json`` at most 64 MiB."""
MAX_METADATA_BYTES = 64 * 1024**2
MAX_FOLDER_BYTES = 8 * 1024**3
"""Largest model folder, all its files together (8 GiB): loading reads every file into memory."""
_PREFIXES = ("detector.", "preprocessor.", "model.")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_SIGNATURE_ALGORITHM = "hmac-sha256"
_NUMERIC_KINDS = "biuf"
_VERSION_TEXT = re.compile(r"[A-Za-z0-9._+!-]{1,100}")


def _versions() -> dict[str, str]:
    """The versions of the libraries a model folder depends on, read from their installed metadata: a
    Gaussian's folder is saved without importing torch to learn its version number."""
    from importlib import import_module, metadata

    from oddkit import __version__

    def version(distribution: str, module: str) -> str:
        if module in sys.modules:  # as imported, if it is
            return sys.modules[module].__version__
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:  # not installed by a package manager: ask the module itself
            return import_module(module).__version__

    return {"oddkit": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "torch": version("torch", "torch"), "scikit-learn": version("scikit-learn", "sklearn"),
            "skops": version("skops", "skops"), "safetensors": version("safetensors", "safetensors")}


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
    reference = getattr(detector, "drift_reference_", None)
    if reference is not None:
        if reference.model_fingerprint != model_fingerprint(detector):
            raise OddkitError("the detector's drift reference was recorded before it was fitted again; record it "
                              "again with oddkit.drift.record_reference, or drop it by setting the detector's "
                              "drift_reference_ to None")
        arrays["detector.drift_reference_scores"] = np.asarray(reference.scores, dtype=np.float64)
    names = getattr(detector, "feature_names_in_", None)
    meta = {
        "class": type(detector).__name__,
        "params": _json_params(detector),
        "detector": {
            "n_features_in": int(detector.n_features_in_),
            "feature_names_in": None if names is None else [str(n) for n in names],
            "threshold": detector.threshold_,
            "threshold_goal": detector.threshold_goal_,
            "threshold_miss_cost_col": getattr(detector, "threshold_miss_cost_col_", None),
            "threshold_provenance": None if getattr(detector, "threshold_provenance_", None) is None
            else detector.threshold_provenance_.to_dict(),
            "calibration": None if detector.calibration_ is None else list(detector.calibration_),
            "score_statistics": [detector.score_mean_, detector.score_std_, detector.score_min_, detector.score_max_],
            "training_fingerprint": getattr(detector, "training_fingerprint_", None),
            "n_training_rows": getattr(detector, "n_training_rows_", None),
            "drift_reference": None if reference is None else reference.to_dict(),
        },
        "preprocessor": preprocessor_meta,
        "model": model_meta,
    }
    return arrays, meta, files


def _key_bytes(key) -> bytes | None:
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise OddkitError(f"a signing key must be non-empty bytes or str, got {type(key).__name__}")
    return bytes(key)


def key_from_environment() -> bytes | None:
    """The signing key in the environment variable ``ODDKIT_MODEL_KEY`` (UTF-8), or None when unset
    or empty."""
    value = os.environ.get(KEY_ENVIRONMENT_VARIABLE)
    return value.encode("utf-8") if value else None


def _manifest_bytes(digests: dict[str, str]) -> bytes:
    """The canonical bytes the signature covers: the format and every file's sha256."""
    return json.dumps({"format": INTEGRITY_FORMAT, "sha256": digests}, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def _sign(key: bytes, digests: dict[str, str]) -> str:
    return hmac.new(key, _manifest_bytes(digests), hashlib.sha256).hexdigest()


def _integrity_document(payloads: dict[str, bytes], key: bytes | None) -> bytes:
    digests = {name: hashlib.sha256(payload).hexdigest() for name, payload in sorted(payloads.items())}
    document = {"format": INTEGRITY_FORMAT, "sha256": digests}
    if key is not None:
        document["signature"] = {"algorithm": _SIGNATURE_ALGORITHM, "value": _sign(key, digests)}
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def save(detector: BaseDetector, folder, key: bytes | str | None = None) -> Path:
    """Write a fitted detector to ``folder`` (created if needed; files there of the same names are
    replaced). Returns the folder's path.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector.
    folder : str or Path
        Where to write ``config.json``, ``weights.safetensors``, any skops files and
        ``integrity.json``.
    key : bytes or str, optional
        A secret key: ``integrity.json`` then holds an HMAC-SHA256 signature of every file's sha256,
        and ``load(folder, key=key)`` accepts the folder only with the same key.

    Raises
    ------
    OddkitError
        A parameter that cannot be saved as JSON, a scikit-learn estimator outside the trusted list,
        or an empty key.
    """
    from safetensors.numpy import save as dump_arrays

    key = _key_bytes(key)
    arrays, meta, files = detector_state(detector)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta, "versions": _versions()}
    payloads = {
        CONFIG_FILE: (json.dumps(config, indent=2, allow_nan=False) + "\n").encode("utf-8"),
        WEIGHTS_FILE: dump_arrays({k: np.ascontiguousarray(v) for k, v in arrays.items()}),
        **files,
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    foreign = sorted(entry.name for entry in folder.iterdir() if not _is_known_name(entry.name))
    if foreign:  # loading would refuse the folder: say so now, before writing anything
        raise OddkitError(f"cannot save into {folder}: it holds {', '.join(foreign[:5])}, which a model folder "
                          "may not; save into an empty folder (or over an earlier model)")
    # integrity.json goes first (a crash half-way leaves a folder that does not load), and so do
    # the format's files of an earlier save that this one does not write.
    for entry in list(folder.iterdir()):
        if _is_known_name(entry.name) and entry.name not in payloads and (entry.is_file() or entry.is_symlink()):
            entry.unlink()
    for name, payload in payloads.items():
        target = folder / name
        if target.is_symlink():
            target.unlink()
        target.write_bytes(payload)
    (folder / INTEGRITY_FILE).write_bytes(_integrity_document(payloads, key))
    return folder


def seal(folder, key: bytes | str | None = None) -> Path:
    """Rewrite ``integrity.json`` for the files the folder holds now (signed with ``key`` if given).

    It hashes every file there as it is, checking nothing: this is what anyone who can write every
    file of a folder can do, which is why a checksum alone cannot stop a deliberate edit; only a
    signature with a key the attacker lacks can (loading still checks every file's format and
    content).
    """
    key = _key_bytes(key)
    folder = Path(folder)
    payloads = {entry.name: entry.read_bytes() for entry in folder.iterdir()
                if entry.is_file() and entry.name != INTEGRITY_FILE}
    (folder / INTEGRITY_FILE).write_bytes(_integrity_document(payloads, key))
    return folder


def _is_known_name(name: str) -> bool:
    return name in (CONFIG_FILE, WEIGHTS_FILE, INTEGRITY_FILE, TOKENIZER_FILE) or ALLOWED_FILE.fullmatch(name) is not None


def _read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, refusing anything but a regular file of at most ``limit`` bytes; the
    file is opened without following symlinks and checked on the open descriptor."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be opened as a regular file ({exc.strerror}); copy the model "
                             "folder again, without links") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ModelFileError(f"{path} is not a regular file; a model folder holds only regular files")
        if info.st_size > limit:
            raise ModelFileError(f"{path} is {info.st_size} bytes, more than the {limit} a model file may hold")
        # The size it has now, plus one byte to see growth: not a buffer of ``limit`` bytes up front.
        payload = handle.read(info.st_size + 1)
    if len(payload) > info.st_size:
        raise ModelFileError(f"{path} grew while it was read; load the model again once nothing writes to it")
    return payload


def _read_model_files(folder: Path) -> dict[str, bytes]:
    """Every entry of the folder, read as bytes, after checking it is a regular file with a name the
    format knows (no symlink, sub-folder, device or stray file) and not a pickle."""
    # The folder itself may be reached through a link ("models/current" -> "models/v3"); what it
    # holds may not.
    if not folder.is_dir():
        if not folder.exists():
            raise ModelFileError(f"{folder} is not a saved oddkit model: the folder (and its {CONFIG_FILE}) is missing")
        raise ModelFileError(f"{folder} is not a model folder (a model is a directory, not a file)")
    payloads = {}
    with os.scandir(folder) as entries:
        listed = sorted(entries, key=lambda entry: entry.name)
    # Each file may hold up to MAX_FILE_BYTES, but ensembles may hold any number of skops files:
    # bound them together (sparse files cost no disk) before reading any of them.
    total = sum(entry.stat(follow_symlinks=False).st_size for entry in listed if entry.is_file(follow_symlinks=False))
    if total > MAX_FOLDER_BYTES:
        raise ModelFileError(f"{folder} holds {total} bytes, more than the {MAX_FOLDER_BYTES} a model folder may hold")
    for entry in listed:
        path = folder / entry.name
        if entry.is_symlink():
            raise ModelFileError(f"{path} is a symbolic link; a model folder holds only regular files "
                                 "(copy the files themselves)")
        if not entry.is_file(follow_symlinks=False):
            raise ModelFileError(f"{path} is not a regular file (a folder or a device); a model folder holds "
                                 "only its own files")
        if not _is_known_name(entry.name):
            raise ModelFileError(f"{path} is not a file of the oddkit model format; remove it (a model folder "
                                 f"holds only {CONFIG_FILE}, {WEIGHTS_FILE}, *.skops, {TOKENIZER_FILE} and {INTEGRITY_FILE})")
        limit = MAX_METADATA_BYTES if entry.name in (CONFIG_FILE, INTEGRITY_FILE) else MAX_FILE_BYTES
        payload = _read_regular_file(path, limit)
        _refuse_code_formats(path, payload)
        payloads[entry.name] = payload
    if CONFIG_FILE not in payloads:
        raise ModelFileError(f"{folder} is not a saved oddkit model: {CONFIG_FILE} is missing")
    return payloads


def _refuse_code_formats(path: Path, payload: bytes) -> None:
    """Check by its bytes that each file has its format's shape (JSON text, a safetensors header, a
    skops zip without pickles) before anything parses it: pickles and ``torch.save`` archives are
    refused whatever they are called."""
    if len(payload) >= 2 and payload[0] == 0x80 and 1 <= payload[1] <= 5 and path.name != WEIGHTS_FILE:
        raise ModelFileError(f"{path} is a pickle, which oddkit never loads (a pickle can run code)")
    if path.name in (CONFIG_FILE, INTEGRITY_FILE, TOKENIZER_FILE):
        if not payload.lstrip()[:1] == b"{":
            raise ModelFileError(f"{path} is not a JSON object; the folder was damaged or edited")
    elif path.name == WEIGHTS_FILE:
        header = int.from_bytes(payload[:8], "little") if len(payload) >= 8 else -1
        if not (0 < header <= len(payload) - 8 and payload[8:9] == b"{"):
            kind = "a zip archive (a torch.save file?)" if payload[:4] == b"PK\x03\x04" else "not a safetensors file"
            raise ModelFileError(f"{path} is {kind}; oddkit loads weights only from safetensors")
    else:
        if payload[:4] != b"PK\x03\x04":
            raise ModelFileError(f"{path} is not a skops archive (a pickle?); oddkit never unpickles")
        try:
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile as exc:
            raise ModelFileError(f"{path} is not a valid skops archive ({exc})") from None
        if "schema.json" not in names or any(name.endswith((".pkl", ".pickle")) or "/" in name for name in names):
            raise ModelFileError(f"{path} is not a skops archive (it holds a pickle or folders: a torch.save "
                                 "archive?), which oddkit never loads")


def _verify_integrity(folder: Path, payloads: dict[str, bytes], key: bytes | None) -> None:
    if INTEGRITY_FILE not in payloads:
        raise ModelFileError(f"{folder} lacks {INTEGRITY_FILE}: it was not saved by this oddkit or was "
                             "damaged; save the model again")
    try:
        document = json.loads(payloads[INTEGRITY_FILE])
        digests = document["sha256"]
        if document.get("format") != INTEGRITY_FORMAT or not isinstance(digests, dict):
            raise ValueError("not an oddkit integrity file")
        if not all(isinstance(k, str) and isinstance(v, str) and _SHA256_HEX.fullmatch(v) for k, v in digests.items()):
            raise ValueError("a digest is not 64 hexadecimal digits")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ModelFileError(f"{folder / INTEGRITY_FILE} is malformed ({exc}); the folder was damaged or edited") from None
    present = set(payloads) - {INTEGRITY_FILE}
    if set(digests) != present:
        missing, extra = sorted(set(digests) - present), sorted(present - set(digests))
        raise ModelFileError(f"{folder} does not hold the files {INTEGRITY_FILE} lists (missing: {missing}, "
                             f"not listed: {extra}); copy the whole model folder")
    if WEIGHTS_FILE not in present:
        raise ModelFileError(f"{folder / WEIGHTS_FILE} is missing; copy the whole model folder")
    for name in sorted(present):
        actual = hashlib.sha256(payloads[name]).hexdigest()
        if not hmac.compare_digest(actual, digests[name]):
            raise ModelFileError(f"{folder / name} does not match its checksum (sha256) in {INTEGRITY_FILE}: it "
                                 "was modified or damaged")
    if key is None:
        return
    signature = document.get("signature")
    if not isinstance(signature, dict) or signature.get("algorithm") != _SIGNATURE_ALGORITHM \
            or not isinstance(signature.get("value"), str) or not _SHA256_HEX.fullmatch(signature["value"]):
        raise ModelFileError(f"{folder} is not signed, and a key was given: load only folders saved with "
                             "save(folder, key=...) with this key")
    if not hmac.compare_digest(_sign(key, digests), signature["value"]):
        raise ModelFileError(f"{folder}'s signature does not match the key: it was signed with another key "
                             "or edited after signing")


def load(folder, key: bytes | str | None = None) -> BaseDetector:
    """Load a detector saved with ``detector.save(folder)``; it scores exactly as the saved one.

    Parameters
    ----------
    folder : str or Path
        The model folder.
    key : bytes or str, optional
        The key the folder was signed with: the folder is then refused unless ``integrity.json``
        holds a valid HMAC-SHA256 signature made with it. Without a key the signature (if any) is
        not checked, only the checksums.

    Raises
    ------
    ModelFileError
        When the folder holds anything but its own regular files (links, sub-folders, unknown
        files, pickles, oversized files), a file differs from its checksum, the signature is
        missing or wrong (with ``key``), a skops file names an untrusted type, or a loaded value is
        out of range (non-finite threshold or statistics, parameters ``fit`` would refuse, weights
        that do not fit the architecture). Loading never runs code from the folder.

    Notes
    -----
    The loaded detector's ``saved_versions_`` holds the library versions the folder was saved with
    (``{"oddkit": ..., "numpy": ..., ...}``), as ``oddkit info`` shows them.
    """
    from safetensors.numpy import load as load_arrays

    key = _key_bytes(key)
    folder = Path(folder)
    payloads = _read_model_files(folder)
    _verify_integrity(folder, payloads, key)
    config = _parse_config(folder, payloads.pop(CONFIG_FILE))
    payloads.pop(INTEGRITY_FILE)
    try:
        arrays = load_arrays(payloads.pop(WEIGHTS_FILE))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for malformed files
        raise ModelFileError(f"{WEIGHTS_FILE} is not a valid safetensors file: {exc}") from None
    _check_arrays(arrays)
    detector = restore_detector(config, arrays, payloads)
    # The library versions it was saved with, as checked above: what 'oddkit info' and the service show
    # (never the file read again, which could have changed since).
    detector.saved_versions_ = dict(config.get("versions") or {})
    return detector


def _parse_config(folder: Path, payload: bytes) -> dict:
    path = folder / CONFIG_FILE

    def refuse_constant(name):
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        config = json.loads(payload, parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}); the folder was damaged or edited") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an oddkit model configuration")
    if config.get("format_version") != FORMAT_VERSION:
        saved_by = (config.get("versions") or {}).get("oddkit", "unknown") if isinstance(
            config.get("versions"), dict) else "unknown"
        raise ModelFileError(
            f"{folder} was saved in model format {config.get('format_version')!r} (oddkit {saved_by}); "
            f"this oddkit reads format {FORMAT_VERSION}: retrain, or load it with the oddkit that saved it")
    # Shown by ``oddkit info`` and the service: names and version numbers, never markup or control codes.
    versions = config.get("versions")
    if versions is not None and not (isinstance(versions, dict) and len(versions) <= 64 and all(
            isinstance(k, str) and isinstance(v, str) and _VERSION_TEXT.fullmatch(k) and _VERSION_TEXT.fullmatch(v)
            for k, v in versions.items())):
        raise ModelFileError(f"{path} has versions that are not library names and version numbers; the folder was "
                             "damaged or edited")
    return config


def _check_arrays(arrays: dict[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise ModelFileError(f"{WEIGHTS_FILE} holds {name} of dtype {array.dtype}; only numbers and booleans "
                                 "are allowed")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ModelFileError(f"{WEIGHTS_FILE} holds NaN or infinite values in {name}; the folder was damaged "
                                 "or edited")


def _finite(value, what: str) -> float:
    try:  # an integer beyond float64 (10**400) is an OverflowError, not a number
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:
        number = math.nan
    if not math.isfinite(number):
        shown = f"{str(value)[:40]}..." if isinstance(value, int) and not isinstance(value, bool) else repr(value)
        raise ModelFileError(f"{CONFIG_FILE} has {what}={shown}; it must be a finite number")
    return number


def _threshold_field(check, value):
    """A saved threshold field checked as the library checks it: None stays None; a value the
    check refuses is a ModelFileError naming the problem."""
    if value is None:
        return None
    try:
        return check(value)
    except (OddkitError, TypeError, ValueError, OverflowError) as exc:
        raise ModelFileError(f"{CONFIG_FILE} has a malformed threshold record: {exc}") from None


def restore_detector(meta: dict, arrays: dict[str, np.ndarray], files: dict[str, bytes]) -> BaseDetector:
    """Rebuild a detector from what :func:`detector_state` produced, checking every value on the way
    as ``fit`` would: parameters, threshold, score statistics, calibration, preprocessing and the
    detector's own state."""
    if not isinstance(meta, dict):
        raise ModelFileError(f"{CONFIG_FILE} is malformed: a detector's entry is not an object")
    cls = DETECTORS.get(meta.get("class")) if isinstance(meta.get("class"), str) else None
    if cls is None:
        raise ModelFileError(f"the model holds an unknown detector class {meta.get('class')!r}")
    params = meta.get("params")
    allowed = set(cls._get_param_names())
    if not isinstance(params, dict) or not set(params) <= allowed:
        unknown = sorted(set(params) - allowed) if isinstance(params, dict) else params
        raise ModelFileError(f"{CONFIG_FILE} has parameters {unknown} that {cls.__name__} does not take")
    grouped = {prefix: {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)} for prefix in _PREFIXES}

    # A parameter added after a model was saved is missing from its params: it takes the value that
    # reproduces the saved model's behaviour (the class's ``_saved_param_defaults``), which may differ
    # from the current default, never the current default silently.
    params = {**getattr(cls, "_saved_param_defaults", {}), **params}
    detector = cls(**params)
    try:
        state = meta["detector"]
        n_features = state["n_features_in"]
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"n_features_in={n_features!r} is not a positive integer")
        detector.n_features_in_ = n_features
        names = state["feature_names_in"]
        if names is not None:
            if not (isinstance(names, list) and len(names) == n_features and all(isinstance(n, str) for n in names)):
                raise ValueError("feature_names_in is not one name per input column")
            detector.feature_names_in_ = np.asarray(names, dtype=object)
        preprocessing = meta["preprocessor"]
        if isinstance(preprocessing, dict) and preprocessing.get("kind") == "images":
            detector.preprocessor_ = ImagePreprocessor.from_state(grouped["preprocessor."], preprocessing)
            detector.image_shape_ = detector.preprocessor_.image_shape_
        elif isinstance(preprocessing, dict) and preprocessing.get("kind") == "audio":
            from oddkit.data.audio_features import AudioPreprocessor

            detector.preprocessor_ = AudioPreprocessor.from_state(grouped["preprocessor."], preprocessing)
        elif isinstance(preprocessing, dict) and preprocessing.get("kind") == "text":
            from oddkit.data.text import TextPreprocessor

            detector.preprocessor_ = TextPreprocessor.from_state(grouped["preprocessor."], preprocessing, files)
            _check_vocabulary(detector.preprocessor_.tokenizer_.tokenizer_)
        else:
            detector.preprocessor_ = TablePreprocessor.from_state(grouped["preprocessor."], preprocessing)
            # The columns the detector checks must be the columns the preprocessing reads.
            columns = list(detector.preprocessor_.feature_names_in_)
            if n_features != len(columns) or (names is not None and names != columns):
                raise ValueError(f"n_features_in / feature_names_in do not match the preprocessing's {len(columns)} "
                                 "columns")
        scores = grouped["detector."]["decision_scores"]
        if scores.ndim != 1 or scores.shape[0] < 1:
            raise ValueError(f"decision_scores has shape {scores.shape}")
        detector.decision_scores_ = scores.astype(np.float64)
        statistics = state["score_statistics"]
        if not isinstance(statistics, list) or len(statistics) != 4:
            raise ValueError("score_statistics is not four numbers")
        mean, std, low, high = (_finite(v, "a score statistic") for v in statistics)
        # Training scores with this range have a standard deviation of at least range / sqrt(2 n):
        # far smaller (or a range beyond float64) is an edited file, and would overflow scoring.
        # Tied training scores are stored with a range of exactly 1 and their (rounding-noise) deviation.
        span = high - low
        spread_fits = (std >= span / math.sqrt(2 * max(len(scores), 2)) * 0.5
                       or (abs(span - 1.0) <= 4 * math.ulp(max(abs(low), abs(high), 1.0)) and std >= 1e-300))
        if not (std > 0 and high > low and math.isfinite(span) and low - 1e-9 * span <= mean <= high + 1e-9 * span
                and spread_fits):
            raise ValueError("the score statistics (mean, spread, range) are not those of any set of training scores")
        detector.score_mean_, detector.score_std_, detector.score_min_, detector.score_max_ = mean, std, low, high
        detector.threshold_ = _finite(state["threshold"], "threshold")
        goal = state["threshold_goal"]
        if not isinstance(goal, str) or not goal.isprintable():
            raise ValueError("threshold_goal is not a string of printable characters")
        detector.threshold_goal_ = goal
        # Where the threshold came from; folders saved before it was recorded have neither key.
        detector.threshold_miss_cost_col_ = _threshold_field(
            lambda value: _check_name(value, "threshold_miss_cost_col"), state.get("threshold_miss_cost_col"))
        detector.threshold_provenance_ = _threshold_field(ThresholdProvenance.from_dict,
                                                          state.get("threshold_provenance"))
        calibration = state["calibration"]
        if calibration is not None and not (isinstance(calibration, list) and len(calibration) == 2):
            raise ValueError("calibration is not two numbers")
        detector.calibration_ = None if calibration is None else tuple(
            _finite(v, "calibration") for v in calibration)
        # Which data the model learned from; folders saved before it was recorded have neither key.
        fingerprint = state.get("training_fingerprint")
        if fingerprint is not None:
            if not (isinstance(fingerprint, str) and _SHA256_HEX.fullmatch(fingerprint)):
                raise ValueError("training_fingerprint is not a sha256 of 64 hexadecimal digits")
            detector.training_fingerprint_ = fingerprint
        n_rows = state.get("n_training_rows")
        if n_rows is not None:
            if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 1:
                raise ValueError(f"n_training_rows={n_rows!r} is not a positive integer")
            detector.n_training_rows_ = n_rows
        # What held-out normal rows looked like (oddkit.drift); folders saved before it existed have no key.
        reference = state.get("drift_reference")
        detector.drift_reference_ = None if reference is None else DriftReference.from_dict(
            reference, grouped["detector."].get("drift_reference_scores"), detector)
        model_meta = meta["model"]
        if not isinstance(model_meta, dict):
            raise ValueError("model is not an object")
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise ModelFileError(f"{CONFIG_FILE} is incomplete or malformed ({type(exc).__name__}: {exc})") from None
    try:
        detector._set_model_state(grouped["model."], model_meta, files)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, OddkitError, OverflowError,
            AttributeError, MemoryError) as exc:  # MemoryError: a setting asking for petabytes
        raise ModelFileError(f"the saved {cls.__name__} state in {CONFIG_FILE} / {WEIGHTS_FILE} is malformed "
                             f"({type(exc).__name__}: {exc})") from None
    _check_saved_params(detector)  # after the state: a scikit-learn classifier is restored there
    detector.labels_ = (detector.decision_scores_ >= detector.threshold_).astype(np.int64)
    return detector


def _check_vocabulary(tokenizer) -> None:
    """A fitted tokenizer numbers its tokens 0, 1, ..., size - 1: the rows of the network's embedding.
    An id past them (``tokenizer.json`` edited) would index outside the embedding while scoring."""
    ids = sorted(tokenizer.get_vocab(with_added_tokens=True).values())
    if ids != list(range(tokenizer.get_vocab_size(with_added_tokens=True))):
        raise ValueError(f"{TOKENIZER_FILE} numbers its {len(ids)} tokens other than 0 to {len(ids) - 1} (ids up to "
                         f"{ids[-1] if ids else None}), so some would fall outside the network's vocabulary")


def _check_saved_params(detector: BaseDetector) -> None:
    """The saved hyper-parameters must pass the checks ``fit`` runs on them."""
    try:
        detector._validate_params()
    except (OddkitError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{CONFIG_FILE} holds a parameter that fit would refuse: {exc}") from None


_BUILD_BUDGET = threading.local()
_BUDGET_HOOKS: list = []
_BUDGET_HOOKS_LOCK = threading.Lock()


def _count_registration(*_) -> None:
    budget = getattr(_BUILD_BUDGET, "budget", None)  # None outside _tensor_budget, and in other threads
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ModelFileError(budget[1])


@contextlib.contextmanager
def _tensor_budget(limit: int, what: str):
    """Raise ModelFileError from inside a network's construction, in this thread, once it has
    registered more than ``limit`` parameters and buffers (so a huge count is refused at once).

    The counting hooks are torch's global registration hooks, installed once and never removed (adding
    or removing one while another thread builds a module would change the dict torch iterates there);
    they do nothing outside this context or in another thread.
    """
    from torch.nn.modules import module as torch_module

    with _BUDGET_HOOKS_LOCK:
        if not _BUDGET_HOOKS:
            _BUDGET_HOOKS.extend([torch_module.register_module_parameter_registration_hook(_count_registration),
                                  torch_module.register_module_buffer_registration_hook(_count_registration)])
    previous = getattr(_BUILD_BUDGET, "budget", None)
    _BUILD_BUDGET.budget = [limit, f"the saved {what} architecture in {CONFIG_FILE} asks for more layers than its "
                                   f"{WEIGHTS_FILE} holds weights for"]
    try:
        yield
    finally:
        _BUILD_BUDGET.budget = previous


def load_module_weights(build, arrays: dict[str, np.ndarray], what: str):
    """Build a torch module with ``build()`` and load ``arrays`` into it, after checking on the meta
    device (no memory allocated) that every parameter and buffer has exactly the saved shape.

    A configuration asking for a network larger than its weights file is refused before the
    network exists, so a small edited ``config.json`` cannot make loading allocate gigabytes.
    """
    import torch

    # A configuration can ask for as many layers or members as it likes (n_estimators=10**9): count
    # the tensors the build registers and stop it once it holds far more than the file has weights.
    with torch.device("meta"), _tensor_budget(2 * len(arrays) + 64, what):
        skeleton = build()
    expected = {name: tuple(tensor.shape) for name, tensor in skeleton.state_dict().items()}
    # torch loads a one-element array into a 0-d buffer (safetensors may store scalars that way).
    saved = {name: () if array.shape == (1,) and expected.get(name) == () else tuple(array.shape)
             for name, array in arrays.items()}
    if expected != saved:
        missing = sorted(set(expected) - set(saved))[:3]
        unexpected = sorted(set(saved) - set(expected))[:3]
        wrong = [f"{n}: {saved[n]} vs {expected[n]}" for n in sorted(set(expected) & set(saved))
                 if saved[n] != expected[n]][:3]
        raise ModelFileError(f"the saved {what} weights do not fit its architecture in {CONFIG_FILE} (missing "
                             f"{missing}, unexpected {unexpected}, wrong shapes {wrong})")
    for name, tensor in skeleton.state_dict().items():
        if tensor.dtype.is_floating_point != (arrays[name].dtype.kind == "f"):
            raise ModelFileError(f"the saved {what} weight {name} has dtype {arrays[name].dtype}")
    module = build()
    module.load_state_dict({name: torch.from_numpy(np.array(array)) for name, array in arrays.items()})
    return module
