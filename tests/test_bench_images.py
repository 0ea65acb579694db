"""benchmarks/images.py's reader of idx files (the fifth round's Fashion-MNIST training set): a
well-formed file reads back exactly, a broken one stops the run with a message naming the file."""

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "images.py"


@pytest.fixture(scope="module")
def bench():
    if not SCRIPT.exists():
        pytest.skip("benchmarks/ is not beside the tests")
    import sys

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("images_benchmark_idx", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


def write_idx(path: Path, array: np.ndarray, magic: int | None = None, extra: bytes = b"") -> Path:
    magic = (0x08 << 8) | array.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes() + extra)
    return path


def test_images_and_labels_read_back_exactly(bench, tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    np.testing.assert_array_equal(bench.load_idx_gz(write_idx(tmp_path / "i.gz", images)), images)
    np.testing.assert_array_equal(bench.load_idx_gz(write_idx(tmp_path / "l.gz", labels)), labels)


def test_a_file_of_another_type_is_refused(bench, tmp_path):
    images = np.zeros((2, 4, 4), dtype=np.uint8)
    path = write_idx(tmp_path / "f.gz", images, magic=(0x0D << 8) | 3)  # float32 idx, not unsigned bytes
    with pytest.raises(SystemExit, match="not an unsigned-byte idx file"):
        bench.load_idx_gz(path)


@pytest.mark.parametrize("extra", [b"\x00", b""])
def test_a_body_of_the_wrong_length_is_refused(bench, tmp_path, extra):
    images = np.zeros((3, 4, 4), dtype=np.uint8)
    path = write_idx(tmp_path / "b.gz", images, extra=extra)
    if not extra:  # truncate instead: the header promises more rows than the body holds
        raw = gzip.decompress(path.read_bytes())[:-5]
        path.write_bytes(gzip.compress(raw))
    with pytest.raises(SystemExit, match="bytes after the header"):
        bench.load_idx_gz(path)
