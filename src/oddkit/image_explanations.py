"""Where in an image its anomaly score comes from: per-pixel maps and the regions that add most.

A share per pixel column says little to a person looking at a defect; :func:`explain_images`
answers *where* instead: for each image a map ``(H, W)`` of each pixel's contribution to its score
(channels summed), and :func:`top_regions` the square patches of the map that add most, as
bounding boxes in pixel coordinates. The method follows the score, as for tables:

- **Auto-encoders** (AutoEncoderDetector on images, VQ-VAE, disentangled): the score is the mean
  of the pixels' squared reconstruction errors, so each pixel's error divided by the number of
  values is an exact split (the map sums to the score; a VQ-VAE's code rarity belongs to no pixel
  and is left out). What the network could not rebuild is where the image departs from normal.
- **VAEDetector**: the Bernoulli reconstruction term of the negative ELBO per pixel,
  ``BCE(x, p) - H(x)`` (the Kullback-Leibler divergence from the decoded pixel to the pixel,
  >= 0); the map sums to the score less ``beta`` x the code's KL term, which belongs to no pixel.
- **KNNDetector** on pixels: the squared difference of each pixel to the training image(s) the
  score is taken from (as for tables), scaled to sum to the score.
- **GradientKNNDetector** (oddkit's default for images): the same split in the space it measures,
  the histograms of oriented gradients: each cell's squared differences to the neighbours' cells,
  summed over orientations, spread over the pixels that vote into the cell (with their bilinear
  weights under ``spatial_binning``) and scaled to sum to the score. Its resolution is the cell. An
  image scored as out of range for its brightness or contrast (``intensity_guard``) keeps this map,
  scaled to its raised score: it shows where the image's edges differ, not that its brightness does
  (which is why it was raised; ``GradientKNNDetector.out_of_intensity_range`` says which images
  were). A blank one, without edges, shows where its neighbours have the edges it lacks.
- **Everything else** (TransformationDetector, ClassifierConfidenceDetector on images, and any
  detector with ``method="occlusion"``): occlusion (Zeiler and Fergus, 2014). Each square patch of
  ``patch_size`` pixels, moved by half its side, is painted over with the image's own median value
  per channel and the image scored again; a pixel's value is the mean drop of the score over the
  patches that cover it, in the score's units (negative where hiding the patch makes the image look
  *less* normal). These detectors have no per-pixel term to split, and keep no training images
  (a mean training image as the filler would need them in every saved model); the median is the
  image's commonest tone — the background of an object on a plain background — so a painted patch
  shows "nothing here" without adding a brightness the image does not have. Occlusion finds what
  is there that should not be; it cannot point at something missing (an absent part), which a
  reconstruction error can. It costs one score per patch position (about ``(2 H / patch_size)^2``
  per image).
- **EnsembleDetector**: each member explained by its own method, its map made shares of its
  score and weighted as the members' scores are combined: with ``combine="max"`` the map of the
  member whose normalised score is the image's; with ``"mean"``, the members' shares times their
  normalised scores over the number of members (for exact members the map then sums to the
  ensemble's score).

References: Zeiler, M. D. and Fergus, R. "Visualizing and understanding convolutional networks."
ECCV, 2014.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["IMAGE_METHODS", "ImageExplanation", "ImageRegion", "default_patch_size", "explain_images",
           "explain_scored_images", "intensity_notes", "top_regions"]

IMAGE_METHODS = ("auto", "occlusion")
"""What :func:`explain_images` takes as ``method``: each detector's own (module notes), or occlusion for any."""

OCCLUSION_CHUNK_VALUES = 2**22
"""Pixel values of occluded copies scored at once by :func:`explain_images` (16 MB of float32; at
most 4,096 copies): a detector may hold several times that while scoring them (the
TransformationDetector scores 8 transformed copies of each)."""


@dataclass
class ImageExplanation:
    """What :func:`explain_images` returns.

    Attributes
    ----------
    maps : ndarray of shape (n_images, H, W), float64
        Each pixel's contribution to its image's score (channels summed), in the score's units; how
        it is computed, what it sums to and whether it can be negative: see ``method`` and the
        module notes.
    scores : ndarray of shape (n_images,), float64
        The images' scores, as ``decision_function`` gives them.
    method : str
        ``"reconstruction"``, ``"neighbours"``, ``"gradient-cells"``, ``"occlusion"`` or
        ``"ensemble"``.
    description : str
        One line saying what a map's values are, for a person.
    patch_size : int
        The side of the occluded patches, and the side of the regions :func:`top_regions` finds
        by default.
    notes : tuple of (str or None)
        Per image, what its map cannot show, or None: for a :class:`~oddkit.GradientKNNDetector` (alone or
        in an ensemble) an image raised for its brightness or contrast (``intensity_guard``) is noted
        with the statistic out of range, its value and the bounds (:func:`intensity_notes`).
    """

    maps: np.ndarray
    scores: np.ndarray
    method: str
    description: str
    patch_size: int
    notes: tuple = ()


@dataclass(frozen=True)
class ImageRegion:
    """A square patch of an image's map that adds much to its score (:func:`top_regions`).

    Attributes
    ----------
    left, top, right, bottom : int
        The patch's bounding box in pixels of the map (right and bottom exclusive, as Pillow's
        boxes): columns ``left .. right - 1``, rows ``top .. bottom - 1``.
    share : float
        The patch's part of the map's positive mass, in [0, 1].
    """

    left: int
    top: int
    right: int
    bottom: int
    share: float


def default_patch_size(image_shape) -> int:
    """The patch side :func:`explain_images` uses by default: a seventh of the image's shorter side,
    at least 2 (4 for 28 x 28 images, 9 for 64 x 64); the cell of :class:`~oddkit.GradientKNNDetector`."""
    return max(2, min(int(v) for v in tuple(image_shape)[-2:]) // 7)


def _check_patch_size(patch_size, image_shape) -> int:
    from oddkit.exceptions import ParameterError

    if patch_size is None:
        return default_patch_size(image_shape)
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
        raise ParameterError(f"patch_size must be a positive integer (pixels), got {patch_size!r}")
    return int(patch_size)


def explain_images(detector, X, *, method: str = "auto", patch_size: int | None = None) -> ImageExplanation:
    """Where in each image its anomaly score comes from: a per-pixel map for every image.

    Parameters
    ----------
    detector : BaseDetector
        A detector fitted on images (AutoEncoderDetector and its family, KNNDetector,
        GradientKNNDetector, TransformationDetector, ClassifierConfidenceDetector, EnsembleDetector).
    X : ndarray of shape (n, H, W) or (n, C, H, W)
        Images, as :meth:`decision_function` takes them (the training images' shape).
    method : {"auto", "occlusion"}, default="auto"
        ``"auto"``: the detector's own split of its score where it has one (reconstruction error,
        distances to the neighbours), occlusion otherwise (see the module notes for each detector
        and why); ``"occlusion"``: occlusion for any detector (model-agnostic, slower).
    patch_size : int, optional
        Side of the occluded patches in pixels. Default: :func:`default_patch_size`.

    Returns
    -------
    ImageExplanation
        ``maps`` (n, H, W), ``scores``, ``method``, ``description`` and ``patch_size``.

    Raises
    ------
    ExplainError
        ``detector`` was not fitted on images.
    ParameterError
        An unknown ``method``, or a ``patch_size`` that is not a positive integer.
    ColumnMismatchError, DataError
        Images that ``decision_function`` refuses (another shape, values outside [0, 1], NaN).

    Examples
    --------
    >>> import numpy as np
    >>> from oddkit import KNNDetector
    >>> from oddkit.image_explanations import explain_images, top_regions
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 12, 12)) * 0.1
    >>> detector = KNNDetector().fit(X)
    >>> odd = X[:1].copy()
    >>> odd[0, 3:5, 8:10] = 1.0                    # a bright 2x2 square: rows 3-4, columns 8-9
    >>> explanation = explain_images(detector, odd)
    >>> explanation.method, explanation.patch_size
    ('neighbours', 2)
    >>> region = top_regions(explanation.maps[0], explanation.patch_size)[0]
    >>> (region.left, region.top, region.right, region.bottom)
    (8, 3, 10, 5)
    """
    return explain_scored_images(detector, X, method=method, patch_size=patch_size)


def explain_scored_images(detector, X, scores: np.ndarray | None = None, *, method: str = "auto",
                          patch_size: int | None = None) -> ImageExplanation:
    """:func:`explain_images` for images whose ``scores`` (``detector.decision_function(X)``) the caller has
    already computed (the scoring service), so that they are not computed twice; None computes them."""
    from sklearn.utils.validation import check_is_fitted

    from oddkit.exceptions import ExplainError, ParameterError

    check_is_fitted(detector)
    shape = getattr(detector, "image_shape_", None)
    if shape is None:
        raise ExplainError(f"{type(detector).__name__} was not fitted on images; explain its rows with "
                           "detector.explain(X)")
    if method not in IMAGE_METHODS:
        raise ParameterError(f"explain_images: method must be one of {IMAGE_METHODS}, got {method!r}")
    shape = tuple(int(v) for v in shape)
    patch = _check_patch_size(patch_size, shape)
    Z = detector._prepare(X, reset=False)  # validated as decision_function validates: (n, C*H*W) in [0, 1]
    images = Z.reshape(len(Z), *shape)
    scores = np.asarray(detector.decision_function(images) if scores is None else scores, dtype=np.float64)
    maps, kind, description = _image_maps(detector, Z, images, scores, method, patch)
    return ImageExplanation(maps=maps, scores=scores, method=kind, description=description, patch_size=patch,
                            notes=tuple(intensity_notes(detector, images)))


def intensity_notes(detector, images: np.ndarray) -> list[str | None]:
    """Per image, why a :class:`~oddkit.GradientKNNDetector` raised its score for its intensities (its
    ``intensity_guard``), or None: the first channel statistic out of range, its value and the in-range
    bounds (the training range widened by ``INTENSITY_MARGIN`` of itself). An ensemble is asked through its
    members; other detectors give None for every image.

    Parameters
    ----------
    detector : BaseDetector
        A detector fitted on images.
    images : ndarray of shape (n, C, H, W)
        Images as the detector reads them (values in [0, 1]).

    Returns
    -------
    list of (str or None)
        E.g. ``"brightness (mean) 0.87 is out of the training images' range, 0.03 to 0.19 with its margin;
        the heat map shows edges only"``.
    """
    from oddkit.detectors.ensemble import EnsembleDetector
    from oddkit.detectors.gradients import GradientKNNDetector, intensity_statistics

    notes: list[str | None] = [None] * len(images)
    guards = [m for m in (detector.members_ if isinstance(detector, EnsembleDetector) else [detector])
              if isinstance(m, GradientKNNDetector) and getattr(m, "intensity_bounds_", None) is not None]
    statistics = intensity_statistics(images) if guards else None
    channels = images.shape[1]
    names = [("brightness (mean)" if k == 0 else "contrast (standard deviation)")
             + ("" if channels == 1 else f" of channel {c}") for k in range(2) for c in range(channels)]
    for guard in guards:
        low, high = guard.intensity_bounds_
        for i, row in enumerate(statistics):
            if notes[i] is not None:
                continue
            out = np.flatnonzero((row < low) | (row > high))
            if out.size:
                j = out[0]
                notes[i] = (f"{names[j]} {row[j]:.3g} is out of the training images' range, {low[j]:.3g} to "
                            f"{high[j]:.3g} with its margin; scored as an anomaly for that, which the heat map "
                            "(edges only) does not show")
    return notes


def _image_maps(detector, Z, images, scores, method, patch) -> tuple[np.ndarray, str, str]:
    """(maps (n, H, W) in score units, method key, description) for ``detector`` (see the module notes)."""
    from oddkit.detectors.autoencoder import AutoEncoderDetector
    from oddkit.detectors.ensemble import EnsembleDetector
    from oddkit.detectors.gradients import GradientKNNDetector
    from oddkit.detectors.knn import KNNDetector
    from oddkit.detectors.vae import VAEDetector

    n, channels, height, width = images.shape
    if method == "occlusion":
        return _occlusion(detector.decision_function, images, scores, patch)
    if isinstance(detector, EnsembleDetector):
        return _ensemble_maps(detector, Z, images, patch)
    if isinstance(detector, VAEDetector):
        per_value = detector._map_chunks(Z, lambda x: _vae_pixel_terms(detector, x))
        return (per_value.reshape(images.shape).sum(axis=1), "reconstruction",
                "each pixel's term of the VAE's Bernoulli reconstruction loss (the map sums to the score less "
                "beta x the code's KL term)")
    if isinstance(detector, AutoEncoderDetector):
        per_value = detector._map_chunks(Z, detector._normalized_errors) / Z.shape[1]
        rest = " less the code rarity" if float(getattr(detector, "rarity_weight", 0) or 0) else ""
        return (per_value.reshape(images.shape).sum(axis=1), "reconstruction",
                f"each pixel's squared reconstruction error over the number of values (the map sums to the "
                f"score{rest})")
    if isinstance(detector, GradientKNNDetector):
        return (_scaled_to(_gradient_cell_maps(detector, Z), scores), "gradient-cells",
                "the distance between gradient histograms split by cell and spread over each cell's pixels (the "
                "map sums to the score)")
    if isinstance(detector, KNNDetector):
        contributions, _ = detector._explain_contributions(Z)
        return (_scaled_to(contributions.reshape(images.shape).sum(axis=1), scores), "neighbours",
                "each pixel's squared difference to the training image(s) the score is taken from (the map sums "
                "to the score)")
    return _occlusion(detector.decision_function, images, scores, patch)


def _scaled_to(maps: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Non-negative maps scaled so that each sums to its image's score (all-zero maps stay zero)."""
    maps = np.asarray(maps, dtype=np.float64)
    totals = maps.reshape(len(maps), -1).sum(axis=1)
    factor = np.divide(scores, totals, out=np.zeros_like(totals), where=totals > 0)
    return maps * factor[:, None, None]


def _vae_pixel_terms(detector, x):
    """Per member-mean value of the VAE's reconstruction loss ``-log p(x_j | z)`` up to its constant,
    at the posterior mean (as the score takes it): (rows, values)."""
    import torch.nn.functional as F

    from oddkit.nn.vae import bernoulli_entropy

    module = detector.model_
    mean, _ = module.encode_distribution(x)
    raw = module.decode_raw(mean)
    target = x.unsqueeze(0).expand_as(raw)
    if module.likelihood == "gaussian":
        terms = 0.5 * (raw - target).pow(2)
    else:
        terms = F.binary_cross_entropy_with_logits(raw, target, reduction="none") - bernoulli_entropy(x).unsqueeze(0)
    return terms.double().mean(dim=0)


def _gradient_cell_maps(detector, Z: np.ndarray) -> np.ndarray:
    """GradientKNNDetector: the squared differences to the neighbours in histogram space (as
    KNNDetector splits them), summed per cell, spread over the pixels voting into each cell."""
    from oddkit.detectors.gradients import _cell_shares
    from oddkit.detectors.knn import KNNDetector

    _, height, width = detector.image_shape_
    features = detector._features(Z)
    contributions, _ = KNNDetector._explain_contributions(detector, features)
    size = detector.cell_size_
    cell_h, cell_w = min(size, height), min(size, width)
    cells_h, cells_w = height // cell_h, width // cell_w
    per_cell = contributions.reshape(len(Z), cells_h, cells_w, -1).sum(axis=3)

    def weights(cells: int, cell: int) -> np.ndarray:
        if detector.spatial_binning:
            shares = _cell_shares(cells, cell).astype(np.float64)
        else:
            shares = np.zeros((cells * cell, cells))
            shares[np.arange(cells * cell), np.arange(cells * cell) // cell] = 1.0
        mass = shares.sum(axis=0, keepdims=True)
        return np.divide(shares, mass, out=np.zeros_like(shares), where=mass > 0)  # each cell's pixels sum to 1

    rows, cols = weights(cells_h, cell_h), weights(cells_w, cell_w)
    maps = np.zeros((len(Z), height, width))
    maps[:, :cells_h * cell_h, :cells_w * cell_w] = np.einsum("ri,nij,cj->nrc", rows, per_cell, cols, optimize=True)
    return maps


def _positions(side: int, patch: int) -> list[int]:
    """Top (or left) edges of patches of ``patch`` pixels moved by half their side, the last one
    flush with the border."""
    step = max(1, patch // 2)
    starts = list(range(0, side - patch + 1, step))
    if starts[-1] != side - patch:
        starts.append(side - patch)
    return starts


def _occlusion(score: Callable[[np.ndarray], np.ndarray], images: np.ndarray, scores: np.ndarray,
               patch: int) -> tuple[np.ndarray, str, str]:
    """Occlusion maps (module notes): each patch painted with the image's median per channel."""
    n, channels, height, width = images.shape
    ph, pw = min(patch, height), min(patch, width)
    boxes = [(t, l) for t in _positions(height, ph) for l in _positions(width, pw)]
    cover = np.zeros((height, width))
    for t, l in boxes:
        cover[t:t + ph, l:l + pw] += 1.0
    fill = np.median(images.reshape(n, channels, -1), axis=2).astype(np.float32)
    pairs = [(i, k) for i in range(n) for k in range(len(boxes))]
    chunk = max(1, min(4096, OCCLUSION_CHUNK_VALUES // images[0].size))
    drops = np.empty(len(pairs))
    for begin in range(0, len(pairs), chunk):
        part = pairs[begin:begin + chunk]
        copies = images[[i for i, _ in part]].copy()
        for row, (i, k) in enumerate(part):
            t, l = boxes[k]
            copies[row, :, t:t + ph, l:l + pw] = fill[i][:, None, None]
        drops[begin:begin + len(part)] = scores[[i for i, _ in part]] - np.asarray(score(copies), dtype=np.float64)
    drops = drops.reshape(n, len(boxes))
    maps = np.zeros((n, height, width))
    for k, (t, l) in enumerate(boxes):
        maps[:, t:t + ph, l:l + pw] += drops[:, k, None, None]
    return (maps / cover, "occlusion",
            f"the drop of the score when a {ph}x{pw} patch is painted with the image's median, averaged over the "
            "patches covering each pixel")


def _ensemble_maps(detector, Z, images, patch) -> tuple[np.ndarray, str, str]:
    """EnsembleDetector: each member's map as shares of its score, weighted as the scores combine."""
    from oddkit.detectors.ensemble import normalise_scores
    from oddkit.exceptions import ExplainError, MissingDependencyError

    n = len(Z)
    member_shares, normalised, kinds = [], [], []
    for member, quantiles in zip(detector.members_, detector.member_quantiles_):
        given = detector._member_input(member, Z)
        member_scores = np.asarray(member.decision_function(given), dtype=np.float64)
        if given.ndim == 4:  # a member fitted on images: its own method
            maps, kind, description = _image_maps(member, member._prepare(given, reset=False), given, member_scores,
                                                  "auto", patch)
        else:  # a member fitted on flat rows of pixels: its tabular split, pixels as columns
            try:
                maps = member._explain_shares(member._prepare(given, reset=False)).reshape(images.shape).sum(axis=1)
                kind = "columns"
            except (ExplainError, MissingDependencyError):  # no split of its own (or shap not installed)
                def flat_scores(copies, m=member):
                    return m.decision_function(copies.reshape(len(copies), -1))

                maps, kind, _ = _occlusion(flat_scores, images, member_scores, patch)
        totals = (maps if kind != "occlusion" else np.clip(maps, 0.0, None)).reshape(n, -1).sum(axis=1)
        member_shares.append(maps / np.where(totals > 0, totals, np.inf)[:, None, None])
        normalised.append(normalise_scores(member_scores, quantiles))
        kinds.append(f"{type(member).__name__}: {kind}")
    shares, normalised = np.stack(member_shares), np.stack(normalised)
    if len(shares) == 1 and given.ndim == 4:  # oddkit's default for images: one GradientKNNDetector
        return (shares[0] * normalised[0][:, None, None], kind,
                f"{description}, by its one member {type(detector.members_[0]).__name__}, in the ensemble's units")
    if detector.combine == "max":
        winner = normalised.argmax(axis=0)
        rows = np.arange(n)
        maps = shares[winner, rows] * normalised[winner, rows][:, None, None]
        how = "the map of the member whose normalised score is the image's score"
    else:
        maps = np.einsum("mn,mnhw->nhw", np.maximum(normalised, 0.0), shares) / len(shares)
        how = "the members' maps as shares of their scores, times their normalised scores, averaged"
    return maps, "ensemble", f"combine={detector.combine}: {how} ({'; '.join(kinds)})"


def top_regions(heat: np.ndarray, patch_size: int, n_regions: int = 1) -> list[ImageRegion]:
    """The square patches of a map that hold most of its positive mass, largest first, not overlapping.

    Parameters
    ----------
    heat : ndarray of shape (H, W)
        One image's map (:attr:`ImageExplanation.maps`).
    patch_size : int
        The side of the patches (at most the image's sides).
    n_regions : int, default=1
        How many patches to return: each the patch with the largest sum of the positive map among
        those that do not overlap the ones already chosen (fewer when no room is left).

    Returns
    -------
    list of ImageRegion
        Boxes in the map's pixel coordinates, with each box's share of the positive mass (0 for a
        map without any: then the first patch, at the top left).
    """
    heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
    if heat.ndim != 2:
        raise ValueError(f"heat must be one map (H, W), got shape {heat.shape}")
    height, width = heat.shape
    ph, pw = min(int(patch_size), height), min(int(patch_size), width)
    integral = np.zeros((height + 1, width + 1))
    integral[1:, 1:] = heat.cumsum(axis=0).cumsum(axis=1)
    sums = integral[ph:, pw:] - integral[:-ph, pw:] - integral[ph:, :-pw] + integral[:-ph, :-pw]
    total = heat.sum()
    found: list[ImageRegion] = []
    available = np.ones_like(sums, dtype=bool)
    while len(found) < n_regions and available.any():
        best = np.where(available, sums, -np.inf)
        top, left = np.unravel_index(int(np.argmax(best)), best.shape)
        share = float(sums[top, left] / total) if total > 0 else 0.0
        found.append(ImageRegion(int(left), int(top), int(left + pw), int(top + ph), min(max(share, 0.0), 1.0)))
        available[max(0, top - ph + 1):top + ph, max(0, left - pw + 1):left + pw] = False
    return found
