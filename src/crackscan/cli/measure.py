"""``crackscan measure``: crack length, width and severity from masks."""

from __future__ import annotations

import glob
import math
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from crackscan.analysis.measure import (
    DEFAULT_JOIN_GAP_PX,
    DEFAULT_MIN_AREA_PX,
    ImageMeasurement,
    MeasureError,
    measure_file,
    write_csv,
    write_json,
)
from crackscan.analysis.severity import SeverityBands, SeverityError
from crackscan.cli._common import err, out
from crackscan.cli._common import fail as _fail
from crackscan.cli._progress import progress_bar
from crackscan.imageio import DEFAULT_MAX_PIXELS, ImageReadError, is_image_file

OUTPUT_TYPES = (".csv", ".json")
_TABLE_ROWS = 50  # longer runs: see --out for everything


def expand_inputs(specs: list[str]) -> tuple[list[Path], list[dict[str, str]]]:
    """Files to measure from files, folders (recursive, image extensions only) and globs.

    Returns ``(files, problems)``; ``problems`` lists inputs that match nothing, as
    ``{"image": spec, "reason": ...}``. Order is kept; duplicates are measured once.
    """
    files: list[Path] = []
    problems: list[dict[str, str]] = []

    def add_dir(folder: Path) -> None:
        files.extend(sorted(f for f in folder.rglob("*") if f.is_file() and is_image_file(f)))

    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            add_dir(path)
        elif path.exists():
            files.append(path)
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                problems.append({"image": spec, "reason": "no file matches this pattern"})
            for match in matches:
                p = Path(match)
                if p.is_dir():
                    add_dir(p)
                elif is_image_file(p):
                    files.append(p)
        else:
            problems.append({"image": spec, "reason": "file not found"})
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems


def _bands(bands: str | None, bands_px: str | None) -> SeverityBands:
    if bands and bands_px:
        raise _fail("give --bands (mm) or --bands-px, not both", code=2)
    try:
        if bands_px:
            return SeverityBands.parse(bands_px, unit="px")
        if bands:
            return SeverityBands.parse(bands, unit="mm")
    except SeverityError as exc:
        raise _fail(str(exc), code=2) from None
    return SeverityBands()


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_table(results: list[ImageMeasurement], scaled: bool) -> None:
    table = Table(title="crack measurements")
    table.add_column("image", overflow="fold", min_width=16)  # paths are long: fold, never cut
    for name in ("cracks", "length px", "max w px", "mean w px"):
        table.add_column(name, justify="right")
    if scaled:
        for name in ("length mm", "max w mm"):
            table.add_column(name, justify="right")
    table.add_column("severity", no_wrap=True)
    for m in results[:_TABLE_ROWS]:
        row = [escape(m.image), str(m.n_cracks), _fmt(m.total_length_px), _fmt(m.max_width_px), _fmt(m.mean_width_px)]
        if scaled:
            row += [_fmt(m.length_mm), _fmt(m.max_width_mm, 3)]
        table.add_row(*row, m.severity)
    out.print(table)
    if len(results) > _TABLE_ROWS:
        out.print(f"… and {len(results) - _TABLE_ROWS} more (write them all with --out FILE.csv)")


def measure(
    masks: list[str] = typer.Argument(..., help="Mask files, folders (searched recursively) or glob patterns."),
    mm_per_px: float | None = typer.Option(
        None, "--mm-per-px", help="Scale in mm per px (> 0): adds mm values and mm severity bands."
    ),
    out_file: Path | None = typer.Option(
        None, "--out", help="Write FILE.csv (one row per image) or FILE.json (per image and per crack)."
    ),
    min_area: int = typer.Option(
        DEFAULT_MIN_AREA_PX, "--min-area", min=0, help="Drop crack instances with fewer mask pixels."
    ),
    join_gap: int = typer.Option(
        DEFAULT_JOIN_GAP_PX, "--join-gap", min=0, help="Pieces at most this many px apart are one crack (0: off)."
    ),
    bands: str | None = typer.Option(
        None, "--bands", help="Severity band edges in mm (default 0.1,0.3,1.0: hairline/fine/medium/wide)."
    ),
    bands_px: str | None = typer.Option(
        None, "--bands-px", help="Severity band edges in px instead, for masks without a scale."
    ),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", help="Refuse masks with more pixels."),
) -> None:
    """Measure crack length, width profile and severity from masks.

    Per crack: centreline length, max / mean / p95 full width, orientation and bounding box.
    Per image: number of cracks, total length, max width and severity (by max width).
    Without --mm-per-px the severity is "unknown" (unless --bands-px is given); "none" means no crack.
    Unreadable files are listed and skipped. Exit 0 when a mask was measured, 1 when none could be, 2 for bad options.
    """
    if mm_per_px is not None and not (math.isfinite(mm_per_px) and mm_per_px > 0):
        raise _fail(f"--mm-per-px must be a positive number of mm per pixel, got {mm_per_px}", code=2)
    if out_file is not None and out_file.suffix.lower() not in OUTPUT_TYPES:
        raise _fail(f"--out must end in .csv or .json, got {out_file.name!r}", code=2)
    severity_bands = _bands(bands, bands_px)

    files, skipped = expand_inputs(masks)
    results: list[ImageMeasurement] = []
    with progress_bar("measuring", transient=True) as advance:
        for i, path in enumerate(files):
            try:
                results.append(
                    measure_file(
                        path,
                        max_pixels=max_pixels,
                        mm_per_px=mm_per_px,
                        min_area_px=min_area,
                        join_gap_px=join_gap,
                        bands=severity_bands,
                    )
                )
            except ImageReadError as exc:
                skipped.append({"image": str(path), "reason": exc.reason})
            except MeasureError as exc:
                skipped.append({"image": str(path), "reason": str(exc)})
            advance(i + 1, len(files))

    if results:
        _print_table(results, scaled=mm_per_px is not None)
    if skipped:
        err.print(f"[yellow]skipped {len(skipped)} input(s):[/]")
        for s in skipped:
            err.print(f"  {escape(s['image'])}: {escape(s['reason'])}")
    if out_file is not None:
        try:
            if out_file.suffix.lower() == ".csv":
                write_csv(results, out_file)
            else:
                settings = {"mm_per_px": mm_per_px, "min_area_px": min_area, "join_gap_px": join_gap}
                write_json(results, out_file, bands=severity_bands, skipped=skipped, settings=settings)
        except OSError as exc:
            raise _fail(f"cannot write {out_file}: {exc.strerror or exc}") from None
        out.print(f"wrote {len(results)} image(s) to {escape(str(out_file))}")
    if not results:
        raise _fail("no mask could be measured")
