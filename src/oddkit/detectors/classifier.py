"""Open-set recognition: a classifier trained on labelled normal classes says "none of these".

When normal data comes with class labels (digits 0-5, kinds of network traffic, product types), a
classifier trained on them is confident on inputs of those classes and, ideally, unsure on
anything else. :class:`ClassifierConfidenceDetector` turns that lack of confidence into an anomaly
score, and still predicts the class of normal inputs (:meth:`~ClassifierConfidenceDetector.predict_class`).
"""

from __future__ import annotations

import math
import warnings
from numbers import Real

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp, softmax
from sklearn.base import clone
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from oddkit.detectors.base import BaseDetector
from oddkit.detectors.pseudo import as_pseudo_anomalies, exposure_rows
from oddkit.detectors.params import (
    HasMethods,
    Hidden,
    Interval,
    PositiveIntSequence,
    StrOptions,
    fraction_below_one,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from oddkit.data.labels import classes_state, encode_classes, restore_classes
from oddkit.exceptions import DataError, ModelFileError, OddkitWarning, ParameterError
from oddkit.nn.classifier import (
    ConvClassifier,
    MeanLogits,
    WithEnergyLogistic,
    WithRotationHead,
    ensemble_logits,
    hidden_features,
    last_layer,
    members_of,
    mix_with_outliers,
    mlp_classifier,
    quarter_turns,
    random_shifts,
)
from oddkit.train import fit_module, resolve_device, seeded, torch_threads

SCORES = ("auto", "energy", "msp", "entropy", "knn")
BACKENDS = ("auto", "mlp", "cnn")
SKOPS_FILE = "estimator.skops"
REFERENCE_ARRAY = "reference_features"  # saved beside the weights, whose names hold dots
SCORE_CHUNK_ROWS = 4096
MIN_DEV_ROWS = 8
TEMPERATURE_BOUNDS = (0.05, 20.0)
AUGMENTS = (None, "shift")
EXPOSURE_LOSSES = ("cutmix", "mixup", "uniform", "energy")
SHIFT_FRACTION = 0.08  # of the smaller image side: 2 pixels on 28x28 digits
MAX_REFERENCE_ROWS = 10_000  # training rows score="knn" keeps: bounds the model's size and the search
DEFAULT_CLIP_PERCENTILE = 90.0  # clip_percentile="auto" without known anomalies: ReAct's own choice
ROWS_PER_NEIGHBOUR = 1000  # n_neighbors="auto": Sun et al. (2022) used k=50 for 50,000 training images


def default_hidden_sizes(n_inputs: int) -> tuple[int, int]:
    """Two hidden layers about twice as wide as the input, 64 to 256 units."""
    width = int(min(256, max(64, 2 * n_inputs)))
    return width, width


def default_batch_size(n_rows: int) -> int:
    """About 50 steps per epoch, 32 to 256 rows: a classifier needs more updates per epoch than an
    auto-encoder."""
    return int(min(256, max(32, n_rows // 50)))


class ClassifierConfidenceDetector(BaseDetector):
    """Anomaly score = how unsure a classifier trained on the normal classes is.

    ``fit(X, classes)`` trains a classifier on normal data and its class labels (open-set
    recognition); an input that belongs to none of the classes tends to get flat, low logits, and
    the score measures that:

    - ``"energy"`` (the default): ``-T * logsumexp(logits / T)`` (Liu et al., 2020), low for inputs
      the network maps to a large logit of some class. Softmax probabilities saturate (most inputs,
      known or not, get 0.999...), the logsumexp keeps the logits' magnitude.
    - ``"msp"``: ``1 - max softmax(logits / T)`` (Hendrycks & Gimpel, 2017).
    - ``"entropy"``: the entropy of ``softmax(logits / T)``, in nats.
    - ``"knn"``: the distance to the ``n_neighbors``-th nearest training row in the network's last
      hidden layer, scaled to unit length, averaged over the members (Sun et al., 2022). The
      detector keeps those training features (at most 10,000 rows) in memory and in saved models.

    The network is an MLP for tables and a small convolutional network for images (an ndarray
    ``(n, H, W)`` or ``(n, C, H, W)``, read as :func:`oddkit.data.images.as_image_batch` reads them,
    then centred and scaled by the training pixels' mean and standard deviation); any scikit-learn
    classifier with ``predict_proba`` can be passed instead. A stratified ``validation_fraction`` of
    the training data stops training early and fits the temperature ``T`` (Guo et al., 2017), so
    that ``predict_class_proba`` is calibrated.

    Unknown inputs tend to provoke a few unusually large activations in the last hidden layer
    (ReAct, Sun et al., 2021); ``clip_percentile`` caps each member's hidden layer at a percentile
    of its training activations before the logits are computed.

    A few examples of anomalies, when they exist, are passed as ``known_anomalies`` (never mixed
    into the classes): training then also teaches the network to be unsure on them (outlier
    exposure, Hendrycks et al., 2019), with the loss ``exposure_loss``. Without any,
    ``known_anomalies="generate"`` makes pseudo-anomalies from the training data alone
    (:mod:`oddkit.detectors.pseudo`), and ``known_anomalies=PseudoAnomalies("vos")`` makes virtual
    outliers in the network's last hidden layer while it trains: the least likely samples of
    class-conditional Gaussians of the training rows' features, which a logistic regression on the
    energy learns to tell from the rows (VOS, Du et al., 2022; :mod:`oddkit.detectors.vos`).

    Why each default was chosen, and what it measured: the user guide's benchmarks page and
    ``benchmarks/OPEN_SET.md``.

    Parameters
    ----------
    classifier : {"auto", "mlp", "cnn"} or scikit-learn classifier, default="auto"
        ``"auto"``: a CNN for image arrays, an MLP for tables. ``"mlp"`` on images flattens them.
        A scikit-learn classifier (with ``predict_proba``) is cloned and fitted on the
        preprocessed rows (images flattened); it is saved with skops, and only the classifiers listed
        in ``oddkit._trusted`` can be saved and loaded (LogisticRegression, RandomForestClassifier,
        ExtraTreesClassifier, DecisionTreeClassifier, GradientBoostingClassifier,
        HistGradientBoostingClassifier, KNeighborsClassifier with the Euclidean metric, SVC,
        GaussianNB, MLPClassifier, a Pipeline of StandardScaler and one of these); saving another
        raises :class:`~oddkit.exceptions.OddkitError`.
    score : {"auto", "energy", "msp", "entropy", "knn"}, default="auto"
        The anomaly score (see above); ``"auto"`` = energy, or msp for a scikit-learn classifier,
        which gives probabilities only (their logsumexp is always 0) and has no hidden layer to
        read, so not ``"knn"`` either.
    n_neighbors : int or "auto", default="auto"
        ``k`` of ``score="knn"`` (ignored by the other scores): the distance to the k-th nearest
        training row; clamped, with an :class:`~oddkit.exceptions.OddkitWarning`, to the training
        rows kept less one. ``"auto"``: one per 1,000 training rows kept, at least 1 — the ratio
        of Sun et al. (2022), k=50 for 50,000 images. A training row's own score leaves itself out.
    hidden_sizes : sequence of int, optional
        MLP hidden widths (default: :func:`default_hidden_sizes`); for the CNN, one int is the
        width of its fully connected layer (default 128).
    conv_channels : sequence of int, default=(16, 32)
        Channels of the CNN's convolutional blocks (each halves the image's height and width).
    dropout : float, default=0.0
        Dropout probability in the network's fully connected layers.
    epochs : int, default=30
        Most passes over the training data; early stopping on the held-out split usually ends sooner.
    batch_size : int or "auto", default="auto"
        Rows per step; ``"auto"``: :func:`default_batch_size`.
    lr : float, default=1e-3
        Adam's learning rate.
    weight_decay : float, default=0.0
        Adam's L2 penalty.
    validation_fraction : float, default=0.1
        Share of each class held out for early stopping and the temperature (none when that is
        fewer than 8 rows: then training runs all epochs and ``T`` is 1).
    patience : int or None, default=5
        Epochs without improvement of the held-out loss before training stops (the weights of the
        best epoch are kept). None: no early stopping, all ``epochs`` run and the last weights are
        kept (the held-out split still fits the temperature).
    temperature : "auto" or float, default="auto"
        ``"auto"`` fits ``T`` on the held-out split (between 0.05 and 20; 1 when the held-out rows
        are all classified correctly, as the likelihood then has no optimum); a number fixes it
        (1.0 = none).
    exposure_weight : float, default=0.5
        Weight of the outlier-exposure loss when ``known_anomalies`` are given (0.5 as in Hendrycks
        et al., 2019); with virtual outliers (``PseudoAnomalies("vos")``), the weight of their
        uncertainty loss (Du et al., 2022 used 0.1; not tuned here).
    exposure_loss : {"cutmix", "mixup", "uniform", "energy"}, default="cutmix"
        The outlier-exposure loss. Each training batch is joined by as many known anomalies drawn
        at random. ``"cutmix"`` (Mixture Outlier Exposure, Zhang et al., 2023): a random rectangle
        of a known anomaly is pasted into each normal image (for tables, a random subset of its
        columns), covering a share ``1 - lam`` with ``lam`` uniform on [0, 1), and the output is
        trained towards ``lam`` x the row's class + ``(1 - lam)`` x the uniform distribution, so
        the space between the classes and the anomalies is taught too. ``"mixup"``: the same with
        the two rows blended. ``"uniform"`` (Hendrycks et al., 2019): the known anomalies'
        outputs trained towards the uniform distribution. ``"energy"``: the logistic loss
        ``log(1 + exp(E(normal) - E(anomaly)))`` pushes each known anomaly's energy above a normal
        row's (a margin-free form of Liu et al., 2020). Ignored with virtual outliers
        (``PseudoAnomalies("vos")``), which have their own loss.
    n_estimators : int, default=5
        Networks trained independently (their own initial weights and batches, the same held-out
        split), whose logits are averaged: a deep ensemble (Lakshminarayanan et al., 2017). Each
        costs one more training run; the scores become steadier from seed to seed, as the members
        disagree on unknown inputs. Ignored with a scikit-learn classifier.
    augment : {None, "shift"}, default=None
        ``"shift"`` (the CNN only): each training image is moved by its own random whole number of
        pixels, up to 8% of its smaller side (2 on 28x28), the uncovered edge repeating the border.
        More accurate classes, but a network taught to accept displaced strokes accepts more
        unknown inputs too; turn it on when the class matters more than flagging the unknown.
    rotation_weight : float, default=1.0
        The CNN on square images also learns, from a second head on its last hidden layer, by how
        many quarter turns each training image was rotated (a self-supervised task, Hendrycks et
        al., 2019), its loss weighted by this; 0 turns it off. The head is dropped after training:
        scores and saved models are the classifier's alone. Training takes about 1.7 times as
        long. Ignored by the MLP and for images that are not square.
    clip_percentile : "auto", float in (0, 100] or None, default="auto"
        Cap each member's last hidden layer at this percentile of its activations on the training
        rows (the dev split left out) before computing the logits, for every score read from
        logits, for ``predict_class`` and for the temperature; None: no cap. ``"auto"``: 90
        (ReAct's own choice) without known anomalies, None with them. Not for a scikit-learn
        classifier.
    contamination : float, default=0.1
        Share of training rows flagged by ``threshold_`` (normal data: a false-alarm budget).
    impute, unknown_categories, column_types
        See :class:`~oddkit.AutoEncoderDetector` (tables only).
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    n_threads : int, optional
        Torch threads during fit and scoring.
    random_state : int, RandomState or None
        Seed of the held-out split, the weights and the batches.
    verbose : int, default=1
        1 shows a progress bar while training.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted; :meth:`predict_class` returns these.
    temperature_ : float
        The temperature ``T`` (> 0) the scores and class probabilities use.
    model_ : torch.nn.Module or None
        The trained network (None with a scikit-learn classifier); with ``n_estimators > 1`` an
        :class:`oddkit.nn.classifier.MeanLogits` of the members.
    estimator_ : scikit-learn classifier or None
        The fitted scikit-learn classifier (None with oddkit's networks).
    score_ : str
        The score actually used (``"auto"`` resolved).
    backend_ : str
        ``"mlp"``, ``"cnn"`` or ``"sklearn"``.
    image_shape_ : tuple of int
        ``(channels, height, width)``; only present when fitted on images.
    pixel_center_, pixel_scale_ : float
        Mean and standard deviation of the training pixels (images only).
    reference_features_ : ndarray of shape (n_members, n_rows, n_hidden)
        With ``score="knn"`` only: each member's unit-length last hidden layer on the training rows
        kept (float32).
    n_neighbors_ : int
        With ``score="knn"`` only: the ``k`` used.
    clip_percentile_ : float or None
        The percentile actually used (``"auto"`` resolved); None: no clipping.
    activation_caps_ : list of float or None
        Each member's cap on its last hidden layer (None without clipping).
    dev_accuracy_ : float or None
        Closed-set accuracy on the held-out split.
    history_ : dict
        Training and held-out losses per epoch (empty for a scikit-learn classifier); with
        ``n_estimators > 1``, ``{"members": [one such dict per member]}``.

    Notes
    -----
    ``fit`` needs the class labels, so scikit-learn's ``check_estimator`` (which calls ``fit(X)``
    and ``fit(X, y)`` with anomaly labels) does not apply to this detector; its tests are in
    ``tests/test_classifier.py``.

    References
    ----------
    - Hendrycks, D. and Gimpel, K. "A baseline for detecting misclassified and
      out-of-distribution examples in neural networks." ICLR, 2017.
    - Liu, W., Wang, X., Owens, J. and Li, Y. "Energy-based out-of-distribution detection."
      NeurIPS, 2020.
    - Sun, Y., Guo, C. and Li, Y. "ReAct: out-of-distribution detection with rectified
      activations." NeurIPS, 2021.
    - Sun, Y., Ming, Y., Zhu, X. and Li, Y. "Out-of-distribution detection with deep nearest
      neighbors." ICML, 2022.
    - Hendrycks, D., Mazeika, M. and Dietterich, T. "Deep anomaly detection with outlier
      exposure." ICLR, 2019.
    - Zhang, J. et al. "Mixture outlier exposure: towards out-of-distribution detection in
      fine-grained environments." WACV, 2023.
    - Guo, C., Pleiss, G., Sun, Y. and Weinberger, K. "On calibration of modern neural
      networks." ICML, 2017.
    - Du, X., Wang, Z., Cai, M. and Li, Y. "VOS: learning what you don't know by virtual outlier
      synthesis." ICLR, 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from oddkit import ClassifierConfidenceDetector
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (100, 2)), rng.normal(3, 1, (100, 2))])
    >>> classes = np.repeat(["left", "right"], 100)
    >>> detector = ClassifierConfidenceDetector(epochs=5, random_state=0, verbose=0).fit(X, classes)
    >>> detector.predict_class([[-3.0, 0.0]]).tolist()
    ['left']
    """

    _accepts_images = True

    _parameter_constraints: dict = {
        "classifier": [StrOptions(set(BACKENDS)), HasMethods(["fit", "predict_proba"]), Hidden(StrOptions({"sklearn"}))],
        "score": [StrOptions(set(SCORES))],
        "n_neighbors": [positive_int, StrOptions({"auto"})],
        "hidden_sizes": [PositiveIntSequence(), None],
        "conv_channels": [PositiveIntSequence()],
        "dropout": [fraction_below_one],
        "epochs": [positive_int],
        "batch_size": [positive_int, StrOptions({"auto"})],
        "lr": [positive_float],
        "weight_decay": [non_negative_float],
        "validation_fraction": [fraction_below_one],
        "patience": [non_negative_int, None],
        "temperature": [StrOptions({"auto"}), positive_float],
        "exposure_weight": [non_negative_float],
        "exposure_loss": [StrOptions(set(EXPOSURE_LOSSES))],
        "n_estimators": [positive_int],
        "augment": [StrOptions({"shift"}), None],
        "rotation_weight": [non_negative_float],
        "clip_percentile": [StrOptions({"auto"}), Interval(Real, 0, 100, closed="right"), None],
    }

    def __init__(self, classifier="auto", score="auto", n_neighbors="auto", hidden_sizes=None, conv_channels=(16, 32),
                 dropout=0.0, epochs=30, batch_size="auto", lr=1e-3, weight_decay=0.0, validation_fraction=0.1,
                 patience=5, temperature="auto", exposure_weight=0.5, exposure_loss="cutmix", n_estimators=5,
                 augment=None, rotation_weight=1.0, clip_percentile="auto", contamination=0.1, impute=None,
                 unknown_categories="error", column_types=None, device="cpu", n_threads=None, random_state=None,
                 verbose=1):
        self.classifier = classifier
        self.score = score
        self.n_neighbors = n_neighbors
        self.hidden_sizes = hidden_sizes
        self.conv_channels = conv_channels
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.temperature = temperature
        self.exposure_weight = exposure_weight
        self.exposure_loss = exposure_loss
        self.n_estimators = n_estimators
        self.augment = augment
        self.rotation_weight = rotation_weight
        self.clip_percentile = clip_percentile
        self.contamination = contamination
        self.impute = impute
        self.unknown_categories = unknown_categories
        self.column_types = column_types
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # -- public API -----------------------------------------------------------------------------

    def fit(self, X, classes=None, known_anomalies=None):
        """Train the classifier on normal data ``X`` with its class labels ``classes``.

        Parameters
        ----------
        X : table (DataFrame or 2-D array) or images (ndarray (n, H, W) or (n, C, H, W))
            Normal data only.
        classes : array-like of shape (n,)
            The class of each row: any hashable labels of one type (strings, integers, ...), at
            least two distinct ones.
        known_anomalies : table or images like ``X``, "generate" or PseudoAnomalies, optional
            Examples of anomalies, used for outlier exposure; they need no class. ``"generate"``
            (or a :class:`~oddkit.PseudoAnomalies` naming the method): pseudo-anomalies made from
            the training rows (the held-out split left out) and their classes;
            ``PseudoAnomalies("vos")``: virtual outliers in feature space, made during training.

        Raises
        ------
        LabelError
            ``classes`` missing, of the wrong length, with missing values, mixed types or one class.
        DataError
            Bad ``X`` or ``known_anomalies`` (see :class:`~oddkit.detectors.base.BaseDetector`).
        """
        self._fit_inputs = (classes, known_anomalies)
        try:
            return super().fit(X)
        finally:
            del self._fit_inputs

    def fit_predict(self, X, classes=None, known_anomalies=None) -> np.ndarray:
        """Fit and return the training labels ``labels_`` (1 = anomaly)."""
        return self.fit(X, classes, known_anomalies=known_anomalies).labels_

    def predict_class(self, X) -> np.ndarray:
        """The most likely known class of each row, as the original labels (from ``classes_``)."""
        check_is_fitted(self)
        logits = self._logits(self._prepare(X, reset=False))
        return self.classes_[np.argmax(logits, axis=1)]

    def predict_class_proba(self, X) -> np.ndarray:
        """Temperature-scaled class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        check_is_fitted(self)
        return softmax(self._logits(self._prepare(X, reset=False)) / self.temperature_, axis=1)

    def save(self, folder, key: bytes | str | None = None) -> None:
        """Save to ``folder`` (signed with ``key`` if given, see :meth:`BaseDetector.save`). A
        scikit-learn classifier goes to ``estimator.skops``; the saved ``classifier`` parameter then
        reads ``"sklearn"`` and loading restores an unfitted clone."""
        if getattr(self, "backend_", None) != "sklearn":
            return super().save(folder, key=key)
        given = self.classifier
        self.classifier = "sklearn"
        try:
            super().save(folder, key=key)
        finally:
            self.classifier = given

    # -- fitting --------------------------------------------------------------------------------

    def _check_param_combinations(self) -> None:
        super()._check_param_combinations()
        name = type(self).__name__
        if isinstance(self.classifier, str):
            if self.augment is not None and self.classifier == "mlp":
                raise ParameterError(f"{name}: augment={self.augment!r} moves images: it needs the CNN "
                                     "(classifier='auto' or 'cnn' on images), not classifier='mlp'")
            return
        if self.score == "energy":
            raise ParameterError(f"{name}: score='energy' needs logits, but a scikit-learn classifier gives "
                                 "probabilities only (their logsumexp is always 0): use score='msp' or 'entropy'")
        if self.score == "knn":
            raise ParameterError(f"{name}: score='knn' reads a network's last hidden layer, which a scikit-learn "
                                 "classifier does not expose: use one of oddkit's networks (classifier='auto', "
                                 "'mlp' or 'cnn')")
        if self.clip_percentile not in ("auto", None):
            raise ParameterError(f"{name}: clip_percentile caps a network's last hidden layer, which a scikit-learn "
                                 "classifier does not expose: leave it at 'auto' (no clipping) or use one of "
                                 "oddkit's networks")

    def _dev_split(self, codes: np.ndarray, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        """Stratified: ``validation_fraction`` of each class to dev, at least one row kept to train."""
        train, dev = [], []
        for code in range(int(codes.max()) + 1):
            rows = rng.permutation(np.flatnonzero(codes == code))
            n_dev = min(round(len(rows) * float(self.validation_fraction)), len(rows) - 1)
            dev.append(rows[:n_dev])
            train.append(rows[n_dev:])
        dev_rows = np.sort(np.concatenate(dev))
        if len(dev_rows) < MIN_DEV_ROWS:
            return np.arange(len(codes)), np.empty(0, dtype=np.int64)
        return np.sort(np.concatenate(train)), dev_rows

    def _fit_array(self, Z: np.ndarray) -> None:
        if isinstance(self.classifier, str) and self.classifier == "sklearn":
            # Only a saved model's config reads "sklearn" (loading puts the fitted estimator's clone back).
            raise ParameterError(f"{type(self).__name__}: classifier='sklearn' only marks a saved model; pass "
                                 f"one of {BACKENDS} or a scikit-learn classifier object")
        classes, known_anomalies = self._fit_inputs
        self.classes_, codes = encode_classes(classes, Z.shape[0], "ClassifierConfidenceDetector.fit")
        images = self._image_shape() is not None
        if images:  # pixels in [0, 1] -> centred and scaled by the training pixels' mean and spread
            self.pixel_center_ = float(Z.mean())
            spread = float(Z.std())
            self.pixel_scale_ = spread if spread > 0 else 1.0
        sklearn_backend = not isinstance(self.classifier, str)
        self.backend_ = "sklearn" if sklearn_backend else (
            ("cnn" if images else "mlp") if self.classifier == "auto" else self.classifier)
        if self.backend_ == "cnn" and not images:
            raise DataError("classifier='cnn' needs images: an ndarray (n, height, width) or (n, channels, height, width)")
        if self.augment is not None and self.backend_ != "cnn":
            raise DataError(f"augment={self.augment!r} moves images: it needs the CNN (images with "
                            f"classifier='auto' or 'cnn'), not the {self.backend_} backend")
        self.score_ = ("msp" if sklearn_backend else "energy") if self.score == "auto" else self.score
        if sklearn_backend and known_anomalies is not None:
            raise DataError("known_anomalies (outlier exposure) need one of oddkit's networks "
                            "(classifier='auto', 'mlp' or 'cnn'), which can be trained to be unsure on them")
        rng = check_random_state(self.random_state)
        train, dev = self._dev_split(codes, rng)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        exposure = None
        spec = None if known_anomalies is None else as_pseudo_anomalies(known_anomalies)
        virtual = spec is not None and spec._method() == "vos"  # made during training, in feature space
        if known_anomalies is not None and not virtual:
            # Pseudo-anomalies are made from the training rows only: the dev split stays unseen.
            exposure = exposure_rows(self, known_anomalies, Z[train], codes[train], seed)
        self.history_ = {}
        self.model_, self.estimator_ = None, None
        self.clip_percentile_, self.activation_caps_ = None, None
        hidden = None  # the last hidden layer on Z, when the caps or the kNN reference need it
        if sklearn_backend:
            self.estimator_ = clone(self.classifier).fit(self._model_input(Z[train]), codes[train])
        else:
            self._train_network(Z, codes, train, dev, exposure, seed, virtual)
            exposed = (exposure is not None or virtual) and float(self.exposure_weight) > 0
            self.clip_percentile_ = ((None if exposed else DEFAULT_CLIP_PERCENTILE) if self.clip_percentile == "auto"
                                     else self.clip_percentile)
            if self.clip_percentile_ is not None or self.score_ == "knn":
                hidden = self._hidden_features(Z)
            if self.clip_percentile_ is not None:
                self.activation_caps_ = [float(np.percentile(member, float(self.clip_percentile_)))
                                         for member in hidden[:, train]]
        self.dev_accuracy_ = None
        self.temperature_ = 1.0 if self.temperature == "auto" else float(self.temperature)
        if len(dev):
            dev_logits = self._logits(Z[dev])
            self.dev_accuracy_ = float(np.mean(np.argmax(dev_logits, axis=1) == codes[dev]))
            if self.temperature == "auto":
                self.temperature_ = self._fit_temperature(dev_logits, codes[dev])
        if self.score_ == "knn":
            self._keep_reference(_unit_length(hidden), seed)

    def _keep_reference(self, features: np.ndarray, seed: int) -> None:
        """Keep ``features`` (:meth:`_unit_features` of the training rows; all, or
        ``MAX_REFERENCE_ROWS`` at random) for ``score="knn"``, and score the training rows from
        them, each leaving itself out (``_training_scores`` hands these on)."""
        n_rows = features.shape[1]
        kept = np.arange(n_rows)
        if n_rows > MAX_REFERENCE_ROWS:
            kept = np.sort(np.random.default_rng(seed).choice(n_rows, MAX_REFERENCE_ROWS, replace=False))
        position = np.full(n_rows, -1)
        position[kept] = np.arange(len(kept))
        k = max(1, round(len(kept) / ROWS_PER_NEIGHBOUR)) if self.n_neighbors == "auto" else int(self.n_neighbors)
        if k > len(kept) - 1:
            warnings.warn(
                f"ClassifierConfidenceDetector: n_neighbors={k} but score='knn' keeps {len(kept)} training rows, so "
                f"each has only {len(kept) - 1} others; using n_neighbors_={len(kept) - 1}. Pass n_neighbors <= "
                f"{len(kept) - 1} (or more rows) to silence this", OddkitWarning, stacklevel=2)
        self._index_reference(np.ascontiguousarray(features[:, kept]), k)
        self._fit_scores = self._neighbour_distances(features, position)

    def _index_reference(self, features: np.ndarray, k: int) -> None:
        # k + 1 neighbours must exist for a training row to leave itself out.
        self.n_neighbors_ = int(min(k, features.shape[1] - 1))
        self.reference_features_ = features
        # Brute force: exact, and faster than trees on 100-odd dimensions (one matrix product).
        self._reference_indexes = [NearestNeighbors(algorithm="brute").fit(member) for member in features]

    def _learns_rotations(self) -> bool:
        """Whether training adds the rotation task: the CNN, on square images, with a weight > 0."""
        shape = self._image_shape()
        return (self.backend_ == "cnn" and float(self.rotation_weight) > 0
                and shape is not None and shape[1] == shape[2])

    def _image_shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) when fitted on images, else None."""
        shape = getattr(self, "image_shape_", None)
        return None if shape is None else tuple(int(v) for v in shape)

    def _model_input(self, Z: np.ndarray) -> np.ndarray:
        """Preprocessed rows -> what the classifier takes: table rows as they are; images
        normalised, as (n, C, H, W) for the CNN and flat rows otherwise."""
        shape = self._image_shape()
        if shape is None:
            return Z
        Z = (Z - np.float32(self.pixel_center_)) / np.float32(self.pixel_scale_)
        return np.ascontiguousarray(Z.reshape(len(Z), *shape) if self.backend_ == "cnn" else Z, dtype=np.float32)

    def _build_module(self, n_classes: int) -> torch.nn.Module:
        """The whole network: one member, or the mean of ``n_estimators`` members' logits."""
        n = int(self.n_estimators)
        return self._build_member(n_classes) if n == 1 else MeanLogits([self._build_member(n_classes) for _ in range(n)])

    def _build_member(self, n_classes: int) -> torch.nn.Module:
        if self.backend_ == "cnn":
            hidden = int(self.hidden_sizes[0]) if self.hidden_sizes else 128
            return ConvClassifier(*self._image_shape(), n_classes, channels=tuple(int(c) for c in self.conv_channels),
                                  hidden=hidden, dropout=float(self.dropout))
        hidden = (tuple(int(h) for h in self.hidden_sizes) if self.hidden_sizes is not None
                  else default_hidden_sizes(self._n_inputs()))
        return mlp_classifier(self._n_inputs(), hidden, n_classes, dropout=float(self.dropout))

    def _n_inputs(self) -> int:
        return int(self.preprocessor_.n_outputs_)

    def _train_network(self, Z, codes, train, dev, exposure, seed, virtual: bool = False) -> None:
        """Train the members on the rows ``train`` (``dev``: early stopping), with outlier exposure
        to the preprocessed rows ``exposure`` (or None), or with virtual outliers (``virtual``:
        :mod:`oddkit.detectors.vos`)."""
        from oddkit.detectors.vos import VirtualOutlierSynthesis, warmup_steps

        device = resolve_device(self.device)
        n_classes = len(self.classes_)
        weight = float(self.exposure_weight)
        members, histories = [], []
        with torch_threads(self.n_threads):
            inputs = torch.from_numpy(self._model_input(Z)).to(device)
            targets = torch.from_numpy(codes).to(device)
            outliers = None if exposure is None or weight == 0 else torch.from_numpy(self._model_input(exposure)).to(device)
            log_k = math.log(n_classes)
            max_shift = max(1, round(SHIFT_FRACTION * min(self._image_shape()[1:]))) if self.augment == "shift" else 0
            rotation_weight = float(self.rotation_weight) if self._learns_rotations() else 0.0
            exposure_loss = self.exposure_loss
            virtual = virtual and weight > 0
            synthesis = None  # each member's VirtualOutlierSynthesis, with virtual outliers

            def row_loss(net, rows, gen):
                index = rows.long()
                x = inputs[index]
                if max_shift and net.training:
                    x = random_shifts(x, max_shift, gen)
                vos = synthesis is not None and net.training
                if isinstance(net, WithEnergyLogistic):
                    energy_logistic, net = net, net.network
                if rotation_weight and net.training:
                    turns = torch.randint(4, (x.shape[0],), generator=gen).to(device)
                    if vos:
                        hidden, turn_logits = net.hidden_and_rotation_logits(x, quarter_turns(x, turns))
                        logits = last_layer(net.classifier)(hidden)
                    else:
                        logits, turn_logits = net.logits_and_rotation_logits(x, quarter_turns(x, turns))
                    loss = (F.cross_entropy(logits, targets[index], reduction="none")
                            + rotation_weight * F.cross_entropy(turn_logits, turns, reduction="none"))
                elif vos:
                    hidden = hidden_features(net, x)
                    logits = last_layer(net)(hidden)
                    loss = F.cross_entropy(logits, targets[index], reduction="none")
                else:
                    logits = net(x)
                    loss = F.cross_entropy(logits, targets[index], reduction="none")
                if vos:
                    synthesis.add(hidden, targets[index])
                    points = synthesis.sample(targets[index], gen)
                    if points is None:  # warming up
                        return loss
                    # The uncertainty loss of VOS: a logistic regression on the energy tells the
                    # rows (label 1) from their virtual outliers (label 0); mean over the 2n items.
                    outlier_logits = last_layer(net.classifier if rotation_weight else net)(points)
                    inside = energy_logistic.inside_logit(logits)
                    outside = energy_logistic.inside_logit(outlier_logits)
                    return loss + weight * 0.5 * (F.softplus(-inside) + F.softplus(outside))
                if outliers is not None and net.training:
                    pick = torch.randint(outliers.shape[0], (index.shape[0],), generator=gen).to(device)
                    if exposure_loss in ("mixup", "cutmix"):
                        mixed, lam = mix_with_outliers(x, outliers[pick], exposure_loss, gen)
                        target = lam[:, None] * F.one_hot(targets[index], n_classes) + (1 - lam[:, None]) / n_classes
                        return loss + weight * -(target * F.log_softmax(net(mixed), dim=1)).sum(dim=1)
                    outlier_logits = net(outliers[pick])
                    if exposure_loss == "energy":
                        # Logistic loss on each pair's energy gap: small once the known anomaly's
                        # energy is well above that of the normal row it is paired with.
                        gap = torch.logsumexp(outlier_logits, dim=1) - torch.logsumexp(logits, dim=1)
                        loss = loss + weight * F.softplus(gap)
                    else:
                        # KL(uniform || p) = -mean_k log p_k - log K: zero when the output is flat.
                        log_p = F.log_softmax(outlier_logits, dim=1)
                        loss = loss + weight * (-log_p.mean(dim=1) - log_k).mean()
                return loss

            batch = default_batch_size(len(train)) if self.batch_size == "auto" else int(self.batch_size)
            for member in range(int(self.n_estimators)):
                # Member 0 is exactly the network a single-member detector trains.
                with seeded(seed + member) as generator:
                    module = self._build_member(n_classes)
                    if rotation_weight:
                        module = WithRotationHead(module)
                    if virtual:
                        classifier = module.classifier if rotation_weight else module
                        synthesis = VirtualOutlierSynthesis(np.bincount(codes[train], minlength=n_classes),
                                                            last_layer(classifier).in_features,
                                                            warmup_steps(len(train), batch))
                        module = WithEnergyLogistic(module)
                    module = module.to(device)
                    history = fit_module(
                        module, row_loss, torch.from_numpy(train).to(device), epochs=int(self.epochs),
                        batch_size=batch, lr=float(self.lr), weight_decay=float(self.weight_decay),
                        validation_fraction=0.0,
                        validation=torch.from_numpy(dev).to(device) if len(dev) and self.patience is not None else None,
                        patience=self.patience, generator=generator, verbose=self.verbose,
                        description=type(self).__name__)
                # The rotation head and the energy's logistic regression served training only:
                # the saved network is the classifier.
                if virtual:
                    module = module.network
                members.append((module.classifier if rotation_weight else module).eval())
                histories.append(history.to_dict())
        self.model_ = members[0] if len(members) == 1 else MeanLogits(members).eval()
        self.history_ = histories[0] if len(histories) == 1 else {"members": histories}

    @staticmethod
    def _fit_temperature(logits: np.ndarray, codes: np.ndarray) -> float:
        """The temperature minimising the negative log-likelihood of the held-out classes, within
        ``TEMPERATURE_BOUNDS``. When every held-out row is classified correctly the likelihood only
        grows as ``T`` shrinks towards 0, which says nothing about calibration: ``T`` stays 1."""
        if np.all(np.argmax(logits, axis=1) == codes):
            return 1.0

        def nll(log_t: float) -> float:
            return float(-log_softmax(logits / math.exp(log_t), axis=1)[np.arange(len(codes)), codes].mean())

        lo, hi = (math.log(b) for b in TEMPERATURE_BOUNDS)
        result = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
        return float(math.exp(result.x))

    # -- scoring --------------------------------------------------------------------------------

    def _logits(self, Z: np.ndarray) -> np.ndarray:
        """Logits (float64, (n, n_classes)); a scikit-learn classifier's log-probabilities."""
        if self.estimator_ is not None:
            proba = self.estimator_.predict_proba(self._model_input(Z))
            full = np.zeros((Z.shape[0], len(self.classes_)))
            full[:, np.asarray(self.estimator_.classes_, dtype=np.int64)] = proba
            return np.log(np.clip(full, 1e-12, None))
        return self._forward(Z, lambda x: ensemble_logits(self.model_, x, self.activation_caps_).double()[None])[0]

    def _hidden_features(self, Z: np.ndarray) -> np.ndarray:
        """Each member's last hidden layer: float32 (n_members, n, n_hidden)."""
        return self._forward(Z, lambda x: torch.stack([hidden_features(m, x) for m in members_of(self.model_)]))

    def _unit_features(self, Z: np.ndarray) -> np.ndarray:
        """Each member's last hidden layer scaled to unit length: float32 (n_members, n, n_hidden)."""
        return _unit_length(self._hidden_features(Z))

    def _forward(self, Z: np.ndarray, network_output) -> np.ndarray:
        """``network_output`` (tensor in, tensor (n_outputs, rows, width) out) over ``Z`` in chunks."""
        device = next(self.model_.parameters()).device
        outputs = []
        with torch_threads(self.n_threads), torch.inference_mode():
            for start in range(0, Z.shape[0], SCORE_CHUNK_ROWS):
                x = torch.from_numpy(self._model_input(Z[start:start + SCORE_CHUNK_ROWS])).to(device)
                outputs.append(network_output(x).cpu().numpy())
        return np.concatenate(outputs, axis=1)

    def _neighbour_distances(self, features: np.ndarray, position: np.ndarray | None = None) -> np.ndarray:
        """Mean over the members of the distance from ``features`` (from :meth:`_unit_features`) to
        the ``n_neighbors_``-th nearest kept training row. ``position``: each row's place among the
        kept rows (-1 for none), to leave it out."""
        k = self.n_neighbors_
        distances = []
        for index, member_features in zip(self._reference_indexes, features):
            # Features that overflowed get a NaN distance, which the scores' guard reports.
            finite = np.isfinite(member_features).all(axis=1)
            distance = np.full(len(member_features), np.nan)
            if not finite.any():  # nothing to search for (scikit-learn refuses 0 rows): all NaN
                distances.append(distance)
                continue
            if position is None:
                distance[finite] = index.kneighbors(member_features[finite], n_neighbors=k)[0][:, -1]
            else:
                near, rows = index.kneighbors(member_features[finite], n_neighbors=k + 1)
                # A kept row finds itself among its k + 1 nearest: the k-th of the others is then the
                # last; for any other row it is the one before.
                leaves_itself_out = (rows == position[finite, None]).any(axis=1)
                distance[finite] = np.where(leaves_itself_out, near[:, -1], near[:, -2])
            distances.append(distance)
        return np.mean(distances, axis=0, dtype=np.float64)

    def scores_from_logits(self, logits: np.ndarray, score: str | None = None) -> np.ndarray:
        """Any of the scores from logits (higher = more anomalous), at the fitted temperature.

        ``score``: ``"energy"``, ``"msp"`` or ``"entropy"`` (default: the detector's own), so one
        fitted model can be evaluated with every score (see :meth:`logits`). ``"knn"`` reads
        features, not logits: :meth:`decision_function` gives it."""
        check_is_fitted(self)
        score = self.score_ if score is None else score
        if score == "knn":
            raise DataError("score='knn' is computed from the network's features, not from logits: "
                            "use decision_function(X)")
        scaled = np.asarray(logits, dtype=np.float64) / self.temperature_
        if score == "energy":
            return -self.temperature_ * logsumexp(scaled, axis=1)
        if score == "msp":
            # 1 - max p = r / (1 + r), r = sum over the other classes of exp(logit - top logit): no
            # cancellation, so confident rows keep distinct scores down to exp(-700).
            best = np.argmax(scaled, axis=1)
            rows = np.arange(len(scaled))
            others = np.exp(scaled - scaled[rows, best][:, None])
            others[rows, best] = 0.0
            r = others.sum(axis=1)
            return r / (1.0 + r)
        if score == "entropy":
            log_p = log_softmax(scaled, axis=1)
            return -(np.exp(log_p) * log_p).sum(axis=1)
        raise DataError(f"score must be 'energy', 'msp' or 'entropy', got {score!r}")

    def logits(self, X) -> np.ndarray:
        """The classifier's raw logits (before the temperature), shape (n, n_classes), ``classes_`` order."""
        check_is_fitted(self)
        return self._logits(self._prepare(X, reset=False))

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        if self.score_ == "knn":
            return self._neighbour_distances(self._unit_features(Z))
        return self.scores_from_logits(self._logits(Z))

    def _training_scores(self, Z: np.ndarray) -> np.ndarray:
        if self.score_ != "knn":
            return self._score_array(Z)
        scores, self._fit_scores = self._fit_scores, None  # computed by _keep_reference, needed once
        return scores

    # -- persistence ----------------------------------------------------------------------------

    def _get_model_state(self):
        meta = {**classes_state(self.classes_), "backend": self.backend_,
                "score": self.score_, "temperature": self.temperature_, "dev_accuracy": self.dev_accuracy_,
                "history": self.history_, "clip_percentile": self.clip_percentile_,
                "activation_caps": self.activation_caps_}
        if self._image_shape() is not None:
            meta.update(pixel_center=self.pixel_center_, pixel_scale=self.pixel_scale_)
        if self.backend_ == "sklearn":
            from oddkit._trusted import dump_trusted_skops

            return {}, meta, {SKOPS_FILE: dump_trusted_skops(self.estimator_, "the scikit-learn classifier")}
        meta["architecture"] = self._architecture()
        arrays = {name: tensor.detach().cpu().numpy() for name, tensor in self.model_.state_dict().items()}
        if self.score_ == "knn":
            arrays[REFERENCE_ARRAY] = self.reference_features_
            meta["n_neighbors"] = self.n_neighbors_
        return arrays, meta, {}

    def _architecture(self) -> dict:
        return {"hidden_sizes": None if self.hidden_sizes is None else [int(h) for h in self.hidden_sizes],
                "conv_channels": [int(c) for c in self.conv_channels], "dropout": float(self.dropout),
                "n_inputs": self._n_inputs(), "n_estimators": int(self.n_estimators)}

    def _set_model_state(self, arrays, meta, files):
        from oddkit.detectors.autoencoder import _positive_int
        from oddkit.persist import load_module_weights

        try:
            self.classes_ = restore_classes(meta)
            self.backend_ = str(meta["backend"])
            self.score_ = str(meta["score"])
            self.temperature_ = _finite_number(meta["temperature"], "temperature")
            self.dev_accuracy_ = None if meta["dev_accuracy"] is None else _finite_number(
                meta["dev_accuracy"], "dev_accuracy")
            self.history_ = dict(meta["history"])
            # Files saved before activation clipping existed have neither key: no clipping.
            clip = meta.get("clip_percentile")
            if not (clip is None or (isinstance(clip, (int, float)) and not isinstance(clip, bool)
                                     and 0 < clip <= 100)):
                raise ValueError(f"clip_percentile={clip!r} is not None or a number in (0, 100]")
            self.clip_percentile_ = clip
            caps = meta.get("activation_caps")
            self.activation_caps_ = None if caps is None else [_finite_number(c, "activation_caps") for c in caps]
            if self.activation_caps_ is not None and not all(c > 0 for c in self.activation_caps_):
                raise ValueError(f"activation_caps {self.activation_caps_} are not all positive")
            shape = getattr(self.preprocessor_, "image_shape_", None)  # an ImagePreprocessor's
            if shape is not None:
                self.image_shape_ = tuple(int(v) for v in shape)
                self.pixel_center_ = _finite_number(meta["pixel_center"], "pixel_center")
                self.pixel_scale_ = _finite_number(meta["pixel_scale"], "pixel_scale")
                if not self.pixel_scale_ > 0:
                    raise ValueError(f"pixel_scale={self.pixel_scale_} is not positive")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"the saved classifier's configuration is malformed: {exc}") from None
        if self.score_ not in SCORES[1:] or self.backend_ not in ("mlp", "cnn", "sklearn") or not self.temperature_ > 0:
            raise ModelFileError("the saved classifier names an unknown score or backend, or a temperature that "
                                 "is not a positive number")
        self.model_, self.estimator_ = None, None
        if self.backend_ == "sklearn":
            self.estimator_ = self._load_estimator(files)
            codes = np.asarray(self.estimator_.classes_)
            if codes.dtype.kind not in "iu" or codes.ndim != 1 or not ((codes >= 0) & (codes < len(self.classes_))).all() \
                    or getattr(self.estimator_, "n_features_in_", None) not in (None, self._n_inputs()):
                raise ModelFileError(f"the saved scikit-learn classifier does not match the model's "
                                     f"{len(self.classes_)} classes and {self._n_inputs()} inputs")
            self.classifier = clone(self.estimator_)
            return
        arrays = dict(arrays)
        reference = arrays.pop(REFERENCE_ARRAY, None)
        try:
            architecture = meta["architecture"]
            hidden = architecture["hidden_sizes"]
            self.hidden_sizes = None if hidden is None else [_positive_int(h, "hidden_sizes") for h in hidden]
            self.conv_channels = tuple(_positive_int(c, "conv_channels") for c in architecture["conv_channels"])
            self.dropout = _finite_number(architecture["dropout"], "dropout")
            if not 0 <= self.dropout < 1:
                raise ValueError(f"dropout={self.dropout} is not in [0, 1)")
            self.n_estimators = _positive_int(architecture.get("n_estimators", 1), "n_estimators")
            module = load_module_weights(lambda: self._build_module(len(self.classes_)), arrays, "classifier")
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"the saved classifier weights do not fit its configuration: {exc}") from None
        self.model_ = module.to(resolve_device(self.device)).eval()
        if self.activation_caps_ is not None and len(self.activation_caps_) != len(members_of(self.model_)):
            raise ModelFileError("the saved classifier has one activation cap per member, but "
                                 f"{len(self.activation_caps_)} caps for {len(members_of(self.model_))} members")
        if self.score_ == "knn":
            n_members = len(members_of(self.model_))
            # The logits are computed from the last hidden layer: the last linear layer's input width.
            widths = {[layer for layer in member.modules() if isinstance(layer, torch.nn.Linear)][-1].in_features
                      for member in members_of(self.model_)}
            if reference is None or reference.ndim != 3 or reference.shape[0] != n_members or reference.shape[1] < 2 \
                    or widths != {reference.shape[2]}:
                raise ModelFileError("the saved classifier scores by nearest neighbours but lacks well-formed "
                                     "reference features (one row of its last hidden layer per kept training row)")
            k = meta.get("n_neighbors")
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < reference.shape[1]:
                raise ModelFileError(f"the saved classifier's n_neighbors={k!r} is not a positive integer below "
                                     f"its {reference.shape[1]} reference rows")
            # Rows of the last hidden layer scaled to unit length (shorter only where it was near zero).
            if not (np.linalg.norm(reference.astype(np.float64), axis=2) <= 1 + 1e-3).all():
                raise ModelFileError("the saved classifier's reference features are longer than unit length, which "
                                     "the features it computes never are")
            self._index_reference(reference, k)
        self._check_finite_outputs()

    def _check_finite_outputs(self) -> None:
        """Refuse a saved network whose outputs overflow: its logits and (for ``score="knn"``)
        unit-length features of an ordinary input (all zeros: the training data's centre for
        standardised columns; the pixel centre for images) must be finite, as every trained
        network's are. Weights that are finite yet huge (a bias of 3e38) pass the loader's checks
        and would make every row's score NaN.

        Raises
        ------
        ModelFileError
            When they are not finite.
        """
        shape = self._image_shape()
        probe = np.zeros((1, self._n_inputs()), dtype=np.float32)
        if shape is not None:
            probe += np.float32(self.pixel_center_)
        outputs = [self._logits(probe)]
        if self.score_ == "knn":
            outputs.append(self._unit_features(probe))
        if not all(np.isfinite(output).all() for output in outputs):
            raise ModelFileError("the saved classifier's network gives NaN or infinite outputs for an ordinary input "
                                 "(its weights overflow): its weights.safetensors is corrupt or was edited")

    @staticmethod
    def _load_estimator(files):
        from oddkit._trusted import load_trusted_skops

        if SKOPS_FILE not in files:
            raise ModelFileError(f"the model folder lacks {SKOPS_FILE}")
        estimator = load_trusted_skops(files[SKOPS_FILE], SKOPS_FILE)
        if not (hasattr(estimator, "predict_proba") and hasattr(estimator, "classes_")):
            raise ModelFileError(f"{SKOPS_FILE} holds a {type(estimator).__name__}, not a fitted classifier")
        return estimator


def _unit_length(hidden: np.ndarray) -> np.ndarray:
    """Each row of ``(n_members, n, n_hidden)`` features scaled to unit length."""
    return F.normalize(torch.from_numpy(hidden), dim=2).numpy()


def _finite_number(value, name: str) -> float:
    """A saved number: finite, not a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} is not a finite number")
    return float(value)
