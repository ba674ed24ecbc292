"""Full-resolution inference on photos of any size: sliding windows, blended.

Segmentation models are trained on tiles (``metadata.input_size`` px, 512 for most),
but photos are 4000×3000 or 8000×2000. :func:`predict_tiled` runs the model on
overlapping tiles and blends their crack probabilities with a weight window that is
highest at the tile centre, where the model sees the most context, and never zero, so
pixels near the tile border still count. The image is *virtually* padded by reflection
(indices are mirrored when a tile is cut; the padded image is never built), so every
tile is full-size, the photo's own border gets context, and tile sides are multiples of
the model's ``extra["size_multiple"]``. Probabilities accumulate into two float32 maps
(probability × weight, weight), filled batch by batch: memory is the photo plus 8 bytes
per pixel plus one batch of tiles, whatever the photo size.

Classifiers (``task == "classify"``) get :func:`classify_patches` instead: the photo cut
into a grid of 227-px patches (the Özgenel data set's patch size), each resized to the
model's input size, one crack probability per patch.

This module imports no torch.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from crackscan.runtime.predictor import size_multiple
from crackscan.runtime.preprocess import resize_patch

ProgressCallback = Callable[[int, int], None]
# (y0, y1, x0, x1) of a tile's part inside the photo, px, end exclusive → run the model on it?
TileScreen = Callable[[int, int, int, int], bool]

DEFAULT_TILE = 512  # px; the bundled segmenters are trained on 512-px tiles
DEFAULT_OVERLAP = 0.25  # fraction of the tile side shared by neighbouring tiles
# Tiles per ONNX Runtime call. On 2 cores a 512² tile costs the same alone as in a batch of 4 (crack-seg v3:
# 34.6 vs 35.4 ms), and with one batch shape ONNX Runtime's set-up for a new input shape (0.4–1.2 s, e.g.
# for the remainder batch) is paid once per process, not per photo.
DEFAULT_BATCH_SIZE = 1
DEFAULT_PATCH = 227  # px; classifier patch side on the photo (Özgenel's patches are 227×227)
WINDOW_FLOOR = 0.05  # smallest blend weight: tile corners still count where nothing else covers them
COARSE_SCALE = 0.5  # coarse-to-fine: the screening pass sees the photo at half size (a quarter of the work)
COARSE_MIN_TILES = 6  # below this many full-size tiles the screening pass would cost more than it saves
COARSE_OVERLAP = 0.0  # the screening pass only has to find tiles worth a full look: no overlap, fewer tiles


class TilingError(ValueError):
    """Bad tiling arguments or an image the tiler cannot use; the message says which."""


class Predictor(Protocol):
    """What tiling needs of a predictor (:class:`~crackscan.runtime.predictor.OnnxPredictor`)."""

    @property
    def metadata(self):  # type: ignore[no-untyped-def]  # ModelMetadata
        ...

    def probability_map(self, batch_uint8: np.ndarray) -> np.ndarray: ...

    def crack_probability(self, batch_uint8: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------- geometry


def _pair(tile: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(tile, (int, np.integer)):
        th = tw = int(tile)
    else:
        th, tw = (int(v) for v in tile)
    if th < 1 or tw < 1:
        raise TilingError(f"tile size must be at least 1 px, got {th}×{tw}")
    return th, tw


def _check_overlap(overlap: float) -> None:
    if not (math.isfinite(overlap) and 0.0 <= overlap < 1.0):
        raise TilingError(f"tile overlap must be in [0, 1), got {overlap}")


def _axis_starts(length: int, tile: int, overlap: float) -> list[int]:
    if length <= tile:
        return [0]
    stride = max(1, round(tile * (1.0 - overlap)))
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)  # the last tile ends exactly at the border
    return starts


def tile_grid(h: int, w: int, tile: int | Sequence[int], overlap: float) -> list[tuple[int, int]]:
    """Top-left corners ``(y0, x0)`` (px) of tiles covering an ``h×w`` area, row by row.

    ``tile`` is the side (px), or ``(height, width)``; neighbouring tiles share
    ``overlap`` (fraction in ``[0, 1)``) of the side; the stride is
    ``round(tile × (1 − overlap))`` and the last tile of a row/column is moved back so
    that it ends at the border. An axis shorter than the tile gets one tile at 0 (it
    extends past the border: the caller pads).
    """
    th, tw = _pair(tile)
    _check_overlap(overlap)
    if h < 1 or w < 1:
        raise TilingError(f"cannot tile an empty {h}×{w} area")
    return [(y, x) for y in _axis_starts(h, th, overlap) for x in _axis_starts(w, tw, overlap)]


def blend_window(tile: int | Sequence[int], floor: float = WINDOW_FLOOR) -> np.ndarray:
    """The blend weights of one tile: a 2-D Hann window with a floor, float32 ``tile×tile``.

    The weight is ``max(floor, hann_y · hann_x)`` with ``hann(i) = sin²(π(i + ½)/n)``: 1
    at the centre, small but never 0 at the border (``floor`` in ``(0, 1]``), so
    overlapping tiles hand over smoothly (no seams) and a pixel only one tile covers
    still gets that tile's prediction.
    """
    th, tw = _pair(tile)
    if not 0.0 < floor <= 1.0:
        raise TilingError(f"window floor must be in (0, 1], got {floor}")

    def hann(n: int) -> np.ndarray:
        return np.sin(np.pi * (np.arange(n, dtype=np.float64) + 0.5) / n) ** 2

    return np.maximum(np.outer(hann(th), hann(tw)), floor).astype(np.float32)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Mirror indices into ``[0, n)`` without repeating the edge (OpenCV's REFLECT_101), any distance."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    i = np.abs(index) % period
    return np.where(i >= n, period - i, i)


def _cut(image: np.ndarray, y0: int, x0: int, th: int, tw: int) -> np.ndarray:
    """The ``th×tw`` window at ``(y0, x0)`` (may lie partly outside): a view when inside, else mirrored."""
    h, w = image.shape[:2]
    inside_y = y0 >= 0 and y0 + th <= h
    inside_x = x0 >= 0 and x0 + tw <= w
    rows = slice(y0, y0 + th) if inside_y else _reflect(np.arange(y0, y0 + th), h)
    cols = slice(x0, x0 + tw) if inside_x else _reflect(np.arange(x0, x0 + tw), w)
    if inside_y or inside_x:
        return image[rows, cols]
    # Both axes mirrored: index a th×tw block directly, never a th×W intermediate.
    return image[rows[:, None], cols[None, :]]


def _size_multiple(predictor: Predictor) -> int:
    return size_multiple(predictor.metadata)


# --------------------------------------------------------------------------- preprocessing


def preprocess_for(predictor: Predictor) -> Callable[[np.ndarray], np.ndarray] | None:
    """The whole-image preprocessing a model asks for in ``extra["preprocess"]``, or ``None``.

    Applied to the whole photo before tiling (CLAHE on tiles would give each tile other
    statistics: seams). Needs :mod:`crackscan.runtime.preprocess_seg`; a model that asks
    for preprocessing this installation cannot do raises :class:`TilingError`.
    """
    spec = predictor.metadata.extra.get("preprocess")
    if not spec:
        return None
    try:
        module = importlib.import_module("crackscan.runtime.preprocess_seg")
    except ImportError:
        module = None
    apply = None
    for name in ("preprocess_image", "apply_preprocess", "apply"):
        apply = getattr(module, name, None) if module is not None else None
        if callable(apply):
            break
    if not callable(apply):
        raise TilingError(
            f"this model asks for image preprocessing {spec!r}, which this crackscan installation "
            "cannot do (crackscan.runtime.preprocess_seg is missing); update crackscan"
        )
    return lambda image: apply(image, spec)


# --------------------------------------------------------------------------- segmentation


def _check_image(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise TilingError(f"expected an H×W×3 uint8 RGB image, got shape {arr.shape} and dtype {arr.dtype}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise TilingError(f"cannot inspect an empty {arr.shape[0]}×{arr.shape[1]} image")
    return arr


def _crack_map(predictor: Predictor, batch: np.ndarray) -> np.ndarray:
    probs = np.asarray(predictor.probability_map(batch), dtype=np.float32)
    if probs.ndim == 4:  # multi-class segmenter: softmax over classes, keep the crack class
        probs = probs[:, int(predictor.metadata.crack_class)]
    return probs


def _tile_probabilities(predictor: Predictor, batch: np.ndarray, tta: bool) -> np.ndarray:
    """Crack probability per pixel of an N×H×W×3 batch; with ``tta`` the mean over flips."""
    if not tta:
        return _crack_map(predictor, batch)
    n = len(batch)
    # One call for the three views keeps ONNX Runtime's batch full.
    views = np.concatenate([batch, batch[:, :, ::-1], batch[:, ::-1, :]])
    probs = _crack_map(predictor, views)
    return (probs[:n] + probs[n : 2 * n, :, ::-1] + probs[2 * n :, ::-1, :]) / np.float32(3.0)


def _batches(items: Sequence[tuple[int, int]], size: int) -> Iterator[Sequence[tuple[int, int]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def predict_tiled(
    predictor: Predictor,
    image_rgb: np.ndarray,
    *,
    tile: int | Sequence[int] = DEFAULT_TILE,
    overlap: float = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tta: bool = False,
    progress: ProgressCallback | None = None,
    preprocess: bool = True,
    coarse_gate: float | None = None,
    screen: TileScreen | None = None,
    stats: dict[str, int] | None = None,
) -> np.ndarray:
    """Crack probability (0–1) of every pixel of an ``H×W×3`` uint8 photo: float32 ``H×W``.

    ``tile``: tile side in px (rounded up to the model's size multiple; a photo side
    shorter than the tile gets a shorter tile, so a 7-px strip is not padded to 512);
    ``overlap``: fraction of the tile shared with its neighbours, in ``[0, 1)``; the
    photo is mirrored outward by ``overlap × tile / 2`` px on every side so its border
    gets context. ``batch_size``: tiles per model call; ``tta``: average each tile over
    horizontal and vertical flips (3× the work). ``progress(done_tiles, total_tiles)`` is
    called after each batch. ``preprocess``: apply the model's ``extra["preprocess"]``.

    ``coarse_gate`` (coarse-to-fine, off by default): first run the model on a copy of
    the photo at half size, then at full resolution only on the tiles where some pixel of
    that coarse map reaches ``coarse_gate``; every other tile keeps the (upsampled)
    coarse probabilities. On photos where cracks cover a small part this skips most
    tiles; a crack the half-size pass misses entirely (probability below the gate
    everywhere in its tile) is missed. Photos of fewer than ``COARSE_MIN_TILES`` tiles
    are not screened.

    ``screen`` (off by default): a function of a tile's part inside the photo
    ``(y0, y1, x0, x1)`` that says whether to run the model on it (e.g.
    :func:`patch_screen` over a crack classifier's patch grid); a tile it rejects adds
    probability 0 with its blend weight, so pixels that only rejected tiles cover are 0.
    ``stats``, when given, receives ``tiles``, ``tiles_run`` and ``coarse_tiles``.

    Memory: the photo, 8 bytes per pixel (two float32 accumulators; the result is one
    of them; 4 more with ``coarse_gate``) and one batch of tiles; nothing proportional to
    the number of tiles.
    """
    image = _check_image(image_rgb)
    th, tw = _pair(tile)
    _check_overlap(overlap)
    if batch_size < 1:
        raise TilingError(f"batch size must be at least 1, got {batch_size}")
    if preprocess and (prep := preprocess_for(predictor)) is not None:
        image = _check_image(prep(image))
    h, w = image.shape[:2]
    multiple = _size_multiple(predictor)
    th, tw = _round_up(th, multiple), _round_up(tw, multiple)
    margin_y, margin_x = int(th * overlap / 2), int(tw * overlap / 2)
    hp, wp = h + 2 * margin_y, w + 2 * margin_x
    th, tw = min(th, _round_up(hp, multiple)), min(tw, _round_up(wp, multiple))
    positions = tile_grid(hp, wp, (th, tw), overlap)
    window = blend_window((th, tw))

    def inside(y0: int, x0: int) -> tuple[int, int, int, int, int, int]:
        # Tile (y0, x0) in padded coordinates covers image rows y0 - margin … ; the part inside the photo.
        iy0, ix0 = y0 - margin_y, x0 - margin_x
        return iy0, ix0, max(0, iy0), min(h, iy0 + th), max(0, ix0), min(w, ix0 + tw)

    prob_sum = np.zeros((h, w), dtype=np.float32)
    weight_sum = np.zeros((h, w), dtype=np.float32)
    run = positions
    coarse_tiles = 0
    if coarse_gate is not None and len(positions) >= COARSE_MIN_TILES:
        if not 0.0 < coarse_gate < 1.0:
            raise TilingError(f"coarse gate must be between 0 and 1 (exclusive), got {coarse_gate}")
        coarse, coarse_tiles = _coarse_map(predictor, image, (th, tw), COARSE_OVERLAP, batch_size, tta)
        run = []
        for y0, x0 in positions:
            iy0, ix0, ya, yb, xa, xb = inside(y0, x0)
            if ya >= yb or xa >= xb:
                continue
            if coarse[ya:yb, xa:xb].max() >= coarse_gate:
                run.append((y0, x0))
            else:  # nothing crack-like at half size: this tile keeps the coarse probabilities
                tile_window = window[ya - iy0 : yb - iy0, xa - ix0 : xb - ix0]
                prob_sum[ya:yb, xa:xb] += coarse[ya:yb, xa:xb] * tile_window
                weight_sum[ya:yb, xa:xb] += tile_window
        del coarse
    if screen is not None:
        kept = []
        for y0, x0 in run:
            _, _, ya, yb, xa, xb = inside(y0, x0)
            if ya < yb and xa < xb and screen(ya, yb, xa, xb):
                kept.append((y0, x0))
            elif ya < yb and xa < xb:  # screened out: crack probability 0 here, with this tile's weight
                iy0, ix0 = y0 - margin_y, x0 - margin_x
                weight_sum[ya:yb, xa:xb] += window[ya - iy0 : yb - iy0, xa - ix0 : xb - ix0]
        run = kept
    if stats is not None:
        stats.update(tiles=len(positions), tiles_run=len(run), coarse_tiles=coarse_tiles)
    done = len(positions) - len(run)
    if progress is not None:
        progress(done, len(positions))
    if run:
        batch = np.empty((min(batch_size, len(run)), th, tw, 3), dtype=np.uint8)
    for group in _batches(run, batch_size):
        for k, (y0, x0) in enumerate(group):
            batch[k] = _cut(image, y0 - margin_y, x0 - margin_x, th, tw)
        probs = _tile_probabilities(predictor, batch[: len(group)], tta)
        for k, (y0, x0) in enumerate(group):
            iy0, ix0, ya, yb, xa, xb = inside(y0, x0)
            if ya >= yb or xa >= xb:
                continue
            tile_window = window[ya - iy0 : yb - iy0, xa - ix0 : xb - ix0]
            prob_sum[ya:yb, xa:xb] += probs[k, ya - iy0 : yb - iy0, xa - ix0 : xb - ix0] * tile_window
            weight_sum[ya:yb, xa:xb] += tile_window
        done += len(group)
        if progress is not None:
            progress(done, len(positions))
    np.divide(prob_sum, weight_sum, out=prob_sum)
    return prob_sum


def _coarse_map(
    predictor: Predictor, image: np.ndarray, tile: tuple[int, int], overlap: float, batch_size: int, tta: bool
) -> tuple[np.ndarray, int]:
    """Crack probabilities from a half-size pass, upsampled back to the photo's size; and its tile count."""
    import cv2

    h, w = image.shape[:2]
    small = cv2.resize(
        image, (max(1, round(w * COARSE_SCALE)), max(1, round(h * COARSE_SCALE))), interpolation=cv2.INTER_AREA
    )
    stats: dict[str, int] = {}
    coarse = predict_tiled(
        predictor, small, tile=tile, overlap=overlap, batch_size=batch_size, tta=tta, preprocess=False, stats=stats
    )
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR), stats["tiles"]


def count_tiles(
    predictor: Predictor, height: int, width: int, *, tile: int = DEFAULT_TILE, overlap: float = DEFAULT_OVERLAP
) -> int:
    """How many tiles :func:`predict_tiled` runs for a ``height×width`` photo (for progress bars)."""
    th, tw = _pair(tile)
    _check_overlap(overlap)
    multiple = _size_multiple(predictor)
    th, tw = _round_up(th, multiple), _round_up(tw, multiple)
    my, mx = int(th * overlap / 2), int(tw * overlap / 2)
    hp, wp = height + 2 * my, width + 2 * mx
    th, tw = min(th, _round_up(hp, multiple)), min(tw, _round_up(wp, multiple))
    return len(tile_grid(hp, wp, (th, tw), overlap))


# --------------------------------------------------------------------------- classification


@dataclass
class PatchGrid:
    """Per-patch crack probabilities of a classifier run over a photo.

    ``probabilities`` is a float32 ``rows×cols`` grid (0–1); ``boxes[i, j]`` the patch
    ``(y0, x0, y1, x1)`` in px (end exclusive) on the photo. Patches are ``patch`` px;
    the last row/column is moved back to end at the border, so it may overlap its
    neighbour; a photo side shorter than ``patch`` gives one patch of that side.
    """

    probabilities: np.ndarray
    boxes: np.ndarray  # rows×cols×4 int64
    patch: int

    @property
    def max_probability(self) -> float:
        return float(self.probabilities.max()) if self.probabilities.size else 0.0

    def above(self, threshold: float) -> list[dict[str, float | int]]:
        """Patches with probability ``>= threshold``, most probable first (JSON-ready)."""
        rows, cols = np.nonzero(self.probabilities >= threshold)
        found = [
            {
                "row": int(r),
                "col": int(c),
                "y0": int(self.boxes[r, c, 0]),
                "x0": int(self.boxes[r, c, 1]),
                "y1": int(self.boxes[r, c, 2]),
                "x1": int(self.boxes[r, c, 3]),
                "probability": round(float(self.probabilities[r, c]), 4),
            }
            for r, c in zip(rows, cols, strict=True)
        ]
        return sorted(found, key=lambda p: -float(p["probability"]))


def patch_screen(grid: PatchGrid, threshold: float) -> TileScreen:
    """A tile screen for :func:`predict_tiled`: run a tile where a classifier saw a crack.

    A tile runs when some patch of ``grid`` that overlaps it has a crack probability of
    at least ``threshold``. Use a low threshold (0.1): the screen only has to keep the
    segmenter away from clearly intact surface, and a patch it rejects wrongly costs a
    missed crack.
    """
    if not 0.0 < threshold < 1.0:
        raise TilingError(f"screen threshold must be between 0 and 1 (exclusive), got {threshold}")
    positive = grid.probabilities >= threshold
    boxes = grid.boxes

    def keep(y0: int, y1: int, x0: int, x1: int) -> bool:
        rows = (boxes[:, 0, 0] < y1) & (boxes[:, 0, 2] > y0)
        cols = (boxes[0, :, 1] < x1) & (boxes[0, :, 3] > x0)
        return bool(positive[np.ix_(rows, cols)].any())

    return keep


def classify_patches(
    predictor: Predictor,
    image_rgb: np.ndarray,
    *,
    patch: int = DEFAULT_PATCH,
    batch_size: int = 32,
    tta: bool = False,
    progress: ProgressCallback | None = None,
) -> PatchGrid:
    """Run a crack classifier over a grid of ``patch``-px patches of an ``H×W×3`` uint8 photo.

    Each patch is resized to the model's ``input_size`` (as the classifier was trained
    on resized 227-px patches); ``tta`` averages over horizontal and vertical flips.
    ``progress(done_patches, total_patches)`` is called after each batch.
    """
    image = _check_image(image_rgb)
    if patch < 1:
        raise TilingError(f"patch size must be at least 1 px, got {patch}")
    if batch_size < 1:
        raise TilingError(f"batch size must be at least 1, got {batch_size}")
    h, w = image.shape[:2]
    ys, xs = _axis_starts(h, patch, 0.0), _axis_starts(w, patch, 0.0)
    size = int(predictor.metadata.input_size)
    boxes = np.array([[(y, x, min(h, y + patch), min(w, x + patch)) for x in xs] for y in ys], dtype=np.int64)
    flat = boxes.reshape(-1, 4)
    probs = np.empty(len(flat), dtype=np.float32)
    if progress is not None:
        progress(0, len(flat))
    for start in range(0, len(flat), batch_size):
        group = flat[start : start + batch_size]
        batch = np.stack([resize_patch(np.ascontiguousarray(image[y0:y1, x0:x1]), size) for y0, x0, y1, x1 in group])
        p = np.asarray(predictor.crack_probability(batch), dtype=np.float32)
        if tta:
            p = p + predictor.crack_probability(np.ascontiguousarray(batch[:, :, ::-1]))
            p = p + predictor.crack_probability(np.ascontiguousarray(batch[:, ::-1, :]))
            p = p / np.float32(3.0)
        probs[start : start + len(group)] = p
        if progress is not None:
            progress(start + len(group), len(flat))
    return PatchGrid(probabilities=probs.reshape(len(ys), len(xs)), boxes=boxes, patch=patch)
