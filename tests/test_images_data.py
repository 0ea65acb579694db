"""Reading images (oddkit.data.images): folders, class sub-folders, .npz, resizing, errors, protocol."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from oddkit.data.images import (
    ImageResizeWarning,
    as_image_batch,
    is_image_source,
    one_class_split,
    read_images,
    save_heatmap,
    save_image_grid,
    to_uint8,
    write_images,
)
from oddkit.exceptions import DataError, EmptyDataError, ImageShapeError, NonFiniteError, UnreadableImageError


def gray(value: int, size=(6, 5)) -> Image.Image:
    """A uniform grayscale image of ``size`` = (width, height)."""
    return Image.new("L", size, color=value)


def test_folder_of_grayscale_pngs_is_one_class(tmp_path):
    for i, value in enumerate((0, 51, 255)):
        gray(value).save(tmp_path / f"img{i}.png")
    (tmp_path / ".hidden.png").write_bytes(b"not read")
    (tmp_path / "notes.txt").write_text("ignored")
    images = read_images(tmp_path)
    assert images.X.shape == (3, 1, 5, 6) and images.X.dtype == np.float32
    assert images.X.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(images.X[:, 0, 0, 0], [0.0, 0.2, 1.0], atol=1e-6)
    assert images.labels is None and images.class_names is None
    assert images.names == ["img0.png", "img1.png", "img2.png"]
    assert is_image_source(tmp_path) and not is_image_source(tmp_path / "notes.txt")


def test_class_subfolders_give_labels_in_sorted_order(tmp_path):
    for name, value in (("zebra", 10), ("apple", 200)):
        (tmp_path / name).mkdir()
        for i in range(2):
            gray(value).save(tmp_path / name / f"{i}.png")
    images = read_images(tmp_path)
    assert images.class_names == ["apple", "zebra"]
    assert images.labels.tolist() == [0, 0, 1, 1]
    assert images.names[0] == "apple/0.png"
    np.testing.assert_allclose(images.X[images.labels == 0].max(), 200 / 255, atol=1e-6)


def test_rgb_jpeg_and_resizing(tmp_path):
    Image.new("RGB", (8, 4), color=(255, 0, 0)).save(tmp_path / "a.jpg", quality=100)
    Image.new("RGB", (16, 16), color=(0, 0, 255)).save(tmp_path / "b.png")
    with pytest.raises(ImageShapeError, match="differ in size.*size="):
        read_images(tmp_path)
    with pytest.warns(ImageResizeWarning, match="resized 2 of 2 images"):
        images = read_images(tmp_path, size=(4, 6))
    assert images.X.shape == (2, 3, 4, 6)
    assert 0.0 <= images.X.min() and images.X.max() <= 1.0
    assert images.X[0, 0].mean() > 0.9 and images.X[1, 2].mean() > 0.9  # red stays red, blue blue
    with pytest.warns(ImageResizeWarning):
        assert read_images(tmp_path, size=5, channels=1).X.shape == (2, 1, 5, 5)


def test_mixed_channels_raise_unless_converted(tmp_path):
    gray(100).save(tmp_path / "g.png")
    Image.new("RGBA", (6, 5), color=(0, 255, 0, 128)).save(tmp_path / "c.png")
    with pytest.raises(ImageShapeError, match="mixes grayscale and colour.*channels"):
        read_images(tmp_path)
    assert read_images(tmp_path, channels=3).X.shape == (2, 3, 5, 6)
    as_gray = read_images(tmp_path, channels=1)
    assert as_gray.X.shape == (2, 1, 5, 6)


def test_sixteen_bit_png_scales_by_its_range(tmp_path):
    Image.fromarray(np.full((3, 3), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(np.full((3, 3), 0, dtype=np.uint16)).save(tmp_path / "dark.png")
    images = read_images(tmp_path)
    assert images.X.shape == (2, 1, 3, 3)
    assert sorted(images.X.reshape(2, -1).max(axis=1).tolist()) == pytest.approx([0.0, 1.0])


def test_empty_folder_unreadable_file_and_mixed_layout(tmp_path):
    with pytest.raises(EmptyDataError, match="holds no images"):
        read_images(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG this is not really a png")
    with pytest.raises(UnreadableImageError, match="broken.png"):
        read_images(tmp_path)
    (tmp_path / "broken.png").unlink()
    gray(1).save(tmp_path / "loose.png")
    (tmp_path / "cls").mkdir()
    gray(2).save(tmp_path / "cls" / "x.png")
    with pytest.raises(DataError, match="both image files"):
        read_images(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        read_images(tmp_path / "missing")


def test_single_image_file(tmp_path):
    gray(255).save(tmp_path / "one.png")
    images = read_images(tmp_path / "one.png")
    assert images.X.shape == (1, 1, 5, 6) and images.names == ["one.png"]


def test_npz_layouts_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(4, 7, 7), dtype=np.uint8)
    np.savez(tmp_path / "gray.npz", X=X, labels=np.array([0, 1, 1, 2]))
    images = read_images(tmp_path / "gray.npz")
    assert images.X.shape == (4, 1, 7, 7) and images.labels.tolist() == [0, 1, 1, 2]
    np.testing.assert_allclose(images.X[:, 0], X / 255.0, atol=1e-6)
    assert is_image_source(tmp_path / "gray.npz")

    last = rng.random((3, 5, 5, 3)).astype(np.float32)  # channels last
    np.savez(tmp_path / "hwc.npz", X=last)
    assert read_images(tmp_path / "hwc.npz").X.shape == (3, 3, 5, 5)
    np.savez(tmp_path / "table.npz", X=rng.random((5, 3)))
    assert not is_image_source(tmp_path / "table.npz")
    with pytest.raises(ImageShapeError, match="expected"):
        read_images(tmp_path / "table.npz")
    with pytest.warns(ImageResizeWarning):
        assert read_images(tmp_path / "gray.npz", size=3).X.shape == (4, 1, 3, 3)


def test_npz_bad_values(tmp_path):
    np.savez(tmp_path / "big.npz", X=np.full((2, 4, 4), 3.0, dtype=np.float32))
    with pytest.raises(DataError, match=r"scaled to \[0, 1\]"):
        read_images(tmp_path / "big.npz")
    nan = np.zeros((2, 4, 4), dtype=np.float32)
    nan[1, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=nan)
    with pytest.raises(NonFiniteError, match=r"\[1\]"):
        read_images(tmp_path / "nan.npz")
    np.savez(tmp_path / "nolabels.npz", X=np.zeros((2, 4, 4), np.uint8), labels=np.array([1]))
    with pytest.raises(DataError, match="2 images but 1"):
        read_images(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "noX.npz", images=np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match="no array named 'X'"):
        read_images(tmp_path / "noX.npz")
    with pytest.raises(EmptyDataError):
        as_image_batch(np.zeros((0, 4, 4), np.uint8))


def test_one_class_split_is_seeded_and_disjoint():
    labels = np.repeat(np.arange(3), 10)
    X = np.arange(30)[:, None, None] * np.ones((1, 2, 2))
    X_train, X_test, y_test = one_class_split(X, labels, normal=1, train_fraction=0.8, random_state=3)
    assert len(X_train) == 8 and len(X_test) == 22
    assert y_test.tolist() == [0, 0] + [1] * 20
    train_ids, test_ids = set(X_train[:, 0, 0]), set(X_test[:, 0, 0])
    assert not train_ids & test_ids and train_ids | test_ids == set(range(30))
    assert all(10 <= i < 20 for i in train_ids)
    again = one_class_split(X, labels, normal=1, train_fraction=0.8, random_state=3)
    np.testing.assert_array_equal(again[0], X_train)
    other = one_class_split(X, labels, normal=1, train_fraction=0.8, random_state=4)
    assert not np.array_equal(other[0], X_train)
    both = one_class_split(X, labels, normal=[0, 2], train_fraction=0.5)
    assert len(both[0]) == 10 and int(both[2].sum()) == 10
    with pytest.raises(DataError, match="not found"):
        one_class_split(X, labels, normal=7)
    with pytest.raises(DataError, match="train_fraction"):
        one_class_split(X, labels, normal=0, train_fraction=1.0)


def test_writing_grids_folders_and_npz(tmp_path):
    X = np.linspace(0, 1, 5 * 3 * 4 * 4, dtype=np.float32).reshape(5, 3, 4, 4)
    grid = save_image_grid(X, tmp_path / "grid.png", ncols=3, padding=1, scale=2)
    with Image.open(grid) as image:
        assert image.size == (2 * (3 * 5 + 1), 2 * (2 * 5 + 1)) and image.mode == "RGB"
    folder = write_images(X[:, :1], tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == [f"0000{i}.png" for i in range(5)]
    back = read_images(folder)
    np.testing.assert_allclose(back.X, to_uint8(X[:, :1]) / 255.0, atol=1e-6)
    write_images(X, tmp_path / "x.npz")
    assert read_images(tmp_path / "x.npz").X.shape == (5, 3, 4, 4)
    with pytest.raises(DataError, match="cannot write images"):
        write_images(X, tmp_path / "x.csv")


def test_resizing_is_announced_with_counts_and_sizes(tmp_path, recwarn):
    # Three files of the model's size, two of another shape: only those two are resized, and said so.
    for i in range(3):
        gray(10 * i, size=(8, 8)).save(tmp_path / f"same{i}.png")
    for i in range(2):
        gray(200, size=(32, 24)).save(tmp_path / f"wide{i}.png")  # 24 rows x 32 columns
    with pytest.warns(ImageResizeWarning) as caught:
        images = read_images(tmp_path, size=8)
    [warning] = caught
    message = str(warning.message)
    assert "resized 2 of 5 images" in message and "to 8x8 pixels (height x width)" in message
    assert "2 from 24x32" in message and "changed aspect ratio" in message
    assert warning.filename == __file__  # points at the caller of read_images
    assert images.original_sizes == [(8, 8)] * 3 + [(24, 32)] * 2
    assert images.resized.tolist() == [False, False, False, True, True]

    # Same size everywhere: nothing to say; a proportional resize is not called a stretch.
    recwarn.clear()
    assert not read_images(tmp_path / "same0.png", size=8).resized.any()
    assert not [w for w in recwarn if issubclass(w.category, ImageResizeWarning)]
    with pytest.warns(ImageResizeWarning) as caught:
        read_images(tmp_path / "wide0.png", size=(12, 16))
    assert "1 of 1 images" in str(caught[0].message) and "aspect ratio" not in str(caught[0].message)


def test_resizing_an_npz_is_announced_and_can_be_made_an_error(tmp_path):
    np.savez(tmp_path / "stack.npz", X=np.zeros((4, 10, 10), dtype=np.uint8))
    with pytest.warns(ImageResizeWarning, match=r"resized 4 of 4 images .* to 8x8 .*4 from 10x10"):
        images = read_images(tmp_path / "stack.npz", size=8)
    assert images.X.shape == (4, 1, 8, 8) and images.original_sizes == [(10, 10)] * 4
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImageResizeWarning)  # a pipeline that must never resize
        with pytest.raises(ImageResizeWarning):
            read_images(tmp_path / "stack.npz", size=8)
        assert read_images(tmp_path / "stack.npz", size=10).X.shape == (4, 1, 10, 10)


def test_save_heatmap_writes_image_beside_overlay(tmp_path):
    image = np.zeros((1, 8, 8), dtype=np.float32)
    heat = np.zeros((8, 8))
    heat[2:4, 5:7] = 1.0
    path = save_heatmap(image, heat, tmp_path / "sub" / "map.png", boxes=[(5, 2, 7, 4)], min_side=64)
    with Image.open(path) as picture:
        assert picture.mode == "RGB" and picture.size == (2 * 64 + 8, 64)  # scale 8, a gap of 8
        pixels = np.asarray(picture)
    assert pixels[:, :64].max() == 0  # the black image, as it is
    overlay = pixels[:, 64 + 8:]
    assert overlay[3 * 8 + 4, 5 * 8 + 4].sum() > 300 and overlay[7 * 8 + 4, 0 * 8 + 4].sum() == 0  # hot vs cold
    with pytest.raises(DataError, match="same size"):
        save_heatmap(image, np.zeros((4, 4)), tmp_path / "bad.png")
