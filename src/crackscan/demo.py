"""``make demo``: the whole pipeline on data crackscan makes itself.

synth (patches + segmentation masks) → data check → split → a short transfer-learning
run → evaluation on the held-out split → crack measurement of the masks. Each step is
the same library call the CLI makes; the output folder says where everything is.
Later issues replace the short training with the bundled models and a tiled
inspection of large photos.
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


def run(out: Path, *, epochs: int = 5, n_patches: int = 400, seed: int = 0) -> dict[str, object]:
    from crackscan.data.check import check_dataset
    from crackscan.data.split import make_split, write_split
    from crackscan.data.synth import generate_dataset

    _prepare(out)
    summary: dict[str, object] = {}

    t = _step("1. synthesise crack patches and crack masks (crackscan data synth)")
    patches = generate_dataset(out / "patches", task="classify", n=n_patches, size=128, seed=seed)
    masks = generate_dataset(out / "walls", task="segment", n=12, size=512, seed=seed + 1)
    console.print(
        f"{patches.n_images} patches in {out / 'patches'}, {masks.n_images} masked images in {out / 'walls'}"
        f" ({time.perf_counter() - t:.1f} s)"
    )

    _step("2. check the data sets (crackscan data check)")
    for root in (out / "patches", out / "walls"):
        report = check_dataset(root)
        r = report.to_dict()
        console.print(
            f"{root.name}: layout {r['layout']}, {r['n_images']} images, classes {r['classes'] or '-'}, "
            f"mask kinds {r['mask_kinds'] or '-'} → {'usable' if report.usable else 'NEEDS FIXING'}"
        )
        summary[f"check_{root.name}_usable"] = report.usable

    _step("3. split without leakage (crackscan data split)")
    plan = make_split(out / "patches", val=0.2, test=0.2, seed=seed)
    write_split(plan, out / "patches_split.json")
    console.print(f"split: {plan.counts} → {out / 'patches_split.json'}")

    t = _step("4. short transfer-learning run (crackscan train classify)")
    from crackscan.training.classify import ClassifyConfig, train_classifier

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
        command="python -m crackscan.demo",
    )
    result = train_classifier(cfg)
    console.print(f"weights: {result.weights_message}; trained in {result.train_seconds:.0f} s")
    console.print(f"model file: {result.model_file}")
    summary["train_metrics"] = result.metrics

    _step("5. evaluate on the held-out split with ONNX Runtime (crackscan evaluate)")
    evaluation = _evaluate(result.model_file, out)
    summary["evaluation"] = evaluation

    _step("6. measure crack length and width from masks (crackscan measure)")
    summary["measurement"] = _measure(out)

    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


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

    truth = json.loads((out / "walls" / "truth.json").read_text())
    rows = []
    table = Table(title="measured vs synthetic truth (px)")
    for col in ("image", "cracks", "length", "true length", "max width", "true max width"):
        table.add_column(col)
    for mask_path in sorted((out / "walls" / "masks").glob("*.png")):
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
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    run(args.out, epochs=args.epochs)
    console.rule("[bold green]done")
    console.print(
        f"demo finished in {time.perf_counter() - started:.0f} s; results in [bold]{args.out.resolve()}[/] "
        f"(summary.json, run/, evaluation/, measurements.csv)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
