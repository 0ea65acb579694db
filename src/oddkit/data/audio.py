"""Audio in and out: WAV/FLAC files, folders of them and the FSDD ``.npz`` layout; log-mel
spectrograms and back; synthetic speech for tests and demos.

Every reader returns an :class:`AudioData`: a list of mono float32 waveforms in [-1, 1] at one
sample rate, and a table with one row per recording (``file``, ``group`` and whatever else the
source records). :class:`LogMel` turns waveforms into log-mel spectrograms (and back by
Griffin-Lim); its settings are a small JSON-safe dict (:meth:`LogMel.get_config`) that a detector
keeps in its ``config.json``.

Sources :func:`read_audio` reads
--------------------------------
- one ``.wav`` / ``.flac`` file (anything libsndfile decodes with those endings);
- a folder of them, searched recursively: a file's ``group`` is the first sub-folder it lies in
  (the speaker, the class or the machine), ``""`` for files directly in the folder;
- an ``.npz`` in the Free Spoken Digit Dataset layout: ``audio`` (every recording end to end,
  int16 or float), ``offsets`` (n + 1 boundaries), ``sample_rate``, and optionally ``digit``,
  ``speaker`` (an index into ``speaker_names``), ``take`` and ``files``.

Multi-channel files are mixed down to mono (the mean of the channels). Integer samples are scaled
by their type's full range; float samples beyond [-1, 1] are clipped. Recordings at other rates
are resampled (librosa's default, soxr high quality) to ``sample_rate``, or, when that is None, to
the rate most of the recordings have.

librosa and soundfile are optional: ``pip install 'oddkit[audio]'``. They are imported when a
function needs them, so ``import oddkit`` stays fast.

References
----------
D. Griffin and J. Lim, "Signal estimation from modified short-time Fourier transform", IEEE
Transactions on Acoustics, Speech and Signal Processing 32(2), 1984.

Z. Jackson et al., "Free Spoken Digit Dataset", https://github.com/Jakobovski/free-spoken-digit-dataset
"""

from __future__ import annotations

import math
import zipfile
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oddkit.data.io import preview
from oddkit.exceptions import (
    DataError,
    EmptyDataError,
    MissingDependencyError,
    ModelFileError,
    NonFiniteError,
    ParameterError,
    UnreadableAudioError,
)

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioData",
    "LogMel",
    "as_waveforms",
    "is_audio_source",
    "read_audio",
    "resample",
    "synthetic_speech",
    "write_recordings",
    "write_wav",
]

AUDIO_SUFFIXES = (".wav", ".flac")
"""File name endings read as audio (case-insensitive)."""

MAX_SAMPLE_RATE = 384_000
"""Highest sample rate oddkit accepts (also the bound a saved model's rate is checked against)."""

_INSTALL = "pip install 'oddkit[audio]'"


def _librosa():
    try:
        import librosa
    except ImportError as exc:
        raise MissingDependencyError(f"audio needs librosa ({exc}); install it with: {_INSTALL}") from None
    return librosa


def _soundfile():
    try:
        import soundfile
    except (ImportError, OSError) as exc:  # OSError: the libsndfile library itself is missing
        raise MissingDependencyError(f"audio needs soundfile ({exc}); install it with: {_INSTALL}") from None
    return soundfile


def _check_rate(sample_rate: Any, name: str = "sample_rate") -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, Integral | np.integer) \
            or not 1 <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise ParameterError(f"{name} must be a whole number of Hz between 1 and {MAX_SAMPLE_RATE}, "
                             f"got {sample_rate!r}")
    return int(sample_rate)


# -- the container ---------------------------------------------------------------------------------

@dataclass
class AudioData:
    """Recordings read from a file, a folder or an archive, or synthesised.

    Attributes
    ----------
    waveforms : list of numpy.ndarray
        One mono float32 1-D array per recording, values in [-1, 1].
    sample_rate : int
        Samples per second, the same for every recording.
    labels : pandas.DataFrame
        One row per recording: ``file`` (its path relative to the folder, or its name in the
        archive), ``group`` (its sub-folder, or its speaker's name; ``""`` when there is none) and,
        for the FSDD archive, ``digit``, ``speaker`` (index into ``speaker_names``) and ``take``.
    source : pathlib.Path or None
        Where the recordings came from (None when synthesised or built in memory).
    source_rates : numpy.ndarray of int or None
        Each recording's rate in its file, where :func:`read_audio` resampled it to ``sample_rate``
        (None: every recording is at ``sample_rate`` as read). :meth:`resampled` gives recordings at
        their new rate, with none: a model at another rate sees them arrive at that one.
    features : oddkit.data.audio_features.AudioFeatures or None
        The features a detector fitted on these recordings computes (None: ``AudioFeatures()``,
        MFCC statistics); ignored at scoring time, where the model's saved settings apply.
    """

    waveforms: list[np.ndarray]
    sample_rate: int
    labels: pd.DataFrame
    source: Path | None = field(default=None)
    features: Any = field(default=None, repr=False)
    source_rates: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.waveforms)

    def __post_init__(self) -> None:
        self.sample_rate = _check_rate(self.sample_rate)
        if len(self.labels) != len(self.waveforms):
            raise DataError(f"AudioData has {len(self.waveforms)} waveforms but {len(self.labels)} label rows")
        if self.source_rates is not None:
            self.source_rates = np.asarray(self.source_rates, dtype=np.int64).reshape(-1)
            if len(self.source_rates) != len(self.waveforms):
                raise DataError(f"AudioData has {len(self.waveforms)} waveforms but {len(self.source_rates)} "
                                "source rates")

    def rates_read(self) -> np.ndarray:
        """Each recording's rate before any resampling (``source_rates``, else ``sample_rate``)."""
        if self.source_rates is None:
            return np.full(len(self), self.sample_rate, dtype=np.int64)
        return self.source_rates

    def subset(self, index) -> AudioData:
        """The recordings selected by ``index`` (a boolean mask or integer positions), labels renumbered.

        Examples
        --------
        >>> data = synthetic_speech(n_speakers=2, n_words=2, n_takes=2, seconds=0.1)
        >>> len(data.subset(data.labels["speaker"] == 0))
        4
        """
        positions = np.asarray(index)
        if positions.dtype == bool:
            if positions.shape != (len(self),):
                raise DataError(f"a mask of {positions.shape} cannot select from {len(self)} recordings")
            positions = np.flatnonzero(positions)
        positions = positions.astype(np.int64).reshape(-1)
        return AudioData([self.waveforms[i] for i in positions], self.sample_rate,
                         self.labels.iloc[positions].reset_index(drop=True), self.source, self.features,
                         None if self.source_rates is None else self.source_rates[positions])

    def durations(self) -> np.ndarray:
        """Length of each recording in seconds (float64)."""
        return np.array([len(w) / self.sample_rate for w in self.waveforms], dtype=np.float64)

    def resampled(self, sample_rate: int) -> AudioData:
        """The same recordings at ``sample_rate`` (this object itself when the rate already matches)."""
        sample_rate = _check_rate(sample_rate)
        if sample_rate == self.sample_rate:
            return self
        return AudioData([resample(w, self.sample_rate, sample_rate) for w in self.waveforms], sample_rate,
                         self.labels.copy(), self.source, self.features)


# -- reading ---------------------------------------------------------------------------------------

def _is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".")


def _npz_keys(path: Path) -> set[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return {name[:-4] for name in archive.namelist() if name.endswith(".npy")}
    except (OSError, zipfile.BadZipFile):
        return set()


def is_audio_source(path: str | Path) -> bool:
    """Whether ``path`` is something :func:`read_audio` reads: a ``.wav``/``.flac`` file, a folder
    holding at least one (at any depth), or an ``.npz`` with the keys ``audio`` and ``sample_rate``.

    Examples
    --------
    >>> is_audio_source("train.csv")
    False
    """
    path = Path(path)
    if path.is_dir():
        return any(_is_audio_file(p) for p in path.rglob("*") if p.is_file())
    if _is_audio_file(path):
        return True
    if path.suffix.lower() == ".npz" and path.is_file():
        return {"audio", "sample_rate"} <= _npz_keys(path)
    return False


def resample(waveform: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """``waveform`` resampled from ``orig_rate`` to ``target_rate`` Hz (librosa.resample), float32."""
    orig_rate, target_rate = _check_rate(orig_rate, "orig_rate"), _check_rate(target_rate, "target_rate")
    waveform = np.asarray(waveform, dtype=np.float32)
    if orig_rate == target_rate:
        return waveform
    out = _librosa().resample(waveform, orig_sr=orig_rate, target_sr=target_rate)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _mono(samples: np.ndarray, name: str) -> np.ndarray:
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size == 0:
        raise UnreadableAudioError(f"{name}: the recording holds no samples; remove the file or re-record it")
    bad = ~np.isfinite(samples)
    if bad.any():
        raise NonFiniteError(f"{name}: {int(bad.sum())} NaN or inf sample(s), first at sample "
                             f"{int(np.flatnonzero(bad)[0])}; repair or remove the file")
    return np.clip(samples, -1.0, 1.0)


def _read_file(path: Path, name: str) -> tuple[np.ndarray, int]:
    soundfile = _soundfile()
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    except Exception as exc:  # libsndfile raises LibsndfileError / RuntimeError / TypeError by version
        raise UnreadableAudioError(
            f"{name}: cannot be read as audio ({exc}); the file is damaged or not WAV/FLAC: "
            "re-export it or remove it") from None
    return _mono(samples, name), int(rate)


def _common_rate(rates: Sequence[int]) -> int:
    counts = Counter(rates)
    return max(counts, key=lambda r: (counts[r], r))


def _read_folder(folder: Path) -> tuple[list[np.ndarray], list[int], pd.DataFrame]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and _is_audio_file(p))
    if not files:
        raise EmptyDataError(f"{folder}: no {'/'.join(AUDIO_SUFFIXES)} files in this folder or below it; "
                             "point to a folder of recordings")
    waves, rates, names, groups = [], [], [], []
    for path in files:
        relative = path.relative_to(folder)
        wave, rate = _read_file(path, str(path))
        waves.append(wave)
        rates.append(rate)
        names.append(relative.as_posix())
        groups.append(relative.parts[0] if len(relative.parts) > 1 else "")
    return waves, rates, pd.DataFrame({"file": names, "group": groups})


_NPZ_ARRAYS = ("audio", "sample_rate", "offsets", "digit", "speaker", "take", "files", "speaker_names")
"""The arrays of an ``.npz`` of recordings that :func:`read_audio` reads; no other member is opened."""


def _npz_members(archive: zipfile.ZipFile) -> tuple[dict[str, zipfile.ZipInfo], list[str]]:
    """An archive's ``.npy`` members by key (``NAME`` for ``NAME.npy``; the last of a repeated name, as
    :mod:`zipfile` opens it), and the names of its other members, which are never read: :func:`numpy.load`
    hands such a member over as raw bytes, read whole whatever its size (a few kilobytes deflated can hold
    gigabytes of zeros), and looks ``NAME`` up before ``NAME.npy``."""
    arrays, others = {}, []
    for info in archive.infolist():
        if info.filename.endswith(".npy"):
            arrays[info.filename[:-4]] = info
        else:
            others.append(info.filename)
    return arrays, others


def npy_member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: Any) -> tuple[tuple[int, ...],
                                                                                            np.dtype]:
    """Shape and dtype of one ``.npy`` member of an ``.npz``, from its header alone (no data is read).

    A member that is no ``.npy`` array (:func:`numpy.load` would read it whole, as bytes) or that holds
    Python objects is refused (:class:`DataError`), a damaged one too (:class:`UnreadableAudioError`);
    ``source`` names the archive in the messages. The scoring service checks uploads with it."""
    from numpy.lib import format as npy

    key = info.filename[:-4]
    shown = info.filename if len(info.filename) <= 40 else info.filename[:40] + "..."
    try:
        with archive.open(info) as stream:
            magic = stream.read(npy.MAGIC_LEN)
            if len(magic) < npy.MAGIC_LEN or magic[:len(npy.MAGIC_PREFIX)] != npy.MAGIC_PREFIX:
                raise DataError(f"{source}: the member {shown!r} is not a .npy array; an .npz of recordings holds "
                                "numpy.savez's arrays ('audio', 'offsets', 'sample_rate' and the recordings' labels)")
            version = (magic[-2], magic[-1])
            read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _, dtype = read_header(stream)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged archive, whatever zipfile or numpy says
        raise UnreadableAudioError(f"{source}: the array {key!r} cannot be read ({exc}); the file is damaged") from None
    if dtype.hasobject:
        raise DataError(f"{source}: the array {key!r} holds Python objects, which oddkit does not read (it never "
                        "unpickles); store numbers, and names as strings")
    return tuple(int(v) for v in shape), np.dtype(dtype)


def _read_npy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One ``.npy`` member read as :func:`numpy.load` reads it, after its header (:func:`npy_member_header`);
    a header that declares more data than the member holds (numpy would reserve that much first) is refused
    before any data is read."""
    from numpy.lib import format as npy

    key = info.filename[:-4]
    shape, dtype = npy_member_header(archive, info, path)
    declared = math.prod(shape) * dtype.itemsize
    if declared > info.file_size:
        raise UnreadableAudioError(f"{path}: the array {key!r} declares {declared:,} bytes in a member of "
                                   f"{info.file_size:,}; the file is damaged")
    try:
        with archive.open(info) as stream:
            return npy.read_array(stream, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - as above
        raise UnreadableAudioError(f"{path}: the array {key!r} cannot be read ({exc}); the file is damaged") from None


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of :data:`_NPZ_ARRAYS` an ``.npz`` holds (``audio`` and ``sample_rate`` at least), read
    member by member (see :func:`_npz_members` and :func:`_read_npy_member`)."""
    try:
        archive = zipfile.ZipFile(path)
    except Exception as exc:  # noqa: BLE001 - BadZipFile, OSError, NotImplementedError (a zip version)...
        raise UnreadableAudioError(f"{path}: cannot be read as an .npz archive ({exc}); the file is damaged") from None
    with archive:
        members, others = _npz_members(archive)
        if not {"audio", "sample_rate"} <= set(members):
            skipped = f"; members that are not .npy arrays, not read: {preview(others)}" if others else ""
            raise DataError(f"{path}: an audio archive needs the keys 'audio' and 'sample_rate' (and 'offsets' "
                            f"when 'audio' holds the recordings end to end), found {sorted(members)}{skipped}")
        return {key: _read_npy_member(archive, members[key], path) for key in _NPZ_ARRAYS if key in members}


def _archive_rate(rate: np.ndarray, path: Path) -> int:
    """An archive's ``sample_rate``: one whole number of Hz from 1 to :data:`MAX_SAMPLE_RATE`, in any
    numeric type (``8000.0`` is 8000 Hz; ``8000.9`` is refused, never cut to 8000)."""
    if rate.size != 1:
        raise DataError(f"{path}: 'sample_rate' must be one number, got shape {rate.shape}")
    if rate.dtype.kind not in "iuf":
        raise DataError(f"{path}: 'sample_rate' holds {rate.dtype} values; store the rate in Hz, one whole number")
    value = rate.reshape(-1)[0].item()
    whole = math.isfinite(value) and value == math.floor(value)
    if not (whole and 1 <= value <= MAX_SAMPLE_RATE):
        raise DataError(f"{path}: 'sample_rate' is {value!r}; store the rate in Hz, a whole number from 1 to "
                        f"{MAX_SAMPLE_RATE:,}")
    return int(value)


def _whole_numbers(values: np.ndarray, key: str, path: Path) -> np.ndarray:
    """A 1-D label (or offsets) array as int64: whole numbers in any numeric type, or text of whole numbers;
    text, fractions, NaN and other types are refused by the array's name."""
    if values.ndim != 1:
        raise DataError(f"{path}: {key!r} has shape {values.shape}; give one entry per recording")
    kind = values.dtype.kind
    if kind in "biu":
        return values.astype(np.int64)
    if kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) > 2.0 ** 53)
        if bad.any():
            raise DataError(f"{path}: {key!r} holds numbers that are not whole (first: {float(values[bad][0])!r}); "
                            "store whole numbers")
        return values.astype(np.int64)
    if kind in "US":
        try:
            return values.astype(np.int64)
        except (ValueError, OverflowError):
            more = ", ..." if len(values) > 3 else ""
            raise DataError(f"{path}: {key!r} holds text ({preview(values[:3])}{more}); store whole numbers") from None
    raise DataError(f"{path}: {key!r} holds {values.dtype} values; store whole numbers")


def _read_npz(path: Path) -> tuple[list[np.ndarray], int, pd.DataFrame]:
    arrays = _npz_arrays(path)
    audio, offsets = arrays["audio"], arrays.get("offsets")
    extra = {k: arrays[k] for k in ("digit", "speaker", "take", "files", "speaker_names") if k in arrays}
    rate = _archive_rate(arrays["sample_rate"], path)
    if audio.dtype.kind == "i":
        scale = float(2 ** (8 * audio.dtype.itemsize - 1))
    elif audio.dtype.kind == "f":
        scale = 1.0
    else:
        raise DataError(f"{path}: 'audio' has dtype {audio.dtype}; store int16/int32 or float samples")
    if offsets is None:
        if audio.ndim != 2:
            raise DataError(f"{path}: 'audio' of shape {audio.shape} needs 'offsets' (n + 1 boundaries), or must be "
                            "a 2-D array with one recording per row")
        pieces = [audio[i] for i in range(len(audio))]
    else:
        offsets = _whole_numbers(np.asarray(offsets).reshape(-1), "offsets", path)
        if audio.ndim != 1 or len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != len(audio) \
                or np.any(np.diff(offsets) < 0):
            raise DataError(f"{path}: 'offsets' must rise from 0 to len(audio) = {len(audio)} "
                            "(recording i is audio[offsets[i]:offsets[i+1]])")
        pieces = [audio[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
    n = len(pieces)
    if n == 0:
        raise EmptyDataError(f"{path}: the archive holds no recordings")
    for key in ("files", "speaker_names"):
        if key in extra and extra[key].ndim != 1:
            raise DataError(f"{path}: {key!r} has shape {extra[key].shape}; give one name per entry")
    files = [str(f) for f in extra["files"]] if "files" in extra else [f"{path.name}[{i}]" for i in range(n)]
    labels = {"file": files}
    for key in ("digit", "speaker", "take"):
        if key in extra:
            labels[key] = _whole_numbers(np.asarray(extra[key]), key, path)
    for key, values in labels.items():
        if len(values) != n:
            raise DataError(f"{path}: '{key}' has {len(values)} entries for {n} recordings")
    if "speaker" in labels and "speaker_names" in extra:
        names = np.asarray(extra["speaker_names"]).astype(str)
        if labels["speaker"].min() < 0 or labels["speaker"].max() >= len(names):
            raise DataError(f"{path}: 'speaker' indexes outside 'speaker_names' ({len(names)} names)")
        group = names[labels["speaker"]].tolist()
    elif "speaker" in labels:
        group = [str(s) for s in labels["speaker"]]
    else:
        group = [""] * n
    frame = pd.DataFrame(labels)
    frame.insert(1, "group", group)
    waves = [_mono(np.asarray(p, dtype=np.float64) / scale, f"{path} [{files[i]}]") for i, p in enumerate(pieces)]
    return waves, rate, frame


def read_audio(path: str | Path, sample_rate: int | None = None) -> AudioData:
    """Read recordings from a WAV/FLAC file, a folder of them, or an FSDD-style ``.npz``.

    Parameters
    ----------
    path : str or Path
        A ``.wav``/``.flac`` file, a folder (searched recursively; the first sub-folder is each
        file's ``group``), or an ``.npz`` with ``audio``, ``offsets`` and ``sample_rate``.
    sample_rate : int, optional
        Resample every recording to this rate. Default: keep the source's rate (the most common
        one when a folder mixes rates; the others are resampled to it).

    Returns
    -------
    AudioData
        Mono float32 waveforms in [-1, 1], their sample rate, one label row per recording.

    Raises
    ------
    UnreadableAudioError
        A file that is damaged, not audio, or empty (the message names it).
    DataError
        An ``.npz`` whose ``sample_rate`` is not one whole number of Hz from 1 to
        :data:`MAX_SAMPLE_RATE`, whose labels are not whole numbers, whose arrays hold Python
        objects, or whose ``audio`` member is not a ``.npy`` array (members not named ``*.npy``
        are never read).
    EmptyDataError
        A folder without audio files.
    NonFiniteError
        A float recording holding NaN or inf.
    MissingDependencyError
        soundfile or librosa is not installed (``pip install 'oddkit[audio]'``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> data = synthetic_speech(n_speakers=1, n_words=1, n_takes=1, seconds=0.1)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.wav"
    >>> write_wav(path, data.waveforms[0], data.sample_rate)
    >>> read_audio(path, sample_rate=16000).sample_rate
    16000
    """
    path = Path(path)
    if sample_rate is not None:
        sample_rate = _check_rate(sample_rate)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        waves, rates, labels = _read_folder(path)
    elif path.suffix.lower() == ".npz":
        waves, rate, labels = _read_npz(path)
        rates = [rate] * len(waves)
    elif _is_audio_file(path):
        wave, rate = _read_file(path, str(path))
        waves, rates, labels = [wave], [rate], pd.DataFrame({"file": [path.name], "group": [""]})
    else:
        raise DataError(f"{path}: not an audio source; pass a {'/'.join(AUDIO_SUFFIXES)} file, a folder of them, "
                        "or an .npz with 'audio', 'offsets' and 'sample_rate'")
    target = sample_rate if sample_rate is not None else _common_rate(rates)
    waves = [resample(w, r, target) for w, r in zip(waves, rates, strict=True)]
    return AudioData(waves, target, labels, path, source_rates=None if set(rates) == {target} else rates)


def write_wav(path: str | Path, waveform: np.ndarray, sample_rate: int) -> None:
    """Write a mono waveform as a 16-bit PCM WAV file (values clipped to [-1, 1]).

    Parameters
    ----------
    path : str or Path
        The file to write (its folder is created if needed).
    waveform : array-like of shape (n_samples,)
        Samples in [-1, 1].
    sample_rate : int
        Samples per second.
    """
    sample_rate = _check_rate(sample_rate)
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1 or waveform.size == 0:
        raise DataError(f"write_wav takes one non-empty 1-D waveform, got shape {waveform.shape}")
    if not np.all(np.isfinite(waveform)):
        raise NonFiniteError("write_wav: the waveform holds NaN or inf samples")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _soundfile().write(str(path), np.clip(waveform, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")


def write_recordings(recordings: AudioData, folder: str | Path) -> list[Path]:
    """Write every recording as a 16-bit WAV file under ``folder``, at the path its ``file`` label
    names (``.wav`` replacing another ending), so that :func:`read_audio` reads the folder back with
    the same groups. Returns the paths written.

    Examples
    --------
    >>> import tempfile
    >>> data = synthetic_speech(n_speakers=2, n_words=1, n_takes=1, seconds=0.1)
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_recordings(data, folder)
    >>> read_audio(folder).labels["group"].tolist()
    ['speaker0', 'speaker1']
    """
    if not isinstance(recordings, AudioData):
        raise DataError(f"write_recordings takes AudioData, got {type(recordings).__name__}")
    folder = Path(folder)
    written = []
    for wave, name in zip(recordings.waveforms, recordings.labels["file"], strict=True):
        relative = Path(str(name)).with_suffix(".wav")
        if relative.is_absolute() or ".." in relative.parts:
            raise DataError(f"recording name {name!r} would be written outside {folder}; rename it")
        write_wav(folder / relative, wave, recordings.sample_rate)
        written.append(folder / relative)
    return written


def _check_finite_recordings(recordings: AudioData) -> None:
    """Refuse recordings holding NaN or inf samples (built in memory: files cannot hold them), naming
    the first such recording, before librosa meets them."""
    bad = [i for i, wave in enumerate(recordings.waveforms) if not np.all(np.isfinite(wave))]
    if bad:
        files = recordings.labels["file"] if "file" in recordings.labels else None
        name = repr(str(files.iloc[bad[0]])) if files is not None else ""
        raise NonFiniteError(f"{len(bad)} recording(s) hold NaN or inf samples (first rows: {bad[:5]}; recording "
                             f"{bad[0]} is {name or 'unnamed'}); clean or drop them")


def as_waveforms(recordings, sample_rate: int) -> list[np.ndarray]:
    """Recordings as a list of float32 waveforms at ``sample_rate``.

    ``recordings`` is an :class:`AudioData` (resampled when its rate differs), one 1-D array, or a
    sequence of 1-D arrays (taken to be at ``sample_rate`` already).
    """
    if isinstance(recordings, AudioData):
        _check_finite_recordings(recordings)
        return recordings.resampled(sample_rate).waveforms
    if isinstance(recordings, np.ndarray) and recordings.ndim == 1:
        recordings = [recordings]
    if isinstance(recordings, np.ndarray) and recordings.ndim == 2:
        recordings = list(recordings)
    if isinstance(recordings, (str, Path)) or not isinstance(recordings, Sequence):
        raise DataError(f"expected recordings (AudioData, a 1-D waveform or a list of them), got "
                        f"{type(recordings).__name__}; read files with oddkit.data.audio.read_audio")
    if len(recordings) == 0:
        raise EmptyDataError("no recordings given; pass at least one waveform")
    waves = []
    for i, wave in enumerate(recordings):
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1 or wave.size == 0:
            raise DataError(f"recording {i} has shape {wave.shape}; each must be a non-empty 1-D waveform")
        if not np.all(np.isfinite(wave)):
            raise NonFiniteError(f"recording {i} holds NaN or inf samples; clean or drop it")
        waves.append(wave)
    return waves


# -- log-mel spectrograms --------------------------------------------------------------------------

@contextmanager
def _quiet_if(short: bool):
    """Within this block, for a signal shorter than one FFT window (``short``), silence librosa's
    "n_fft=... is too large for input signal" warning: the centred, zero-padded frames are what the
    first and last frames of every recording are, and the warning says nothing a user can act on."""
    if not short:
        yield
        return
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"n_fft=\d+ is too large for input signal", category=UserWarning)
        yield


def _pow2_at_least(n: float) -> int:
    return int(2 ** math.ceil(math.log2(max(n, 2))))


class LogMel:
    """Log-mel spectrogram with fixed settings, and its approximate inverse (Griffin-Lim).

    ``transform`` computes, for each waveform, the power spectrogram of a Hann-windowed STFT
    (centred frames, zero padding), projects it on ``n_mels`` Slaney-normalised mel filters from
    ``fmin`` to ``fmax``, and takes ``log(power + floor)`` (natural logarithm; ``floor`` keeps
    silence finite). Nothing is learned from data.

    Parameters
    ----------
    sample_rate : int, default=8000
        The rate the waveforms must have (an :class:`AudioData` at another rate is resampled).
    n_fft : int, optional
        FFT size in samples. Default: the smallest power of two covering 32 ms (256 at 8 kHz, 512
        at 16 kHz) — a usual speech analysis window.
    hop_length : int, optional
        Samples between frames. Default: 10 ms (80 at 8 kHz, 160 at 16 kHz).
    n_mels : int, default=40
        Mel bands; 40 is the usual speech front end (Davis and Mermelstein's filter bank size
        range) and leaves no empty filter at 8 kHz with the default ``n_fft``.
    fmin : float, default=20.0
        Lowest filter edge in Hz.
    fmax : float, optional
        Highest filter edge in Hz. Default: ``sample_rate / 2``.
    floor : float, default=1e-5
        Added to the mel power before the logarithm (-50 dB below a full-scale sine's bin power
        order of magnitude): log-mel values are bounded below by ``log(floor)`` = -11.5.

    Examples
    --------
    >>> import numpy as np
    >>> mel = LogMel()
    >>> frames = mel.transform([np.zeros(8000, dtype=np.float32)])[0]
    >>> frames.shape, mel.get_config()["n_fft"]
    ((101, 40), 256)
    """

    def __init__(self, sample_rate: int = 8000, n_fft: int | None = None, hop_length: int | None = None,
                 n_mels: int = 40, fmin: float = 20.0, fmax: float | None = None, floor: float = 1e-5):
        self.sample_rate = _check_rate(sample_rate)
        self.n_fft = _pow2_at_least(0.032 * self.sample_rate) if n_fft is None else self._int(n_fft, "n_fft", 16)
        self.hop_length = max(1, round(0.010 * self.sample_rate)) if hop_length is None \
            else self._int(hop_length, "hop_length", 1)
        self.n_mels = self._int(n_mels, "n_mels", 1)
        self.fmin = self._float(fmin, "fmin", 0.0)
        self.fmax = float(self.sample_rate / 2) if fmax is None else self._float(fmax, "fmax", 0.0)
        if not self.fmin < self.fmax <= self.sample_rate / 2:
            raise ParameterError(f"LogMel's fmin ({self.fmin:g} Hz) must be below its fmax ({self.fmax:g} Hz), "
                                 f"and fmax at most half the sample rate ({self.sample_rate / 2:g} Hz)")
        if self.n_fft > 65536 or self.hop_length > self.n_fft or self.n_mels > self.n_fft // 2 + 1:
            raise ParameterError(f"LogMel's n_fft ({self.n_fft}) must be at most 65536, its hop_length "
                                 f"({self.hop_length}) at most n_fft, and its n_mels ({self.n_mels}) at most "
                                 "n_fft / 2 + 1")
        self.floor = self._float(floor, "floor", 0.0)
        if self.floor <= 0:
            raise ParameterError(f"LogMel floor must be > 0, got {self.floor!r}")

    @staticmethod
    def _int(value: Any, name: str, low: int) -> int:
        if isinstance(value, bool) or not isinstance(value, Integral | np.integer) or int(value) < low:
            raise ParameterError(f"LogMel {name} must be a whole number >= {low}, got {value!r}")
        return int(value)

    @staticmethod
    def _float(value: Any, name: str, low: float) -> float:
        if isinstance(value, bool) or not isinstance(value, Real | np.floating) or not math.isfinite(value) \
                or value < low:
            raise ParameterError(f"LogMel {name} must be a finite number >= {low:g}, got {value!r}")
        return float(value)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"LogMel({inner})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogMel) and other.get_config() == self.get_config()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.get_config().items())))

    @property
    def frame_seconds(self) -> float:
        """Time between two frames, in seconds."""
        return self.hop_length / self.sample_rate

    def _filters(self) -> np.ndarray:
        if not hasattr(self, "_mel_basis"):
            self._mel_basis = _librosa().filters.mel(
                sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax)
        return self._mel_basis

    def transform_one(self, waveform: np.ndarray) -> np.ndarray:
        """One waveform at ``sample_rate`` -> log-mel frames, float32 of shape (n_frames, n_mels)."""
        librosa = _librosa()
        waveform = np.asarray(waveform, dtype=np.float32)
        with _quiet_if(len(waveform) < self.n_fft):
            spectrum = np.abs(librosa.stft(waveform, n_fft=self.n_fft, hop_length=self.hop_length, window="hann",
                                           center=True, pad_mode="constant")) ** 2
        mel = self._filters() @ spectrum
        return np.log(mel + self.floor).T.astype(np.float32)

    def transform(self, recordings) -> list[np.ndarray]:
        """Log-mel frames of each recording.

        Parameters
        ----------
        recordings : AudioData, 1-D array or list of 1-D arrays
            Waveforms; an :class:`AudioData` at another rate is resampled to ``sample_rate``.

        Returns
        -------
        list of numpy.ndarray
            One float32 array of shape (n_frames, n_mels) per recording, n_frames =
            1 + len(waveform) // hop_length.
        """
        return [self.transform_one(w) for w in as_waveforms(recordings, self.sample_rate)]

    def inverse(self, log_mel: np.ndarray, n_iter: int = 64, length: int | None = None,
                random_state: int | None = 0) -> np.ndarray:
        """A waveform whose log-mel spectrogram approximates ``log_mel``, by Griffin-Lim.

        The mel power is mapped back to a linear-frequency magnitude by non-negative least squares
        (``librosa.feature.inverse.mel_to_stft``), then the phase is estimated by Griffin-Lim
        (``librosa.griffinlim``, the two steps of ``librosa.feature.inverse.mel_to_audio``, here with
        a seeded start so that the same input gives the same waveform).

        Parameters
        ----------
        log_mel : array of shape (n_frames, n_mels)
            As :meth:`transform` returns.
        n_iter : int, default=64
            Griffin-Lim iterations (more: cleaner phase, slower).
        length : int, optional
            Samples of the output (default: what the frames span).
        random_state : int or None, default=0
            Seed of Griffin-Lim's random initial phase.

        Returns
        -------
        numpy.ndarray of float32, shape (n_samples,)
            Clipped to [-1, 1].
        """
        librosa = _librosa()
        log_mel = np.asarray(log_mel, dtype=np.float64)
        if log_mel.ndim != 2 or log_mel.shape[1] != self.n_mels or log_mel.shape[0] == 0:
            raise DataError(f"expected log-mel frames of shape (n_frames, {self.n_mels}), got {log_mel.shape}")
        if not np.all(np.isfinite(log_mel)):
            raise NonFiniteError("the log-mel frames hold NaN or inf")
        n_iter = self._int(n_iter, "n_iter", 1)
        power = np.maximum(np.exp(np.minimum(log_mel, 50.0)) - self.floor, 0.0).T
        magnitude = librosa.feature.inverse.mel_to_stft(
            power, sr=self.sample_rate, n_fft=self.n_fft, power=2.0, fmin=self.fmin, fmax=self.fmax)
        samples = length if length is not None else (log_mel.shape[0] - 1) * self.hop_length
        with _quiet_if(samples < self.n_fft):
            wave = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=self.hop_length, window="hann",
                                      center=True, pad_mode="constant", length=length, random_state=random_state)
        return np.clip(wave, -1.0, 1.0).astype(np.float32)

    # -- saving --------------------------------------------------------------------------------

    _CONFIG_KEYS = ("sample_rate", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "floor")

    def get_config(self) -> dict:
        """The settings as a JSON-safe dict (every default resolved), for ``config.json``."""
        return {key: getattr(self, key) for key in self._CONFIG_KEYS}

    @classmethod
    def from_config(cls, config: dict) -> LogMel:
        """Rebuild from :meth:`get_config`'s dict, validating every value.

        Raises
        ------
        ModelFileError
            Keys missing or unknown, or a value the constructor refuses.
        """
        if not isinstance(config, dict) or set(config) != set(cls._CONFIG_KEYS):
            got = sorted(config) if isinstance(config, dict) else type(config).__name__
            raise ModelFileError(f"the saved log-mel settings must have the keys {list(cls._CONFIG_KEYS)}, got {got}")
        try:
            return cls(**config)
        except ParameterError as exc:
            raise ModelFileError(f"the saved log-mel settings are invalid: {exc}") from None


# -- synthetic speech ------------------------------------------------------------------------------

def synthetic_speech(n_speakers: int = 3, n_words: int = 3, n_takes: int = 4, sample_rate: int = 8000,
                     seconds: float = 0.4, random_state: int | None = 0) -> AudioData:
    """Harmonic "speech": who speaks sets the pitch and timbre, what is said sets a formant path.

    Each recording is a sum of harmonics of a fundamental ``f0`` (the speaker's: 95 Hz for speaker
    0, then 1.35 times higher for each next speaker, cycling after five) whose amplitudes follow
    the speaker's spectral tilt and two resonances (formants) that move along the word's path
    (word ``w`` starts its first formant at a different frequency and glides up or down). Each
    take varies pitch (+-3 %), duration (+-10 %) and formants (+-4 %) at random, under a smooth
    attack and decay, with white noise 30 dB below the peak.

    Parameters
    ----------
    n_speakers, n_words, n_takes : int
        How many of each; ``n_speakers * n_words * n_takes`` recordings.
    sample_rate : int, default=8000
    seconds : float, default=0.4
        Nominal duration of a recording.
    random_state : int or None, default=0

    Returns
    -------
    AudioData
        Labels ``file`` (``"speaker{s}/word{w}_take{t}.wav"``), ``group`` (``"speaker{s}"``),
        ``speaker``, ``word`` and ``take``.

    Examples
    --------
    >>> data = synthetic_speech(n_speakers=2, n_words=3, n_takes=2, seconds=0.2)
    >>> len(data), data.sample_rate, data.labels.columns.tolist()
    (12, 8000, ['file', 'group', 'speaker', 'word', 'take'])
    """
    for name, value in (("n_speakers", n_speakers), ("n_words", n_words), ("n_takes", n_takes)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ParameterError(f"{name} must be a whole number >= 1, got {value!r}")
    sample_rate = _check_rate(sample_rate)
    if not isinstance(seconds, Real) or not 0.02 <= seconds <= 60:
        raise ParameterError(f"seconds must be between 0.02 and 60, got {seconds!r}")
    rng = np.random.default_rng(random_state)
    nyquist = sample_rate / 2
    waves, rows = [], []
    for s in range(n_speakers):
        f0_base = 95.0 * 1.35 ** (s % 5) * (1.0 + 0.02 * (s // 5))
        tilt = 0.92 - 0.05 * (s % 3)
        for w in range(n_words):
            start = 300.0 + 450.0 * (w % 4) + 60.0 * (w // 4)
            glide = (1.0 if w % 2 == 0 else -1.0) * (200.0 + 40.0 * (w % 3))
            second = 1500.0 + 250.0 * ((w * 3) % 5)
            for t in range(n_takes):
                n = max(16, int(round(seconds * sample_rate * rng.uniform(0.9, 1.1))))
                time = np.arange(n) / sample_rate
                progress = time / time[-1] if n > 1 else time
                f0 = f0_base * rng.uniform(0.97, 1.03) * (1.0 + 0.05 * np.sin(np.pi * progress))
                scale = rng.uniform(0.96, 1.04)
                f1 = np.clip((start + glide * progress) * scale, 150.0, nyquist * 0.8)
                f2 = np.clip(second * scale + 0.3 * glide * progress, 400.0, nyquist * 0.9)
                phase = 2 * np.pi * np.cumsum(f0) / sample_rate
                n_harmonics = int(nyquist // f0_base)
                k = np.arange(1, n_harmonics + 1)[:, None]
                freq = k * f0[None, :]
                amp = tilt ** (k - 1) * (np.exp(-0.5 * ((freq - f1) / 120.0) ** 2)
                                         + 0.5 * np.exp(-0.5 * ((freq - f2) / 180.0) ** 2) + 0.02)
                amp[freq >= nyquist] = 0.0
                wave = (amp * np.sin(k * phase[None, :])).sum(axis=0)
                envelope = np.minimum(1.0, np.minimum(progress, 1.0 - progress) / 0.1) if n > 1 else np.ones(1)
                wave = wave * envelope
                wave = 0.5 * wave / max(float(np.abs(wave).max()), 1e-9)
                wave = wave + rng.normal(0.0, 0.5 * 10 ** (-30 / 20), size=n)
                waves.append(np.clip(wave, -1.0, 1.0).astype(np.float32))
                rows.append((f"speaker{s}/word{w}_take{t}.wav", f"speaker{s}", s, w, t))
    labels = pd.DataFrame(rows, columns=["file", "group", "speaker", "word", "take"])
    return AudioData(waves, sample_rate, labels, None)
