"""``crackscan inspect``: tiled full-resolution crack inspection of photos, with reports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from crackscan.analysis.inspect import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_COARSE_GATE,
    INSPECT_JOIN_GAP_PX,
    INSPECT_MIN_AREA_PX,
)
from crackscan.cli._common import err, out
from crackscan.cli._common import fail as _fail
from crackscan.imageio import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from collections.abc import Callable

    from crackscan.analysis.inspect import InspectionResult, InspectionSettings
    from crackscan.runtime.predictor import OnnxPredictor

SHOWN = 20  # result rows printed; report.html and summary.csv hold all of them
LISTED = 20  # failures printed
ENGINES = ("local", "ray")


def inspect(
    paths: list[str] = typer.Argument(
        ..., help="Photos: files, folders (searched recursively), glob patterns or @FILE (a list, one path a line)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model file (.onnx), training run folder or bundled name (default: crack-seg)."
    ),
    out_dir: Path = typer.Option(Path("crackscan-report"), "--out", help="Folder for masks, overlays and the report."),
    mm_per_px: float | None = typer.Option(
        None, "--mm-per-px", help="Scale in mm per pixel: lengths and widths in mm, severity bands."
    ),
    tile: int | None = typer.Option(
        None, "--tile", help="Tile side in px (default: the model's tile size, at least 512)."
    ),
    overlap: float = typer.Option(0.25, "--overlap", help="Fraction of a tile shared with its neighbours, [0, 0.95)."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Crack probability threshold (default: the model's own)."
    ),
    tta: bool = typer.Option(False, "--tta", help="Average each tile over horizontal and vertical flips (3× slower)."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", help="Tiles per model call."),
    coarse_gate: float | None = typer.Option(
        None,
        "--coarse-gate",
        help="Coarse-to-fine: screen a half-size copy first and run full-size tiles only where its crack "
        f"probability reaches this value (default {DEFAULT_COARSE_GATE}; 0: every tile at full size).",
    ),
    gate: str | None = typer.Option(
        None,
        "--gate",
        help="Crack classifier (e.g. crack-cls) run over 227-px patches first; the segmenter then runs only "
        "on tiles next to a patch it calls likely cracked (much faster on mostly intact surfaces).",
    ),
    gate_threshold: float = typer.Option(
        0.1, "--gate-threshold", help="--gate: patch crack probability from which its tiles are segmented."
    ),
    min_area: int = typer.Option(
        INSPECT_MIN_AREA_PX, "--min-area", min=0, help="Drop predicted crack pieces with fewer pixels."
    ),
    join_gap: int = typer.Option(
        INSPECT_JOIN_GAP_PX, "--join-gap", min=0, help="Pieces at most this many px apart are one crack."
    ),
    max_pixels: int = typer.Option(
        DEFAULT_MAX_PIXELS, "--max-pixels", help="Photos with more pixels are refused (listed as failed)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into an --out folder that holds other files."),
    engine: str = typer.Option(
        "local", "--engine", help="local (this process) or ray (Ray Data actors; pip install 'crackscan[ray]')."
    ),
    address: str | None = typer.Option(
        None, "--address", help="Ray only: 'auto' or ray://HOST:10001 joins a cluster (default: a local Ray)."
    ),
    num_workers: int | None = typer.Option(
        None, "--num-workers", help="Ray only: actors, one ONNX Runtime session each (default: one per CPU)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Ray only: keep --out's earlier results and inspect only the photos not done yet."
    ),
) -> None:
    """Find, outline and measure cracks in photos of any size; write masks, overlays, summary.csv and report.html.

    Exit status: 0 when at least one photo was inspected (failures are listed), 1 when none could be, 2 for bad options, a missing model or an output folder that is not free.
    """  # noqa: E501
    from crackscan.analysis.inspect import (
        InspectionError,
        InspectionSettings,
        inspect_paths,
        open_gate_model,
        open_inspection_model,
    )
    from crackscan.runtime.predictor import ModelLoadError
    from crackscan.scale.inputs import PathListError, expand_path_lists

    if engine not in ENGINES:
        raise _fail(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}", code=2)
    if engine != "ray" and (address is not None or num_workers is not None or resume):
        raise _fail("--address, --num-workers and --resume need --engine ray", code=2)
    if engine == "ray":
        from crackscan.scale.ray_engine import RayUnavailableError, import_ray

        try:
            import_ray()  # before the model loads: a missing extra is the first thing to say
        except RayUnavailableError as exc:
            raise _fail(str(exc), code=2) from None
    try:
        paths = expand_path_lists(paths)
    except PathListError as exc:
        raise _fail(str(exc), code=2) from None
    settings = InspectionSettings(
        tile=tile,
        overlap=overlap,
        threshold=threshold,
        tta=tta,
        batch_size=batch_size,
        max_pixels=max_pixels,
        mm_per_px=mm_per_px,
        min_area_px=min_area,
        join_gap_px=join_gap,
        coarse_gate=_coarse_gate(coarse_gate, gate),
        gate=gate,
        gate_threshold=gate_threshold,
    )
    try:
        settings.validate()
        predictor = open_inspection_model(model)
        if gate is not None:
            open_gate_model(gate)
    except InspectionError as exc:
        raise _fail(str(exc), code=2) from None
    except ModelLoadError as exc:
        raise _fail(str(exc), code=2) from None

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        images = bar.add_task("photos", total=None)
        tiles = bar.add_task("tiles", total=None)

        def on_image(done: int, total: int) -> None:
            bar.update(images, completed=done, total=total)

        def on_tiles(name: str, done: int, total: int) -> None:
            bar.update(tiles, completed=done, total=total, description=f"tiles of {escape(name)}")

        try:
            if engine == "ray":
                bar.update(tiles, visible=False)  # tiles are counted inside the Ray actors
                results = _inspect_on_ray(
                    paths, predictor, settings, out_dir, overwrite, resume, address, num_workers, on_image
                )
            else:
                results = inspect_paths(
                    paths,
                    model=predictor,
                    settings=settings,
                    out_dir=out_dir,
                    overwrite=overwrite,
                    progress=on_image,
                    tile_progress=on_tiles,
                )
        except InspectionError as exc:
            raise _fail(str(exc), code=2) from None

    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    if failed:
        err.print(f"[yellow]{len(failed)} path{'s' if len(failed) != 1 else ''} could not be inspected:[/]")
        for r in failed[:LISTED]:
            err.print(f"  {escape(r.source)}: {escape(r.error or '')}", soft_wrap=True)
        if len(failed) > LISTED:
            err.print(f"  … and {len(failed) - LISTED} more (see summary.csv)")
    _print_table(ok, settings)
    n_crack = sum(r.has_crack for r in ok)
    out.print(
        f"{len(ok)} photo{'s' if len(ok) != 1 else ''} inspected with {escape(predictor.path.stem)}: "
        f"{n_crack} with cracks. Report: {escape(str(out_dir / 'report.html'))}",
        soft_wrap=True,
    )
    if not ok:
        raise _fail("no photo could be inspected")


def _coarse_gate(value: float | None, gate: str | None) -> float | None:
    """--coarse-gate as settings take it: the default unless --gate replaces it; 0 switches it off."""
    if value is None:
        return None if gate is not None else DEFAULT_COARSE_GATE
    if gate is not None and value != 0:
        raise _fail("use either --gate or --coarse-gate, not both", code=2)
    return None if value == 0 else value


def _inspect_on_ray(
    paths: list[str],
    predictor: OnnxPredictor,
    settings: InspectionSettings,
    out_dir: Path,
    overwrite: bool,
    resume: bool,
    address: str | None,
    num_workers: int | None,
    progress: Callable[[int, int], None],
) -> list[InspectionResult]:
    from crackscan.scale.ray_engine import inspect_paths_ray

    run = inspect_paths_ray(
        paths,
        model=predictor,
        settings=settings,
        out_dir=out_dir,
        overwrite=overwrite,
        resume=resume,
        address=address,
        num_workers=num_workers,
        progress=progress,
    )
    if run.resumed:
        err.print(f"{run.resumed} photo{'s' if run.resumed != 1 else ''} reused from the earlier run in {out_dir}")
    err.print(f"Ray: {run.workers} worker{'s' if run.workers != 1 else ''}")
    return run.results


def _print_table(results: list[InspectionResult], settings: InspectionSettings) -> None:
    from crackscan.analysis.report import sort_results

    if not results:
        return
    classifier = results[0].task == "classify"
    table = Table()
    table.add_column("photo", overflow="fold")
    if classifier:
        table.add_column("crack patches", justify="right")
    else:
        table.add_column("cracks", justify="right")
        table.add_column("length px", justify="right")
        table.add_column("max width px", justify="right")
        if settings.mm_per_px:
            table.add_column("max width mm", justify="right")
    table.add_column("severity")
    table.add_column("p(crack)", justify="right")
    ranked = sort_results(results, settings.bands.names)
    for r in ranked[:SHOWN]:
        m = r.measurement
        if classifier:
            cells = [f"{len(r.patches)}/{r.n_patches}"]
        else:
            cells = [str(m.n_cracks), f"{m.total_length_px:.0f}", f"{m.max_width_px:.1f}"]
            if settings.mm_per_px:
                cells.append(f"{m.max_width_mm:.2f}" if m.max_width_mm is not None else "")
        table.add_row(escape(r.source), *cells, escape(r.severity), f"{r.crack_probability or 0:.3f}")
    out.print(table)
    if len(ranked) > SHOWN:
        out.print(f"… {len(ranked) - SHOWN} more in summary.csv and report.html")
