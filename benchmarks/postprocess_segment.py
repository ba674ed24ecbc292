"""Does post-processing a segmenter's probability map raise crack IoU? Calibrated on val, scored on test.

Three rules turn a probability map into a mask, each with its parameters chosen on the pooled validation
splits of the three shared sets (best exact F1, the rule training calibrates its threshold with) and then
scored on their test splits (DeepCrack's official 237, CRACK500's 93, crackmix's held-out part of
``--splits``/crackmix.json):

* **plain** — ``p >= t``, the model's stored threshold and the best on val;
* **hysteresis** — ``skimage.filters.apply_hysteresis_threshold``: pixels over ``low`` are kept when they
  connect to a pixel over ``high`` (faint crack ends joined to strong crack bodies, isolated faint specks
  dropped), ``low`` from 0.20 to the stored threshold and ``high`` from it to 0.95, steps of 0.05;
* **min area** — ``p >= t`` with connected components under 16/32/64 px removed.

Probability maps are computed once per image (``crackscan evaluate``'s full-resolution path) and kept as
uint8. Crack-class IoU is pooled over each set's pixels, with no tolerance, as everywhere in docs/benchmarks.md.

    .venv/bin/python benchmarks/postprocess_segment.py --model crack-seg-unet --splits runs/crack-seg-unet/splits
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from crackscan.evaluation.segmentation import _read_pair, segment_image, select_pairs
from crackscan.runtime.predictor import load_predictor

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETS = ("deepcrack", "crack500", "crackmix")
Rule = Callable[[np.ndarray], np.ndarray]
Pairs = list[tuple[np.ndarray, np.ndarray]]


def probability_maps(predictor, root: Path, split: str, split_file: Path, tta: bool) -> Pairs:
    selection = select_pairs(root, split, split_file if split_file.is_file() else None)
    pairs = []
    for sample in selection.samples:
        image, mask = _read_pair(sample, None)
        prob = segment_image(predictor, image, tta=tta)
        pairs.append((np.round(prob * 255).astype(np.uint8), mask.labels > 0))
    return pairs


def pooled(pairs: Pairs, rule: Rule) -> tuple[float, float]:
    """Pooled crack IoU and F1 of ``rule``'s masks."""
    tp = fp = fn = 0
    for prob, truth in pairs:
        mask = rule(prob)
        tp += int(np.count_nonzero(mask & truth))
        fp += int(np.count_nonzero(mask & ~truth))
        fn += int(np.count_nonzero(~mask & truth))
    return tp / max(1, tp + fp + fn), 2 * tp / max(1, 2 * tp + fp + fn)


def plain(t: float) -> Rule:
    return lambda p: p >= round(t * 255)


def hysteresis(low: float, high: float) -> Rule:
    from skimage.filters import apply_hysteresis_threshold

    return lambda p: apply_hysteresis_threshold(p, round(low * 255) - 0.5, round(high * 255) - 0.5)


def min_area(t: float, area: int) -> Rule:
    import cv2

    def rule(p: np.ndarray) -> np.ndarray:
        mask = (p >= round(t * 255)).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        keep = np.zeros(n, bool)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= area
        return keep[labels]

    return rule


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="segmentation model (.onnx or bundled name)")
    ap.add_argument("--splits", type=Path, required=True, help="the model's run splits/ folder (<set>.json)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--tta", action="store_true", help="flip-averaged probabilities (the model's TTA threshold)")
    args = ap.parse_args(argv)

    predictor = load_predictor(args.model)
    stored = predictor.metadata.threshold_for(tta=args.tta)
    started = time.perf_counter()
    maps: dict[tuple[str, str], Pairs] = {}
    for name in SETS:
        if not (args.data / name).is_dir():
            print(f"{args.data / name} not found", file=sys.stderr)
            return 2
        for split in ("val", "test"):
            split_file = args.splits / f"{name}.json"
            maps[name, split] = probability_maps(predictor, args.data / name, split, split_file, args.tta)
    print(f"probability maps: {sum(len(v) for v in maps.values())} images in {time.perf_counter() - started:.0f} s")
    val = [pair for name in SETS for pair in maps[name, "val"]]

    def report(label: str, rule: Rule) -> None:
        tests = "  ".join(f"{name} {pooled(maps[name, 'test'], rule)[0]:.4f}" for name in SETS)
        print(f"{label:<34} val F1 {pooled(val, rule)[1]:.4f}   test IoU  {tests}", flush=True)

    report(f"plain, stored {stored:.2f}", plain(stored))
    best_t = max(np.arange(0.30, 0.87, 0.02), key=lambda t: pooled(val, plain(t))[1])
    report(f"plain, val-best {best_t:.2f}", plain(best_t))
    grid = [(lo, hi) for lo in np.arange(0.20, stored + 1e-6, 0.05) for hi in np.arange(stored, 0.951, 0.05)]
    low, high = max(grid, key=lambda g: pooled(val, hysteresis(*g))[1])
    report(f"hysteresis, val-best {low:.2f}/{high:.2f}", hysteresis(low, high))
    for area in (16, 32, 64):
        report(f"min area {area} px at {stored:.2f}", min_area(stored, area))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
