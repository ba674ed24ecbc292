"""Near-duplicate images: re-encoded, resized or re-exposed copies that hashing misses.

Real sets carry them: Özgenel's 6,000 patches hold about 120 pairs that differ by 1-2 grey
levels of JPEG noise (``Positive/14573_1.jpg`` and ``12526_1.jpg``), and a copy in the test
split of an image in the training split inflates every test figure as much as a
byte-for-byte copy does.

The fingerprint is a 40×40 grey thumbnail with its low frequencies removed (minus a
Gaussian blur, sigma 1.5 thumbnail pixels), cut to its inner 32×32 (where the blur never
reached past the edge, so a smooth gradient leaves exactly nothing), centred and scaled
to unit length; the similarity of two images is the dot product of their fingerprints, a
normalised correlation of the texture. Brightness and contrast changes, JPEG re-encoding and
resizing keep it near 1; different photos stay far below. Measured on the shared sets:
linked pairs (copies) score 0.965-1.000; the highest pairs left apart are two shifted,
overlapping crops of one crack in Özgenel (0.895, 0.836), then 0.75 in crackmix and 0.49
in DeepCrack. So the default threshold, 0.9, links copies and leaves crops apart: crops,
rotations and flips of one photo are not what this finds.

Flat images (almost no texture at thumbnail scale: blank, over-exposed) have no stable
fingerprint and are never linked; exact hashing still groups their copies.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def similar_pairs(
    fingerprints: Sequence[np.ndarray | None], threshold: float = DEFAULT_SIMILARITY
) -> list[tuple[int, int, float]]:
    """Index pairs ``(i, j, similarity)`` with ``i < j`` whose fingerprints reach ``threshold``.

    Every pair is compared (a chunked matrix product, so about 1.6 × 10¹² multiply-adds
    for 40,000 images): no hashing shortcut that could miss a copy.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"similarity threshold must be in (0, 1], got {threshold}")
    present = [i for i, f in enumerate(fingerprints) if f is not None]
    if len(present) < 2:
        return []
    matrix = np.stack([fingerprints[i] for i in present])  # type: ignore[misc]
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, len(present), _CHUNK):
        block = matrix[start : start + _CHUNK] @ matrix.T
        rows, cols = np.nonzero(block >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if c > i:
                pairs.append((present[i], present[c], float(block[r, c])))
    return pairs


def link_groups(n: int, pairs: Sequence[tuple[int, int, float]]) -> list[list[int]]:
    """Connected groups (size ≥ 2) of ``n`` items joined by ``pairs``, each sorted, in order of first member."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])
