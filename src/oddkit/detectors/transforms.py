"""A self-supervised image detector: a network that learned which rotation or flip was applied to
normal images is unsure, or wrong, about images unlike them."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax
from sklearn.utils import check_random_state

from oddkit.data.image_preprocess import is_image_array
from oddkit.detectors.base import BaseDetector, refuse_sparse
from oddkit.detectors.params import (
    PositiveIntSequence,
    fraction_below_one,
    non_negative_int,
    positive_float,
    positive_int,
)
from oddkit.exceptions import DataError, ModelFileError


def dihedral_transforms(images: np.ndarray) -> list[np.ndarray]:
    """The images ``(n, C, H, W)`` under each symmetry of the square that keeps their shape: the
    8 rotations by multiples of 90 degrees, with and without a mirror, for square images; the 4
    that keep the orientation of the sides (identity, the two mirrors, the half turn) otherwise."""
    square = images.shape[2] == images.shape[3]
    turns = (0, 1, 2, 3) if square else (0, 2)
    out = []
    for mirrored in (False, True):
        base = images[..., ::-1] if mirrored else images
        out += [np.rot90(base, k, axes=(2, 3)) for k in turns]
    return [np.ascontiguousarray(t, dtype=np.float32) for t in out]


class TransformationDetector(BaseDetector):
    """Images only: a CNN learns to tell which of the square's symmetries (rotations by 90 degrees,
    mirrors) was applied to a normal image; the score of an image is the network's mean negative
    log-probability of the true transformation over all of them (Golan and El-Yaniv, 2018;
    Hendrycks et al., 2019).

    To say which way up a digit or a shoe is, the network must learn the shapes of the normal
    class; on an image of another class it guesses badly. No decoder is trained, so, unlike an
    auto-encoder's reconstruction error, the score does not reward images that are merely simple
    (a thin "1" is easy to reconstruct for any auto-encoder). Square images use all 8 symmetries;
    other sizes the 4 that keep their shape. A class that looks the same after some of them (an
    "8" turned half round, an "0" mirrored) gives the network less to learn, and scores less well.

    It fails where the VAE succeeds and the other way round, so the two are best together:
    ``EnsembleDetector(members=("vae", "transforms"), combine="mean")``
    (``benchmarks/IMAGES.md``). Both are behind :class:`~oddkit.GradientKNNDetector`, oddkit's
    default for images, on one-class MNIST and Fashion-MNIST.

    Training uses :class:`~oddkit.ClassifierConfidenceDetector` (its CNN, its held-out split for
    early stopping, one network, no rotation task of its own: predicting the transformation already
    is one) on every training image under every transformation, so it costs
    about 8 times as much as a classifier on the images alone.

    Parameters
    ----------
    conv_channels : sequence of int, default=(32, 64)
        Channels of the CNN's convolutional blocks (each halves the image's sides).
    hidden : int, default=128
        Width of the CNN's fully connected layer.
    epochs : int, default=30
        Most passes over the transformed images; early stopping usually ends sooner.
    lr : float, default=1e-3
    validation_fraction : float, default=0.1
        Share held out (of each transformation) for early stopping.
    patience : int, default=3
    contamination : float, default=0.1
    device, n_threads, random_state, verbose
        As for :class:`~oddkit.ClassifierConfidenceDetector`.

    Attributes
    ----------
    classifier_ : ClassifierConfidenceDetector
        The trained transformation classifier.
    n_transforms_ : int
        8 for square images, 4 otherwise.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images.

    References
    ----------
    - Golan, I. and El-Yaniv, R. "Deep anomaly detection using geometric transformations."
      NeurIPS, 2018.
    - Hendrycks, D., Mazeika, M., Kadavath, S. and Song, D. "Using self-supervised learning can
      improve model robustness and uncertainty." NeurIPS, 2019.
    """

    _accepts_images = True

    _parameter_constraints: dict = {
        "conv_channels": [PositiveIntSequence()],
        "hidden": [positive_int],
        "epochs": [positive_int],
        "lr": [positive_float],
        "validation_fraction": [fraction_below_one],
        "patience": [non_negative_int, None],
    }

    def __init__(self, conv_channels=(32, 64), hidden=128, epochs=30, lr=1e-3, validation_fraction=0.1, patience=3,
                 contamination=0.1, device="cpu", n_threads=None, random_state=None, verbose=1):
        self.conv_channels = conv_channels
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.contamination = contamination
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def _prepare(self, X, reset: bool) -> np.ndarray:
        refuse_sparse(X)
        if reset and not is_image_array(X):
            raise DataError("TransformationDetector learns from images: pass an array (n, H, W) or (n, C, H, W)")
        return super()._prepare(X, reset)

    def _images(self, Z: np.ndarray) -> np.ndarray:
        return Z.reshape(len(Z), *self.image_shape_)

    def _fit_array(self, Z: np.ndarray) -> None:
        from oddkit.detectors.classifier import ClassifierConfidenceDetector

        transformed = dihedral_transforms(self._images(Z))
        self.n_transforms_ = len(transformed)
        labels = np.repeat(np.arange(self.n_transforms_), len(Z))
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.classifier_ = ClassifierConfidenceDetector(
            classifier="cnn", conv_channels=tuple(self.conv_channels), hidden_sizes=(int(self.hidden),),
            epochs=self.epochs, lr=self.lr, validation_fraction=self.validation_fraction, patience=self.patience,
            temperature=1.0, n_estimators=1, rotation_weight=0.0, device=self.device, n_threads=self.n_threads,
            random_state=seed, verbose=self.verbose).fit(np.concatenate(transformed), labels)

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        transformed = dihedral_transforms(self._images(Z))
        logits = self.classifier_.logits(np.concatenate(transformed))
        log_p = log_softmax(logits, axis=1).reshape(self.n_transforms_, len(Z), self.n_transforms_)
        truth = log_p[np.arange(self.n_transforms_), :, np.arange(self.n_transforms_)]  # (transform, image)
        return -truth.mean(axis=0)

    def _get_model_state(self):
        from oddkit.persist import detector_state

        arrays, meta, files = detector_state(self.classifier_)
        return ({f"classifier.{k}": v for k, v in arrays.items()}, {"classifier": meta, "n_transforms": self.n_transforms_},
                {f"classifier.{k}": v for k, v in files.items()})

    def _set_model_state(self, arrays, meta, files):
        from oddkit.persist import restore_detector

        try:
            self.n_transforms_ = meta["n_transforms"]
            if isinstance(self.n_transforms_, bool) or not isinstance(self.n_transforms_, int) \
                    or not 2 <= self.n_transforms_ <= 8:
                raise ValueError(f"n_transforms={self.n_transforms_!r} is not an integer from 2 to 8")
            self.classifier_ = restore_detector(
                meta["classifier"], {k[len("classifier."):]: v for k, v in arrays.items() if k.startswith("classifier.")},
                {k[len("classifier."):]: v for k, v in files.items() if k.startswith("classifier.")})
            if len(self.classifier_.classes_) != self.n_transforms_:
                raise ValueError(f"the classifier knows {len(self.classifier_.classes_)} transformations, "
                                 f"not {self.n_transforms_}")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"the saved transformation detector is incomplete: {exc}") from None
