"""Segmentation accuracy of a model on the real crack sets, with ``crackscan evaluate``'s own code.

Sets (under ``--data``, default ``../shared/data``):

* **deepcrack** — the official test split (237 images, 544×384, 1-bit masks);
* **crack500** — the source repository's test split (93 images, 256×256);
* **crackmix** — held out: the ``test`` split of ``--crackmix-split FILE`` (the split
  file the model was trained with — use it, or the numbers include training images),
  else ``benchmarks/splits/seed0/crackmix.json``, the split the bundled crack segmenters
  were trained with (``benchmarks/make_bundled_splits.py`` draws it again). A fresh
  ``make_split(seed=0)`` no longer gives it: near duplicates are now kept together.

Prints one row per set: images, pooled IoU / mIoU (mean of crack and background IoU) /
Dice / precision / recall at the model's threshold, per-image mean IoU, ODS F1
(threshold) and OIS F1 with the pixel tolerance, clDice, and seconds per image.
``--json FILE`` writes every set's full metrics; ``--out DIR`` writes each set's
per-image CSV and plots to ``DIR/<set>/``.

    .venv/bin/python benchmarks/eval_segmentation.py --model runs/seg/model.onnx \\
        --crackmix-split runs/seg/split.json --json eval_seg.json
    .venv/bin/python benchmarks/eval_segmentation.py --model crack-seg+crack-seg-unet --threshold 0.61  # an ensemble

``--tta`` averages each image over its flips (as ``crackscan evaluate --tta``). That
softens the edges of the probability map, so the threshold calibrated without it no
longer fits: ``--calibrate-on-val SPLITS`` (the run's ``splits/`` folder, one
``<set>.json`` per set) first scores the validation split of every set the same way and
uses the threshold with the best pooled exact F1 over all of them — the rule training
calibrates with — for the test figures. The test splits never choose the threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from crackscan.evaluation import open_model
from crackscan.evaluation.calibration import calibrate_threshold
from crackscan.evaluation.segmentation import (
    PairSelection,
    evaluate_segmenter,
    select_pairs,
    write_segmentation_outputs,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BUNDLED_SPLITS = Path(__file__).resolve().parent / "splits" / "seed0"
SETS = ("deepcrack", "crack500", "crackmix")
COLUMNS = ("set", "n", "IoU", "mIoU", "Dice", "P", "R", "IoU/img", "ODS F1", "ODS th", "OIS F1", "clDice", "s/img")


def selection_for(name: str, root: Path, crackmix_split: Path | None) -> PairSelection:
    if name != "crackmix":
        return select_pairs(root, "test")
    if crackmix_split is not None:
        return select_pairs(root, "test", crackmix_split)
    return select_pairs(root, "test", BUNDLED_SPLITS / "crackmix.json")


def calibrate_on_val(predictor: Any, data: Path, sets: list[str], splits: Path, tta: bool) -> float:
    """The threshold with the best exact F1 pooled over the validation splits of ``sets`` (``crackscan calibrate``)."""
    selections = []
    for name in sets:
        split_file = splits / f"{name}.json"
        if not (data / name).is_dir() or not split_file.is_file():
            print(f"calibration: skipping {name} ({split_file} or {data / name} missing)", file=sys.stderr)
            continue
        selections.append((name, select_pairs(data / name, "val", split_file)))
    if not selections:
        raise SystemExit(f"--calibrate-on-val {splits}: no validation split found")
    cal = calibrate_threshold(predictor, selections, tta=tta)
    for part in cal.sets:
        print(f"calibration: {part.name} val, {part.n} images, own best F1 {part.best_f1:.4f} at {part.best_threshold}")
    print(f"calibration: pooled val exact F1 {cal.f1:.4f} at threshold {cal.threshold:.2f} ({cal.n} images)")
    return cal.threshold


def fmt(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="segmentation model (.onnx, run folder or bundled name)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding the shared data sets")
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    ap.add_argument("--crackmix-split", type=Path, help="split file the model was trained with (its test split)")
    ap.add_argument("--tolerance", type=float, default=2.0, help="px tolerance of ODS/OIS (default 2)")
    ap.add_argument(
        "--threshold", type=float, help="score at this threshold instead of the stored one (say, calibrated on val)"
    )
    ap.add_argument("--tta", action="store_true", help="average each image over its flips")
    ap.add_argument(
        "--calibrate-on-val",
        type=Path,
        metavar="SPLITS",
        help="the run's splits folder: calibrate the threshold on its val splits first (same --tta)",
    )
    ap.add_argument("--limit", type=int, help="evaluate only the first N images of each set (smoke runs)")
    ap.add_argument("--json", type=Path, help="write every set's metrics here")
    ap.add_argument("--out", type=Path, help="write per-image CSV and plots to OUT/<set>/")
    args = ap.parse_args(argv)

    predictor = open_model(args.model)
    if predictor.task != "segment":
        print(f"{args.model} is a {predictor.task} model, not a segmentation model", file=sys.stderr)
        return 2
    if args.threshold is not None and args.calibrate_on_val is not None:
        ap.error("--threshold and --calibrate-on-val exclude each other")
    if args.calibrate_on_val is not None:
        args.threshold = calibrate_on_val(predictor, args.data, args.sets, args.calibrate_on_val, args.tta)
    threshold = args.threshold if args.threshold is not None else predictor.metadata.threshold_for(tta=args.tta)
    results: dict[str, Any] = {
        "model": str(predictor.path),
        "threshold": threshold,
        "tta": args.tta,
        "threshold_source": "val splits of " + str(args.calibrate_on_val) if args.calibrate_on_val else "given/stored",
    }
    rows = []
    for name in args.sets:
        root = args.data / name
        if not root.is_dir():
            print(f"skipping {name}: {root} not found", file=sys.stderr)
            continue
        selection = selection_for(name, root, args.crackmix_split)
        if args.limit:
            selection.samples = selection.samples[: args.limit]
        started = time.perf_counter()
        ev = evaluate_segmenter(predictor, selection, tolerance_px=args.tolerance, tta=args.tta, threshold=threshold)
        seconds = time.perf_counter() - started
        r = ev.to_dict()
        r["seconds"] = seconds
        results[name] = r
        if args.out is not None:
            write_segmentation_outputs(ev, args.out / name)
        rows.append(
            (
                name,
                str(r["n"]),
                fmt(r["iou"]),
                fmt(r["miou"]),
                fmt(r["dice"]),
                fmt(r["precision"]),
                fmt(r["recall"]),
                fmt(r["iou_per_image_mean"]),
                fmt(r["ods_f1"]),
                fmt(r["ods_threshold"], 2),
                fmt(r["ois_f1"]),
                fmt(r["cldice"]),
                f"{seconds / max(1, r['n']):.3f}",
            )
        )
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(COLUMNS)]
    tta = ", flip TTA" if args.tta else ""
    print(f"model {predictor.path} (threshold {threshold:g}, tolerance {args.tolerance:g} px{tta})")
    print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
