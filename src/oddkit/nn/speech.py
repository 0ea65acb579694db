"""Voice conversion by disentangling who speaks from what is said (AdaIN-VC).

After Chou, Yeh and Lee (2019), "One-shot voice conversion by separating speaker and content
representations with instance normalization" (Interspeech 2019): three 1-D convolutional networks
over log-mel frames,

- a *content encoder* whose convolutions are followed by instance normalisation without affine
  parameters (each channel's mean and spread over the utterance, which is where a speaker's timbre
  lives in a convolutional feature map, are taken away) and a narrow bottleneck of a few channels
  per frame;
- a *speaker encoder* averaged over the whole utterance into one vector;
- a *decoder* that puts the speaker back with adaptive instance normalisation (AdaIN): after each
  convolution the channels are normalised, then scaled and shifted by values computed from the
  speaker vector.

Training only reconstructs each utterance from its own content and speaker codes (no parallel data,
no speaker labels) plus the paper's small KL term on the content code (the code is a Gaussian mean;
Gaussian noise, of unit spread in the paper, is added to it while training). Converting decodes the
content code of one utterance with the speaker vector of another.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AdaIN", "ContentEncoder", "SpeakerEncoder", "SpeechDecoder", "VoiceConversionNet", "voice_conversion_loss"]


class _ConvBlock(nn.Module):
    """Two 1-D convolutions (same length out) with a residual connection: ``x + conv(relu(conv(x)))``."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.first = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.second = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.second(F.relu(self.first(x)))


class ContentEncoder(nn.Module):
    """Log-mel frames ``(batch, n_mels, frames)`` -> content code ``(batch, content_dim, frames)``.

    Every block is followed by instance normalisation without affine parameters (``instance_norm``;
    False for the ablation without it); the last 1x1 convolution is the bottleneck.
    """

    def __init__(self, n_mels: int, channels: int, content_dim: int, n_blocks: int, kernel_size: int,
                 instance_norm: bool = True):
        super().__init__()
        self.inp = nn.Conv1d(n_mels, channels, kernel_size, padding=kernel_size // 2)
        self.blocks = nn.ModuleList(_ConvBlock(channels, kernel_size) for _ in range(n_blocks))
        self.norm = nn.InstanceNorm1d(channels, affine=False) if instance_norm else nn.Identity()
        self.out = nn.Conv1d(channels, content_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(F.relu(self.inp(x)))
        for block in self.blocks:
            h = self.norm(F.relu(block(h)))
        return self.out(h)


class SpeakerEncoder(nn.Module):
    """Log-mel frames ``(batch, n_mels, frames)`` -> one speaker vector ``(batch, speaker_dim)``,
    the convolutional features averaged over every frame of the utterance."""

    def __init__(self, n_mels: int, channels: int, speaker_dim: int, n_blocks: int, kernel_size: int):
        super().__init__()
        self.inp = nn.Conv1d(n_mels, channels, kernel_size, padding=kernel_size // 2)
        self.blocks = nn.ModuleList(_ConvBlock(channels, kernel_size) for _ in range(n_blocks))
        self.out = nn.Linear(channels, speaker_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.inp(x))
        for block in self.blocks:
            h = F.relu(block(h))
        return self.out(h.mean(dim=2))


class AdaIN(nn.Module):
    """Adaptive instance normalisation: normalise each channel over time, then scale by ``1 + gamma``
    and shift by ``beta``, both computed from the speaker vector by one linear layer."""

    def __init__(self, channels: int, speaker_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm1d(channels, affine=False)
        self.style = nn.Linear(speaker_dim, 2 * channels)

    def forward(self, x: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.style(speaker).unsqueeze(2).chunk(2, dim=1)
        return self.norm(x) * (1 + gamma) + beta


class SpeechDecoder(nn.Module):
    """Content code ``(batch, content_dim, frames)`` and speaker vector ``(batch, speaker_dim)`` ->
    log-mel frames ``(batch, n_mels, frames)``; AdaIN after every convolution block."""

    def __init__(self, n_mels: int, channels: int, content_dim: int, speaker_dim: int, n_blocks: int,
                 kernel_size: int):
        super().__init__()
        self.inp = nn.Conv1d(content_dim, channels, kernel_size, padding=kernel_size // 2)
        self.inp_style = AdaIN(channels, speaker_dim)
        self.blocks = nn.ModuleList(_ConvBlock(channels, kernel_size) for _ in range(n_blocks))
        self.styles = nn.ModuleList(AdaIN(channels, speaker_dim) for _ in range(n_blocks))
        self.out = nn.Conv1d(channels, n_mels, kernel_size, padding=kernel_size // 2)

    def forward(self, content: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.inp_style(self.inp(content), speaker))
        for block, style in zip(self.blocks, self.styles):
            h = F.relu(style(block(h), speaker))
        return self.out(h)


class VoiceConversionNet(nn.Module):
    """Content encoder, speaker encoder and AdaIN decoder (AdaIN-VC).

    Parameters
    ----------
    n_mels : int
        Mel bands per frame.
    channels : int
        Width of every convolution.
    content_dim : int
        Channels of the content code per frame (the bottleneck).
    speaker_dim : int
        Size of the speaker vector.
    n_blocks : int
        Residual convolution blocks in each of the three networks.
    kernel_size : int
        Frames each convolution sees (odd).
    instance_norm : bool
        Instance normalisation in the content encoder (False: the ablation without it).
    speaker_encoder : bool
        A speaker encoder (False: the ablation without it; the decoder's AdaIN then reads one
        learned vector, the same for every utterance, so a conversion only reconstructs the source).
    """

    def __init__(self, n_mels: int, channels: int = 96, content_dim: int = 4, speaker_dim: int = 64,
                 n_blocks: int = 2, kernel_size: int = 5, instance_norm: bool = True, speaker_encoder: bool = True):
        super().__init__()
        self.content_encoder = ContentEncoder(n_mels, channels, content_dim, n_blocks, kernel_size, instance_norm)
        if speaker_encoder:
            self.speaker_encoder = SpeakerEncoder(n_mels, channels, speaker_dim, n_blocks, kernel_size)
        else:
            self.speaker_encoder = None
            self.constant_speaker = nn.Parameter(torch.zeros(speaker_dim))
        self.decoder = SpeechDecoder(n_mels, channels, content_dim, speaker_dim, n_blocks, kernel_size)

    def content(self, x: torch.Tensor) -> torch.Tensor:
        """Content code ``(batch, content_dim, frames)`` of log-mel frames ``(batch, n_mels, frames)``."""
        return self.content_encoder(x)

    def speaker(self, x: torch.Tensor) -> torch.Tensor:
        """Speaker vector ``(batch, speaker_dim)`` of log-mel frames ``(batch, n_mels, frames)``."""
        if self.speaker_encoder is None:
            return self.constant_speaker.expand(x.shape[0], -1)
        return self.speaker_encoder(x)

    def decode(self, content: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        return self.decoder(content, speaker)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` from its own content and speaker codes (no noise)."""
        return self.decode(self.content(x), self.speaker(x))

    def convert(self, source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """The content of ``source`` ``(1 or batch, n_mels, frames)`` in the voice of ``reference``
        ``(1 or batch, n_mels, any frames)``."""
        return self.decode(self.content(source), self.speaker(reference))


def voice_conversion_loss(net: VoiceConversionNet, x: torch.Tensor, kl_weight: float,
                          generator: torch.Generator | None = None,
                          reference: torch.Tensor | None = None, noise_std: float = 1.0) -> torch.Tensor:
    """Training loss of each log-mel segment of a batch ``(batch, n_mels, frames)``.

    The reconstruction term is the mean absolute error between ``x`` and its reconstruction from its
    content code plus Gaussian noise of standard deviation ``noise_std`` (in training mode only; 1 in
    the paper, 0 for none) and the speaker vector of
    ``reference`` (default ``x`` itself, as in the paper; another segment of the same speaker
    leaves the speaker vector no use for what the segment says); the KL term (weight
    ``kl_weight``) is ``mean(code**2) / 2``, the KL divergence from a Gaussian centred on the code
    (of spread ``noise_std``) to the standard normal, up to a constant (Chou et al., 2019, eq. 3-4).

    Returns
    -------
    torch.Tensor of shape (batch,)
        Reconstruction error plus weighted KL term of each segment (their mean is minimised).
    """
    content = net.content(x)
    if net.training and noise_std > 0:
        noise = torch.randn(content.shape, generator=generator, device="cpu").to(content.device)
        content_in = content + float(noise_std) * noise
    else:
        content_in = content
    speaker = net.speaker(x if reference is None else reference)
    error = (net.decode(content_in, speaker) - x).abs().mean(dim=(1, 2))
    return error + float(kl_weight) * 0.5 * content.pow(2).mean(dim=(1, 2))
