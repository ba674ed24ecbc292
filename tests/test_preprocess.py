"""Classifier patch loading (runtime/preprocess.py): the OpenCV JPEG fast path gives the
general reader's pixels, and every file it cannot vouch for goes through the general reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_image, make_truncated_jpeg
from crackscan.imageio import ImageReadError, ImageTooLargeError, read_image
from crackscan.runtime.preprocess import _fast_jpeg, jpeg_frame, load_patch, resize_patch


def reference(path: Path, size: int) -> np.ndarray:
    return resize_patch(read_image(path, min_side=size), size)


@pytest.mark.parametrize(("wh", "size"), [((227, 227), 64), ((227, 227), 96), ((500, 300), 64), ((90, 70), 96)])
def test_fast_path_matches_the_general_reader(tmp_path: Path, wh: tuple[int, int], size: int) -> None:
    path = make_image(tmp_path / "patch.jpg", wh, quality=90)
    assert _fast_jpeg(path, size, None) is not None
    fast = load_patch(path, size)
    assert fast.shape == (size, size, 3) and fast.dtype == np.uint8
    # Same libjpeg-turbo DCT scaling in both decoders: identical here; allow a level for other builds.
    assert np.abs(fast.astype(int) - reference(path, size)).max() <= 2


def test_jpeg_frame_reads_the_header(tmp_path: Path) -> None:
    path = make_image(tmp_path / "p.jpg", (300, 200))
    assert jpeg_frame(path.read_bytes()) == (200, 300, 3, False)
    assert jpeg_frame(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32) is None
    assert jpeg_frame(b"\xff\xd8\xff") is None


def test_exif_grey_png_and_truncated_files_take_the_general_reader(tmp_path: Path) -> None:
    rotated = make_image(tmp_path / "rot.jpg", (120, 80), exif_orientation=6)
    assert _fast_jpeg(rotated, 64, None) is None
    assert np.array_equal(load_patch(rotated, 64), reference(rotated, 64))
    grey = make_image(tmp_path / "grey.jpg", (120, 80), mode="L")
    assert _fast_jpeg(grey, 64, None) is None
    png = make_image(tmp_path / "p.png", (120, 80))
    assert np.array_equal(load_patch(png, 64), reference(png, 64))
    cut = make_truncated_jpeg(tmp_path / "cut.jpg", (227, 227))
    assert _fast_jpeg(cut, 64, None) is None
    with pytest.raises(ImageReadError, match="truncated"):
        load_patch(cut, 64)


def test_pixel_limit_still_applies(tmp_path: Path) -> None:
    path = make_image(tmp_path / "big.jpg", (300, 300))
    with pytest.raises(ImageTooLargeError):
        load_patch(path, 64, max_pixels=300 * 300 - 1)


def test_model_input_normalisation_is_exact_and_planar() -> None:
    from crackscan.runtime.predictor import _normalise

    rng = np.random.default_rng(3)
    batch = rng.integers(0, 256, (3, 37, 64, 3), dtype=np.uint8)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    x = _normalise(batch, mean, std)
    assert x.shape == (3, 3, 37, 64) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    reference = (batch.astype(np.float64) / 255.0 - mean) / std
    np.testing.assert_allclose(x, reference.transpose(0, 3, 1, 2), atol=2e-6)
