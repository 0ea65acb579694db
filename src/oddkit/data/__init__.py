"""Reading tables and preparing them for detectors.

:func:`read_table` and :func:`iter_table_batches` read CSV, Parquet, ``.npy`` and ``.npz`` files
into :class:`Table` objects (features, labels, ids); :class:`TablePreprocessor` turns features into
the standardised, one-hot encoded float32 matrix that detectors learn from. :func:`read_images`
reads folders of PNG/JPEG files and ``.npz`` image stacks into float32 (n, C, H, W) arrays in
[0, 1], and :func:`one_class_split` makes the one-class protocol (:mod:`oddkit.data.images`).
:func:`read_audio` reads WAV/FLAC files, folders of them and FSDD-style ``.npz`` archives into
:class:`AudioData`, and :class:`LogMel` makes log-mel spectrograms (:mod:`oddkit.data.audio`).
Ready-made datasets live in :mod:`oddkit.data.datasets`.
"""

from __future__ import annotations

from oddkit.data.audio import AudioData, LogMel, read_audio
from oddkit.data.images import ImageSet, one_class_split, read_images
from oddkit.data.io import Table, iter_table_batches, load_npz, read_table
from oddkit.data.preprocess import TablePreprocessor

__all__ = ["AudioData", "ImageSet", "LogMel", "Table", "TablePreprocessor", "iter_table_batches", "load_npz", "one_class_split",
           "read_audio", "read_images", "read_table"]
