"""Near-duplicate images: re-encoded, resized, re-exposed, turned or mirrored copies that hashing misses.

Real sets carry them: Özgenel's 6,000 patches hold about 250 groups of copies under other
numbers, half of them mirrored or upside down (augmented copies; ``Positive/14573_1.jpg``
and ``12526_1.jpg`` differ by 1-2 grey levels of JPEG noise), and a copy in the test split
of an image in the training split inflates every test figure as much as a byte-for-byte
copy does.

The fingerprint is a 40×40 grey thumbnail with its low frequencies removed (minus a
Gaussian blur, sigma 1.5 thumbnail pixels), cut to its inner 32×32 (where the blur never
reached past the edge, so a smooth gradient leaves exactly nothing), centred and scaled
to unit length; the similarity of two images is the dot product of their fingerprints, a
normalised correlation of the texture, taken in the best of the eight ways the second
fingerprint can be turned or mirrored (a square thumbnail turns with its photo).
Brightness and contrast changes, JPEG re-encoding and resizing keep it near 1; different
photos stay far below. Measured on the shared sets: linked pairs (copies) score
0.945-1.000; the highest pairs left apart are two shifted, overlapping crops of one crack
in Özgenel (0.895, 0.836), then 0.83 in crackmix (two crack-free walls), 0.56 in
DeepCrack and 0.40 in car_scratch (benchmarks/near_duplicates.py). So the default
threshold, 0.9, links copies and leaves crops apart: crops of one photo are not what this
finds.

Flat images (almost no texture at thumbnail scale: blank, over-exposed) have no stable
fingerprint and are never linked; exact hashing still groups their copies.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

THUMB_SIDE = 32
FINGERPRINT_DIM = THUMB_SIDE * THUMB_SIDE
DEFAULT_SIMILARITY = 0.9
_BLUR_SIGMA = 1.5
_BLUR_RADIUS = 4  # a 9-tap kernel: ±2.7 sigma
# Below this RMS of the high-passed thumbnail (grey levels), an image counts as flat.
_MIN_TEXTURE = 0.5
# Rows of the similarity matrix computed at once: 512 × 40,000 float32 is 80 MB.
_CHUNK = 512
# The orientation screen: pairs whose orientation-free parts correlate at least this much
# below the threshold are scored in full. Copies score there as they do in full (re-encoded
# ones 0.96-1.0 on the shared sets); unrelated textures spread about ±0.09 around 0.
_SCREEN_MARGIN = 0.3
# An image whose orientation-free part holds less than this share of its texture's energy
# (a texture's is about 1/8) cannot be screened reliably and is scored against every image.
_MIN_SYMMETRIC_SHARE = 0.02


def fingerprint(rgb: np.ndarray) -> np.ndarray | None:
    """The unit-length texture fingerprint of an H×W×3 (or H×W) uint8 image; None when flat."""
    grey = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    side = THUMB_SIDE + 2 * _BLUR_RADIUS
    # Resized in uint8 (4× faster on a 12-MP photo than in float; rounding to whole grey
    # levels is far below the texture a fingerprint compares).
    thumb = cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    k = 2 * _BLUR_RADIUS + 1
    detail = (thumb - cv2.GaussianBlur(thumb, (k, k), _BLUR_SIGMA))[
        _BLUR_RADIUS:-_BLUR_RADIUS, _BLUR_RADIUS:-_BLUR_RADIUS
    ]
    detail = detail - detail.mean()
    norm = float(np.linalg.norm(detail))
    if norm < _MIN_TEXTURE * THUMB_SIDE:  # RMS = norm / side
        return None
    return (detail / norm).ravel().astype(np.float32)


class SimilarPair(NamedTuple):
    """Two images whose fingerprints match: ``j`` is ``i`` turned by ``ORIENTATIONS[orientation]``."""

    i: int
    j: int
    similarity: float
    orientation: int = 0


# The eight ways to lay a photo down again (the dihedral group of the square), in the
# order _orientations builds them: np.rot90 turns counter-clockwise.
ORIENTATIONS = (
    "as is",
    "mirrored",
    "rotated 90°",
    "rotated 90° and mirrored",
    "rotated 180°",
    "rotated 180° and mirrored",
    "rotated 270°",
    "rotated 270° and mirrored",
)


def _orientations(matrix: np.ndarray) -> list[np.ndarray]:
    """The n×1024 fingerprints under each of the eight ORIENTATIONS.

    A thumbnail is square, so turning or mirroring a photo turns or mirrors its thumbnail
    and its fingerprint the same way: no image needs decoding again.
    """
    square = matrix.reshape(-1, THUMB_SIDE, THUMB_SIDE)
    out = []
    for k in range(4):
        turned = np.rot90(square, k, axes=(1, 2))
        out += [turned, turned[:, :, ::-1]]
    return [np.ascontiguousarray(o).reshape(len(matrix), FINGERPRINT_DIM) for o in out]


@functools.cache
def _orbit_projection() -> np.ndarray:
    """1024×136: a fingerprint times this is its mean over the eight orientations, one value per orbit of the grid.

    The mean of a fingerprint over the eight orientations is constant on each orbit of the
    thumbnail grid (the pixels an orientation can move one pixel to) and equals the orbit's
    average there; each orbit's value is weighted by the square root of its size, so dot
    products of the short vectors equal those of the full 1024-pixel means.
    """
    images = np.stack(_orientations(np.arange(FINGERPRINT_DIM).reshape(1, -1))).reshape(8, FINGERPRINT_DIM)
    _, orbit, sizes = np.unique(images.min(axis=0), return_inverse=True, return_counts=True)
    projection = np.zeros((FINGERPRINT_DIM, len(sizes)), np.float32)
    projection[np.arange(FINGERPRINT_DIM), orbit] = 1.0 / np.sqrt(sizes[orbit])
    return projection


def _symmetric_part(matrix: np.ndarray) -> np.ndarray:
    """The orientation-free part of each fingerprint (its mean over the eight orientations), as 136 numbers.

    A turned or mirrored copy has exactly the same mean, so comparing these short vectors
    screens every pair for every orientation at an eighth of the cost of one plain product.
    """
    return matrix @ _orbit_projection()


def similar_pairs(
    fingerprints: Sequence[np.ndarray | None], threshold: float = DEFAULT_SIMILARITY, *, orientations: bool = True
) -> list[SimilarPair]:
    """Pairs ``i < j`` whose fingerprints reach ``threshold`` as they are or (``orientations``) turned or mirrored.

    Every pair is compared as it is (a chunked matrix product, about 1.6 × 10¹² multiply-adds
    for 40,000 images): no hashing shortcut that could miss a plain copy. Turned and mirrored
    copies — augmented sets carry them: about 140 of Özgenel's patches are mirrored or upside down — are
    screened on the fingerprints' orientation-free part (:func:`_symmetric_part`; a copy
    matches there exactly) at a looser threshold and then scored in all eight orientations;
    an image whose texture has almost no orientation-free part is scored in all eight
    against every image.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"similarity threshold must be in (0, 1], got {threshold}")
    present = [i for i, f in enumerate(fingerprints) if f is not None]
    if len(present) < 2:
        return []
    matrix = np.stack([fingerprints[i] for i in present])  # type: ignore[misc]
    found: dict[tuple[int, int], SimilarPair] = {}
    for a, b, score in _pairs_above(matrix, matrix, threshold):
        found[(a, b)] = SimilarPair(present[a], present[b], score, 0)
    if orientations:
        todo = sorted(set(_oriented_candidates(matrix, threshold)) - set(found))
        for start in range(0, len(todo), _CHUNK):
            part = todo[start : start + _CHUNK]
            firsts, seconds = np.array(part).T
            turned = np.stack(_orientations(matrix[firsts]))  # 8 × pairs × 1024
            scores = np.einsum("gkd,kd->gk", turned, matrix[seconds])
            best = scores.argmax(axis=0)
            for k, (a, b) in enumerate(part):
                if scores[best[k], k] >= threshold:
                    found[(a, b)] = SimilarPair(present[a], present[b], float(scores[best[k], k]), int(best[k]))
    return [found[k] for k in sorted(found)]


def _pairs_above(rows: np.ndarray, cols: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """``(r, c, score)`` with ``r < c`` where ``rows @ cols.T`` reaches ``threshold`` (rows and cols: one list)."""
    out: list[tuple[int, int, float]] = []
    for start in range(0, len(rows), _CHUNK):
        block = rows[start : start + _CHUNK] @ cols.T
        for r, c in zip(*np.nonzero(block >= threshold), strict=True):
            i = start + int(r)
            if int(c) > i:
                out.append((i, int(c), float(block[r, c])))
    return out


def _oriented_candidates(matrix: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Pairs ``(a, b)``, ``a < b``, that may match in some orientation: the screen of :func:`similar_pairs`."""
    sym = _symmetric_part(matrix)
    share = np.einsum("nd,nd->n", sym, sym)  # of a unit fingerprint's energy; about 1/8 for a texture
    weak = share < _MIN_SYMMETRIC_SHARE
    unit = sym / np.sqrt(np.maximum(share, 1e-12))[:, None]
    unit[weak] = 0.0
    screen = max(0.0, threshold - _SCREEN_MARGIN)
    candidates = {(a, b) for a, b, _ in _pairs_above(unit, unit, screen)}
    for a in np.flatnonzero(weak).tolist():
        turned = np.stack([o[0] for o in _orientations(matrix[a : a + 1])])
        hits = np.flatnonzero((turned @ matrix.T).max(axis=0) >= threshold).tolist()
        candidates.update((min(a, b), max(a, b)) for b in hits if b != a)
    return candidates


def link_groups(n: int, pairs: Sequence[SimilarPair] | Sequence[tuple[int, int, float]]) -> list[list[int]]:
    """Connected groups (size ≥ 2) of ``n`` items joined by ``pairs``, each sorted, in order of first member."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for pair in pairs:
        a, b = root(pair[0]), root(pair[1])
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])
