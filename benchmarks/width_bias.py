"""How far a segmenter's crack widths are from the annotated ones, by crack width.

``crackscan inspect`` reports widths measured on the model's mask, so a model that draws
thin cracks too wide (or wide ones too narrow) biases every width in the report. For each
held-out test image of a set, this measures the annotated mask and the predicted mask (at
the model's threshold) with ``crackscan.analysis.measure_mask`` and compares their
length-weighted mean crack widths, grouped by the annotated width.

    .venv/bin/python benchmarks/width_bias.py --model crack-seg --set deepcrack [--group-by measured]

Grouped by the *annotated* width (the default), any noisy measurement looks too wide
on the thinnest annotated cracks and too narrow on the widest (regression to the mean:
the groups are chosen by the annotation). ``--group-by measured`` groups by the width
measured on the model's mask instead — what a user reading a report has — and shows
the annotated width behind each measured one.

Annotations are themselves drawn by hand; the figures say how the model's widths relate
to its training annotations, not to a calliper.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from coarse_gate import DEFAULT_DATA, test_images  # the same held-out images as the gate benchmarks

from crackscan.analysis.measure import measure_mask
from crackscan.imageio import read_image, read_mask
from crackscan.runtime.predictor import load_predictor, resolve_model_path
from crackscan.runtime.preprocess_seg import pad_to_multiple

BANDS = ((0.0, 3.0), (3.0, 5.0), (5.0, 8.0), (8.0, float("inf")))


def mean_width(mask: np.ndarray, min_area_px: int) -> float | None:
    cracks = measure_mask(mask, min_area_px=min_area_px).cracks
    if not cracks:
        return None
    return float(np.average([c.mean_width_px for c in cracks], weights=[c.length_px for c in cracks]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="crack-seg")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--set", default="deepcrack", choices=["deepcrack", "crack500", "crackmix"])
    parser.add_argument("--min-area", type=int, default=100, help="as crackscan inspect's default")
    parser.add_argument("--group-by", choices=["annotated", "measured"], default="annotated")
    args = parser.parse_args()
    predictor = load_predictor(resolve_model_path(args.model))
    multiple = int(predictor.metadata.extra.get("size_multiple", 32))
    pairs: list[tuple[float, float]] = []
    missed = 0
    for image_path, mask_path in test_images(args.data, args.set):
        truth = read_mask(mask_path).labels > 0
        if not truth.any():
            continue
        padded, (h, w) = pad_to_multiple(read_image(image_path), multiple)
        pred = predictor.probability_map(padded[None])[0][:h, :w] >= predictor.metadata.threshold
        wt, wp = mean_width(truth, args.min_area), mean_width(pred, args.min_area)
        if wt is None:
            continue
        if wp is None:
            missed += 1
            continue
        pairs.append((wt, wp))
    arr = np.asarray(pairs)
    print(
        f"model {args.model}, {args.set} test, threshold {predictor.metadata.threshold:.2f}, min area {args.min_area}"
    )
    by = 0 if args.group_by == "annotated" else 1
    # bias % is the mean of the per-image relative errors, not (mean predicted / mean annotated − 1):
    # each photo counts once, as an inspector reads one photo's widths at a time
    print(f"| {args.group_by} mean width | images | annotated px | predicted px | bias px | bias % (per-image mean) |")
    print("|---|---|---|---|---|---|")
    for lo, hi in BANDS:
        sel = (arr[:, by] >= lo) & (arr[:, by] < hi)
        if not sel.any():
            continue
        t, p = arr[sel, 0], arr[sel, 1]
        label = f"{lo:g}–{hi:g} px" if np.isfinite(hi) else f"≥ {lo:g} px"
        print(
            f"| {label} | {int(sel.sum())} | {t.mean():.2f} | {p.mean():.2f} | {np.mean(p - t):+.2f} | "
            f"{100 * np.mean((p - t) / t):+.0f} % |"
        )
    print(f"images with annotated cracks where the model found none (≥ min area): {missed}")


if __name__ == "__main__":
    main()
