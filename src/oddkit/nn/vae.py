"""Variational auto-encoders: a Gaussian code, the reparameterisation trick and the ELBO's terms.

The encoder gives the mean and log-variance of ``q(z | x)``, a diagonal Gaussian; the prior is
``N(0, I)``; the decoder gives the mean of ``p(x | z)``. Two likelihoods:

- ``"gaussian"`` (tables, standardised columns): ``N(x; decoder(z), I)``, so the reconstruction
  term is half the squared error summed over columns (the constant ``n/2 log 2 pi`` is left out);
- ``"bernoulli"`` (images, pixels in [0, 1]): the decoder gives logits; the reconstruction term is
  the binary cross-entropy summed over pixels, minus the cross-entropy of a perfect reconstruction
  (the entropy of the pixels), so a perfect reconstruction costs 0 whatever the image's grey levels.
  That offset does not depend on the network, so it changes no gradient.

Like :class:`oddkit.nn.AutoEncoder`, everything is computed for ``n_members`` independent
networks at once: codes are ``(n_members, batch, latent_dim)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from oddkit.nn.autoencoder import ParallelLinear, mlp
from oddkit.nn.conv import conv_decoder, conv_encoder_trunk

LIKELIHOODS = ("gaussian", "bernoulli")
LOG_VAR_RANGE = (-30.0, 20.0)


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, exp(log_var)) || N(0, I))`` in closed form, summed over the last axis:
    ``0.5 * sum(mean**2 + exp(log_var) - 1 - log_var)``."""
    return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=-1)


def bernoulli_entropy(p: torch.Tensor) -> torch.Tensor:
    """Elementwise entropy ``-p log p - (1-p) log(1-p)`` (0 at p = 0 and p = 1)."""
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(1.0 - p, 1.0 - p))


class VariationalAutoEncoder(nn.Module):
    """A VAE made of an encoder trunk, two linear heads (mean, log-variance) and a decoder.

    ``encode(x)`` gives the posterior mean (the embedding), ``encode_distribution(x)`` the mean and
    log-variance, ``decode(z)`` the mean of ``p(x | z)``; ``forward(x)`` decodes the posterior mean,
    a deterministic reconstruction.

    Parameters
    ----------
    trunk : nn.Module
        ``(n_members, batch, n_features)`` -> ``(n_members, batch, trunk_features)``.
    trunk_features : int
    decoder : nn.Module
        ``(n_members, batch, latent_dim)`` -> ``(n_members, batch, n_features)``: the mean of
        ``p(x | z)`` (``"gaussian"``) or its logits (``"bernoulli"``).
    latent_dim, n_members : int
    likelihood : {"gaussian", "bernoulli"}
    """

    def __init__(self, trunk: nn.Module, trunk_features: int, decoder: nn.Module, latent_dim: int,
                 n_members: int = 1, likelihood: str = "gaussian"):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        self.trunk = trunk
        self.mean_head = ParallelLinear(n_members, trunk_features, latent_dim)
        self.log_var_head = ParallelLinear(n_members, trunk_features, latent_dim)
        self.decoder = decoder
        self.latent_dim = latent_dim
        self.n_members = n_members
        self.likelihood = likelihood

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_members, *x.shape)
        h = self.trunk(x)
        return self.mean_head(h), self.log_var_head(h).clamp(*LOG_VAR_RANGE)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_distribution(x)[0]

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output: the mean (gaussian) or the logits (bernoulli) of ``p(x | z)``."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raw = self.decoder(z)
        return torch.sigmoid(raw) if self.likelihood == "bernoulli" else raw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def reconstruction_nll(self, raw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``-log p(x | z)`` up to a constant, summed over features: ``(n_members, batch)``.

        ``raw`` is :meth:`decode_raw`'s output ``(n_members, batch, n_features)``; ``x`` the clean
        rows ``(batch, n_features)``.
        """
        target = x.unsqueeze(0).expand_as(raw)
        if self.likelihood == "gaussian":
            return 0.5 * (raw - target).pow(2).sum(dim=-1)
        cross_entropy = F.binary_cross_entropy_with_logits(raw, target, reduction="none").sum(dim=-1)
        return cross_entropy - bernoulli_entropy(x).sum(dim=-1)

    def negative_elbo(self, x: torch.Tensor, source: torch.Tensor | None = None, beta: float = 1.0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """``-log p(x | z) + beta * KL(q(z | source) || p(z))`` per member and row: ``(n_members, batch)``.

        With a ``generator``, ``z`` is one reparameterised sample ``mean + sigma * eps`` (training);
        without, ``z`` is the posterior mean, so the value is deterministic (scoring). ``source`` is
        what the encoder sees (a corrupted copy of ``x`` for de-noising), ``x`` by default.
        """
        mean, log_var = self.encode_distribution(x if source is None else source)
        z = mean
        if generator is not None:
            eps = torch.randn(mean.shape, generator=generator).to(mean.device)
            z = mean + torch.exp(0.5 * log_var) * eps
        return self.reconstruction_nll(self.decode_raw(z), x) + beta * gaussian_kl(mean, log_var)


def mlp_vae(n_features: int, hidden_sizes: Sequence[int], latent_dim: int, n_members: int = 1) -> VariationalAutoEncoder:
    """An MLP VAE for tables: ``n_features -> *hidden_sizes -> (mean, log-variance)`` and back,
    with a Gaussian likelihood."""
    hidden = [int(h) for h in hidden_sizes]
    trunk = mlp([n_features, *hidden], n_members, final_activation=True) if hidden else nn.Identity()
    decoder = mlp([latent_dim, *hidden[::-1], n_features], n_members)
    return VariationalAutoEncoder(trunk, hidden[-1] if hidden else n_features, decoder, latent_dim, n_members,
                                  likelihood="gaussian")


def conv_vae(image_shape: Sequence[int], widths: Sequence[int], latent_dim: int,
             n_members: int = 1) -> VariationalAutoEncoder:
    """A convolutional VAE for images (flat rows of ``C*H*W`` pixels in [0, 1]) with a Bernoulli
    likelihood; the encoder and decoder are those of :func:`oddkit.nn.conv.conv_autoencoder`."""
    trunk = conv_encoder_trunk(image_shape, widths, n_members)
    n_trunk = trunk[0].members[0][0].out_features
    decoder = conv_decoder(image_shape, widths, latent_dim, n_members, logits=True)
    return VariationalAutoEncoder(trunk, n_trunk, decoder, latent_dim, n_members, likelihood="bernoulli")
