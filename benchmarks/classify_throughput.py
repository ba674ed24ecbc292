"""End-to-end patch classification throughput: crackscan vs the seeds' ResNet18 path.

Both paths start from the same JPEG files on disk and end with a crack probability:

* **seeds' baseline** — PIL decode, torchvision ``Resize(224)`` + ``ToTensor`` +
  ``Normalize``, torchvision ResNet18 (2-class head), PyTorch eager, batch 32;
* **crackscan** — reduced-size JPEG decode on reader threads overlapped with ONNX
  Runtime inference of the model file (``crackscan predict``'s own code path).

Usage (from the repository root)::

    python benchmarks/classify_throughput.py --model crack-cls --images ../shared/data/ozgenel --n 2000

Prints a table and, with ``--json``, writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from crackscan.evaluation import collect_images, open_model
from crackscan.evaluation.inference import classify_files


def seeds_baseline(files: list[Path], batch_size: int = 32) -> dict[str, float]:
    import torch
    import torchvision
    from PIL import Image
    from torchvision import transforms

    model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Linear(model.fc.in_features, 2)
    model.eval()
    tf = transforms.Compose(
        [
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    latencies = []
    started = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(files), batch_size):
            t = time.perf_counter()
            x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files[i : i + batch_size]])
            torch.softmax(model(x), dim=1)
            latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    return _figures(len(files), total, latencies, batch_size)


def crackscan_path(model: str, files: list[Path], batch_size: int) -> dict[str, float]:
    predictor = open_model(model)
    classify_files(predictor, files[: min(len(files), 2 * batch_size)], batch_size=batch_size)  # warm-up
    started = time.perf_counter()
    marks: list[float] = []
    result = classify_files(predictor, files, batch_size=batch_size, progress=lambda d, t: marks.append(time.perf_counter()))
    total = time.perf_counter() - started
    latencies = list(np.diff([started, *marks[1:]])) if len(marks) > 1 else [total]
    figures = _figures(len(files), total, latencies, batch_size)
    figures["unreadable"] = float(len(result.problems))
    return figures


def _figures(n: int, seconds: float, latencies: list[float], batch: int) -> dict[str, float]:
    lat = np.asarray(latencies) * 1000.0
    return {
        "images": float(n),
        "seconds": round(seconds, 3),
        "images_per_s": round(n / seconds, 1),
        "batch": float(batch),
        "batch_latency_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "batch_latency_p95_ms": round(float(np.percentile(lat, 95)), 1),
    }


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
