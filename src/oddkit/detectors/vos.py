"""Virtual outlier synthesis (VOS, Du et al., 2022): pseudo-anomalies in a classifier's feature space.

While :class:`~oddkit.ClassifierConfidenceDetector` trains with
``known_anomalies=PseudoAnomalies("vos")``, each member network keeps the last hidden layer of the
training rows it has just seen (a queue of the latest ``QUEUE_ROWS`` rows per class). After a
warm-up of ``WARMUP_EPOCHS`` epochs it models them as class-conditional Gaussians with one shared
covariance (the class means and the pooled covariance of the queues, plus ``JITTER`` times the
identity), and pairs every training row of a batch with a *virtual outlier* of its own class: the
least likely of ``CANDIDATES`` draws from that class's Gaussian, a point at the edge of the class
in feature space. The last layer turns the virtual outliers into logits, and a logistic regression
on the energy (``logsumexp`` of the logits) learns to tell the training rows from the virtual
outliers; its loss, weighted by the detector's ``exposure_weight``, makes the network give the
rows of the known classes a lower energy than anything at their edges. The logistic regression's
two numbers exist during training only.

The least likely of ``N`` draws is drawn directly rather than by making the ``N`` draws: a draw
``mean + L @ e`` of a Gaussian whose covariance is ``L @ L.T`` has the log-density
``const - |e|^2 / 2``, so the least likely of ``N`` draws is the one of largest ``|e|``: its
direction is uniform on the sphere, independent of its length, and its squared length is the
largest of ``N`` chi-square values, whose distribution function is ``F^N`` (``F``: the chi-square
one with as many degrees of freedom as features). Sampling ``u`` uniform and taking
``|e|^2 = F^-1(u^(1/N))`` gives exactly the point the paper keeps, at the cost of one draw.

Differences from the paper, for speed on CPUs: the Gaussians are refitted every ``REFIT_STEPS``
training steps (the paper: every step), and each training row gets its own virtual outlier (the
paper: one per class per step), as oddkit's outlier exposure pairs each training row with one
known anomaly. The paper warms up for 40 of 100 epochs; oddkit's classifiers stop early, often
after 5 to 20 epochs, so the warm-up is ``WARMUP_EPOCHS`` epochs. The logistic regression's slope
is kept positive (:class:`oddkit.nn.classifier.WithEnergyLogistic`): the paper's slope is free and
randomly initialised, so its loss can teach either direction while the energy score reads only one
(a higher ``logsumexp`` for the known classes); a check on one fold of ``benchmarks/open_set.py``'s
``selection-nslkdd`` found a network that had learnt a negative slope. What VOS buys, with either
slope: ``benchmarks/OPEN_SET.md`` (on NSL-KDD's held-out attack types it lowers the energy score's
AUROC).

References
----------
- Du, X., Wang, Z., Cai, M. and Li, Y. "VOS: learning what you don't know by virtual outlier
  synthesis." ICLR, 2022.
- Liu, W., Wang, X., Owens, J. and Li, Y. "Energy-based out-of-distribution detection."
  NeurIPS, 2020.
"""

from __future__ import annotations

import math

import numpy as np
import torch

QUEUE_ROWS = 1000  # features kept per class (the paper's sample_number)
CANDIDATES = 10_000  # each virtual outlier is the least likely of this many draws (the paper's sample_from)
WARMUP_EPOCHS = 2  # epochs of plain training before virtual outliers are used
REFIT_STEPS = 10  # training steps between refits of the Gaussians
JITTER = 1e-4  # added to the covariance's diagonal (the paper's 0.0001 * I)


class VirtualOutlierSynthesis:
    """The class-conditional Gaussians of one network's last hidden layer, and their least likely
    samples (see the module's docstring).

    Parameters
    ----------
    class_rows : sequence of int
        Training rows of each class (a class's queue holds at most this many features).
    n_features : int
        Width of the last hidden layer.
    warmup_steps : int
        Training steps before :meth:`sample` returns virtual outliers.
    candidates : int, default=CANDIDATES
        Each virtual outlier is the least likely of this many draws.
    queue_rows : int, default=QUEUE_ROWS
        Most features kept per class.
    refit_steps : int, default=REFIT_STEPS
        Training steps between refits of the means and the covariance.

    Examples
    --------
    >>> import torch
    >>> vos = VirtualOutlierSynthesis([50, 50], n_features=3, warmup_steps=0)
    >>> generator = torch.Generator().manual_seed(0)
    >>> features, classes = torch.randn(100, 3, generator=generator), torch.arange(100) % 2
    >>> vos.add(features, classes)
    >>> vos.sample(classes[:4], generator).shape
    torch.Size([4, 3])
    """

    def __init__(self, class_rows, n_features: int, warmup_steps: int, candidates: int = CANDIDATES,
                 queue_rows: int = QUEUE_ROWS, refit_steps: int = REFIT_STEPS):
        self.capacity = [max(1, min(int(queue_rows), int(n))) for n in class_rows]
        self.n_features = int(n_features)
        self.warmup_steps = int(warmup_steps)
        self.candidates = int(candidates)
        self.refit_steps = int(refit_steps)
        self.queues: list[torch.Tensor | None] = [None] * len(self.capacity)
        self.filled = [0] * len(self.capacity)
        self.position = [0] * len(self.capacity)
        self.steps = 0
        self.means: torch.Tensor | None = None
        self.cholesky: torch.Tensor | None = None

    def add(self, features: torch.Tensor, classes: torch.Tensor) -> None:
        """Put a batch's features (detached, (n, n_features)) into the queues of their classes."""
        features = features.detach()
        for code in torch.unique(classes).tolist():
            rows = features[classes == code][-self.capacity[code]:]
            if self.queues[code] is None:
                self.queues[code] = torch.zeros(self.capacity[code], self.n_features, dtype=features.dtype,
                                                device=features.device)
            at = (self.position[code] + torch.arange(len(rows), device=features.device)) % self.capacity[code]
            self.queues[code][at] = rows
            self.position[code] = (self.position[code] + len(rows)) % self.capacity[code]
            self.filled[code] = min(self.capacity[code], self.filled[code] + len(rows))

    def ready(self) -> bool:
        """Past the warm-up (``warmup_steps`` steps done), with every class's queue full."""
        return self.steps >= self.warmup_steps and all(f == c for f, c in zip(self.filled, self.capacity))

    def _refit(self) -> None:
        """Class means and the shared covariance's Cholesky factor, from the queues (float64)."""
        queues = [q.double() for q in self.queues]
        means = torch.stack([q.mean(dim=0) for q in queues])
        centred = torch.cat([q - m for q, m in zip(queues, means)])
        covariance = centred.T @ centred / len(centred)
        covariance += JITTER * torch.eye(self.n_features, dtype=covariance.dtype, device=covariance.device)
        self.means, self.cholesky = means, torch.linalg.cholesky(covariance)

    def sample(self, classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor | None:
        """One virtual outlier of each row's class (float, (n, n_features)); None during the
        warm-up. Counts one training step."""
        from scipy.stats import chi2

        ready = self.ready()
        self.steps += 1
        if not ready:
            return None
        if self.means is None or self.steps % self.refit_steps == 0:
            self._refit()
        n, device = len(classes), self.means.device
        direction = torch.randn(n, self.n_features, generator=generator, dtype=torch.float64)
        direction /= direction.norm(dim=1, keepdim=True).clamp(min=1e-12)
        u = torch.rand(n, generator=generator, dtype=torch.float64).clamp(min=1e-300).numpy()
        # Survival probability of the largest of N chi-square values: 1 - u^(1/N), without cancellation.
        survival = -np.expm1(np.log(u) / self.candidates)
        radius = torch.from_numpy(np.sqrt(chi2.isf(survival, self.n_features)))
        e = (direction * radius[:, None]).to(device)
        points = self.means[classes] + e @ self.cholesky.T
        return points.to(self.queues[0].dtype)


def warmup_steps(n_rows: int, batch_size: int, epochs: int = WARMUP_EPOCHS) -> int:
    """Training steps in ``epochs`` epochs of ``n_rows`` rows (as :func:`oddkit.train.fit_module`
    batches them)."""
    return epochs * math.ceil(n_rows / max(1, min(int(batch_size), int(n_rows))))
