"""Every quirk of real data sets, made in the test and read through the one reader."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackscan.imageio import (
    ImageReadError,
    ImageTooLargeError,
    MaskKind,
    probe,
    read_image,
    read_mask,
    write_mask,
)


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A tiny valid PNG whose IHDR is patched to claim ``width×height``."""
    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    # IHDR chunk data starts at byte 16: width, height (big-endian), then 5 more bytes.
    data[16:24] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
    data[29:33] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def test_rgb_jpeg_reads_as_rgb_uint8(tmp_path: Path) -> None:
    p = tmp_path / "a.jpg"
    Image.new("RGB", (20, 10), (200, 30, 30)).save(p, quality=95)
    arr = read_image(p)
    assert arr.shape == (10, 20, 3) and arr.dtype == np.uint8
    assert arr[..., 0].mean() > 150 and arr[..., 1].mean() < 80


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    p = tmp_path / "rot.jpg"
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    img.save(p, exif=exif, quality=95)
    arr = read_image(p)
    assert arr.shape == (40, 20, 3)  # width and height swapped
    assert arr[:10].mean() > 200  # the left band is now at the top
    info = probe(p)
    assert (info.width, info.height) == (20, 40)


def test_invalid_exif_orientation_is_survived(tmp_path: Path) -> None:
    p = tmp_path / "zero.png"
    exif = Image.Exif()
    exif[0x0112] = 0  # invalid, as in car_scratch/images/car_0.png
    Image.new("RGB", (12, 8), (10, 20, 30)).save(p, exif=exif)
    assert read_image(p).shape == (8, 12, 3)


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F"])
def test_every_mode_becomes_rgb_uint8(tmp_path: Path, mode: str) -> None:
    img = Image.new(mode, (9, 7))
    suffix = ".tif" if mode in ("CMYK", "F", "I") else ".png"
    p = tmp_path / f"m{suffix}"
    img.save(p)
    arr = read_image(p)
    assert arr.shape == (7, 9, 3) and arr.dtype == np.uint8


def test_16bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    p = tmp_path / "deep.png"
    arr16 = np.full((6, 6), 65535, dtype=np.uint16)
    arr16[:3] = 257 * 100
    Image.fromarray(arr16).save(p)
    out = read_image(p)
    assert out[0, 0, 0] == 100 and out[5, 5, 0] == 255


def test_16bit_rgb_tiff(tmp_path: Path) -> None:
    import cv2

    p = tmp_path / "deep.tif"
    bgr = np.zeros((5, 7, 3), dtype=np.uint16)
    bgr[..., 2] = 65535  # red in OpenCV's BGR order
    cv2.imwrite(str(p), bgr)
    out = read_image(p)
    assert out.shape == (5, 7, 3) and out[0, 0].tolist() == [255, 0, 0]


def test_truncated_jpeg_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "cut.jpg"
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(p)


def test_zero_byte_and_text_files_are_reported(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match="empty"):
        read_image(empty)
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(text)


def test_pixel_limit_is_checked_from_the_header(tmp_path: Path) -> None:
    p = tmp_path / "bomb.png"
    _png_claiming(p, 30000, 30000)
    with pytest.raises(ImageTooLargeError, match="exceeds the limit"):
        read_image(p)
    with pytest.raises(ImageTooLargeError):
        read_mask(p)
    assert probe(p).pixels == 900_000_000  # the header alone is fine to read
    small = tmp_path / "small.png"
    Image.new("RGB", (100, 100)).save(small)
    with pytest.raises(ImageTooLargeError):
        read_image(small, max_pixels=5_000)


def test_bytes_input(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (5, 4), (1, 2, 3)).save(buf, format="PNG")
    assert read_image(buf.getvalue()).shape == (4, 5, 3)
    with pytest.raises(ImageReadError):
        read_image(b"")


def _mask(values: np.ndarray) -> np.ndarray:
    return values.astype(np.uint8)


def test_one_bit_mask(tmp_path: Path) -> None:
    p = tmp_path / "m.png"
    arr = np.zeros((8, 8), dtype=bool)
    arr[2:4, 2:6] = True
    Image.fromarray(arr).convert("1").save(p)
    m = read_mask(p)
    assert m.kind is MaskKind.BINARY and m.labels.sum() == 8


def test_zero_one_and_zero_255_masks(tmp_path: Path) -> None:
    arr = np.zeros((8, 8), dtype=np.uint8)
    arr[1, 1:5] = 1
    Image.fromarray(arr).save(tmp_path / "01.png")
    Image.fromarray(arr * 255).save(tmp_path / "0255.png")
    for name in ("01.png", "0255.png"):
        m = read_mask(tmp_path / name)
        assert m.kind is MaskKind.BINARY and m.labels.sum() == 4 and m.labels.max() == 1


def test_jpeg_mask_is_thresholded(tmp_path: Path) -> None:
    arr = np.zeros((64, 64), dtype=np.uint8)
    arr[20:40, 30:33] = 255
    p = tmp_path / "noisy.jpg"
    Image.fromarray(arr).save(p, quality=75)
    m = read_mask(p)
    assert m.kind is MaskKind.NOISY_BINARY
    # compression noise near 0 and near 255 must not change the class of any pixel far from the edge
    assert m.labels[25, 31] == 1 and m.labels[5, 5] == 0
    assert abs(int(m.labels.sum()) - 60) <= 12


def test_empty_jpeg_mask_with_noise_is_empty_not_multiclass(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    p = tmp_path / "nocrack.jpg"
    Image.fromarray(rng.integers(0, 4, (32, 32), dtype=np.uint8)).save(p, quality=70)
    assert read_mask(p).kind is MaskKind.EMPTY


def test_three_channel_grey_mask(tmp_path: Path) -> None:
    arr = np.zeros((8, 8, 3), dtype=np.uint8)
    arr[3:5, :, :] = 255
    p = tmp_path / "rgb.png"
    Image.fromarray(arr).save(p)
    m = read_mask(p)
    assert m.kind is MaskKind.BINARY and m.labels.sum() == 16


def test_multiclass_index_mask(tmp_path: Path) -> None:
    arr = np.zeros((8, 8), dtype=np.uint8)
    arr[0, :] = 1
    arr[1, :] = 2
    arr[2, :] = 3
    p = tmp_path / "idx.png"
    Image.fromarray(arr).save(p)
    m = read_mask(p)
    assert m.kind is MaskKind.MULTICLASS
    assert set(np.unique(m.labels).tolist()) == {0, 1, 2, 3}
    assert m.foreground.sum() == 24


def test_palette_index_mask_keeps_indices(tmp_path: Path) -> None:
    arr = np.zeros((6, 6), dtype=np.uint8)
    arr[:2] = 2
    img = Image.fromarray(arr, mode="L").convert("P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    p = tmp_path / "pal.png"
    img.save(p)
    m = read_mask(p)
    assert set(np.unique(m.labels).tolist()) == {0, 2}


def test_colour_coded_mask_becomes_index(tmp_path: Path) -> None:
    arr = np.zeros((6, 6, 3), dtype=np.uint8)
    arr[0] = (255, 0, 0)
    arr[1] = (0, 255, 0)
    p = tmp_path / "colour.png"
    Image.fromarray(arr).save(p)
    m = read_mask(p)
    assert m.kind is MaskKind.MULTICLASS and set(np.unique(m.labels).tolist()) == {0, 1, 2}


def test_write_mask_round_trip(tmp_path: Path) -> None:
    labels = np.zeros((5, 5), dtype=np.uint8)
    labels[2, 2] = 1
    write_mask(tmp_path / "out.png", labels)
    raw = np.asarray(Image.open(tmp_path / "out.png"))
    assert raw.dtype == np.uint8 and raw.ndim == 2 and set(np.unique(raw).tolist()) == {0, 255}
    assert read_mask(tmp_path / "out.png").labels.sum() == 1
