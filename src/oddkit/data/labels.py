"""Class labels of normal rows (open-set recognition, disentangling): checked once, coded as integers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from oddkit.exceptions import LabelError


def python_value(value):
    """A NumPy scalar as the plain Python value (for JSON); anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def encode_classes(classes, n_rows: int, fit_call: str) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct labels and each row's index into them, after checking ``classes``.

    ``fit_call`` names the method in the messages (e.g. ``"ClassifierConfidenceDetector.fit"``).

    Raises
    ------
    LabelError
        ``classes`` missing, not one label per row, with missing values, of mixed or unsortable
        types, or a single class.
    """
    if classes is None:
        raise LabelError(f"{fit_call} needs the class of each training row: fit(X, classes); for data "
                         "without classes use another detector")
    array = classes.to_numpy(dtype=object) if isinstance(classes, (pd.Series, pd.DataFrame)) else np.asarray(
        classes, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise LabelError(f"classes must hold one label per row (a 1-D array), got shape {array.shape}")
    values = pd.Series(array)
    if len(values) != n_rows:
        raise LabelError(f"classes has {len(values):,} labels but X has {n_rows:,} rows; pass one class per row")
    missing = np.flatnonzero(values.isna().to_numpy())
    if missing.size:
        raise LabelError(f"classes has {missing.size:,} missing values (NaN/None; first rows: "
                         f"{', '.join(map(str, missing[:5]))}); every training row needs its class")
    kinds = {type(python_value(v)) for v in values}
    if len(kinds) > 1 and not kinds <= {int, float, bool}:
        raise LabelError(f"classes mixes label types ({', '.join(sorted(k.__name__ for k in kinds))}); "
                         "use one type, e.g. all strings")
    try:
        labels, codes = np.unique(np.asarray(values.tolist()), return_inverse=True)
    except TypeError as exc:
        raise LabelError(f"classes cannot be sorted ({exc}); use strings or numbers") from None
    if labels.dtype.kind not in "biufUS":
        raise LabelError(f"classes must be strings or numbers, got {labels.dtype} values")
    if len(labels) < 2:
        raise LabelError(f"classes holds a single class ({python_value(labels[0])!r}); {fit_call} needs at "
                         "least two: for one normal class use a one-class detector such as AutoEncoderDetector")
    return labels, codes.ravel().astype(np.int64)


def classes_state(classes: np.ndarray) -> dict:
    """``classes_`` as JSON metadata; :func:`restore_classes` reads it back with its dtype."""
    return {"classes": [python_value(c) for c in classes], "classes_dtype": classes.dtype.str}


def restore_classes(meta: dict) -> np.ndarray:
    """``classes_`` from :func:`classes_state`'s metadata. The dtype must be one a label array has (a
    plain number, boolean, string or object type): a dtype string such as ``"(20000,13000)f8"`` would
    make every class a 2 GB block.

    Raises
    ------
    ValueError
        When ``classes_dtype`` is not such a type (the loader reports it as a damaged model file)."""
    name = meta["classes_dtype"]
    dtype = np.dtype(name) if isinstance(name, str) and len(name) <= 16 else None
    if dtype is None or dtype.shape != () or dtype.names is not None or dtype.kind not in "biufUSO" \
            or dtype.itemsize > 4096:
        raise ValueError(f"classes_dtype={str(name)[:40]!r} is not the type of an array of labels")
    return np.asarray(meta["classes"], dtype=dtype)
