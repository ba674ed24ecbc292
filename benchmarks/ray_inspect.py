"""Photos per second of ``crackscan inspect --engine ray`` with 1, 2 … workers against the local engine.

Writes N synthetic 2000×1500 walls (``crackscan.data.synth.synth_wall``, 3 cracks each,
JPEG; not timed), inspects them once with the local engine (``inspect_paths``, one ONNX
Runtime session with all cores) and then with the Ray engine on a local Ray instance for
each worker count (one single-thread session per actor), checks that the Ray rows equal
the local ones and prints, per run: wall time, photos/s over the whole run, the time to
the first result (Ray: actor start-up and model load included) and photos/s after it.

    .venv/bin/python benchmarks/ray_inspect.py --n 8 --workers 1,2
    .venv/bin/python benchmarks/ray_inspect.py --model runs/crack-cls-s4-96/model.onnx

Without ``--model`` it uses the bundled ``crack-seg`` when installed, else the per-pixel
darkness segmenter of tests/onnx_models.py (needs the ``onnx`` package): its inference
costs almost nothing, so the figures are then the pipeline's own cost (decode, tiling,
blending, measurement, mask/overlay/JSON files).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, n: int, height: int, width: int) -> None:
    """The walls, written by a child process (its memory and imports are not the benchmark's)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from crackscan.data.synth import synth_wall\n"
        "from crackscan.imageio import write_image\n"
        "folder, n, h, w = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])\n"
        "for i in range(n):\n"
        "    image, _, _ = synth_wall(i, h, w, 3)\n"
        "    write_image(folder / f'wall_{i:03d}.jpg', image, quality=92)\n"
    )
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", code, str(folder), str(n), str(height), str(width)], check=True)


def default_model(work: Path) -> str:
    from crackscan.analysis.inspect import InspectionError, default_model

    try:
        return str(default_model())
    except InspectionError:
        sys.path.insert(0, str(ROOT / "tests"))
        from onnx_models import segmentation_model

        return str(segmentation_model(work / "darkness.onnx", input_size=512))


class Clock:
    """Progress callback that notes when the first and the last photo finished."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.last = self.start

    def __call__(self, done: int, total: int) -> None:
        if done > 0:
            now = time.perf_counter()
            self.first = self.first if self.first is not None else now
            self.last = now

    def figures(self, n: int) -> dict[str, float]:
        wall = self.last - self.start
        first = (self.first or self.last) - self.start
        later = self.first is not None and self.last > self.first
        after = (n - 1) / (self.last - self.first) if later else float("nan")  # type: ignore[operator]
        return {"seconds": wall, "photos_per_s": n / wall, "first_result_s": first, "photos_per_s_after_first": after}


def rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "summary.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def same_rows(a: list[dict[str, str]], b: list[dict[str, str]]) -> bool:
    def norm(r: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in r.items():
            try:
                out[k] = round(float(v), 6)
            except ValueError:
                out[k] = v
        return out

    return [norm(r) for r in a] == [norm(r) for r in b]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="segmentation or classification model (default: crack-seg or darkness model)")
    parser.add_argument("--n", type=int, default=8, help="synthetic photos")
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--workers", default="1,2", help="Ray worker counts, comma-separated")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    counts = [int(c) for c in args.workers.split(",") if c]

    import ray

    from crackscan.analysis.inspect import InspectionSettings, inspect_paths
    from crackscan.runtime.predictor import physical_cores
    from crackscan.scale.ray_engine import inspect_paths_ray

    with tempfile.TemporaryDirectory(prefix="crackscan-ray-bench-") as tmp:
        work = Path(tmp)
        photos = work / "photos"
        t = time.perf_counter()
        make_photos(photos, args.n, args.height, args.width)
        print(f"{args.n} synthetic photos {args.width}×{args.height}: {time.perf_counter() - t:.1f} s (not timed)")
        model = args.model or default_model(work)
        settings = InspectionSettings()
        figures: dict[str, Any] = {
            "model": model,
            "n": args.n,
            "size": [args.width, args.height],
            "cpus": os.cpu_count(),
            "physical_cores": physical_cores(),
            "runs": {},
        }

        clock = Clock()
        inspect_paths([photos], model=model, settings=settings, out_dir=work / "local", progress=clock)
        figures["runs"]["local"] = clock.figures(args.n)
        reference = rows(work / "local")

        t = time.perf_counter()
        ray.init(num_cpus=max(counts), include_dashboard=False, logging_level=logging.ERROR)
        figures["ray_init_s"] = time.perf_counter() - t
        try:
            for w in counts:
                clock = Clock()
                run = inspect_paths_ray(
                    [photos], model=model, settings=settings, out_dir=work / f"ray{w}", num_workers=w, progress=clock
                )
                figures["runs"][f"ray x{w}"] = clock.figures(args.n) | {
                    "workers": run.workers,
                    "same_rows_as_local": same_rows(rows(work / f"ray{w}"), reference),
                }
        finally:
            ray.shutdown()

    print(f"model: {model}; {figures['cpus']} CPUs; ray.init {figures['ray_init_s']:.1f} s (not in the runs)")
    print(f"{'engine':<10} {'wall s':>8} {'photos/s':>9} {'1st result s':>13} {'photos/s after 1st':>19}  same rows")
    for name, f in figures["runs"].items():
        same = f.get("same_rows_as_local", "")
        print(
            f"{name:<10} {f['seconds']:8.1f} {f['photos_per_s']:9.2f} {f['first_result_s']:13.1f} "
            f"{f['photos_per_s_after_first']:19.2f}  {same}"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
