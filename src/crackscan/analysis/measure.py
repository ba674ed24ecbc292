"""Crack measurement from binary masks: instances, centreline length, width profile, severity.

Any mask works — the user's, a model's, another tool's. What is measured, per crack
instance, and how:

* **Instances.** Foreground pixels are grouped into instances by 8-connectivity after
  bridging small gaps: pixels separated by at most ``join_gap_px`` background pixels
  (rounded up to an even number along the axes: the mask is dilated by a disc of radius
  ``ceil(join_gap_px / 2)``) belong to the same crack. The dilation only *groups* the
  original pixels; lengths and widths are measured on the original pixels alone, so a
  bridged gap is not counted as crack length and widths are never inflated. Instances
  with fewer than ``min_area_px`` original pixels are dropped. Holes of at most
  ``HOLE_FILL_PX`` px inside an instance (segmentation noise) are filled: otherwise the
  skeleton loops around them and the distance transform sees them as crack edges.
* **Centreline.** ``skimage.morphology.skeletonize`` on each instance's bounding box
  (never the whole image). The skeleton is turned into a graph (end points, junctions
  and the pixel paths between them; a diagonal link between two pixels that share an
  orthogonal neighbour is dropped so staircases are not taken for junctions).
* **Spur pruning.** A skeleton grows short side branches at blunt ends (towards the
  corners of a flat end) and at width bulges. A terminal branch (junction → end point)
  whose chain length (orthogonal steps 1, diagonal √2) is shorter than the crack's full
  width at its junction, or than ``MIN_SPUR_PX``, is removed; this repeats until no
  spur is left (a few rounds). When every branch at a junction is such a spur (a small
  blob) the longest one is kept.
* **Length.** Every skeleton path is counted once, so a branching crack's length is the
  sum of all its branch lengths. Along a path the length is measured over chords every
  ``CHORD_STEP`` pixels rather than by the plain chain code (1 per orthogonal, √2 per
  diagonal step): the chain code over-counts straight oblique lines by up to 8 % (at
  22.5°) because a digital line zig-zags; chords average the zig-zag out and stay
  within ~1 % on curves with a radius of curvature above ~10 px (paths shorter than one
  chord use the chain code). Each end point is then extended to the mask boundary along
  the local centreline direction: a skeleton stops short of a crack tip by about half
  the local width. The extension is capped at the local full width + 2 px. The result is
  the tip-to-tip length in px, where a pixel counts with its full extent (a horizontal
  bar of ``N`` pixels measures ``N``).
* **Width.** Full width at each skeleton pixel ``= 2 × EDT − WIDTH_OFFSET_PX``, with the
  exact Euclidean distance transform (``cv2.DIST_L2``, ``DIST_MASK_PRECISE``) measured
  from pixel centre to the nearest background pixel centre. The EDT at the centre of a
  band ``w`` pixels across is ``w/2`` to ``(w+1)/2`` depending on parity and orientation;
  the offset, calibrated on straight bands of widths 1–15 at many angles, centres the
  error (it stays within ±0.75 px). Reported: max, mean, 95th percentile (px, and mm
  when a scale is given). Pixels outside the image are not background: a crack running
  off the image keeps its width at the border.
* **Orientation.** Principal axis of the skeleton pixels, in degrees in ``[0, 180)``,
  measured from the image x axis (to the right) towards +y (down the image) — i.e.
  clockwise as seen on screen; 0° is horizontal, 90° vertical.
* **Severity.** By maximum full width, with :class:`SeverityBands` (mm bands need
  ``mm_per_px``; without a scale the severity is ``"unknown"`` unless the bands are in
  px); ``"none"`` when an image has no crack.

This module imports no torch.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from crackscan.analysis.severity import SEVERITY_NONE, SEVERITY_UNKNOWN, SeverityBands
from crackscan.imageio import DEFAULT_MAX_PIXELS, read_mask

DEFAULT_MIN_AREA_PX = 20  # smaller specks are segmentation noise, not cracks
DEFAULT_JOIN_GAP_PX = 3  # gaps a segmenter typically leaves in a thin crack
HOLE_FILL_PX = 10  # holes up to this many px inside a crack are filled before measuring
MIN_SPUR_PX = 3.0  # spurs shorter than this are pruned whatever the width
CHORD_STEP = 5  # skeleton pixels per chord when measuring path length
# Full width = 2 × EDT − offset (px). On straight bands w = 1..15 px at 0–180°, 2 × EDT at
# the widest skeleton pixel over-estimates by 0 (even widths, axis-aligned) to +1.5 px
# (odd widths near 45°); 0.75 px centres that range (error within ±0.75 px) and makes the
# mean error on 200 synthetic cracks ≈ 0 (benchmarks/measure_synth.py).
WIDTH_OFFSET_PX = 0.75
_PRUNE_ROUNDS = 6
_RAY_STEP = 0.25

CSV_COLUMNS = (
    "image",
    "cracks",
    "length_px",
    "max_width_px",
    "mean_width_px",
    "length_mm",
    "max_width_mm",
    "mean_width_mm",
    "severity",
)


class MeasureError(ValueError):
    """Bad arguments for measurement (a scale <= 0, a mask that is not 2-D, an unknown output type)."""


# --------------------------------------------------------------------------- results


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


@dataclass
class CrackMeasurement:
    """One crack instance. Lengths and widths in px (mm fields ``None`` without a scale).

    ``bbox`` is ``(x0, y0, x1, y1)`` in px, ``x1``/``y1`` exclusive; ``orientation_deg``
    in ``[0, 180)`` from the x axis towards +y (clockwise on screen); ``area_px`` counts
    the instance's mask pixels; ``branches`` the skeleton paths after spur pruning (1 for
    an unbranched crack).
    """

    id: int
    length_px: float
    max_width_px: float
    mean_width_px: float
    p95_width_px: float
    orientation_deg: float
    bbox: tuple[int, int, int, int]
    area_px: int
    branches: int = 1
    length_mm: float | None = None
    max_width_mm: float | None = None
    mean_width_mm: float | None = None
    p95_width_mm: float | None = None
    severity: str = SEVERITY_UNKNOWN

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["bbox"] = list(self.bbox)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CrackMeasurement:
        kw = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        kw["bbox"] = tuple(int(v) for v in data["bbox"])
        return cls(**kw)


@dataclass
class ImageMeasurement:
    """All cracks of one mask, with per-image totals.

    ``total_length_px`` sums all crack lengths; ``max_width_px`` is the largest crack
    width; ``mean_width_px`` the length-weighted mean of the cracks' mean widths (0
    without cracks). ``length_mm`` / ``max_width_mm`` / ``mean_width_mm`` are ``None``
    without ``mm_per_px``. ``severity`` is the band of ``max_width`` ("none" without
    cracks, "unknown" without a scale for mm bands). ``height``/``width``: mask size, px.
    """

    image: str
    height: int
    width: int
    cracks: list[CrackMeasurement] = field(default_factory=list)
    total_length_px: float = 0.0
    max_width_px: float = 0.0
    mean_width_px: float = 0.0
    mm_per_px: float | None = None
    length_mm: float | None = None
    max_width_mm: float | None = None
    mean_width_mm: float | None = None
    severity: str = SEVERITY_NONE
    # (ys, xs, full widths) of every centreline pixel, in mask coordinates: kept only when
    # measure_mask(keep_centreline=True), so the width overlay need not skeletonise again.
    centreline: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def n_cracks(self) -> int:
        return len(self.cracks)

    def to_row(self) -> dict[str, Any]:
        """The CSV row: :data:`CSV_COLUMNS` (mm values ``None`` → empty cells)."""
        return {
            "image": self.image,
            "cracks": self.n_cracks,
            "length_px": self.total_length_px,
            "max_width_px": self.max_width_px,
            "mean_width_px": self.mean_width_px,
            "length_mm": self.length_mm,
            "max_width_mm": self.max_width_mm,
            "mean_width_mm": self.mean_width_mm,
            "severity": self.severity,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, per image and per crack (JSON-ready)."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("cracks", "centreline")}
        d["n_cracks"] = self.n_cracks
        d["cracks"] = [c.to_dict() for c in self.cracks]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageMeasurement:
        kw = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k not in ("cracks", "centreline")}
        kw["cracks"] = [CrackMeasurement.from_dict(c) for c in data.get("cracks", [])]
        return cls(**kw)


# --------------------------------------------------------------------------- skeleton graph

# (dy, dx) of the 8 neighbours; diagonals are the ones with both non-zero.
_OFFSETS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)], dtype=np.int64)
_DIAGONAL = np.all(_OFFSETS != 0, axis=1)


def _neighbours(ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``N×8`` neighbour ids (-1: none) of skeleton pixels, without redundant diagonals.

    A diagonal link whose two pixels share an orthogonal skeleton neighbour is dropped:
    the path runs through that neighbour, and keeping the link would make a triangle
    that reads as a junction and counts the corner twice.
    """
    h, w = shape
    ids = np.full((h + 2, w + 2), -1, dtype=np.int64)
    ids[ys + 1, xs + 1] = np.arange(len(ys))
    nb = ids[ys[:, None] + 1 + _OFFSETS[:, 0], xs[:, None] + 1 + _OFFSETS[:, 1]]
    for k in np.flatnonzero(_DIAGONAL):
        dy, dx = _OFFSETS[k]
        shared = (ids[ys + 1 + dy, xs + 1] >= 0) | (ids[ys + 1, xs + 1 + dx] >= 0)
        nb[shared, k] = -1
    return nb


def _trace(nb: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    """Split the skeleton graph into paths between nodes (pixels of degree != 2).

    Returns the paths (pixel ids, both end nodes included; a closed loop without nodes
    starts and ends on the same pixel) and the degree of every pixel.
    """
    deg = (nb >= 0).sum(axis=1)
    nbl = nb.tolist()
    degl = deg.tolist()
    visited = np.zeros(len(deg), dtype=bool)
    paths: list[list[int]] = []

    def walk(start: int, first: int) -> list[int]:
        path, prev, cur = [start], start, first
        while degl[cur] == 2 and not visited[cur]:
            visited[cur] = True
            path.append(cur)
            a, b = (n for n in nbl[cur] if n >= 0)
            prev, cur = cur, (a if a != prev else b)
        path.append(cur)
        return path

    for u in np.flatnonzero(deg != 2).tolist():
        for v in nbl[u]:
            if v < 0:
                continue
            if degl[v] != 2:
                if u < v:  # node-to-node link: once
                    paths.append([u, v])
            elif not visited[v]:
                paths.append(walk(u, v))
    # Closed loops without any node (a ring-shaped crack).
    for s in np.flatnonzero((deg == 2) & ~visited).tolist():
        if not visited[s]:
            visited[s] = True
            first = next(n for n in nbl[s] if n >= 0)
            paths.append(walk(s, first))
    return paths, deg


def _chain_length(pts: np.ndarray) -> float:
    """Chain-code length of an ordered pixel path (orthogonal step 1, diagonal √2), px."""
    if len(pts) < 2:
        return 0.0
    return float(np.hypot(*np.diff(pts, axis=0).T).sum())


def _path_length(pts: np.ndarray) -> float:
    """Length of an ordered pixel path over chords every ``CHORD_STEP`` pixels, px."""
    n = len(pts)
    if n <= CHORD_STEP + 1:
        return _chain_length(pts)
    idx = np.unique(np.concatenate([np.arange(0, n, CHORD_STEP), [n - 1]]))
    return _chain_length(pts[idx])


def _prune(skel: np.ndarray, full_width: np.ndarray) -> np.ndarray:
    """Remove terminal spurs shorter than the local full width (or ``MIN_SPUR_PX``), in place."""
    for _ in range(_PRUNE_ROUNDS):
        ys, xs = np.nonzero(skel)
        if len(ys) < 3:
            break
        pts = np.stack([ys, xs], axis=1)
        paths, deg = _trace(_neighbours(ys, xs, skel.shape))
        by_junction: dict[int, list[tuple[float, list[int]]]] = {}
        for path in paths:
            a, b = path[0], path[-1]
            if deg[a] == 1 and deg[b] >= 3:
                path = path[::-1]
                a, b = b, a
            if deg[a] >= 3 and deg[b] == 1:
                by_junction.setdefault(a, []).append((_chain_length(pts[path]), path))
        removed = False
        for j, spurs in by_junction.items():
            limit = max(float(full_width[ys[j], xs[j]]), MIN_SPUR_PX)
            short = [(length, path) for length, path in spurs if length < limit]
            if not short:
                continue
            if len(short) >= deg[j]:  # nothing but short spurs here: keep the longest
                short.sort(key=lambda item: item[0])
                short = short[:-1]
            for _, path in short:
                rest = np.asarray(path[1:])  # the junction pixel stays
                skel[ys[rest], xs[rest]] = False
                removed = True
        if not removed:
            break
    return skel


def _ray_exit(inside: np.ndarray, y: float, x: float, dy: float, dx: float, max_dist: float) -> float:
    """Distance (px) from ``(y, x)`` along ``(dy, dx)`` until the ray leaves ``inside`` (or the array)."""
    ts = np.arange(_RAY_STEP, max_dist + _RAY_STEP, _RAY_STEP)
    yy = np.floor(y + dy * ts + 0.5).astype(np.int64)
    xx = np.floor(x + dx * ts + 0.5).astype(np.int64)
    h, w = inside.shape
    ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    ok[ok] = inside[yy[ok], xx[ok]]
    out = np.flatnonzero(~ok)
    if not len(out):
        return float(max_dist)
    # The boundary lies between the last sample inside and the first outside.
    return float(ts[out[0]] - _RAY_STEP / 2.0)


def _principal_direction(pts: np.ndarray) -> np.ndarray:
    """Unit vector (dy, dx) of the principal axis of ``N×2`` (y, x) points."""
    if len(pts) < 2:
        return np.array([0.0, 1.0])
    centred = pts - pts.mean(axis=0)
    cov = centred.T @ centred
    vals, vecs = np.linalg.eigh(cov)
    return vecs[:, int(np.argmax(vals))]


@dataclass
class _Centreline:
    """Measured centreline of one instance, in crop coordinates."""

    skeleton: np.ndarray  # bool, crop-sized
    widths: np.ndarray  # full width (px) at each skeleton pixel, order of np.nonzero(skeleton)
    length_px: float
    branches: int
    orientation_deg: float


def _centreline(inst: np.ndarray) -> _Centreline:
    """Skeleton, width profile and length of one instance (bool crop, holes filled)."""
    edt = cv2.distanceTransform(inst.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    full_width = np.where(inst, np.maximum(2.0 * edt - WIDTH_OFFSET_PX, 1.0), 0.0).astype(np.float32)
    # Imported here: scikit-image's morphology package takes ~0.5 s to import, and the
    # CLI imports this module at start-up.
    from skimage.morphology import skeletonize

    skel = skeletonize(inst)
    if not skel.any():  # degenerate blob: keep its most interior pixel
        skel[np.unravel_index(int(np.argmax(edt)), edt.shape)] = True
    skel = _prune(skel, full_width)
    ys, xs = np.nonzero(skel)
    pts = np.stack([ys, xs], axis=1).astype(np.float64)
    paths, deg = _trace(_neighbours(ys, xs, skel.shape))

    length = sum(_path_length(pts[p]) for p in paths)
    # Extend every end point to the mask boundary along the local direction.
    ends: list[tuple[int, np.ndarray]] = []
    for p in paths:
        for path in (p, p[::-1]):
            e = path[-1]
            if deg[e] == 1:
                back = path[-1 - min(len(path) - 1, 6)]
                ends.append((e, pts[e] - pts[back]))
    for e in np.flatnonzero(deg == 0).tolist():  # a lone skeleton pixel: both ways along the blob
        axis = _principal_direction(np.argwhere(inst).astype(np.float64))
        ends += [(e, axis), (e, -axis)]
    for e, d in ends:
        norm = float(np.hypot(*d))
        if norm == 0:
            continue
        y, x = pts[e]
        cap = float(full_width[int(y), int(x)]) + 2.0
        length += _ray_exit(inst, y, x, d[0] / norm, d[1] / norm, cap)

    widths = full_width[ys, xs]
    axis = _principal_direction(pts)
    orientation = math.degrees(math.atan2(axis[0], axis[1])) % 180.0
    branches = max(1, len([p for p in paths if len(p) > 1]))
    return _Centreline(
        skeleton=skel,
        widths=widths,
        length_px=float(length),
        branches=branches,
        orientation_deg=round(orientation, 1) % 180.0,
    )


# --------------------------------------------------------------------------- instances


def _as_foreground(mask: np.ndarray) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise MeasureError(f"a mask must be a 2-D array (H×W), got shape {arr.shape}")
    return arr.astype(bool) if arr.dtype != bool else arr


def _check_scale(mm_per_px: float | None) -> None:
    if mm_per_px is not None and not (math.isfinite(mm_per_px) and mm_per_px > 0):
        raise MeasureError(f"mm per px must be a positive number, got {mm_per_px}")


def _fill_small_holes(inst: np.ndarray) -> np.ndarray:
    """Fill background islands of at most ``HOLE_FILL_PX`` px enclosed by the instance."""
    bg = (~inst).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bg, connectivity=4)
    if n <= 2:
        return inst
    h, w = inst.shape
    x0, y0, bw, bh, area = (stats[:, i] for i in range(5))
    # A hole must not touch the crop border (that background continues outside).
    small = (area <= HOLE_FILL_PX) & (x0 > 0) & (y0 > 0) & (x0 + bw < w) & (y0 + bh < h)
    small[0] = False
    if not small[1:].any():
        return inst
    return inst | small[labels]


def _instances(fg: np.ndarray, min_area_px: int, join_gap_px: int) -> Iterable[tuple[tuple[int, int], np.ndarray, int]]:
    """Yield ``((y0, x0), instance bool crop, area px)`` for every kept instance, raster order."""
    fg8 = fg.view(np.uint8) if fg.dtype == bool else fg.astype(np.uint8)
    grouping = fg8
    if join_gap_px > 0:
        r = math.ceil(join_gap_px / 2)
        grouping = cv2.dilate(fg8, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grouping, connectivity=8, ltype=cv2.CV_32S)
    if n <= 1:
        return
    areas = np.bincount(labels[fg], minlength=n)
    h, w = fg.shape
    for k in range(1, n):
        if areas[k] < max(1, min_area_px):
            continue
        x, y, bw, bh = (int(v) for v in stats[k, :4])
        # One px of margin so the crop has background around the crack (unless at the image edge).
        y0, x0 = max(0, y - 1), max(0, x - 1)
        y1, x1 = min(h, y + bh + 1), min(w, x + bw + 1)
        inst = (labels[y0:y1, x0:x1] == k) & fg[y0:y1, x0:x1]
        yield (y0, x0), inst, int(areas[k])


def _stats(widths: np.ndarray) -> tuple[float, float, float]:
    if not len(widths):
        return 0.0, 0.0, 0.0
    return float(widths.max()), float(widths.mean()), float(np.percentile(widths, 95))


def _severity(width_px: float, mm_per_px: float | None, bands: SeverityBands) -> str:
    if width_px <= 0:
        return SEVERITY_NONE
    if bands.unit == "px":
        return bands.classify(width_px)
    return bands.classify(width_px * mm_per_px if mm_per_px is not None else None)


def _mm(value: float, mm_per_px: float | None) -> float | None:
    return None if mm_per_px is None else _r(value * mm_per_px, 5)


def measure_mask(
    mask: np.ndarray,
    *,
    mm_per_px: float | None = None,
    min_area_px: int = DEFAULT_MIN_AREA_PX,
    join_gap_px: int = DEFAULT_JOIN_GAP_PX,
    bands: SeverityBands | None = None,
    image: str = "",
    keep_centreline: bool = False,
) -> ImageMeasurement:
    """Measure every crack of a mask.

    ``mask``: ``H×W`` array, foreground where non-zero (bool or any numeric type).
    ``mm_per_px``: scale (mm per px, > 0) for the mm fields and mm severity bands;
    ``min_area_px``: instances with fewer mask pixels are dropped; ``join_gap_px``: gaps
    of up to this many background px join pieces into one instance (0: no joining);
    ``bands``: severity bands (default mm bands 0.1 / 0.3 / 1.0); ``image``: a name kept
    in the result; ``keep_centreline``: keep every centreline pixel and its width in
    ``result.centreline`` (for :func:`~crackscan.analysis.report.render_width_overlay`).
    Raises :class:`MeasureError` for a scale <= 0 or a non-2-D mask.
    """
    fg = _as_foreground(mask)
    _check_scale(mm_per_px)
    if min_area_px < 0 or join_gap_px < 0:
        raise MeasureError("min_area_px and join_gap_px must be >= 0")
    bands = bands if bands is not None else SeverityBands()
    cracks: list[CrackMeasurement] = []
    lines: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for (y0, x0), inst, area in _instances(fg, int(min_area_px), int(join_gap_px)):
        inst = _fill_small_holes(inst)
        cl = _centreline(inst)
        if keep_centreline:
            cy, cx = np.nonzero(cl.skeleton)
            lines.append((cy + y0, cx + x0, cl.widths))
        wmax, wmean, wp95 = _stats(cl.widths)
        ys, xs = np.nonzero(inst)
        cracks.append(
            CrackMeasurement(
                id=len(cracks) + 1,
                length_px=_r(cl.length_px),
                max_width_px=_r(wmax),
                mean_width_px=_r(wmean),
                p95_width_px=_r(wp95),
                orientation_deg=cl.orientation_deg,
                bbox=(x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1),
                area_px=area,
                branches=cl.branches,
                length_mm=_mm(cl.length_px, mm_per_px),
                max_width_mm=_mm(wmax, mm_per_px),
                mean_width_mm=_mm(wmean, mm_per_px),
                p95_width_mm=_mm(wp95, mm_per_px),
                severity=_severity(wmax, mm_per_px, bands),
            )
        )
    total = float(sum(c.length_px for c in cracks))
    wmax = max((c.max_width_px for c in cracks), default=0.0)
    wmean = sum(c.mean_width_px * c.length_px for c in cracks) / total if total > 0 else 0.0
    return ImageMeasurement(
        image=image,
        height=int(fg.shape[0]),
        width=int(fg.shape[1]),
        cracks=cracks,
        total_length_px=_r(total),
        max_width_px=_r(wmax),
        mean_width_px=_r(wmean),
        mm_per_px=mm_per_px,
        length_mm=_mm(total, mm_per_px),
        max_width_mm=_mm(wmax, mm_per_px),
        mean_width_mm=_mm(wmean, mm_per_px),
        severity=_severity(wmax, mm_per_px, bands) if cracks else SEVERITY_NONE,
        centreline=_join_lines(lines) if keep_centreline else None,
    )


def _join_lines(
    lines: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not lines:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (
        np.concatenate([ln[0] for ln in lines]),
        np.concatenate([ln[1] for ln in lines]),
        np.concatenate([ln[2] for ln in lines]).astype(np.float32),
    )


def measure_file(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS, **kwargs: Any
) -> ImageMeasurement:
    """Read a mask file with :func:`crackscan.imageio.read_mask` and measure it.

    ``kwargs`` go to :func:`measure_mask`; the result's ``image`` is ``str(path)``.
    Raises :class:`crackscan.imageio.ImageReadError` for unreadable files.
    """
    mask = read_mask(path, max_pixels=max_pixels)
    kwargs.setdefault("image", os.fspath(path))
    return measure_mask(mask.foreground, **kwargs)


def width_map(
    mask: np.ndarray, *, min_area_px: int = 0, join_gap_px: int = DEFAULT_JOIN_GAP_PX
) -> tuple[np.ndarray, np.ndarray]:
    """The pruned centreline and the full crack width along it, for overlays.

    Returns ``(skeleton, width)``: ``skeleton`` an ``H×W`` bool array, ``width`` an
    ``H×W`` float32 array holding the full width in px on skeleton pixels and 0
    elsewhere — the same values :func:`measure_mask` reduces to max/mean/p95.
    """
    fg = _as_foreground(mask)
    skeleton = np.zeros(fg.shape, dtype=bool)
    width = np.zeros(fg.shape, dtype=np.float32)
    for (y0, x0), inst, _ in _instances(fg, int(min_area_px), int(join_gap_px)):
        cl = _centreline(_fill_small_holes(inst))
        ys, xs = np.nonzero(cl.skeleton)
        skeleton[ys + y0, xs + x0] = True
        width[ys + y0, xs + x0] = cl.widths
    return skeleton, width


# --------------------------------------------------------------------------- output


def write_rows_csv(rows: Iterable[dict[str, Any]], columns: Sequence[str], path: str | os.PathLike[str]) -> None:
    """Write ``rows`` under the header ``columns``; ``None`` becomes an empty cell."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def write_csv(measurements: Iterable[ImageMeasurement], path: str | os.PathLike[str]) -> None:
    """One row per image with :data:`CSV_COLUMNS`; mm cells are empty without a scale."""
    write_rows_csv((m.to_row() for m in measurements), CSV_COLUMNS, path)


def measurements_to_json(
    measurements: Sequence[ImageMeasurement],
    *,
    bands: SeverityBands | None = None,
    skipped: Sequence[dict[str, str]] = (),
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document: settings, bands, per-image and per-crack detail, skipped files."""
    return {
        "settings": dict(settings or {}),
        "bands": (bands or SeverityBands()).to_dict(),
        "images": [m.to_dict() for m in measurements],
        "skipped": [dict(s) for s in skipped],
    }


def write_json(
    measurements: Sequence[ImageMeasurement],
    path: str | os.PathLike[str],
    *,
    bands: SeverityBands | None = None,
    skipped: Sequence[dict[str, str]] = (),
    settings: dict[str, Any] | None = None,
) -> None:
    """Write :func:`measurements_to_json` to ``path`` (UTF-8, indented)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = measurements_to_json(measurements, bands=bands, skipped=skipped, settings=settings)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: str | os.PathLike[str]) -> list[ImageMeasurement]:
    """The image measurements of a file written by :func:`write_json`."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return [ImageMeasurement.from_dict(d) for d in doc["images"]]
