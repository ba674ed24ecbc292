"""Shared fixtures and helpers: small images, masks and broken files made in the test.

The default suite must pass on a fresh machine, so every file a test reads is written
here under ``tmp_path``. Helpers are plain functions (import them with
``from conftest import make_image``) plus a few fixtures.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _seed_for(path: Path, seed: int | None) -> int:
    # Distinct content per file name unless a seed is given: accidental duplicates
    # would otherwise change what check/split report.
    if seed is not None:
        return seed
    return int.from_bytes(hashlib.sha1(path.name.encode()).digest()[:4], "big")


def make_image(
    path: Path,
    size: tuple[int, int] = (32, 32),
    *,
    seed: int | None = None,
    mode: str = "RGB",
    exif_orientation: int | None = None,
    quality: int = 95,
) -> Path:
    """Write a small noise image of ``size`` (width, height); format from the suffix.

    ``mode`` "RGB", "L" or "I;16" (16-bit PNG); ``exif_orientation`` adds that tag
    (the stored pixels keep ``size``; readers show it rotated for 5–8).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(_seed_for(path, seed))
    w, h = size
    if mode == "I;16":
        arr16 = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        img = Image.fromarray(arr16)
    elif mode == "L":
        img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), mode="L")
    else:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), mode="RGB")
    kwargs: dict[str, object] = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.save(path, format="JPEG", quality=quality, **kwargs)
    else:
        img.save(path, **kwargs)
    return path


def crack_labels(size: tuple[int, int], *, crack: bool = True, seed: int = 0) -> np.ndarray:
    """An H×W {0,1} array with a diagonal-ish crack band (or none)."""
    w, h = size
    labels = np.zeros((h, w), np.uint8)
    if crack:
        offset = seed % max(1, w // 4)
        for y in range(h):
            x = (y * w) // max(1, h) // 2 + offset
            labels[y, max(0, x - 1) : min(w, x + 2)] = 1
    return labels


def make_mask(
    path: Path,
    size: tuple[int, int] = (32, 32),
    *,
    crack: bool = True,
    kind: str = "binary",
    seed: int = 0,
    labels: np.ndarray | None = None,
) -> Path:
    """Write a mask file in one of the encodings real sets use.

    kind: "binary" (8-bit 0/255 PNG), "01" (0/1 PNG), "1bit" (mode 1 PNG), "rgb"
    (3-channel 0/255 PNG), "jpeg" (0/255 saved as JPEG: noisy), "16bit" (0/65535 PNG),
    "index" (values of ``labels`` as-is, 8-bit PNG).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lab = labels if labels is not None else crack_labels(size, crack=crack, seed=seed)
    fg = (lab > 0).astype(np.uint8)
    if kind == "binary":
        Image.fromarray(fg * 255, mode="L").save(path, format="PNG")
    elif kind == "01":
        Image.fromarray(fg, mode="L").save(path, format="PNG")
    elif kind == "1bit":
        Image.fromarray(fg * 255, mode="L").convert("1").save(path, format="PNG")
    elif kind == "rgb":
        Image.fromarray(np.repeat((fg * 255)[:, :, None], 3, axis=2), mode="RGB").save(path, format="PNG")
    elif kind == "jpeg":
        Image.fromarray(fg * 255, mode="L").save(path, format="JPEG", quality=75)
    elif kind == "16bit":
        Image.fromarray(fg.astype(np.uint16) * 65535).save(path, format="PNG")
    elif kind == "index":
        Image.fromarray(lab.astype(np.uint8), mode="L").save(path, format="PNG")
    else:
        raise ValueError(kind)
    return path


def make_truncated_jpeg(path: Path, size: tuple[int, int] = (64, 64), keep: float = 0.5) -> Path:
    """A JPEG cut after ``keep`` of its bytes: the header is fine, the data ends early."""
    make_image(path, size)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_empty(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def make_text_file(path: Path, text: str = "this is not an image\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny valid PNG whose IHDR (with a correct CRC) claims ``width×height``."""
    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    # 8-byte signature, 4-byte length, "IHDR" (bytes 12..16), then width, height.
    data[16:24] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
    data[29:33] = struct.pack(">I", crc)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def make_class_set(
    root: Path,
    counts: dict[str, int],
    *,
    split: str | None = None,
    size: tuple[int, int] = (32, 32),
    suffix: str = ".png",
) -> list[Path]:
    """``root[/split]/<class>/<class>_<i><suffix>`` with distinct content per file."""
    base = root / split if split else root
    paths = []
    for cls, n in counts.items():
        for i in range(n):
            paths.append(make_image(base / cls / f"{cls}_{split or 'x'}_{i:03d}{suffix}", size))
    return paths


def make_pair_set(
    root: Path,
    n: int,
    *,
    split: str | None = None,
    n_no_crack: int = 0,
    size: tuple[int, int] = (32, 32),
    mask_kind: str = "binary",
) -> list[tuple[Path, Path]]:
    """``root/images[/split]/p_<i>.png`` + ``root/masks[/split]/p_<i>.png``; the last
    ``n_no_crack`` masks are empty."""
    img_dir = root / "images" / split if split else root / "images"
    mask_dir = root / "masks" / split if split else root / "masks"
    pairs = []
    for i in range(n):
        stem = f"p_{split or 'x'}_{i:03d}"
        img = make_image(img_dir / f"{stem}.png", size)
        suffix = ".jpg" if mask_kind == "jpeg" else ".png"
        mask = make_mask(mask_dir / f"{stem}{suffix}", size, crack=i < n - n_no_crack, kind=mask_kind, seed=i)
        pairs.append((img, mask))
    return pairs


def tree_hashes(root: Path) -> dict[str, str]:
    """root-relative path -> SHA-1 of every file under ``root`` (to prove nothing changed)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def shared_data() -> Path:
    """The real data sets; skips the test when they are not on this machine."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
