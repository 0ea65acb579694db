"""Lossy compression with a fitted auto-encoder: store the code, not the data.

:func:`compress` turns rows or images into a small ``bytes`` blob: the detector's latent code of
each example (``transform``), uniformly quantised per dimension to ``bits`` bits between that
dimension's minimum and maximum over the batch, then entropy-coded with the standard library's
``lzma`` or ``zlib`` (whichever is smaller for that blob). A vector-quantised detector (one with
``encode_codes``) stores its codebook indices instead, losslessly, at ``ceil(log2(K))`` bits each.
:func:`decompress` reverses it with the same fitted detector (``inverse_transform`` or
``decode_codes``), giving data in the detector's input space.

The blob needs the detector to be read: it holds a fingerprint of the detector's weights, and
decompressing with another model raises :class:`~oddkit.exceptions.CompressedDataError` instead
of returning garbage. :func:`rate_distortion` measures bits per example against reconstruction
error, beside PCA quantised and entropy-coded the same way.

These are functions of a fitted detector rather than detector methods, so that they work for every
auto-encoder in oddkit (any object with ``transform``/``inverse_transform``) without growing the
estimators' API.

Blob layout (version 1; integers little-endian)::

    b"ODDZ"  u8 version  u32 header length  header (UTF-8 JSON)
    ranges   float32 mins, then float32 maxs (one per code dimension; "latent" kind only)
    body     the packed codes, compressed with header["codec"]

The header holds the kind (``"latent"`` or ``"indices"``), bits, the code shape, the codec, the
detector's class and fingerprint, the shape/dtype the decoder returns, and a CRC-32 of the ranges and the body.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import math
import struct
import zlib
from typing import Any

import numpy as np

from oddkit.exceptions import CompressedDataError, DataError

__all__ = ["FORMAT_VERSION", "MAGIC", "compress", "decompress", "rate_distortion", "read_header"]

MAGIC = b"ODDZ"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sBI")
CODECS = ("auto", "lzma", "zlib")


# -- fingerprint and codes --------------------------------------------------------------------------

def _fingerprint(detector: Any) -> str:
    """A short sha256 of the detector's class and network weights (its code space)."""
    digest = hashlib.sha256(type(detector).__name__.encode())
    module = getattr(detector, "model_", None)
    if module is not None and hasattr(module, "state_dict"):
        for name, tensor in sorted(module.state_dict().items()):
            array = tensor.detach().cpu().contiguous().numpy()
            digest.update(name.encode() + b"\0" + str(array.dtype).encode() + str(array.shape).encode())
            digest.update(array.tobytes())
    else:
        raise DataError(f"{type(detector).__name__} has no fitted network (model_); compress needs a fitted "
                        "auto-encoder detector")
    return digest.hexdigest()[:32]


def _uses_indices(detector: Any) -> bool:
    return hasattr(detector, "encode_codes") and hasattr(detector, "decode_codes")


def _require_codes(detector: Any) -> None:
    """Refuse a detector without a code (a Gaussian, a forest, ...) before touching its attributes."""
    if not (_uses_indices(detector) or (hasattr(detector, "transform") and hasattr(detector, "inverse_transform"))):
        raise DataError(f"{type(detector).__name__} has no code to compress to; use an auto-encoder detector "
                        "(AutoEncoderDetector, VAEDetector, VQVAEDetector)")


def _check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= 16:
        raise DataError(f"bits must be an integer from 1 to 16, got {bits!r}")
    return int(bits)


def quantize(codes: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform per-dimension quantisation of (n, d) codes to integers 0 .. 2**bits - 1.

    Returns ``(q, mins, maxs)``: ``q`` uint16 (n, d), and each dimension's range as float32.
    A dimension whose values are all equal quantises to 0 and comes back exactly.
    """
    codes = np.asarray(codes, dtype=np.float32)
    mins, maxs = codes.min(axis=0), codes.max(axis=0)
    levels = (1 << bits) - 1
    span = (maxs - mins).astype(np.float64)
    scale = np.divide(levels, span, out=np.zeros_like(span), where=span > 0)
    q = np.rint((codes - mins).astype(np.float64) * scale)
    return np.clip(q, 0, levels).astype(np.uint16), mins.astype(np.float32), maxs.astype(np.float32)


def dequantize(q: np.ndarray, mins: np.ndarray, maxs: np.ndarray, bits: int) -> np.ndarray:
    """The centres that :func:`quantize`'s integers stand for, float32 (n, d)."""
    levels = (1 << bits) - 1
    span = (maxs.astype(np.float64) - mins.astype(np.float64))
    return (mins + q.astype(np.float64) * (span / levels)).astype(np.float32)


def _pack(q: np.ndarray, bits: int) -> bytes:
    """Integers < 2**bits, stored dimension by dimension (similar values side by side), in ``bits``
    bits each."""
    flat = np.ascontiguousarray(q.T).ravel()
    if bits == 8:
        return flat.astype(np.uint8).tobytes()
    if bits == 16:
        return flat.astype("<u2").tobytes()
    planes = np.unpackbits(flat.astype(">u2").view(np.uint8).reshape(-1, 2), axis=1)[:, 16 - bits:]
    return np.packbits(planes.ravel()).tobytes()


def _unpack(payload: bytes, count: int, bits: int) -> np.ndarray:
    if bits == 8:
        values = np.frombuffer(payload, dtype=np.uint8)
    elif bits == 16:
        values = np.frombuffer(payload, dtype="<u2")
    else:
        planes = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))[:count * bits].reshape(-1, bits)
        weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.uint32)
        values = planes.astype(np.uint32) @ weights
    if values.size != count:
        raise CompressedDataError(f"the blob holds {values.size} codes where its header says {count}")
    return values.astype(np.uint16)


def _encode(raw: bytes, codec: str) -> tuple[bytes, str]:
    candidates = {}
    if codec in ("auto", "lzma"):
        candidates["lzma"] = lzma.compress(raw, format=lzma.FORMAT_RAW,
                                           filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}])
    if codec in ("auto", "zlib"):
        candidates["zlib"] = zlib.compress(raw, 9)
    name = min(candidates, key=lambda k: len(candidates[k]))
    return candidates[name], name


def _decode(body: bytes, codec: str, expected: int) -> bytes:
    """Decompress at most ``expected`` bytes (what the header announces), so a crafted blob cannot
    expand into more memory than its header admits to."""
    try:
        if codec == "lzma":
            raw = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}]).decompress(
                body, max_length=expected + 1)
        elif codec == "zlib":
            raw = zlib.decompressobj().decompress(body, expected + 1)
        else:
            raise CompressedDataError(f"unknown codec {codec!r} in the blob's header")
    except (lzma.LZMAError, zlib.error) as exc:
        raise CompressedDataError(f"the blob's body does not decompress ({exc}); the blob is damaged") from None
    if len(raw) != expected:
        raise CompressedDataError(f"the blob's body holds {len(raw)} bytes of codes where its header announces "
                                  f"{expected}; the blob is damaged")
    return raw


# -- public functions ---------------------------------------------------------------------------------

def compress(detector: Any, X: Any, bits: int = 8, codec: str = "auto") -> bytes:
    """Compress ``X`` to bytes with a fitted auto-encoder detector.

    Parameters
    ----------
    detector : fitted oddkit auto-encoder
        Anything with ``transform`` and ``inverse_transform`` (``AutoEncoderDetector``, the VAE),
        or ``encode_codes``/``decode_codes`` (the VQ-VAE, whose indices are stored instead).
    X : table or images
        What the detector's ``transform`` accepts.
    bits : int, default 8
        Bits per latent dimension (1 to 16). Ignored for codebook indices, which take
        ``ceil(log2(codebook_size_))`` bits.
    codec : {"auto", "lzma", "zlib"}, default "auto"
        ``"auto"`` tries both and keeps the smaller.

    Returns
    -------
    bytes
        The blob; :func:`decompress` with the same detector reads it.

    Examples
    --------
    >>> import numpy as np
    >>> from oddkit import AutoEncoderDetector
    >>> X = np.random.default_rng(0).normal(size=(200, 10))
    >>> ae = AutoEncoderDetector(epochs=2, random_state=0, verbose=0).fit(X)
    >>> blob = compress(ae, X, bits=6)
    >>> decompress(ae, blob).shape
    (200, 10)
    """
    _require_codes(detector)
    if codec not in CODECS:
        raise DataError(f"codec must be one of {CODECS}, got {codec!r}")
    if _uses_indices(detector):
        codes = np.asarray(detector.encode_codes(X))
        if codes.ndim == 1:
            codes = codes[:, None]
        size = int(detector.codebook_size_)
        bits = max(1, math.ceil(math.log2(size)))
        if codes.size and (codes.min() < 0 or codes.max() >= size):
            raise DataError(f"codebook indices outside 0..{size - 1}")
        q = codes.reshape(len(codes), -1).astype(np.uint16)
        kind, mins, maxs = "indices", None, None
        code_shape = list(codes.shape[1:])
    else:
        bits = _check_bits(bits)
        codes = np.asarray(detector.transform(X), dtype=np.float32)
        if codes.ndim != 2:
            codes = codes.reshape(len(codes), -1)
        if not np.all(np.isfinite(codes)):
            raise DataError("the detector's codes hold NaN or inf; check the input")
        q, mins, maxs = quantize(codes, bits)
        kind, code_shape = "latent", [codes.shape[1]]
    return _blob(kind, q, bits, mins, maxs, code_shape, codec, type(detector).__name__, _fingerprint(detector))


def _blob(kind: str, q: np.ndarray, bits: int, mins: np.ndarray | None, maxs: np.ndarray | None,
          code_shape: list[int], codec: str, source: str, fingerprint: str) -> bytes:
    body, used = _encode(_pack(q, bits), codec)
    ranges = b"" if mins is None else mins.astype("<f4").tobytes() + maxs.astype("<f4").tobytes()
    header = {
        "kind": kind, "bits": bits, "n": int(q.shape[0]), "dims": int(q.shape[1]), "code_shape": code_shape,
        "codec": used, "detector": source, "fingerprint": fingerprint, "crc32": zlib.crc32(ranges + body),
    }
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes)) + header_bytes + ranges + body


def read_header(blob: bytes) -> dict:
    """The header of a blob made by :func:`compress` (kind, bits, n, dims, codec, detector, ...).

    Raises
    ------
    CompressedDataError
        When ``blob`` is not oddkit's format, is from a newer version, or is cut short.
    """
    header, _, _ = _parse(blob)
    return header


def _parse(blob: bytes) -> tuple[dict, np.ndarray | None, bytes]:
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise CompressedDataError(f"expected bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < _PREFIX.size or blob[:4] != MAGIC:
        raise CompressedDataError("not an oddkit compressed blob (it does not start with b'ODDZ'); "
                                  "pass bytes written by oddkit.compress.compress")
    _, version, header_len = _PREFIX.unpack_from(blob)
    if version != FORMAT_VERSION:
        raise CompressedDataError(f"the blob is in format version {version}; this oddkit reads version "
                                  f"{FORMAT_VERSION}")
    start = _PREFIX.size
    try:
        header = json.loads(blob[start:start + header_len].decode())
        required = {"kind", "bits", "n", "dims", "code_shape", "codec", "detector", "fingerprint", "crc32"}
        if not isinstance(header, dict) or not required <= set(header):
            raise ValueError("missing fields")
        n, dims, bits = int(header["n"]), int(header["dims"]), int(header["bits"])
        if header["kind"] not in ("latent", "indices") or n < 0 or dims < 0 or not 1 <= bits <= 16:
            raise ValueError("bad values")
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        raise CompressedDataError(f"the blob's header is damaged ({exc})") from None
    offset = start + header_len
    ranges = None
    if header["kind"] == "latent":
        end = offset + 8 * dims
        if len(blob) < end:
            raise CompressedDataError("the blob is cut short (its value ranges are incomplete)")
        ranges = np.frombuffer(blob[offset:end], dtype="<f4").reshape(2, dims).astype(np.float32)
        offset = end
    body = blob[offset:]
    if zlib.crc32(blob[start + header_len:]) != header["crc32"]:
        raise CompressedDataError("the blob's body fails its checksum: it was damaged or cut short")
    return header, ranges, body


def decompress(detector: Any, blob: bytes) -> Any:
    """Rebuild the data compressed by :func:`compress`, with the same fitted detector.

    Returns what the detector's ``inverse_transform`` (or ``decode_codes``) returns: data in the
    input space (a table's columns in their units; images as float32 in [0, 1]).

    Raises
    ------
    CompressedDataError
        A damaged or foreign blob, or one made with another detector (other weights).
    """
    _require_codes(detector)
    header, ranges, body = _parse(blob)
    if header["fingerprint"] != _fingerprint(detector):
        raise CompressedDataError(
            f"the blob was made by another model ({header['detector']}, fingerprint "
            f"{header['fingerprint'][:12]}); decompress it with the fitted detector that compressed it")
    n, dims, bits = int(header["n"]), int(header["dims"]), int(header["bits"])
    q = _unpack(_decode(body, header["codec"], -(-n * dims * bits // 8)), n * dims, bits).reshape(dims, n).T
    if header["kind"] == "indices":
        if not _uses_indices(detector):
            raise CompressedDataError("the blob holds codebook indices but the detector has no decode_codes")
        return detector.decode_codes(q.astype(np.int64).reshape([n, *header["code_shape"]]))
    return detector.inverse_transform(dequantize(q, ranges[0], ranges[1], bits))


# -- rate and distortion -------------------------------------------------------------------------------

def _as_matrix(detector: Any, data: Any) -> tuple[np.ndarray, float, str]:
    """Data as a float matrix in the space distortion is measured in, its peak value and the space."""
    if isinstance(data, np.ndarray) and data.ndim in (3, 4):
        from oddkit.data.images import as_image_batch

        return as_image_batch(data).reshape(len(data), -1).astype(np.float64), 1.0, "pixels in [0, 1]"
    matrix = np.asarray(detector.preprocessor_.transform(data), dtype=np.float64)
    return matrix, float(matrix.max() - matrix.min()), "standardised columns"


def _psnr(mse: float, peak: float) -> float:
    return float("inf") if mse == 0 else float(10 * np.log10(peak ** 2 / mse))


def rate_distortion(detector: Any, X: Any, bits: Any = (2, 4, 6, 8), X_fit: Any = None,
                    n_components: int | None = None, random_state: int | None = 0):
    """Bits per example against reconstruction error, for the detector and for PCA.

    For each ``bits``, ``X`` is compressed with :func:`compress` and decompressed; PCA (fitted on
    ``X_fit``, default ``X``) with as many components as the detector's code has dimensions
    (``n_components`` overrides) is quantised to the same bits per dimension and entropy-coded the
    same way, so both rows of a pair spend the same raw bits per example. A VQ detector's codes
    are lossless indices: it gets one row, and PCA is compared at the same raw bits per example.

    Distortion is measured on pixels in [0, 1] for images (PSNR peak 1) and on the detector's
    standardised columns for tables (PSNR peak = the range of those values).

    Returns
    -------
    pandas.DataFrame
        One row per (method, bits): ``method``, ``bits`` per dimension, ``dims``,
        ``raw_bits_per_example`` (dims x bits), ``bits_per_example`` (actual blob size x 8 / n,
        header included), ``mse``, ``psnr``, ``space``.
    """
    import pandas as pd
    from sklearn.decomposition import PCA

    reference, peak, space = _as_matrix(detector, X)
    n = len(reference)
    fit_matrix = reference if X_fit is None else _as_matrix(detector, X_fit)[0]
    rows = []

    def add(method, b, dims, blob_bytes, reconstruction):
        mse = float(np.mean((reconstruction - reference) ** 2))
        rows.append({"method": method, "bits": b, "dims": dims, "raw_bits_per_example": dims * b,
                     "bits_per_example": blob_bytes * 8 / n, "mse": mse, "psnr": _psnr(mse, peak), "space": space})

    def pca_row(k, b):
        pca = PCA(n_components=min(k, *fit_matrix.shape), random_state=random_state).fit(fit_matrix)
        scores = pca.transform(reference).astype(np.float32)
        q, mins, maxs = quantize(scores, b)
        # The same blob format as compress(), so the header's cost is counted alike.
        size = len(_blob("latent", q, b, mins, maxs, [scores.shape[1]], "auto", "PCA", "0" * 32))
        back = pca.inverse_transform(dequantize(q, mins, maxs, b).astype(np.float64))
        add("pca", b, scores.shape[1], size, back)

    bit_list = [bits] if np.isscalar(bits) else list(bits)
    if _uses_indices(detector):
        blob = compress(detector, X)
        header = read_header(blob)
        back, _, _ = _as_matrix(detector, _to_input(detector, decompress(detector, blob), X))
        add(type(detector).__name__, header["bits"], header["dims"], len(blob), back)
        raw = header["bits"] * header["dims"]
        for b in bit_list:
            pca_row(max(1, raw // b), b)
    else:
        for b in bit_list:
            blob = compress(detector, X, bits=b)
            header = read_header(blob)
            back, _, _ = _as_matrix(detector, _to_input(detector, decompress(detector, blob), X))
            add(type(detector).__name__, b, header["dims"], len(blob), back)
            pca_row(n_components or header["dims"], b)
    return pd.DataFrame(rows)


def _to_input(detector: Any, decoded: Any, like: Any) -> Any:
    """Decoded data in a form :func:`_as_matrix` reads like the input: images (which decoders
    return channels-first, in [0, 1]) as an (n, C*H*W)-compatible (n, C, H, W) array."""
    if isinstance(like, np.ndarray) and like.ndim in (3, 4):
        decoded = np.asarray(decoded, dtype=np.float32)
        return decoded.reshape(len(decoded), 1, 1, -1)
    return decoded
