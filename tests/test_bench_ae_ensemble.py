"""The members of benchmarks/tabular_ae_ensemble.py (search_members.RandNetMember and
DTENonParametric): planted anomalies score highest, fits repeat exactly, DTE-NP follows its formula."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if not (BENCHMARKS / "search_members.py").exists():
    pytest.skip("benchmarks/ is not beside the tests", allow_module_level=True)
sys.path.insert(0, str(BENCHMARKS))


pytestmark = pytest.mark.usefixtures("detector_registry_as_it_was")  # search_members registers detectors


@pytest.fixture
def one_torch_thread():
    """Small networks train fastest on one thread (and the tests may share the machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planted(seed=0):
    """300 correlated normal training rows; a test set of 40 normal rows and 8 rows far off them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    mix = np.array([[1, 0.8, 0, 0], [0, 0.6, 0, 0], [0, 0, 1, 0.5], [0, 0, 0, 1]])
    train = rng.normal(size=(300, 4)) @ mix
    test = np.vstack([rng.normal(size=(40, 4)) @ mix, rng.normal(scale=0.3, size=(8, 4)) + [5, -5, 5, -5]])
    return train, test, np.r_[np.zeros(40), np.ones(8)]


@pytest.mark.parametrize("build", ["randnet", "dte-np"])
def test_planted_anomalies_score_highest_and_fits_repeat(build, one_torch_thread):
    import numpy as np
    import search_members

    make = {"randnet": lambda: search_members.RandNetMember(n_members=5, epochs=10, seed=3),
            "dte-np": lambda: search_members.DTENonParametric()}[build]
    train, test, y = planted()
    member = make().fit(train)
    scores = member.decision_function(test)
    assert np.isfinite(scores).all() and np.isfinite(member.decision_scores_).all()
    assert member.decision_scores_.shape == (len(train),)
    assert scores[y == 1].min() > scores[y == 0].max()
    again = make().fit(train)
    assert np.array_equal(scores, again.decision_function(test))
    assert np.array_equal(member.decision_scores_, again.decision_scores_)


def test_dte_np_is_the_posterior_mean_step_of_the_authors_inverse_gamma():
    import numpy as np
    import search_members
    from scipy.special import logsumexp
    from scipy.stats import invgamma

    train, test, _ = planted(1)
    member = search_members.DTENonParametric(n_neighbors=5, steps=500).fit(train)
    base = search_members.DTENonParametric(n_neighbors=5, posterior=False).fit(train)
    m = base.decision_function(test)
    # m(x) is the mean squared distance to the 5 nearest standardised training rows
    Z = (train - train.mean(axis=0)) / train.std(axis=0)
    Q = (test - train.mean(axis=0)) / train.std(axis=0)
    squared = np.sort(((Q[:, None, :] - Z[None, :, :]) ** 2).sum(axis=-1), axis=1)[:, :5]
    assert np.allclose(m, squared.mean(axis=1))
    # the posterior as the authors' code writes it, with scipy's inverse-gamma density
    variances = 1.0 - np.cumprod(1.0 - np.linspace(1e-4, 0.01, 500))
    expected = []
    for value in m:
        log_density = invgamma.logpdf(variances, a=0.5 * train.shape[1] - 1, loc=0, scale=value / 2)
        expected.append(np.exp(log_density - logsumexp(log_density)) @ np.arange(500))
    assert np.allclose(member.decision_function(test), expected)
    # an increasing function of m(x): the same order wherever it is not flat
    order = np.argsort(m)
    assert np.all(np.diff(member.decision_function(test)[order]) >= -1e-9)
    # a training row's own score leaves itself out
    assert (base.decision_scores_ > 0).all()
