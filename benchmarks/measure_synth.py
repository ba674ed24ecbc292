"""Measurement accuracy on synthetic cracks of exactly known geometry.

Draws ``--n`` random cracks (``crackscan.data.synth.random_crack``: widths 2–15 px,
0–3 branches, random curvature and width variation, tapered tips) on ``--size`` px
masks, measures each with :func:`crackscan.analysis.measure.measure_mask` and compares
the total centreline length and the maximum full width with the generator's truth.
Prints a table: mean / max absolute length error (%), mean / max absolute and signed
width error (px), overall and per width range, plus the time per mask. ``--chain-code``
adds the same figures with plain chain-code lengths (1 per orthogonal, √2 per diagonal
step) for comparison.

    .venv/bin/python benchmarks/measure_synth.py --n 200
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from crackscan.analysis import measure
from crackscan.data.synth import random_crack, rasterise_crack


def run(n: int, size: int, seed: int) -> list[dict[str, float]]:
    rows = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        geom = random_crack(rng, size, size)
        mask = rasterise_crack(geom, size, size)
        t0 = time.perf_counter()
        result = measure.measure_mask(mask)
        dt = time.perf_counter() - t0
        rows.append(
            {
                "truth_len": geom.length_px,
                "truth_w": geom.max_width_px,
                "branches": len(geom.polylines) - 1,
                "len": result.total_length_px,
                "w": result.max_width_px,
                "cracks": result.n_cracks,
                "seconds": dt,
            }
        )
    return rows


def summarise(rows: list[dict[str, float]], label: str) -> None:
    def line(name: str, sel: list[dict[str, float]]) -> None:
        if not sel:
            return
        le = np.array([100.0 * (r["len"] - r["truth_len"]) / r["truth_len"] for r in sel])
        we = np.array([r["w"] - r["truth_w"] for r in sel])
        print(
            f"{label:<11} {name:<14} {len(sel):>4}"
            f" {np.abs(le).mean():>8.2f} {np.abs(le).max():>8.2f} {le.mean():>+8.2f}"
            f" {np.abs(we).mean():>8.2f} {np.abs(we).max():>8.2f} {we.mean():>+8.2f}"
            f" {np.mean([abs(le_) <= 3 for le_ in le]) * 100:>6.1f}% {np.mean(np.abs(we) <= 1) * 100:>6.1f}%"
        )

    line("all", rows)
    for lo, hi in ((2, 4), (5, 8), (9, 15)):
        line(f"width {lo}-{hi} px", [r for r in rows if lo <= r["truth_w"] <= hi])
    line("with branches", [r for r in rows if r["branches"] > 0])
    line("no branches", [r for r in rows if r["branches"] == 0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chain-code", action="store_true", help="also show plain chain-code lengths")
    args = parser.parse_args()

    print(f"{args.n} synthetic cracks on {args.size}×{args.size} masks, seed {args.seed}")
    header = (
        f"{'length':<11} {'subset':<14} {'n':>4} {'|len|%':>8} {'max|len|%':>8} {'len%':>8}"
        f" {'|w| px':>8} {'max|w|':>8} {'w px':>8} {'len≤3%':>7} {'w≤1px':>7}"
    )
    print(header)
    print("-" * len(header))
    rows = run(args.n, args.size, args.seed)
    summarise(rows, "chords")
    if args.chain_code:
        step = measure.CHORD_STEP
        measure.CHORD_STEP = 1  # chords of one step = the plain chain code
        try:
            summarise(run(args.n, args.size, args.seed), "chain code")
        finally:
            measure.CHORD_STEP = step
    seconds = np.array([r["seconds"] for r in rows])
    print(
        f"\ntime per {args.size}×{args.size} mask: mean {seconds.mean() * 1e3:.1f} ms, "
        f"max {seconds.max() * 1e3:.1f} ms; multi-instance results: {sum(r['cracks'] != 1 for r in rows)}"
    )


if __name__ == "__main__":
    main()
