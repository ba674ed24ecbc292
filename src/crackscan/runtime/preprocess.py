"""Turning files into model inputs, identically for training, evaluation and serving."""

from __future__ import annotations

import os

import cv2
import numpy as np

from crackscan.imageio import DEFAULT_MAX_PIXELS, Source, read_image


def resize_patch(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB uint8 image to ``size×size`` (area interpolation when shrinking)."""
    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)


def load_patch(
    source: Source | os.PathLike[str], size: int, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Read a patch for a classifier with input ``size`` px: reduced-size JPEG decode + resize."""
    return resize_patch(read_image(source, max_pixels=max_pixels, min_side=size), size)
