"""oddkit's exception types.

Every error oddkit raises on purpose derives from :class:`OddkitError`, and its message says what is
wrong and how to fix it. Errors about the input data also derive from :class:`ValueError`, so code
written for scikit-learn (which raises ``ValueError`` for bad input) keeps working.

- ``DataError``: base for every problem with the data a user passed in
- ``EmptyDataError``: a file or array without rows (or without feature columns)
- ``TooFewRowsError``: fewer than two rows at fit time
- ``NonFiniteError``: NaN or inf in features (names the columns and first rows); fix with
  ``impute="median"`` or by cleaning the data
- ``ColumnMismatchError``: a column missing or extra at scoring time, or a wrong width
- ``UnseenCategoryError``: a categorical value never seen in training
  (``unknown_categories="ignore"`` encodes it as all-zeros instead)
- ``CellTypeError``: a cell holding what no column holds (a list, a dict, an array); also a
  ``TypeError``, as scikit-learn raises for such cells
- ``LabelError``: an anomaly label column that is not 0/1 numeric
- ``UnreadableImageError``: an image file that is not an image or is damaged (names the file)
- ``UnreadableAudioError``: an audio file that is not WAV/FLAC audio, is damaged, or holds no
  sample (names the file)
- ``ImageShapeError``: images with mixed channel counts or sizes, or an array that is not an
  image stack
- ``CompressedDataError``: a compressed blob that is damaged, foreign, or made by another model
- ``ModelFileError``: a saved model folder that is missing, holds a file or type it may not, fails
  its integrity check or signature, holds a value ``fit`` would refuse, or is from an incompatible
  version; loading never runs code
- ``ParameterError``: a detector parameter outside its documented values or range (names the
  parameter, the value given and the values allowed); raised by ``fit`` before any data is read,
  and by loading a model folder
- ``MissingDependencyError``: an optional library a feature needs is not installed (names the
  ``pip install`` that adds it), e.g. shap for ``explain`` on an isolation forest or one-class
  SVM; also an ``ImportError``
- ``ExplainError``: ``explain`` asked of a detector or model that cannot split its score (names
  the detector and what to do instead)

Warnings oddkit issues derive from :class:`OddkitWarning` (a ``UserWarning``), so they can be
filtered as one: ``warnings.filterwarnings("error", category=oddkit.exceptions.OddkitWarning)``:
``OddkitWarning`` itself (a parameter adjusted, e.g. ``n_neighbors`` clamped) and
``NonFiniteScoreWarning`` (also a ``RuntimeWarning``: a score that came out NaN/inf was replaced).
"""

from __future__ import annotations


class OddkitError(Exception):
    """Base class of every error oddkit raises on purpose."""


class DataError(OddkitError, ValueError):
    """The input data cannot be used as it is."""


class EmptyDataError(DataError):
    """The input holds no rows, or no feature columns."""


class TooFewRowsError(DataError):
    """Fitting needs at least two rows."""


class NonFiniteError(DataError):
    """The features contain NaN or infinite values."""


class ColumnMismatchError(DataError):
    """The columns at scoring time differ from those seen in training."""


class UnseenCategoryError(DataError):
    """A categorical column holds a value never seen in training."""


class CellTypeError(DataError, TypeError):
    """A cell holds a value that is neither a number, a string, a boolean nor missing."""


class LabelError(DataError):
    """The anomaly label column is not numeric 0/1."""


class UnreadableImageError(DataError):
    """An image file cannot be decoded (not an image, or damaged)."""


class UnreadableAudioError(DataError):
    """An audio file cannot be decoded (not audio, damaged, or without a single sample)."""


class ImageShapeError(DataError):
    """Images that do not stack: mixed channel counts or sizes, or a wrong array shape."""


class CompressedDataError(DataError):
    """A compressed blob is damaged, is not oddkit's format, or was made with another model."""


class ModelFileError(OddkitError):
    """A saved model folder cannot be loaded safely."""


class ParameterError(OddkitError, ValueError):
    """A detector's parameter has a value outside what it accepts.

    Not a :class:`DataError`: the data may be fine, the setting is not. It derives from
    ``ValueError``, as scikit-learn's ``InvalidParameterError`` does, so code written for
    scikit-learn keeps catching it.
    """


class MissingDependencyError(OddkitError, ImportError):
    """An optional library the requested feature needs is not installed; the message names the
    ``pip install`` command that adds it."""


class ExplainError(OddkitError):
    """``explain`` cannot split this detector's score by column (an unsupported detector, or a model
    saved without the state its explanation needs)."""


class OddkitWarning(UserWarning):
    """Base class of the warnings oddkit issues (something was adjusted that the user may want to know)."""


class NonFiniteScoreWarning(OddkitWarning, RuntimeWarning):
    """A detector computed a NaN or infinite score (a numerical failure, never expected); the score
    was replaced by the detector's ``out_of_range_score()`` so the row is labelled an anomaly."""
