"""The near-duplicate search against exhaustive scoring, on the shared data sets.

For every set: each image's fingerprint (``crackscan.data.similar``), then the pairs at the
threshold found by ``similar_pairs`` (every pair as it is, plus the orientation screen)
against scoring every pair in all eight orientations, and the time of each search.

    .venv/bin/python benchmarks/near_duplicates.py [--data ../shared/data] [--threshold 0.9]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from crackscan.data.check import inspect_image, map_files
from crackscan.data.similar import DEFAULT_SIMILARITY, _orientations, similar_pairs

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETS = ("ozgenel", "deepcrack", "crackmix", "crack500", "car_damage", "car_scratch")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def exhaustive(prints: list[np.ndarray | None], threshold: float) -> tuple[set[tuple[int, int]], float]:
    """Pairs reaching ``threshold`` in their best orientation, scoring all of them (a reference, n² × 8)."""
    present = [i for i, f in enumerate(prints) if f is not None]
    matrix = np.stack([prints[i] for i in present])  # type: ignore[misc]
    best = np.full((len(present), len(present)), -np.inf, np.float32)
    for turned in _orientations(matrix):
        np.maximum(best, matrix @ turned.T, out=best)
    rows, cols = np.nonzero(np.triu(best >= threshold, 1))
    pairs = {(present[a], present[b]) for a, b in zip(rows.tolist(), cols.tolist(), strict=True)}
    off = best[np.triu_indices(len(present), 1)]
    return pairs, float(off[off < threshold].max(initial=-1.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--threshold", type=float, default=DEFAULT_SIMILARITY)
    args = ap.parse_args()
    print("set | images | pairs (as they are) | pairs (any orientation) | exhaustive | missed | extra | "
          "highest left apart | search s (as they are) | search s (any orientation)")  # fmt: skip
    for name in args.sets:
        root = args.data / name
        if not root.is_dir():
            print(f"{name}: missing ({root})")
            continue
        files = sorted(
            p for p in root.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and not any(q.startswith("mask") for q in p.relative_to(root).parts)
        )  # fmt: skip
        prints = [f.fingerprint for f in map_files(inspect_image, files)]
        started = time.perf_counter()
        plain = similar_pairs(prints, args.threshold, orientations=False)
        plain_s = time.perf_counter() - started
        started = time.perf_counter()
        found = {(p.i, p.j) for p in similar_pairs(prints, args.threshold)}
        any_s = time.perf_counter() - started
        reference, apart = exhaustive(prints, args.threshold)
        print(
            f"{name} | {len(files)} | {len(plain)} | {len(found)} | {len(reference)} | {len(reference - found)} | "
            f"{len(found - reference)} | {apart:.3f} | {plain_s:.2f} | {any_s:.2f}"
        )


if __name__ == "__main__":
    main()
