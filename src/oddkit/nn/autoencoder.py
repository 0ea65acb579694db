"""Multi-layer perceptron encoders and decoders for tables."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(sizes: Sequence[int], final_activation: bool = False) -> nn.Sequential:
    """A stack of ``Linear`` layers with ReLU between them.

    Parameters
    ----------
    sizes : sequence of int
        Widths from input to output, e.g. ``(30, 64, 8)`` gives two linear layers.
    final_activation : bool
        Whether the last layer is followed by a ReLU too.
    """
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input and an output width, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class AutoEncoder(nn.Module):
    """An encoder and a decoder: ``forward(x)`` reconstructs ``x`` through the code ``encode(x)``."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def mlp_autoencoder(n_features: int, hidden_sizes: Sequence[int], latent_dim: int) -> AutoEncoder:
    """A symmetric MLP auto-encoder ``n_features -> *hidden_sizes -> latent_dim -> ... -> n_features``.

    The code passes through ``tanh``: a bounded code cannot follow a row far outside the training
    data along a direction the data varies in, so such a row reconstructs badly — with a linear
    code it would be reproduced faithfully and go unnoticed. The output is linear: the inputs are
    standardised, not bounded.
    """
    widths = [n_features, *hidden_sizes, latent_dim]
    return AutoEncoder(nn.Sequential(*mlp(widths), nn.Tanh()), mlp(widths[::-1]))
