"""Reading stacks of images: folders of PNG/JPEG files and ``.npz`` archives.

Every reader returns an :class:`ImageSet` whose ``X`` is a float32 array of shape
``(n, C, H, W)`` with values in [0, 1] — the layout and scale oddkit's image auto-encoders train
on — plus class labels when the source has them, and each image's size as it was read. Scaling is
fixed, never fitted: 8-bit values are divided by 255 and 16-bit values by 65,535, so a model sees the
same numbers at training and at scoring time whatever the batch holds.

Sources
-------
- a folder of images: one class (no labels), or one sub-folder per class (labels = sub-folder
  index in sorted order, names in ``class_names``);
- a single image file;
- an ``.npz`` archive with ``X`` of shape ``(n, H, W)``, ``(n, C, H, W)`` or ``(n, H, W, C)``
  (C = 1, 3 or 4; an alpha channel is dropped), uint8 / uint16 / bool or floats already in
  [0, 1], and optionally ``labels`` (one per image) and ``class_names``.

:func:`one_class_split` builds the usual one-class protocol from a labelled set;
:func:`save_image_grid` / :func:`write_images` write images back out, and
:func:`save_heatmap` draws a per-pixel map (an explanation) over an image.

Resizing is never silent
------------------------
:func:`read_images` resizes only when asked (``size``), and then says so: an
:class:`ImageResizeWarning` names how many images it resized, from which sizes to which, and
whether their aspect ratio changed. A model trained on 28x28 images scores a folder of 64x64 files
only after they are resized; the command line does that for every command that reads images for a
model, and a wrong input (a crop from another camera, the full frame instead of the crop) would
otherwise be scored without a word.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oddkit.exceptions import (
    DataError,
    EmptyDataError,
    ImageShapeError,
    NonFiniteError,
    OddkitWarning,
    UnreadableImageError,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageResizeWarning",
    "ImageSet",
    "as_image_batch",
    "heatmap_picture",
    "is_image_source",
    "one_class_split",
    "read_images",
    "save_heatmap",
    "save_image_grid",
    "to_uint8",
    "write_images",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""File name endings read as images (case-insensitive)."""

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


class ImageResizeWarning(OddkitWarning):
    """:func:`read_images` resized images to the size it was given (the message says how many, from
    which sizes to which, and whether their aspect ratio changed).

    A warning rather than an error: resizing to a model's size is how images from another
    resolution are scored (the command line resizes every image it reads for a model to the model's
    size), and refusing would break that documented use. A warning rather than silence: the same
    resizing turns a wrong input, a crop from another camera or the full frame instead of the crop,
    into a plausible-looking score, and only the sizes tell them apart. To make it an error in
    Python, ``warnings.simplefilter("error", ImageResizeWarning)``; to silence it where resizing is
    meant, ``warnings.simplefilter("ignore", ImageResizeWarning)``.
    """


@dataclass
class ImageSet:
    """Images read from a folder, a file or an archive.

    Attributes
    ----------
    X : numpy.ndarray of float32, shape (n, C, H, W)
        Pixel values in [0, 1]; C is 1 (grayscale) or 3 (RGB).
    labels : numpy.ndarray of int64 or None
        Class of each image: the sub-folder index (folders), or the archive's ``labels``.
    class_names : list of str or None
        Name of each class index (sub-folder names, or the archive's ``class_names``).
    names : list of str
        One name per image: its path relative to the folder, or ``"<archive>[i]"``.
    source : pathlib.Path
        Where the images came from.
    original_sizes : list of (int, int) or None
        Each image's ``(height, width)`` as read, before any resizing (``X.shape[2:]`` where it was
        not resized); None for an ImageSet built by hand.
    """

    X: np.ndarray
    labels: np.ndarray | None
    class_names: list[str] | None
    names: list[str]
    source: Path
    original_sizes: list[tuple[int, int]] | None = None

    @property
    def resized(self) -> np.ndarray:
        """Boolean mask of the images whose size was changed when they were read."""
        if self.original_sizes is None:
            return np.zeros(len(self.X), dtype=bool)
        return np.array([tuple(s) != tuple(self.X.shape[2:]) for s in self.original_sizes], dtype=bool)

    def __len__(self) -> int:
        return len(self.X)


# -- what is an image source ----------------------------------------------------------------------

def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _npz_array_ndim(path: Path, key: str = "X") -> int | None:
    """The number of dimensions of array ``key`` in an .npz, read from its header only."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if major == 1
                           else np.lib.format.read_array_header_2_0)
            shape, _, _ = read_header(f)
            return len(shape)
    except (KeyError, OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None


def is_image_source(path: str | Path) -> bool:
    """Whether ``path`` is something :func:`read_images` reads rather than a table: a folder, an
    image file, or an ``.npz`` whose ``X`` has 3 or 4 dimensions.

    Examples
    --------
    >>> is_image_source("train.csv")
    False
    """
    path = Path(path)
    if path.is_dir():
        return True
    if _is_image_file(path):
        return True
    if path.suffix.lower() == ".npz" and path.is_file():
        return _npz_array_ndim(path) in (3, 4)
    return False


# -- scaling and shapes ---------------------------------------------------------------------------

def _check_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise DataError(f"size must be an int or a (height, width) pair, got {size!r}") from None
    if height < 1 or width < 1:
        raise DataError(f"size must be positive, got {size!r}")
    return height, width


def _check_channels(channels: Any) -> int | None:
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels must be 1 (grayscale), 3 (RGB) or None (from the images), got {channels!r}")
    return channels


def _scaled(array: np.ndarray, what: str) -> np.ndarray:
    """Integer and boolean pixels to float32 in [0, 1] by their type's range; floats checked."""
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.float32)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535)
    if kind in "iu":
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        if low >= 0 and high <= 255:
            return array.astype(np.float32) / np.float32(255)
        if low >= 0 and high <= 65535:
            return array.astype(np.float32) / np.float32(65535)
        raise DataError(f"{what} holds integers from {low} to {high}; save 8-bit (0-255) or 16-bit (0-65535) "
                        "pixels, or floats in [0, 1]")
    if kind == "f":
        values = array.astype(np.float32)
        bad = ~np.isfinite(values)
        if bad.any():
            first = np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))[:5].tolist()
            raise NonFiniteError(f"{what} holds NaN or inf in image(s) {first}; clean or drop those images")
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if low < 0.0 or high > 1.0:
            raise DataError(f"{what} holds floats from {low:g} to {high:g}; float images must be scaled to [0, 1] "
                            "(divide 8-bit values by 255), or save them as uint8")
        return values
    raise DataError(f"{what} has dtype {array.dtype}; save pixels as uint8, uint16 or floats in [0, 1]")


def _channels_first(array: np.ndarray, what: str) -> np.ndarray:
    """(n, H, W) -> (n, 1, H, W); (n, C, H, W) kept; (n, H, W, C) moved; alpha dropped."""
    if array.ndim == 3:
        return array[:, None]
    if array.ndim != 4:
        raise ImageShapeError(f"{what} has shape {array.shape}; expected (n, H, W), (n, C, H, W) or (n, H, W, C)")
    if array.shape[1] in (1, 3, 4):
        pass
    elif array.shape[3] in (1, 3, 4):
        array = np.moveaxis(array, 3, 1)
    else:
        raise ImageShapeError(f"{what} has shape {array.shape}: no axis of 1, 3 or 4 channels after the first; "
                              "expected (n, C, H, W) or (n, H, W, C) with C = 1, 3 or 4")
    if array.shape[1] == 4:
        array = array[:, :3]
    return array


def _convert_channels(X: np.ndarray, channels: int | None) -> np.ndarray:
    if channels is None or X.shape[1] == channels:
        return X
    if channels == 3:
        return np.repeat(X, 3, axis=1)
    # ITU-R 601 luma, as Pillow's convert("L") uses.
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)[None, :, None, None]
    return (X * weights).sum(axis=1, keepdims=True, dtype=np.float32)


def _resize_stack(X: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize every channel of every image with Pillow's bilinear filter (antialiased when shrinking)."""
    if size is None or X.shape[2:] == size:
        return X
    from PIL import Image

    height, width = size
    out = np.empty(X.shape[:2] + (height, width), dtype=np.float32)
    for i in range(X.shape[0]):
        for c in range(X.shape[1]):
            image = Image.fromarray(np.ascontiguousarray(X[i, c], dtype=np.float32), mode="F")
            out[i, c] = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


def as_image_batch(X: Any, size: Any = None, channels: int | None = None, what: str = "X") -> np.ndarray:
    """An in-memory stack of images as float32 (n, C, H, W) in [0, 1], resized and converted.

    Accepts the same layouts and dtypes as an ``.npz`` archive's ``X`` (see the module notes).

    Examples
    --------
    >>> import numpy as np
    >>> as_image_batch(np.full((2, 4, 4), 255, dtype=np.uint8)).shape
    (2, 1, 4, 4)
    """
    array = np.asarray(X)
    if array.ndim not in (3, 4):
        raise ImageShapeError(f"{what} has shape {array.shape}; expected (n, H, W), (n, C, H, W) or (n, H, W, C)")
    if array.shape[0] == 0 or 0 in array.shape[1:]:
        raise EmptyDataError(f"{what} has shape {array.shape}; it needs at least one image")
    X = _scaled(_channels_first(array, what), what)
    X = _convert_channels(X, _check_channels(channels))
    return np.ascontiguousarray(_resize_stack(X, _check_size(size)), dtype=np.float32)


# -- readers --------------------------------------------------------------------------------------

def _open_image(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImageError(
            f"cannot read {path} as an image ({type(exc).__name__}: {exc}); remove or replace the file") from None


def _image_pixels(image, channels: int) -> np.ndarray:
    """One Pillow image as float32 (C, H, W) in [0, 1]."""
    mode = image.mode
    if channels == 1:
        if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
            array = np.asarray(image, dtype=np.float64) / 65535.0
            return np.clip(array, 0.0, 1.0).astype(np.float32)[None]
        if mode == "F":
            return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)[None]
        return (np.asarray(image.convert("L"), dtype=np.float32) / np.float32(255))[None]
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        gray = _image_pixels(image, 1)
        return np.repeat(gray, 3, axis=0)
    return np.moveaxis(np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255), 2, 0)


def _image_channels(image) -> int:
    return 1 if image.mode in _GRAY_MODES else 3


def _list_folder(folder: Path) -> tuple[list[Path], np.ndarray | None, list[str] | None]:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if p.is_file() and _is_image_file(p)]
    subfolders = [p for p in entries if p.is_dir()]
    class_dirs = [(d, sorted(p for p in d.iterdir() if p.is_file() and _is_image_file(p))) for d in subfolders]
    class_dirs = [(d, found) for d, found in class_dirs if found]
    if files and class_dirs:
        raise DataError(
            f"{folder} holds both image files ({files[0].name}, ...) and class sub-folders "
            f"({class_dirs[0][0].name}, ...); put every image in a class sub-folder, or none")
    if files:
        return files, None, None
    if class_dirs:
        paths = [p for _, found in class_dirs for p in found]
        labels = np.concatenate([np.full(len(found), i, dtype=np.int64) for i, (_, found) in enumerate(class_dirs)])
        return paths, labels, [d.name for d, _ in class_dirs]
    raise EmptyDataError(
        f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}), neither directly nor in class sub-folders")


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _warn_resized(original_sizes: list[tuple[int, int]], size: tuple[int, int], source: Path) -> None:
    """An :class:`ImageResizeWarning` when any of the images (``original_sizes``, (height, width)
    each) was resized to ``size``: how many, from which sizes (the commonest first, at most 3 named)
    and whether their aspect ratio changed."""
    from collections import Counter

    counts = Counter(tuple(s) for s in original_sizes if tuple(s) != tuple(size))
    if not counts:
        return
    n_resized = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    sizes = ", ".join(f"{n:,} from {_size_text(s)}" for s, n in ordered[:3])
    if len(ordered) > 3:
        sizes += f" and {n_resized - sum(n for _, n in ordered[:3]):,} from {len(ordered) - 3} other sizes"
    stretched = sum(n for s, n in counts.items() if abs(s[0] * size[1] - s[1] * size[0]) > max(s[0], s[1], *size) / 2)
    note = f"; {stretched:,} of them changed aspect ratio (stretched)" if stretched else ""
    warnings.warn(
        f"resized {n_resized:,} of {len(original_sizes):,} images in {source} to {_size_text(size)} pixels "
        f"(height x width): {sizes}{note}; resizing suits the same view at another resolution, not another "
        "crop or camera",
        ImageResizeWarning, stacklevel=4)


def _read_files(paths: list[Path], root: Path, size: tuple[int, int] | None,
                channels: int | None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    images = [_open_image(p) for p in paths]
    found = {_image_channels(im) for im in images}
    if channels is None:
        if len(found) > 1:
            gray = next(p for p, im in zip(paths, images) if _image_channels(im) == 1)
            color = next(p for p, im in zip(paths, images) if _image_channels(im) == 3)
            raise ImageShapeError(
                f"{root} mixes grayscale and colour images (e.g. {gray.relative_to(root) if gray != root else gray} "
                f"and {color.relative_to(root) if color != root else color}); pass channels=1 or 3 to "
                "read_images to convert them all, or save the files in one mode (all grayscale or all RGB)")
        channels = found.pop()
    if size is None:
        first = images[0].size
        for p, im in zip(paths, images):
            if im.size != first:
                raise ImageShapeError(
                    f"images in {root} differ in size: {paths[0].name} is {first[0]}x{first[1]} but {p.name} is "
                    f"{im.size[0]}x{im.size[1]} (width x height); pass size=(height, width) "
                    "(--image-size on the command line) to resize them all")
        size = (first[1], first[0])
    height, width = size
    out = np.empty((len(images), channels, height, width), dtype=np.float32)
    for i, image in enumerate(images):
        pixels = _image_pixels(image, channels)
        out[i] = pixels if pixels.shape[1:] == size else _resize_stack(pixels[None], size)[0]
    original_sizes = [(im.size[1], im.size[0]) for im in images]
    _warn_resized(original_sizes, size, root)
    return out, original_sizes


def _read_npz(path: Path, size, channels, labels_key: str) -> ImageSet:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            if "X" not in keys:
                raise DataError(f"{path} has no array named 'X' (it has {', '.join(keys) or 'none'}); "
                                "save the images with np.savez(path, X=images, labels=labels)")
            X = archive["X"]
            labels = archive[labels_key] if labels_key in keys else None
            class_names = archive["class_names"] if "class_names" in keys else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as an .npz archive ({type(exc).__name__}: {exc})") from None
    X = as_image_batch(X, channels=channels, what=f"'X' in {path}")
    original_sizes = [tuple(int(v) for v in X.shape[2:])] * len(X)
    if size is not None and X.shape[2:] != size:
        _warn_resized(original_sizes, size, path)
        X = np.ascontiguousarray(_resize_stack(X, size), dtype=np.float32)
    if labels is not None:
        labels = np.asarray(labels).ravel()
        if len(labels) != len(X):
            raise DataError(f"{path} holds {len(X):,} images but {len(labels):,} {labels_key!r}; save one per image")
        if labels.dtype.kind not in "biu":
            if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
                labels = labels.astype(np.int64)
            else:
                raise DataError(f"{labels_key!r} in {path} has dtype {labels.dtype}; save integer class labels")
        labels = labels.astype(np.int64)
    names_list = None if class_names is None else [str(n) for n in np.asarray(class_names).ravel()]
    return ImageSet(X=X, labels=labels, class_names=names_list,
                    names=[f"{path.name}[{i}]" for i in range(len(X))], source=path, original_sizes=original_sizes)


def read_images(path: str | Path, size: Any = None, channels: int | None = None,
                labels_key: str = "labels") -> ImageSet:
    """Read images from a folder, an image file or an ``.npz`` archive.

    Parameters
    ----------
    path : str or pathlib.Path
        A folder of images (one class) or of class sub-folders (one per class; hidden files and
        folders are skipped), a single image file, or an ``.npz`` holding ``X``.
    size : int or (height, width), optional
        Resize every image to this size (Pillow's bilinear filter). Default: keep the size, which
        must then be the same for every image. Images that were resized are counted in an
        :class:`ImageResizeWarning` (see the module notes) and flagged by ``ImageSet.resized``.
    channels : {1, 3, None}
        Convert every image to grayscale (1) or RGB (3). Default: as the images are, which must
        then all be grayscale or all colour. Alpha channels are dropped.
    labels_key : str, default "labels"
        The array of class labels in an ``.npz``.

    Returns
    -------
    ImageSet
        ``X`` float32 of shape (n, C, H, W) in [0, 1], labels, names and each image's size as read
        (``original_sizes``).

    Warns
    -----
    ImageResizeWarning
        When ``size`` changed the size of any image: how many, from which sizes, and how many
        changed aspect ratio.

    Raises
    ------
    EmptyDataError
        A folder without images, an empty archive.
    UnreadableImageError
        A file that is not an image or is damaged (the message names it).
    ImageShapeError
        Images with mixed channel counts or sizes (and no ``channels`` / ``size`` to reconcile
        them), or an array that is not an image stack.
    DataError
        A missing path, pixel values out of range, and other unusable input.

    Examples
    --------
    >>> images = read_images("photos/", size=64)  # doctest: +SKIP
    >>> images.X.shape, images.class_names  # doctest: +SKIP
    ((120, 3, 64, 64), ['defect', 'good'])
    """
    path = Path(path)
    size, channels = _check_size(size), _check_channels(channels)
    if not path.exists():
        raise DataError(f"{path} does not exist; check the path (relative paths start from {Path.cwd()})")
    if path.is_dir():
        paths, labels, class_names = _list_folder(path)
        X, original_sizes = _read_files(paths, path, size, channels)
        return ImageSet(X=X, labels=labels, class_names=class_names,
                        names=[p.relative_to(path).as_posix() for p in paths], source=path,
                        original_sizes=original_sizes)
    if path.suffix.lower() == ".npz":
        return _read_npz(path, size, channels, labels_key)
    if _is_image_file(path):
        X, original_sizes = _read_files([path], path, size, channels)
        return ImageSet(X=X, labels=None, class_names=None, names=[path.name], source=path,
                        original_sizes=original_sizes)
    raise DataError(f"cannot read images from {path}: expected a folder, an image file "
                    f"({', '.join(IMAGE_SUFFIXES)}) or an .npz archive holding X")


# -- protocol -------------------------------------------------------------------------------------

def one_class_split(X: np.ndarray, labels: np.ndarray, normal: Any, train_fraction: float = 0.8,
                    random_state: int | None = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one-class protocol: train on a seeded share of the normal class(es), test on the rest
    of them plus every image of the other classes.

    Parameters
    ----------
    X : array of shape (n, ...)
        Images (any layout) or rows.
    labels : array of shape (n,)
        Class of each example.
    normal : label or sequence of labels
        The class(es) that count as normal.
    train_fraction : float, default 0.8
        Share of the normal examples used for training, in (0, 1).
    random_state : int or None
        Seed of the choice of training examples.

    Returns
    -------
    X_train : ndarray
        The training examples (normal only), in their original order.
    X_test : ndarray
        The other normal examples, then the examples of every other class (original order).
    y_test : ndarray of int8
        1 = anomaly (another class), 0 = normal.

    Examples
    --------
    >>> import numpy as np
    >>> X, labels = np.arange(20).reshape(10, 2), np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 2])
    >>> X_train, X_test, y_test = one_class_split(X, labels, normal=0, train_fraction=0.6)
    >>> len(X_train), len(X_test), int(y_test.sum())
    (3, 7, 5)
    """
    labels = np.asarray(labels).ravel()
    if len(labels) != len(X):
        raise DataError(f"{len(X):,} examples but {len(labels):,} labels; pass one label per example")
    if not 0.0 < float(train_fraction) < 1.0:
        raise DataError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    normal_set = [normal] if np.isscalar(normal) else list(normal)
    unknown = [c for c in normal_set if not np.any(labels == c)]
    if unknown or not normal_set:
        raise DataError(f"normal class(es) {unknown or normal_set!r} not found among the labels "
                        f"({', '.join(map(str, np.unique(labels)[:20]))})")
    is_normal = np.isin(labels, normal_set)
    normal_index = np.flatnonzero(is_normal)
    n_train = int(round(train_fraction * len(normal_index)))
    if n_train < 1 or n_train >= len(normal_index):
        raise DataError(f"the normal class(es) hold {len(normal_index)} examples: too few to keep "
                        f"{train_fraction:g} of them for training and the rest for testing")
    rng = np.random.default_rng(random_state)
    train = np.sort(rng.choice(normal_index, n_train, replace=False))
    held_out = np.setdiff1d(normal_index, train)
    test = np.concatenate([held_out, np.flatnonzero(~is_normal)])
    y_test = np.concatenate([np.zeros(len(held_out), np.int8), np.ones(int((~is_normal).sum()), np.int8)])
    return X[train], X[test], y_test


# -- writing --------------------------------------------------------------------------------------

def to_uint8(X: np.ndarray) -> np.ndarray:
    """Images in [0, 1] (any float) to uint8 0-255, rounding and clipping."""
    return np.clip(np.rint(np.asarray(X, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def _pil_image(image: np.ndarray):
    """(C, H, W) floats in [0, 1] -> a Pillow L or RGB image."""
    from PIL import Image

    pixels = to_uint8(image)
    if pixels.shape[0] == 1:
        return Image.fromarray(pixels[0], mode="L")
    return Image.fromarray(np.ascontiguousarray(np.moveaxis(pixels[:3], 0, 2)), mode="RGB")


def save_image_grid(X: np.ndarray, path: str | Path, ncols: int | None = None, padding: int = 2,
                    scale: int = 1) -> Path:
    """Write a stack of images (n, C, H, W) in [0, 1] as one PNG grid.

    Parameters
    ----------
    ncols : int, optional
        Images per row (default: about the square root of n).
    padding : int, default 2
        White pixels between images.
    scale : int, default 1
        Enlarge each pixel to ``scale`` x ``scale`` (nearest neighbour), for small images.
    """
    X = as_image_batch(X)
    n, c, h, w = X.shape
    ncols = int(ncols) if ncols else int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.ones((c, nrows * (h + padding) + padding, ncols * (w + padding) + padding), dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, ncols)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = X[i]
    if scale > 1:
        grid = grid.repeat(scale, axis=1).repeat(scale, axis=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _pil_image(grid).save(path)
    return path


def write_images(X: np.ndarray, out: str | Path, names: Sequence[str] | None = None) -> Path:
    """Write images (n, C, H, W) in [0, 1]: a ``.png``/``.jpg`` path gets one grid image, an
    ``.npz`` path gets ``X`` as uint8 (n, C, H, W), any other path is a folder of PNG files (one per
    image, named ``names`` or ``00000.png``, ...)."""
    X = as_image_batch(X)
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return save_image_grid(X, out)
    if suffix == ".npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, X=to_uint8(X))
        return out
    if suffix:
        raise DataError(f"cannot write images to {out}: use a .png grid, an .npz archive, or a folder name")
    out.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(len(X) - 1)))
    for i, image in enumerate(X):
        name = Path(names[i]).with_suffix(".png").name if names is not None else f"{i:0{width}d}.png"
        _pil_image(image).save(out / name)
    return out


HEATMAP_MIN_SIDE = 128
"""Shortest side, in pixels, that :func:`save_heatmap` enlarges a small image to (by a whole factor)."""


def save_heatmap(image: np.ndarray, heat: np.ndarray, path: str | Path,
                 boxes: Sequence[tuple[int, int, int, int]] = (), min_side: int = HEATMAP_MIN_SIDE,
                 colormap: str = "inferno") -> Path:
    """Write a PNG of an image beside the same image with a per-pixel map laid over it
    (:func:`heatmap_picture`).

    Parameters
    ----------
    image, heat, boxes, min_side, colormap
        As :func:`heatmap_picture` takes them.
    path : str or pathlib.Path
        The PNG to write (its folder is created).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    heatmap_picture(image, heat, boxes, min_side, colormap).save(path)
    return path


def heatmap_picture(image: np.ndarray, heat: np.ndarray, boxes: Sequence[tuple[int, int, int, int]] = (),
                    min_side: int = HEATMAP_MIN_SIDE, colormap: str = "inferno"):
    """An image beside the same image with a per-pixel map laid over it, as a PIL image (RGB).

    Parameters
    ----------
    image : ndarray of shape (C, H, W) or (H, W)
        Pixels in [0, 1]; C is 1 or 3.
    heat : ndarray of shape (H, W)
        The map (e.g. each pixel's contribution to an anomaly score). Its positive part is drawn,
        scaled so that its largest value is the colormap's brightest colour and fully opaque;
        zero and negative values leave the image as it is.
    boxes : sequence of (left, top, right, bottom)
        Rectangles drawn on the overlay, in ``image``'s pixel coordinates (right and bottom
        exclusive), e.g. the regions adding most to the score; the first is drawn thickest.
    min_side : int, default=128
        Both panels are enlarged by the smallest whole factor that makes their shorter side at
        least this long (nearest neighbour: each pixel stays a visible square).
    colormap : str, default="inferno"
        A matplotlib colormap name.

    Returns
    -------
    PIL.Image.Image
    """
    import matplotlib
    from PIL import Image, ImageDraw

    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[None]
    heat = np.asarray(heat, dtype=np.float64)
    if pixels.ndim != 3 or pixels.shape[0] not in (1, 3) or heat.shape != pixels.shape[1:]:
        raise DataError(f"save_heatmap takes an image (C, H, W) and a map (H, W) of the same size, got "
                        f"{pixels.shape} and {heat.shape}")
    gray = np.repeat(pixels, 3, axis=0) if pixels.shape[0] == 1 else pixels
    base = np.clip(np.moveaxis(gray, 0, 2), 0.0, 1.0)
    positive = np.clip(np.nan_to_num(heat, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
    top = positive.max()
    level = positive / top if top > 0 else positive
    colours = matplotlib.colormaps[colormap](level)[..., :3]
    alpha = (0.85 * level)[..., None]
    overlay = (1.0 - alpha) * base + alpha * colours
    scale = max(1, int(math.ceil(min_side / max(1, min(heat.shape)))))
    height, width = heat.shape
    gap = max(2, scale)
    canvas = np.ones((height * scale, 2 * width * scale + gap, 3), dtype=np.float64)
    canvas[:, :width * scale] = base.repeat(scale, axis=0).repeat(scale, axis=1)
    canvas[:, width * scale + gap:] = overlay.repeat(scale, axis=0).repeat(scale, axis=1)
    picture = Image.fromarray(np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(picture)
    offset = width * scale + gap
    for i, (left, top_, right, bottom) in enumerate(boxes):
        line = max(1, scale // (3 if i == 0 else 6))
        draw.rectangle([offset + left * scale, top_ * scale, offset + right * scale - 1, bottom * scale - 1],
                       outline=(0, 255, 255) if i == 0 else (0, 200, 0), width=line)
    return picture
