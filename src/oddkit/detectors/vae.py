"""The variational auto-encoder detector: score = negative ELBO, and new samples from the prior."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from oddkit.detectors.params import non_negative_float
from oddkit.detectors.autoencoder import AutoEncoderDetector
from oddkit.exceptions import DataError
from oddkit.nn.vae import VariationalAutoEncoder, conv_vae, mlp_vae


class VAEDetector(AutoEncoderDetector):
    """A variational auto-encoder trained on (mostly) normal rows or images; score = negative ELBO.

    The encoder gives a Gaussian posterior ``q(z | x) = N(mean, diag(sigma²))`` over the code; the
    prior is ``N(0, I)``; training samples ``z = mean + sigma * eps`` (the reparameterisation trick)
    and minimises ``-log p(x | z) + beta * KL(q(z | x) || p(z))``, the negative evidence lower bound
    (ELBO) for ``beta=1``. Everything else — preprocessing, architecture defaults, training loop,
    early stopping, de-noising, ensembles of members, images — is :class:`AutoEncoderDetector`'s.

    Likelihood ``p(x | z)``: for tables, a Gaussian with unit variance around the decoder's output
    in standardised units, so the reconstruction term is half the squared error summed over the
    preprocessed columns; for images (pixels in [0, 1]), a Bernoulli on each pixel (binary
    cross-entropy), measured relative to a perfect reconstruction so that a perfect one costs 0.

    Score (deterministic, so saved and loaded models score identically): the reconstruction term at
    the posterior mean (``z = mean``, no sampling) plus ``beta`` times the KL divergence in closed
    form, ``0.5 * sum(mean² + sigma² - 1 - log sigma²)``; with several members, their mean.

    Parameters
    ----------
    hidden_sizes : sequence of int, optional
        As for :class:`AutoEncoderDetector` (encoder hidden widths, or convolution channels for
        images); default chosen from the input.
    latent_dim : int, optional
        Dimension of the Gaussian code; default chosen from the input.
    beta : float, default=1.0
        Weight of the KL term in the training loss and the score (``beta > 1`` gives a smoother,
        more disentangled code at the cost of reconstruction; Higgins et al., 2017).
    n_estimators, epochs, batch_size, lr, weight_decay, validation_fraction, patience
        As for :class:`AutoEncoderDetector`.
    noise : {None, "gaussian", "mask", "salt_pepper"}, default=None
        De-noising: the encoder sees a corrupted row, the likelihood is of the clean one.
    noise_level : float, default=0.2
    robust, exposure_weight, exposure_margin, contamination, impute, unknown_categories, column_types, device, \
    n_threads, random_state, verbose
        As for :class:`AutoEncoderDetector` (with ``known_anomalies``, the hinge acts on their
        negative ELBO).

    Attributes
    ----------
    model_ : oddkit.nn.vae.VariationalAutoEncoder
        The trained torch module.
    hidden_sizes_, latent_dim_, n_estimators_
        The architecture actually used.
    history_ : dict
        Per-epoch training and held-out losses (negative ELBO per row), best epoch, early stop.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images (only when fitted on images).

    Notes
    -----
    :meth:`transform` returns the posterior mean, :meth:`inverse_transform` the decoder's mean (for
    images the Bernoulli probabilities), :meth:`generate` decodes draws from the prior, and
    :meth:`explain` splits the squared error of the posterior-mean reconstruction by column (the KL
    term belongs to no column).

    References
    ----------
    - Kingma, D. P. and Welling, M. "Auto-encoding variational Bayes." ICLR, 2014.
    - An, J. and Cho, S. "Variational autoencoder based anomaly detection using reconstruction
      probability." SNU Data Mining Center, 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from oddkit import VAEDetector
    >>> X = np.random.default_rng(0).normal(size=(500, 8))
    >>> vae = VAEDetector(epochs=5, random_state=0, verbose=0).fit(X)
    >>> vae.decision_function(X[:3]).shape, vae.generate(4, random_state=0).shape
    ((3,), (4, 8))
    """

    _parameter_constraints: dict = {"beta": [non_negative_float]}

    def __init__(self, hidden_sizes=None, latent_dim=None, beta=1.0, n_estimators=1, epochs=100, batch_size="auto",
                 lr=1e-3, weight_decay=0.0, validation_fraction=0.1, patience=10, noise=None, noise_level=0.2,
                 robust=False, exposure_weight=1.0, exposure_margin=2.0, contamination=0.1, impute=None,
                 unknown_categories="error", column_types=None, device="cpu", n_threads=None, random_state=None,
                 verbose=1):
        self.hidden_sizes = hidden_sizes
        self.latent_dim = latent_dim
        self.beta = beta
        self.n_estimators = n_estimators
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.noise = noise
        self.noise_level = noise_level
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

    def _normalizes_errors(self) -> bool:
        return False

    def _fit_score_state(self, Z: np.ndarray) -> None:
        # The score is the negative ELBO: no error weighting is learned; the unit scale only serves
        # explain() (shares of the squared reconstruction error).
        self.column_error_scale_ = np.ones((self.n_estimators_, Z.shape[1]), dtype=np.float32)
        self.residual_mean_ = self.residual_whitener_ = None

    def _build_module(self, n_inputs: int) -> VariationalAutoEncoder:
        if self._fitted_on_images():
            return conv_vae(self.image_shape_, self.hidden_sizes_, self.latent_dim_, self.n_estimators_)
        return mlp_vae(n_inputs, self.hidden_sizes_, self.latent_dim_, self.n_estimators_)

    def _row_loss_rows(self, module: VariationalAutoEncoder, x: torch.Tensor,
                       generator: torch.Generator) -> torch.Tensor:
        if module.training:
            loss = module.negative_elbo(x, self._corrupt(x, generator), beta=float(self.beta), generator=generator)
        else:
            loss = module.negative_elbo(x, beta=float(self.beta))
        return loss.mean(dim=0)

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        beta = float(self.beta)
        return self._map_chunks(Z, lambda x: self.model_.negative_elbo(x, beta=beta).mean(dim=0)).astype(np.float64)

    def generate(self, n: int, random_state=None, tail: bool = False):
        """Draw ``n`` new examples: codes from the prior ``N(0, I)`` through the decoder.

        Each sample is the decoder's mean (for images the pixels' Bernoulli probabilities), with
        several members from a member chosen at random.

        Parameters
        ----------
        n : int
            Number of samples.
        random_state : int, RandomState or None
            Seed of the draws; the same seed gives the same samples.
        tail : bool, default=False
            Draw the codes from the prior's tail instead: a random direction at a radius whose
            squared value lies between the chi-squared distribution's 0.99 and 0.9999 quantiles
            (uniformly in probability), where the decoder was hardly trained: pseudo-anomalies
            (:class:`~oddkit.PseudoAnomalies` with ``method="vae-tail"``).

        Returns
        -------
        pandas.DataFrame or ndarray
            In the input's space, as :meth:`inverse_transform` returns it: tables as a DataFrame with
            the training columns (when fitted on one) or a float64 array; images as float32 in [0, 1]
            of shape (n, C, H, W), or (n, H, W) when fitted on that layout.
        """
        check_is_fitted(self)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DataError(f"n must be a positive integer, got {n!r}")
        rng = check_random_state(random_state)
        codes = rng.standard_normal((int(n), self.latent_dim_)).astype(np.float32)
        if tail:
            from scipy.stats import chi2

            from oddkit.detectors.pseudo import TAIL_QUANTILES

            radius = np.sqrt(chi2.ppf(rng.uniform(*TAIL_QUANTILES, size=int(n)), self.latent_dim_))
            codes = (codes / np.linalg.norm(codes, axis=1, keepdims=True) * radius[:, None]).astype(np.float32)
        members = rng.randint(self.n_estimators_, size=int(n)).astype(np.float32)
        packed = np.column_stack([codes, members]).astype(np.float32)

        def decode(rows: torch.Tensor) -> torch.Tensor:
            z, member = rows[:, :-1], rows[:, -1].long()
            outputs = self.model_.decode(z.unsqueeze(0).expand(self.n_estimators_, *z.shape).contiguous())
            return outputs[member, torch.arange(z.shape[0], device=z.device)]

        rows = self._map_chunks(packed, decode, chunk_rows=self._chunk_rows(self.n_features_in_))
        return self._to_input_space(rows)
