"""Pseudo-anomalies: near-normal examples made from the training data alone (issue 23).

Outlier exposure (:class:`~oddkit.ClassifierConfidenceDetector`) and the auto-encoders' margin loss
learn from examples of anomalies passed as ``known_anomalies``. Most users have none; then
``known_anomalies="generate"`` (or a :class:`PseudoAnomalies` naming the method) makes them from
the training rows, in the detector's preprocessed space, and the same losses use them as they use
real ones:

- ``"vae-between"``: a small variational auto-encoder is trained on the rows; each pseudo-anomaly
  decodes a point on the segment between the codes (posterior means) of two training rows of
  different classes (of any two rows without classes), at a share drawn uniformly from
  ``BETWEEN_SHARES``: shapes between the classes, which belong to none of them.
- ``"vae-tail"``: the same VAE decodes codes from the tail of its prior ``N(0, I)``: a random
  direction at a radius beyond the prior's ``TAIL_QUANTILES[0]`` quantile (up to the
  ``TAIL_QUANTILES[1]`` one), where the decoder was never trained to be faithful.
- ``"permute"``: no model. Tables: each column taken from its own random training row (a sample of
  the product of the columns' marginal distributions, which breaks their dependence; Hempstalk et
  al., 2008). Images: each image cut into a ``JIGSAW_GRID`` x ``JIGSAW_GRID`` grid of tiles whose
  places are shuffled (local strokes and textures kept, the shape broken).
- ``"vos"`` (:class:`~oddkit.ClassifierConfidenceDetector` only): virtual outliers, made during
  training in the network's last hidden layer rather than in the data's space: the least likely
  samples of class-conditional Gaussians fitted to the training rows' features (Du et al., 2022;
  :mod:`oddkit.detectors.vos`). There are no rows to write, so :meth:`PseudoAnomalies.generate`
  and the auto-encoders refuse it.

Every pseudo-anomaly is clipped to the training rows' range (per column for tables, the pixels'
overall range for images), and none equals a training row: exact copies are dropped and more are
drawn, as many more as the share of copies so far says are needed (a table of a few small integer
scores, such as the nine 1-10 cytology scores of the Wisconsin breast-cancer data, recombines into
one of its own rows about 40% of the time). Only a generator that makes almost nothing new (fewer
than one row in ``MAX_DRAW_FACTOR`` differs from every training row, e.g. a table in which a single
column varies) is an error.

References
----------
- Kingma, D. P. and Welling, M. "Auto-encoding variational Bayes." ICLR, 2014.
- Hempstalk, K., Frank, E. and Witten, I. H. "One-class classification by combining density and
  class probability estimation." ECML PKDD, 2008.
- Lee, K., Lee, H., Lee, K. and Shin, J. "Training confidence-calibrated classifiers for
  detecting out-of-distribution samples." ICLR, 2018 (a generator of near-boundary samples; the
  motivation for ``"vae-between"``).
- Du, X., Wang, Z., Cai, M. and Li, Y. "VOS: learning what you don't know by virtual outlier
  synthesis." ICLR, 2022.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from oddkit.exceptions import DataError, ParameterError

GENERATE = "generate"
METHODS = ("vae-between", "vae-tail", "permute")  # made in the data's space, before training
FEATURE_METHODS = ("vos",)  # made in a classifier's feature space, during training
DEFAULT_METHOD = "permute"  # chosen on folds of the training split: benchmarks/OPEN_SET.md
DEFAULT_N_SAMPLES = 2000  # as many as the real exposure images of benchmarks/open_set.py
DEFAULT_VAE_EPOCHS = 20
BETWEEN_SHARES = (0.3, 0.7)
TAIL_QUANTILES = (0.99, 0.9999)
JIGSAW_GRID = 4
MAX_DRAW_FACTOR = 100  # at most this many rows drawn per pseudo-anomaly kept (copies of training rows are dropped)
ROUND_VALUES = 2**22  # most numbers drawn in one round of replacing copies (16 MiB of float32)


class PseudoAnomalies:
    """Pseudo-anomalies to generate from the training data, passed to ``fit`` as ``known_anomalies``.

    ``known_anomalies="generate"`` is ``PseudoAnomalies()``. See the module's docstring for the
    methods.

    Parameters
    ----------
    method : {"auto", "vae-between", "vae-tail", "permute", "vos"}, default="auto"
        How to make them; ``"auto"``: ``"permute"``, the best of the three data-space methods on
        the held-out digits of the training split of the open-set benchmark, and better than no
        exposure on every fold of it run since (``benchmarks/OPEN_SET.md``); also the cheapest (no
        model to train). ``"vos"``: virtual outliers in a classifier's feature space, for
        :class:`~oddkit.ClassifierConfidenceDetector` only (see the module's docstring); on the
        table protocol of the open-set benchmark it did worse than no exposure.
    n_samples : int, default=2000
        How many to make. Ignored by ``"vos"``, which pairs every training row of every batch
        with a virtual outlier of its own.
    epochs : int, default=20
        Most passes of the VAE over the training rows (the ``"vae-*"`` methods; early stopping on
        a held-out 10% usually ends sooner).
    random_state : int or None, default=None
        Seed; None: drawn from the detector's own seed, so that a seeded detector is reproducible.
        ``"vos"`` draws with the detector's training seed.

    Examples
    --------
    >>> import numpy as np
    >>> from oddkit import PseudoAnomalies
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> PseudoAnomalies("permute", n_samples=5, random_state=0).generate(X).shape
    (5, 3)
    """

    def __init__(self, method: str = "auto", n_samples: int = DEFAULT_N_SAMPLES, epochs: int = DEFAULT_VAE_EPOCHS,
                 random_state: int | None = None):
        self.method = method
        self.n_samples = n_samples
        self.epochs = epochs
        self.random_state = random_state

    def __repr__(self) -> str:
        return (f"PseudoAnomalies(method={self.method!r}, n_samples={self.n_samples!r}, epochs={self.epochs!r}, "
                f"random_state={self.random_state!r})")

    def _method(self) -> str:
        """The method actually used, after checking every parameter."""
        if self.method != "auto" and self.method not in METHODS + FEATURE_METHODS:
            raise ParameterError(f"PseudoAnomalies: method must be 'auto' or one of "
                                 f"{', '.join(METHODS + FEATURE_METHODS)}; got {self.method!r}")
        for name in ("n_samples", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ParameterError(f"PseudoAnomalies: {name} must be a positive integer, got {value!r}")
        if self.random_state is not None and (isinstance(self.random_state, bool)
                                              or not isinstance(self.random_state, Integral)):
            raise ParameterError(f"PseudoAnomalies: random_state must be an integer or None, got {self.random_state!r}")
        return DEFAULT_METHOD if self.method == "auto" else self.method

    def _rows_method(self) -> str:
        """:meth:`_method`, refusing the methods that make no rows."""
        method = self._method()
        if method in FEATURE_METHODS:
            raise ParameterError(f"PseudoAnomalies: method={method!r} makes virtual outliers in a classifier's "
                                 "feature space while it trains, not rows: only ClassifierConfidenceDetector.fit "
                                 f"uses it (known_anomalies=PseudoAnomalies({method!r})); to make rows, use one of "
                                 f"{', '.join(METHODS)}")
        return method

    def rows(self, Z: np.ndarray, classes: np.ndarray | None = None, image_shape: tuple[int, int, int] | None = None,
             seed: int = 0, n_threads: int | None = None) -> np.ndarray:
        """Pseudo-anomalies of preprocessed rows ``Z`` (float32 (n, d); images: flat ``C*H*W``
        pixels), float32 of shape (``n_samples``, d).

        ``classes``: each row's class code (optional); ``image_shape``: ``(C, H, W)`` when the rows
        are images; ``seed``: used when ``random_state`` is None. Raises ParameterError for
        ``"vos"``, whose virtual outliers are features, not rows."""
        method = self._rows_method()
        Z = np.ascontiguousarray(Z, dtype=np.float32)
        if Z.ndim != 2 or Z.shape[0] < 2:
            raise DataError(f"generating pseudo-anomalies needs at least 2 training rows, got {Z.shape[0]}")
        rng = np.random.default_rng(seed if self.random_state is None else int(self.random_state))
        n = int(self.n_samples)
        draw = _permute_draw(Z, image_shape) if method == "permute" else _vae_draw(
            Z, method, classes, image_shape, int(self.epochs), int(rng.integers(2**31 - 1)), n_threads)
        if image_shape is None:
            low, high = Z.min(axis=0), Z.max(axis=0)
        else:
            low, high = Z.min(), Z.max()
        seen = {row.tobytes() for row in Z}
        kept: list[np.ndarray] = []
        missing, drawn, new, budget = n, 0, 0, MAX_DRAW_FACTOR * n
        while missing and drawn < budget:
            # The first round draws exactly n (so that data without copies get the plain draw); later
            # ones as many as the share of new rows so far says will replace the copies, with 20% to
            # spare, so that even a generator copying most of the time needs few rounds.
            size = missing if not drawn else int(np.ceil(1.2 * missing * drawn / max(new, 1))) + 1
            # A round holds at most ROUND_VALUES numbers (or n rows), so that wide images stay in memory.
            size = min(size, max(n, ROUND_VALUES // Z.shape[1]), budget - drawn)
            rows = np.clip(draw(size, rng), low, high).astype(np.float32)
            fresh = rows[[row.tobytes() not in seen for row in rows]]
            drawn, new = drawn + size, new + len(fresh)
            kept.append(fresh[:missing])
            missing -= len(kept[-1])
        if not missing:
            return np.concatenate(kept)
        raise DataError(f"the {method!r} pseudo-anomalies copied training rows: {new} of {drawn} drawn differed from "
                        f"every training row, too few for the {n} asked for; the training data vary too little to "
                        "make anything new from this way (for 'permute', fewer than two columns vary). Pass real "
                        "known anomalies, or generate with the 'vae-tail' method")

    def generate(self, X, classes=None, n_threads: int | None = None):
        """Pseudo-anomalies of a table or images, in the input's space.

        Parameters
        ----------
        X : table (DataFrame or 2-D array) or images (ndarray (n, H, W) or (n, C, H, W))
            Normal training data, preprocessed as oddkit's detectors do (tables: numeric columns
            standardised, categories one-hot; images: pixels in [0, 1]).
        classes : array-like of shape (n,), optional
            The class of each row (``"vae-between"`` pairs rows of different classes).
        n_threads : int, optional
            Torch threads for the VAE.

        Returns
        -------
        pandas.DataFrame or ndarray
            Tables: a DataFrame with ``X``'s columns (categorical ones as their most likely category)
            when ``X`` is a DataFrame, else a float64 array; images: float32 in [0, 1] in ``X``'s
            layout.

        Raises
        ------
        ParameterError
            A bad parameter, or ``method="vos"`` (virtual outliers are features, not rows).
        """
        self._rows_method()
        from oddkit.data.image_preprocess import ImagePreprocessor, is_image_array
        from oddkit.data.labels import encode_classes
        from oddkit.data.preprocess import TablePreprocessor

        images = is_image_array(X)
        preprocessor = ImagePreprocessor() if images else TablePreprocessor()
        Z = preprocessor.fit(X).transform(X)
        codes = None if classes is None else encode_classes(classes, Z.shape[0], "PseudoAnomalies.generate")[1]
        rows = self.rows(Z, codes, preprocessor.image_shape_ if images else None, n_threads=n_threads)
        out = preprocessor.inverse_transform(rows)
        if images:
            return out
        return out if hasattr(X, "columns") else out.to_numpy(dtype=np.float64)


def as_pseudo_anomalies(known_anomalies) -> PseudoAnomalies | None:
    """``known_anomalies`` as a :class:`PseudoAnomalies` (``"generate"`` is the default one), or
    None when it holds data. Any other string is refused."""
    if isinstance(known_anomalies, PseudoAnomalies):
        return known_anomalies
    if isinstance(known_anomalies, str):
        if known_anomalies != GENERATE:
            raise ParameterError(f"known_anomalies must be a table, images, 'generate' or a PseudoAnomalies; got the "
                                 f"string {known_anomalies!r}")
        return PseudoAnomalies()
    return None


def exposure_rows(detector, known_anomalies, Z: np.ndarray, classes: np.ndarray | None, seed: int) -> np.ndarray:
    """The preprocessed rows a detector's exposure loss uses: ``known_anomalies`` prepared as the
    training data were, or pseudo-anomalies generated from the training rows ``Z``."""
    spec = as_pseudo_anomalies(known_anomalies)
    if spec is None:
        return detector._prepare(known_anomalies, reset=False)
    shape = getattr(detector, "image_shape_", None) if detector._fitted_on_images() else None
    return spec.rows(Z, classes, None if shape is None else tuple(int(v) for v in shape), seed=seed,
                     n_threads=detector.n_threads)


def _permute_draw(Z: np.ndarray, image_shape):
    """``draw(n, rng)`` for ``"permute"``: product of the marginals (tables) or shuffled tiles (images)."""
    if image_shape is None:
        def draw(n, rng):
            picks = rng.integers(Z.shape[0], size=(n, Z.shape[1]))
            return Z[picks, np.arange(Z.shape[1])]
        return draw

    c, h, w = image_shape
    th, tw = max(1, h // JIGSAW_GRID), max(1, w // JIGSAW_GRID)
    gh, gw = h // th, w // tw
    n_tiles = gh * gw

    def draw(n, rng):
        images = Z[rng.integers(Z.shape[0], size=n)].reshape(n, c, h, w).copy()
        core = images[:, :, :gh * th, :gw * tw].reshape(n, c, gh, th, gw, tw).transpose(0, 2, 4, 1, 3, 5)
        tiles = core.reshape(n, n_tiles, c, th, tw)
        order = np.argsort(rng.random((n, n_tiles)), axis=1)
        # A shuffle that left every tile in place would copy the image.
        same = (order == np.arange(n_tiles)).all(axis=1)
        order[same] = np.roll(order[same], 1, axis=1)
        shuffled = tiles[np.arange(n)[:, None], order].reshape(n, gh, gw, c, th, tw).transpose(0, 3, 1, 4, 2, 5)
        images[:, :, :gh * th, :gw * tw] = shuffled.reshape(n, c, gh * th, gw * tw)
        return images.reshape(n, -1)
    return draw


def _vae_draw(Z, method, classes, image_shape, epochs, seed, n_threads):
    """``draw(n, rng)`` for the ``"vae-*"`` methods: a VAE trained on ``Z`` decodes codes between
    two rows' codes or in its prior's tail."""
    import warnings

    from oddkit.detectors.vae import VAEDetector

    inputs = Z if image_shape is None else Z.reshape(len(Z), *image_shape)
    vae = VAEDetector(epochs=epochs, patience=3, random_state=seed, n_threads=n_threads, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny training set's warnings are about the VAE, not the user's model
        vae.fit(inputs)

    def decoded(codes: np.ndarray) -> np.ndarray:
        return np.asarray(vae.inverse_transform(codes.astype(np.float32)), dtype=np.float32).reshape(len(codes), -1)

    if method == "vae-tail":
        def draw(n, rng):
            samples = vae.generate(n, random_state=int(rng.integers(2**31 - 1)), tail=True)
            return np.asarray(samples, dtype=np.float32).reshape(n, -1)
        return draw

    means = vae.transform(inputs)
    groups = None
    if classes is not None:
        classes = np.asarray(classes)
        groups = [np.flatnonzero(classes == c) for c in np.unique(classes)]
        groups = groups if len(groups) > 1 else None

    def draw(n, rng):
        if groups is None:
            first, second = rng.integers(len(Z), size=n), rng.integers(len(Z), size=n)
        else:
            # Two different classes per sample, then a row of each.
            a = rng.integers(len(groups), size=n)
            b = (a + rng.integers(1, len(groups), size=n)) % len(groups)
            first = np.array([groups[g][rng.integers(len(groups[g]))] for g in a])
            second = np.array([groups[g][rng.integers(len(groups[g]))] for g in b])
        share = rng.uniform(*BETWEEN_SHARES, size=(n, 1))
        return decoded(share * means[first] + (1 - share) * means[second])
    return draw
