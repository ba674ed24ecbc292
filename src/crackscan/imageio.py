"""The one image reader of crackscan.

Every path that reads a photo or a mask — data check/fix, training datasets, the
runtime, the service — goes through this module, so each quirk of real data sets is
handled once: EXIF orientation (valid tags applied, invalid ones survived), every
Pillow mode turned into RGB uint8, 16-bit PNG/TIFF scaled down, 1-bit / 0-1 / 0-255 /
JPEG-noisy / 3-channel / index masks, and a pixel limit checked from the header
before any pixel is decoded.

This module imports no torch.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# ~178.9 M pixels: Pillow's own decompression-bomb threshold, kept as our default.
DEFAULT_MAX_PIXELS = 178_956_970

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

# We enforce our own, configurable limit from the header (see _check_pixels); Pillow's
# global guard would refuse images a user explicitly allowed with a higher limit.
Image.MAX_IMAGE_PIXELS = None
# A truncated file must be reported, never silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

Source = str | os.PathLike[str] | bytes | BinaryIO


class ImageReadError(ValueError):
    """An image or mask could not be read; ``reason`` is a short, user-facing cause."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class ImageTooLargeError(ImageReadError):
    """The header announces more pixels than the configured limit allows."""


class MaskKind(StrEnum):
    """How the values of a mask file encode its labels."""

    BINARY = "binary"  # exactly two levels: {0,1}, {0,255}, 1-bit, or bool
    NOISY_BINARY = "noisy_binary"  # JPEG-compressed binary mask: threshold > 127
    MULTICLASS = "multiclass"  # index mask: 0 background, 1..K classes
    EMPTY = "empty"  # a single value everywhere (no foreground at all)


@dataclass(frozen=True)
class ImageInfo:
    """What the header says, read without decoding pixels."""

    width: int
    height: int
    mode: str
    format: str | None

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Mask:
    """A decoded mask.

    ``labels`` is an ``H×W`` uint8 array: 0 is background; for binary kinds the
    foreground (crack/scratch) is 1; for multi-class masks the file's index values.
    """

    labels: np.ndarray
    kind: MaskKind
    source_values: tuple[int, ...]  # distinct values in the file (capped at 256 entries)

    @property
    def foreground(self) -> np.ndarray:
        """Boolean H×W array: any non-background label."""
        return self.labels > 0

    @property
    def foreground_fraction(self) -> float:
        return float(self.foreground.mean()) if self.labels.size else 0.0


def _name(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", None) or "<bytes>"


def _open(source: Source) -> Image.Image:
    """Open lazily (header only) and turn every failure into an ImageReadError."""
    name = _name(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageReadError(name, "file not found")
        if path.is_dir():
            raise ImageReadError(name, "is a folder, not an image file")
        if path.stat().st_size == 0:
            raise ImageReadError(name, "empty file (0 bytes)")
        fp: Source = path
    elif isinstance(source, bytes):
        if not source:
            raise ImageReadError(name, "empty file (0 bytes)")
        fp = io.BytesIO(source)
    else:
        fp = source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(fp)
    except UnidentifiedImageError:
        raise ImageReadError(name, "not an image (unrecognised file format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(name, f"unreadable image header ({exc})") from None


def _check_pixels(img: Image.Image, name: str, max_pixels: int | None) -> None:
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageReadError(name, f"invalid dimensions {w}×{h}")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageTooLargeError(
            name,
            f"too large: {w}×{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,} "
            "(raise it with --max-pixels if the image is genuine)",
        )


def _load(img: Image.Image, name: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg.lower():
            raise ImageReadError(name, "truncated file (image data ends early)") from None
        raise ImageReadError(name, f"corrupt image data ({msg})") from None
    except (SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(name, f"corrupt image data ({exc})") from None


def _orient(img: Image.Image) -> Image.Image:
    """Apply a valid EXIF orientation; survive missing, invalid (e.g. 0) or broken EXIF."""
    try:
        orientation = img.getexif().get(0x0112)
    except Exception:  # broken EXIF blocks are common in phone photos: ignore them
        return img
    if orientation not in (2, 3, 4, 5, 6, 7, 8):
        return img
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        return img


def probe(source: Source) -> ImageInfo:
    """Read width, height, mode and format from the header, without decoding pixels."""
    img = _open(source)
    with img:
        w, h = img.size
        try:
            orientation = img.getexif().get(0x0112)
        except Exception:
            orientation = None
        if orientation in (5, 6, 7, 8):  # 90° rotations swap the axes
            w, h = h, w
        return ImageInfo(width=w, height=h, mode=img.mode, format=img.format)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale an integer or float array of any depth to uint8 (16-bit: /257)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.nan_to_num(arr.astype(np.float32))
        hi = float(finite.max()) if finite.size else 1.0
        scale = 255.0 if hi <= 1.0 else (255.0 / 65535.0 if hi > 255 else 1.0)
        return np.clip(finite * scale + 0.5, 0, 255).astype(np.uint8)
    # integer images: 16-bit containers hold 0..65535 even when Pillow says mode "I"
    hi = int(arr.max()) if arr.size else 0
    if hi > 255:
        return np.clip((arr.astype(np.float32) / 257.0) + 0.5, 0, 255).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _rgb_from_pil(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        grey = _to_uint8(np.asarray(img))
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Composite on white: transparent regions of scans/screenshots are paper, not black.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _decode_with_opencv(source: Source, name: str) -> np.ndarray:
    """Fallback for files Pillow opens but cannot convert (e.g. 16-bit RGB TIFF)."""
    import cv2

    if isinstance(source, (str, os.PathLike)):
        data = np.fromfile(os.fspath(source), dtype=np.uint8)
    elif isinstance(source, bytes):
        data = np.frombuffer(source, dtype=np.uint8)
    else:
        source.seek(0)
        data = np.frombuffer(source.read(), dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if arr is None:
        raise ImageReadError(name, "unsupported pixel format")
    arr = _to_uint8(arr)
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr[:, :, ::-1])  # OpenCV decodes BGR


def read_image(
    source: Source, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, min_side: int | None = None
) -> np.ndarray:
    """Read any supported image as an ``H×W×3`` RGB uint8 array, EXIF orientation applied.

    ``min_side`` (px) lets JPEG decoding run at a reduced DCT scale (1/2, 1/4, 1/8) as
    long as both sides stay at least that large: a 227-px patch for a 96-px model decodes
    several times faster. Training and inference pass the same value, so they see the
    same pixels.

    Raises :class:`ImageReadError` (or :class:`ImageTooLargeError`) with a short reason
    for empty, truncated, corrupt, non-image or over-limit files.
    """
    name = _name(source)
    img = _open(source)
    with img:
        _check_pixels(img, name, max_pixels)
        if min_side and img.format == "JPEG":
            img.draft("RGB", (min_side, min_side))
        _load(img, name)
        oriented = _orient(img)
        try:
            rgb = _rgb_from_pil(oriented)
        except (OSError, ValueError):
            rgb = _decode_with_opencv(source, name)
    return np.ascontiguousarray(rgb)


def _mask_values(img: Image.Image) -> np.ndarray:
    """The raw label values of a mask file as a 2-D integer array."""
    mode = img.mode
    if mode == "1":
        return np.asarray(img, dtype=bool).astype(np.uint8)
    if mode in ("L", "P"):
        # P: keep palette indices, they are the class ids of index masks.
        return np.asarray(img, dtype=np.uint8)
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img)
        hi = float(arr.max()) if arr.size else 0.0
        # 16-bit masks with a few small values are index masks; 0/65535 are binary.
        return (arr > 0).astype(np.uint8) if hi > 255 else arr.astype(np.uint8)
    if mode == "LA":
        return np.asarray(img.getchannel("L"), dtype=np.uint8)
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1], rgb[:, :, 2]):
        return rgb[:, :, 0]
    # Colour-coded classes: each distinct colour becomes an index, black stays 0.
    flat = rgb.reshape(-1, 3).astype(np.uint32)
    codes = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    uniq, inverse = np.unique(codes, return_inverse=True)
    if len(uniq) > 64:
        # Too many colours for an index mask: a JPEG-compressed grey mask saved as RGB.
        return rgb.max(axis=2)
    order = np.argsort(uniq)  # np.unique is sorted: code 0 (black) first when present
    index = np.empty_like(order)
    index[order] = np.arange(len(uniq)) + (0 if uniq[0] == 0 else 1)
    return index[inverse].reshape(rgb.shape[:2]).astype(np.uint8)


def classify_mask_values(values: np.ndarray, *, lossy: bool = False) -> tuple[np.ndarray, MaskKind]:
    """Turn raw mask values into labels and say which kind of mask it was.

    ``lossy`` marks a JPEG file: JPEG cannot carry index values, so its masks are
    always binary with compression noise and are thresholded at > 127.
    """
    uniq = np.unique(values)
    if lossy:
        labels = (values > 127).astype(np.uint8)
        if not labels.any():
            return labels, MaskKind.EMPTY
        exact = set(uniq.tolist()) <= {0, 255}
        return labels, MaskKind.BINARY if exact else MaskKind.NOISY_BINARY
    levels = set(uniq.tolist())
    if levels == {0}:
        return np.zeros(values.shape, np.uint8), MaskKind.EMPTY
    if levels <= {0, 1} or (levels - {0} and len(levels - {0}) == 1 and max(levels) >= 64):
        # {0,1}, {0,255}, 1-bit, {0,128}: two levels, background is 0.
        return (values > 0).astype(np.uint8), MaskKind.BINARY
    if max(levels) < 64 and len(levels) <= 32:
        # Small integers are class indices, even when only one class shows in this file
        # ({0,3}: background and class 3 of a car_scratch-style mask).
        return values.astype(np.uint8), MaskKind.MULTICLASS
    # Many grey levels spread over 0..255: compression noise around a binary mask.
    return (values > 127).astype(np.uint8), MaskKind.NOISY_BINARY


def read_mask(source: Source, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Mask:
    """Read a mask file of any common encoding into a :class:`Mask`.

    Masks are never EXIF-rotated on their own: an orientation tag on a mask is applied
    only if present, exactly as for its image, so both stay aligned.
    """
    name = _name(source)
    img = _open(source)
    with img:
        _check_pixels(img, name, max_pixels)
        _load(img, name)
        oriented = _orient(img)
        values = _mask_values(oriented)
        lossy = img.format in ("JPEG", "MPO", "WEBP") and img.mode != "1"
    labels, kind = classify_mask_values(values, lossy=lossy)
    uniq = np.unique(values)[:256]
    return Mask(labels=labels, kind=kind, source_values=tuple(int(v) for v in uniq))


def file_sha1(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Content hash used to find exact duplicate files."""
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True when the extension is one crackscan treats as an image (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def write_mask(path: str | os.PathLike[str], labels: np.ndarray, *, binary: bool = True) -> None:
    """Write a mask as single-channel PNG: binary → 0/255, multi-class → index values."""
    arr = np.asarray(labels)
    out = (arr > 0).astype(np.uint8) * 255 if binary else arr.astype(np.uint8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # zlib level 1: a 12 MP mask writes in 0.14 s instead of 0.21 s; the file stays small (mostly 0).
    Image.fromarray(out, mode="L").save(path, format="PNG", compress_level=1)


def write_image(path: str | os.PathLike[str], rgb: np.ndarray, *, quality: int = 95) -> None:
    """Write an RGB uint8 array; the format follows the extension (JPEG quality ``quality``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.save(path, format="JPEG", quality=quality)
    else:
        img.save(path)
