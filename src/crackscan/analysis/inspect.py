"""Inspection of photos of any size: tiled model → crack mask → measurements → report files.

:func:`inspect_image` runs one photo (a path or an RGB array) through a model and
returns an :class:`InspectionResult`; :func:`inspect_paths` does it for files, folders
and globs, writes per-image files (mask, overlay, JSON) into an output folder and
records every file it could not inspect instead of stopping; :func:`write_report`
(:mod:`crackscan.analysis.report`) then writes ``summary.csv`` and ``report.html``.

Segmentation models give a per-pixel crack probability (blended over overlapping tiles
by :func:`crackscan.runtime.tiling.predict_tiled`), thresholded into a mask that
:func:`crackscan.analysis.measure.measure_mask` measures (length, width, severity).
Classification models give a grid of 227-px patch probabilities instead: where the
cracks are, but no width or length.

The CLI, the HTTP service and the Ray engine all call these functions. This module
imports no torch.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crackscan.analysis.measure import ImageMeasurement, measure_mask
from crackscan.analysis.output_folder import (
    InspectionError,
    exclude_own_outputs,
    prepare_output_dir,
    safe_name,
    unique_names,
    write_marker,
)
from crackscan.analysis.severity import SEVERITY_NONE, SEVERITY_UNKNOWN, SeverityBands
from crackscan.imageio import DEFAULT_MAX_PIXELS, ImageReadError, read_image
from crackscan.runtime.predictor import ModelLoadError, OnnxPredictor, Predictor, load_predictor, resolve_model_path
from crackscan.runtime.tiling import (
    DEFAULT_BATCH_SIZE,  # segmentation tiles per model call (see runtime/tiling.py)
    DEFAULT_OVERLAP,
    DEFAULT_PATCH,
    PatchGrid,
    ProgressCallback,
    classify_patches,
    patch_screen,
    predict_tiled,
    preprocess_for,
)

# A segmenter's map of a full-resolution photo carries pores and specks of a few dozen
# pixels and breaks thin cracks into pieces a few px apart: stricter than `measure`'s
# defaults for hand-made masks (20 px, 3 px). Both are options of `crackscan inspect`.
INSPECT_MIN_AREA_PX = 100
INSPECT_JOIN_GAP_PX = 5

log = logging.getLogger(__name__)

DEFAULT_MODEL = "crack-seg"  # bundled segmenter used when no --model is given
# Coarse-to-fine screening by default: full-size tiles only where a half-size pass reaches 0.05. On 15
# canvases of real test cracks (DeepCrack, CRACK500, crackmix; benchmarks/coarse_gate.py) it lost no
# crack pixel the full pass found, and it runs 25–75 % fewer full-size tiles on photos with few cracks.
DEFAULT_COARSE_GATE = 0.05
DEFAULT_GATE_THRESHOLD = 0.1  # classifier gate: a patch this likely to hold a crack sends its tiles to the segmenter
OVERLAY_MAX_SIDE = 2048  # px: overlays of larger photos are downscaled to this long side
STATUS_OK = "ok"
STATUS_FAILED = "failed"


# --------------------------------------------------------------------------- settings


@dataclass
class InspectionSettings:
    """How photos are inspected.

    ``tile``: segmentation tile side in px (``None``: the model's ``tile_size``, ≥ 512);
    ``overlap``: fraction of the tile shared by neighbours, ``[0, 1)``; ``threshold``:
    crack probability from which a pixel (or patch) is crack (``None``: the model's
    stored threshold); ``tta``: average over flips; ``batch_size``: tiles per model call;
    ``max_pixels``: photos with more pixels are refused (listed as failed);
    ``mm_per_px``: scale for mm lengths/widths and mm severity bands (> 0, or ``None``);
    ``patch``: classifier patch side in px on the photo; ``min_area_px`` /
    ``join_gap_px``: passed to :func:`~crackscan.analysis.measure.measure_mask`;
    ``bands``: severity bands; ``overlay_max_side``: long side of overlays, px;
    ``coarse_gate``: coarse-to-fine screening (see
    :func:`~crackscan.runtime.tiling.predict_tiled`; default ``DEFAULT_COARSE_GATE``),
    ``None`` = every tile at full size; ``gate``: a crack classifier (bundled name or
    file, e.g. ``"crack-cls"``) run over the photo's 227-px patches first; the segmenter
    then runs only on tiles that overlap a patch with a crack probability of at least
    ``gate_threshold``. A classifier gate replaces the coarse screening.
    """

    tile: int | None = None
    overlap: float = DEFAULT_OVERLAP
    threshold: float | None = None
    tta: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    mm_per_px: float | None = None
    patch: int = DEFAULT_PATCH
    min_area_px: int = INSPECT_MIN_AREA_PX
    join_gap_px: int = INSPECT_JOIN_GAP_PX
    bands: SeverityBands = field(default_factory=SeverityBands)
    overlay_max_side: int = OVERLAY_MAX_SIDE
    coarse_gate: float | None = DEFAULT_COARSE_GATE
    gate: str | None = None
    gate_threshold: float = DEFAULT_GATE_THRESHOLD

    def validate(self) -> InspectionSettings:
        """Raise :class:`InspectionError` with a user-facing message for any bad value."""
        if self.mm_per_px is not None and not (math.isfinite(self.mm_per_px) and self.mm_per_px > 0):
            raise InspectionError(f"--mm-per-px must be a positive number of mm per pixel, got {self.mm_per_px:g}")
        if self.tile is not None and self.tile < 16:
            raise InspectionError(f"--tile must be at least 16 px, got {self.tile}")
        if not (math.isfinite(self.overlap) and 0.0 <= self.overlap < 0.95):
            raise InspectionError(f"--overlap must be in [0, 0.95), got {self.overlap:g}")
        if self.threshold is not None and not (0.0 < self.threshold < 1.0):
            raise InspectionError(f"--threshold must be between 0 and 1 (exclusive), got {self.threshold:g}")
        if self.batch_size < 1:
            raise InspectionError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.coarse_gate is not None and not (0.0 < self.coarse_gate < 1.0):
            raise InspectionError(f"--coarse-gate must be between 0 and 1 (exclusive), got {self.coarse_gate:g}")
        if not (math.isfinite(self.gate_threshold) and 0.0 < self.gate_threshold < 1.0):
            raise InspectionError(f"--gate-threshold must be between 0 and 1 (exclusive), got {self.gate_threshold:g}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise InspectionError(f"--max-pixels must be at least 1, got {self.max_pixels}")
        if self.patch < 8:
            raise InspectionError(f"patch size must be at least 8 px, got {self.patch}")
        if self.overlay_max_side < 64:
            raise InspectionError(f"overlay size must be at least 64 px, got {self.overlay_max_side}")
        if self.min_area_px < 0 or self.join_gap_px < 0:
            raise InspectionError("min_area_px and join_gap_px must be >= 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"] = self.bands.to_dict()
        return d


def model_info(predictor: OnnxPredictor) -> dict[str, Any]:
    """What a report says about the model: name, file, architecture, task, threshold, sizes."""
    meta = predictor.metadata
    path = Path(getattr(predictor, "path", "") or "")
    return {
        "name": path.stem or meta.arch,
        "path": str(path),
        "arch": meta.arch,
        "task": meta.task,
        "threshold": float(meta.threshold),
        "input_size": int(meta.input_size),
        "crackscan_version": meta.crackscan_version,
    }


# --------------------------------------------------------------------------- results


@dataclass
class InspectionResult:
    """One photo's inspection (or why it failed).

    ``status`` is ``"ok"`` or ``"failed"`` (``error`` says why). Sizes in px.
    ``crack_probability``: the largest crack probability anywhere on the photo
    (segmentation: max of the blended map; classification: max patch probability).
    ``measurement``: lengths and widths (segmentation only). ``patches``: classifier
    patches at or above the threshold. ``outputs``: files written, relative to the
    output folder. ``previews``: small JPEG/PNG bytes for the HTML report.
    ``image``/``mask``/``probability``/``patch_grid`` hold the arrays until
    :meth:`release` (``inspect_paths`` releases them once the files are written).
    """

    source: str
    name: str
    status: str = STATUS_OK
    error: str | None = None
    task: str | None = None
    height: int = 0
    width: int = 0
    threshold: float | None = None
    crack_probability: float | None = None
    measurement: ImageMeasurement | None = None
    patches: list[dict[str, Any]] = field(default_factory=list)
    n_patches: int = 0
    tiles: int = 0
    tiles_run: int = 0
    seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    previews: dict[str, bytes] = field(default_factory=dict, repr=False)
    image: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)
    probability: np.ndarray | None = field(default=None, repr=False)
    patch_grid: PatchGrid | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def has_crack(self) -> bool:
        """A crack was found (segmentation: at least one measured crack; classification: a patch at threshold)."""
        if not self.ok:
            return False
        if self.measurement is not None:
            return self.measurement.n_cracks > 0
        return bool(self.patches)

    @property
    def severity(self) -> str:
        """Severity band of the widest crack; ``"unknown"`` for classifier cracks (no width); ``""`` if failed."""
        if not self.ok:
            return ""
        if self.measurement is not None:
            return self.measurement.severity
        return SEVERITY_UNKNOWN if self.patches else SEVERITY_NONE

    def release(self) -> None:
        """Drop the large arrays (photo, mask, probability map); figures and previews stay."""
        self.image = self.mask = self.probability = None
        if self.measurement is not None:
            self.measurement.centreline = None
        if self.patch_grid is not None:
            self.patch_grid = None

    def to_row(self) -> dict[str, Any]:
        """The ``summary.csv`` row (``None`` for values that do not apply)."""
        m = self.measurement
        return {
            "image": self.source,
            "status": self.status,
            "cracks": m.n_cracks if m is not None else None,
            "length_px": m.total_length_px if m is not None else None,
            "max_width_px": m.max_width_px if m is not None else None,
            "mean_width_px": m.mean_width_px if m is not None else None,
            "length_mm": m.length_mm if m is not None else None,
            "max_width_mm": m.max_width_mm if m is not None else None,
            "mean_width_mm": m.mean_width_mm if m is not None else None,
            "severity": self.severity,
            "crack_probability": None if self.crack_probability is None else round(self.crack_probability, 4),
            "crack_patches": len(self.patches) if self.task == "classify" else None,
            "width_px": self.width or None,
            "height_px": self.height or None,
            "error": self.error,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything but the arrays and previews (JSON-ready)."""
        return {
            "image": self.source,
            "name": self.name,
            "status": self.status,
            "error": self.error,
            "task": self.task,
            "width_px": self.width,
            "height_px": self.height,
            "threshold": self.threshold,
            "crack_probability": self.crack_probability,
            "has_crack": self.has_crack,
            "severity": self.severity,
            "measurement": self.measurement.to_dict() if self.measurement is not None else None,
            "patches": self.patches,
            "n_patches": self.n_patches,
            "tiles": self.tiles,
            "tiles_run": self.tiles_run,
            "seconds": round(self.seconds, 3),
            "outputs": dict(self.outputs),
        }


SUMMARY_COLUMNS = tuple(InspectionResult(source="", name="").to_row())


# --------------------------------------------------------------------------- one image


def _threshold(predictor: OnnxPredictor, settings: InspectionSettings) -> float:
    if settings.threshold is not None:
        return float(settings.threshold)
    return predictor.metadata.threshold_for(tta=settings.tta)


def inspect_image(
    predictor: OnnxPredictor,
    path_or_array: str | os.PathLike[str] | np.ndarray,
    *,
    settings: InspectionSettings | None = None,
    name: str | None = None,
    progress: ProgressCallback | None = None,
) -> InspectionResult:
    """Inspect one photo: a file path or an ``H×W×3`` uint8 RGB array.

    Segmentation models: blended tile probabilities (``result.probability``, float32
    0–1), a boolean mask at the threshold (``result.mask``) and its measurements
    (``result.measurement``, px and — with ``settings.mm_per_px`` — mm). Classifiers: a
    grid of patch probabilities (``result.patch_grid``) and the patches at or above the
    threshold (``result.patches``); no measurement. ``name``: the stem of output files
    (default: the file's stem, or ``"image"`` for arrays). ``progress(done, total)``
    counts tiles or patches. Raises :class:`~crackscan.imageio.ImageReadError` for an unreadable
    or over-limit file and :class:`InspectionError` for bad settings or arrays.
    """
    settings = (settings or InspectionSettings()).validate()
    start = time.perf_counter()
    if isinstance(path_or_array, np.ndarray):
        image = path_or_array
        source = name or "<array>"
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InspectionError(f"expected an H×W×3 uint8 RGB array, got shape {image.shape} ({image.dtype})")
        if image.shape[0] < 1 or image.shape[1] < 1:
            raise InspectionError(f"empty image ({image.shape[1]}×{image.shape[0]} px)")
        if settings.max_pixels is not None and image.shape[0] * image.shape[1] > settings.max_pixels:
            raise ImageReadError(
                source, f"too large: {image.shape[1]}×{image.shape[0]} px exceeds the limit of {settings.max_pixels:,}"
            )
    else:
        source = os.fspath(path_or_array)
        image = read_image(path_or_array, max_pixels=settings.max_pixels)
    h, w = image.shape[:2]
    threshold = _threshold(predictor, settings)
    meta = predictor.metadata
    stem = name or ("image" if isinstance(path_or_array, np.ndarray) else Path(source).stem)
    result = InspectionResult(
        source=source, name=safe_name(stem), task=meta.task, height=h, width=w, threshold=threshold
    )
    result.image = image
    if meta.task == "segment":
        tile = settings.tile or meta.tile_size
        screen = None
        if settings.gate is not None:
            grid = classify_patches(open_gate_model(settings.gate), image, patch=settings.patch, batch_size=64)
            screen = patch_screen(grid, settings.gate_threshold)
        stats: dict[str, int] = {}
        prob = predict_tiled(
            predictor,
            image,
            tile=tile,
            overlap=settings.overlap,
            batch_size=settings.batch_size,
            tta=settings.tta,
            progress=progress,
            # A tile the coarse pass leaves out keeps its coarse probabilities (< gate): never let
            # those reach the mask threshold, or a low --threshold would draw half-size blobs there.
            coarse_gate=None
            if settings.gate is not None or settings.coarse_gate is None
            else min(settings.coarse_gate, threshold),
            screen=screen,
            stats=stats,
        )
        result.tiles, result.tiles_run = stats["tiles"], stats["tiles_run"]
        mask = prob >= threshold
        result.probability, result.mask = prob, mask
        result.crack_probability = float(prob.max())
        result.measurement = measure_mask(
            mask,
            mm_per_px=settings.mm_per_px,
            min_area_px=settings.min_area_px,
            join_gap_px=settings.join_gap_px,
            bands=settings.bands,
            image=source,
            keep_centreline=True,  # the width overlay reuses it
        )
    elif meta.task == "classify":
        grid = classify_patches(
            predictor,
            image,
            patch=settings.patch,
            batch_size=max(settings.batch_size, 32),  # patches are small: bigger batches are cheap
            tta=settings.tta,
            progress=progress,
        )
        result.patch_grid = grid
        result.crack_probability = grid.max_probability
        result.patches = grid.above(threshold)
        result.n_patches = int(grid.probabilities.size)
    else:
        raise InspectionError(f"cannot inspect with a {meta.task!r} model (expected 'segment' or 'classify')")
    result.seconds = time.perf_counter() - start
    return result


# --------------------------------------------------------------------------- many images


def default_model() -> Path:
    """The bundled segmenter (``crack-seg``); :class:`InspectionError` while it is not bundled yet."""
    try:
        return resolve_model_path(DEFAULT_MODEL)
    except ModelLoadError:
        raise InspectionError(
            f"no model given and the bundled {DEFAULT_MODEL!r} model is not installed yet; "
            "pass --model FILE.onnx (a crackscan segmentation or classification model)"
        ) from None


def open_inspection_model(model: str | os.PathLike[str] | Predictor | None) -> Predictor:
    """A predictor from a model file, a bundled name, a training run folder, or ``None`` (default).

    Raises :class:`~crackscan.runtime.predictor.ModelLoadError` for unusable files and
    :class:`InspectionError` when no model is given and none is bundled, or the model
    asks for preprocessing this installation cannot do.
    """
    if model is None:
        model = default_model()
    if not isinstance(model, (str, os.PathLike)):  # an open predictor (ONNX Runtime, torch, an ensemble)
        predictor = model
    else:
        path = Path(model)
        if path.is_dir() and (path / "model.onnx").is_file():
            path = path / "model.onnx"
        predictor = load_predictor(path if path.exists() else model)
    if predictor.metadata.task not in ("segment", "classify"):
        raise InspectionError(f"{predictor.path}: cannot inspect with a {predictor.metadata.task!r} model")
    try:
        prep = preprocess_for(predictor)
        if prep is not None:
            prep(np.full((8, 8, 3), 128, np.uint8))  # an unknown step fails here, not on every photo
    except ValueError as exc:
        raise InspectionError(f"{predictor.path}: {exc}") from None
    # Measuring needs scikit-image's morphology package, ~0.5 s to import (measure.py imports it
    # lazily so that other commands start fast): load it with the model, not in the first photo.
    import skimage.morphology  # noqa: F401

    return predictor


@functools.lru_cache(maxsize=4)
def open_gate_model(model: str) -> OnnxPredictor:
    """The crack classifier of ``--gate`` (bundled name or file), loaded once per process.

    Raises :class:`InspectionError` for a file that is not a crackscan classifier.
    """
    try:
        predictor = load_predictor(resolve_model_path(model))
    except ModelLoadError as exc:
        raise InspectionError(f"--gate: {exc}") from None
    if predictor.metadata.task != "classify":
        raise InspectionError(
            f"--gate needs a crack classifier (e.g. crack-cls); {model} is a {predictor.metadata.task!r} model"
        )
    return predictor


def inspect_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    model: str | os.PathLike[str] | OnnxPredictor | None = None,
    settings: InspectionSettings | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    tile_progress: Callable[[str, int, int], None] | None = None,
    report: bool = True,
) -> list[InspectionResult]:
    """Inspect files, folders (recursive) and glob patterns; one result per photo or failure.

    With ``out_dir`` every inspected photo gets ``masks/<name>.png`` (0/255, segmentation),
    ``overlays/<name>.png`` (cracks coloured by width, or the classifier's patch heatmap;
    long side at most ``settings.overlay_max_side`` px) and ``results/<name>.json``
    (measurements, model, settings); with ``report`` also ``summary.csv`` and
    ``report.html``. Files that cannot be read, are empty or exceed ``settings.max_pixels``
    become ``status="failed"`` results with the reason; the others are inspected. Photos
    inside ``out_dir`` are not inputs, and inputs are never written to.

    ``progress(done, total)`` counts photos; ``tile_progress(name, done, total)`` the
    tiles or patches of the current photo. Arrays are released after each photo when
    ``out_dir`` is given (memory stays at one photo's worth), kept otherwise.
    """
    from crackscan.analysis.report import write_image_outputs, write_report
    from crackscan.evaluation.files import collect_images

    settings = (settings or InspectionSettings()).validate()
    predictor = open_inspection_model(model)
    if settings.gate is not None and predictor.metadata.task == "segment":
        open_gate_model(settings.gate)  # a bad --gate fails here, not on every photo
    files, problems = collect_images(paths)
    out: Path | None = None
    if out_dir is not None:
        files = exclude_own_outputs(files, Path(out_dir))
        out = prepare_output_dir(out_dir, overwrite=overwrite)
        write_marker(out, [])  # at once: an interrupted run's folder is still recognised as ours

    results: list[InspectionResult] = [
        InspectionResult(source=p.path, name="", status=STATUS_FAILED, error=p.reason) for p in problems
    ]
    names = unique_names(files)
    written: list[str] = []
    total = len(files)
    info = model_info(predictor)
    if progress is not None:
        progress(0, total)
    for i, (path, name) in enumerate(zip(files, names, strict=True)):
        tiles = None if tile_progress is None else (lambda d, t, _n=name: tile_progress(_n, d, t))
        try:
            result = inspect_image(predictor, path, settings=settings, name=name, progress=tiles)
            result.source = str(path)
            if out is not None:
                written += write_image_outputs(result, out, model=info, settings=settings)
                result.release()
        except ImageReadError as exc:
            result = InspectionResult(source=str(path), name=name, status=STATUS_FAILED, error=exc.reason)
        except MemoryError:
            result = InspectionResult(
                source=str(path), name=name, status=STATUS_FAILED, error="not enough memory for this image"
            )
        except Exception as exc:  # one odd file must not end a run over 1,000 photos
            log.exception("inspection of %s failed", path)
            result = InspectionResult(
                source=str(path), name=name, status=STATUS_FAILED, error=f"{type(exc).__name__}: {exc}"
            )
        results.append(result)
        if progress is not None:
            progress(i + 1, total)
    if out is not None:
        if report:
            written += write_report(results, out, model=info, settings=settings)
        write_marker(out, written)
    return results


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an RGB or single-channel uint8 array (for previews and the service)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
