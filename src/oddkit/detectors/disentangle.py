"""Feature disentanglement: an auto-encoder whose code splits into a class part and a style part."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from oddkit.data.labels import classes_state, encode_classes, restore_classes
from oddkit.detectors.autoencoder import AutoEncoderDetector
from oddkit.detectors.params import non_negative_float, positive_int
from oddkit.exceptions import DataError, ParameterError
from oddkit.nn.disentangle import SplitCodeAutoEncoder, disentangling_losses, split_code_autoencoder

MIN_DEFAULT_LATENT = 4
"""The default code has at least this many numbers: two for each part."""


class DisentangledAutoEncoderDetector(AutoEncoderDetector):
    """An auto-encoder whose code is split into a class part and a style part that can be swapped.

    ``fit(X, classes)`` learns from rows (or images) and a label per row naming one factor of
    variation — the digit an image shows, the speaker of a recording, the kind of a transaction.
    The first ``class_dim`` numbers of the code (the *class part*) learn what the rows of a class
    share; the rest (the *style part*) learn everything else about a row — how a digit is written,
    what was said — and are trained to carry nothing about its class. :meth:`swap` then joins the
    class part of some rows to the style part of others: a digit drawn in another digit's
    handwriting. With speakers as the classes, the class part is the voice and the style part the
    content, and a swap is voice conversion.

    Training, on each batch (:func:`oddkit.nn.disentangle.disentangling_losses`):

    - each row is reconstructed from its own code;
    - it is reconstructed again from its own style part joined to the class part of another row of
      the same class (weight ``swap_weight``): the class part can then only hold what a class has
      in common, so whatever is particular to a row must pass through the style part;
    - with the same weight, a cycle: its style part joined to the class part of a random row
      (often of another class) is decoded and encoded again, and should give back both parts;
    - an adversary (a small MLP) learns to tell the class from the style part, and the encoder is
      trained to leave it guessing (weight ``adversary_weight``), so the style part does not carry
      the class as well.

    Everything else — preprocessing, architecture defaults (MLP for tables, convolutional networks
    for images), the training loop, early stopping on held-out rows, de-noising, ``robust``,
    saving — is :class:`AutoEncoderDetector`'s, and so is the anomaly score: the reconstruction
    error of a row from its own code.

    Parameters
    ----------
    class_dim : int, optional
        Size of the class part; default half of the code (rounded down, at least 1). The style
        part is the rest (``latent_dim - class_dim``, at least 1).
    swap_weight : float, default=1.0
        Weight of the reconstruction from a same-class partner's class part and of the cycle term
        (0 trains without either).
    adversary_weight : float, default=1.0
        Weight of the encoder's term that keeps the adversary from reading the class in the style
        part (0 trains without the adversary).
    hidden_sizes, latent_dim, epochs, batch_size, lr, weight_decay, validation_fraction, patience, noise, \
    noise_level, normalize_errors, robust, contamination, impute, unknown_categories, column_types, device, n_threads, \
    random_state, verbose
        As for :class:`AutoEncoderDetector` (``latent_dim`` is the whole code: class part plus style
        part, at least 2; by default the auto-encoder's, but at least 4). One network only: the
        parts of several members would not share one code space, so there is no ``n_estimators``.

    Attributes
    ----------
    classes_ : ndarray
        The distinct class labels, sorted.
    class_dim_, latent_dim_ : int
        Sizes of the class part and of the whole code actually used.
    model_ : oddkit.nn.disentangle.SplitCodeAutoEncoder
        The trained torch module (with its adversary). The other fitted attributes are
        :class:`AutoEncoderDetector`'s.

    Examples
    --------
    >>> import numpy as np
    >>> from oddkit import DisentangledAutoEncoderDetector
    >>> rng = np.random.default_rng(0)
    >>> classes = rng.integers(0, 3, size=600)
    >>> X = np.c_[np.eye(3)[classes] * 4, rng.normal(size=(600, 3))]  # class columns, style columns
    >>> detector = DisentangledAutoEncoderDetector(epochs=30, random_state=0, verbose=0).fit(X, classes)
    >>> swapped = detector.swap(X[:5], X[5:10])  # the classes of rows 0-4 in the styles of rows 5-9
    >>> swapped.shape
    (5, 6)
    """

    # One network: the parts of several members would not share one code space. No known
    # anomalies either. Class attributes, so that the inherited training code reads them while
    # they are not parameters of this detector.
    n_estimators = 1
    exposure_weight = 0.0
    exposure_margin = 2.0

    _parameter_constraints: dict = {
        "class_dim": [positive_int, None],
        "swap_weight": [non_negative_float],
        "adversary_weight": [non_negative_float],
    }

    def __init__(self, class_dim=None, swap_weight=1.0, adversary_weight=1.0, hidden_sizes=None, latent_dim=None,
                 epochs=100, batch_size="auto", lr=1e-3, weight_decay=0.0, validation_fraction=0.1, patience=10,
                 noise=None, noise_level=0.2, normalize_errors="covariance", robust=False, contamination=0.1,
                 impute=None, unknown_categories="error", column_types=None, device="cpu", n_threads=None,
                 random_state=None,
                 verbose=1):
        self.class_dim = class_dim
        self.swap_weight = swap_weight
        self.adversary_weight = adversary_weight
        self.hidden_sizes = hidden_sizes
        self.latent_dim = latent_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.noise = noise
        self.noise_level = noise_level
        self.normalize_errors = normalize_errors
        self.robust = robust
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.column_types = column_types
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, X, classes=None):
        """Train on rows or images ``X`` with the class of each row.

        Parameters
        ----------
        X : table (DataFrame or 2-D array) or images (ndarray (n, H, W) or (n, C, H, W))
        classes : array-like of shape (n,)
            The label of each row for the factor the class part should hold: strings or numbers of
            one type, at least two distinct ones.

        Raises
        ------
        LabelError
            ``classes`` missing, of the wrong length, with missing values, mixed types or one class.
        DataError
            Bad ``X`` or parameters (see :class:`~oddkit.detectors.base.BaseDetector`).
        """
        self._classes = classes  # read by _fit_array, which BaseDetector.fit calls after checking X
        try:
            # Skips AutoEncoderDetector.fit, whose second argument is the (ignored) anomaly flag y
            # and which takes known anomalies: here the second argument is the classes.
            return super(AutoEncoderDetector, self).fit(X)
        finally:
            del self._classes

    def fit_predict(self, X, classes=None) -> np.ndarray:
        """Fit on ``X`` and ``classes`` (see :meth:`fit`) and return the training labels ``labels_``."""
        return self.fit(X, classes).labels_

    def _check_param_combinations(self) -> None:
        super()._check_param_combinations()
        if self.latent_dim is not None and self.latent_dim < 2:
            raise ParameterError(f"{type(self).__name__}: latent_dim must be at least 2 (a class part and a style "
                                 f"part), got {self.latent_dim!r}")
        if self.latent_dim is not None and self.class_dim is not None and not self.class_dim < self.latent_dim:
            raise ParameterError(f"{type(self).__name__}: class_dim must be between 1 and latent_dim - 1 = "
                                 f"{self.latent_dim - 1}, got {self.class_dim!r}")

    def _set_architecture(self, n_inputs: int) -> None:
        super()._set_architecture(n_inputs)
        if self.latent_dim is None:  # the auto-encoder's default code may be too small to split
            self.latent_dim_ = max(self.latent_dim_, MIN_DEFAULT_LATENT)
        if self.latent_dim_ < 2:
            raise ParameterError(f"{type(self).__name__}: latent_dim must be at least 2 (a class part and a style "
                                 f"part), got {self.latent_dim_}")
        self.class_dim_ = int(self.class_dim) if self.class_dim is not None else max(1, self.latent_dim_ // 2)
        if not 1 <= self.class_dim_ < self.latent_dim_:
            raise ParameterError(f"{type(self).__name__}: class_dim must be between 1 and latent_dim - 1 = "
                                 f"{self.latent_dim_ - 1}, got {self.class_dim!r}")

    def _fit_array(self, Z: np.ndarray) -> None:
        self.classes_, self._class_codes = encode_classes(self._classes, Z.shape[0],
                                                          "DisentangledAutoEncoderDetector.fit")
        try:
            super()._fit_array(Z)
        finally:
            del self._class_codes

    def _training_rows(self, Z: np.ndarray) -> np.ndarray:
        # The class rides along as a last column, so that batches, the held-out split and trimming
        # keep each row with its class.
        return np.hstack([Z, self._class_codes[:, None].astype(Z.dtype)])

    def _build_module(self, n_inputs: int) -> SplitCodeAutoEncoder:
        return split_code_autoencoder(super()._build_module(n_inputs), self.latent_dim_, self.class_dim_,
                                      len(self.classes_))

    def _row_loss_rows(self, module: SplitCodeAutoEncoder, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # Overridden below AutoEncoderDetector._row_loss, which evaluates images in bounded chunks.
        rows, classes = x[:, :-1], x[:, -1].to(torch.int64)
        source = self._corrupt(rows, generator) if module.training else rows
        return disentangling_losses(module, source, rows, classes, generator, swap_weight=float(self.swap_weight),
                                    adversary_weight=float(self.adversary_weight))

    # -- the two parts ----------------------------------------------------------------------------

    def class_code(self, X) -> np.ndarray:
        """The class part of each row's code, float32 of shape (n, class_dim_)."""
        return self.transform(X)[:, :self.class_dim_]

    def style_code(self, X) -> np.ndarray:
        """The style part of each row's code, float32 of shape (n, latent_dim_ - class_dim_)."""
        return self.transform(X)[:, self.class_dim_:]

    def swap(self, X_class, X_style):
        """Decode the class part of the rows of ``X_class`` joined to the style part of ``X_style``.

        Row ``i`` of the result has the class of ``X_class[i]`` and the style of ``X_style[i]``; when
        one of the two has a single row, it is paired with every row of the other (one digit in
        many handwritings, or many digits in one).

        Returns
        -------
        pandas.DataFrame or ndarray
            In the input's space, as :meth:`inverse_transform` gives it.

        Raises
        ------
        DataError
            The two hold different numbers of rows, neither of them one.
        """
        check_is_fitted(self)
        class_part, style_part = self.class_code(X_class), self.style_code(X_style)
        if len(class_part) != len(style_part) and 1 not in (len(class_part), len(style_part)):
            raise DataError(f"X_class has {len(class_part):,} rows and X_style {len(style_part):,}; pass as many "
                            "of each, or a single row for one of them")
        n = max(len(class_part), len(style_part))
        codes = np.hstack([np.broadcast_to(class_part, (n, class_part.shape[1])),
                           np.broadcast_to(style_part, (n, style_part.shape[1]))])
        return self.inverse_transform(codes)

    # -- persistence ----------------------------------------------------------------------------

    def _architecture_state(self) -> dict:
        return {**super()._architecture_state(), "class_dim": self.class_dim_, **classes_state(self.classes_)}

    def _restore_architecture(self, meta: dict) -> None:
        from oddkit.detectors.autoencoder import _positive_int

        super()._restore_architecture(meta)
        self.class_dim_ = _positive_int(meta["class_dim"], "class_dim")
        if not self.class_dim_ < self.latent_dim_:
            raise ValueError(f"class_dim {self.class_dim_} is not below latent_dim {self.latent_dim_}")
        self.classes_ = restore_classes(meta)
