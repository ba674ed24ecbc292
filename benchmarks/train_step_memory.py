"""Training speed on CPU with and without :func:`crackscan.training.run.keep_freed_memory`.

Times ``--steps`` optimiser steps (AdamW, forward + backward) of a segmenter on random
``--batch``×3×``--crop``² crops, once in a process where glibc's malloc hands freed memory
back to the kernel (its default) and once where it keeps it (what ``crackscan train`` sets);
prints crops/s, minor page faults and kernel (sys) time of each. Each side runs in a fresh
process, because malloc's settings and its heap belong to the process.

    .venv/bin/python benchmarks/train_step_memory.py --arch unet --crop 448 --batch 8 --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def run_steps(arch: str, crop: int, batch: int, steps: int, keep: bool) -> dict[str, float]:
    import torch

    from crackscan.models.segmenters import create_segmenter
    from crackscan.training.run import keep_freed_memory

    took = keep_freed_memory() if keep else False
    torch.manual_seed(0)
    model = create_segmenter(arch, "tf_efficientnet_lite0", 1)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)
    x = torch.randn(batch, 3, crop, crop)
    y = (torch.rand(batch, 1, crop, crop) > 0.97).float()

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
        optimizer.step()

    step()  # warm-up: first allocations and kernels
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "keep_freed_memory": took,
        "crops_per_s": steps * batch / seconds,
        "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
        "sys_share": (after.ru_stime - before.ru_stime)
        / max(1e-9, (after.ru_stime - before.ru_stime) + (after.ru_utime - before.ru_utime)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="unet")
    ap.add_argument("--crop", type=int, default=448)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--side", choices=["default", "keep"], help=argparse.SUPPRESS)  # one child process
    args = ap.parse_args()
    if args.side:
        print(json.dumps(run_steps(args.arch, args.crop, args.batch, args.steps, args.side == "keep")))
        return
    env = {**os.environ, "CRACKSCAN_KEEP_FREED_MEMORY": "1"}
    env.pop("GLIBC_TUNABLES", None)  # the comparison is about malloc's defaults
    print(f"{args.arch}, {args.batch}×3×{args.crop}² crops, {args.steps} steps after a warm-up, {os.cpu_count()} cores")
    for side in ("default", "keep"):
        out = subprocess.run(
            [sys.executable, __file__, "--arch", args.arch, "--crop", str(args.crop), "--batch", str(args.batch),
             "--steps", str(args.steps), "--side", side],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        label = "malloc keeps freed memory" if side == "keep" else "glibc default           "
        print(
            f"{label}  {r['crops_per_s']:6.2f} crops/s  {r['minor_faults_per_step']:>11,.0f} page faults/step  "
            f"kernel time {100 * r['sys_share']:4.1f} %"
        )


if __name__ == "__main__":
    main()
