"""``crackscan predict``: classify image files, folders and globs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from crackscan.cli._common import err, out
from crackscan.cli._common import fail as _fail
from crackscan.cli._progress import progress_bar
from crackscan.evaluation import DEFAULT_BATCH_SIZE, NotBuiltError, collect_images, open_model
from crackscan.runtime.predictor import ModelLoadError

if TYPE_CHECKING:
    from crackscan.evaluation.predict import PredictionResult

SHOWN = 50  # table rows printed without --out
LISTED = 20  # problem rows printed


def predict(
    model: str = typer.Argument(..., help="Model file (.onnx), training run folder, or bundled model name."),
    paths: list[str] = typer.Argument(..., help="Image files, folders (searched recursively) or glob patterns."),
    out_file: Path | None = typer.Option(
        None,
        "--out",
        help="Classifiers: write every prediction to FILE.csv or FILE.json (else print a table). "
        "Segmentation models: a folder for masks/, overlays/ and predictions.csv (required).",
    ),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Images per inference batch."),
) -> None:
    """Classify images (one row per image: path, label, probability, crack), or segment them.

    A segmentation model writes a 0/255 mask PNG and an overlay PNG per image into --out DIR,
    plus predictions.csv with each image's crack-pixel fraction. Exit 1 if no image could be read.
    """
    from crackscan.evaluation.predict import check_output_path, predict_images, write_predictions

    try:
        predictor = open_model(model, spin_wait=False)  # files are decoded beside inference
    except ModelLoadError as exc:
        raise _fail(str(exc)) from None
    if predictor.task == "segment":
        _predict_segment(predictor, paths, out_file)
        return
    if out_file is not None:
        try:
            check_output_path(out_file)
        except ValueError as exc:
            raise _fail(str(exc), code=2) from None
    files, problems = collect_images(paths)
    try:
        with progress_bar("predicting", transient=True) as advance:
            result = predict_images(predictor, files, batch_size=batch_size, progress=advance)
    except NotBuiltError as exc:
        raise _fail(str(exc), code=2) from None
    result.problems = problems + result.problems

    if result.problems:
        n = len(result.problems)
        err.print(f"[yellow]{n} path{'s' if n != 1 else ''} could not be used:[/]")
        for p in result.problems[:LISTED]:
            err.print(f"  {escape(p.path)}: {escape(p.reason)}", soft_wrap=True)
        if n > LISTED:
            err.print(f"  … and {n - LISTED} more" + (f" (listed in {escape(str(out_file))})" if out_file else ""))
    if out_file is not None:
        write_predictions(result, out_file)
        out.print(f"wrote {len(result.predictions)} predictions to {escape(str(out_file))}", soft_wrap=True)
    else:
        _print_table(result)
    n_crack = sum(p.crack for p in result.predictions)
    out.print(
        f"{len(result.predictions)} images: {n_crack} crack, {len(result.predictions) - n_crack} no crack "
        f"(threshold {result.threshold:g})"
    )
    if not result.predictions:
        raise _fail("no image could be predicted")


def _print_table(result: PredictionResult) -> None:
    if not result.predictions:
        return
    table = Table()
    table.add_column("path", overflow="fold")
    table.add_column("label")
    table.add_column("probability", justify="right")
    table.add_column("crack")
    for p in result.predictions[:SHOWN]:
        table.add_row(
            escape(p.path),
            escape(p.label),
            f"{p.probability:.3f}",
            "[red]yes[/]" if p.crack else "no",
        )
    out.print(table)
    if len(result.predictions) > SHOWN:
        out.print(f"… {len(result.predictions) - SHOWN} more rows; use --out FILE.csv for all of them")


# ---------------------------------------------------------------- segmentation


def _predict_segment(predictor: Any, paths: list[str], out_dir: Path | None) -> None:
    from crackscan.evaluation.segmentation import PreprocessUnavailable, SegmentationEvaluationError, predict_masks

    if out_dir is None:
        raise _fail("a segmentation model writes mask and overlay images: give --out DIR", code=2)
    if out_dir.suffix.lower() in (".csv", ".json") and not out_dir.is_dir():
        raise _fail(f"{out_dir}: with a segmentation model --out names a folder (masks, overlays, CSV)", code=2)
    files, problems = collect_images(paths)
    try:
        with progress_bar("segmenting", transient=True) as advance:
            result = predict_masks(predictor, files, out_dir, progress=advance)
    except (SegmentationEvaluationError, PreprocessUnavailable) as exc:
        raise _fail(str(exc)) from None
    result.problems = problems + result.problems
    if result.problems:
        n = len(result.problems)
        err.print(f"[yellow]{n} path{'s' if n != 1 else ''} could not be used:[/]")
        for p in result.problems[:LISTED]:
            err.print(f"  {escape(p.path)}: {escape(p.reason)}", soft_wrap=True)
        if n > LISTED:
            err.print(f"  … and {n - LISTED} more")
    n_crack = sum(p.crack_pixels > 0 for p in result.predictions)
    out.print(
        f"{len(result.predictions)} images segmented ({n_crack} with crack pixels, threshold {result.threshold:g}): "
        f"masks in {escape(str(out_dir / 'masks'))}, overlays in {escape(str(out_dir / 'overlays'))}, "
        f"fractions in {escape(str(result.csv_path))}",
        soft_wrap=True,
    )
    if not result.predictions:
        raise _fail("no image could be segmented")
