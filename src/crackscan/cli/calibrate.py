"""``crackscan calibrate``: pick a segmenter's crack threshold on labelled images, optionally store it in a copy."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from crackscan.cli._common import err, out
from crackscan.cli._common import fail as _fail
from crackscan.cli._common import write_json as _write_json
from crackscan.cli._progress import progress_bar
from crackscan.evaluation import open_model
from crackscan.runtime.predictor import ModelLoadError


def _split_file_for(data: Path, split_file: Path | None) -> Path | None:
    """``--split-file`` as given, or ``FOLDER/<set name>.json`` when it names a run's ``splits/`` folder."""
    if split_file is None or not split_file.is_dir():
        return split_file
    candidate = split_file / f"{data.resolve().name}.json"
    if not candidate.is_file():
        raise _fail(f"--split-file {split_file}: no {candidate.name} for data set {data}")
    return candidate


def calibrate(
    model: str = typer.Argument(..., help="Segmentation model (.onnx), training run folder, or bundled model name."),
    data: list[Path] = typer.Argument(
        ..., help="One or more labelled sets of image/mask pairs (DATA/images/ + DATA/masks/)."
    ),
    split: str = typer.Option(
        "val",
        "--split",
        help="Which pairs of each set: val (default) | train | test | all | FILE. Your own labelled photos: all.",
    ),
    split_file: Path | None = typer.Option(
        None,
        "--split-file",
        help="Split file that --split val|train|test reads (one set), or a folder of <set>.json (a run's splits/).",
    ),
    mask_dir: str | None = typer.Option(None, "--mask-dir", help="The mask folder's name when DATA has several."),
    tta: bool = typer.Option(
        False, "--tta", help="Calibrate for runs with flip TTA (stored as the model's TTA threshold)."
    ),
    out_model: Path | None = typer.Option(
        None, "--out", help="Write a copy of MODEL (.onnx) with the calibrated threshold; without it, print only."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the calibration (per set and pooled) here."),
) -> None:
    """Pick the crack threshold with the best exact-pixel F1 pooled over labelled images.

    The rule training calibrates with, applied to other images — a new surface, your own
    labelled photos — or to flip-TTA runs. The model file is never modified: --out writes
    a copy that `inspect`, `evaluate` and `serve` then use as they are.
    """
    from crackscan.data.layouts import LayoutError
    from crackscan.data.split import SplitError
    from crackscan.evaluation.calibration import (
        CalibrationError,
        calibrate_threshold,
        check_output,
        write_calibrated,
    )
    from crackscan.evaluation.segmentation import PreprocessUnavailable, SegmentationEvaluationError, select_pairs

    if split_file is not None and not split_file.is_dir() and len(data) > 1:
        raise _fail("--split-file FILE serves one data set; with several, give a folder of <set>.json files")
    if split == "test":
        err.print("[yellow]note:[/] calibrating on test images makes every score on them optimistic")
    try:
        predictor = open_model(model, spin_wait=False)
    except ModelLoadError as exc:
        raise _fail(str(exc)) from None
    if out_model is not None:  # checked before the work, not after
        if not Path(predictor.path).is_file():
            raise _fail(f"{model}: an ensemble has no single model file to write; calibrate its members")
        try:
            check_output(predictor.path, out_model)
        except CalibrationError as exc:
            raise _fail(str(exc)) from None
    try:
        selections = [
            (d.resolve().name, select_pairs(d, split, _split_file_for(d, split_file), mask_dir=mask_dir)) for d in data
        ]
        with progress_bar("calibrating", transient=True) as advance:
            cal = calibrate_threshold(predictor, selections, tta=tta, progress=lambda _name, i, n: advance(i, n))
    except (LayoutError, SplitError, SegmentationEvaluationError, PreprocessUnavailable, CalibrationError) as exc:
        raise _fail(str(exc)) from None

    table = Table(title=f"{'TTA ' if tta else ''}threshold of {escape(str(predictor.path))}")
    for column in ("set", "split", "images", "best threshold", "exact F1"):
        table.add_column(column, overflow="fold")  # split files' paths whole, for copy-paste
    for part in cal.sets:
        row = (escape(part.name), escape(part.split), str(part.n), f"{part.best_threshold:g}", f"{part.best_f1:.4f}")
        table.add_row(*row)
    table.add_row("[bold]pooled[/]", "", str(cal.n), f"[bold]{cal.threshold:g}[/]", f"{cal.f1:.4f}")
    out.print(table)
    out.print(f"threshold {cal.threshold:g} (was {cal.previous:g}); pooled exact F1 {cal.f1:.4f} on {cal.n} images")
    source = ", ".join(f"{name} ({sel.description})" for name, sel in selections)
    if json_out is not None:
        _write_json(json_out, {**cal.to_dict(), "model": str(predictor.path), "source": source})
        out.print(f"JSON: {escape(str(json_out))}", soft_wrap=True)
    if out_model is not None:
        try:
            written = write_calibrated(predictor.path, out_model, cal, source=source)
        except (CalibrationError, ModelLoadError, OSError) as exc:
            raise _fail(str(exc)) from None
        what = "TTA threshold" if tta else "threshold"
        out.print(f"model with the calibrated {what}: {escape(str(written))}", soft_wrap=True)
