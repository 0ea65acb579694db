"""A vector quantiser and the VQ-VAE built around it.

:class:`VectorQuantizer` follows the ideas of lucidrains' ``vector-quantize-pytorch`` (and van den
Oord et al., 2017; Razavi et al., 2019): each vector is replaced by its nearest codebook entry; the
gradient passes straight through to the encoder; a commitment loss keeps the encoder's vectors near
their codes; the codebook is not learned by gradient but as an exponential moving average (EMA) of
the vectors assigned to each code; it starts from vectors of the first training batch; and a code
that is almost never chosen ("dead") is moved onto a vector of the current batch, so the codebook
stays in use.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from oddkit.nn.conv import ConvDecoder, ConvEncoder, activation, init_convolutions_


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation of ``(..., dim)`` vectors with an EMA codebook.

    ``forward(z)`` returns ``(quantised, indices, commitment)``: the quantised vectors with
    straight-through gradients, the code index of each vector, and ``|z - code|^2`` averaged over
    ``dim`` (the commitment loss of each vector; its gradient reaches the encoder only). In training
    mode the codebook is updated in place (buffers, not parameters: the optimiser never sees it).

    Parameters
    ----------
    codebook_size : int
        Number of codes ``K``.
    dim : int
        Length of each code vector.
    decay : float, default=0.99
        EMA decay of the codes' counts and sums.
    dead_code_threshold : float, default=1.0
        A code whose EMA count (vectors per batch) falls below this is re-seeded from the batch.
    eps : float, default=1e-5
        Laplace smoothing of the counts.
    """

    def __init__(self, codebook_size: int, dim: int, decay: float = 0.99, dead_code_threshold: float = 1.0,
                 eps: float = 1e-5):
        super().__init__()
        self.codebook_size, self.dim = int(codebook_size), int(dim)
        self.decay, self.dead_code_threshold, self.eps = float(decay), float(dead_code_threshold), float(eps)
        self.register_buffer("codebook", torch.randn(self.codebook_size, self.dim))
        self.register_buffer("cluster_size", torch.zeros(self.codebook_size))
        self.register_buffer("embed_sum", torch.zeros(self.codebook_size, self.dim))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared Euclidean distance) of each row of ``flat``."""
        distances = (flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ self.codebook.t()
                     + self.codebook.pow(2).sum(1)[None, :])
        return distances.argmin(dim=1)

    @torch.no_grad()
    def _sample_vectors(self, flat: torch.Tensor, n: int) -> torch.Tensor:
        if flat.shape[0] >= n:
            return flat[torch.randperm(flat.shape[0], device=flat.device)[:n]]
        return flat[torch.randint(0, flat.shape[0], (n,), device=flat.device)]

    @torch.no_grad()
    def _initialize(self, flat: torch.Tensor) -> None:
        self.codebook.copy_(self._sample_vectors(flat, self.codebook_size))
        self.cluster_size.fill_(max(self.dead_code_threshold, flat.shape[0] / self.codebook_size))
        self.embed_sum.copy_(self.codebook * self.cluster_size[:, None])
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        counts = torch.bincount(indices, minlength=self.codebook_size).to(flat.dtype)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, indices, flat)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < self.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead:
            self.codebook[dead] = self._sample_vectors(flat, n_dead)
            self.cluster_size[dead] = self.dead_code_threshold
            self.embed_sum[dead] = self.codebook[dead] * self.dead_code_threshold

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        flat = z.reshape(-1, self.dim)
        if self.training and not bool(self.initialized):
            self._initialize(flat.detach())
        indices = self.nearest(flat.detach())
        quantized = self.codebook[indices]
        if self.training:
            self._update(flat.detach(), indices)
        commitment = (flat - quantized).pow(2).mean(dim=1)
        quantized = flat + (quantized - flat).detach()  # straight-through estimator
        shape = z.shape[:-1]
        return quantized.reshape(z.shape), indices.reshape(shape), commitment.reshape(shape)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """The code vectors of ``indices`` (any shape): ``(*indices.shape, dim)``."""
        return self.codebook[indices]


class _TableEncoder(nn.Module):
    def __init__(self, n_features: int, hidden_sizes: Sequence[int], n_positions: int, code_dim: int):
        super().__init__()
        widths = [n_features, *hidden_sizes]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], n_positions * code_dim))
        self.layers = nn.Sequential(*layers)
        self.n_positions, self.code_dim = n_positions, code_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).reshape(x.shape[0], self.n_positions, self.code_dim)


class _TableDecoder(nn.Module):
    def __init__(self, n_features: int, hidden_sizes: Sequence[int], n_positions: int, code_dim: int):
        super().__init__()
        widths = [n_positions * code_dim, *hidden_sizes[::-1]]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], n_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.layers(codes.reshape(codes.shape[0], -1))


class _ImageEncoder(nn.Module):
    def __init__(self, image_shape: Sequence[int], widths: Sequence[int], n_positions: int, code_dim: int):
        super().__init__()
        self.convs = ConvEncoder(image_shape, widths)
        self.to_codes = nn.Linear(self.convs.out_features, n_positions * code_dim)
        self.n_positions, self.code_dim = n_positions, code_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_codes(self.convs(x).flatten(1)).reshape(x.shape[0], self.n_positions, self.code_dim)


class _ImageDecoder(nn.Module):
    def __init__(self, image_shape: Sequence[int], widths: Sequence[int], n_positions: int, code_dim: int):
        super().__init__()
        self.deconvs = ConvDecoder(image_shape, widths)
        self.from_codes = nn.Sequential(nn.Linear(n_positions * code_dim, self.deconvs.in_features), activation())

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.deconvs(self.from_codes(codes.reshape(codes.shape[0], -1)))


class VQAutoEncoder(nn.Module):
    """An encoder to ``n_positions`` vectors, a :class:`VectorQuantizer`, and a decoder.

    Rows ``(batch, n_features)`` in; like :class:`oddkit.nn.AutoEncoder` the outputs carry a leading
    members axis of length 1: ``encode(x)`` gives the quantised codes ``(1, batch, n_positions *
    code_dim)``, ``decode(z)`` and ``forward(x)`` reconstructions ``(1, batch, n_features)``.
    ``quantize(x)`` gives ``(quantised (batch, n_positions, code_dim), indices (batch,
    n_positions), commitment (batch, n_positions))``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, quantizer: VectorQuantizer, n_positions: int):
        super().__init__()
        self.encoder, self.decoder, self.quantizer = encoder, decoder, quantizer
        self.n_positions, self.code_dim = int(n_positions), quantizer.dim
        self.n_members = 1

    @staticmethod
    def _rows(x: torch.Tensor) -> torch.Tensor:
        return x[0] if x.dim() == 3 else x

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.quantizer(self.encoder(self._rows(x)))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        quantized = self.quantize(x)[0]
        return quantized.reshape(1, quantized.shape[0], -1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        z = self._rows(z)
        return self.decoder(z.reshape(z.shape[0], self.n_positions, self.code_dim)).unsqueeze(0)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Reconstructions ``(1, batch, n_features)`` from code indices ``(batch, n_positions)``."""
        return self.decoder(self.quantizer.lookup(indices)).unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantize(x)[0]).unsqueeze(0)


def mlp_vq_autoencoder(n_features: int, hidden_sizes: Sequence[int], n_positions: int, code_dim: int,
                       codebook_size: int) -> VQAutoEncoder:
    """A VQ-VAE for tables: an MLP to ``n_positions`` vectors of ``code_dim``, each quantised with
    one shared codebook, and a mirrored MLP back."""
    hidden = [int(h) for h in hidden_sizes]
    return VQAutoEncoder(_TableEncoder(n_features, hidden, n_positions, code_dim),
                         _TableDecoder(n_features, hidden, n_positions, code_dim),
                         VectorQuantizer(codebook_size, code_dim), n_positions)


def conv_vq_autoencoder(image_shape: Sequence[int], widths: Sequence[int], n_positions: int, code_dim: int,
                        codebook_size: int) -> VQAutoEncoder:
    """A VQ-VAE for images: :class:`~oddkit.nn.conv.ConvEncoder` stages, flattened, and a linear
    layer to ``n_positions`` vectors of ``code_dim`` that describe the whole image, each quantised;
    the decoder mirrors the encoder.

    The code is global rather than one vector per cell of the last feature map: a few symbols for
    the whole image are a real bottleneck, where a grid of codes lets a network trained on one
    class reconstruct the others as well (``benchmarks/IMAGES.md``)."""
    return VQAutoEncoder(_ImageEncoder(image_shape, widths, n_positions, code_dim),
                         _ImageDecoder(image_shape, widths, n_positions, code_dim),
                         VectorQuantizer(codebook_size, code_dim), n_positions)
