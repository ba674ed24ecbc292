"""End-to-end patch classification throughput: crackscan vs the seeds' ResNet18 path.

Both paths start from the same JPEG files on disk and end with a crack probability:

* **seeds' baseline** — PIL decode, torchvision ``Resize(224)`` + ``ToTensor`` +
  ``Normalize``, torchvision ResNet18 (2-class head), PyTorch eager, batch 32;
* **crackscan** — reduced-size JPEG decode on reader threads overlapped with ONNX
  Runtime inference of the model file (``crackscan predict``'s own code path).

Usage (from the repository root)::

    python benchmarks/classify_throughput.py --model crack-cls --images ../shared/data/ozgenel --n 2000

Prints a table and, with ``--json``, writes the figures. The measuring functions live in
:mod:`crackscan.bench` (``crackscan bench`` adds torch eager and INT8 to the same table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

from crackscan.bench import crackscan_path, seeds_baseline
from crackscan.evaluation import collect_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="crack-cls")
    parser.add_argument("--images", default="../shared/data/ozgenel")
    parser.add_argument("--n", type=int, default=2000, help="images for crackscan")
    parser.add_argument("--n-baseline", type=int, default=320, help="images for the (slow) baseline")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    files, _ = collect_images([args.images])
    rng = np.random.default_rng(0)
    files = [files[i] for i in rng.permutation(len(files))]
    if not files:
        raise SystemExit(f"no images under {args.images}")
    ours = crackscan_path(args.model, files[: args.n], args.batch_size)
    base = seeds_baseline(files[: args.n_baseline])
    ratio = ours["images_per_s"] / base["images_per_s"]
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "model": args.model,
        "crackscan": ours,
        "seeds_resnet18_224_eager_b32": base,
        "speedup": round(ratio, 1),
    }
    print(f"{'path':36} {'images/s':>10} {'p50 ms/batch':>13} {'p95 ms/batch':>13}")
    for name, fig in (("crackscan (" + args.model + ", ONNX Runtime)", ours), ("seeds: ResNet18 224 eager b32", base)):
        print(
            f"{name:36} {fig['images_per_s']:>10.1f} {fig['batch_latency_p50_ms']:>13.1f} "
            f"{fig['batch_latency_p95_ms']:>13.1f}"
        )
    print(f"speed-up: {ratio:.1f}×")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
