"""Reading tables and preparing them for detectors.

:func:`read_table` and :func:`iter_table_batches` read CSV, Parquet, ``.npy`` and ``.npz`` files
into :class:`Table` objects (features, labels, ids); :class:`TablePreprocessor` turns features into
the standardised, one-hot encoded float32 matrix that detectors learn from. Ready-made datasets
live in :mod:`oddkit.data.datasets`.
"""

from __future__ import annotations

from oddkit.data.io import Table, iter_table_batches, load_npz, read_table
from oddkit.data.preprocess import TablePreprocessor

__all__ = ["Table", "TablePreprocessor", "iter_table_batches", "load_npz", "read_table"]
