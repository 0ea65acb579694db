"""Multi-layer perceptron auto-encoders for tables, trained as a batch of independent members."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class ParallelLinear(nn.Module):
    """``n_members`` independent linear layers applied in one batched matrix product.

    Input ``(n_members, batch, in_features)``, output ``(n_members, batch, out_features)``. On a CPU
    one ``baddbmm`` for all members costs about what one member's ``Linear`` costs in Python
    overhead, so an ensemble trains nearly as fast as a single network while its members differ.
    Initialised like :class:`torch.nn.Linear` (uniform in ``±1/sqrt(in_features)``).
    """

    def __init__(self, n_members: int, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"n_members={self.weight.shape[0]}, in_features={self.in_features}, out_features={self.out_features}"


def mlp(sizes: Sequence[int], n_members: int = 1, final_activation: bool = False) -> nn.Sequential:
    """A stack of :class:`ParallelLinear` layers with ReLU between them.

    Parameters
    ----------
    sizes : sequence of int
        Widths from input to output, e.g. ``(30, 64, 8)`` gives two linear layers.
    n_members : int
        Independent networks computed side by side.
    final_activation : bool
        Whether the last layer is followed by a ReLU too.
    """
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input and an output width, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(ParallelLinear(n_members, n_in, n_out))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class AutoEncoder(nn.Module):
    """An encoder and a decoder, for ``n_members`` independent auto-encoders at once.

    ``encode(x)`` takes rows ``(batch, n_features)`` (every member sees the same rows) or
    ``(n_members, batch, n_features)`` and returns codes ``(n_members, batch, latent_dim)``;
    ``forward(x)`` returns reconstructions ``(n_members, batch, n_features)``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, n_members: int = 1):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.n_members = n_members

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_members, *x.shape)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x))


def mlp_autoencoder(n_features: int, hidden_sizes: Sequence[int], latent_dim: int, n_members: int = 1) -> AutoEncoder:
    """Symmetric MLP auto-encoders ``n_features -> *hidden_sizes -> latent_dim -> ... -> n_features``.

    The code passes through ``tanh``: a bounded code cannot follow a row far outside the training
    data along a direction the data varies in, so such a row reconstructs badly — with a linear
    code it would be reproduced faithfully and go unnoticed. The output is linear: the inputs are
    standardised, not bounded.
    """
    widths = [n_features, *hidden_sizes, latent_dim]
    encoder = nn.Sequential(*mlp(widths, n_members), nn.Tanh())
    return AutoEncoder(encoder, mlp(widths[::-1], n_members), n_members)
