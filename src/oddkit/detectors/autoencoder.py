"""Auto-encoder detectors: score = how badly a network trained on normal data reconstructs a row."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy.linalg import solve_triangular
from sklearn.base import TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from oddkit.detectors.base import BaseDetector
from oddkit.detectors.params import (
    PositiveIntSequence,
    StrOptions,
    fraction_below_one,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from oddkit.exceptions import DataError, EmptyDataError, ModelFileError, ParameterError
from oddkit.exceptions import ColumnMismatchError, NonFiniteError
from oddkit.nn import AutoEncoder, mlp_autoencoder
from oddkit.nn.conv import conv_autoencoder, default_image_architecture
from oddkit.train import fit_module, resolve_device, seeded, torch_threads

SCORE_CHUNK_ROWS = 4096
"""Tables are scored in chunks of this many rows. Small chunks stay in the CPU's caches: on
100,000 x 30 rows, five members scored 3x faster than in chunks of 65,536 rows (one member 1.5x)."""
IMAGE_CHUNK_VALUES = 2 ** 20
"""Images are scored in chunks of about this many pixel values (1,337 images of 28x28)."""
ERROR_FLOOR = 1e-3
COVARIANCE_MAX_COLUMNS = 2048
"""Wider tables weigh errors by column: a covariance of more columns costs too much to keep and apply."""
TABLE_MEMBERS = 5
"""Networks ``n_estimators="auto"`` trains on a table (one on images): see benchmarks/AE_AUTO.md."""
COVARIANCE_ROWS = 65536
"""At most about this many training rows estimate the error scales and the residual covariance."""
SHUFFLE_ROWS = 262_144
"""Rows a streamed fit (:meth:`AutoEncoderDetector.fit_stream`) shuffles together (21 MB at 20 columns)."""
STREAM_VALIDATION_ROWS = 65_536
"""Most held-out rows a streamed fit keeps in memory to measure the held-out loss on."""
SCORE_SAMPLE_ROWS = 100_000
"""Training scores a streamed fit keeps (a uniform sample) to set ``threshold_`` and ``decision_scores_``."""


def default_architecture(n_inputs: int) -> tuple[tuple[int, ...], int]:
    """Hidden widths and code size chosen from the input width: one hidden layer about twice as wide
    as the input (16 to 256) and a code about a quarter of it (2 to 32), so the network must
    compress yet stays small enough to train in seconds on a CPU."""
    hidden = int(min(256, max(16, 2 * n_inputs)))
    latent = int(min(32, max(2, math.ceil(n_inputs / 4))))
    return (hidden,), latent


def default_batch_size(n_rows: int) -> int:
    """About 16 steps per epoch, between 32 and 1,024 rows: small tables still get many updates per
    epoch, and large ones run in the big batches that keep Python's per-batch cost negligible."""
    return int(min(1024, max(32, n_rows // 16)))


def _residual_whitening(residuals: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each member's mean residual and the matrix ``W`` with ``W @ W.T`` the inverse of its residual
    covariance (shrunk by a ridge of 0.1% of the mean variance, so a singular one still inverts):
    ``|W (r - mean)|²`` is then the squared Mahalanobis length of a residual ``r``. ``rows`` (a
    boolean mask) keeps only those rows; one member at a time is copied to float64, so the residuals
    of all members are never held twice."""
    means, whiteners = [], []
    for member in residuals:
        member = (member if rows is None else member[rows]).astype(np.float64)
        covariance = np.atleast_2d(np.cov(member, rowvar=False, bias=True))
        d = covariance.shape[0]
        covariance[np.diag_indices(d)] += 1e-3 * np.trace(covariance) / d + 1e-6
        cholesky = np.linalg.cholesky(covariance)
        means.append(member.mean(axis=0))
        whiteners.append(solve_triangular(cholesky, np.eye(d), lower=True))
    # Contiguous, as a loaded model's arrays are: torch's matmul rounds differently otherwise.
    return (np.ascontiguousarray(np.stack(means), dtype=np.float32),
            np.ascontiguousarray(np.stack(whiteners), dtype=np.float32))


def default_image_batch_size(n_images: int) -> int:
    """About 16 steps per epoch, between 16 and 64 images: a convolution's cost grows with the
    batch, so on images small batches buy more updates for the same arithmetic."""
    return int(min(64, max(16, n_images // 16)))


class AutoEncoderDetector(TransformerMixin, BaseDetector):
    """An auto-encoder trained on (mostly) normal rows or images; anomaly score = reconstruction error.

    Tables: each row is standardised (numeric columns) and one-hot encoded (categorical columns),
    pushed through an MLP encoder to a narrow code and decoded back; the score is the mean squared
    error between the row and its reconstruction, in standardised units. Rows unlike the training
    data reconstruct badly.

    Images: a NumPy array of shape ``(n, H, W)`` or ``(n, C, H, W)`` (channels first) bypasses the
    table preprocessor and trains convolutional networks instead (strided convolutions down to about
    8x8 — 7x7 for 28x28 images — a linear code, transposed convolutions back, a sigmoid output).
    ``uint8`` pixels are divided by 255 (``uint16`` by 65,535); float pixels are used as they are and
    must lie in [0, 1]. The score of an image is the mean squared error over its pixels (in [0, 1]
    units; ``normalize_errors`` does not apply). Later images must have the training images' shape
    ``image_shape_``, else :class:`~oddkit.exceptions.ColumnMismatchError`.

    Parameters
    ----------
    hidden_sizes : sequence of int, optional
        Widths of the encoder's hidden layers (the decoder mirrors them); for images, the channels
        of each stride-2 convolution stage. Default: chosen from the input width by
        :func:`default_architecture`, or from the image shape by
        :func:`oddkit.nn.conv.default_image_architecture`.
    latent_dim : int, optional
        Width of the code (bottleneck). Default: chosen from the input width or image shape.
    n_estimators : int or "auto", default="auto"
        Independent auto-encoders (different random initial weights) trained side by side in one
        batched network; the score is the mean of their scores, so more members give steadier
        scores at a proportional cost in arithmetic (but not in Python overhead). ``"auto"``: five
        on a table, one on images. With ``robust`` on, five networks were the best auto-encoder
        measured on the tabular benchmark's 31 datasets (``benchmarks/AE_AUTO.md``, round 2);
        images were never measured with more than one, and a convolutional network costs far more.
        :meth:`transform` returns the first member's code (``latent_dim_`` columns) whatever the
        number, and :meth:`inverse_transform` decodes it with that member.
    epochs : int, default=100
        Most passes over the training data; early stopping usually ends sooner.
    batch_size : int or "auto", default="auto"
        Rows per gradient step; ``"auto"`` gives about 16 steps per epoch, 32 to 1,024 rows (16 to
        64 images).
    lr : float, default=1e-3
        Adam's learning rate.
    weight_decay : float, default=0.0
        Adam's L2 penalty.
    validation_fraction : float, default=0.1
        Share of the training rows held out for early stopping (off when that is under 8 rows).
    patience : int, default=10
        Epochs without improvement of the held-out loss before training stops.
    noise : {None, "gaussian", "mask", "salt_pepper"}, default=None
        Train as a de-noising auto-encoder: the network sees a corrupted row and must reconstruct
        the clean one. ``"gaussian"`` adds N(0, noise_level²) to each standardised value (pixel);
        ``"mask"`` sets each value to its mean (zero; black for images) with probability
        ``noise_level``; ``"salt_pepper"`` sets each value with probability ``noise_level`` to its
        column's training minimum or maximum (black or white for images), half each.
        Scoring always uses the clean rows.
    noise_level : float, default=0.2
        Standard deviation (gaussian) or corruption probability (mask, salt_pepper).
    normalize_errors : {"covariance", "columns", None}, default="covariance"
        How a row's reconstruction errors are weighed into its score (tables only; images always
        score plain mean squared error):

        - ``"covariance"``: the squared Mahalanobis length of the residual (row minus
          reconstruction) under the mean and covariance of the training rows' residuals, divided
          by the number of columns. Errors the network normally makes together count little; an
          error in a column it normally reconstructs well, or a pattern of errors it never makes,
          counts much. Tables wider than 2,048 columns fall back to ``"columns"``.
        - ``"columns"`` (or ``True``): each column's squared error divided by its mean over the
          training rows, so a column that is always hard to reconstruct does not drown the others.
          Errors below ``1e-3`` (in squared standard deviations) count as that floor.
        - ``None`` (or ``False``): the plain mean squared error in standardised units.
    robust : bool or "auto", default="auto"
        Train for contaminated data: from the second epoch on, the ``contamination`` share of
        training rows that the current network reconstructs worst is left out of that epoch (of
        each mini-batch in a streamed fit), and early stopping watches a held-out loss trimmed by
        the same share; the residual covariance is estimated without that share too. Anomalies
        hidden in the training data then barely shape the network, so they keep large errors —
        but only those it already reconstructs worst. The share follows ``contamination`` (0.1
        when it is ``"auto"``). ``"auto"``: on for tables, off for images (never measured there).

        How the table default was chosen (``benchmarks/AE_AUTO.md``; rules fixed before the results
        were read, choices on half of the 31 datasets of ``benchmarks/run_tabular.py`` and
        confirmed on the other half, no test labels): five networks with trimming scored a mean
        AUROC of 0.867 with clean and 0.799 with contaminated training data, against 0.862 and
        0.772 for one untrimmed network (the default before) and 0.844 and 0.766 for PyOD's
        AutoEncoder (``benchmarks/RESULTS.md``). Trimming a tenth of clean rows can cost a little
        on a small clean table: 0.934 against 0.950 on the demo's breast-cancer split. Pass
        ``robust=False, n_estimators=1`` for the single untrimmed network.
    exposure_weight : float, default=1.0
        Weight of the margin loss on ``known_anomalies`` passed to :meth:`fit` (0 ignores them).
    exposure_margin : float, default=2.0
        The margin: a known anomaly's training loss is pushed up until it is at least this many
        times the mean loss of the normal rows in the same batch, and no further (a hinge, so the
        network is not driven to reconstruct anything arbitrarily badly).
    contamination : float in (0, 0.5] or "auto", default=0.1
        Expected share of anomalies in the training data; sets ``threshold_`` (and the share
        trimmed when ``robust``). ``"auto"`` estimates it from the training scores after fitting
        (:func:`oddkit.detectors.contamination.estimate_contamination`: the rows scoring above
        Tukey's fence, Q3 + 1.5 IQR); ``threshold_goal_`` then records the estimate, e.g.
        ``"contamination:auto=0.043"``, and a robust fit trims 0.1. On the shared benchmark data
        it came no closer to the true share than the fixed 0.1 (``benchmarks/CONTAMINATION_AUTO.md``):
        use it where the anomalies stand apart, and prefer a threshold chosen on a labelled dev set.
    impute : {None, "median"}, default=None
        ``"median"`` replaces NaN/inf by the training median instead of raising an error (tables
        only: images with NaN/inf always raise :class:`~oddkit.exceptions.NonFiniteError`).
    unknown_categories : {"error", "ignore"}, default="error"
        What to do with a categorical value never seen in training.
    column_types : dict of str to {"numeric", "categorical"}, default=None
        Column kinds decided by you rather than by oddkit's rules (tables only). By default a
        text column that is mostly numbers (one ``"12.5 EUR"`` among floats), holds dates, or is
        an identifier (all of 30 or more values distinct) is refused with a
        :class:`~oddkit.exceptions.DataError` naming it. ``{"amount": "numeric"}`` treats the
        cells of ``amount`` that are not numbers as missing (then ``impute`` decides, at fit and
        when scoring); ``{"shop_id": "categorical"}`` one-hot encodes ``shop_id`` whatever it
        looks like. Naming a column the data lacks, or another kind, is a ``DataError``. Saved
        with the model.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when present).
    n_threads : int, optional
        Torch threads used during fit and scoring (default: torch's setting), at most 1,024 and
        never more than the machine's processors (a larger number runs with as many as there are).
    random_state : int, RandomState or None
        Seed for weights, the held-out split, shuffling and noise.
    verbose : int, default=1
        1 shows a progress bar while training, 0 is silent.

    Attributes
    ----------
    model_ : oddkit.nn.AutoEncoder
        The trained torch module (on CPU or the chosen device); convolutional for images.
    residual_mean_, residual_whitener_ : ndarray of shape (n_estimators, n_outputs[, n_outputs]) or None
        With ``normalize_errors="covariance"``: each member's mean training residual and the
        matrix that whitens its residuals (None otherwise).
    column_error_scale_ : ndarray of shape (n_estimators, n_outputs)
        Each member's mean squared error of each preprocessed column on the training rows (1 when
        ``normalize_errors=False``, and for images).
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images (only when fitted on images).
    history_ : dict
        Per-epoch training and held-out losses, the best epoch and whether training stopped early.
    hidden_sizes_, latent_dim_, n_estimators_
        The architecture actually used.

    References
    ----------
    - Hinton, G. E. and Salakhutdinov, R. R. "Reducing the dimensionality of data with neural
      networks." Science, 2006.
    - Vincent, P., Larochelle, H., Bengio, Y. and Manzagol, P.-A. "Extracting and composing robust
      features with denoising autoencoders." ICML, 2008.
    - Aggarwal, C. C. "Outlier Analysis", 2nd ed., Springer, 2017, chapter 3 (reconstruction error
      as an outlier score).

    Examples
    --------
    >>> import numpy as np
    >>> from oddkit import AutoEncoderDetector
    >>> X = np.random.default_rng(0).normal(size=(500, 8))
    >>> detector = AutoEncoderDetector(epochs=5, random_state=0, verbose=0).fit(X)
    >>> detector.decision_function(X[:3]).shape
    (3,)

    Images (here 64 random 8x8 gray images as uint8):

    >>> images = np.random.default_rng(0).integers(0, 256, size=(64, 8, 8), dtype=np.uint8)
    >>> detector = AutoEncoderDetector(epochs=2, random_state=0, verbose=0).fit(images)
    >>> detector.image_shape_, detector.inverse_transform(detector.transform(images[:2])).shape
    ((1, 8, 8), (2, 8, 8))
    """

    _accepts_images = True

    _parameter_constraints: dict = {
        "hidden_sizes": [PositiveIntSequence(), None],
        "latent_dim": [positive_int, None],
        "n_estimators": [positive_int, StrOptions({"auto"})],
        "epochs": [positive_int],
        "batch_size": [positive_int, StrOptions({"auto"})],
        "lr": [positive_float],
        "weight_decay": [non_negative_float],
        "validation_fraction": [fraction_below_one],
        "patience": [non_negative_int, None],
        "noise": [StrOptions({"gaussian", "mask", "salt_pepper"}), None],
        "noise_level": [non_negative_float],
        "normalize_errors": [StrOptions({"covariance", "columns"}), "boolean", None],
        "robust": ["boolean", StrOptions({"auto"})],
        "exposure_weight": [non_negative_float],
        "exposure_margin": [positive_float],
    }

    def __init__(self, hidden_sizes=None, latent_dim=None, n_estimators="auto", epochs=100, batch_size="auto", lr=1e-3,
                 weight_decay=0.0, validation_fraction=0.1, patience=10, noise=None, noise_level=0.2,
                 normalize_errors="covariance", robust="auto", exposure_weight=1.0, exposure_margin=2.0, contamination=0.1,
                 impute=None, unknown_categories="error", column_types=None, device="cpu", n_threads=None,
                 random_state=None, verbose=1):
        self.hidden_sizes = hidden_sizes
        self.latent_dim = latent_dim
        self.n_estimators = n_estimators
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
        self.exposure_weight = exposure_weight
        self.exposure_margin = exposure_margin
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.column_types = column_types
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, X, y=None, known_anomalies=None):
        """Train on ``X`` (mostly normal rows or images); ``y`` is ignored.

        Parameters
        ----------
        X : table (DataFrame or 2-D array), images (ndarray (n, H, W) or (n, C, H, W)), or a
            :class:`oddkit.data.stream.TableSource` (a Parquet or CSV file or folder larger than
            memory), which is trained on by :meth:`fit_stream`
        y : ignored
        known_anomalies : table or images like ``X``, "generate" or PseudoAnomalies, optional
            Examples of anomalies, kept apart from ``X`` (never mixed into it, so they are neither
            trained to reconstruct nor counted in ``threshold_``). Each training batch is joined by
            as many of them drawn at random, and a hinge loss pushes their reconstruction loss up
            to ``exposure_margin`` times the normal rows' (weight ``exposure_weight``): a handful
            of labelled anomalies teaches the network what not to reconstruct. ``"generate"`` (or
            a :class:`~oddkit.PseudoAnomalies`): pseudo-anomalies made from ``X`` alone.

        Raises
        ------
        TooFewRowsError, EmptyDataError, NonFiniteError, DataError
            When ``X`` cannot be used; the message says how to fix it.
        ColumnMismatchError
            ``known_anomalies`` do not have ``X``'s columns or image shape.
        """
        from oddkit.data.stream import TableSource

        if isinstance(X, TableSource):
            if known_anomalies is not None:
                raise ParameterError("known_anomalies cannot be combined with a streamed fit (a TableSource); "
                                     "pass the training data in memory to use them")
            return self.fit_stream(X)
        self._known_anomalies = known_anomalies
        try:
            return super().fit(X)
        finally:
            del self._known_anomalies

    fit._sets_auto_contamination = True  # through BaseDetector.fit
    def fit_stream(self, source, *, shuffle_rows: int = SHUFFLE_ROWS,
                   validation_rows: int = STREAM_VALIDATION_ROWS,
                   score_sample_rows: int = SCORE_SAMPLE_ROWS, score_state_rows: int = COVARIANCE_ROWS,
                   **source_options):
        """Train on a table larger than memory, reading it a batch of rows at a time.

        Peak memory is bounded by the options below and the network, whatever the size of the
        table. The passes over the data:

        1. the preprocessing: column kinds (judged on the first batch), means and standard
           deviations merged batch by batch (Chan's update; equal to :meth:`fit`'s to float
           rounding), categories collected as sets; with ``impute="median"``, medians of a
           uniform sample of 100,000 rows, then one more pass for the moments;
        2. ``epochs`` training passes (fewer with early stopping). Each reads the Parquet row
           groups (or files) in a new random order and shuffles the rows of about
           ``shuffle_rows`` at a time before cutting them into mini-batches (a bounded shuffle
           buffer: rows of different row groups mix, but a batch never draws from the whole
           file as in memory; a CSV file is one unit, read in file order and mixed only by the
           buffer, so a large CSV shuffles better split into several files or as Parquet).
           Row ``r`` is held out for early stopping when
           ``row_uniform(r, seed) < validation_fraction`` (a fixed hash of its row number and the
           seed: the same rows every epoch and every run); at most ``validation_rows`` of them
           are kept in memory to measure the held-out loss, collected during the first epoch, and
           a uniform sample of at most ``score_state_rows`` of all rows (65,536, as :meth:`fit`
           uses) is kept for what scoring needs;
        3. after training, that sample sets the error scales and the residual covariance
           (``normalize_errors``), and a last pass scores every row: ``score_mean_``,
           ``score_std_``, ``score_min_`` and ``score_max_`` are those of all training rows,
           while ``threshold_`` is the ``contamination`` quantile of a uniform sample of at most
           ``score_sample_rows`` training scores, which ``decision_scores_`` and ``labels_`` then
           hold (in row order), not every row's.

        Parameters
        ----------
        source : str, pathlib.Path or oddkit.data.stream.TableSource
            A Parquet file or folder, or a CSV file or folder (see
            :class:`~oddkit.data.stream.TableSource`; a path is opened with ``source_options``).
        shuffle_rows : int, default 262,144
            Rows shuffled together in training (the buffer holds at most this plus one batch).
        validation_rows : int, default 65,536
            Most held-out rows kept in memory for early stopping.
        score_sample_rows : int, default 100,000
            Training scores kept to set ``threshold_``.
        score_state_rows : int, default 65,536
            Training rows kept to estimate the error scales and the residual covariance.
        **source_options
            ``batch_rows``, ``label_col``, ``id_cols``, ``keep_anomalies`` for a path.

        Returns
        -------
        self
            With ``stream_info_``: rows trained on, held out, kept, passes read and the most rows
            the reader and the shuffle buffer held.

        Raises
        ------
        ParameterError
            ``noise="salt_pepper"`` (not supported streamed), or a detector that needs more than
            rows (the disentangled one).
        EmptyDataError, TooFewRowsError, NonFiniteError, DataError, ColumnMismatchError
            As :meth:`fit`, and for an empty folder or files whose columns differ.
        """
        from oddkit.data import TablePreprocessor
        from oddkit.data.preprocess import _chan_merge
        from oddkit.data.stream import BoundedSample, as_source, row_uniform
        from oddkit.exceptions import TooFewRowsError
        from oddkit.train import fit_module_stream

        self._validate_params()
        name = type(self).__name__
        if type(self)._training_rows is not AutoEncoderDetector._training_rows:
            raise ParameterError(f"{name} cannot be trained streamed (it needs more than the rows); fit it in memory")
        if self.noise == "salt_pepper":
            raise ParameterError(f"{name}: noise='salt_pepper' is not supported by a streamed fit; use 'gaussian' or "
                                 "'mask'")
        for option, value in (("shuffle_rows", shuffle_rows), ("validation_rows", validation_rows),
                              ("score_sample_rows", score_sample_rows), ("score_state_rows", score_state_rows)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ParameterError(f"{option} must be a positive integer, got {value!r}")
        source = as_source(source, **source_options)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

        # Pass 1: the preprocessing.
        pre = TablePreprocessor(impute=self.impute, unknown_categories=self.unknown_categories,
                                column_types=self.column_types).fit_batches(source.batches(), seed=seed)
        passes = 1
        if self.impute == "median":
            pre.fit_moments(source.batches())
            passes += 1
        n = pre.n_rows_seen_
        if n < 2:
            raise TooFewRowsError(f"fitting needs at least 2 rows, got {n}; pass more training data")
        self.preprocessor_ = pre
        self.n_features_in_ = pre.n_features_in_
        self.feature_names_in_ = np.asarray(pre.feature_names_in_, dtype=object)
        for stale in ("image_shape_", "_fit_scores"):
            self.__dict__.pop(stale, None)

        # Passes 2..: training.
        n_held = int(round(n * float(self.validation_fraction))) if self.validation_fraction else 0
        held_p = float(self.validation_fraction) if n_held >= 8 and n - n_held >= 2 else 0.0
        n_train = n - (n_held if held_p else 0)
        batch = default_batch_size(n_train) if self.batch_size == "auto" else int(self.batch_size)
        batch = max(1, min(batch, n_train))
        device = resolve_device(self.device)
        self._set_architecture(pre.n_outputs_)
        held_out, kept = BoundedSample(validation_rows), BoundedSample(score_state_rows)
        most_buffered = [0]

        def shuffled(buffer: list[np.ndarray], generator: torch.Generator):
            rows = torch.from_numpy(np.concatenate(buffer)).to(device)
            most_buffered[0] = max(most_buffered[0], rows.shape[0])
            permutation = torch.randperm(rows.shape[0], generator=generator).to(device)
            for start in range(0, rows.shape[0], batch):
                yield rows[permutation[start:start + batch]]

        def epoch_batches(epoch: int, generator: torch.Generator):
            order = np.random.default_rng([seed, epoch]).permutation(len(source.units))
            buffer, buffered = [], 0
            for rows, frame in source.batches(order):
                Z = pre.transform(frame)
                u = row_uniform(rows, seed)
                held = u < held_p
                if epoch == 0:
                    if held.any():
                        held_out.add(u[held], Z[held], rows[held])
                    kept.add(row_uniform(rows, seed + 1), Z, rows)
                train = Z[~held]
                if len(train):
                    buffer.append(train)
                    buffered += len(train)
                if buffered >= shuffle_rows:
                    yield from shuffled(buffer, generator)
                    buffer, buffered = [], 0
            if buffer:
                yield from shuffled(buffer, generator)

        def validation():
            values = held_out.values()
            return None if values is None else torch.from_numpy(values).to(device)

        self._exposure = None
        with torch_threads(self.n_threads), seeded(seed) as generator:
            self.model_ = self._build_module(pre.n_outputs_).to(device)
            history = fit_module_stream(
                self.model_, self._row_loss, lambda epoch: epoch_batches(epoch, generator), validation,
                epochs=int(self.epochs), lr=float(self.lr), weight_decay=float(self.weight_decay),
                patience=self.patience, trim_fraction=self._trim_share() if self._trims() else 0.0,
                generator=generator, verbose=self.verbose, description=name)
        self.history_ = history.to_dict()
        passes += len(history.train_loss)

        # What scoring needs, from the kept sample; then the last pass: every row's training score.
        self._fit_score_state(kept.values())
        self.__dict__.pop("_fit_scores", None)
        sample = BoundedSample(score_sample_rows)
        count, mean, m2 = 0, np.zeros(1), np.zeros(1)
        low, high = np.inf, -np.inf
        for rows, frame in source.batches():
            scores = self._checked_training_scores(self._score_array(pre.transform(frame)))
            count, mean, m2 = _chan_merge(count, mean, m2, scores[:, None])
            low, high = min(low, float(scores.min())), max(high, float(scores.max()))
            sample.add(row_uniform(rows, seed + 2), scores, rows)
        passes += 1
        self.decision_scores_ = sample.values()
        std = math.sqrt(max(float(m2[0]), 0.0) / count)
        self.score_mean_, self.score_std_ = float(mean[0]), std if std > 0 else 1.0
        self.score_min_ = low
        self.score_max_ = low + (high - low if high > low else 1.0)
        self._set_contamination_threshold()
        self.stream_info_ = {
            "rows": int(n), "held_out_rows": int(held_out.seen), "validation_rows_kept": len(held_out),
            "score_state_rows": len(kept), "score_sample_rows": len(sample), "passes": passes,
            "max_rows_read_at_once": int(source.max_rows_in_memory), "max_rows_shuffled_at_once": most_buffered[0],
            "batch_size": batch,
        }
        return self

    def fit_predict(self, X, y=None, known_anomalies=None) -> np.ndarray:
        """Fit on ``X`` (see :meth:`fit`) and return the training labels ``labels_``."""
        return self.fit(X, known_anomalies=known_anomalies).labels_

    def _check_param_combinations(self) -> None:
        super()._check_param_combinations()
        if self.noise == "mask" and not float(self.noise_level) < 1.0:
            raise ParameterError(f"{type(self).__name__}: noise_level must be below 1 with noise='mask' (it is the "
                                 f"share of values masked), got {self.noise_level!r}")

    def _set_architecture(self, n_inputs: int) -> None:
        """Set ``hidden_sizes_``, ``latent_dim_`` and ``n_estimators_`` from the parameters and the input."""
        if self._fitted_on_images():
            hidden, latent = default_image_architecture(self.image_shape_)
        else:
            hidden, latent = default_architecture(n_inputs)
        self.hidden_sizes_ = tuple(int(h) for h in self.hidden_sizes) if self.hidden_sizes is not None else hidden
        self.latent_dim_ = int(self.latent_dim) if self.latent_dim is not None else latent
        if self.n_estimators == "auto":
            self.n_estimators_ = 1 if self._fitted_on_images() else TABLE_MEMBERS
        else:
            self.n_estimators_ = int(self.n_estimators)

    def _trims(self) -> bool:
        """Whether training leaves out the worst-reconstructed rows (``robust``; ``"auto"``: tables only)."""
        if self.robust == "auto":
            return not self._fitted_on_images()
        return bool(self.robust)

    def _fit_array(self, Z: np.ndarray) -> None:
        n_inputs = Z.shape[1]
        images = self._fitted_on_images()
        self._set_architecture(n_inputs)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        device = resolve_device(self.device)
        n_train = Z.shape[0] - int(round(Z.shape[0] * self.validation_fraction))
        auto_batch = default_image_batch_size if images else default_batch_size
        batch = auto_batch(n_train) if self.batch_size == "auto" else int(self.batch_size)
        if self.noise == "salt_pepper":
            low, high = (0.0, 1.0) if images else (Z.min(axis=0), Z.max(axis=0))
            self._salt_pepper_values = (torch.as_tensor(low, dtype=torch.float32),
                                        torch.as_tensor(high, dtype=torch.float32))
        self._exposure = None  # nothing left over from an interrupted fit
        known = getattr(self, "_known_anomalies", None)
        if known is not None and float(self.exposure_weight) > 0:
            from oddkit.detectors.pseudo import exposure_rows

            exposure = exposure_rows(self, known, Z, None, seed)
            if exposure.shape[0] == 0:
                raise EmptyDataError("known_anomalies has no rows; pass None to train without them")
            self._exposure = torch.from_numpy(exposure).to(device)
        with torch_threads(self.n_threads), seeded(seed) as generator:
            self.model_ = self._build_module(n_inputs).to(device)
            history = fit_module(
                self.model_, self._row_loss, torch.from_numpy(self._training_rows(Z)).to(device),
                epochs=int(self.epochs), batch_size=batch, lr=float(self.lr),
                weight_decay=float(self.weight_decay), validation_fraction=float(self.validation_fraction),
                patience=self.patience, trim_fraction=self._trim_share() if self._trims() else 0.0,
                generator=generator, verbose=self.verbose,
                description=type(self).__name__,
            )
        self.history_ = history.to_dict()
        self._salt_pepper_values = self._exposure = None
        self._fit_score_state(Z)

    def _training_rows(self, Z: np.ndarray) -> np.ndarray:
        """The matrix the training loop batches (subclasses append what their loss needs per row)."""
        return Z

    def _normalizes_errors(self) -> bool:
        return bool(self.normalize_errors) and not self._fitted_on_images()

    def _weighs_by_covariance(self, n_columns: int) -> bool:
        return (self._normalizes_errors() and self.normalize_errors not in (True, "columns")
                and n_columns <= COVARIANCE_MAX_COLUMNS)

    def _fit_score_state(self, Z: np.ndarray) -> None:
        """What scoring needs beyond the weights, learned from the training rows after training."""
        self.column_error_scale_ = np.ones((self.n_estimators_, Z.shape[1]), dtype=np.float32)
        self.residual_mean_ = self.residual_whitener_ = None
        if not self._normalizes_errors():
            return
        # Enough rows for a stable covariance, evenly spread over the training data.
        step = max(1, Z.shape[0] // COVARIANCE_ROWS)
        residuals = self._map_chunks(Z[::step], lambda x: x - self.model_(x), axis=1)
        if not np.isfinite(residuals).all():  # diverged weights: the error the scores would give
            sampled = np.zeros(Z.shape[0])
            sampled[::step] = np.where(np.isfinite(residuals).all(axis=(0, 2)), 0.0, np.nan)
            self._checked_training_scores(sampled)
        # One buffer of squares, divided in place below: the same values as fresh temporaries,
        # without holding three arrays the size of the residuals at once.
        squares = np.square(residuals)
        self.column_error_scale_ = np.maximum(squares.mean(axis=1), ERROR_FLOOR).astype(np.float32)
        if self._weighs_by_covariance(Z.shape[1]):
            kept = None
            if self._trims():
                # The worst-reconstructed rows are the likely anomalies: they must not set what a
                # normal residual looks like.
                squares /= self.column_error_scale_[:, None, :]
                errors = squares.mean(axis=(0, 2))
                kept = errors <= np.quantile(errors, 1.0 - self._trim_share())
            del squares
            self.residual_mean_, self.residual_whitener_ = _residual_whitening(residuals, kept)
            if step == 1 and type(self)._score_array is AutoEncoderDetector._score_array:
                # Every training row's residual is at hand: its score needs no second pass of the network.
                # In the chunks scoring uses: all rows at once took ~5 KB per row in float64 temporaries.
                self._fit_scores = self._map_chunks(residuals, self._whitened_lengths, axis_in=1).astype(np.float64)

    def _training_scores(self, Z: np.ndarray) -> np.ndarray:
        scores = self.__dict__.pop("_fit_scores", None)
        return scores if scores is not None else self._score_array(Z)

    def _build_module(self, n_inputs: int) -> AutoEncoder:
        if self._fitted_on_images():
            return conv_autoencoder(self.image_shape_, self.hidden_sizes_, self.latent_dim_, self.n_estimators_)
        return mlp_autoencoder(n_inputs, self.hidden_sizes_, self.latent_dim_, self.n_estimators_)

    def _corrupt(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.noise is None or not self.noise_level:
            return x
        if self.noise == "gaussian":
            return x + self.noise_level * torch.randn(x.shape, generator=generator).to(x.device)
        if self.noise == "salt_pepper":
            low, high = (v.to(x.device) for v in self._salt_pepper_values)
            u = torch.rand(x.shape, generator=generator).to(x.device)
            return torch.where(u < self.noise_level / 2, low, torch.where(u < self.noise_level, high, x))
        keep = torch.rand(x.shape, generator=generator).to(x.device) >= self.noise_level
        return x * keep

    def _row_loss(self, module: AutoEncoder, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if not module.training and self._fitted_on_images():
            return self._in_chunks(x, lambda part: self._row_loss_rows(module, part, generator))
        loss = self._row_loss_rows(module, x, generator)
        if module.training and getattr(self, "_exposure", None) is not None:
            loss = loss + self._exposure_loss(module, loss, generator)
        return loss

    def _exposure_loss(self, module: AutoEncoder, normal_loss: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The hinge on known anomalies: zero once their loss is ``exposure_margin`` times the
        batch's normal loss. The margin follows the normal loss as training lowers it, so it needs
        no scale of its own (standardised columns and [0, 1] pixels alike)."""
        pick = torch.randint(self._exposure.shape[0], (normal_loss.shape[0],), generator=generator)
        anomaly_loss = self._row_loss_rows(module, self._exposure[pick.to(self._exposure.device)], generator)
        target = float(self.exposure_margin) * normal_loss.mean().detach()
        return float(self.exposure_weight) * torch.relu(target - anomaly_loss).mean()

    def _row_loss_rows(self, module: AutoEncoder, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        source = self._corrupt(x, generator) if module.training else x
        return (module(source) - x).pow(2).mean(dim=(0, 2))

    def _chunk_rows(self, n_columns: int) -> int:
        if self._fitted_on_images():
            return max(1, IMAGE_CHUNK_VALUES // max(1, n_columns))
        return SCORE_CHUNK_ROWS

    def _in_chunks(self, x: torch.Tensor, fn) -> torch.Tensor:
        """``fn`` of the rows of ``x`` in chunks (keeps the memory of evaluating many images bounded)."""
        step = self._chunk_rows(x.shape[1])
        if x.shape[0] <= step:
            return fn(x)
        return torch.cat([fn(x[start:start + step]) for start in range(0, x.shape[0], step)])

    # -- scoring --------------------------------------------------------------------------------

    @torch.inference_mode()
    def _map_chunks(self, Z: np.ndarray, fn, axis: int = 0, chunk_rows: int | None = None,
                    axis_in: int = 0) -> np.ndarray:
        """Apply ``fn`` to the rows of ``Z`` in chunks on the model's device; the results are joined
        along ``axis`` (1 for per-member outputs of shape (members, rows, ...)). ``axis_in`` is the
        axis of ``Z`` that holds the rows (1 for per-member inputs)."""
        device = next(self.model_.parameters()).device
        output = None
        step = chunk_rows or self._chunk_rows(Z.shape[axis_in + 1])
        with torch_threads(self.n_threads):
            for start in range(0, Z.shape[axis_in], step):
                x = torch.from_numpy(Z[(slice(None),) * axis_in + (slice(start, start + step),)]).to(device)
                part = fn(x).cpu().numpy()
                if output is None:  # written in place: no list of chunks and joined copy held at once
                    shape = list(part.shape)
                    shape[axis] = Z.shape[axis_in]
                    output = np.empty(shape, dtype=part.dtype)
                output[(slice(None),) * axis + (slice(start, start + part.shape[axis]),)] = part
        return output

    def _member_errors(self, x: torch.Tensor) -> torch.Tensor:
        """Squared error of each member on each row and column: (members, rows, columns), float64
        (inputs are clipped at STANDARDIZED_BOUND; squaring in float64 keeps every error finite)."""
        return (self.model_(x).double() - x.double()).pow(2)

    def _normalized_errors(self, x: torch.Tensor) -> torch.Tensor:
        """Per row and column, the members' mean error in units of that column's training error."""
        scale = torch.from_numpy(self.column_error_scale_).to(x.device).unsqueeze(1).double()
        return (self._member_errors(x) / scale).mean(dim=0)

    def _whitened_errors(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared whitened residual of each row, averaged over members."""
        return self._whitened_lengths(x - self.model_(x))

    def _whitened_lengths(self, residuals: torch.Tensor) -> torch.Tensor:
        """Mean squared whitened length of each row's residuals (members, rows, columns) -> rows."""
        # float64: a far-out row's residual times the whitener, squared, must not overflow.
        mean = torch.from_numpy(self.residual_mean_).to(residuals.device).unsqueeze(1).double()
        whitener = torch.from_numpy(self.residual_whitener_).to(residuals.device).double()
        whitened = torch.matmul(residuals.double() - mean, whitener.transpose(1, 2))
        return whitened.pow(2).mean(dim=(0, 2))

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        if getattr(self, "residual_whitener_", None) is not None:
            return self._map_chunks(Z, self._whitened_errors).astype(np.float64)
        return self._map_chunks(Z, lambda x: self._normalized_errors(x).mean(dim=1)).astype(np.float64)

    def transform(self, X) -> np.ndarray:
        """The bottleneck code of each row or image, float32, shape (n, latent_dim_).

        With several members the first network's code: the members score together, but their
        codes do not share one space, so one of them is the embedding and the compressed form
        (:meth:`inverse_transform` decodes it with that network's decoder). Codes side by side
        would multiply the width by ``n_estimators_`` and defeat compression.
        """
        check_is_fitted(self)
        return self._map_chunks(self._prepare(X, reset=False), lambda x: self.model_.encode(x)[0])

    def _code_width(self) -> int:
        return self.latent_dim_

    def _check_codes(self, codes) -> np.ndarray:
        try:
            Z = np.asarray(codes, dtype=np.float32)
        except (TypeError, ValueError):
            raise DataError(f"codes must be an array of numbers, got {type(codes).__name__}") from None
        width = self._code_width()
        if Z.ndim != 2 or Z.shape[1] != width:
            raise ColumnMismatchError(f"codes must have shape (n, {width}) as transform returns them, got {Z.shape}")
        bad = ~np.isfinite(Z)
        if bad.any():
            rows = np.flatnonzero(bad.any(axis=1))
            raise NonFiniteError(f"NaN or inf in the codes of {len(rows)} row(s), first {rows[:5].tolist()}")
        return np.ascontiguousarray(Z)

    def inverse_transform(self, codes):
        """Decode codes (as :meth:`transform` returns them) back to data in the input's space.

        With several members, the first network (whose code :meth:`transform` returns) decodes.

        Returns
        -------
        pandas.DataFrame or ndarray
            Tables: a DataFrame with the training columns (categorical ones as their most likely
            category) when fitted on a DataFrame with named columns, else a float64 array.
            Images: float32 in [0, 1] of shape (n, C, H, W), or (n, H, W) when fitted on that layout.

        Raises
        ------
        ColumnMismatchError, NonFiniteError
            When the codes have the wrong width, or hold NaN/inf.
        """
        check_is_fitted(self)

        def decode(z: torch.Tensor) -> torch.Tensor:
            # The members' decoders run as one batched module: give each the code, keep the first's.
            return self.model_.decode(z.unsqueeze(0).expand(self.n_estimators_, *z.shape).contiguous())[0]

        rows = self._map_chunks(self._check_codes(codes), decode, chunk_rows=self._chunk_rows(self.n_features_in_))
        return self._to_input_space(rows)

    def reconstruct(self, X) -> np.ndarray:
        """The reconstruction of each row (mean over members), in the preprocessed space (for
        images: flat rows of C*H*W pixels in [0, 1])."""
        check_is_fitted(self)
        return self._map_chunks(self._prepare(X, reset=False), lambda x: self.model_(x).mean(dim=0))

    def explain(self, X):
        """Each row's share of its anomaly score carried by each input column.

        Tables: a DataFrame, one row per row of ``X`` (its index kept), one column per input column
        (one-hot outputs summed back). The reconstruction part of the score is split exactly: with
        ``normalize_errors="covariance"`` the whitened score ``u^T P u / d`` (``u`` the centred
        residual, ``P`` the inverse residual covariance) as ``u_j (P u)_j / d``, so shares sum to 1
        and a column whose residual its correlations account for can be negative; otherwise each
        column's squared error in units of its training error (shares >= 0, summing to 1). See
        :mod:`oddkit.explain`. Images: each pixel's share of the image's squared error, as an array
        shaped like the input images.
        """
        check_is_fitted(self)
        if not self._fitted_on_images():
            return super().explain(X)
        errors = self._map_chunks(self._prepare(X, reset=False), self._normalized_errors)
        totals = errors.sum(axis=1, keepdims=True)
        shares = np.divide(errors, totals, out=np.zeros_like(errors), where=totals > 0)
        return self.preprocessor_.inverse_transform(shares)

    def _explain_contributions(self, Z: np.ndarray) -> tuple[np.ndarray, bool]:
        if getattr(self, "residual_whitener_", None) is not None:
            return self._map_chunks(Z, self._whitened_contributions).astype(np.float64), True
        return self._map_chunks(Z, self._normalized_errors).astype(np.float64) / Z.shape[1], True

    def _whitened_contributions(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`_whitened_lengths` of the rows' residuals split per column: ``u_j (P u)_j / d``
        averaged over members, with ``P = W^T W`` (rows sum to the score)."""
        mean = torch.from_numpy(self.residual_mean_).to(x.device).unsqueeze(1).double()
        whitener = torch.from_numpy(self.residual_whitener_).to(x.device).double()
        centred = (x - self.model_(x)).double() - mean
        precision = torch.matmul(whitener.transpose(1, 2), whitener)
        return (centred * torch.matmul(centred, precision)).mean(dim=0) / x.shape[1]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The embedding is float32 whatever the input: that is the network's precision.
        tags.transformer_tags.preserves_dtype = []
        return tags

    # -- persistence ----------------------------------------------------------------------------

    def _architecture_state(self) -> dict:
        """The architecture beyond hidden sizes and members, as JSON metadata (subclasses extend)."""
        return {"latent_dim": self.latent_dim_}

    def _restore_architecture(self, meta: dict) -> None:
        self.latent_dim_ = _positive_int(meta["latent_dim"], "latent_dim")

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        """Fitted arrays besides the weights and error scales (subclasses extend)."""
        return {}

    def _restore_extra_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Take the arrays :meth:`_extra_arrays` saved out of ``arrays``."""

    def _get_model_state(self):
        arrays = {name: tensor.detach().cpu().numpy() for name, tensor in self.model_.state_dict().items()}
        arrays["column_error_scale"] = self.column_error_scale_
        if getattr(self, "residual_whitener_", None) is not None:
            arrays["residual_mean"], arrays["residual_whitener"] = self.residual_mean_, self.residual_whitener_
        arrays.update(self._extra_arrays())
        meta = {"n_inputs": int(self.column_error_scale_.shape[1]), "n_members": self.n_estimators_,
                "hidden_sizes": list(self.hidden_sizes_), **self._architecture_state(), "history": self.history_}
        return arrays, meta, {}

    def _set_model_state(self, arrays, meta, files):
        from oddkit.persist import load_module_weights

        try:
            self.hidden_sizes_ = tuple(_positive_int(h, "hidden_sizes") for h in meta["hidden_sizes"])
            self._restore_architecture(meta)
            self.n_estimators_ = _positive_int(meta["n_members"], "n_members")
            self.history_ = dict(meta["history"])
            n_inputs = _positive_int(meta["n_inputs"], "n_inputs")
            if n_inputs != self.preprocessor_.n_outputs_ or (
                    self._fitted_on_images() and self.n_features_in_ != n_inputs):
                raise ValueError(f"the network takes {n_inputs} inputs but the preprocessing gives "
                                 f"{self.preprocessor_.n_outputs_}")
            arrays = dict(arrays)
            self.column_error_scale_ = arrays.pop("column_error_scale")
            if self.column_error_scale_.shape != (self.n_estimators_, n_inputs):
                raise ValueError(f"column_error_scale has shape {self.column_error_scale_.shape}")
            if not (self.column_error_scale_ > 0).all():
                raise ValueError("column_error_scale holds values that are not positive")
            self.residual_mean_ = arrays.pop("residual_mean", None)
            self.residual_whitener_ = arrays.pop("residual_whitener", None)
            if (self.residual_whitener_ is None) != (self.residual_mean_ is None) or (
                    self.residual_whitener_ is not None and (
                        self.residual_whitener_.shape != (self.n_estimators_, n_inputs, n_inputs)
                        or self.residual_mean_.shape != (self.n_estimators_, n_inputs))):
                raise ValueError("the saved residual whitening does not match the network")
            self._restore_extra_arrays(arrays)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"the saved auto-encoder weights do not fit its configuration: {exc}") from None
        # Shapes are compared on the meta device first: an edited architecture never allocates.
        try:
            module = load_module_weights(lambda: self._build_module(n_inputs), arrays, "auto-encoder")
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"the saved auto-encoder architecture cannot be built: {exc}") from None
        self.model_ = module.to(resolve_device(self.device)).eval()


def _positive_int(value, name: str) -> int:
    """A saved architecture number: a positive int (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} holds {value!r}, not a positive integer")
    return value
