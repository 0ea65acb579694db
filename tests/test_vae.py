"""The variational auto-encoder: its ELBO against independent closed forms, ranking, sampling,
codes and saving."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.distributions import Normal, kl_divergence

import oddkit
from oddkit import VAEDetector
from oddkit.exceptions import ColumnMismatchError, DataError, NonFiniteError, ParameterError
from oddkit.nn.vae import bernoulli_entropy, conv_vae, gaussian_kl, mlp_vae
from synthetic_images import bar_split


def fast_vae(**params):
    return VAEDetector(**{"epochs": 40, "random_state": 0, "verbose": 0, "n_threads": 1, **params})


@pytest.fixture(scope="module")
def table_vae(breast_cancer_split):
    X_train, _, _ = breast_cancer_split
    return fast_vae(beta=0.5).fit(X_train)


def test_kl_matches_torch_distributions():
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(3, 7, 5, generator=generator) * 2
    log_var = torch.randn(3, 7, 5, generator=generator)
    expected = kl_divergence(Normal(mean, torch.exp(0.5 * log_var)), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mean, log_var), expected, rtol=1e-5, atol=1e-5)
    assert float(gaussian_kl(torch.zeros(1, 4), torch.zeros(1, 4))) == 0.0


def test_bernoulli_term_is_zero_for_a_perfect_reconstruction():
    model = conv_vae((1, 8, 8), (4,), 2)
    x = torch.rand(5, 64) * 0.98 + 0.01
    raw = torch.logit(x).unsqueeze(0)
    torch.testing.assert_close(model.reconstruction_nll(raw, x), torch.zeros(1, 5), atol=1e-4, rtol=0)
    # Otherwise it is the KL divergence between the pixels' Bernoulli distributions: positive.
    assert (model.reconstruction_nll(torch.zeros_like(raw), x) > 0).all()
    assert float(bernoulli_entropy(torch.tensor([0.0, 1.0])).sum()) == 0.0


def test_score_is_the_negative_elbo_at_the_posterior_mean(table_vae, breast_cancer_split):
    _, X_test, _ = breast_cancer_split
    Z = torch.from_numpy(table_vae.preprocessor_.transform(X_test))
    with torch.no_grad():
        mean, log_var = table_vae.model_.encode_distribution(Z)
        reconstruction = table_vae.model_.decode(mean)
    # Independent oracle: the Gaussian log-likelihood with unit variance (minus its constant) and
    # torch.distributions' KL, weighted by beta.
    nll = -Normal(reconstruction.double(), 1.0).log_prob(Z.double().unsqueeze(0)).sum(-1) - 0.5 * Z.shape[1] * np.log(2 * np.pi)
    kl = kl_divergence(Normal(mean.double(), torch.exp(0.5 * log_var.double())), Normal(0.0, 1.0)).sum(-1)
    expected = (nll + 0.5 * kl).mean(0).numpy()
    np.testing.assert_allclose(table_vae.decision_function(X_test), expected, rtol=1e-4)


def test_ranks_malignant_above_benign_and_is_deterministic(table_vae, breast_cancer_split):
    _, X_test, y_test = breast_cancer_split
    scores = table_vae.decision_function(X_test)
    # Measured (seed 0, 40 epochs, beta 0.5): 0.961. Bound as for the auto-encoder.
    assert roc_auc_score(y_test, scores) >= 0.93
    np.testing.assert_array_equal(table_vae.decision_function(X_test), scores)
    again = fast_vae(beta=0.5).fit(breast_cancer_split[0])
    np.testing.assert_array_equal(again.decision_function(X_test), scores)


def test_generate_and_codes_in_the_input_space(table_vae, breast_cancer_split):
    X_train, X_test, _ = breast_cancer_split
    samples = table_vae.generate(50, random_state=1)
    assert isinstance(samples, pd.DataFrame) and list(samples.columns) == list(X_train.columns)
    assert samples.shape == (50, X_train.shape[1]) and np.isfinite(samples.to_numpy()).all()
    pd.testing.assert_frame_equal(table_vae.generate(50, random_state=1), samples)
    assert not samples.equals(table_vae.generate(50, random_state=2))
    codes = table_vae.transform(X_test)
    assert codes.shape == (len(X_test), table_vae.latent_dim_) and codes.dtype == np.float32
    back = table_vae.inverse_transform(codes)
    assert isinstance(back, pd.DataFrame) and back.shape == X_test.shape
    # Decoding the posterior mean gives the deterministic reconstruction, in original units.
    np.testing.assert_allclose(table_vae.preprocessor_.transform(back), table_vae.reconstruct(X_test), atol=1e-4)
    arrays = fast_vae(epochs=2).fit(X_train.to_numpy())
    assert isinstance(arrays.generate(3), np.ndarray) and arrays.generate(3).shape == (3, X_train.shape[1])
    with pytest.raises(DataError, match="positive integer"):
        table_vae.generate(0)
    with pytest.raises(ColumnMismatchError, match="codes"):
        table_vae.inverse_transform(codes[:, :1])
    with pytest.raises(NonFiniteError):
        table_vae.inverse_transform(np.full_like(codes, np.nan))


def test_members_beta_and_saving(mixed_frame, tmp_path):
    detector = fast_vae(epochs=5, n_estimators=3, beta=2.0, noise="gaussian").fit(mixed_frame)
    codes = detector.transform(mixed_frame)  # the first network's code, not three side by side
    assert codes.shape == (len(mixed_frame), detector.latent_dim_)
    assert detector.inverse_transform(codes).shape == mixed_frame.shape
    assert detector.generate(7, random_state=0).shape == (7, mixed_frame.shape[1])
    detector.save(tmp_path / "vae")
    loaded = oddkit.load(tmp_path / "vae")
    assert loaded.beta == 2.0 and loaded.n_estimators_ == 3
    np.testing.assert_array_equal(loaded.decision_function(mixed_frame), detector.decision_function(mixed_frame))
    pd.testing.assert_frame_equal(loaded.generate(5, random_state=3), detector.generate(5, random_state=3))
    assert float(fast_vae(beta=0.0, epochs=2).fit(mixed_frame).beta) == 0.0
    with pytest.raises(ParameterError, match="beta"):
        fast_vae(beta=-1.0).fit(mixed_frame)


def test_images_generate_in_the_input_layout(tmp_path):
    train, test, _ = bar_split(n_train=64, n_test=8)
    detector = fast_vae(epochs=2).fit(train)
    samples = detector.generate(6, random_state=0)
    assert samples.shape == (6, 28, 28) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    four_d = fast_vae(epochs=1).fit(train[:, None])
    assert four_d.generate(2, random_state=0).shape == (2, 1, 28, 28)
    detector.save(tmp_path / "m")
    np.testing.assert_array_equal(oddkit.load(tmp_path / "m").generate(6, random_state=0), samples)


def test_mlp_vae_without_hidden_layers():
    model = mlp_vae(6, (), 2)
    mean, log_var = model.encode_distribution(torch.zeros(4, 6))
    assert mean.shape == log_var.shape == (1, 4, 2)
    assert model(torch.zeros(4, 6)).shape == (1, 4, 6)
