"""The work of each inference endpoint, run on a worker thread: bytes in, plain results out.

These functions block (decode, ONNX Runtime, measurement); the routes run them through
:class:`~crackscan.serve.inference.InferenceQueue`. Reader errors become 400/413
:class:`~crackscan.serve.errors.ApiError` here so a corrupt file that passed the
header check (a truncated JPEG) still gets a 4xx.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from crackscan.analysis.inspect import InspectionError, InspectionSettings, inspect_image
from crackscan.analysis.report import render_heatmap_overlay, render_width_overlay
from crackscan.evaluation.inference import predict_labels
from crackscan.imageio import ImageReadError, ImageTooLargeError, read_image
from crackscan.runtime.predictor import OnnxPredictor
from crackscan.runtime.preprocess import resize_patch
from crackscan.runtime.tiling import TilingError, predict_tiled
from crackscan.serve.errors import ApiError


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its sanitised name (echo only) and its bytes."""

    filename: str
    data: bytes


@contextmanager
def _reader_errors(filename: str) -> Iterator[None]:
    try:
        yield
    except ImageTooLargeError as exc:
        raise ApiError(413, "too_large", f"{filename}: {exc.reason}") from None
    except ImageReadError as exc:
        raise ApiError(400, "bad_image", f"{filename}: {exc.reason}") from None
    except MemoryError:
        raise ApiError(413, "too_large", f"{filename}: not enough memory to process this image") from None


def decode(upload: Upload, max_pixels: int, *, min_side: int | None = None) -> np.ndarray:
    """RGB uint8 H×W×3 from the upload's bytes via the one reader; 400/413 on failure."""
    with _reader_errors(upload.filename):
        return read_image(upload.data, max_pixels=max_pixels, min_side=min_side)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def classify(
    predictor: OnnxPredictor, uploads: Sequence[Upload], max_pixels: int, threshold: float | None = None
) -> list[dict[str, Any]]:
    """Whole-image classification of each upload, as ``crackscan predict`` does (same reader, resize, threshold;
    ``threshold`` None: the model's)."""
    meta = predictor.metadata
    size = int(meta.input_size)
    batch = np.stack([resize_patch(decode(u, max_pixels, min_side=size), size) for u in uploads])
    probs = predictor.class_probabilities(batch)
    labels = predict_labels(probs, meta.crack_class, meta.threshold if threshold is None else threshold)
    results = []
    for upload, row, label in zip(uploads, probs, labels, strict=True):
        results.append(
            {
                "filename": upload.filename,
                "label": meta.class_names[int(label)] if int(label) < len(meta.class_names) else str(int(label)),
                "probability": round(float(row[int(label)]), 6),
                "crack_probability": round(float(row[meta.crack_class]), 6),
                "crack": bool(int(label) == meta.crack_class),
            }
        )
    return results


def segment(
    predictor: OnnxPredictor, upload: Upload, max_pixels: int, *, threshold: float | None = None, tta: bool = False
) -> dict[str, Any]:
    """Tiled segmentation: crack-pixel fraction and the mask as PNG bytes (``mask_png``).

    ``threshold`` None: the model's own (its TTA threshold when ``tta``), as ``crackscan predict`` picks it."""
    image = decode(upload, max_pixels)
    meta = predictor.metadata
    cut = float(threshold) if threshold is not None else meta.threshold_for(tta=tta)
    try:
        prob = predict_tiled(predictor, image, tile=meta.tile_size, tta=tta)
    except TilingError as exc:
        raise ApiError(400, "bad_image", f"{upload.filename}: {exc}") from None
    mask = prob >= cut
    crack_pixels = int(mask.sum())
    return {
        "filename": upload.filename,
        "width_px": int(image.shape[1]),
        "height_px": int(image.shape[0]),
        "threshold": cut,
        "tta": tta,
        "crack_pixel_fraction": round(crack_pixels / mask.size, 6),
        "crack_pixels": crack_pixels,
        "max_probability": round(float(prob.max()), 6),
        "mask_png": png_bytes(mask.astype(np.uint8) * 255),
    }


def inspect(
    predictor: OnnxPredictor,
    upload: Upload,
    *,
    max_pixels: int,
    mm_per_px: float | None,
    overlay_max_side: int,
    threshold: float | None = None,
    tta: bool = False,
) -> dict[str, Any]:
    """Full inspection: measurements per crack, totals, severity and an overlay PNG (base64)."""
    image = decode(upload, max_pixels)
    settings = InspectionSettings(
        mm_per_px=mm_per_px, max_pixels=max_pixels, overlay_max_side=overlay_max_side, threshold=threshold, tta=tta
    )
    try:
        result = inspect_image(predictor, image, settings=settings, name=upload.filename)
    except (InspectionError, TilingError) as exc:
        raise ApiError(422, "invalid_parameter", str(exc)) from None
    if result.mask is not None:
        overlay = render_width_overlay(
            image,
            result.mask,
            max_side=overlay_max_side,
            min_area_px=settings.min_area_px,
            join_gap_px=settings.join_gap_px,
            mm_per_px=mm_per_px,
        )
    else:
        assert result.patch_grid is not None  # classifier results always carry their grid
        overlay = render_heatmap_overlay(image, result.patch_grid, result.threshold or 0.5, max_side=overlay_max_side)
    m = result.measurement
    totals = None
    cracks: list[dict[str, Any]] = []
    if m is not None:
        totals = {
            "cracks": m.n_cracks,
            "total_length_px": m.total_length_px,
            "max_width_px": m.max_width_px,
            "mean_width_px": m.mean_width_px,
            "length_mm": m.length_mm,
            "max_width_mm": m.max_width_mm,
            "mean_width_mm": m.mean_width_mm,
        }
        cracks = [c.to_dict() for c in m.cracks]
    return {
        "filename": upload.filename,
        "task": result.task,
        "width_px": result.width,
        "height_px": result.height,
        "mm_per_px": mm_per_px,
        "threshold": float(result.threshold or 0.5),
        "tta": tta,
        "crack": result.has_crack,
        "crack_probability": round(float(result.crack_probability or 0.0), 6),
        "severity": result.severity,
        "totals": totals,
        "cracks": cracks,
        "patches": result.patches,
        "overlay_png_base64": b64(png_bytes(overlay)),
        "overlay_width_px": int(overlay.shape[1]),
        "overlay_height_px": int(overlay.shape[0]),
        "seconds": round(result.seconds, 4),
    }
