"""``crackscan bench``: throughput and latency of torch eager, ONNX Runtime fp32 and INT8, and the seeds' baseline."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from crackscan.cli._common import err, out
from crackscan.cli._common import fail as _fail

_ROWS = (
    ("seeds_baseline", "seeds: ResNet18 224 eager b32 (PIL)"),
    ("torch_eager", "crackscan: torch eager"),
    ("onnx_fp32", "crackscan: ONNX Runtime fp32"),
    ("onnx_int8", "crackscan: ONNX Runtime int8"),
)


def bench(
    task: str = typer.Option("classify", "--task", help="classify | segment"),
    model: str | None = typer.Option(
        None,
        "--model",
        help=(
            "Run folder, model.pt, .onnx or bundled name; segmenters joined by '+' are merged into one graph "
            "and timed as that (default: an untrained default architecture, speed only)."
        ),
    ),
    images: Path | None = typer.Option(None, "--images", help="Folder of images (default: synthetic ones made now)."),
    n: int | None = typer.Option(None, "--n", min=1, help="Images per backend (default 1000 classify, 20 segment)."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Classification batch size for crackscan."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also run the seeds' ResNet18 path."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON here."),
) -> None:
    """Measure images/s and p50/p95 latency of each backend against the seeds' baseline."""
    from crackscan.bench import BenchError, run_bench
    from crackscan.runtime.predictor import ModelLoadError

    count = n or (1000 if task == "classify" else 20)
    try:
        with err.status("benchmarking", spinner="dots") as status:
            report = run_bench(
                task=task,
                model=model,
                images=images,
                n=count,
                batch_size=batch_size,
                baseline=baseline,
                progress=lambda message: status.update(message),
            )
    except (BenchError, ModelLoadError) as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"{task}: {escape(str(report['model']))} · {report['input_size']} px · {report['machine']}")
    table.add_column("path")
    table.add_column("images/s", justify="right")
    table.add_column("p50 ms/batch", justify="right")
    table.add_column("p95 ms/batch", justify="right")
    table.add_column("p50 ms/image", justify="right")
    table.add_column("p95 ms/image", justify="right")
    for key, label in _ROWS:
        fig = report["results"].get(key)
        if not fig:
            continue
        table.add_row(
            label,
            f"{fig['images_per_s']:.1f}",
            f"{fig['batch_latency_p50_ms']:.1f}",
            f"{fig['batch_latency_p95_ms']:.1f}",
            f"{fig['latency_1_p50_ms']:.2f}" if "latency_1_p50_ms" in fig else "",
            f"{fig['latency_1_p95_ms']:.2f}" if "latency_1_p95_ms" in fig else "",
        )
    out.print(table)
    for name, value in report["ratios"].items():
        if value is not None:
            out.print(f"  {name.replace('_vs_', ' vs ').replace('_', ' ')}: {value:.2f}×")
    for note in report["notes"]:
        out.print(f"  [dim]note: {escape(note)}[/]")
    out.print("  [dim]figures on a shared machine are noisy; compare runs taken together[/]")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")
