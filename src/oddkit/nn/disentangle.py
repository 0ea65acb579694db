"""An auto-encoder whose code is split into a class part and a style part, and the losses that split it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from oddkit.nn.autoencoder import AutoEncoder, mlp


class SplitCodeAutoEncoder(AutoEncoder):
    """An :class:`AutoEncoder` whose code is ``[class part | style part]``, with an adversary.

    The first ``class_dim`` numbers of the code are meant to carry what the class labels name
    (which digit, which speaker), the rest everything else (how it is written or said). The
    ``adversary`` is a small MLP that tries to tell the class from the style part alone; training
    makes it fail (see :func:`disentangling_losses`). Codes and reconstructions have the shapes
    :class:`AutoEncoder` gives them: ``(n_members, batch, ...)``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int, class_dim: int, n_classes: int,
                 n_members: int = 1, adversary_width: int = 64):
        super().__init__(encoder, decoder, n_members)
        if not 1 <= class_dim < latent_dim:
            raise ValueError(f"class_dim must be between 1 and latent_dim - 1 = {latent_dim - 1}, got {class_dim}")
        self.class_dim = int(class_dim)
        self.adversary = mlp((latent_dim - self.class_dim, adversary_width, int(n_classes)), n_members)

    def split(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``(..., latent_dim)`` -> their class part and style part."""
        return codes[..., :self.class_dim], codes[..., self.class_dim:]

    @staticmethod
    def join(class_part: torch.Tensor, style_part: torch.Tensor) -> torch.Tensor:
        return torch.cat([class_part, style_part], dim=-1)


def split_code_autoencoder(autoencoder: AutoEncoder, latent_dim: int, class_dim: int, n_classes: int) -> SplitCodeAutoEncoder:
    """The networks of ``autoencoder`` (MLP or convolutional) with a split code and an adversary."""
    return SplitCodeAutoEncoder(autoencoder.encoder, autoencoder.decoder, latent_dim, class_dim, n_classes,
                                autoencoder.n_members)


def same_class_partners(classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each row, the index of another row of the same class, drawn at random (itself when it
    is the only one of its class): rows are shuffled within their class and each takes the next."""
    n = classes.shape[0]
    noise = torch.rand(n, generator=generator).to(classes.device)
    order = torch.argsort(classes.to(torch.float64) + noise.to(torch.float64) * 0.5)
    sorted_classes = classes[order]
    _, counts = torch.unique_consecutive(sorted_classes, return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    sizes = torch.repeat_interleave(counts, counts)
    position = torch.arange(n, device=classes.device)
    next_in_class = starts + (position - starts + 1) % sizes
    partners = torch.empty_like(order)
    partners[order] = order[next_in_class]
    return partners


def disentangling_losses(module: SplitCodeAutoEncoder, source: torch.Tensor, target: torch.Tensor,
                         classes: torch.Tensor, generator: torch.Generator, *, swap_weight: float,
                         adversary_weight: float) -> torch.Tensor:
    """Per-row training loss of a split-code auto-encoder (mean over members and columns).

    - Reconstruction: ``target`` from the code of ``source`` (``source`` may be a corrupted copy).
    - Swap (``swap_weight``): ``target`` again, from its own style part joined to the class part
      of another row of the same class. The class part must then hold only what rows of a class
      share, and everything particular to a row has to go through the style part.
    - Cycle (same weight, training only): each row's style part is joined to the class part of a
      row drawn at random (often of another class), decoded and encoded again; the new code's
      class part should be the drawn row's and its style part the row's own. The swap term only
      ever decodes same-class pairs; this one asks the decoder to obey a class part that
      disagrees with where the style part came from, which is what a swap at use time does.
    - Adversary (``adversary_weight``): the adversary learns to predict the class from the style
      part (its own cross-entropy, on a detached code), while the encoder is trained to make the
      adversary's prediction flat (the cross-entropy of a uniform target under the adversary's
      current weights, which this term does not move). Without it the style part could carry the
      class too, and a swap would change nothing.

    In evaluation mode only the reconstruction and swap terms are computed (they are what early
    stopping should watch; the cycle and adversary terms depend on random pairings and on the
    adversary's current state, which would make the held-out loss noisy).
    """
    codes = module.encode(source)
    loss = (module.decode(codes) - target).pow(2).mean(dim=(0, 2))
    class_part, style_part = module.split(codes)
    if swap_weight:
        partner = same_class_partners(classes, generator)
        swapped = module.decode(module.join(class_part[:, partner], style_part))
        loss = loss + float(swap_weight) * (swapped - target).pow(2).mean(dim=(0, 2))
        if module.training:
            other = torch.randperm(classes.shape[0], generator=generator).to(classes.device)
            crossed_class, crossed_style = module.split(module.encode(
                module.decode(module.join(class_part[:, other], style_part))))
            # Detached targets: the re-encoded parts must come back to the originals, not the
            # originals move towards whatever the decoder made of them.
            cycle = ((crossed_class - class_part[:, other].detach()).pow(2).mean(dim=(0, 2))
                     + (crossed_style - style_part.detach()).pow(2).mean(dim=(0, 2)))
            loss = loss + float(swap_weight) * cycle
    if module.training and adversary_weight:
        # The adversary's cross-entropy reaches only its own weights (its input is detached), so
        # it needs no weight; the encoder feels only the confusion term.
        members = classes.expand(module.n_members, -1).reshape(-1)
        guesses = module.adversary(style_part.detach())
        adversary_loss = F.cross_entropy(guesses.reshape(members.shape[0], -1), members, reduction="none")
        frozen = {name: p.detach() for name, p in module.adversary.named_parameters()}
        fooled = functional_call(module.adversary, frozen, (style_part,))
        confusion = -F.log_softmax(fooled, dim=-1).mean(dim=-1)
        loss = loss + (adversary_loss.reshape(module.n_members, -1)
                       + float(adversary_weight) * confusion).mean(dim=0)
    return loss

