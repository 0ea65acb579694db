"""Virtual outlier synthesis (VOS, issue 23): the least likely samples against a brute-force oracle,
a classifier trained with them, persistence, and the errors for the places that cannot use them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from oddkit import AutoEncoderDetector, ClassifierConfidenceDetector, PseudoAnomalies, load
from oddkit.detectors import vos
from oddkit.detectors.vos import VirtualOutlierSynthesis
from oddkit.exceptions import ParameterError


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one thread is fastest on a shared machine."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


def three_blobs_and_unknowns():
    """Three known classes in 4-D, and test rows: 150 known, 100 of an unknown blob between and
    beside them."""
    rng = np.random.default_rng(0)
    centres = np.array([[-3, 0, 0, 0], [3, 0, 0, 0], [0, 3, 0, 0]], dtype=float)
    classes = np.repeat([0, 1, 2], 200)
    X = centres[classes] + rng.normal(size=(600, 4))
    test = np.r_[centres[np.repeat([0, 1, 2], 50)] + rng.normal(size=(150, 4)),
                 np.array([0, -3, 4, 0]) + rng.normal(size=(100, 4))]
    return X, classes, test, np.r_[np.zeros(150), np.ones(100)]


class CountingSynthesis(VirtualOutlierSynthesis):
    """Counts the batches that got virtual outliers."""

    used = 0

    def sample(self, classes, generator):
        points = super().sample(classes, generator)
        CountingSynthesis.used += points is not None
        return points


@pytest.fixture
def counting(monkeypatch):
    CountingSynthesis.used = 0
    monkeypatch.setattr(vos, "VirtualOutlierSynthesis", CountingSynthesis)
    return CountingSynthesis


def test_the_least_likely_sample_matches_the_brute_force_choice():
    """Oracle: draw N samples of the fitted Gaussian and keep the one of lowest scipy logpdf; its
    Mahalanobis radius and the sampler's have the same distribution (Kolmogorov-Smirnov), and the
    samples sit around their class's mean."""
    rng = np.random.default_rng(0)
    d, n_candidates = 3, 50
    features = torch.from_numpy(rng.normal(size=(400, d)) @ np.diag([1.0, 2.0, 0.5]) + [5.0, 0.0, 0.0])
    classes = torch.zeros(400, dtype=torch.long)
    synthesis = VirtualOutlierSynthesis([400], n_features=d, warmup_steps=0, candidates=n_candidates, queue_rows=400)
    synthesis.add(features, classes)
    points = synthesis.sample(torch.zeros(3000, dtype=torch.long), torch.Generator().manual_seed(0)).numpy()
    mean = synthesis.means[0].numpy()
    covariance = (synthesis.cholesky @ synthesis.cholesky.T).numpy()
    gaussian = stats.multivariate_normal(mean, covariance)
    draws = gaussian.rvs(size=(3000, n_candidates), random_state=1)
    kept = draws[np.arange(3000), np.argmin(gaussian.logpdf(draws), axis=1)]
    precision = np.linalg.inv(covariance)

    def radius(p):
        return np.einsum("ij,jk,ik->i", p - mean, precision, p - mean)

    assert stats.ks_2samp(radius(points), radius(kept)).pvalue > 0.01
    assert np.abs(points.mean(axis=0) - mean).max() < 0.3


def test_no_virtual_outliers_before_the_queues_fill_and_the_warm_up_ends():
    synthesis = VirtualOutlierSynthesis([10, 10], n_features=2, warmup_steps=1, queue_rows=10)
    generator = torch.Generator().manual_seed(0)
    synthesis.add(torch.randn(10, 2, generator=generator), torch.zeros(10, dtype=torch.long))
    assert synthesis.sample(torch.zeros(4, dtype=torch.long), generator) is None  # the warm-up step
    assert synthesis.sample(torch.zeros(4, dtype=torch.long), generator) is None  # class 1's queue empty
    synthesis.add(torch.randn(10, 2, generator=generator), torch.ones(10, dtype=torch.long))
    assert synthesis.sample(torch.zeros(4, dtype=torch.long), generator).shape == (4, 2)


def test_vos_ranks_planted_unknowns_above_the_known_classes(counting):
    X, classes, test, unknown = three_blobs_and_unknowns()
    detector = ClassifierConfidenceDetector(epochs=10, n_estimators=2, random_state=0, verbose=0)
    detector.fit(X, classes, known_anomalies=PseudoAnomalies("vos"))
    assert counting.used > 0
    assert detector.clip_percentile_ is None  # trained with (virtual) outliers, as with known anomalies
    assert roc_auc_score(unknown, detector.decision_function(test)) > 0.95
    # The saved network is the classifier alone: the logistic regression on the energy is gone.
    assert set(detector.model_.state_dict()) == set(detector._build_module(len(detector.classes_)).state_dict())


def test_vos_is_reproducible_and_differs_from_no_exposure():
    X, classes, test, _ = three_blobs_and_unknowns()

    def scores(known):
        return ClassifierConfidenceDetector(epochs=4, n_estimators=1, clip_percentile=None, random_state=3,
                                            verbose=0).fit(X, classes, known_anomalies=known).decision_function(test)

    first = scores(PseudoAnomalies("vos"))
    np.testing.assert_array_equal(first, scores(PseudoAnomalies("vos")))
    assert not np.allclose(first, scores(None))


def test_no_virtual_outliers_within_the_warm_up(counting):
    X, classes, _, _ = three_blobs_and_unknowns()
    ClassifierConfidenceDetector(epochs=vos.WARMUP_EPOCHS, n_estimators=1, random_state=0, verbose=0).fit(
        X, classes, known_anomalies=PseudoAnomalies("vos"))
    assert counting.used == 0


def test_vos_on_images_with_the_rotation_task_saves_and_loads_identically(tmp_path, counting):
    rng = np.random.default_rng(1)
    images = np.zeros((120, 12, 12), dtype=np.float32)
    classes = np.arange(120) % 2
    for i, (c, at) in enumerate(zip(classes, rng.integers(2, 9, size=120))):
        if c:
            images[i, 2:10, at:at + 2] = 1.0
        else:
            images[i, at:at + 2, 2:10] = 1.0
    detector = ClassifierConfidenceDetector(epochs=4, n_estimators=1, random_state=0, verbose=0)
    detector.fit(images, classes, known_anomalies=PseudoAnomalies("vos"))
    assert detector.backend_ == "cnn" and detector._learns_rotations() and counting.used > 0
    detector.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    probe = np.r_[images[:10], rng.random((5, 12, 12)).astype(np.float32)]
    np.testing.assert_array_equal(loaded.decision_function(probe), detector.decision_function(probe))
    np.testing.assert_array_equal(loaded.predict_class(probe), detector.predict_class(probe))


def test_vos_makes_no_rows_and_bad_values_raise_the_documented_error():
    X, classes, _, _ = three_blobs_and_unknowns()
    with pytest.raises(ParameterError, match="ClassifierConfidenceDetector"):
        PseudoAnomalies("vos").generate(X, classes)
    with pytest.raises(ParameterError, match="ClassifierConfidenceDetector"):
        AutoEncoderDetector(epochs=1, verbose=0).fit(X, known_anomalies=PseudoAnomalies("vos"))
    with pytest.raises(ParameterError, match="vos"):
        ClassifierConfidenceDetector(epochs=1, verbose=0).fit(X, classes, known_anomalies=PseudoAnomalies("VOS"))
    with pytest.raises(ParameterError, match="n_samples"):
        ClassifierConfidenceDetector(epochs=1, verbose=0).fit(
            X, classes, known_anomalies=PseudoAnomalies("vos", n_samples=0))
