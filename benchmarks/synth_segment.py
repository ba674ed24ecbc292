"""Crack IoU of segmenters on synthetic walls: cracks of known geometry on surfaces no model saw.

    .venv/bin/python benchmarks/synth_segment.py --model crack-seg --model crack-seg-unet --walls 20

Each wall is ``crackscan.data.synth.synth_wall(seed, size, size, n_cracks=1)`` for seeds
0…walls−1; the model runs on the whole wall at its stored threshold. Prints, per model, the
mean, median and lowest crack IoU, how many walls scored under 0.5, and each wall's IoU,
so a model that is better on average but fails some cracks outright shows it.
"""

from __future__ import annotations

import argparse

import numpy as np

from crackscan.data.synth import synth_wall
from crackscan.metrics.segmentation import iou
from crackscan.runtime.predictor import load_predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", action="append", required=True, help="model file, bundled name or a+b ensemble (repeatable)"
    )
    parser.add_argument("--walls", type=int, default=20)
    parser.add_argument("--size", type=int, default=512, help="px, a multiple of 32")
    args = parser.parse_args()
    predictors = {name: load_predictor(name) for name in args.model}
    ious: dict[str, list[float]] = {name: [] for name in predictors}
    for seed in range(args.walls):
        image, mask, _ = synth_wall(seed, args.size, args.size, n_cracks=1)
        for name, predictor in predictors.items():
            prob = predictor.probability_map(image[None])[0]
            ious[name].append(iou(prob, mask, predictor.metadata.threshold))
    print(f"{args.walls} synthetic walls of {args.size}×{args.size} px, one crack each, seeds 0–{args.walls - 1}")
    print("| model | mean IoU | median | lowest | walls < 0.5 |")
    print("|---|---|---|---|---|")
    for name, values in ious.items():
        v = np.array(values)
        print(f"| {name} | {v.mean():.3f} | {np.median(v):.3f} | {v.min():.3f} | {(v < 0.5).sum()} |")
    for name, values in ious.items():
        print(f"{name}: " + " ".join(f"{x:.2f}" for x in values))


if __name__ == "__main__":
    main()
