"""The vector quantiser (nearest codes, straight-through gradients, EMA codebook, dead codes) and
the VQ-VAE detector built on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

import oddkit
from oddkit import VQVAEDetector
from oddkit.exceptions import ColumnMismatchError, DataError, ParameterError
from oddkit.nn.vq import VectorQuantizer
from synthetic_images import bar_split


def fast_vq(**params):
    return VQVAEDetector(**{"epochs": 40, "random_state": 0, "verbose": 0, "n_threads": 1, **params})


@pytest.fixture(scope="module")
def table_vq(breast_cancer_split):
    return fast_vq(codebook_size=32).fit(breast_cancer_split[0])


# -- the quantiser ---------------------------------------------------------------------------------

def test_quantizer_picks_the_nearest_code_with_straight_through_gradients():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(codebook_size=10, dim=3).eval()
    z = torch.randn(4, 6, 3, requires_grad=True)
    quantized, indices, commitment = quantizer(z)
    brute = ((z.detach()[..., None, :] - quantizer.codebook) ** 2).sum(-1).argmin(-1)
    torch.testing.assert_close(indices, brute)
    torch.testing.assert_close(quantized.detach(), quantizer.codebook[brute])
    torch.testing.assert_close(commitment, ((z - quantizer.codebook[brute]) ** 2).mean(-1))
    # Straight through: d(sum of quantised)/dz is 1 everywhere.
    quantized.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))


def test_ema_update_follows_the_moving_averages_and_reseeds_dead_codes():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(codebook_size=3, dim=2, decay=0.5, dead_code_threshold=0.1, eps=0.0)
    quantizer.codebook.copy_(torch.tensor([[10.0, 0.0], [0.0, -10.0], [-5.0, 5.0]]))
    quantizer.cluster_size.fill_(2.0)
    quantizer.embed_sum.copy_(quantizer.codebook * 2.0)
    quantizer.initialized.fill_(True)
    batch = torch.tensor([[11.0, 0.0], [12.0, 0.0], [0.0, -11.0]])
    quantizer.train()
    _, indices, _ = quantizer(batch)
    assert indices.tolist() == [0, 0, 1]
    # By hand: count' = 0.5 * 2 + 0.5 * count, sum' = 0.5 * (2 * code) + 0.5 * sum, code = sum' / count'.
    expected = torch.tensor([[(10.0 + 0.5 * 23.0) / 2.0, 0.0], [0.0, (-10.0 - 0.5 * 11.0) / 1.5], [-5.0, 5.0]])
    torch.testing.assert_close(quantizer.codebook, expected)
    torch.testing.assert_close(quantizer.cluster_size, torch.tensor([2.0, 1.5, 1.0]))
    # Code 2 is never chosen; once its count falls below the threshold it is moved onto a batch vector.
    for _ in range(4):
        quantizer(batch)
    assert torch.cdist(quantizer.codebook[2:], batch).min() < 1e-5
    quantizer.eval()
    before = quantizer.codebook.clone()
    quantizer(batch * 3)
    torch.testing.assert_close(quantizer.codebook, before)  # no updates outside training


def test_codebook_starts_from_training_vectors():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(codebook_size=4, dim=2).train()
    batch = torch.randn(50, 2) + 100
    quantizer(batch)
    assert bool(quantizer.initialized)
    assert torch.cdist(quantizer.codebook, batch).min(dim=1).values.max() < 1.0


# -- the detector ----------------------------------------------------------------------------------

def test_ranks_malignant_above_benign(table_vq, breast_cancer_split):
    _, X_test, y_test = breast_cancer_split
    # Measured (seed 0, 40 epochs, 32 codes): 0.955 (codebook usage 1.0, perplexity 29.1 of 32).
    # Bound as for the auto-encoder.
    assert roc_auc_score(y_test, table_vq.decision_function(X_test)) >= 0.93


def test_codes_usage_and_perplexity(table_vq, breast_cancer_split):
    X_train, X_test, _ = breast_cancer_split
    codes = table_vq.encode_codes(X_test)
    assert codes.dtype == np.int64 and codes.shape == (len(X_test), table_vq.n_positions_)
    assert codes.min() >= 0 and codes.max() < table_vq.codebook_size_ == 32
    # Usage and perplexity recomputed from the training rows' codes.
    counts = np.bincount(table_vq.encode_codes(X_train).ravel(), minlength=32)
    p = counts[counts > 0] / counts.sum()
    assert table_vq.codebook_usage_ == pytest.approx(np.count_nonzero(counts) / 32)
    assert table_vq.perplexity_ == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert 0 < table_vq.codebook_usage_ <= 1 and 1 <= table_vq.perplexity_ <= 32
    assert table_vq.codebook_usage_ >= 0.5  # EMA updates and dead-code re-seeding keep codes in use
    decoded = table_vq.decode_codes(codes)
    assert isinstance(decoded, pd.DataFrame) and list(decoded.columns) == list(X_test.columns)
    # The codes' embedding decodes to the same rows.
    embedding = table_vq.transform(X_test)
    assert embedding.shape == (len(X_test), table_vq.n_positions_ * table_vq.code_dim_)
    pd.testing.assert_frame_equal(table_vq.inverse_transform(embedding), decoded, atol=1e-4)


def test_rarity_adds_the_codes_surprise(table_vq, breast_cancer_split):
    X_train, X_test, _ = breast_cancer_split
    rare = fast_vq(codebook_size=32, rarity_weight=0.5).fit(X_train)
    np.testing.assert_array_equal(rare.encode_codes(X_test), table_vq.encode_codes(X_test))
    surprise = -table_vq.code_log_prob_[table_vq.encode_codes(X_test)].mean(axis=1)
    np.testing.assert_allclose(rare.decision_function(X_test),
                               table_vq.decision_function(X_test) + 0.5 * surprise, rtol=1e-12)


def test_bad_codes_and_parameters(table_vq, mixed_frame):
    codes = table_vq.encode_codes(table_vq.decode_codes(np.zeros((2, table_vq.n_positions_), dtype=int)))
    assert codes.shape == (2, table_vq.n_positions_)
    with pytest.raises(ColumnMismatchError, match="shape"):
        table_vq.decode_codes(np.zeros((2, table_vq.n_positions_ + 1), dtype=int))
    with pytest.raises(DataError, match="0 .. 31"):
        table_vq.decode_codes(np.full((2, table_vq.n_positions_), 32))
    with pytest.raises(DataError, match="integers"):
        table_vq.decode_codes(np.full((2, table_vq.n_positions_), 0.5))
    for bad in [{"codebook_size": 1}, {"code_dim": 0}, {"commitment_weight": -1.0}]:
        with pytest.raises(ParameterError, match=next(iter(bad))):
            fast_vq(epochs=1, **bad).fit(mixed_frame)


def test_saving_keeps_scores_codes_and_statistics(mixed_frame, tmp_path):
    detector = fast_vq(epochs=5, codebook_size=16, n_positions=3, code_dim=2, rarity_weight=0.1,
                       noise="salt_pepper").fit(mixed_frame)
    detector.save(tmp_path / "vq")
    loaded = oddkit.load(tmp_path / "vq")
    np.testing.assert_array_equal(loaded.decision_function(mixed_frame), detector.decision_function(mixed_frame))
    np.testing.assert_array_equal(loaded.encode_codes(mixed_frame), detector.encode_codes(mixed_frame))
    np.testing.assert_array_equal(loaded.code_log_prob_, detector.code_log_prob_)
    assert (loaded.codebook_usage_, loaded.perplexity_, loaded.codebook_size_, loaded.n_positions_) == (
        detector.codebook_usage_, detector.perplexity_, 16, 3)


def test_images_get_a_short_global_code():
    train, test, _ = bar_split(n_train=64, n_test=8)
    detector = fast_vq(epochs=2, codebook_size=64).fit(train)
    codes = detector.encode_codes(test)
    assert codes.shape == (16, 8) and detector.n_positions_ == 8  # 28x28 gray: half the AE's 16-wide code
    assert fast_vq(epochs=1, n_positions=3).fit(train).encode_codes(test).shape == (16, 3)
    back = detector.decode_codes(codes)
    assert back.shape == (16, 28, 28) and back.dtype == np.float32
    np.testing.assert_allclose(back.reshape(16, -1), detector.reconstruct(test), atol=1e-5)
    assert 0 < detector.codebook_usage_ <= 1 and 1 <= detector.perplexity_ <= 64
