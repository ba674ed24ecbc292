"""Can one width correction, fitted on validation images, fix the widths a model's masks give? (No.)

``benchmarks/width_bias.py`` shows the widths measured on a bundled model's masks against
the annotated ones. The obvious fix is a per-model curve from measured to annotated width.
This fits one on the pooled validation splits of the three crack sets (the splits the
bundled models trained with, ``benchmarks/splits/seed0``) and scores it on their test splits:

* pairs: every centreline pixel of the predicted mask (``crackscan.analysis.measure.width_map``,
  the widths ``inspect`` reports) with the nearest annotated centreline pixel, when within
  half the wider of the two widths (at least 2 px);
* curve: equal-count bins of measured width → (median measured, median annotated) knots,
  made non-decreasing (pool-adjacent-violators); linear between knots, slope 1 outside;
* score: mean absolute error of the paired local widths on each test split, raw and
  corrected, and the per-image mean width error.

    .venv/bin/python benchmarks/width_curve.py --model crack-seg-unet

The three sets are annotated in different styles (DeepCrack's annotators draw wider than the
masks, crackmix's and CRACK500's narrower), so a pooled curve moves one set's widths the wrong
way while it mends the others' (docs/benchmarks.md, session 18): crackscan ships no width curve.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from crackscan.analysis.measure import width_map
from crackscan.evaluation.segmentation import select_pairs
from crackscan.imageio import read_image, read_mask
from crackscan.runtime.predictor import load_predictor, resolve_model_path
from crackscan.runtime.preprocess_seg import pad_to_multiple

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data"
SETS = ("crackmix", "deepcrack", "crack500")
MIN_MATCH_PX = 2.0
MIN_AREA_PX, JOIN_GAP_PX = 100, 5  # crackscan inspect's defaults


def paired_widths(
    predicted: np.ndarray,
    annotated: np.ndarray,
    *,
    min_area_px: int = MIN_AREA_PX,
    join_gap_px: int = JOIN_GAP_PX,
) -> tuple[np.ndarray, np.ndarray]:
    """(measured, annotated) full widths at the prediction's centreline pixels that lie on an annotated crack.

    ``predicted`` and ``annotated``: ``H×W`` masks of one image (non-zero = crack).
    """
    if predicted.shape != annotated.shape:
        raise ValueError(f"mask shapes differ: {predicted.shape} and {annotated.shape}")
    p_skel, p_width = width_map(predicted != 0, min_area_px=min_area_px, join_gap_px=join_gap_px)
    t_skel, t_width = width_map(annotated != 0, min_area_px=0, join_gap_px=join_gap_px)
    if not p_skel.any() or not t_skel.any():
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    # Distance from every pixel to the nearest annotated centreline pixel, and which one it is.
    dist, labels = cv2.distanceTransformWithLabels(
        (~t_skel).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ty, tx = np.nonzero(t_skel)
    # labels number the zero pixels of the input (the annotated centreline) in row-major scan order
    order = np.zeros(labels.max() + 1, dtype=np.int64)
    zero_labels = labels[ty, tx]
    order[zero_labels] = np.arange(len(ty))
    py, px = np.nonzero(p_skel)
    nearest = order[labels[py, px]]
    wp = p_width[py, px]
    wt = t_width[ty[nearest], tx[nearest]]
    close = dist[py, px] <= np.maximum(MIN_MATCH_PX, 0.5 * np.maximum(wp, wt))
    return wp[close].astype(np.float32), wt[close].astype(np.float32)


def monotone(y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Pool adjacent violators: the closest non-decreasing sequence (weighted least squares)."""
    blocks: list[list[float]] = []  # [value, weight, count]
    for v, w in zip(y.tolist(), weight.tolist(), strict=True):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(int(n), v) for v, _, n in blocks])


def fit_curve(wp: np.ndarray, wt: np.ndarray, knots: int = 12) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(wp, kind="stable")
    parts = np.array_split(order, knots)
    x = np.array([np.median(wp[p]) for p in parts])
    y = np.array([np.median(wt[p]) for p in parts])
    w = np.array([len(p) for p in parts], float)
    ux, inverse = np.unique(x, return_inverse=True)  # widths come in steps: equal medians are merged
    uy = np.bincount(inverse, weights=y * w) / np.bincount(inverse, weights=w)
    return ux, monotone(uy, np.bincount(inverse, weights=w))


def apply_curve(curve: tuple[np.ndarray, np.ndarray], widths: np.ndarray) -> np.ndarray:
    x, y = curve
    out = np.interp(widths, x, y)
    out = np.where(widths < x[0], widths + (y[0] - x[0]), out)
    out = np.where(widths > x[-1], widths + (y[-1] - x[-1]), out)
    return np.maximum(out, 1.0)


def masks(predictor, data: Path, name: str, split: str):  # type: ignore[no-untyped-def]
    """(predicted, annotated) masks of one split's images with annotated cracks, at the stored threshold."""
    selection = select_pairs(data / name, split, HERE / "splits" / "seed0" / f"{name}.json")
    multiple = int(predictor.metadata.extra.get("size_multiple", 32))
    for s in selection.samples:
        truth = read_mask(s.mask).labels > 0
        if not truth.any():
            continue
        padded, (h, w) = pad_to_multiple(read_image(s.image), multiple)
        yield predictor.probability_map(padded[None])[0][:h, :w] >= predictor.metadata.threshold, truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="crack-seg-unet")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()
    predictor = load_predictor(resolve_model_path(args.model))
    pairs = [paired_widths(p, t) for name in SETS for p, t in masks(predictor, args.data, name, "val")]
    wp, wt = np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs])
    curve = fit_curve(wp, wt)
    print(f"model {args.model}, threshold {predictor.metadata.threshold:.2f}; curve fitted on {len(wp)} val pairs:")
    print("measured px  " + " ".join(f"{v:5.1f}" for v in curve[0]))
    print("annotated px " + " ".join(f"{v:5.1f}" for v in curve[1]))
    print("| test set | paired px | mean error raw / corrected | MAE raw / corrected | per-image MAE raw / corrected |")
    print("|---|---|---|---|---|")
    for name in ("deepcrack", "crack500", "crackmix"):
        a_all, b_all, img_raw, img_cor = [], [], [], []
        for p, t in masks(predictor, args.data, name, "test"):
            a, b = paired_widths(p, t)
            if not len(a):
                continue
            a_all.append(a)
            b_all.append(b)
            img_raw.append(abs(a.mean() - b.mean()))
            img_cor.append(abs(apply_curve(curve, a).mean() - b.mean()))
        a, b = np.concatenate(a_all), np.concatenate(b_all)
        c = apply_curve(curve, a)
        print(
            f"| {name} | {len(a)} | {np.mean(a - b):+.2f} / {np.mean(c - b):+.2f} | {np.mean(np.abs(a - b)):.2f} / "
            f"{np.mean(np.abs(c - b)):.2f} | {np.mean(img_raw):.2f} / {np.mean(img_cor):.2f} |"
        )


if __name__ == "__main__":
    main()
