"""ONNX Runtime time per 512×512 image of segmentation network designs (random weights).

Speed depends on the graph, not the weights, so this builds each design untrained,
exports it to ONNX and times it with the session options crackscan uses
(:func:`crackscan.runtime.predictor.session_options`), batch 1, after warm-up. It shows
where a U-Net's CPU time goes: the decoder's full-resolution block and the 3×3 head on
full-size maps, which ``--head-stride 2`` removes.

    .venv/bin/python benchmarks/segmenter_speed.py --size 512 --runs 10
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from crackscan.models.segmenters import count_parameters, create_segmenter
from crackscan.runtime.predictor import session_options

ENCODER = "tf_efficientnet_lite0"
DESIGNS: dict[str, dict] = {
    "U-Net 128-64-32-24-16 (crack-seg v1)": dict(arch="unet", decoder_channels=(128, 64, 32, 24, 16)),
    "U-Net 128-64-32-16-8": dict(arch="unet", decoder_channels=(128, 64, 32, 16, 8)),
    "U-Net 128-64-32-24, head stride 2": dict(arch="unet", decoder_channels=(128, 64, 32, 24, 16), head_stride=2),
    "U-Net 64-32-24-16, head stride 2": dict(arch="unet", decoder_channels=(64, 32, 24, 16, 16), head_stride=2),
    "FPN 64 (stride-4 output)": dict(arch="fpn", decoder_channels=(64,)),
    "FPN 128 (stride-4 output)": dict(arch="fpn", decoder_channels=(128,)),
    "FPN 256 (smp's default)": dict(arch="fpn"),
}


def time_design(options: dict, size: int, runs: int, threads: int | None, work: Path) -> tuple[float, int]:
    options = dict(options)
    model = create_segmenter(options.pop("arch"), ENCODER, 1, **options).eval()
    path = work / "model.onnx"
    x = torch.randn(1, 3, size, size)
    torch.onnx.export(model, x, str(path), opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamo=False)  # fmt: skip
    session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    feed = {"input": x.numpy().astype(np.float32)}
    for _ in range(3):
        session.run(None, feed)
    started = time.perf_counter()
    for _ in range(runs):
        session.run(None, feed)
    return (time.perf_counter() - started) / runs, count_parameters(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: physical cores)")
    args = parser.parse_args()
    print(f"| design ({ENCODER} encoder) | parameters | ms / {args.size}² image | images/s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="crackscan-speed-") as tmp:
        for name, options in DESIGNS.items():
            seconds, params = time_design(options, args.size, args.runs, args.threads, Path(tmp))
            print(f"| {name} | {params / 1e6:.2f} M | {seconds * 1000:.0f} | {1 / seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
