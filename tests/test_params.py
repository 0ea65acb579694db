"""Parameter validation in one place: every detector's ``_parameter_constraints``, checked first in ``fit``.

Also the two input rules that sit beside it: ``n_neighbors`` larger than the training set (clamped,
with an OddkitWarning the user can act on) and sparse input (refused with a DataError).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse

from oddkit import (
    AutoEncoderDetector,
    ClassifierConfidenceDetector,
    DisentangledAutoEncoderDetector,
    EnsembleDetector,
    GaussianDetector,
    IsolationForestDetector,
    KNNDetector,
    LOFDetector,
    OneClassSVMDetector,
    PCADetector,
    TransformationDetector,
    VAEDetector,
    VQVAEDetector,
)
from oddkit.detectors import DETECTORS
from oddkit.detectors.base import BaseDetector
from oddkit.detectors.params import merged_constraints
from oddkit.exceptions import DataError, OddkitError, OddkitWarning, ParameterError

X = np.random.default_rng(0).normal(size=(40, 3))
CLASSES = np.arange(40) % 2
IMAGES = np.random.default_rng(0).random((16, 8, 8), dtype=np.float32)
NEEDS_CLASSES = (ClassifierConfidenceDetector, DisentangledAutoEncoderDetector)


def fit(detector, data=X):
    """``fit`` as each detector takes it (the class-learning ones get classes)."""
    if isinstance(detector, NEEDS_CLASSES):
        return detector.fit(data, CLASSES)
    return detector.fit(data)


def test_every_parameter_of_every_detector_has_a_constraint():
    # The registry also holds subclasses defined elsewhere (the benchmarks' members, once a test imports them).
    own = {name: cls for name, cls in DETECTORS.items() if cls.__module__.startswith("oddkit.")}
    # + GradientKNNDetector, LOFDetector, VoiceConversion, TextAutoEncoderDetector, TextSummaryAutoEncoder,
    # TreeAutoEncoder
    assert len(own) == 18
    for name, cls in own.items():
        constraints = merged_constraints(cls)
        missing = set(cls._get_param_names()) - set(constraints)
        assert not missing, f"{name} has parameters without constraints: {missing}"
        shared = set(BaseDetector._parameter_constraints)
        assert set(cls.__dict__.get("_parameter_constraints", {})) <= set(cls._get_param_names()) | shared


@pytest.mark.parametrize("cls", list(DETECTORS.values()), ids=list(DETECTORS))
def test_defaults_are_valid(cls):
    cls()._validate_params()  # raises if a default broke its own constraint


BAD = [
    # The cases the issue names (hidden_sizes=[0] / "abc", latent_dim=0 was a ZeroDivisionError, ...).
    (AutoEncoderDetector, "hidden_sizes", [0]),
    (AutoEncoderDetector, "hidden_sizes", "abc"),
    (AutoEncoderDetector, "hidden_sizes", []),
    (AutoEncoderDetector, "hidden_sizes", [16, 2.5]),
    (AutoEncoderDetector, "latent_dim", 0),
    (AutoEncoderDetector, "lr", "abc"),
    (OneClassSVMDetector, "nu", 5),
    (IsolationForestDetector, "max_samples", -3),
    # Shared parameters, on several detectors.
    (GaussianDetector, "contamination", 0.6),
    (KNNDetector, "contamination", 0),
    (PCADetector, "contamination", float("nan")),
    (AutoEncoderDetector, "contamination", "0.1"),
    (GaussianDetector, "impute", "mean"),
    (KNNDetector, "unknown_categories", "skip"),
    (AutoEncoderDetector, "random_state", "seed"),
    (AutoEncoderDetector, "verbose", -1),
    (AutoEncoderDetector, "device", "gpu"),
    (AutoEncoderDetector, "n_threads", 0),
    (KNNDetector, "n_jobs", "all"),
    # Auto-encoder family.
    (AutoEncoderDetector, "n_estimators", 0),
    (AutoEncoderDetector, "epochs", 0),
    (AutoEncoderDetector, "batch_size", "big"),
    (AutoEncoderDetector, "lr", 0.0),
    (AutoEncoderDetector, "lr", float("inf")),
    (AutoEncoderDetector, "weight_decay", -1e-3),
    (AutoEncoderDetector, "validation_fraction", 1.0),
    (AutoEncoderDetector, "patience", -1),
    (AutoEncoderDetector, "noise", "blur"),
    (AutoEncoderDetector, "noise_level", -0.1),
    (AutoEncoderDetector, "normalize_errors", "diagonal"),
    (AutoEncoderDetector, "robust", "yes"),
    (AutoEncoderDetector, "exposure_weight", -1.0),
    (AutoEncoderDetector, "exposure_margin", 0.0),
    (VAEDetector, "beta", -1.0),
    (VAEDetector, "latent_dim", 2.5),
    (VQVAEDetector, "codebook_size", 1),
    (VQVAEDetector, "codebook_size", 70_000),
    (VQVAEDetector, "code_dim", 0),
    (VQVAEDetector, "n_positions", -2),
    (VQVAEDetector, "commitment_weight", -1.0),
    (VQVAEDetector, "rarity_weight", float("nan")),
    (DisentangledAutoEncoderDetector, "class_dim", 0),
    (DisentangledAutoEncoderDetector, "swap_weight", -1.0),
    (DisentangledAutoEncoderDetector, "adversary_weight", "high"),
    (TransformationDetector, "conv_channels", (32, 0)),
    (TransformationDetector, "hidden", 0),
    (TransformationDetector, "epochs", -1),
    # Classic detectors.
    (GaussianDetector, "shrinkage", 2.0),
    (GaussianDetector, "shrinkage", "lw"),
    (GaussianDetector, "ridge", -1e-6),
    (GaussianDetector, "robust", 1),
    (PCADetector, "n_components", 0),
    (PCADetector, "n_components", 1.5),
    (KNNDetector, "n_neighbors", 0),
    (KNNDetector, "n_neighbors", True),
    (KNNDetector, "n_neighbors", 2.5),
    (KNNDetector, "method", "max"),
    (KNNDetector, "algorithm", "annoy"),
    (LOFDetector, "n_neighbors", 0),
    (LOFDetector, "n_neighbors", 2.5),
    (LOFDetector, "algorithm", "annoy"),
    (LOFDetector, "n_jobs", 0),
    (OneClassSVMDetector, "nu", 0.0),
    (OneClassSVMDetector, "kernel", "cosine"),
    (OneClassSVMDetector, "gamma", -1.0),
    (OneClassSVMDetector, "tol", 0.0),
    (OneClassSVMDetector, "max_iter", -2),
    (IsolationForestDetector, "n_estimators", 0),
    (IsolationForestDetector, "max_samples", 1.5),
    (IsolationForestDetector, "max_features", 0.0),
    (IsolationForestDetector, "bootstrap", "no"),
    (EnsembleDetector, "members", "knn"),
    (EnsembleDetector, "combine", "vote"),
    # Open-set classifier.
    (ClassifierConfidenceDetector, "classifier", "svm"),
    (ClassifierConfidenceDetector, "classifier", object()),
    (ClassifierConfidenceDetector, "score", "confidence"),
    (ClassifierConfidenceDetector, "n_neighbors", "many"),
    (ClassifierConfidenceDetector, "dropout", 1.0),
    (ClassifierConfidenceDetector, "temperature", 0),
    (ClassifierConfidenceDetector, "exposure_loss", "flat"),
    (ClassifierConfidenceDetector, "augment", "flip"),
    (ClassifierConfidenceDetector, "rotation_weight", -1),
    (ClassifierConfidenceDetector, "clip_percentile", 101),
]


def _test_id(cls, name, value):
    """Stable across processes (pytest-xdist's workers must collect the same ids): object()'s repr holds an
    address, so a bare object is named by its type."""
    shown = "object()" if type(value) is object else repr(value)
    return f"{cls.__name__}-{name}-{shown}"


@pytest.mark.parametrize("cls, name, value", BAD, ids=[_test_id(*bad) for bad in BAD])
def test_a_bad_value_is_a_one_line_parameter_error_before_any_data_is_read(cls, name, value):
    # X=None: the parameters are checked first, so the error is about them, never about the data.
    with pytest.raises(ParameterError) as caught:
        fit(cls(**{name: value}), data=None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{cls.__name__}: {name} must be "), message
    assert f"got {value!r}" in message
    assert not isinstance(caught.value, DataError)  # a bad setting is not bad data
    assert isinstance(caught.value, (OddkitError, ValueError))


def test_messages_say_what_is_allowed():
    cases = {
        AutoEncoderDetector(lr="abc"): "lr must be a number > 0, got 'abc'",
        OneClassSVMDetector(nu=5): "nu must be a number in (0, 1), got 5",
        IsolationForestDetector(max_samples=-3): "max_samples must be one of 'auto', an integer >= 1 or a number in "
                                                 "(0, 1], got -3",
        AutoEncoderDetector(latent_dim=0): "latent_dim must be an integer >= 1 or None, got 0",
        KNNDetector(method="max"): "method must be one of 'largest', 'mean', 'median', got 'max'",
        IsolationForestDetector(bootstrap="no"): "bootstrap must be True or False, got 'no'",
    }
    for detector, text in cases.items():
        with pytest.raises(ParameterError) as caught:
            detector.fit(X)
        assert str(caught.value) == f"{type(detector).__name__}: {text}"


@pytest.mark.parametrize("detector, text", [
    (AutoEncoderDetector(noise="mask", noise_level=1.0), "noise_level must be below 1 with noise='mask'"),
    (EnsembleDetector(members=("knn", "nope")), "members must be a non-empty list of names from knn"),
    (EnsembleDetector(members=()), "members must be a non-empty list"),
    (DisentangledAutoEncoderDetector(latent_dim=1), "latent_dim must be at least 2"),
    (DisentangledAutoEncoderDetector(latent_dim=4, class_dim=4), "class_dim must be between 1 and latent_dim - 1"),
    (ClassifierConfidenceDetector(classifier="mlp", augment="shift"), "augment='shift' moves images"),
])
def test_combinations_of_parameters_are_parameter_errors_too(detector, text):
    with pytest.raises(ParameterError, match=text):
        fit(detector, data=None)


def test_classifier_combinations_with_a_scikit_learn_classifier():
    from sklearn.linear_model import LogisticRegression

    for params, text in [({"score": "energy"}, "logits"), ({"score": "knn"}, "hidden layer"),
                         ({"clip_percentile": 90}, "clip_percentile")]:
        with pytest.raises(ParameterError, match=text):
            ClassifierConfidenceDetector(classifier=LogisticRegression(), **params).fit(X, CLASSES)


def test_valid_values_of_other_types_pass():
    # NumPy scalars, booleans where booleans are meant, fractions as NumPy floats.
    for detector in (KNNDetector(n_neighbors=np.int64(3)), PCADetector(n_components=np.float32(0.5)),
                     GaussianDetector(shrinkage=0.3, robust=True), IsolationForestDetector(max_samples=0.5,
                                                                                           n_estimators=5),
                     OneClassSVMDetector(gamma=0.5, nu=0.2)):
        assert detector.fit(X).decision_scores_.shape == (len(X),)
    AutoEncoderDetector(hidden_sizes=np.array([8, 4]), normalize_errors=True, device="cuda:1")._validate_params()
    AutoEncoderDetector(hidden_sizes=(8,), batch_size=16, patience=None, verbose=False)._validate_params()


def test_set_params_is_checked_at_the_next_fit():
    detector = KNNDetector().fit(X)
    detector.set_params(n_neighbors=-1)
    with pytest.raises(ParameterError, match="n_neighbors"):
        detector.fit(X)


# -- n_neighbors larger than the training set ----------------------------------------------------

def test_knn_clamps_n_neighbors_to_the_training_rows_with_a_warning():
    rows = np.random.default_rng(1).normal(size=(200, 3))
    with pytest.warns(OddkitWarning, match=r"n_neighbors=1000 .* 200 rows.*n_neighbors_=199"):
        clamped = KNNDetector(n_neighbors=1000).fit(rows)
    assert clamped.n_neighbors_ == 199
    exact = KNNDetector(n_neighbors=199).fit(rows)
    np.testing.assert_array_equal(clamped.decision_scores_, exact.decision_scores_)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OddkitWarning)
        assert KNNDetector(n_neighbors=199).fit(rows).n_neighbors_ == 199


def test_lof_clamps_n_neighbors_as_knn_does():
    rows = np.random.default_rng(1).normal(size=(30, 3))
    with pytest.warns(OddkitWarning, match=r"LOFDetector: n_neighbors=1000 .* 30 rows.*n_neighbors_=29"):
        clamped = LOFDetector(n_neighbors=1000).fit(rows)
    assert clamped.n_neighbors_ == 29
    np.testing.assert_array_equal(clamped.decision_scores_, LOFDetector(n_neighbors=29).fit(rows).decision_scores_)


def test_default_ensemble_on_a_small_table_does_not_warn():
    # Its 50-neighbour member is the ensemble's choice, not the user's: it takes what there is quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("error", OddkitWarning)
        ensemble = EnsembleDetector(members=("knn1", "knn50", "knn"), random_state=0).fit(X[:30])
    assert [m.n_neighbors_ for m in ensemble.members_] == [1, 29, 5]
    assert [m.n_neighbors for m in ensemble.members_] == [1, 29, 5]


def test_classifier_knn_score_clamps_n_neighbors_with_a_warning():
    detector = ClassifierConfidenceDetector(score="knn", n_neighbors=500, epochs=1, n_estimators=1,
                                            random_state=0, verbose=0)
    with pytest.warns(OddkitWarning, match="n_neighbors=500"):
        detector.fit(X, CLASSES)
    assert detector.n_neighbors_ == len(X) - 1


# -- sparse input --------------------------------------------------------------------------------

SPARSE_KINDS = [scipy.sparse.csr_matrix, scipy.sparse.csr_array, scipy.sparse.coo_matrix]


@pytest.mark.parametrize("cls", list(DETECTORS.values()), ids=list(DETECTORS))
@pytest.mark.parametrize("kind", SPARSE_KINDS, ids=lambda k: k.__name__)
def test_sparse_input_is_refused_at_fit(cls, kind):
    with pytest.raises(DataError, match=r"sparse .*X\.toarray\(\)"):
        fit(cls(), data=kind(X))


@pytest.mark.parametrize("detector", [
    GaussianDetector(), KNNDetector(), LOFDetector(), PCADetector(), OneClassSVMDetector(),
    IsolationForestDetector(n_estimators=5),
    AutoEncoderDetector(epochs=1, verbose=0), VAEDetector(epochs=1, verbose=0),
    VQVAEDetector(epochs=1, codebook_size=4, verbose=0), EnsembleDetector(members=("knn1", "gaussian")),
    ClassifierConfidenceDetector(epochs=1, n_estimators=1, verbose=0),
    DisentangledAutoEncoderDetector(epochs=1, verbose=0),
], ids=lambda d: type(d).__name__)
def test_sparse_input_is_refused_at_scoring(detector):
    fit(detector)
    for kind in SPARSE_KINDS:
        with pytest.raises(DataError, match=r"sparse .*X\.toarray\(\)"):
            detector.decision_function(kind(X[:5]))


def test_sparse_images_are_refused_by_the_transformation_detector_at_scoring():
    detector = TransformationDetector(epochs=1, conv_channels=(4,), hidden=8, verbose=0).fit(IMAGES)
    with pytest.raises(DataError, match="sparse"):
        detector.decision_function(scipy.sparse.csr_matrix(IMAGES.reshape(len(IMAGES), -1)))
