"""How many annotated crack pixels the classifier gate (``inspect --gate crack-cls``) keeps.

The gate segments only tiles that overlap a 227-px patch the classifier scores at or
above the gate threshold, so a crack pixel is certainly segmented when a patch holding
it passes. For every image of the test parts of DeepCrack, CRACK500 and crackmix (the
crack-seg card's held-out images, surfaces the Özgenel-trained classifier never saw),
this runs the classifier over the image's patch grid — as ``inspect`` does — and
reports, per threshold, the share of annotated crack pixels inside passing patches
(a lower bound of what the gate keeps: tiles are larger than patches), the share of
crack-free images with no passing patch (work saved), and the images that would lose
more than 10 % of their crack pixels.

    .venv/bin/python benchmarks/gate_recall.py --classifier crack-cls --thresholds 0.05,0.1,0.3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from coarse_gate import test_images  # the same held-out images as the canvas benchmark

from crackscan.imageio import read_image, read_mask
from crackscan.runtime.predictor import load_predictor, resolve_model_path
from crackscan.runtime.tiling import classify_patches

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", default="crack-cls")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sets", default="deepcrack,crack500,crackmix")
    parser.add_argument("--thresholds", default="0.05,0.1,0.3")
    args = parser.parse_args()
    classifier = load_predictor(resolve_model_path(args.classifier))
    thresholds = [float(t) for t in args.thresholds.split(",")]
    print(
        "| set | images (crack-free) | threshold | crack pixels in passing patches | crack-free images "
        "with no passing patch | images losing > 10 % |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.sets.split(","):
        pairs = test_images(args.data, name)
        kept = dict.fromkeys(thresholds, 0)
        total = 0
        empty_skipped = dict.fromkeys(thresholds, 0)
        bad = dict.fromkeys(thresholds, 0)
        n_empty = 0
        for image_path, mask_path in pairs:
            image = read_image(image_path)
            truth = read_mask(mask_path).labels > 0
            grid = classify_patches(classifier, image, batch_size=64)
            n = int(truth.sum())
            total += n
            n_empty += n == 0
            for t in thresholds:
                passing = np.zeros(truth.shape, dtype=bool)
                for r, c in zip(*np.nonzero(grid.probabilities >= t), strict=True):
                    y0, x0, y1, x1 = grid.boxes[r, c]
                    passing[y0:y1, x0:x1] = True
                k = int((truth & passing).sum())
                kept[t] += k
                if n == 0 and not passing.any():
                    empty_skipped[t] += 1
                if n > 0 and k < 0.9 * n:
                    bad[t] += 1
        for t in thresholds:
            share = kept[t] / total if total else float("nan")
            skipped = f"{empty_skipped[t]} of {n_empty}" if n_empty else "–"
            print(f"| {name} | {len(pairs)} ({n_empty}) | {t:g} | {share:.4f} | {skipped} | {bad[t]} |")


if __name__ == "__main__":
    main()
