"""Evaluate and run segmentation models on image files, with ONNX Runtime and no torch.

* :func:`select_pairs` — the image/mask pairs of a data set named by ``--split``;
* :func:`segment_image` — full-image probabilities: the model's preprocessing, reflect
  padding to the size multiple, crop back; tiles for photos over ``TILE_ABOVE`` px;
* :func:`evaluate_segmenter` — crack-class metrics (pooled and per image, ODS/OIS with
  a pixel tolerance, clDice; per-class IoU for multi-class models), all computed by
  :mod:`crackscan.metrics.segmentation`, the same code training calls;
* :func:`write_segmentation_outputs` — ``per_image.csv``, an overlay grid of the worst
  and best images by IoU, and a PR curve;
* :func:`predict_masks` — mask and overlay PNGs plus a CSV of crack fractions.

Metric definitions: see :mod:`crackscan.metrics.segmentation` and ``docs/metrics.md``.
"""

from __future__ import annotations

import csv
import heapq
import importlib
import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from crackscan.data.layouts import DatasetIndex, LayoutKind, Sample, index_dataset
from crackscan.evaluation.files import FileProblem
from crackscan.evaluation.splits import pick_split
from crackscan.imageio import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    MaskKind,
    read_image,
    read_mask,
    write_image,
    write_mask,
)
from crackscan.metrics.segmentation import (
    DEFAULT_THRESHOLDS,
    DEFAULT_TOLERANCE_PX,
    ClDiceCounts,
    ConfusionMatrix,
    PixelCounts,
    ToleranceCurve,
)
from crackscan.runtime.predictor import OnnxPredictor, size_multiple

ProgressCallback = Callable[[int, int], None]

TILE_ABOVE = 2048  # px: photos with a longer side are run in tiles (memory of one full-size pass)
FALLBACK_TILE = 1024  # px: tile side when runtime/tiling.py is not available
GRID_ROWS = 3  # worst and best images each shown in the overlay grid
THUMB_SIDE = 384  # px: longest side of the images kept for the overlay grid
READ_AHEAD = 4  # images decoded ahead of inference
PER_IMAGE_COLUMNS = (
    "image",
    "iou",
    "dice",
    "precision",
    "recall",
    "cldice",
    "crack_fraction_true",
    "crack_fraction_pred",
)
PREDICT_COLUMNS = ("path", "crack_fraction", "crack_pixels", "width", "height", "mask", "overlay")


class SegmentationEvaluationError(ValueError):
    """The data set or split cannot be evaluated with this model; the message says why."""


class PreprocessUnavailable(RuntimeError):
    """The model asks for image preprocessing this installation cannot do."""


# --------------------------------------------------------------------------- selection


@dataclass
class PairSelection:
    """The image/mask samples picked for evaluation and how they were picked."""

    samples: list[Sample]
    description: str
    index: DatasetIndex


def select_pairs(
    data: str | os.PathLike[str],
    split: str = "test",
    split_file: str | os.PathLike[str] | None = None,
    *,
    mask_dir: str | None = None,
) -> PairSelection:
    """Pick the image/mask pairs of ``data`` named by ``split``.

    ``split``: ``all`` (every pair), ``test``/``val``/``train`` (from ``split_file`` when
    given, else the layout's own split folders), or the path of a split file (its test
    split). ``mask_dir`` names the mask folder when a set has several. Raises
    :class:`SegmentationEvaluationError`, ``LayoutError`` or ``SplitError``.
    """
    index = index_dataset(data, mask_dir=mask_dir)
    if index.layout is not LayoutKind.IMAGE_MASK_PAIRS:
        raise SegmentationEvaluationError(
            f"{data}: class folders (a classification data set); segmentation evaluation needs image/mask "
            "pairs (DATA/images/ + DATA/masks/, optionally with train/val/test sub-folders)"
        )
    samples, desc = pick_split(
        index, data, split, split_file, error=SegmentationEvaluationError, unit="image/mask pairs"
    )
    return PairSelection(samples, desc, index)


# --------------------------------------------------------------------------- inference


def preprocess_for(predictor: OnnxPredictor) -> Callable[[np.ndarray], np.ndarray] | None:
    """The whole-image preprocessing the model stored in ``extra["preprocess"]``, or ``None``.

    Uses :mod:`crackscan.runtime.preprocess_seg` (the same code training used). Raises
    :class:`PreprocessUnavailable` only when a model asks for preprocessing and that
    module (or its entry point) is missing, so models without preprocessing always run.
    """
    spec = predictor.metadata.extra.get("preprocess")
    if not spec:
        return None
    try:
        module: Any = importlib.import_module("crackscan.runtime.preprocess_seg")
    except ImportError:
        module = None
    for name in ("preprocess_image", "apply_preprocess", "apply"):
        apply = getattr(module, name, None)
        if callable(apply):
            return lambda image: np.ascontiguousarray(apply(image, spec))
    raise PreprocessUnavailable(
        f"{predictor.path} asks for image preprocessing {spec!r}, which this crackscan installation cannot do "
        "(crackscan.runtime.preprocess_seg is missing); update crackscan"
    )


def _size_multiple(predictor: OnnxPredictor) -> int:
    return size_multiple(predictor.metadata)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _pad_reflect(image: np.ndarray, multiple: int) -> np.ndarray:
    h, w = image.shape[:2]
    ph, pw = _round_up(h, multiple) - h, _round_up(w, multiple) - w
    if not ph and not pw:
        return image
    # REFLECT_101 needs the pad to be shorter than the side; tiny images fall back to edge copies.
    border = cv2.BORDER_REFLECT_101 if ph < h and pw < w else cv2.BORDER_REPLICATE
    return cv2.copyMakeBorder(image, 0, ph, 0, pw, border)


def _whole(predictor: OnnxPredictor, image: np.ndarray, tta: bool = False) -> np.ndarray:
    """Probabilities of one (preprocessed) image run in one pass: H×W or C×H×W float32.

    ``tta``: the mean over the image and its horizontal and vertical flips (one batch of 3).
    """
    h, w = image.shape[:2]
    padded = _pad_reflect(image, _size_multiple(predictor))
    if not tta:
        probs = np.asarray(predictor.probability_map(padded[None]), dtype=np.float32)[0]
        return probs[..., :h, :w]
    views = np.stack([padded, padded[:, ::-1], padded[::-1, :]])
    p = np.asarray(predictor.probability_map(views), dtype=np.float32)
    probs = (p[0] + p[1][..., :, ::-1] + p[2][..., ::-1, :]) / np.float32(3.0)
    return probs[..., :h, :w]


def _tiled(predictor: OnnxPredictor, image: np.ndarray, tile: int, tta: bool = False) -> np.ndarray:
    """Simple non-overlapping tiles, each reflect-padded to the size multiple (fallback tiler)."""
    h, w = image.shape[:2]
    out: np.ndarray | None = None
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            part = _whole(predictor, image[y : y + tile, x : x + tile], tta)
            if out is None:
                out = np.zeros((*part.shape[:-2], h, w), np.float32)
            out[..., y : y + part.shape[-2], x : x + part.shape[-1]] = part
    assert out is not None
    return out


def segment_image(
    predictor: OnnxPredictor, image_rgb: np.ndarray, *, tile_above: int = TILE_ABOVE, tta: bool = False
) -> np.ndarray:
    """Per-pixel probabilities of an ``H×W×3`` uint8 photo at full resolution.

    Binary models give the crack probability ``H×W``; multi-class models the softmax
    ``C×H×W`` (float32, values in [0, 1]). The model's ``extra["preprocess"]`` is applied
    to the whole photo first; the photo is reflect-padded to ``extra["size_multiple"]``
    (default 32) and the result cropped back. Photos with a side over ``tile_above`` px
    are run in tiles: blended, overlapping ones from :mod:`crackscan.runtime.tiling`
    when it is installed (binary models), else plain non-overlapping ones. ``tta``
    averages over horizontal and vertical flips (3× the work).
    """
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 RGB image, got shape {image.shape} and dtype {image.dtype}")
    if max(image.shape[:2]) <= tile_above:
        prep = preprocess_for(predictor)
        return _whole(predictor, prep(image) if prep else image, tta)
    if len(predictor.metadata.class_names) <= 2:
        try:
            tiling: Any = importlib.import_module("crackscan.runtime.tiling")
        except ImportError:
            tiling = None
        if tiling is not None and hasattr(tiling, "predict_tiled"):
            # predict_tiled applies the model's preprocessing to the whole photo itself.
            return np.asarray(tiling.predict_tiled(predictor, image, tta=tta), dtype=np.float32)
    prep = preprocess_for(predictor)
    multiple = _size_multiple(predictor)
    return _tiled(predictor, prep(image) if prep else image, _round_up(FALLBACK_TILE, multiple), tta)


def crack_probability(probs: np.ndarray, crack_class: int) -> np.ndarray:
    """The crack channel of :func:`segment_image`'s output (H×W either way)."""
    return probs if probs.ndim == 2 else probs[crack_class]


def predicted_labels(probs: np.ndarray, crack_class: int, threshold: float) -> np.ndarray:
    """Label per pixel of a ``C×H×W`` softmax: crack where ``p_crack >= threshold``, else the best other class."""
    others = probs.copy()
    others[crack_class] = -np.inf
    labels = others.argmax(axis=0)
    labels[probs[crack_class] >= threshold] = crack_class
    return labels.astype(np.int64)


# --------------------------------------------------------------------------- overlays


def overlay(image_rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (255, 0, 0)) -> np.ndarray:
    """``image_rgb`` with ``mask`` pixels tinted ``colour`` (60 % opacity), uint8 H×W×3."""
    out = image_rgb.copy()
    m = np.asarray(mask, dtype=bool)
    tint = np.asarray(colour, dtype=np.float32)
    out[m] = (0.4 * image_rgb[m].astype(np.float32) + 0.6 * tint).astype(np.uint8)
    return out


def _thumbnail(image: np.ndarray, side: int = THUMB_SIDE, *, nearest: bool = False) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Thin cracks vanish under area averaging; masks keep their pixels with max pooling-like nearest.
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class ImageScore:
    """Metrics of one image at the model's threshold (no tolerance), all in [0, 1]."""

    image: str
    iou: float
    dice: float
    precision: float
    recall: float
    cldice: float
    crack_fraction_true: float
    crack_fraction_pred: float

    def row(self) -> list[str]:
        return [self.image] + [f"{getattr(self, c):.6f}" for c in PER_IMAGE_COLUMNS[1:]]


@dataclass
class Example:
    """A downscaled image with its truth and prediction, for the overlay grid."""

    image: str
    iou: float
    rgb: np.ndarray
    truth: np.ndarray
    pred: np.ndarray


def _finite(value: float | None) -> float | None:
    # JSON has no NaN: undefined metrics become null.
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


@dataclass
class SegmentationEvaluation:
    """Everything one segmentation evaluation found; metrics in [0, 1]."""

    model: str
    data: str
    split: str
    threshold: float
    class_names: list[str]
    crack_class: int
    tolerance_px: float
    tta: bool = False
    pixels: PixelCounts = field(default_factory=PixelCounts)
    curve: ToleranceCurve = field(default_factory=ToleranceCurve)  # with tolerance: ODS/OIS
    exact_curve: ToleranceCurve = field(default_factory=lambda: ToleranceCurve(tolerance_px=0.0))
    skeletons: ClDiceCounts = field(default_factory=ClDiceCounts)
    confusion: ConfusionMatrix | None = None
    scores: list[ImageScore] = field(default_factory=list)
    skipped: list[FileProblem] = field(default_factory=list)
    worst: list[tuple[float, int, Example]] = field(default_factory=list)  # max-heap via -iou
    best: list[tuple[float, int, Example]] = field(default_factory=list)  # min-heap on iou

    @property
    def n(self) -> int:
        return len(self.scores)

    def examples(self) -> tuple[list[Example], list[Example]]:
        """The worst and best images by IoU (worst first / best first), without repeats."""
        worst = [e for _, _, e in sorted(self.worst, key=lambda t: (-t[0], t[1]))]
        shown = {e.image for e in worst}
        best = [e for _, _, e in sorted(self.best, key=lambda t: (-t[0], t[1])) if e.image not in shown]
        return worst, best

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every metric, per-image means, curves and skipped files."""
        px = self.pixels
        d: dict[str, Any] = {
            "task": "segment",
            "model": self.model,
            "data": self.data,
            "split": self.split,
            "n": self.n,
            "n_empty": px.n_empty,
            "skipped": len(self.skipped),
            "threshold": float(self.threshold),
            "tolerance_px": float(self.tolerance_px),
            "tta": bool(self.tta),
            "class_names": list(self.class_names),
            "crack_class": int(self.crack_class),
            "iou": _finite(px.iou if self.n else math.nan),
            "miou": _finite(px.miou if self.n else math.nan),  # crack + background mean, as papers report
            "dice": _finite(px.dice if self.n else math.nan),
            "f1": _finite(px.dice if self.n else math.nan),
            "precision": _finite(px.precision if self.n else math.nan),
            "recall": _finite(px.recall if self.n else math.nan),
            "cldice": _finite(self.skeletons.cldice if self.n else math.nan),
            "ods_f1": _finite(self.curve.ods_f1),
            "ods_threshold": _finite(self.curve.ods_threshold),
            "ois_f1": _finite(self.curve.ois_f1),
            "ois_f1_pooled": _finite(self.curve.ois_f1_pooled),
            "best_threshold": _finite(self.exact_curve.ods_threshold),
            "best_threshold_f1": _finite(self.exact_curve.ods_f1),
        }
        for m in ("iou", "dice", "precision", "recall"):
            d[f"{m}_per_image_mean"] = _finite(px.per_image_mean(m))
            d[f"{m}_per_image_mean_nonempty"] = _finite(px.per_image_mean(m, empty="exclude"))
        d["cldice_per_image_mean"] = _finite(self.skeletons.per_image_mean())
        if self.confusion is not None:
            names = self.class_names
            d["per_class_iou"] = {n: _finite(v) for n, v in zip(names, self.confusion.iou(), strict=True)}
            d["per_class_dice"] = {n: _finite(v) for n, v in zip(names, self.confusion.dice(), strict=True)}
            d["mean_iou"] = _finite(self.confusion.mean_iou())
            d["confusion_matrix"] = self.confusion.matrix.tolist()
        d["pr_curve"] = {
            "thresholds": [float(t) for t in self.exact_curve.thresholds],
            "precision": [float(v) for v in self.exact_curve.precision],
            "recall": [float(v) for v in self.exact_curve.recall],
            "precision_tolerance": [float(v) for v in self.curve.precision],
            "recall_tolerance": [float(v) for v in self.curve.recall],
        }
        d["skipped_files"] = [p.to_dict() for p in self.skipped]
        return d


def _truth_labels(labels: np.ndarray, kind: MaskKind, crack_class: int) -> np.ndarray:
    """Boolean crack truth: an index mask's crack-class pixels, else any foreground."""
    return labels == crack_class if kind is MaskKind.MULTICLASS else labels > 0


def _read_pair(sample: Sample, max_pixels: int | None) -> tuple[np.ndarray, Any]:
    assert sample.mask is not None
    image = read_image(sample.image, max_pixels=max_pixels)
    mask = read_mask(sample.mask, max_pixels=max_pixels)
    if mask.labels.shape != image.shape[:2]:
        h, w = image.shape[:2]
        mh, mw = mask.labels.shape
        raise ImageReadError(str(sample.mask), f"mask is {mw}×{mh} but its image is {w}×{h}")
    return image, mask


def _prefetch(items: Sequence[Any], read: Callable[[Any], Any]) -> Iterator[tuple[Any, Future[Any]]]:
    """Yield ``(item, future)`` in order, decoding up to ``READ_AHEAD`` items ahead in threads."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        queue: deque[tuple[Any, Future[Any]]] = deque()
        it = iter(items)
        for item in it:
            queue.append((item, pool.submit(read, item)))
            if len(queue) >= READ_AHEAD:
                break
        while queue:
            item, fut = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(read, nxt)))
            yield item, fut


def _keep_example(ev: SegmentationEvaluation, order: int, score: ImageScore, rgb: np.ndarray, truth, pred) -> None:
    def example() -> Example:
        return Example(
            score.image,
            score.iou,
            _thumbnail(rgb),
            _thumbnail(truth.astype(np.uint8), nearest=True) > 0,
            _thumbnail(pred.astype(np.uint8), nearest=True) > 0,
        )

    # Bounded heaps: memory holds GRID_ROWS thumbnails each, whatever the data set size.
    if len(ev.worst) < GRID_ROWS:
        heapq.heappush(ev.worst, (-score.iou, order, example()))
    elif -score.iou > ev.worst[0][0]:
        heapq.heapreplace(ev.worst, (-score.iou, order, example()))
    if len(ev.best) < GRID_ROWS:
        heapq.heappush(ev.best, (score.iou, order, example()))
    elif score.iou > ev.best[0][0]:
        heapq.heapreplace(ev.best, (score.iou, order, example()))


def evaluate_segmenter(
    predictor: OnnxPredictor,
    selection: PairSelection,
    *,
    tolerance_px: float = DEFAULT_TOLERANCE_PX,
    thresholds: Sequence[float] | np.ndarray = DEFAULT_THRESHOLDS,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: ProgressCallback | None = None,
    tta: bool = False,
    threshold: float | None = None,
) -> SegmentationEvaluation:
    """Run ``predictor`` on every pair of ``selection`` and compute the segmentation metrics.

    Pixel metrics and clDice use ``threshold`` (default: the model's stored one for this
    mode, :meth:`ModelMetadata.threshold_for`) with no tolerance; ODS/OIS
    sweep ``thresholds`` with ``tolerance_px`` (default 2 px). Unreadable pairs and
    size mismatches are recorded in ``skipped``. Memory stays bounded: per-threshold
    counts and a few scalars per image, plus a handful of thumbnails for the grid.
    """
    meta = predictor.metadata
    if meta.task != "segment":
        raise SegmentationEvaluationError(f"{predictor.path} is a {meta.task} model, not a segmentation model")
    th = np.asarray(thresholds, dtype=np.float64)
    cut = float(threshold) if threshold is not None else meta.threshold_for(tta=tta)
    ev = SegmentationEvaluation(
        model=str(predictor.path),
        data=str(selection.index.root),
        split=selection.description,
        threshold=cut,
        class_names=list(meta.class_names),
        crack_class=int(meta.crack_class),
        tolerance_px=float(tolerance_px),
        tta=tta,
        curve=ToleranceCurve(th.copy(), tolerance_px),
        exact_curve=ToleranceCurve(th.copy(), 0.0),
    )
    multiclass = len(meta.class_names) > 2
    if multiclass:
        ev.confusion = ConfusionMatrix(len(meta.class_names))
    total = len(selection.samples)
    pairs = _prefetch(selection.samples, lambda s: _read_pair(s, max_pixels))
    for done, (sample, fut) in enumerate(pairs, start=1):
        key = selection.index.relative(sample.image)
        try:
            image, mask = fut.result()
        except ImageReadError as exc:
            ev.skipped.append(FileProblem(key, exc.reason if exc.source == str(sample.image) else str(exc)))
        else:
            probs = segment_image(predictor, image, tta=tta)
            crack = crack_probability(probs, meta.crack_class)
            truth = _truth_labels(mask.labels, mask.kind, meta.crack_class)
            if multiclass:
                assert ev.confusion is not None
                if int(mask.labels.max(initial=0)) >= len(meta.class_names):
                    raise SegmentationEvaluationError(
                        f"{sample.mask}: mask label {int(mask.labels.max())} but the model has only "
                        f"{len(meta.class_names)} classes ({', '.join(meta.class_names)})"
                    )
                labels = predicted_labels(probs, meta.crack_class, cut)
                truth_idx = mask.labels if mask.kind is MaskKind.MULTICLASS else truth * meta.crack_class
                ev.confusion.update(labels, truth_idx)
            pred = crack >= cut
            counts = ev.pixels.update(pred, truth)
            skel = ev.skeletons.update(pred, truth)
            ev.curve.update(crack, truth)
            ev.exact_curve.update(crack, truth)
            score = ImageScore(
                image=key,
                iou=counts.iou,
                dice=counts.dice,
                precision=counts.precision,
                recall=counts.recall,
                cldice=skel.cldice,
                crack_fraction_true=counts.true_fraction,
                crack_fraction_pred=counts.pred_fraction,
            )
            ev.scores.append(score)
            _keep_example(ev, len(ev.scores), score, image, truth, pred)
        if progress is not None:
            progress(done, total)
    return ev


# --------------------------------------------------------------------------- outputs


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed: the plots are skipped, everything else is written."""


def write_per_image_csv(ev: SegmentationEvaluation, path: str | os.PathLike[str]) -> Path:
    """One row per evaluated image, columns :data:`PER_IMAGE_COLUMNS` (metrics at the model threshold)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(PER_IMAGE_COLUMNS)
        for s in ev.scores:
            writer.writerow(s.row())
    return out


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotsUnavailable("matplotlib is not installed: plots skipped (pip install matplotlib)") from None
    return plt


def write_overlay_grid(ev: SegmentationEvaluation, path: str | os.PathLike[str]) -> Path | None:
    """A grid PNG: rows of image | truth overlay (green) | prediction overlay (red), worst then best by IoU."""
    worst, best = ev.examples()
    rows = [("worst", e) for e in worst] + [("best", e) for e in best]
    if not rows:
        return None
    plt = _pyplot()
    # Rows as tall as the photos are (at 3 in wide per panel) plus room for the titles.
    heights = [3.0 * e.rgb.shape[0] / e.rgb.shape[1] + 0.35 for _, e in rows]
    fig, axes = plt.subplots(
        len(rows), 3, figsize=(9, sum(heights)), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for r, (which, e) in enumerate(rows):
        panels = (e.rgb, overlay(e.rgb, e.truth, (0, 200, 0)), overlay(e.rgb, e.pred, (255, 0, 0)))
        titles = (f"{which}: {e.image}", "ground truth", f"prediction (IoU {e.iou:.3f})")
        for ax, panel, title in zip(axes[r], panels, titles, strict=True):
            ax.imshow(panel)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_pr_curve(ev: SegmentationEvaluation, path: str | os.PathLike[str]) -> Path:
    """PR curve PNG: pooled pixel precision/recall over thresholds, exact and with the tolerance."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(ev.exact_curve.recall, ev.exact_curve.precision, label="exact pixels")
    ax.plot(ev.curve.recall, ev.curve.precision, label=f"tolerance {ev.tolerance_px:g} px")
    k = int(np.argmin(np.abs(ev.exact_curve.thresholds - ev.threshold)))
    ax.plot(
        ev.exact_curve.recall[k], ev.exact_curve.precision[k], "o", color="red", label=f"threshold {ev.threshold:g}"
    )
    ods = ev.curve.ods_index
    ax.plot(ev.curve.recall[ods], ev.curve.precision[ods], "s", color="black", label=f"ODS F1 {ev.curve.ods_f1:.3f}")
    ax.set_xlabel("recall (crack pixels)")
    ax.set_ylabel("precision (crack pixels)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("precision–recall")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_segmentation_outputs(ev: SegmentationEvaluation, out_dir: str | os.PathLike[str]) -> tuple[list[Path], str]:
    """Write ``per_image.csv``, ``overlays.png`` and ``pr_curve.png`` to ``out_dir``.

    Returns the written paths and a note ("" or why plots were skipped). The CSV is
    always written; plots need matplotlib.
    """
    folder = Path(out_dir)
    written = [write_per_image_csv(ev, folder / "per_image.csv")]
    try:
        grid = write_overlay_grid(ev, folder / "overlays.png")
        if grid is not None:
            written.append(grid)
        if ev.n:
            written.append(write_pr_curve(ev, folder / "pr_curve.png"))
    except PlotsUnavailable as exc:
        return written, str(exc)
    return written, ""


# --------------------------------------------------------------------------- predict


@dataclass(frozen=True)
class MaskPrediction:
    """What was written for one image."""

    path: str
    crack_fraction: float  # fraction of pixels at or above the threshold, in [0, 1]
    crack_pixels: int
    width: int
    height: int
    mask: str
    overlay: str

    def row(self) -> list[str]:
        return [
            self.path,
            f"{self.crack_fraction:.6f}",
            str(self.crack_pixels),
            str(self.width),
            str(self.height),
            self.mask,
            self.overlay,
        ]


@dataclass
class MaskPredictionResult:
    predictions: list[MaskPrediction]
    problems: list[FileProblem]
    model: str
    threshold: float
    csv_path: Path | None = None


def _unique_stems(files: Sequence[Path]) -> list[str]:
    """File stems, suffixed ``-2``, ``-3`` … where two inputs share one (a/x.jpg, b/x.png)."""
    seen: dict[str, int] = {}
    out = []
    for f in files:
        stem = f.stem
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return out


def predict_masks(
    predictor: OnnxPredictor,
    files: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: ProgressCallback | None = None,
) -> MaskPredictionResult:
    """Segment ``files`` at the model's threshold and write, under ``out_dir``:
    ``masks/<stem>.png`` (0/255 crack mask), ``overlays/<stem>.png`` (crack in red) and
    ``predictions.csv`` (columns :data:`PREDICT_COLUMNS`). Unreadable files are recorded.
    """
    meta = predictor.metadata
    if meta.task != "segment":
        raise SegmentationEvaluationError(f"{predictor.path} is a {meta.task} model, not a segmentation model")
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise SegmentationEvaluationError(f"{folder}: exists and is not a folder (--out names a folder here)")
    paths = [Path(f) for f in files]
    stems = dict(zip(paths, _unique_stems(paths), strict=True))
    result = MaskPredictionResult([], [], str(predictor.path), float(meta.threshold))
    for done, (path, fut) in enumerate(_prefetch(paths, lambda p: read_image(p, max_pixels=max_pixels)), start=1):
        try:
            image = fut.result()
        except ImageReadError as exc:
            result.problems.append(FileProblem(os.fspath(path), exc.reason))
        else:
            crack = crack_probability(segment_image(predictor, image), meta.crack_class)
            pred = crack >= meta.threshold
            mask_path = folder / "masks" / f"{stems[path]}.png"
            overlay_path = folder / "overlays" / f"{stems[path]}.png"
            write_mask(mask_path, pred)
            write_image(overlay_path, overlay(image, pred))
            h, w = pred.shape
            n = int(np.count_nonzero(pred))
            result.predictions.append(
                MaskPrediction(os.fspath(path), n / pred.size, n, w, h, str(mask_path), str(overlay_path))
            )
        if progress is not None:
            progress(done, len(paths))
    folder.mkdir(parents=True, exist_ok=True)
    result.csv_path = folder / "predictions.csv"
    with result.csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(PREDICT_COLUMNS)
        for p in result.predictions:
            writer.writerow(p.row())
    return result
