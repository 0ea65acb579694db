"""Preparing in-memory image stacks for the auto-encoders: the image counterpart of
:class:`~oddkit.data.TablePreprocessor`.

Nothing is learned from the pixels: :class:`ImagePreprocessor` records the image shape (and the
input's layout) at fit time, checks that later images match it, scales integer pixels to [0, 1] by
their type's range, and flattens each image to one row of ``C * H * W`` float32 values, the layout
oddkit's networks take.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from oddkit.exceptions import (
    ColumnMismatchError,
    DataError,
    EmptyDataError,
    ImageShapeError,
    ModelFileError,
    NonFiniteError,
)

_STATE_VERSION = 1
_SCALES = {"uint8": 255.0, "uint16": 65535.0, "bool": 1.0}
_FLOAT_TOLERANCE = 1e-6


def is_image_array(X: Any) -> bool:
    """Whether ``X`` is a NumPy array of images: ``(n, H, W)`` or ``(n, C, H, W)``."""
    return isinstance(X, np.ndarray) and X.ndim in (3, 4)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)


MAX_SAVED_PIXELS = 2**28
"""Most values per image a saved model may declare (C * H * W), so a small edited file cannot ask for
huge buffers."""


class ImagePreprocessor:
    """Scale and flatten image stacks ``(n, H, W)`` or ``(n, C, H, W)`` (channels first).

    Pixels of type ``uint8`` are divided by 255, ``uint16`` by 65,535, booleans become 0/1; float
    pixels are used as they are and must lie in [0, 1] (divide 8-bit values by 255 first). Any other
    type, NaN or inf raise an error naming the images. The scale depends only on the type, never on
    the data, so training and scoring see the same numbers.

    Attributes
    ----------
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images (C = 1 for ``(n, H, W)`` input).
    input_ndim_ : int
        3 when fitted on ``(n, H, W)`` (then :meth:`inverse_transform` returns that layout), else 4.
    input_dtype_ : str
        The training images' dtype, for the record (scaling always follows each call's dtype).
    n_outputs_ : int
        ``C * H * W``, the width of :meth:`transform`'s rows.

    Examples
    --------
    >>> import numpy as np
    >>> pre = ImagePreprocessor().fit(np.full((2, 4, 4), 255, dtype=np.uint8))
    >>> pre.image_shape_, pre.transform(np.zeros((3, 4, 4), dtype=np.uint8)).shape
    ((1, 4, 4), (3, 16))
    """

    def __repr__(self) -> str:
        return "ImagePreprocessor()"

    def _check_fitted(self) -> None:
        if not hasattr(self, "image_shape_"):
            raise DataError("this ImagePreprocessor is not fitted yet; call fit(X) first")

    @staticmethod
    def _layout(X: np.ndarray) -> tuple[int, int, int]:
        if X.ndim == 3:
            return 1, int(X.shape[1]), int(X.shape[2])
        channels, height, width = (int(v) for v in X.shape[1:])
        if channels > 4 and X.shape[3] in (1, 3, 4):
            raise ImageShapeError(
                f"images of shape {X.shape} look channels-last (n, H, W, C); oddkit takes (n, C, H, W): "
                "pass X.transpose(0, 3, 1, 2)")
        return channels, height, width

    @staticmethod
    def _scaled(X: np.ndarray) -> np.ndarray:
        name = X.dtype.name
        if name in _SCALES:
            values = X.astype(np.float32)
            return values if name == "bool" else values / np.float32(_SCALES[name])
        if X.dtype.kind != "f":
            raise DataError(f"images of dtype {X.dtype} cannot be scaled; pass uint8 (0-255), uint16 (0-65535) "
                            "or floats in [0, 1]")
        # Checked in the input's own precision: a float64 pixel of 1e300 would be inf in float32 and
        # then be reported as a NaN/inf that the input never held.
        flat = X.reshape(len(X), -1)
        bad = ~np.isfinite(flat)
        if bad.any():
            rows = np.flatnonzero(bad.any(axis=1))
            raise NonFiniteError(
                f"NaN or inf in {len(rows)} image(s), first at index {rows[:5].tolist()}; images must be "
                "finite (impute applies to tables only): clean or drop those images")
        outside = (flat < -_FLOAT_TOLERANCE) | (flat > 1.0 + _FLOAT_TOLERANCE)
        if outside.any():
            rows = np.flatnonzero(outside.any(axis=1))
            raise DataError(
                f"float images must hold values in [0, 1], got {float(flat.min()):g} to {float(flat.max()):g} "
                f"in {len(rows)} image(s), first at index {rows[:5].tolist()}; divide 8-bit pixels by 255 "
                "(or pass them as uint8)")
        return X.astype(np.float32)

    def _check(self, X: Any) -> np.ndarray:
        if not is_image_array(X):
            raise ImageShapeError(f"expected a NumPy array of images (n, H, W) or (n, C, H, W), got "
                                  f"{type(X).__name__} of shape {getattr(X, 'shape', None)}")
        if X.shape[0] == 0 or 0 in X.shape[1:]:
            raise EmptyDataError(f"the image array has shape {X.shape}; pass at least one image")
        return X

    def fit(self, X: np.ndarray) -> ImagePreprocessor:
        """Record the shape and layout of the images ``X`` (which must scale cleanly)."""
        X = self._check(X)
        shape = self._layout(X)
        self._scaled(X)
        self.image_shape_ = shape
        self.input_ndim_ = int(X.ndim)
        self.input_dtype_ = str(X.dtype)
        self.n_outputs_ = int(np.prod(shape))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Images -> float32 rows ``(n, C*H*W)`` in [0, 1].

        Raises
        ------
        ColumnMismatchError
            When the images' shape differs from the training images'.
        NonFiniteError, DataError
            NaN/inf, values out of [0, 1], or a dtype that cannot be scaled.
        """
        self._check_fitted()
        X = self._check(X)
        shape = self._layout(X)
        if shape != self.image_shape_:
            raise ColumnMismatchError(
                f"the model was trained on images of shape (C, H, W) = {self.image_shape_}, got {shape} "
                f"(array {_shape_text(X.shape)}); resize or convert the images to "
                f"{self.image_shape_[0]} channel(s) of {self.image_shape_[1]}x{self.image_shape_[2]} pixels")
        return np.ascontiguousarray(self._scaled(X).reshape(len(X), -1), dtype=np.float32)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Rows ``(n, C*H*W)`` -> images float32 clipped to [0, 1]: ``(n, C, H, W)``, or ``(n, H, W)``
        when fitted on that layout."""
        self._check_fitted()
        Z = np.asarray(Z)
        if Z.ndim != 2 or Z.shape[1] != self.n_outputs_:
            raise ColumnMismatchError(f"expected an array of shape (n, {self.n_outputs_}), got {Z.shape}")
        images = np.clip(Z.astype(np.float32), 0.0, 1.0).reshape(len(Z), *self.image_shape_)
        return images[:, 0] if self.input_ndim_ == 3 else images

    # -- persistence ----------------------------------------------------------------------------

    def get_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """No arrays; the metadata ``{"kind": "images", "image_shape", "input_ndim", "input_dtype"}``."""
        self._check_fitted()
        return {}, {"kind": "images", "version": _STATE_VERSION, "image_shape": list(self.image_shape_),
                    "input_ndim": self.input_ndim_, "input_dtype": self.input_dtype_}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict) -> ImagePreprocessor:
        """Rebuild from :meth:`get_state`'s output, checking it (raises :class:`ModelFileError`)."""
        expected = {"kind", "version", "image_shape", "input_ndim", "input_dtype"}
        if not isinstance(meta, dict) or set(meta) != expected or meta["kind"] != "images":
            raise ModelFileError(f"the saved image preprocessing is malformed: expected the keys {sorted(expected)}")
        if meta["version"] != _STATE_VERSION:
            raise ModelFileError(f"unknown image preprocessing version {meta['version']!r}")
        shape = meta["image_shape"]
        if not (isinstance(shape, list) and len(shape) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
            raise ModelFileError(f"the saved image shape {shape!r} is not three positive integers")
        if meta["input_ndim"] not in (3, 4) or (meta["input_ndim"] == 3 and shape[0] != 1):
            raise ModelFileError(f"the saved image layout {meta['input_ndim']!r} is not 3 or 4 dimensions")
        if arrays:
            raise ModelFileError(f"unexpected image preprocessing arrays {sorted(arrays)}")
        if int(np.prod(shape)) > MAX_SAVED_PIXELS:
            raise ModelFileError(f"the saved image shape {shape} holds more than {MAX_SAVED_PIXELS} values per image")
        try:
            dtype_ok = isinstance(meta["input_dtype"], str) and np.dtype(meta["input_dtype"]).kind in "biuf"
        except (TypeError, ValueError, SyntaxError):
            dtype_ok = False
        if not dtype_ok:
            raise ModelFileError(f"the saved image dtype {meta['input_dtype']!r} is not a numeric NumPy dtype")
        pre = cls()
        pre.image_shape_ = tuple(shape)
        pre.input_ndim_ = int(meta["input_ndim"])
        pre.input_dtype_ = str(meta["input_dtype"])
        pre.n_outputs_ = int(np.prod(shape))
        return pre
