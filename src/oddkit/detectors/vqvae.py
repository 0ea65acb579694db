"""The vector-quantised auto-encoder detector: a discrete code from a learned codebook."""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from oddkit.detectors.autoencoder import AutoEncoderDetector, default_architecture
from oddkit.detectors.params import Interval, non_negative_float, positive_int
from oddkit.exceptions import ColumnMismatchError, DataError
from oddkit.nn.conv import default_image_architecture
from oddkit.nn.vq import VQAutoEncoder, conv_vq_autoencoder, mlp_vq_autoencoder

TABLE_CODE_DIM = 4
IMAGE_CODE_DIM = 16


class VQVAEDetector(AutoEncoderDetector):
    """A VQ-VAE trained on (mostly) normal rows or images; score = reconstruction error.

    The encoder maps each row or image to ``n_positions`` vectors (for images, convolutions then a
    linear layer: the vectors describe the whole image, not one cell each); each vector is replaced by the nearest of
    ``codebook_size`` learned codes, and the decoder reconstructs from the codes alone (van den
    Oord et al., 2017). Gradients pass the quantiser straight through; a commitment loss keeps the
    encoder near its codes; the codebook is an exponential moving average of the vectors assigned to
    each code, starts from training vectors, and codes left unused are re-seeded from the current
    batch (:class:`oddkit.nn.vq.VectorQuantizer`). Everything else — preprocessing, training loop,
    early stopping, de-noising, images — is :class:`AutoEncoderDetector`'s.

    Score: the reconstruction error exactly as :class:`AutoEncoderDetector` computes it (tables:
    by default the Mahalanobis length of the residual under the training residuals' covariance,
    see ``normalize_errors``; images: mean squared error over pixels), plus, when
    ``rarity_weight > 0``, that weight times the mean over positions of ``-log`` of each chosen
    code's frequency on the training data (rare codes mark unusual rows).

    Parameters
    ----------
    hidden_sizes : sequence of int, optional
        Hidden widths of the MLP encoder (tables) or channels of the convolution stages (images);
        default as for :class:`AutoEncoderDetector`.
    codebook_size : int, default=128
        Number of codes ``K``; each position is stored in ``ceil(log2(K))`` bits.
    code_dim : int, optional
        Length of each code vector. Default: 4 for tables, 16 for images.
    n_positions : int, optional
        Code vectors per row or image. Default for tables: the code size
        :func:`default_architecture` picks for the input width (a quarter of it, 2 to 32); for
        images, half the code size of
        :func:`oddkit.nn.conv.default_image_architecture` (8 for 28x28 gray images: 8 x 7 = 56
        bits per image with 128 codes): a few codes for the whole image are a real bottleneck,
        where a grid of codes lets the network reconstruct other classes as well.
    commitment_weight : float, default=0.25
        Weight of the commitment loss ``|encoder output - code|²`` in training.
    rarity_weight : float, default=0.0
        Weight of the code-rarity term added to the score (off by default).
    epochs, batch_size, lr, weight_decay, validation_fraction, patience
        As for :class:`AutoEncoderDetector`.
    noise : {None, "gaussian", "mask", "salt_pepper"}, default=None
        De-noising: the encoder sees a corrupted row, the loss compares with the clean one.
    normalize_errors : {"covariance", "columns", None}, default="covariance"
        As for :class:`AutoEncoderDetector`.
    noise_level, robust, exposure_weight, exposure_margin, contamination, impute, \
    unknown_categories, column_types, device, n_threads, random_state, verbose
        As for :class:`AutoEncoderDetector` (with ``known_anomalies``, the hinge acts on their
        reconstruction plus commitment loss).

    Attributes
    ----------
    model_ : oddkit.nn.vq.VQAutoEncoder
        The trained torch module (the codebook is ``model_.quantizer.codebook``).
    codebook_size_ : int
        ``K``; codes are integers in ``0 .. K-1``.
    code_dim_, n_positions_ : int
        The code vectors' length and how many describe one row or image.
    codebook_usage_ : float
        Share of the codes chosen at least once on the training data, in (0, 1].
    perplexity_ : float
        ``exp(entropy)`` of the codes' frequencies on the training data: the effective number of
        codes in use, from 1 to ``K``.
    code_log_prob_ : ndarray of shape (codebook_size_,)
        Log of each code's smoothed frequency on the training data (for ``rarity_weight``).
    column_error_scale_, history_, hidden_sizes_, image_shape_
        As for :class:`AutoEncoderDetector` (``n_estimators_`` is always 1).

    References
    ----------
    - van den Oord, A., Vinyals, O. and Kavukcuoglu, K. "Neural discrete representation learning."
      NeurIPS, 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from oddkit import VQVAEDetector
    >>> X = np.random.default_rng(0).normal(size=(500, 8))
    >>> vq = VQVAEDetector(codebook_size=16, epochs=5, random_state=0, verbose=0).fit(X)
    >>> codes = vq.encode_codes(X[:3])
    >>> codes.shape, vq.decode_codes(codes).shape
    ((3, 2), (3, 8))
    """

    _parameter_constraints: dict = {
        "codebook_size": [Interval(Integral, 2, 65536, closed="both")],
        "code_dim": [positive_int, None],
        "n_positions": [positive_int, None],
        "commitment_weight": [non_negative_float],
        "rarity_weight": [non_negative_float],
    }

    def __init__(self, hidden_sizes=None, codebook_size=128, code_dim=None, n_positions=None, commitment_weight=0.25,
                 rarity_weight=0.0, epochs=100, batch_size="auto", lr=1e-3, weight_decay=0.0, validation_fraction=0.1,
                 patience=10, noise=None, noise_level=0.2, normalize_errors="covariance", robust=False, exposure_weight=1.0,
                 exposure_margin=2.0, contamination=0.1, impute=None, unknown_categories="error", column_types=None,
                 device="cpu", n_threads=None, random_state=None, verbose=1):
        self.hidden_sizes = hidden_sizes
        self.codebook_size = codebook_size
        self.code_dim = code_dim
        self.n_positions = n_positions
        self.commitment_weight = commitment_weight
        self.rarity_weight = rarity_weight
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

    def _set_architecture(self, n_inputs: int) -> None:
        self.n_estimators_ = 1
        self.codebook_size_ = int(self.codebook_size)
        if self._fitted_on_images():
            hidden, latent = default_image_architecture(self.image_shape_)
            self.hidden_sizes_ = tuple(int(h) for h in self.hidden_sizes) if self.hidden_sizes is not None else hidden
            self.code_dim_ = int(self.code_dim) if self.code_dim is not None else IMAGE_CODE_DIM
            self.n_positions_ = int(self.n_positions) if self.n_positions is not None else latent // 2
        else:
            hidden, latent = default_architecture(n_inputs)
            self.hidden_sizes_ = tuple(int(h) for h in self.hidden_sizes) if self.hidden_sizes is not None else hidden
            self.code_dim_ = int(self.code_dim) if self.code_dim is not None else TABLE_CODE_DIM
            self.n_positions_ = int(self.n_positions) if self.n_positions is not None else latent

    def _build_module(self, n_inputs: int) -> VQAutoEncoder:
        if self._fitted_on_images():
            return conv_vq_autoencoder(self.image_shape_, self.hidden_sizes_, self.n_positions_, self.code_dim_,
                                       self.codebook_size_)
        return mlp_vq_autoencoder(n_inputs, self.hidden_sizes_, self.n_positions_, self.code_dim_, self.codebook_size_)

    def _row_loss_rows(self, module: VQAutoEncoder, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        source = self._corrupt(x, generator) if module.training else x
        quantized, _, commitment = module.quantize(source)
        reconstruction = module.decoder(quantized)
        return (reconstruction - x).pow(2).mean(dim=1) + float(self.commitment_weight) * commitment.mean(dim=1)

    def _fit_score_state(self, Z: np.ndarray) -> None:
        super()._fit_score_state(Z)
        counts = np.bincount(self._indices(Z).ravel(), minlength=self.codebook_size_).astype(np.float64)
        shares = counts / counts.sum()
        used = shares[shares > 0]
        self.codebook_usage_ = float(np.count_nonzero(counts) / self.codebook_size_)
        self.perplexity_ = float(np.exp(-np.sum(used * np.log(used))))
        self.code_log_prob_ = np.log((counts + 1.0) / (counts.sum() + self.codebook_size_))

    # -- scoring and codes ----------------------------------------------------------------------

    def _indices(self, Z: np.ndarray) -> np.ndarray:
        return self._map_chunks(Z, lambda x: self.model_.quantize(x)[1]).astype(np.int64)

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        scores = super()._score_array(Z)
        if self.rarity_weight:
            surprise = -self.code_log_prob_[self._indices(Z)].mean(axis=1)
            scores = scores + float(self.rarity_weight) * surprise
        return scores

    def _code_width(self) -> int:
        return self.n_positions_ * self.code_dim_

    def encode_codes(self, X) -> np.ndarray:
        """The codebook index at each position of each row or image: int64, shape (n, n_positions_).

        For images the positions are the symbols of the global code, in the encoder's order.
        """
        check_is_fitted(self)
        return self._indices(self._prepare(X, reset=False))

    def decode_codes(self, indices):
        """Reconstruct data from codebook indices (as :meth:`encode_codes` returns them), in the
        input's space (see :meth:`inverse_transform`).

        Raises
        ------
        ColumnMismatchError
            When ``indices`` is not of shape (n, n_positions_).
        DataError
            When an index is not an integer in ``0 .. codebook_size_ - 1``.
        """
        check_is_fitted(self)
        array = np.asarray(indices)
        if array.ndim != 2 or array.shape[1] != self.n_positions_:
            raise ColumnMismatchError(
                f"indices must have shape (n, {self.n_positions_}) as encode_codes returns them, got {array.shape}")
        if array.dtype.kind not in "iu":
            if array.dtype.kind != "f" or not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                raise DataError(f"indices must be integers, got dtype {array.dtype}")
        if array.size and (array.min() < 0 or array.max() >= self.codebook_size_):
            raise DataError(f"indices must lie in 0 .. {self.codebook_size_ - 1}, got {array.min()} to {array.max()}")
        rows = self._map_chunks(np.ascontiguousarray(array, dtype=np.int64),
                                lambda idx: self.model_.decode_indices(idx)[0],
                                chunk_rows=self._chunk_rows(self.n_features_in_))
        return self._to_input_space(rows)

    # -- persistence ----------------------------------------------------------------------------

    def _architecture_state(self) -> dict:
        return {"code_dim": self.code_dim_, "n_positions": self.n_positions_, "codebook_size": self.codebook_size_,
                "codebook_usage": self.codebook_usage_, "perplexity": self.perplexity_}

    def _restore_architecture(self, meta: dict) -> None:
        from oddkit.detectors.autoencoder import _positive_int

        self.code_dim_ = _positive_int(meta["code_dim"], "code_dim")
        self.n_positions_ = _positive_int(meta["n_positions"], "n_positions")
        self.codebook_size_ = _positive_int(meta["codebook_size"], "codebook_size")
        self.codebook_usage_ = float(meta["codebook_usage"])
        self.perplexity_ = float(meta["perplexity"])
        if not (math.isfinite(self.perplexity_) and 1 <= self.perplexity_ <= self.codebook_size_ + 1e-6
                and 0 <= self.codebook_usage_ <= 1 and self.codebook_size_ <= 65536):
            raise ValueError("malformed codebook statistics")

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        return {"code_log_prob": np.asarray(self.code_log_prob_, dtype=np.float64)}

    def _restore_extra_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.code_log_prob_ = arrays.pop("code_log_prob")
        if self.code_log_prob_.shape != (self.codebook_size_,):
            raise ValueError(f"code_log_prob has shape {self.code_log_prob_.shape}, expected ({self.codebook_size_},)")
        if not (self.code_log_prob_ <= 0).all():
            raise ValueError("code_log_prob holds log-probabilities above 0")
