"""Auto-encoder detectors: score = how badly a network trained on normal data reconstructs a row."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from sklearn.base import TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from oddkit.detectors.base import BaseDetector
from oddkit.exceptions import DataError, ModelFileError
from oddkit.nn import AutoEncoder, mlp_autoencoder
from oddkit.train import fit_module, resolve_device, seeded, torch_threads

NOISE_KINDS = (None, "gaussian", "mask")
SCORE_CHUNK_ROWS = 65536
ERROR_FLOOR = 1e-3


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


class AutoEncoderDetector(TransformerMixin, BaseDetector):
    """An MLP auto-encoder trained on (mostly) normal rows; anomaly score = reconstruction error.

    Each row is standardised (numeric columns) and one-hot encoded (categorical columns), pushed
    through an encoder to a narrow code and decoded back; the score is the mean squared error
    between the row and its reconstruction, in standardised units. Rows unlike the training data
    reconstruct badly.

    Parameters
    ----------
    hidden_sizes : sequence of int, optional
        Widths of the encoder's hidden layers (the decoder mirrors them). Default: chosen from the
        input width by :func:`default_architecture`.
    latent_dim : int, optional
        Width of the code (bottleneck). Default: chosen from the input width.
    n_estimators : int, default=1
        Independent auto-encoders (different random initial weights) trained side by side in one
        batched network; the score is the mean of their scores. More members give steadier scores
        at a proportional cost in arithmetic (but not in Python overhead).
    epochs : int, default=100
        Most passes over the training data; early stopping usually ends sooner.
    batch_size : int or "auto", default="auto"
        Rows per gradient step; ``"auto"`` gives about 16 steps per epoch, 32 to 1,024 rows.
    lr : float, default=1e-3
        Adam's learning rate.
    weight_decay : float, default=0.0
        Adam's L2 penalty.
    validation_fraction : float, default=0.1
        Share of the training rows held out for early stopping (off when that is under 8 rows).
    patience : int, default=10
        Epochs without improvement of the held-out loss before training stops.
    noise : {None, "gaussian", "mask"}, default=None
        Train as a de-noising auto-encoder: the network sees a corrupted row and must reconstruct
        the clean one. ``"gaussian"`` adds N(0, noise_level²) to each standardised value;
        ``"mask"`` sets each value to its mean (zero) with probability ``noise_level``.
        Scoring always uses the clean rows.
    noise_level : float, default=0.2
        Standard deviation (gaussian) or drop probability (mask).
    normalize_errors : bool, default=True
        Divide each column's squared error by its mean over the training rows, so every column
        counts in units of how well it is normally reconstructed (a column that is always hard to
        reconstruct does not drown the others). Errors below ``1e-3`` (in squared standard
        deviations) count as that floor, so near-perfect columns stay finite.
    robust : bool, default=False
        Train for contaminated data: from the second epoch on, the ``contamination`` share of
        training rows that the current network reconstructs worst is left out of that epoch, and
        early stopping watches a held-out loss trimmed by the same share. Anomalies hidden in the
        training data then barely shape the network, so they keep large errors.
    contamination : float, default=0.1
        Expected share of anomalies in the training data; sets ``threshold_`` (and the share
        trimmed when ``robust``).
    impute : {None, "median"}, default=None
        ``"median"`` replaces NaN/inf by the training median instead of raising an error.
    unknown_categories : {"error", "ignore"}, default="error"
        What to do with a categorical value never seen in training.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when present).
    n_threads : int, optional
        Torch threads used during fit and scoring (default: torch's setting).
    random_state : int, RandomState or None
        Seed for weights, the held-out split, shuffling and noise.
    verbose : int, default=1
        1 shows a progress bar while training, 0 is silent.

    Attributes
    ----------
    model_ : oddkit.nn.AutoEncoder
        The trained torch module (on CPU or the chosen device).
    column_error_scale_ : ndarray of shape (n_estimators, n_outputs)
        Each member's mean squared error of each preprocessed column on the training rows (1 when
        ``normalize_errors=False``).
    history_ : dict
        Per-epoch training and held-out losses, the best epoch and whether training stopped early.
    hidden_sizes_, latent_dim_, n_estimators_ : the architecture actually used.

    Examples
    --------
    >>> import numpy as np
    >>> from oddkit import AutoEncoderDetector
    >>> X = np.random.default_rng(0).normal(size=(500, 8))
    >>> detector = AutoEncoderDetector(epochs=5, random_state=0, verbose=0).fit(X)
    >>> detector.decision_function(X[:3]).shape
    (3,)
    """

    def __init__(self, hidden_sizes=None, latent_dim=None, n_estimators=1, epochs=100, batch_size="auto", lr=1e-3,
                 weight_decay=0.0, validation_fraction=0.1, patience=10, noise=None, noise_level=0.2,
                 normalize_errors=True, robust=False, contamination=0.1, impute=None, unknown_categories="error",
                 device="cpu", n_threads=None, random_state=None, verbose=1):
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
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # -- fitting --------------------------------------------------------------------------------

    def _check_params(self) -> None:
        if self.noise not in NOISE_KINDS:
            raise DataError(f"noise must be one of {NOISE_KINDS}, got {self.noise!r}")
        if not 0.0 <= float(self.noise_level) < (1.0 if self.noise == "mask" else math.inf):
            raise DataError(f"noise_level must be >= 0 (and < 1 for masking), got {self.noise_level!r}")
        if int(self.n_estimators) < 1:
            raise DataError(f"n_estimators must be at least 1, got {self.n_estimators!r}")
        if int(self.epochs) < 1:
            raise DataError(f"epochs must be at least 1, got {self.epochs!r}")
        if self.batch_size != "auto" and int(self.batch_size) < 1:
            raise DataError(f"batch_size must be a positive integer or 'auto', got {self.batch_size!r}")
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise DataError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")

    def _fit_array(self, Z: np.ndarray) -> None:
        self._check_params()
        n_inputs = Z.shape[1]
        hidden, latent = default_architecture(n_inputs)
        self.hidden_sizes_ = tuple(int(h) for h in self.hidden_sizes) if self.hidden_sizes is not None else hidden
        self.latent_dim_ = int(self.latent_dim) if self.latent_dim is not None else latent
        self.n_estimators_ = int(self.n_estimators)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        device = resolve_device(self.device)
        n_train = Z.shape[0] - int(round(Z.shape[0] * self.validation_fraction))
        batch = default_batch_size(n_train) if self.batch_size == "auto" else int(self.batch_size)
        with torch_threads(self.n_threads), seeded(seed) as generator:
            self.model_ = self._build_module(n_inputs).to(device)
            history = fit_module(
                self.model_, self._row_loss, torch.from_numpy(Z).to(device),
                epochs=int(self.epochs), batch_size=batch, lr=float(self.lr),
                weight_decay=float(self.weight_decay), validation_fraction=float(self.validation_fraction),
                patience=self.patience, trim_fraction=float(self.contamination) if self.robust else 0.0,
                generator=generator, verbose=self.verbose,
                description=type(self).__name__,
            )
        self.history_ = history.to_dict()
        self.column_error_scale_ = np.ones((self.n_estimators_, n_inputs), dtype=np.float32)
        if self.normalize_errors:
            mean_errors = self._map_chunks(Z, self._member_errors, axis=1).mean(axis=1)
            self.column_error_scale_ = np.maximum(mean_errors, ERROR_FLOOR).astype(np.float32)

    def _build_module(self, n_inputs: int) -> AutoEncoder:
        return mlp_autoencoder(n_inputs, self.hidden_sizes_, self.latent_dim_, self.n_estimators_)

    def _corrupt(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.noise is None or not self.noise_level:
            return x
        if self.noise == "gaussian":
            return x + self.noise_level * torch.randn(x.shape, generator=generator).to(x.device)
        keep = torch.rand(x.shape, generator=generator).to(x.device) >= self.noise_level
        return x * keep

    def _row_loss(self, module: AutoEncoder, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        source = self._corrupt(x, generator) if module.training else x
        return (module(source) - x).pow(2).mean(dim=(0, 2))

    # -- scoring --------------------------------------------------------------------------------

    @torch.inference_mode()
    def _map_chunks(self, Z: np.ndarray, fn, axis: int = 0) -> np.ndarray:
        """Apply ``fn`` to the rows of ``Z`` in large chunks on the model's device; the results are
        joined along ``axis`` (1 for per-member outputs of shape (members, rows, ...))."""
        device = next(self.model_.parameters()).device
        outputs = []
        with torch_threads(self.n_threads):
            for start in range(0, Z.shape[0], SCORE_CHUNK_ROWS):
                x = torch.from_numpy(Z[start:start + SCORE_CHUNK_ROWS]).to(device)
                outputs.append(fn(x).cpu().numpy())
        return np.concatenate(outputs, axis=axis)

    def _member_errors(self, x: torch.Tensor) -> torch.Tensor:
        """Squared error of each member on each row and column: (members, rows, columns)."""
        return (self.model_(x) - x).pow(2)

    def _normalized_errors(self, x: torch.Tensor) -> torch.Tensor:
        """Per row and column, the members' mean error in units of that column's training error."""
        scale = torch.from_numpy(self.column_error_scale_).to(x.device).unsqueeze(1)
        return (self._member_errors(x) / scale).mean(dim=0)

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        return self._map_chunks(Z, lambda x: self._normalized_errors(x).mean(dim=1)).astype(np.float64)

    def transform(self, X) -> np.ndarray:
        """The bottleneck code of each row, float32, shape (n, latent_dim_) — with several members,
        their codes side by side: (n, n_estimators * latent_dim_)."""
        check_is_fitted(self)

        def codes(x: torch.Tensor) -> torch.Tensor:
            z = self.model_.encode(x)
            return z.transpose(0, 1).reshape(x.shape[0], -1)

        return self._map_chunks(self._prepare(X, reset=False), codes)

    def reconstruct(self, X) -> np.ndarray:
        """The reconstruction of each row (mean over members), in the preprocessed space."""
        check_is_fitted(self)
        return self._map_chunks(self._prepare(X, reset=False), lambda x: self.model_(x).mean(dim=0))

    def explain(self, X) -> pd.DataFrame:
        """Each row's share of its anomaly score per original column (rows sum to 1).

        One-hot columns of a categorical feature are summed back to that feature, so the result
        has one column per input column, named as in training.
        """
        check_is_fitted(self)
        errors = self._map_chunks(self._prepare(X, reset=False), self._normalized_errors)
        per_column = self.preprocessor_.group_sum(errors)
        per_column = per_column.astype(np.float64)
        totals = per_column.sum(axis=1, keepdims=True)
        shares = np.divide(per_column, totals, out=np.zeros_like(per_column), where=totals > 0)
        return pd.DataFrame(shares, columns=list(self.preprocessor_.feature_names_in_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The embedding is float32 whatever the input: that is the network's precision.
        tags.transformer_tags.preserves_dtype = []
        return tags

    # -- persistence ----------------------------------------------------------------------------

    def _get_model_state(self):
        arrays = {name: tensor.detach().cpu().numpy() for name, tensor in self.model_.state_dict().items()}
        arrays["column_error_scale"] = self.column_error_scale_
        meta = {"n_inputs": int(self.model_.encoder[0].in_features), "n_members": self.n_estimators_,
                "hidden_sizes": list(self.hidden_sizes_),
                "latent_dim": self.latent_dim_, "history": self.history_}
        return arrays, meta, {}

    def _set_model_state(self, arrays, meta, files):
        try:
            self.hidden_sizes_ = tuple(int(h) for h in meta["hidden_sizes"])
            self.latent_dim_ = int(meta["latent_dim"])
            self.n_estimators_ = int(meta["n_members"])
            self.history_ = dict(meta["history"])
            module = self._build_module(int(meta["n_inputs"]))
            arrays = dict(arrays)
            self.column_error_scale_ = arrays.pop("column_error_scale")
            module.load_state_dict({name: torch.from_numpy(array.copy()) for name, array in arrays.items()})
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"the saved auto-encoder weights do not fit its configuration: {exc}") from None
        self.model_ = module.to(resolve_device(self.device)).eval()
