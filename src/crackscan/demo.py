"""``make demo``: crackscan's main job on photos it makes itself, with the bundled models.

1. synthesise crack patches and masked images, and ``data check`` them;
2. ``inspect`` large synthetic wall photos (4000×3000) with the bundled ``crack-seg``
   model: tiled crack maps, crack length and width in mm, severity, and a
   self-contained ``report.html`` — and compare the measured cracks with their known
   geometry;
3. the bundled ``crack-cls`` classifier's patch heatmap of the same photos;
4. with ``--train``: the training pipeline on the synthetic patches (split → short
   transfer-learning run → ONNX evaluation on the held-out split).

Each step is the same library call the CLI makes; the last line says where the report is.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

MARKER = ".crackscan-demo"
console = Console()


def _prepare(out: Path) -> None:
    """Reuse ``out`` only if an earlier demo made it: never delete a user's folder."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise SystemExit(f"{out} exists and was not made by the demo; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `python -m crackscan.demo`; safe to delete\n")


def _step(title: str) -> float:
    console.rule(f"[bold]{title}")
    return time.perf_counter()


def run(
    out: Path,
    *,
    train: bool = False,
    epochs: int = 5,
    n_patches: int = 400,
    n_photos: int = 2,
    photo_size: tuple[int, int] = (3000, 4000),
    mm_per_px: float = 0.1,
    seed: int = 0,
) -> dict[str, object]:
    """Run the demo into ``out``; ``train`` adds the training pipeline (also used when no bundled model exists)."""
    from crackscan.data.check import check_dataset
    from crackscan.data.synth import generate_dataset
    from crackscan.runtime.predictor import ModelLoadError, resolve_model_path

    _prepare(out)
    summary: dict[str, object] = {}

    t = _step("1. synthesise data and check it (crackscan data synth, data check)")
    generate_dataset(out / "patches", task="classify", n=n_patches, size=128, seed=seed)
    generate_dataset(out / "masks", task="segment", n=12, size=512, seed=seed + 1)
    for root in (out / "patches", out / "masks"):
        report = check_dataset(root)
        r = report.to_dict()
        console.print(
            f"{root.name}: layout {r['layout']}, {r['n_images']} images, classes {r['classes'] or '-'}, "
            f"mask kinds {r['mask_kinds'] or '-'} → {'usable' if report.usable else 'NEEDS FIXING'}"
        )
        summary[f"check_{root.name}_usable"] = report.usable
    console.print(f"({time.perf_counter() - t:.1f} s)")

    _step("2. measure crack length and width from masks (crackscan measure)")
    summary["measurement"] = _measure(out)

    try:
        seg_model = resolve_model_path("crack-seg")
    except ModelLoadError:
        console.print("[yellow]no bundled crack-seg model in this build: running the training pipeline instead[/]")
        seg_model, train = None, True
    if seg_model is not None:
        summary["inspection"] = _inspect(out, seg_model, n_photos, photo_size, mm_per_px, seed)
    if train:
        summary["training"] = _train(out, epochs, seed)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _inspect(
    out: Path, seg_model: Path, n_photos: int, size: tuple[int, int], mm_per_px: float, seed: int
) -> dict[str, object]:
    from crackscan.analysis.inspect import InspectionSettings, inspect_paths
    from crackscan.analysis.samples import make_demo_walls
    from crackscan.runtime.predictor import ModelLoadError, resolve_model_path

    t = _step(f"3. inspect {n_photos} wall photos of {size[1]}×{size[0]} px with crack-seg (crackscan inspect)")
    photos = make_demo_walls(out / "photos", n=n_photos, size=size, seed=seed)
    truth = json.loads((out / "photos" / "walls.json").read_text())["walls"]
    settings = InspectionSettings(mm_per_px=mm_per_px)
    results = inspect_paths(photos, model=seg_model, settings=settings, out_dir=out / "inspection")
    table = Table(title=f"crack-seg on synthetic walls ({mm_per_px} mm/px) vs the cracks drawn")
    for col in ("photo", "cracks", "length mm", "true length mm", "max width mm", "true max width mm", "severity"):
        table.add_column(col)
    rows = []
    for r in results:
        row = r.to_row()
        name = Path(str(row["image"])).name
        drawn = truth.get(name, [])
        true_len = sum(c["length_px"] for c in drawn) * mm_per_px
        true_w = max((c["max_width_px"] for c in drawn), default=0.0) * mm_per_px
        table.add_row(
            name,
            str(row.get("cracks")),
            _num(row.get("length_mm")),
            f"{true_len:.0f}",
            _num(row.get("max_width_mm")),
            f"{true_w:.1f}",
            str(row.get("severity")),
        )
        rows.append(row)
    console.print(table)
    console.print(f"report: [bold]{out / 'inspection' / 'report.html'}[/] ({time.perf_counter() - t:.0f} s)")
    figures: dict[str, object] = {"report": str(out / "inspection" / "report.html"), "rows": rows}
    try:
        cls_model = resolve_model_path("crack-cls")
    except ModelLoadError:
        return figures
    t = _step("4. the crack-cls classifier's patch heatmap of the same photos (crackscan inspect --model crack-cls)")
    heat = inspect_paths(photos, model=cls_model, settings=InspectionSettings(), out_dir=out / "heatmap")
    for r in heat:
        row = r.to_row()
        console.print(
            f"{Path(str(row['image'])).name}: max patch crack probability {_num(row.get('crack_probability'))}"
        )
    console.print(f"heatmap report: {out / 'heatmap' / 'report.html'} ({time.perf_counter() - t:.0f} s)")
    figures["heatmap_report"] = str(out / "heatmap" / "report.html")
    return figures


def _num(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value if value not in (None, "") else "-")


def _train(out: Path, epochs: int, seed: int) -> dict[str, object]:
    from crackscan.data.split import make_split, write_split
    from crackscan.training.classify import ClassifyConfig, train_classifier

    _step("5. split without leakage, short transfer learning, ONNX evaluation (data split, train, evaluate)")
    plan = make_split(out / "patches", val=0.2, test=0.2, seed=seed)
    write_split(plan, out / "patches_split.json")
    console.print(f"split: {plan.counts} → {out / 'patches_split.json'}")
    cfg = ClassifyConfig(
        data=str(out / "patches"),
        out=str(out / "run"),
        split=str(out / "patches_split.json"),
        img_size=64,
        epochs=epochs,
        freeze_epochs=1,
        batch_size=32,
        lr=3e-3,
        seed=seed,
        accelerator="cpu",
        devices="1",
        command="python -m crackscan.demo --train",
    )
    result = train_classifier(cfg)
    console.print(f"weights: {result.weights_message}; trained in {result.train_seconds:.0f} s")
    console.print(f"model file: {result.model_file}")
    return {"train_metrics": result.metrics, "evaluation": _evaluate(result.model_file, out)}


def _evaluate(model_file: Path, out: Path) -> dict[str, object]:
    from crackscan.evaluation import evaluate_model, open_model
    from crackscan.evaluation.plots import PlotsUnavailable, write_plots

    ev = evaluate_model(open_model(model_file), out / "patches", split="test", split_file=out / "patches_split.json")
    metrics = ev.to_dict()
    try:
        write_plots(ev, out / "evaluation")
    except PlotsUnavailable:
        console.print("matplotlib missing: no plots")
    (out / "evaluation").mkdir(exist_ok=True)
    (out / "evaluation" / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    keys = ("n", "accuracy", "precision", "recall", "f1", "roc_auc")
    table = Table(title="held-out test split (ONNX Runtime)")
    for key in keys:
        table.add_column(key)
    table.add_row(*(f"{metrics[k]:.4g}" if isinstance(metrics.get(k), float) else str(metrics.get(k)) for k in keys))
    console.print(table)
    console.print(f"metrics and plots: {out / 'evaluation'}")
    return {k: metrics.get(k) for k in keys}


def _measure(out: Path) -> dict[str, object]:
    try:
        from crackscan.analysis.measure import measure_file, write_csv
    except ImportError:
        console.print("[yellow]measurement module not available in this build[/]")
        return {}

    truth = json.loads((out / "masks" / "truth.json").read_text())
    rows = []
    table = Table(title="measured vs synthetic truth (px)")
    for col in ("image", "cracks", "length", "true length", "max width", "true max width"):
        table.add_column(col)
    for mask_path in sorted((out / "masks" / "masks").glob("*.png")):
        m = measure_file(mask_path)
        rows.append(m)
        row = m.to_row()
        t = truth[mask_path.stem]
        table.add_row(
            mask_path.stem,
            str(row["cracks"]),
            f"{row['length_px']:.1f}",
            f"{t['length_px']:.1f}",
            f"{row['max_width_px']:.1f}",
            f"{t['max_width_px']:.1f}",
        )
    console.print(table)
    write_csv(rows, out / "measurements.csv")
    console.print(f"measurements: {out / 'measurements.csv'}")
    return {"images": len(rows), "csv": str(out / "measurements.csv")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crackscan.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--train", action="store_true", help="also run the training pipeline on synthetic patches")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--photos", type=int, default=2, help="number of 4000×3000 wall photos to inspect")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    summary = run(args.out, train=args.train, epochs=args.epochs, n_photos=args.photos)
    console.rule("[bold green]done")
    report = summary.get("inspection", {}).get("report") if isinstance(summary.get("inspection"), dict) else None
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s; results in [bold]{args.out.resolve()}[/]")
    if report:
        console.print(f"open the inspection report: [bold]{Path(report).resolve()}[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
