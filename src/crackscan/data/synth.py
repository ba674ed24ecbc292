"""Synthetic crack photos with exactly known geometry.

``crackscan data synth`` writes procedural concrete/asphalt-like surfaces (multi-scale
noise, aggregate speckle, pores, stains, lighting gradients, cast shadows) with cracks
drawn on them. Every crack is *defined* by its geometry, and both the mask and the
truth are derived from that definition, never estimated:

* a crack is a set of polylines (a main centreline plus branches that start on it and
  go outward), each vertex carrying a full width in px;
* the crack region is the set of points within ``width/2`` of the centreline, with the
  width interpolated linearly along each segment (a swept disc). A pixel belongs to the
  mask when its centre lies in that region. Pixel ``(row i, column j)`` has its centre at
  ``(x=j, y=i)``;
* ``length_px`` is the sum of the segment lengths of all polylines (branches start on
  their parent's centreline, so no part is counted twice) and ``max_width_px`` the
  largest vertex width.

Centrelines are smooth (heading driven by a bounded, mean-reverting random process
whose radius of curvature never drops below the crack width + 8 px) so that a skeleton
of the mask follows the centreline and the distance transform at the centreline equals
half the stated width; cracks keep clear of the image border, of each other and of
their own branches, so nothing is clipped or merged. The photo is the surface darkened
along the mask with soft edges, texture and a shadow halo; the mask stays exact.

Output is deterministic: sample ``i`` of seed ``s`` draws from
``numpy.random.default_rng([s, i])`` only, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from crackscan.imageio import write_image, write_mask

MIN_WIDTH_PX = 1.0  # narrower bands are not 8-connected once rasterised
MAX_WIDTH_PX = 15.0
MIN_SIZE_PX = 32
TASKS = ("classify", "segment")
STEP_PX = 1.5  # centreline vertex spacing: far below the curvature scale, so the polyline is smooth
CLEARANCE_PX = 3.0  # minimum free space between separate crack parts (and to the image border)
_MAX_RASTER_SEGMENT_PX = 4.0  # long segments are split so every raster patch stays small
_RASTER_BATCH_ELEMENTS = 2_000_000  # bounds the temporary arrays of the rasteriser (~16 MB each)


class SynthError(ValueError):
    """Bad arguments for the generator (or an output folder it must not touch)."""


@dataclass
class SynthSummary:
    """What :func:`generate_dataset` wrote."""

    n_images: int
    truth_path: Path
    root: Path
    task: str


@dataclass(eq=False)
class CrackGeometry:
    """The exact geometry of one crack system (main crack and its branches).

    ``polylines[k]`` is a ``K×2`` float array of centreline vertices ``(x, y)`` in px;
    ``widths[k]`` the full crack width in px at each vertex (linear in between).
    ``length_px`` is the total centreline length, ``max_width_px`` the largest width.
    """

    polylines: list[np.ndarray]
    widths: list[np.ndarray]
    length_px: float
    max_width_px: float

    @classmethod
    def from_polylines(cls, polylines: list[np.ndarray], widths: list[np.ndarray]) -> CrackGeometry:
        """Build a geometry and compute its length (px) and maximum width (px)."""
        if len(polylines) != len(widths) or not polylines:
            raise SynthError("a crack needs one width array per polyline, and at least one polyline")
        pls: list[np.ndarray] = []
        wds: list[np.ndarray] = []
        for pts, w in zip(polylines, widths, strict=True):
            pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
            w = np.asarray(w, dtype=np.float64).reshape(-1)
            if len(pts) < 2 or len(w) != len(pts):
                raise SynthError("each polyline needs >= 2 vertices and one width per vertex")
            if not np.all(np.isfinite(pts)) or not np.all(np.isfinite(w)) or w.min() <= 0:
                raise SynthError("crack vertices must be finite and widths positive")
            pls.append(pts)
            wds.append(w)
        length = float(sum(_polyline_length(p) for p in pls))
        max_width = float(max(w.max() for w in wds))
        return cls(polylines=pls, widths=wds, length_px=length, max_width_px=max_width)

    @property
    def area_px(self) -> float:
        """∫ width ds over all polylines (px²): the mask area up to end caps and overlaps."""
        total = 0.0
        for pts, w in zip(self.polylines, self.widths, strict=True):
            seg = np.hypot(*np.diff(pts, axis=0).T)
            total += float(np.sum(seg * (w[:-1] + w[1:]) / 2.0))
        return total

    def to_truth(self) -> dict[str, float]:
        """The ``truth.json`` entry: total length and largest full width, in px."""
        return {"length_px": round(self.length_px, 3), "max_width_px": round(self.max_width_px, 3)}


NO_CRACK_TRUTH = {"length_px": 0.0, "max_width_px": 0.0}


def _polyline_length(pts: np.ndarray) -> float:
    return float(np.sum(np.hypot(*np.diff(pts, axis=0).T)))


# --------------------------------------------------------------------------- rasterising


def _split_long_segments(pts: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert collinear vertices (radius interpolated) so no segment exceeds the raster limit.

    The swept region is unchanged: a segment with linearly varying radius is the union of
    its pieces.
    """
    seg = np.hypot(*np.diff(pts, axis=0).T)
    pieces = np.maximum(1, np.ceil(seg / _MAX_RASTER_SEGMENT_PX).astype(np.int64))
    if np.all(pieces == 1):
        return pts, radii
    idx = np.repeat(np.arange(len(seg)), pieces)
    frac = np.concatenate([np.arange(k) / k for k in pieces])
    new_pts = pts[idx] + frac[:, None] * (pts[idx + 1] - pts[idx])
    new_r = radii[idx] + frac * (radii[idx + 1] - radii[idx])
    return np.vstack([new_pts, pts[-1:]]), np.concatenate([new_r, radii[-1:]])


def _rasterise_polyline(mask: np.ndarray, pts: np.ndarray, radii: np.ndarray) -> None:
    """Set every pixel whose centre lies within the swept radius of the polyline (in place).

    For each segment the distance to the segment and the radius at the projected point
    are computed in a small square patch around it; all segments of a batch are handled
    at once with broadcasting, so the cost is one numpy pass per batch, not per segment.
    """
    height, width = mask.shape
    pts, radii = _split_long_segments(pts, radii)
    a, b = pts[:-1], pts[1:]
    ra, rb = radii[:-1], radii[1:]
    seg_len = np.hypot(*(b - a).T)
    half = math.ceil(seg_len.max() / 2.0 + radii.max() + 1.0)
    offsets = np.arange(-half, half + 1)
    patch = len(offsets)
    centre = np.rint((a + b) / 2.0).astype(np.int64)
    batch = max(1, _RASTER_BATCH_ELEMENTS // (patch * patch))
    for start in range(0, len(a), batch):
        sl = slice(start, start + batch)
        cx, cy = centre[sl, 0], centre[sl, 1]
        ax, ay = a[sl, 0][:, None, None], a[sl, 1][:, None, None]
        dx = (b[sl, 0] - a[sl, 0])[:, None, None]
        dy = (b[sl, 1] - a[sl, 1])[:, None, None]
        len2 = dx * dx + dy * dy
        xs = (cx[:, None, None] + offsets[None, None, :]).astype(np.float64)
        ys = (cy[:, None, None] + offsets[None, :, None]).astype(np.float64)
        px, py = xs - ax, ys - ay
        # Zero-length segments (repeated vertices) degenerate to a disc at the vertex.
        t = np.clip((px * dx + py * dy) / np.where(len2 > 0, len2, 1.0), 0.0, 1.0)
        ex, ey = px - t * dx, py - t * dy
        r = ra[sl][:, None, None] + t * (rb[sl] - ra[sl])[:, None, None]
        hit = ex * ex + ey * ey <= r * r
        s_idx, yy, xx = np.nonzero(hit)
        rows = cy[s_idx] + offsets[yy]
        cols = cx[s_idx] + offsets[xx]
        ok = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        mask[rows[ok], cols[ok]] = True


def rasterise_crack(
    geom: CrackGeometry, height: int, width: int, *, inflate_px: float = 0.0, out: np.ndarray | None = None
) -> np.ndarray:
    """Exact boolean ``height×width`` mask of a crack: pixel centres within width/2 of a centreline.

    ``inflate_px`` adds that many px to every radius (used to keep other cracks clear);
    ``out`` draws into an existing boolean mask instead of a new one.
    """
    mask = np.zeros((height, width), dtype=bool) if out is None else out
    for pts, w in zip(geom.polylines, geom.widths, strict=True):
        _rasterise_polyline(mask, pts, w / 2.0 + inflate_px)
    return mask


# --------------------------------------------------------------------------- geometry


def _local_heading(pts: np.ndarray, i: int) -> float:
    j0, j1 = max(0, i - 2), min(len(pts) - 1, i + 2)
    d = pts[j1] - pts[j0]
    return math.atan2(d[1], d[0])


def _walk(
    rng: np.random.Generator,
    start: np.ndarray,
    heading: float,
    target_len: float,
    *,
    curvature: float,
    max_curvature: float,
    max_deviation: float,
    box: tuple[float, float, float, float],
    blocked: np.ndarray | None = None,
    free_len: float = 0.0,
) -> np.ndarray:
    """A smooth tortuous path from ``start`` (K×2, px), at most ``target_len`` px long.

    The heading deviates from ``heading`` by a bounded, mean-reverting amount driven by a
    correlated curvature process: the path never turns back on itself (its projection on
    the base direction always grows) and its radius of curvature stays >= 1/max_curvature,
    which keeps the swept band free of folds. It stops at the box edge or, after
    ``free_len`` px, on a pixel set in ``blocked``.
    """
    x0, y0, x1, y1 = box
    # Two bending processes: a slow one (the crack's meander, tens of px) and a fast,
    # weaker one (its jaggedness, a few px); real cracks show both scales.
    rho_slow = math.exp(-STEP_PX / rng.uniform(20.0, 60.0))
    rho_fast = math.exp(-STEP_PX / rng.uniform(3.0, 8.0))
    sigma_slow = curvature * 0.5 * max_curvature
    sigma_fast = curvature * rng.uniform(0.3, 0.9) * max_curvature
    slow = fast = 0.0  # curvature components, rad/px
    dev = 0.0  # current deviation from the base heading, rad
    x, y = float(start[0]), float(start[1])
    pts = [(x, y)]
    travelled = 0.0
    while travelled + STEP_PX <= target_len:
        slow = rho_slow * slow + math.sqrt(1.0 - rho_slow**2) * sigma_slow * rng.standard_normal()
        fast = rho_fast * fast + math.sqrt(1.0 - rho_fast**2) * sigma_fast * rng.standard_normal()
        # Pull the heading back towards the base direction when it strays far.
        omega = slow + fast - 0.5 * (dev / max_deviation) ** 3 * max_curvature
        omega = min(max(omega, -max_curvature), max_curvature)
        dev = min(max(dev + omega * STEP_PX, -max_deviation), max_deviation)
        nx = x + STEP_PX * math.cos(heading + dev)
        ny = y + STEP_PX * math.sin(heading + dev)
        if not (x0 <= nx <= x1 and y0 <= ny <= y1):
            break
        if blocked is not None and travelled + STEP_PX > free_len and blocked[round(ny), round(nx)]:
            break
        x, y = nx, ny
        pts.append((x, y))
        travelled += STEP_PX
    return np.asarray(pts, dtype=np.float64)


def _smooth_noise_1d(rng: np.random.Generator, s: np.ndarray, scale: float) -> np.ndarray:
    """Smooth noise in [0, 1] along arclength ``s`` (px), features about ``scale`` px long."""
    n_knots = max(2, math.ceil(s[-1] / scale) + 2)
    knots = rng.random(n_knots)
    x = s / scale
    i = np.clip(np.floor(x).astype(np.int64), 0, n_knots - 2)
    f = x - i
    f = f * f * (3 - 2 * f)  # smoothstep: no kinks in the width profile
    return knots[i] * (1 - f) + knots[i + 1] * f


def _width_profile(
    rng: np.random.Generator,
    pts: np.ndarray,
    max_width: float,
    *,
    variation: float,
    taper_start: bool,
    taper_end: bool,
) -> np.ndarray:
    """Per-vertex full widths (px): smooth variation, tips tapering to 1 px, max exactly ``max_width``."""
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    length = s[-1]
    q = 1.0 - variation * _smooth_noise_1d(rng, s, rng.uniform(25.0, 80.0))
    taper_len = max(min(0.3 * length, 6.0 * max_width + 10.0), 1e-6)
    if taper_start:
        q = q * np.clip(s / taper_len, 0.0, 1.0) ** 0.6
    if taper_end:
        q = q * np.clip((length - s) / taper_len, 0.0, 1.0) ** 0.6
    if q.max() <= 0:
        return np.full(len(s), max_width)
    widths = MIN_WIDTH_PX + (max_width - MIN_WIDTH_PX) * q / q.max()
    widths[int(np.argmax(q))] = max_width  # exact, not off by a rounding ulp
    return np.maximum(widths, MIN_WIDTH_PX)


def default_max_width(height: int, width: int) -> float:
    """Largest crack width (px) the generator draws for an image of this size."""
    return float(min(MAX_WIDTH_PX, max(2.0, min(height, width) / 8.0)))


def _margin(max_width: float) -> float:
    return max_width / 2.0 + CLEARANCE_PX


def random_crack(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    max_width: float | None = None,
    branches: int | None = None,
    curvature: float | None = None,
    width_variation: float | None = None,
    taper: bool = True,
    length: float | None = None,
    occupied: np.ndarray | None = None,
) -> CrackGeometry:
    """A random branching, tortuous crack that fits inside a ``height×width`` image.

    ``max_width``: largest full width in px (1–15; default log-uniform in 2..15, capped for
    small images); ``branches``: number of side branches (default 0–3); ``curvature``:
    tortuosity in [0, 1] (0 = straight); ``width_variation``: relative width modulation in
    [0, 1) along the crack (0 with ``taper=False`` gives a constant width);
    ``length``: target main-centreline length in px (default 0.6–1.5 × image side; the
    crack stops earlier at the border margin). ``occupied``: boolean mask of pixels the
    crack must keep out of (other cracks). Everything stays ``max_width/2 + 3`` px inside
    the border, so nothing is clipped.
    """
    if height < 8 or width < 8:
        raise SynthError(f"image too small for a crack: {width}×{height} px")
    if max_width is None:
        # Log-uniform (thin cracks are common), rounded to whole px: a band of integer
        # width covers exactly that many pixel rows, so raster measurements of the
        # maximum width scatter least around the truth.
        cap = default_max_width(height, width)
        drawn = math.exp(rng.uniform(math.log(1.5), math.log(MAX_WIDTH_PX + 0.5)))
        max_width = float(min(math.floor(cap), max(2, round(drawn))))
    if not (MIN_WIDTH_PX <= max_width <= MAX_WIDTH_PX):
        raise SynthError(f"max_width must be within {MIN_WIDTH_PX:g}..{MAX_WIDTH_PX:g} px, got {max_width}")
    margin = _margin(max_width)
    if min(height, width) < 2 * margin + 8:
        raise SynthError(f"a crack {max_width:g} px wide does not fit in a {width}×{height} px image")
    if curvature is None:
        curvature = float(rng.uniform(0.1, 1.0))
    if not 0.0 <= curvature <= 1.0:
        raise SynthError(f"curvature must be within 0..1, got {curvature}")
    if width_variation is None:
        width_variation = float(rng.uniform(0.15, 0.6))
    if not 0.0 <= width_variation < 1.0:
        raise SynthError(f"width_variation must be within [0, 1), got {width_variation}")
    if branches is None:
        branches = int(rng.choice(4, p=[0.35, 0.35, 0.2, 0.1])) if min(height, width) >= 96 else 0
    if branches < 0:
        raise SynthError(f"branches must be >= 0, got {branches}")
    side = min(height, width)
    if length is None:
        length = float(rng.uniform(0.6, 1.5) * side)

    box = (margin, margin, width - 1 - margin, height - 1 - margin)
    # Tighter bends than the crack width would fold the swept band onto itself.
    max_curv = 1.0 / (max_width + 8.0)
    max_dev = math.radians(20.0 + 50.0 * curvature)

    main = None
    for _ in range(30):
        cx = rng.uniform(box[0] + 0.2 * (box[2] - box[0]), box[2] - 0.2 * (box[2] - box[0]))
        cy = rng.uniform(box[1] + 0.2 * (box[3] - box[1]), box[3] - 0.2 * (box[3] - box[1]))
        if occupied is not None and occupied[round(cy), round(cx)]:
            continue
        theta = rng.uniform(0.0, math.pi)
        split = rng.uniform(0.3, 0.7)
        kw = {"curvature": curvature, "max_curvature": max_curv, "max_deviation": max_dev, "box": box}
        fwd = _walk(rng, np.array([cx, cy]), theta, length * split, blocked=occupied, **kw)
        bwd = _walk(rng, np.array([cx, cy]), theta + math.pi, length * (1 - split), blocked=occupied, **kw)
        candidate = np.vstack([bwd[::-1], fwd[1:]])
        if len(candidate) >= 2 and _polyline_length(candidate) >= min(0.25 * side, 0.5 * length):
            main = candidate
            break
        if main is None or len(candidate) > len(main):
            main = candidate  # keep the longest try in case none reaches the target
    assert main is not None
    if len(main) < 2:
        raise SynthError(f"no room for a crack in a {width}×{height} px image")
    main_w = _width_profile(rng, main, max_width, variation=width_variation, taper_start=taper, taper_end=taper)
    polylines, widths = [main], [main_w]

    if branches:
        # Pixels a branch must not enter once it has left its junction: the main crack
        # (and accepted branches) widened by the clearance and the widest possible branch.
        branch_cap = max(MIN_WIDTH_PX, 0.6 * max_width)
        inflate = CLEARANCE_PX + branch_cap / 2.0
        blocked = rasterise_crack(CrackGeometry.from_polylines([main], [main_w]), height, width, inflate_px=inflate)
        if occupied is not None:
            blocked |= occupied
        s_main = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(main, axis=0).T))])
        main_len = s_main[-1]
        # Branch only where the main crack is at most 70 % of its widest: where a branch
        # leaves a crack, the union of the two bands holds a larger inscribed disc than
        # either, and that bulge must stay below the stated maximum width.
        sites = np.flatnonzero((s_main >= 0.1 * main_len) & (s_main <= 0.9 * main_len) & (main_w <= 0.7 * max_width))
        sites = sites[(sites >= 1) & (sites <= len(main) - 2)]
        for _ in range(branches if len(sites) else 0):
            for _attempt in range(6):
                j = int(sites[rng.integers(len(sites))])
                wp = float(main_w[j])
                wb = max(MIN_WIDTH_PX, min(branch_cap, wp * rng.uniform(0.3, 0.6)))
                alpha = math.radians(rng.uniform(35.0, 75.0)) * (1 if rng.random() < 0.5 else -1)
                heading = _local_heading(main, j) + alpha
                # Distance along the branch before it has left the parent's keep-out zone.
                free = (wp / 2.0 + inflate + 2.0) / math.sin(abs(alpha)) * 1.5 + 2.0
                b_len = rng.uniform(0.15, 0.45) * main_len
                path = _walk(
                    rng,
                    main[j],
                    heading,
                    b_len,
                    curvature=curvature,
                    max_curvature=1.0 / (wb + 8.0),
                    max_deviation=math.radians(35.0),
                    box=box,
                    blocked=blocked,
                    free_len=free,
                )
                if _polyline_length(path) < max(2.0 * free, 12.0):
                    continue  # too short to read as a branch: try another spot
                bw = _width_profile(rng, path, wb, variation=0.5 * width_variation, taper_start=False, taper_end=True)
                polylines.append(path)
                widths.append(bw)
                branch_geom = CrackGeometry.from_polylines([path], [bw])
                rasterise_crack(branch_geom, height, width, inflate_px=inflate, out=blocked)
                break
    return CrackGeometry.from_polylines(polylines, widths)


def straight_crack(
    height: int,
    width: int,
    *,
    width_px: float,
    angle_deg: float = 0.0,
    length_px: float | None = None,
    centre: tuple[float, float] | None = None,
) -> CrackGeometry:
    """A straight crack of constant full width ``width_px`` (px), for exactness tests.

    ``angle_deg`` is measured from the x axis (towards +y, i.e. down the image);
    ``length_px`` defaults to half the image side; ``centre`` (x, y) to the image centre.
    """
    if length_px is None:
        length_px = 0.5 * min(height, width)
    cx, cy = centre if centre is not None else ((width - 1) / 2.0, (height - 1) / 2.0)
    a = math.radians(angle_deg)
    d = np.array([math.cos(a), math.sin(a)]) * length_px / 2.0
    mid = np.array([cx, cy], dtype=np.float64)
    pts = np.array([mid - d, mid + d])
    return CrackGeometry.from_polylines([pts], [np.full(2, float(width_px))])


# --------------------------------------------------------------------------- surfaces


def _noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth value noise, features about ``cell`` px across, zero mean and unit std (float32)."""
    gh = max(2, math.ceil(height / cell) + 1)
    gw = max(2, math.ceil(width / cell) + 1)
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    out = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return _standardise(out)


def _standardise(arr: np.ndarray) -> np.ndarray:
    """Zero mean, unit std in place; statistics from a strided subsample (16× cheaper, same look)."""
    sample = arr[::4, ::4]
    arr -= sample.mean()
    arr /= sample.std() + 1e-6
    return arr


def _fbm(rng: np.random.Generator, height: int, width: int, cell: float, octaves: int) -> np.ndarray:
    """Fractal noise: octaves of value noise, each half the size and amplitude (unit std)."""
    total = np.zeros((height, width), np.float32)
    amp = 1.0
    for _ in range(octaves):
        if cell < 1.5:
            break
        total += amp * _noise(rng, height, width, cell)
        cell /= 2.0
        amp *= 0.55
    return _standardise(total)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi``, smooth in between (in-place steps: full-size arrays are large)."""
    t = x - np.float32(lo)
    t *= np.float32(1.0 / (hi - lo))
    np.clip(t, 0.0, 1.0, out=t)
    t2 = t * t
    t *= -2.0
    t += 3.0
    t *= t2
    return t


def _low_res_shading(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Slowly varying multiplicative shading (stains, lighting, cast shadow), float32 H×W.

    All of it is smooth, so it is drawn at 1/4 resolution and upsampled once: this keeps
    a 4000×3000 wall cheap.
    """
    sh, sw = max(8, height // 4), max(8, width // 4)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    xx /= sw
    yy /= sh
    shade = np.ones((sh, sw), np.float32)

    # Stains: soft blobs broken up by noise, darker (damp, dirt) or lighter (efflorescence).
    stains = np.zeros((sh, sw), np.float32)
    for _ in range(int(rng.poisson(1.5))):
        centre = (int(rng.uniform(0, sw)), int(rng.uniform(0, sh)))
        axes = (max(1, int(rng.uniform(0.05, 0.35) * sw)), max(1, int(rng.uniform(0.05, 0.35) * sh)))
        value = rng.uniform(0.05, 0.22) * (-1 if rng.random() < 0.75 else 1)
        blob = np.zeros((sh, sw), np.float32)
        cv2.ellipse(blob, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
        sigma = max(1.0, 0.3 * min(axes))
        blob = cv2.GaussianBlur(blob, (0, 0), sigma)
        # Noise coarser than the blob's blur, or its cubic bumps show as a regular grid.
        breakup = _noise(rng, sh, sw, max(4.0, 0.8 * min(axes)))
        stains += value * blob * np.clip(1.0 + 0.5 * breakup, 0.2, 1.8)
    shade *= 1.0 + stains

    # Lighting: a linear gradient in a random direction and a vignette.
    phi = rng.uniform(0, 2 * math.pi)
    grad = (xx - 0.5) * math.cos(phi) + (yy - 0.5) * math.sin(phi)
    shade *= 1.0 + rng.uniform(0.0, 0.4) * grad
    shade *= 1.0 - rng.uniform(0.0, 0.3) * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)

    # Cast shadow with a wavy, soft edge (a pole, a railing, the photographer).
    if rng.random() < 0.35:
        psi = rng.uniform(0, 2 * math.pi)
        edge = (xx - 0.5) * math.cos(psi) + (yy - 0.5) * math.sin(psi) - rng.uniform(-0.3, 0.3)
        edge += 0.05 * _noise(rng, sh, sw, max(2.0, 0.3 * min(sh, sw)))
        softness = rng.uniform(0.005, 0.05)
        shade *= 1.0 - rng.uniform(0.2, 0.45) * _smoothstep(edge, -softness, softness)
    return cv2.resize(shade, (width, height), interpolation=cv2.INTER_LINEAR)


def synth_surface(rng: np.random.Generator, height: int, width: int, *, kind: str | None = None) -> np.ndarray:
    """A concrete- or asphalt-like surface photo without cracks, ``H×W×3`` RGB uint8.

    ``kind`` is ``"concrete"``, ``"asphalt"`` or None (random). Texture sizes grow
    slowly with the image so a large wall photo still looks like a photo of a wall.
    """
    if kind is None:
        kind = "concrete" if rng.random() < 0.6 else "asphalt"
    if kind not in ("concrete", "asphalt"):
        raise SynthError(f"unknown surface kind {kind!r} (concrete | asphalt)")
    grain = rng.uniform(0.8, 1.6) * max(0.5, math.sqrt(min(height, width) / 512.0))  # px

    lum = 1.0 + rng.uniform(0.04, 0.1) * _fbm(rng, height, width, min(height, width) / 3.0, 3)
    lum += rng.uniform(0.02, 0.05) * _noise(rng, height, width, 10.0 * grain)
    fine = rng.standard_normal((height, width), dtype=np.float32)
    fine = _standardise(cv2.GaussianBlur(fine, (0, 0), 0.6 * grain))
    agg_light = _noise(rng, height, width, 2.5 * grain)
    agg_dark = _noise(rng, height, width, 2.0 * grain)
    if kind == "concrete":
        base = rng.uniform(130.0, 200.0)
        tint = np.array([1.0 + rng.uniform(-0.03, 0.06), 1.0, 1.0 - rng.uniform(-0.03, 0.08)])
        lum += rng.uniform(0.03, 0.07) * fine
        lum += rng.uniform(0.05, 0.15) * _smoothstep(agg_light, 1.2, 1.8)  # sand grains
        lum -= rng.uniform(0.05, 0.15) * _smoothstep(agg_dark, 1.3, 1.9)  # darker aggregate
    else:
        base = rng.uniform(65.0, 115.0)
        tint = np.array([1.0, 1.0, 1.0 + rng.uniform(0.0, 0.05)])
        lum += rng.uniform(0.08, 0.14) * fine
        lum += rng.uniform(0.3, 0.6) * _smoothstep(agg_light, 0.6, 1.3)  # exposed stones
        lum -= rng.uniform(0.2, 0.35) * _smoothstep(agg_dark, 1.0, 1.6)  # binder voids
    del fine, agg_light, agg_dark

    # Pores / bug holes: small dark dots, a classic non-crack distractor.
    n_pores = int(rng.poisson(height * width * rng.uniform(0.0, 1.0 / 3000.0)))
    if n_pores:
        pores = np.zeros((height, width), np.float32)
        xs = rng.uniform(0, width, n_pores)
        ys = rng.uniform(0, height, n_pores)
        radii = rng.uniform(0.8, 2.5, n_pores) * grain
        depth = rng.uniform(0.2, 0.5, n_pores)
        for x, y, r, d in zip(xs, ys, radii, depth, strict=True):
            cv2.circle(pores, (int(x), int(y)), max(1, round(float(r))), float(d), -1, cv2.LINE_AA)
        pores = cv2.GaussianBlur(pores, (0, 0), 0.7)
        lum *= 1.0 - pores
        del pores

    lum *= _low_res_shading(rng, height, width)
    lum *= base
    # Sensor noise: full-resolution luminance noise plus weaker, coarser colour noise
    # (demosaicing correlates chroma noise over ~2 px; drawing it at half size is cheaper).
    noise_sigma = rng.uniform(1.0, 3.5)  # grey levels
    lum += noise_sigma * rng.standard_normal((height, width), dtype=np.float32)
    half = (max(1, width // 2), max(1, height // 2))
    out = np.empty((height, width, 3), np.uint8)
    for c in range(3):
        chroma = rng.standard_normal((half[1], half[0]), dtype=np.float32)
        chan = lum * tint[c]
        chan += 0.6 * noise_sigma * cv2.resize(chroma, (width, height), interpolation=cv2.INTER_LINEAR)
        np.clip(chan, 0.0, 255.0, out=chan)
        out[:, :, c] = (chan + 0.5).astype(np.uint8)
    return out


def _render_crack(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> None:
    """Darken ``image`` (in place) along ``mask``: soft edges, textured depth, shadow halo.

    Only the bounding box of the crack (plus the blur reach) is touched.
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return
    height, width = mask.shape
    sigma_edge = rng.uniform(0.4, 0.9)
    sigma_halo = rng.uniform(1.5, 4.0)
    shift = rng.integers(-2, 3, size=2)  # light from one side: the shadow falls off-centre
    pad = math.ceil(4 * sigma_halo) + 4
    y0, y1 = max(0, int(ys.min()) - pad), min(height, int(ys.max()) + pad + 1)
    x0, x1 = max(0, int(xs.min()) - pad), min(width, int(xs.max()) + pad + 1)
    m = mask[y0:y1, x0:x1].astype(np.float32)
    core = cv2.GaussianBlur(m, (0, 0), sigma_edge)
    moved = np.roll(m, (int(shift[0]), int(shift[1])), axis=(0, 1))
    halo = cv2.GaussianBlur(moved, (0, 0), sigma_halo)
    texture = np.clip(0.8 + 0.2 * _noise(rng, y1 - y0, x1 - x0, rng.uniform(3.0, 10.0)), 0.4, 1.2)
    dark = rng.uniform(0.45, 0.8) * core * texture + rng.uniform(0.08, 0.25) * halo
    factor = 1.0 - np.clip(dark, 0.0, 0.92)
    region = image[y0:y1, x0:x1]
    for c in range(3):
        region[:, :, c] = (region[:, :, c] * factor + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- samples


def synth_sample(
    rng: np.random.Generator, height: int, width: int, *, crack: bool = True, **kw: object
) -> tuple[np.ndarray, np.ndarray, CrackGeometry | None]:
    """One synthetic photo: ``(image H×W×3 uint8, mask H×W bool, geometry or None)``.

    ``kw`` goes to :func:`random_crack` (``max_width``, ``branches``, ``curvature`` …).
    Without a crack the mask is all False and the geometry None.
    """
    image = synth_surface(rng, height, width)
    if not crack:
        return image, np.zeros((height, width), dtype=bool), None
    geom = random_crack(rng, height, width, **kw)  # type: ignore[arg-type]
    mask = rasterise_crack(geom, height, width)
    _render_crack(rng, image, mask)
    return image, mask, geom


def synth_wall(
    seed: int, height: int = 3000, width: int = 4000, n_cracks: int = 3
) -> tuple[np.ndarray, np.ndarray, list[CrackGeometry]]:
    """A large synthetic concrete-wall photo with ``n_cracks`` separate cracks (for the demo).

    Returns ``(image H×W×3 uint8, mask H×W bool, geometries)``; cracks never touch each
    other, so each is one connected component of the mask. Float work is single-channel
    float32, so 4000×3000 peaks at a few hundred MB and takes a few seconds.
    """
    if n_cracks < 0:
        raise SynthError(f"n_cracks must be >= 0, got {n_cracks}")
    rng = np.random.default_rng(seed)
    image = synth_surface(rng, height, width, kind="concrete")
    mask = np.zeros((height, width), dtype=bool)
    occupied = np.zeros((height, width), dtype=bool)
    geoms: list[CrackGeometry] = []
    side = min(height, width)
    for _ in range(n_cracks):
        geom = random_crack(
            rng,
            height,
            width,
            max_width=float(rng.uniform(3.0, MAX_WIDTH_PX)),
            length=float(rng.uniform(0.4, 0.9) * side),
            occupied=occupied,
        )
        crack_mask = rasterise_crack(geom, height, width)
        _render_crack(rng, image, crack_mask)
        mask |= crack_mask
        rasterise_crack(geom, height, width, inflate_px=CLEARANCE_PX + MAX_WIDTH_PX / 2.0, out=occupied)
        geoms.append(geom)
    return image, mask, geoms


# --------------------------------------------------------------------------- data sets


def _check_destination(dst: Path) -> None:
    if dst.exists():
        if not dst.is_dir():
            raise SynthError(f"{dst}: exists and is a file; give a new folder")
        if any(dst.iterdir()):
            raise SynthError(
                f"{dst}: folder exists and is not empty; give a new or empty folder (nothing is overwritten)"
            )


def generate_dataset(
    dst: str | Path,
    *,
    task: str = "segment",
    n: int = 20,
    size: int = 512,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> SynthSummary:
    """Write ``n`` synthetic ``size×size`` photos to ``dst`` with exact truth.

    ``segment``: ``images/*.jpg`` + ``masks/*.png`` (0/255), every image has a crack.
    ``classify``: ``crack/*.jpg`` and ``no_crack/*.jpg``, alternating (half each).
    Both write ``truth.json``: ``{stem: {"length_px", "max_width_px"}}`` (0 without a
    crack). ``progress(done, total)`` is called after each image. Refuses (SynthError)
    bad arguments and an existing non-empty ``dst``.
    """
    dst = Path(dst)
    if task not in TASKS:
        raise SynthError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if int(n) != n or n < 1:
        raise SynthError(f"n must be a whole number >= 1, got {n}")
    if int(size) != size or size < MIN_SIZE_PX:
        raise SynthError(f"size must be a whole number >= {MIN_SIZE_PX} px, got {size}")
    if int(seed) != seed or seed < 0:
        raise SynthError(f"seed must be a whole number >= 0, got {seed}")
    n, size, seed = int(n), int(size), int(seed)
    _check_destination(dst)
    dst.mkdir(parents=True, exist_ok=True)

    truth: dict[str, dict[str, float]] = {}
    for i in range(n):
        # One generator per sample: sample i is the same whatever n is.
        rng = np.random.default_rng([seed, i])
        stem = f"synth_{i:05d}"
        has_crack = task == "segment" or i % 2 == 0
        image, mask, geom = synth_sample(rng, size, size, crack=has_crack)
        if task == "segment":
            write_image(dst / "images" / f"{stem}.jpg", image, quality=95)
            write_mask(dst / "masks" / f"{stem}.png", mask)
        else:
            write_image(dst / ("crack" if has_crack else "no_crack") / f"{stem}.jpg", image, quality=95)
        truth[stem] = geom.to_truth() if geom is not None else dict(NO_CRACK_TRUTH)
        if progress is not None:
            progress(i + 1, n)
    truth_path = dst / "truth.json"
    truth_path.write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return SynthSummary(n_images=n, truth_path=truth_path, root=dst, task=task)
