"""Photo preprocessing for segmentation models, identical in training and at inference.

A model trained with ``--grayscale``, ``--clahe`` or ``--deglare`` stores what it used
in its metadata (``extra["preprocess"]``, see :func:`preprocess_spec`); ``inspect`` and
``predict`` call :func:`apply_preprocess` with that spec on the **whole photo** before
tiling, exactly as training applied it to each whole image before cropping. Steps run
in a fixed order — deglare, CLAHE, grayscale — whatever order they were asked in.

numpy/OpenCV only: this module imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

STEP_ORDER = ("deglare", "clahe", "grayscale")
CLAHE_CLIP = 2.0
CLAHE_TILE = 8
# Glare = near-white and nearly colourless (specular reflection on paint, wet concrete).
GLARE_VALUE = 235
GLARE_SATURATION = 40
GLARE_GROW_PX = 3
GLARE_INPAINT_RADIUS = 5


def to_grayscale(rgb: np.ndarray) -> np.ndarray:
    """Luma replicated into three channels (the encoder still expects RGB), uint8 H×W×3."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[:, :, None], 3, axis=2)


def apply_clahe(rgb: np.ndarray, clip_limit: float = CLAHE_CLIP, tile: int = CLAHE_TILE) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of the L channel (Lab), uint8 H×W×3.

    Equalising lightness only keeps hues, so paint colour and rust still look like themselves.
    """
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(int(tile), int(tile)))
    lab[:, :, 0] = clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def glare_mask(
    rgb: np.ndarray, value: int = GLARE_VALUE, saturation: int = GLARE_SATURATION, grow_px: int = GLARE_GROW_PX
) -> np.ndarray:
    """Boolean H×W mask of specular highlights (bright, unsaturated), grown by ``grow_px``."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    mask = ((hsv[:, :, 2] >= value) & (hsv[:, :, 1] <= saturation)).astype(np.uint8)
    if grow_px > 0 and mask.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1))
        mask = cv2.dilate(mask, kernel)
    return mask.astype(bool)


def suppress_glare(rgb: np.ndarray, radius: int = GLARE_INPAINT_RADIUS) -> np.ndarray:
    """Inpaint specular highlights (Telea) so their bright edges do not read as scratches."""
    mask = glare_mask(rgb)
    if not mask.any():
        return rgb
    return cv2.inpaint(np.ascontiguousarray(rgb), mask.astype(np.uint8), int(radius), cv2.INPAINT_TELEA)


def preprocess_spec(*, grayscale: bool = False, clahe: bool = False, deglare: bool = False) -> dict[str, Any]:
    """The metadata entry describing the steps (``{"steps": [...], ...parameters}``)."""
    asked = {"grayscale": grayscale, "clahe": clahe, "deglare": deglare}
    spec: dict[str, Any] = {"steps": [s for s in STEP_ORDER if asked[s]]}
    if clahe:
        spec.update(clahe_clip=CLAHE_CLIP, clahe_tile=CLAHE_TILE)
    if deglare:
        spec.update(
            glare_value=GLARE_VALUE, glare_saturation=GLARE_SATURATION, glare_inpaint_radius=GLARE_INPAINT_RADIUS
        )
    return spec


def apply_preprocess(rgb: np.ndarray, spec: Mapping[str, Any] | None) -> np.ndarray:
    """Apply a metadata ``preprocess`` spec to an RGB uint8 H×W×3 photo (no-op when empty).

    Raises ``ValueError`` for a step this version does not know (a newer model file).
    """
    steps = list((spec or {}).get("steps", []))
    unknown = [s for s in steps if s not in STEP_ORDER]
    if unknown:
        raise ValueError(f"unknown preprocessing step(s) {', '.join(unknown)}: update crackscan")
    out = rgb
    for step in STEP_ORDER:
        if step not in steps:
            continue
        if step == "deglare":
            out = suppress_glare(out, int((spec or {}).get("glare_inpaint_radius", GLARE_INPAINT_RADIUS)))
        elif step == "clahe":
            out = apply_clahe(
                out, float((spec or {}).get("clahe_clip", CLAHE_CLIP)), int((spec or {}).get("clahe_tile", CLAHE_TILE))
            )
        else:
            out = to_grayscale(out)
    return out


def pad_to_multiple(
    image: np.ndarray, multiple: int = 32, *, mode: str = "reflect"
) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad H×W[×C] bottom/right to multiples of ``multiple``; returns the array and the original (H, W).

    Reflection (not zeros) keeps the border statistics the model saw in training; crop
    the prediction back with ``[:h, :w]``.
    """
    h, w = image.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return image, (h, w)
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (image.ndim - 2)
    # reflect needs the pad smaller than the side; symmetric covers tiny images too
    np_mode = "reflect" if mode == "reflect" and ph < h and pw < w else ("symmetric" if mode == "reflect" else mode)
    return np.pad(image, pad, mode=np_mode), (h, w)


__all__ = [
    "STEP_ORDER",
    "apply_clahe",
    "apply_preprocess",
    "glare_mask",
    "pad_to_multiple",
    "preprocess_spec",
    "suppress_glare",
    "to_grayscale",
]
