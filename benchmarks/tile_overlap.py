"""What tile size and overlap cost and buy in ``crackscan inspect``: time, pixel accuracy, change.

The same 4032×3024 canvases as ``benchmarks/coarse_gate.py`` (crack-free Özgenel test
patches with cracked test images of ``--crack-set`` pasted in, their masks as truth) are
segmented with each ``TILE/OVERLAP`` setting. Per setting: tiles, seconds per canvas,
pooled pixel F1 / IoU against the truth at the model's threshold, and against the first
setting (the reference): the largest probability difference and how many pixels change
label. Overlap exists so that every pixel is predicted with context; the change against
a generous overlap is what a smaller one gives up.

    .venv/bin/python benchmarks/tile_overlap.py --model crack-seg --canvases 3 \
        --settings 512/0.25,512/0.125,768/0.125,1024/0.0625
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from coarse_gate import DEFAULT_DATA, make_canvas, negative_patches, test_images

from crackscan.imageio import read_mask
from crackscan.metrics.segmentation import PixelCounts
from crackscan.runtime.predictor import load_predictor, resolve_model_path
from crackscan.runtime.tiling import count_tiles, predict_tiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="crack-seg")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--canvases", type=int, default=3)
    parser.add_argument("--cracks", type=int, default=4, help="test images pasted per canvas")
    parser.add_argument("--crack-set", default="deepcrack", choices=["deepcrack", "crack500", "crackmix"])
    parser.add_argument(
        "--settings", default="512/0.25,512/0.125,768/0.125,1024/0.0625", help="TILE/OVERLAP, first = reference"
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    predictor = load_predictor(resolve_model_path(args.model), threads=args.threads)
    threshold = float(predictor.metadata.threshold)
    settings = [(int(t), float(o)) for t, o in (s.split("/") for s in args.settings.split(","))]
    negatives = negative_patches(args.data, "test")
    pairs = [p for p in test_images(args.data, args.crack_set) if (read_mask(p[1]).labels > 0).any()]
    counts = {s: PixelCounts() for s in settings}
    seconds = dict.fromkeys(settings, 0.0)
    max_diff = dict.fromkeys(settings, 0.0)
    changed = dict.fromkeys(settings, 0)
    rng = np.random.default_rng(args.seed)
    total = 0
    for i in range(args.canvases):
        canvas, truth = make_canvas(pairs, negatives, rng, 3024, 4032, args.cracks)
        total += truth.size
        reference = None
        for tile, overlap in settings:
            start = time.perf_counter()
            prob = predict_tiled(predictor, canvas, tile=tile, overlap=overlap, batch_size=args.batch_size)
            seconds[(tile, overlap)] += time.perf_counter() - start
            counts[(tile, overlap)].update(prob >= threshold, truth)
            if reference is None:
                reference = prob
            else:
                max_diff[(tile, overlap)] = max(max_diff[(tile, overlap)], float(np.abs(prob - reference).max()))
                changed[(tile, overlap)] += int(((prob >= threshold) != (reference >= threshold)).sum())
        print(f"canvas {i + 1}/{args.canvases}: {int(truth.sum()):,} crack pixels", flush=True)
    print(
        f"\nmodel {args.model} (threshold {threshold:.2f}), {args.canvases} canvases 4032×3024, "
        f"{args.cracks} {args.crack_set} test images each, batch {args.batch_size}"
    )
    print("| tile / overlap | tiles | s / canvas | F1 | IoU | max abs diff of p vs first | pixels changing label |")
    print("|---|---|---|---|---|---|---|")
    for tile, overlap in settings:
        c, s = counts[(tile, overlap)], (tile, overlap)
        n = count_tiles(predictor, 3024, 4032, tile=tile, overlap=overlap)
        ref = s == settings[0]
        print(
            f"| {tile} / {overlap} ({int(tile * overlap)} px) | {n} | {seconds[s] / args.canvases:.2f} | "
            f"{c.f1:.4f} | {c.iou:.4f} | {'–' if ref else f'{max_diff[s]:.3f}'} | "
            f"{'–' if ref else f'{changed[s]:,} ({changed[s] / total:.1e})'} |"
        )


if __name__ == "__main__":
    main()
