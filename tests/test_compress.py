"""Compression with a fitted auto-encoder (oddkit.compress): round trips, sizes, errors, rate-distortion."""

from __future__ import annotations

import json
import struct

import numpy as np
import pandas as pd
import pytest
from conftest import fast_autoencoder

from oddkit.compress import (
    MAGIC,
    _pack,
    _unpack,
    compress,
    decompress,
    dequantize,
    quantize,
    rate_distortion,
    read_header,
)
from oddkit.exceptions import CompressedDataError, DataError


@pytest.fixture(scope="module")
def table():
    """300 rows of 12 correlated columns (rank 4 plus noise)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 12)) + 0.05 * rng.normal(size=(300, 12))
    return pd.DataFrame(X, columns=[f"c{i}" for i in range(12)])


@pytest.fixture(scope="module")
def ae(table):
    return fast_autoencoder(latent_dim=4, epochs=8).fit(table)


@pytest.mark.parametrize("bits", [1, 3, 7, 8, 11, 16])
def test_pack_unpack_every_width(bits):
    rng = np.random.default_rng(bits)
    q = rng.integers(0, 1 << bits, size=(37, 5)).astype(np.uint16)
    assert np.array_equal(_unpack(_pack(q, bits), q.size, bits).reshape(5, 37).T, q)
    assert len(_pack(q, bits)) == -(-q.size * bits // 8)


def test_quantize_error_is_at_most_half_a_step():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(200, 3)).astype(np.float32)
    codes[:, 2] = 1.5  # a constant dimension comes back exactly
    for bits in (2, 8):
        q, mins, maxs = quantize(codes, bits)
        back = dequantize(q, mins, maxs, bits)
        step = (maxs - mins) / ((1 << bits) - 1)
        assert np.all(np.abs(back - codes) <= step / 2 + 1e-5)
        assert np.all(back[:, 2] == 1.5)


def test_round_trip_table(ae, table):
    blob = compress(ae, table, bits=8)
    header = read_header(blob)
    assert blob[:4] == MAGIC
    assert header["n"] == len(table) and header["dims"] == 4 and header["bits"] == 8
    assert header["codec"] in ("lzma", "zlib") and header["detector"] == "AutoEncoderDetector"
    assert len(blob) < table.to_numpy(np.float32).nbytes / 10
    back = decompress(ae, blob)
    assert back.shape == table.shape
    assert list(pd.DataFrame(back).columns) == list(table.columns)
    error = np.mean((np.asarray(back, dtype=np.float64) - table.to_numpy()) ** 2)
    assert np.isfinite(error) and error < np.var(table.to_numpy())


def test_more_bits_cost_more_and_distort_less(ae, table):
    small, large = compress(ae, table, bits=2), compress(ae, table, bits=12)
    assert len(small) < len(large)
    exact = np.asarray(ae.inverse_transform(ae.transform(table)), dtype=np.float64)
    errors = [np.mean((np.asarray(decompress(ae, blob), dtype=np.float64) - exact) ** 2) for blob in (small, large)]
    assert errors[1] < errors[0]


def test_codec_choice_keeps_the_smaller(ae, table):
    sizes = {codec: len(compress(ae, table, codec=codec)) for codec in ("lzma", "zlib", "auto")}
    assert sizes["auto"] == min(sizes["lzma"], sizes["zlib"])
    assert read_header(compress(ae, table, codec="zlib"))["codec"] == "zlib"
    with pytest.raises(DataError, match="codec"):
        compress(ae, table, codec="brotli")
    with pytest.raises(DataError, match="bits"):
        compress(ae, table, bits=0)


def test_damaged_foreign_and_mismatched_blobs_raise(ae, table):
    blob = compress(ae, table.iloc[:50], bits=6)
    damaged = bytearray(blob)
    damaged[-3] ^= 0xFF
    with pytest.raises(CompressedDataError, match="checksum"):
        decompress(ae, bytes(damaged))
    ranges_at = 9 + len(json.dumps(read_header(blob), separators=(",", ":")))
    damaged = bytearray(blob)
    damaged[ranges_at + 1] ^= 0x01  # a value range, outside the compressed body
    with pytest.raises(CompressedDataError, match="checksum"):
        decompress(ae, bytes(damaged))
    with pytest.raises(CompressedDataError, match="checksum|cut short"):
        decompress(ae, blob[:-10])
    with pytest.raises(CompressedDataError, match="not an oddkit compressed blob"):
        decompress(ae, b"PK\x03\x04 a zip file, not ours")
    with pytest.raises(CompressedDataError, match="not an oddkit"):
        decompress(ae, b"")
    newer = blob[:4] + struct.pack("<B", 99) + blob[5:]
    with pytest.raises(CompressedDataError, match="version 99"):
        decompress(ae, newer)
    broken_header = blob[:9] + b"[" + blob[10:]
    with pytest.raises(CompressedDataError, match="header"):
        decompress(ae, broken_header)
    header = read_header(blob)
    lying = json.dumps({**header, "n": header["n"] * 1000}, separators=(",", ":")).encode()
    start = 9 + len(json.dumps(header, separators=(",", ":")))
    forged = blob[:5] + struct.pack("<I", len(lying)) + lying + blob[start:]
    with pytest.raises(CompressedDataError, match="announces"):  # no decompression beyond the header's size
        decompress(ae, forged)
    other = fast_autoencoder(latent_dim=4, epochs=2, random_state=1).fit(table)
    with pytest.raises(CompressedDataError, match="another model"):
        decompress(other, blob)


def test_rate_distortion_against_pca(ae, table):
    report = rate_distortion(ae, table, bits=(2, 8))
    assert list(report["method"]) == ["AutoEncoderDetector", "pca", "AutoEncoderDetector", "pca"]
    assert (report["raw_bits_per_example"] == report["dims"] * report["bits"]).all()
    assert np.isfinite(report[["bits_per_example", "mse", "psnr"]].to_numpy()).all()
    assert (report["bits_per_example"] > 0).all()
    pca = report[report["method"] == "pca"]
    assert pca["mse"].iloc[1] < pca["mse"].iloc[0]  # more bits, less distortion
    assert (report["space"] == "standardised columns").all()


@pytest.fixture(scope="module")
def images():
    """40 tiny 8x8 grayscale images: a bright bar at a random row."""
    rng = np.random.default_rng(3)
    X = rng.integers(0, 40, size=(40, 8, 8)).astype(np.uint8)
    X[np.arange(40), rng.integers(0, 8, 40)] = 255
    return X


def test_round_trip_images_with_a_conv_autoencoder(images):
    conv = fast_autoencoder(epochs=2).fit(images)
    blob = compress(conv, images, bits=8)
    assert len(blob) < images.size * 4 / 4  # far below float32 pixels
    back = decompress(conv, blob)
    assert isinstance(back, np.ndarray) and back.shape[0] == 40
    assert back.reshape(40, -1).shape[1] == 64 and back.min() >= 0.0 and back.max() <= 1.0
    report = rate_distortion(conv, images, bits=(4,))
    assert (report["space"] == "pixels in [0, 1]").all()
    assert np.isfinite(report[["mse", "psnr"]].to_numpy()).all() and (report["mse"] < 1).all()


def test_vq_vae_stores_codebook_indices_losslessly(images):
    from oddkit import VQVAEDetector

    vq = VQVAEDetector(epochs=2, random_state=0, verbose=0).fit(images)
    blob = compress(vq, images, bits=3)  # bits is ignored: indices take ceil(log2(codebook size))
    header = read_header(blob)
    assert header["kind"] == "indices"
    assert header["bits"] == int(np.ceil(np.log2(vq.codebook_size_)))
    codes = vq.encode_codes(images)
    assert header["dims"] == codes.reshape(len(images), -1).shape[1]
    np.testing.assert_array_equal(decompress(vq, blob), vq.decode_codes(codes))
    report = rate_distortion(vq, images, bits=(4,))
    assert list(report["method"]) == ["VQVAEDetector", "pca"]
    assert np.isfinite(report["mse"]).all()


def test_vae_round_trip_on_a_table(table):
    from oddkit import VAEDetector

    vae = VAEDetector(latent_dim=3, epochs=3, random_state=0, verbose=0).fit(table)
    back = decompress(vae, compress(vae, table, bits=10))
    exact = vae.inverse_transform(vae.transform(table))
    np.testing.assert_allclose(np.asarray(back, float), np.asarray(exact, float), atol=0.1)


def test_a_detector_without_a_code_is_refused_with_a_clear_error(table):
    from oddkit import GaussianDetector

    gaussian = GaussianDetector().fit(table)
    with pytest.raises(DataError, match="GaussianDetector has no code to compress to"):
        compress(gaussian, table)
    with pytest.raises(DataError, match="GaussianDetector has no code to compress to"):
        decompress(gaussian, b"ODDZ")
