"""Classifiers whose logits say both which known class an input belongs to and how sure they are:
an MLP for table rows and a small convolutional network for images (open-set recognition)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn


def mlp_classifier(n_features: int, hidden_sizes: Sequence[int], n_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """An MLP ``n_features -> *hidden_sizes -> n_classes`` with ReLU (and optional dropout) between
    layers; it returns logits of shape ``(batch, n_classes)``.

    Examples
    --------
    >>> net = mlp_classifier(10, (32,), 3)
    >>> net(torch.zeros(4, 10)).shape
    torch.Size([4, 3])
    """
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    widths = [int(n_features), *(int(h) for h in hidden_sizes)]
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(widths):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(widths[-1], int(n_classes)))
    return nn.Sequential(*layers)


def _pooled(size: int, n_blocks: int) -> int:
    for _ in range(n_blocks):
        size = math.ceil(size / 2)
    return size


class ConvClassifier(nn.Module):
    """A small convolutional classifier for images ``(batch, channels, height, width)``.

    Each block is a 3x3 convolution (padding 1), ReLU and 2x2 max-pooling (rounding up, so any
    size of at least 1 pixel works); then a hidden fully connected layer and the logits. With the
    default widths a 28x28 image goes 28 -> 14 -> 7, 16 and 32 channels: about 0.2 M parameters,
    enough to classify handwritten digits at 98-99% while training in about a minute on one CPU core.

    Parameters
    ----------
    in_channels, height, width : int
        Shape of one input image.
    n_classes : int
        Number of outputs (logits).
    channels : sequence of int
        Output channels of each convolutional block.
    hidden : int
        Width of the fully connected layer before the logits.
    dropout : float
        Dropout probability before each fully connected layer (0 = none).
    """

    def __init__(self, in_channels: int, height: int, width: int, n_classes: int,
                 channels: Sequence[int] = (16, 32), hidden: int = 128, dropout: float = 0.0):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
        self.input_shape = (int(in_channels), int(height), int(width))
        blocks: list[nn.Module] = []
        previous = int(in_channels)
        for c in channels:
            blocks += [nn.Conv2d(previous, int(c), kernel_size=3, padding=1), nn.ReLU(),
                       nn.MaxPool2d(2, ceil_mode=True)]
            previous = int(c)
        self.features = nn.Sequential(*blocks)
        flat = previous * _pooled(int(height), len(channels)) * _pooled(int(width), len(channels))
        head: list[nn.Module] = [nn.Flatten()]
        if dropout:
            head.append(nn.Dropout(dropout))
        head += [nn.Linear(flat, int(hidden)), nn.ReLU()]
        if dropout:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(int(hidden), int(n_classes)))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The fully connected layer's activations, from which the logits are computed."""
        return self.head[:-1](self.features(x))


def quarter_turns(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Each square image of ``(batch, channels, side, side)`` rotated by its own ``turns`` (0-3)
    quarter turns."""
    rotated = images.clone()
    for k in (1, 2, 3):
        chosen = turns == k
        if chosen.any():
            rotated[chosen] = torch.rot90(images[chosen], k, dims=(2, 3))
    return rotated


class WithRotationHead(nn.Module):
    """A :class:`ConvClassifier` with a second head that says by how many quarter turns an image
    was rotated: a self-supervised task trained beside the classes (Hendrycks et al., 2019,
    "Using self-supervised learning can improve model robustness and uncertainty"). Its features
    must then describe the shapes of the known classes, not merely what tells them apart, so they
    respond less to unknown classes. Used for training only; ``forward`` gives the class logits."""

    def __init__(self, classifier: ConvClassifier):
        super().__init__()
        self.classifier = classifier
        self.rotation = nn.Linear(classifier.head[-1].in_features, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)

    def logits_and_rotation_logits(self, x: torch.Tensor, rotated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits of ``x`` and rotation logits of ``rotated``, in one pass through the trunk."""
        hidden, rotation_logits = self.hidden_and_rotation_logits(x, rotated)
        return self.classifier.head[-1](hidden), rotation_logits

    def hidden_and_rotation_logits(self, x: torch.Tensor, rotated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last hidden layer of ``x`` and rotation logits of ``rotated``, in one pass through the trunk."""
        hidden = self.classifier.hidden(torch.cat([x, rotated]))
        return hidden[:len(x)], self.rotation(hidden[len(x):])


class WithEnergyLogistic(nn.Module):
    """A classifier (or a :class:`WithRotationHead`) with the two numbers of a logistic regression
    on its energy, ``sigmoid(exp(log_slope) * logsumexp(logits) + bias)`` = the probability that a
    row is of the known classes rather than a virtual outlier (VOS, Du et al., 2022: the
    uncertainty loss; see :mod:`oddkit.detectors.vos`). The slope is kept positive (it starts at
    1, the bias at 0): the loss can then only teach what the energy score reads, a higher
    ``logsumexp`` for the known classes; with a free slope, as in the paper, a slope that starts
    or turns negative teaches the opposite. Used for training only; ``forward`` gives the class
    logits."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.log_slope = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def inside_logit(self, logits: torch.Tensor) -> torch.Tensor:
        """The logistic regression's logit (log-odds of "known classes") of each row of ``logits``."""
        return self.log_slope.exp() * torch.logsumexp(logits, dim=1) + self.bias


def random_shifts(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``(batch, channels, height, width)`` moved by its own random whole number of
    pixels, at most ``max_shift`` along each axis; the uncovered edge repeats the border pixels
    (background, for digits and most centred objects). A classic augmentation: the classifier
    learns the classes rather than the exact positions of its few training images."""
    n, _, height, width = images.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator).to(images)
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    # In affine_grid's [-1, 1] coordinates one pixel is 2 / size; whole-pixel moves land on pixel
    # centres, so nearest sampling copies pixels exactly.
    theta[:, 0, 2] = shifts[:, 0] * (2.0 / width)
    theta[:, 1, 2] = shifts[:, 1] * (2.0 / height)
    grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return nn.functional.grid_sample(images, grid, mode="nearest", padding_mode="border", align_corners=False)


def mix_with_outliers(x: torch.Tensor, outliers: torch.Tensor, how: str,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each normal row of ``x`` mixed with the outlier row beside it, and how much of the normal row
    is left in it (``lam``, drawn uniformly from [0, 1) per row): Mixture Outlier Exposure (Zhang
    et al., 2023), which trains the output towards ``lam`` x the row's class + ``(1 - lam)`` x
    uniform. The mixtures fill the space between the known classes and the outliers, where inputs
    that resemble a known class (an unknown digit) lie. ``how="mixup"`` blends the two rows;
    ``"cutmix"`` pastes a random rectangle of the outlier image into the normal one (a random
    subset of columns for tables), ``lam`` being the share of the normal row kept."""
    lam = torch.rand(x.shape[0], generator=generator).to(x)
    if how == "mixup":
        shape = (-1,) + (1,) * (x.dim() - 1)
        return lam.view(shape) * x + (1 - lam.view(shape)) * outliers, lam
    if x.dim() == 2:  # a table: each column comes from the outlier row with probability 1 - lam
        from_outlier = torch.rand(x.shape, generator=generator).to(x) >= lam[:, None]
        return torch.where(from_outlier, outliers, x), 1 - from_outlier.to(x).mean(dim=1)
    height, width = x.shape[-2:]
    side = torch.sqrt(1 - lam)  # the rectangle covers about 1 - lam of the image
    centre = torch.rand(x.shape[0], 2, generator=generator).to(x) * torch.tensor([height, width]).to(x)
    half = torch.stack([side * height, side * width], dim=1) / 2
    low, high = (centre - half).round().clamp(min=0), (centre + half).round()
    rows, cols = torch.arange(height).to(x), torch.arange(width).to(x)
    in_rows = (rows >= low[:, :1]) & (rows < high[:, :1])
    in_cols = (cols >= low[:, 1:]) & (cols < high[:, 1:])
    box = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
    return torch.where(box, outliers, x), 1 - box.to(x).mean(dim=(1, 2, 3))


def members_of(model: nn.Module) -> list[nn.Module]:
    """The networks of a :class:`MeanLogits` ensemble, or the single network itself."""
    return list(model.members) if isinstance(model, MeanLogits) else [model]


def hidden_features(member: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A classifier's last hidden layer, the activations its logits are computed from: the
    :class:`ConvClassifier`'s fully connected layer, or all but the last layer of an MLP from
    :func:`mlp_classifier`."""
    return member.hidden(x) if isinstance(member, ConvClassifier) else member[:-1](x)


def last_layer(member: nn.Module) -> nn.Linear:
    """The layer that turns a classifier's last hidden layer (:func:`hidden_features`) into logits."""
    return member.head[-1] if isinstance(member, ConvClassifier) else member[-1]


def logits_with_capped_features(member: nn.Module, x: torch.Tensor, cap: float) -> torch.Tensor:
    """A classifier's logits computed from its last hidden layer capped at ``cap`` (ReAct, Sun et
    al., 2021): unusually large activations, which unknown inputs provoke more often than known
    ones, no longer make the logits large."""
    return last_layer(member)(hidden_features(member, x).clamp(max=cap))


def ensemble_logits(model: nn.Module, x: torch.Tensor, caps: Sequence[float] | None = None) -> torch.Tensor:
    """The mean logits of a :class:`MeanLogits` ensemble's members (or the single network's), each
    member's last hidden layer capped at its own entry of ``caps`` when given."""
    members = members_of(model)
    if caps is None:
        return torch.stack([member(x) for member in members]).mean(dim=0)
    return torch.stack([logits_with_capped_features(m, x, cap) for m, cap in zip(members, caps)]).mean(dim=0)


class MeanLogits(nn.Module):
    """Independently trained classifiers as one: the mean of their logits (a deep ensemble,
    Lakshminarayanan et al., 2017). Where the members disagree, on inputs unlike their training
    data, the averaged logits flatten, which is what the open-set scores read."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ensemble_logits(self, x)
