"""What coarse-to-fine inspection (``crackscan inspect --coarse-gate P``) saves and what it costs.

There is no large, fully labelled crack photo in the shared data, so this builds them
from real parts: a 4032×3024 canvas tiled with crack-free Özgenel concrete patches
(``ozgenel/Negative``, 227 px), with ``--cracks`` DeepCrack *test* images (544×384, their
masks as truth) pasted at random places. Each canvas is inspected with every tile at
full size and with the coarse gate; the script prints, per gate, the tiles run, the
seconds, pooled pixel F1 / IoU against the truth at the model's threshold, and how
many truth crack pixels the full pass found that the gated pass lost.

    .venv/bin/python benchmarks/coarse_gate.py --model crack-seg --canvases 3 --gates 0.05,0.1,0.2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from crackscan.imageio import read_image, read_mask
from crackscan.metrics.segmentation import PixelCounts
from crackscan.runtime.predictor import load_predictor, resolve_model_path
from crackscan.runtime.tiling import predict_tiled

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_canvas(data: Path, rng: np.random.Generator, h: int, w: int, n_cracks: int) -> tuple[np.ndarray, np.ndarray]:
    negatives = sorted((data / "ozgenel" / "Negative").glob("*.jpg"))
    images = sorted((data / "deepcrack" / "images" / "test").glob("*.jpg"))
    canvas = np.empty((h, w, 3), dtype=np.uint8)
    for y in range(0, h, 227):
        for x in range(0, w, 227):
            patch = read_image(negatives[rng.integers(len(negatives))])
            ph, pw = min(227, h - y), min(227, w - x)
            canvas[y : y + ph, x : x + pw] = patch[:ph, :pw]
    truth = np.zeros((h, w), dtype=bool)
    for path in rng.choice(images, size=n_cracks, replace=False):
        img = read_image(path)
        mask = read_mask(data / "deepcrack" / "masks" / "test" / (path.stem + ".png")).labels > 0
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
    parser.add_argument("--cracks", type=int, default=4, help="DeepCrack test images pasted per canvas")
    parser.add_argument("--gates", default="0.05,0.1,0.2")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    predictor = load_predictor(resolve_model_path(args.model), threads=args.threads)
    meta = predictor.metadata
    threshold, tile = float(meta.threshold), meta.tile_size
    gates = [None] + [float(g) for g in args.gates.split(",")]
    counts = {g: PixelCounts() for g in gates}
    seconds = {g: 0.0 for g in gates}
    tiles = {g: [0, 0] for g in gates}
    lost = {g: 0 for g in gates}
    rng = np.random.default_rng(args.seed)
    for i in range(args.canvases):
        canvas, truth = make_canvas(args.data, rng, 3024, 4032, args.cracks)
        full_found = None
        for g in gates:
            stats: dict[str, int] = {}
            start = time.perf_counter()
            prob = predict_tiled(predictor, canvas, tile=tile, coarse_gate=g, stats=stats)
            seconds[g] += time.perf_counter() - start
            tiles[g][0] += stats["tiles_run"] + stats["coarse_tiles"]  # coarse tiles are full-size model calls too
            tiles[g][1] += stats["tiles"]
            pred = prob >= threshold
            counts[g].update(pred, truth)
            if g is None:
                full_found = pred & truth
            else:
                lost[g] += int((full_found & ~pred).sum())
        print(f"canvas {i + 1}/{args.canvases}: {int(truth.sum()):,} crack pixels", flush=True)
    print(
        f"\nmodel {args.model} (tile {tile}, threshold {threshold:.2f}), {args.canvases} canvases 4032×3024, "
        f"{args.cracks} DeepCrack test images each on Özgenel negatives"
    )
    print(
        "| coarse gate | model calls (coarse + full-size tiles) | s / canvas | F1 | IoU | precision | recall | "
        "truth pixels the full pass found and this lost |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for g in gates:
        c = counts[g]
        print(
            f"| {'off' if g is None else g} | {tiles[g][0] / args.canvases:.1f} of {tiles[g][1] / args.canvases:.0f} | "
            f"{seconds[g] / args.canvases:.2f} | {c.f1:.3f} | {c.iou:.3f} | {c.precision:.3f} | {c.recall:.3f} | "
            f"{'–' if g is None else f'{lost[g]:,}'} |"
        )


if __name__ == "__main__":
    main()
