"""Compare segmentation architectures on the same split and the same time budget.

Each architecture trains with ``crackscan train segment`` settings (same data, seed,
crop, encoder, split) for ``--budget-minutes`` of wall-clock time, then its exported
``model.onnx`` is scored on the held-out test images of every data set (whole images
padded to a multiple of 32, calibrated threshold): crack IoU, ODS F1 (2-px tolerance),
parameters, ONNX size and ONNX Runtime CPU time per 512×512 image (batch 1).

    python benchmarks/compare_segmenters.py ../shared/data/deepcrack --budget-minutes 20
    python benchmarks/compare_segmenters.py ../shared/data/crack500 --budget-minutes 1 --limit 16   # smoke run

Prints a Markdown table (for docs/benchmarks.md) and writes ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from crackscan.data.layouts import index_dataset
from crackscan.data.split import read_split, select_split
from crackscan.imageio import read_image, read_mask
from crackscan.metrics.segmentation import PixelCounts, ToleranceCurve
from crackscan.models.segmenters import FIRST_CLASS
from crackscan.runtime.predictor import load_predictor
from crackscan.runtime.preprocess_seg import apply_preprocess, pad_to_multiple
from crackscan.training.segment import SegmentConfig, train_segmenter


def score_test(run_dir: Path, data: list[str], limit: int | None, mask_dir: str | None) -> dict[str, float]:
    """Pooled IoU at the model's threshold and ODS F1 on every set's test split."""
    predictor = load_predictor(run_dir / "model.onnx")
    meta = predictor.metadata
    pixel, curve = PixelCounts(), ToleranceCurve()
    for src in meta.extra["training_data"]["sources"]:
        plan = read_split(run_dir / src["split_file"])
        index = index_dataset(src["root"], mask_dir=mask_dir)
        samples = select_split(index, plan, "test") if plan.splits.get("test") else []
        for s in samples[:limit] if limit else samples:
            image = apply_preprocess(read_image(s.image), meta.extra.get("preprocess"))
            truth = read_mask(s.mask).labels > 0  # type: ignore[arg-type]
            padded, (h, w) = pad_to_multiple(image, int(meta.extra.get("size_multiple", 32)))
            prob = predictor.probability_map(padded[None])[0][:h, :w]
            pixel.update(prob, truth, meta.threshold)
            curve.update(prob, truth)
    return {"test_iou": pixel.iou, "test_dice": pixel.dice, "test_ods_f1": curve.ods_f1, "test_n": float(pixel.n)}


def images_per_second(run_dir: Path, size: int = 512, batch: int = 1, repeats: int = 8) -> float:
    """ONNX Runtime images/s on ``size``×``size`` inputs, batch 1 (as ``crackscan bench --task segment``)."""
    predictor = load_predictor(run_dir / "model.onnx")
    x = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    predictor.probability_map(x)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        predictor.probability_map(x)
    return batch * repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="+", help="data sets (ROOT with images/ + masks/)")
    parser.add_argument("--archs", default=",".join(FIRST_CLASS))
    parser.add_argument("--encoder", default="tf_efficientnet_lite0")
    parser.add_argument("--budget-minutes", type=float, default=10.0, help="training wall-clock per architecture")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1000, help="upper bound; the budget usually stops first")
    parser.add_argument("--limit", type=int, default=None, help="at most N train/val/test images per set")
    parser.add_argument("--mask-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/compare-segmenters")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    out = Path(args.out)
    rows = []
    for arch in args.archs.split(","):
        run_dir = out / arch
        cfg = SegmentConfig(
            data=args.data,
            out=str(run_dir),
            arch=arch,
            encoder=args.encoder,
            crop=args.crop,
            batch_size=args.batch_size,
            epochs=args.epochs,
            seed=args.seed,
            limit=args.limit,
            mask_dir=args.mask_dir,
            max_minutes=args.budget_minutes,
            accelerator="auto",
            command=f"benchmarks/compare_segmenters.py {arch}",
        )
        result = train_segmenter(cfg)
        row = {
            "arch": arch,
            "params_m": result.parameters / 1e6,
            "onnx_mib": result.onnx_bytes / 2**20,
            "threshold": result.threshold,
            "train_images_per_s": result.metrics.get("train_images_per_s", 0.0),
            "val_iou": result.metrics.get("val_iou", float("nan")),
            **score_test(run_dir, args.data, args.limit, args.mask_dir),
            "onnx_images_per_s": images_per_second(run_dir),
        }
        rows.append(row)
        (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")

    print(f"budget {args.budget_minutes} min per arch, crop {args.crop}, encoder {args.encoder}, data {args.data}")
    print("| arch | test IoU | test ODS F1 | val IoU | params (M) | ONNX (MiB) | train img/s | CPU ms per 512² image |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['arch']} | {r['test_iou']:.3f} | {r['test_ods_f1']:.3f} | {r['val_iou']:.3f} | "
            f"{r['params_m']:.2f} | {r['onnx_mib']:.1f} | {r['train_images_per_s']:.1f} | "
            f"{1000.0 / r['onnx_images_per_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
