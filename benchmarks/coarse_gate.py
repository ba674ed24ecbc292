"""What screening tiles (``crackscan inspect --coarse-gate P`` / ``--gate crack-cls``) saves and costs.

There is no large, fully labelled crack photo in the shared data, so this builds them
from real parts: a 4032×3024 canvas tiled with crack-free Özgenel concrete patches
(``ozgenel/Negative``, 227 px) — by default only those in the *test* part of the
seed-0 split the bundled ``crack-cls`` was trained with, so the classifier gate has
never seen them — with ``--cracks`` cracked *test* images of ``--crack-set`` (DeepCrack's
544×384 by default; CRACK500 or crackmix's held-out part), their masks as
truth) pasted at random places. Each canvas is inspected with every tile at full size,
with each coarse gate and with the classifier gate at each threshold; the script
prints, per method, the model calls, the seconds (classifier included), pooled pixel
F1 / IoU against the truth at the model's threshold, and how many truth crack pixels
the full pass found that the screened pass lost.

    .venv/bin/python benchmarks/coarse_gate.py --model crack-seg --canvases 3 --gates 0.1 \
        --classifier crack-cls --classifier-thresholds 0.1,0.3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from crackscan.data.layouts import index_dataset
from crackscan.data.split import make_split, select_split
from crackscan.imageio import read_image, read_mask
from crackscan.metrics.segmentation import PixelCounts
from crackscan.runtime.predictor import load_predictor, resolve_model_path
from crackscan.runtime.tiling import classify_patches, patch_screen, predict_tiled

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def negative_patches(data: Path, part: str) -> list[Path]:
    """Özgenel's crack-free patches: all, or one part of the seed-0 split crack-cls was trained on."""
    if part == "all":
        return sorted((data / "ozgenel" / "Negative").glob("*.jpg"))
    # similarity=None: the split as crack-cls drew it, before near duplicates were grouped (a grouped
    # seed-0 split moves patches crack-cls trained on into "test").
    plan = make_split(data / "ozgenel", val=0.15, test=0.15, seed=0, similarity=None)
    return [data / "ozgenel" / k for k in plan.splits[part] if k.startswith("Negative/")]


def test_images(data: Path, name: str) -> list[tuple[Path, Path]]:
    """A set's held-out test pairs, as crack-seg was trained (official splits; crackmix: seed-0 split)."""
    index = index_dataset(data / name)
    if name == "crackmix":
        samples = select_split(index, make_split(data / name, val=0.15, test=0.15, seed=0, similarity=None), "test")
    else:
        samples = [s for s in index.samples if s.split == "test"]
    return sorted((Path(s.image), Path(s.mask)) for s in samples if s.mask is not None)


def make_canvas(
    pairs: list[tuple[Path, Path]],
    negatives: list[Path],
    rng: np.random.Generator,
    h: int,
    w: int,
    n_cracks: int,
) -> tuple[np.ndarray, np.ndarray]:
    canvas = np.empty((h, w, 3), dtype=np.uint8)
    for y in range(0, h, 227):
        for x in range(0, w, 227):
            patch = read_image(negatives[rng.integers(len(negatives))])
            ph, pw = min(227, h - y), min(227, w - x)
            canvas[y : y + ph, x : x + pw] = patch[:ph, :pw]
    truth = np.zeros((h, w), dtype=bool)
    for k in rng.choice(len(pairs), size=n_cracks, replace=False):
        img = read_image(pairs[k][0])
        mask = read_mask(pairs[k][1]).labels > 0
        ih, iw = img.shape[:2]
        y, x = int(rng.integers(0, h - ih)), int(rng.integers(0, w - iw))
        canvas[y : y + ih, x : x + iw] = img
        truth[y : y + ih, x : x + iw] = mask
    return canvas, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="crack-seg")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--canvases", type=int, default=3)
    parser.add_argument("--cracks", type=int, default=4, help="test images pasted per canvas")
    parser.add_argument("--crack-set", default="deepcrack", choices=["deepcrack", "crack500", "crackmix"])
    parser.add_argument("--gates", default="0.05,0.1,0.2", help="coarse gates ('' for none)")
    parser.add_argument("--classifier", default=None, help="classifier gate model, e.g. crack-cls")
    parser.add_argument("--classifier-thresholds", default="0.1,0.3")
    parser.add_argument("--negatives", default="test", choices=["test", "val", "train", "all"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    predictor = load_predictor(resolve_model_path(args.model), threads=args.threads)
    meta = predictor.metadata
    threshold, tile = float(meta.threshold), meta.tile_size
    classifier = load_predictor(resolve_model_path(args.classifier), threads=args.threads) if args.classifier else None
    negatives = negative_patches(args.data, args.negatives)
    pairs = [p for p in test_images(args.data, args.crack_set) if (read_mask(p[1]).labels > 0).any()]
    # A method: (label, coarse gate, classifier threshold); the first is the full pass.
    methods: list[tuple[str, float | None, float | None]] = [("off", None, None)]
    methods += [(f"coarse {g}", float(g), None) for g in args.gates.split(",") if g]
    if classifier is not None:
        methods += [(f"{args.classifier} ≥ {t}", None, float(t)) for t in args.classifier_thresholds.split(",")]
    gates = [m[0] for m in methods]
    counts = {g: PixelCounts() for g in gates}
    seconds = {g: 0.0 for g in gates}
    tiles = {g: [0, 0] for g in gates}
    lost = {g: 0 for g in gates}
    rng = np.random.default_rng(args.seed)
    for i in range(args.canvases):
        canvas, truth = make_canvas(pairs, negatives, rng, 3024, 4032, args.cracks)
        full_found = None
        for g, coarse, cls_threshold in methods:
            stats: dict[str, int] = {}
            start = time.perf_counter()
            screen = None
            if classifier is not None and cls_threshold is not None:
                screen = patch_screen(classify_patches(classifier, canvas, batch_size=64), cls_threshold)
            prob = predict_tiled(predictor, canvas, tile=tile, coarse_gate=coarse, screen=screen, stats=stats)
            seconds[g] += time.perf_counter() - start
            tiles[g][0] += stats["tiles_run"] + stats["coarse_tiles"]  # coarse tiles are full-size model calls too
            tiles[g][1] += stats["tiles"]
            pred = prob >= threshold
            counts[g].update(pred, truth)
            if g == "off":
                full_found = pred & truth
            else:
                lost[g] += int((full_found & ~pred).sum())
        print(f"canvas {i + 1}/{args.canvases}: {int(truth.sum()):,} crack pixels", flush=True)
    print(
        f"\nmodel {args.model} (tile {tile}, threshold {threshold:.2f}), {args.canvases} canvases 4032×3024, "
        f"{args.cracks} cracked {args.crack_set} test images each "
        f"on Özgenel negatives ({args.negatives}: {len(negatives)})"
    )
    print(
        "| screening | model calls (coarse + full-size tiles) | s / canvas | F1 | IoU | precision | recall | "
        "truth pixels the full pass found and this lost |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for g in gates:
        c = counts[g]
        print(
            f"| {g} | {tiles[g][0] / args.canvases:.1f} of {tiles[g][1] / args.canvases:.0f} | "
            f"{seconds[g] / args.canvases:.2f} | {c.f1:.3f} | {c.iou:.3f} | {c.precision:.3f} | {c.recall:.3f} | "
            f"{'–' if g == 'off' else f'{lost[g]:,}'} |"
        )


if __name__ == "__main__":
    main()
