"""``crackscan data``: check, fix, split, cut into patches, import and synthesise data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from crackscan.cli._common import fail as _fail
from crackscan.cli._common import out
from crackscan.cli._common import write_json as _write_json
from crackscan.cli._progress import progress_bar
from crackscan.data.layouts import LayoutError
from crackscan.data.similar import DEFAULT_SIMILARITY
from crackscan.imageio import DEFAULT_MAX_PIXELS

app = typer.Typer(help="Check, fix, split, cut into patches, import and synthesise data sets.", no_args_is_help=True)

MaxPixels = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", help="Refuse images with more pixels.")
MaskDir = typer.Option(None, "--mask-dir", help="Mask folder name when a set has several.")
Similarity = typer.Option(
    DEFAULT_SIMILARITY,
    "--similarity",
    min=0.0,
    max=1.0,
    help=(
        "Fingerprint similarity from which two files are near duplicates (re-encoded, resized, turned or mirrored "
        "copies); 0 skips."
    ),
)


@app.command("check")
def check(
    root: Path = typer.Argument(..., help="Data set folder (class folders or images/ + masks/)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the full report as JSON."),
    mask_dir: str | None = MaskDir,
    max_pixels: int = MaxPixels,
    similarity: float = Similarity,
) -> None:
    """Report what a data set holds and what is broken. Exit 0 when usable, 1 when not."""
    from crackscan.data.check import check_dataset

    try:
        with progress_bar("checking", transient=True) as advance:
            report = check_dataset(
                root, mask_dir=mask_dir, max_pixels=max_pixels, progress=advance, similarity=similarity or None
            )
    except LayoutError as exc:
        raise _fail(str(exc)) from None
    payload = report.to_dict()
    if json_out is not None:
        _write_json(json_out, payload)
    _print_check(payload)
    if json_out is not None:
        out.print(f"JSON report: {json_out}")
    raise typer.Exit(code=0 if report.usable else 1)


def _print_check(r: dict[str, Any]) -> None:
    summary = Table(title=f"{r['root']}  ({r['layout']})", show_header=False)
    summary.add_column("what")
    summary.add_column("value")
    summary.add_row("images", str(r["n_images"]))
    if r["layout"] == "image_mask_pairs":
        summary.add_row("masks", str(r["n_masks"]))
        summary.add_row("pairs", str(r["n_pairs"]))
        summary.add_row("mask kinds", ", ".join(f"{k}: {v}" for k, v in r["mask_kinds"].items()) or "-")
        frac = r.get("crack_pixel_fraction")
        if frac:
            summary.add_row("crack pixels", f"mean {frac['mean']:.2%} (min {frac['min']:.2%}, max {frac['max']:.2%})")
    for name, count in r["classes"].items():
        summary.add_row(f"class {name}", str(count))
    for name, info in r["splits"].items():
        n = info["n"] if isinstance(info, dict) else info
        summary.add_row(f"split {name}", str(n))
    sizes = sorted(r["image_sizes"].items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{k} ×{v}" for k, v in sizes[:4]) + (" …" if len(sizes) > 4 else "")
    summary.add_row("image sizes", shown or "-")
    out.print(summary)

    def listing(title: str, rows: list[str], style: str) -> None:
        if not rows:
            return
        out.print(f"[{style}]{title} ({len(rows)})[/]")
        for row in rows[:20]:
            # escape: notes like "[conflicting classes: …]" and paths with brackets are
            # data, not rich markup (unescaped, rich swallows them as unknown tags)
            out.print(f"  {escape(row)}")
        if len(rows) > 20:
            out.print(f"  … and {len(rows) - 20} more (see --json)")

    listing("corrupt files", [f"{c['path']}: {c['reason']}" for c in r["corrupt"]], "red")
    listing("images without a mask", r["unmatched_images"], "red")
    listing("masks without an image", r["unmatched_masks"], "red")
    listing(
        "image/mask size mismatches",
        [f"{m['image']} {m['image_size']} vs {m['mask']} {m['mask_size']}" for m in r["size_mismatches"]],
        "red",
    )
    listing(
        "exact duplicates",
        [" = ".join(d["paths"]) + (f"  [{d['note']}]" if d.get("note") else "") for d in r["duplicates"]],
        "yellow",
    )
    listing(
        "near duplicates",
        [
            " ~ ".join(d["paths"])
            + f"  [similarity {d['similarity']:.3f}"
            + (f", {d['orientation']}" if d.get("orientation", "as is") != "as is" else "")
            + f"; {d['note']}]"
            for d in r.get("near_duplicates", [])
        ],
        "yellow",
    )
    listing("warnings", r.get("warnings", []), "yellow")
    if r["usable"]:
        out.print("[green]usable[/]")
    else:
        out.print("[red]needs fixing:[/] " + "; ".join(r["problems"]))
        out.print("Run [bold]crackscan data fix SRC DST[/] for a cleaned copy.")


@app.command("fix")
def fix(
    src: Path = typer.Argument(..., help="Data set to clean (never modified)."),
    dst: Path = typer.Argument(..., help="New folder for the normalised copy."),
    mask_dir: str | None = MaskDir,
    max_pixels: int = MaxPixels,
) -> None:
    """Write a normalised copy: oriented RGB images, 0/255 PNG masks, broken files left out."""
    from crackscan.data.fix import FixError, fix_dataset

    try:
        with progress_bar("fixing") as advance:
            report = fix_dataset(src, dst, mask_dir=mask_dir, max_pixels=max_pixels, progress=advance)
    except (LayoutError, FixError) as exc:
        raise _fail(str(exc)) from None
    out.print(
        f"wrote {report.n_written} samples to {dst}; left out {len(report.left_out)} (listed in {dst / 'REPORT.json'})"
    )


@app.command("patches")
def patches(
    src: Path = typer.Argument(..., help="Image/mask data set to cut (never modified)."),
    dst: Path = typer.Argument(..., help="New folder: DST/<split>/<crack|no_crack>/ patches and PATCHES.json."),
    size: int = typer.Option(227, "--size", help="Patch side in px (Özgenel's: 227)."),
    stride: int | None = typer.Option(None, "--stride", help="Step between patches (default: --size, no overlap)."),
    min_crack: float = typer.Option(
        0.01,
        "--min-crack",
        help="Share of crack pixels from which a patch is 'crack'; patches with fewer (but some) are left out.",
    ),
    split_file: Path | None = typer.Option(
        None, "--split", help="Split file for the photos (default: the layout's, else a new stratified split)."
    ),
    val: float = typer.Option(0.15, "--val", min=0.0, max=0.9, help="Validation fraction of photos (no --split)."),
    test: float = typer.Option(0.15, "--test", min=0.0, max=0.9, help="Test fraction of photos (no --split)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the photos' split."),
    mask_dir: str | None = MaskDir,
    max_pixels: int = MaxPixels,
) -> None:
    """Cut image/mask pairs into crack / no_crack patches for `train classify`; photos are split before cutting."""
    from crackscan.data.fix import FixError
    from crackscan.data.patches import PatchError, cut_patches
    from crackscan.data.split import SplitError

    try:
        summary = cut_patches(
            src, dst, size=size, stride=stride, min_crack=min_crack, split=split_file, val=val, test=test,
            seed=seed, mask_dir=mask_dir, max_pixels=max_pixels,
        )  # fmt: skip
    except (LayoutError, FixError, PatchError, SplitError) as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"{escape(str(dst))} ({summary.size}-px patches, split: {escape(summary.split)})")
    for column in ("split", "photos", "crack", "no_crack"):
        table.add_column(column)
    for part, by_class in summary.counts.items():
        table.add_row(
            part, str(summary.photos.get(part, 0)), str(by_class.get("crack", 0)), str(by_class.get("no_crack", 0))
        )
    out.print(table)
    out.print(
        f"left out: {summary.ambiguous} patches with under {summary.min_crack:.0%} crack pixels, "
        f"{len(summary.left_out)} photos (reasons in {escape(str(dst / 'PATCHES.json'))})"
    )


@app.command("split")
def split(
    root: Path = typer.Argument(..., help="Data set folder."),
    out_file: Path = typer.Option(..., "--out", help="Split file to write (JSON)."),
    val: float = typer.Option(0.15, "--val", min=0.0, max=0.9, help="Validation fraction."),
    test: float = typer.Option(0.15, "--test", min=0.0, max=0.9, help="Test fraction."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the split is deterministic)."),
    mask_dir: str | None = MaskDir,
    similarity: float = Similarity,
) -> None:
    """Deterministic, stratified train/val/test split that keeps exact and near duplicates together."""
    from crackscan.data.split import SplitError, make_split, write_split

    if val + test >= 1.0:
        raise _fail("--val + --test must leave something to train on (sum < 1)", code=2)
    try:
        with progress_bar("splitting", transient=True) as advance:
            plan = make_split(
                root, val=val, test=test, seed=seed, mask_dir=mask_dir, similarity=similarity or None, progress=advance
            )
    except (LayoutError, SplitError) as exc:
        raise _fail(str(exc)) from None
    write_split(plan, out_file)
    table = Table(title=f"split of {root} (seed {seed}, stratified by {plan.stratify})")
    table.add_column("split")
    table.add_column("n", justify="right")
    table.add_column("per stratum")
    for name, keys in plan.splits.items():
        per = plan.strata_counts.get(name, {})
        table.add_row(name, str(len(keys)), ", ".join(f"{k}: {v}" for k, v in sorted(per.items())))
    out.print(table)
    if plan.kept_official:
        out.print("kept the official split found in the layout")
    out.print(f"split file: {out_file}")


@app.command("import")
def import_annotations_cmd(
    annotations: Path = typer.Argument(..., help="VIA/COCO JSON, LabelMe JSON or folder, CVAT XML."),
    images: Path = typer.Option(..., "--images", help="Folder with the annotated images."),
    dst: Path = typer.Option(..., "--out", help="Output folder (images/ + masks/ + classes.json)."),
    fmt: str = typer.Option(..., "--from", help="via | coco | labelme | cvat"),
    line_width: int = typer.Option(3, "--line-width", min=1, help="Width in px for polylines."),
    classes: str | None = typer.Option(
        None, "--classes", help="Comma-separated class names in index order (default: as found)."
    ),
) -> None:
    """Rasterise polygon/polyline annotations into the image/mask layout."""
    from crackscan.data.annotations import AnnotationError, import_annotations

    class_list = [c.strip() for c in classes.split(",")] if classes else None
    try:
        report = import_annotations(annotations, images, dst, fmt=fmt, line_width=line_width, classes=class_list)
    except (AnnotationError, LayoutError) as exc:
        raise _fail(str(exc)) from None
    out.print(
        f"wrote {report.n_written} image/mask pairs to {dst} (classes: {', '.join(report.classes)}); "
        f"{len(report.problems)} problems"
    )
    for problem in report.problems[:20]:
        out.print(f"  [yellow]{problem}[/]")
    raise typer.Exit(code=0 if report.n_written else 1)


@app.command("synth")
def synth(
    dst: Path = typer.Argument(..., help="Output folder."),
    task: str = typer.Option("segment", "--task", help="classify | segment"),
    n: int = typer.Option(20, "--n", min=1, help="Number of images."),
    size: int = typer.Option(512, "--size", min=32, help="Image side in px."),
    seed: int = typer.Option(0, "--seed", help="Random seed (output is deterministic)."),
) -> None:
    """Generate concrete/asphalt-like surfaces with cracks of known geometry."""
    from crackscan.data.synth import SynthError, generate_dataset

    if task not in ("classify", "segment"):
        raise _fail("--task must be classify or segment", code=2)
    try:
        with progress_bar("synthesising") as advance:
            summary = generate_dataset(dst, task=task, n=n, size=size, seed=seed, progress=advance)
    except SynthError as exc:
        raise _fail(str(exc)) from None
    out.print(f"wrote {summary.n_images} images to {dst} (truth: {summary.truth_path})")
