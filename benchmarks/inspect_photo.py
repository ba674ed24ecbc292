"""End-to-end time and peak memory of ``crackscan inspect`` on one synthetic phone-size photo.

Makes a 4032×3024 synthetic wall (``crackscan.data.synth.synth_wall``, 3 cracks; made in a
child process so its own memory does not count), then runs the inspection pipeline the
CLI runs — decode → tiles → model → blend → threshold → measure → mask/overlay/JSON →
summary.csv/report.html — and prints the time of each stage and the process's peak
resident memory (``resource.getrusage(...).ru_maxrss``) before and after.

    .venv/bin/python benchmarks/inspect_photo.py --model src/crackscan/assets/models/crack-seg.onnx
    .venv/bin/python benchmarks/inspect_photo.py --toy-model      # the pipeline alone (darkness model)
    .venv/bin/python benchmarks/inspect_photo.py --model crack-seg --coarse-gate 0     # every tile at full size
    .venv/bin/python benchmarks/inspect_photo.py --model crack-seg --gate crack-cls    # classifier gate
    .venv/bin/python benchmarks/inspect_photo.py --model crack-seg --repeat 3          # cold + warm runs

``--toy-model`` builds the per-pixel darkness segmenter of tests/onnx_models.py (needs
the ``onnx`` package): its inference costs almost nothing, so the figures are the
pipeline's own overhead (tiling, blending, measurement, outputs).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_photo(path: Path, height: int, width: int, seed: int) -> None:
    """Write the synthetic wall in a child process (the generator's memory is not ours)."""
    code = (
        "import sys\n"
        "from crackscan.data.synth import synth_wall\n"
        "from crackscan.imageio import write_image\n"
        f"img, _, _ = synth_wall({seed}, {height}, {width}, 3)\n"
        f"write_image(sys.argv[1], img, quality=92)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def toy_model(path: Path, tile: int) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from onnx_models import segmentation_model

    return segmentation_model(path, input_size=tile)


def inspect_once(predictor, photo: Path, settings, out: Path) -> tuple[dict[str, float], object]:
    """One photo through every stage the CLI runs; seconds per stage and the result."""
    from crackscan.analysis.inspect import inspect_image, model_info
    from crackscan.analysis.report import write_image_outputs, write_report
    from crackscan.imageio import read_image

    times: dict[str, float] = {}
    start = t = time.perf_counter()
    image = read_image(photo, max_pixels=settings.max_pixels)
    times["decode"] = time.perf_counter() - t

    last_tile = [0.0]

    def on_tiles(done: int, total: int) -> None:
        last_tile[0] = time.perf_counter()

    t = time.perf_counter()
    result = inspect_image(predictor, image, settings=settings, name="photo", progress=on_tiles)
    result.source = str(photo)
    end = time.perf_counter()
    if predictor.metadata.task == "segment":
        times["tiles → model → blend"] = last_tile[0] - t
        times["threshold + measure"] = end - last_tile[0]
    else:
        times["patches → model"] = end - t
    t = time.perf_counter()
    write_image_outputs(result, out, model=model_info(predictor), settings=settings)
    result.release()
    del image
    times["mask + overlay + JSON"] = time.perf_counter() - t
    t = time.perf_counter()
    write_report([result], out, model=model_info(predictor), settings=settings)
    times["summary.csv + report.html"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - start
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", help="segmentation or classification model (.onnx or bundled name)")
    group.add_argument("--toy-model", action="store_true", help="use the per-pixel darkness model (pipeline cost)")
    parser.add_argument("--width", type=int, default=4032)
    parser.add_argument("--height", type=int, default=3024)
    parser.add_argument(
        "--tile", type=int, default=None, help="tile side px (default: the model's tile size, as crackscan inspect)"
    )
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=None, help="tiles per model call (default: inspect's)")
    parser.add_argument("--tta", action="store_true")
    parser.add_argument(
        "--coarse-gate",
        type=float,
        default=None,
        help="coarse-to-fine screening, as crackscan inspect --coarse-gate (default: inspect's; 0: off)",
    )
    parser.add_argument("--gate", default=None, help="classifier gate model, as crackscan inspect --gate")
    parser.add_argument(
        "--gate-threshold", type=float, default=None, help="classifier gate threshold (default: crackscan inspect's)"
    )
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat", type=int, default=1, help="inspect the photo N times: run 1 includes ONNX Runtime's warm-up"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crackscan-bench-") as tmp:
        work = Path(tmp)
        photo = work / "photo.jpg"
        t = time.perf_counter()
        make_photo(photo, args.height, args.width, args.seed)
        print(f"synthetic photo {args.width}×{args.height}: {time.perf_counter() - t:.1f} s (child process)")

        from crackscan.analysis.inspect import InspectionSettings, open_inspection_model, prepare_output_dir
        from crackscan.runtime.predictor import OnnxPredictor
        from crackscan.runtime.tiling import count_tiles

        model = str(toy_model(work / "toy.onnx", args.tile or 512)) if args.toy_model else args.model
        predictor = open_inspection_model(OnnxPredictor(model, threads=args.threads))
        gate_kwargs: dict[str, object] = {}
        if args.gate is not None:
            gate_kwargs["gate"] = args.gate
            if args.gate_threshold is not None:
                gate_kwargs["gate_threshold"] = args.gate_threshold
        settings = InspectionSettings(
            tile=args.tile,
            overlap=args.overlap,
            **({} if args.batch_size is None else {"batch_size": args.batch_size}),
            tta=args.tta,
            **({} if args.coarse_gate is None else {"coarse_gate": args.coarse_gate or None}),
            **gate_kwargs,
        ).validate()
        rss_before = _rss_mb()
        runs: list[dict[str, float]] = []
        for run in range(args.repeat):
            times, result = inspect_once(predictor, photo, settings, prepare_output_dir(work / f"report-{run}"))
            runs.append(times)
        rss_after = _rss_mb()

    h, w = args.height, args.width
    print(f"model: {predictor.path.name} ({predictor.metadata.arch}, {predictor.metadata.task})")
    if predictor.metadata.task == "segment":
        tile = args.tile or predictor.metadata.tile_size
        n_tiles = count_tiles(predictor, h, w, tile=tile, overlap=args.overlap)
        print(
            f"tiles: {n_tiles} of {tile} px, overlap {args.overlap}, batch {settings.batch_size}, tta {args.tta}, "
            f"coarse gate {settings.coarse_gate}, gate {args.gate} ({settings.gate_threshold if args.gate else '-'})"
        )
        if result.tiles:
            print(f"tiles segmented: {result.tiles_run} of {result.tiles}")
    header = "  ".join(f"{'run ' + str(i + 1) + (' (cold)' if i == 0 else ''):>12}" for i in range(len(runs)))
    print(f"  {'stage':<28} {header}")
    for stage in runs[0]:
        cells = "  ".join(f"{r[stage]:10.2f} s" for r in runs)
        print(f"  {stage:<28} {cells}")
    if len(runs) > 1:
        warm = [r["total"] for r in runs[1:]]
        print(f"  warm runs: mean {sum(warm) / len(warm):.2f} s, best {min(warm):.2f} s (model sessions warmed up)")
    m = result.measurement
    if m is not None:
        print(f"cracks found: {m.n_cracks}, length {m.total_length_px:.0f} px, max width {m.max_width_px:.1f} px")
    print(f"peak RSS: {rss_after:.0f} MB (after model load, before the photo: {rss_before:.0f} MB; ")
    print(f"          growth {rss_after - rss_before:.0f} MB for a {h * w / 1e6:.1f}-megapixel photo)")


if __name__ == "__main__":
    main()
