"""``crackscan evaluate``: metrics, plots and mistakes of a model on a labelled data set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from crackscan.cli._common import err, out
from crackscan.cli._common import fail as _fail
from crackscan.cli._common import write_json as _write_json
from crackscan.cli._progress import progress_bar
from crackscan.evaluation import DEFAULT_BATCH_SIZE, NotBuiltError, evaluate_model, open_model
from crackscan.runtime.predictor import ModelLoadError

LISTED = 20  # problem rows printed; the JSON has all of them


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def evaluate(
    model: str = typer.Argument(..., help="Model file (.onnx), training run folder, or bundled model name."),
    data: Path = typer.Argument(
        ...,
        help="Labelled data set: class folders (DATA/<class>/ or DATA/<split>/<class>/), or image/mask "
        "pairs (DATA/images/ + DATA/masks/) for segmentation models.",
    ),
    split: str = typer.Option(
        "test", "--split", help="test | val | train | all | FILE (a split file: its test split)."
    ),
    split_file: Path | None = typer.Option(
        None, "--split-file", help="Split file from `crackscan data split` that --split test|val|train reads."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write all metrics as JSON here."),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Folder for plots (confusion matrix, ROC, PR, misclassified grid) and metrics.json."
    ),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Images per inference batch."),
    mask_dir: str | None = typer.Option(
        None, "--mask-dir", help="Segmentation: the mask folder's name when DATA has several (e.g. masks_binary)."
    ),
    tolerance: float = typer.Option(
        2.0, "--tolerance", min=0.0, help="Segmentation: pixel tolerance (px) of the ODS/OIS F1."
    ),
    tta: bool = typer.Option(
        False, "--tta", help="Segmentation: average each image over horizontal and vertical flips (3x slower)."
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        min=0.0,
        max=1.0,
        help="Crack probability threshold (default: the model's own, calibrated on validation in training "
        "or by `crackscan calibrate`; with --tta its TTA threshold where it has one; an ensemble's is its "
        "members' mean).",
    ),
) -> None:
    """Evaluate a model on labelled images.

    Classifiers: accuracy, precision, recall, F1, ROC-AUC, plots. Segmentation models
    (image/mask pairs): crack IoU, Dice, precision, recall, ODS/OIS F1, clDice,
    per_image.csv and overlay/PR plots in --out.
    """
    from crackscan.data.layouts import LayoutError
    from crackscan.data.split import SplitError
    from crackscan.evaluation.classification import EvaluationError

    try:
        predictor = open_model(model, spin_wait=False)  # files are decoded beside inference
    except ModelLoadError as exc:
        raise _fail(str(exc)) from None
    if predictor.task == "segment":  # None: the model's own (its TTA one with --tta, where it has one)
        _evaluate_segment(predictor, data, split, split_file, mask_dir, tolerance, json_out, out_dir, tta, threshold)
        return
    if threshold is not None:
        predictor.metadata.threshold = threshold  # this process's copy; the model file is not touched
    if tta:
        raise _fail("--tta is for segmentation models", code=2)
    try:
        with progress_bar("evaluating", transient=True) as advance:
            ev = evaluate_model(
                predictor, data, split=split, split_file=split_file, batch_size=batch_size, progress=advance
            )
    except NotBuiltError as exc:
        raise _fail(str(exc), code=2) from None
    except (LayoutError, SplitError, EvaluationError) as exc:
        raise _fail(str(exc)) from None

    payload = ev.to_dict()
    _print_skipped(payload["skipped_files"])
    if ev.n == 0:
        raise _fail(f"none of the {len(ev.skipped)} images could be read")
    _print_summary(payload, ev.report())
    if out_dir is not None:
        _write_plots(ev, out_dir, payload)
        _write_json(out_dir / "metrics.json", payload)
        out.print(f"metrics: {escape(str(out_dir / 'metrics.json'))}", soft_wrap=True)
    if json_out is not None:
        _write_json(json_out, payload)
        out.print(f"JSON: {escape(str(json_out))}", soft_wrap=True)


def _write_plots(ev: Any, out_dir: Path, payload: dict[str, Any]) -> None:
    from crackscan.evaluation.plots import PlotsUnavailable, write_plots

    try:
        written = write_plots(ev, out_dir)
    except PlotsUnavailable as exc:
        err.print(f"[yellow]note:[/] {escape(str(exc))}")
        payload["plots"] = []
        return
    payload["plots"] = [str(p) for p in written]
    out.print("plots: " + ", ".join(escape(str(p)) for p in written), soft_wrap=True)


def _print_skipped(skipped: list[dict[str, str]]) -> None:
    if not skipped:
        return
    err.print(f"[yellow]skipped {len(skipped)} unreadable image{'s' if len(skipped) != 1 else ''}:[/]")
    for item in skipped[:LISTED]:
        # soft_wrap: long paths stay on one line, whole, for copy-paste and grep
        err.print(f"  {escape(item['path'])}: {escape(item['reason'])}", soft_wrap=True)
    if len(skipped) > LISTED:
        err.print(f"  … and {len(skipped) - LISTED} more (see --json)")


def _print_summary(r: dict[str, Any], report: str) -> None:
    crack = r["class_names"][r["crack_class"]]
    out.print(f"model {escape(r['model'])} on {escape(r['data'])} ({escape(r['split'])})", soft_wrap=True)
    table = Table(show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("images", str(r["n"]))
    if r["skipped"]:
        table.add_row("skipped (unreadable)", str(r["skipped"]))
    table.add_row("threshold", f"{r['threshold']:g}")
    table.add_row("accuracy", _fmt(r["accuracy"]))
    table.add_row(f"precision ({crack})", _fmt(r["precision"]))
    table.add_row(f"recall ({crack})", _fmt(r["recall"]))
    table.add_row(f"F1 ({crack})", _fmt(r["f1"]))
    table.add_row("ROC-AUC", _fmt(r["roc_auc"]) + ("" if r["roc_auc"] is not None else " (one class only)"))
    table.add_row("average precision", _fmt(r["average_precision"]))
    out.print(table)

    cm = Table()
    cm.add_column("true \\ predicted")
    for name in r["class_names"]:
        cm.add_column(escape(name), justify="right")
    for name, row in zip(r["class_names"], r["confusion_matrix"], strict=True):
        cm.add_row(escape(name), *(str(v) for v in row))
    out.print(cm)
    mapping = ", ".join(f"{escape(k)} → {escape(v)}" for k, v in r["class_mapping"].items() if k != v)
    if mapping:
        out.print(f"class folders: {mapping}")
    out.print(escape(report), highlight=False)
    wrong = r["misclassified"]
    if wrong:
        out.print(f"misclassified: {len(wrong)} (most confident first)")
        for item in wrong[:10]:
            out.print(
                f"  {escape(item['path'])}: {escape(item['true'])} → {escape(item['predicted'])} "
                f"(p crack {item['crack_probability']:.3f})",
                highlight=False,
                soft_wrap=True,
            )
        if len(wrong) > 10:
            out.print(f"  … and {len(wrong) - 10} more (see --json / --out)")


# ---------------------------------------------------------------- segmentation


def _evaluate_segment(
    predictor: Any,
    data: Path,
    split: str,
    split_file: Path | None,
    mask_dir: str | None,
    tolerance: float,
    json_out: Path | None,
    out_dir: Path | None,
    tta: bool = False,
    threshold: float | None = None,
) -> None:
    from crackscan.data.layouts import LayoutError
    from crackscan.data.split import SplitError
    from crackscan.evaluation.segmentation import (
        PreprocessUnavailable,
        SegmentationEvaluationError,
        evaluate_segmenter,
        select_pairs,
        write_segmentation_outputs,
    )

    try:
        selection = select_pairs(data, split, split_file, mask_dir=mask_dir)
        with progress_bar("evaluating", transient=True) as advance:
            ev = evaluate_segmenter(
                predictor, selection, tolerance_px=tolerance, progress=advance, tta=tta, threshold=threshold
            )
    except (LayoutError, SplitError, SegmentationEvaluationError, PreprocessUnavailable) as exc:
        raise _fail(str(exc)) from None
    payload = ev.to_dict()
    _print_skipped(payload["skipped_files"])
    if ev.n == 0:
        raise _fail(f"none of the {len(ev.skipped)} image/mask pairs could be read")
    _print_segment_summary(payload)
    if out_dir is not None:
        written, note = write_segmentation_outputs(ev, out_dir)
        if note:
            err.print(f"[yellow]note:[/] {escape(note)}")
        payload["plots"] = [str(p) for p in written if p.suffix == ".png"]
        _write_json(out_dir / "metrics.json", payload)
        out.print("wrote: " + ", ".join(escape(str(p)) for p in [*written, out_dir / "metrics.json"]), soft_wrap=True)
    if json_out is not None:
        _write_json(json_out, payload)
        out.print(f"JSON: {escape(str(json_out))}", soft_wrap=True)


def _print_segment_summary(r: dict[str, Any]) -> None:
    crack = r["class_names"][r["crack_class"]]
    out.print(f"model {escape(r['model'])} on {escape(r['data'])} ({escape(r['split'])})", soft_wrap=True)
    table = Table()
    table.add_column(f"{escape(crack)} pixels")
    table.add_column("pooled", justify="right")
    table.add_column("per-image mean", justify="right")
    for m in ("iou", "dice", "precision", "recall", "cldice"):
        table.add_row(m if m != "cldice" else "clDice", _fmt(r[m]), _fmt(r[f"{m}_per_image_mean"]))
    out.print(table)
    out.print(
        f"images {r['n']} ({r['n_empty']} with no crack in truth or prediction), threshold {r['threshold']:g}; "
        f"ODS F1 {_fmt(r['ods_f1'])} at {_fmt(r['ods_threshold'])}, OIS F1 {_fmt(r['ois_f1'])} "
        f"(tolerance {r['tolerance_px']:g} px); best exact-pixel F1 {_fmt(r['best_threshold_f1'])} "
        f"at threshold {_fmt(r['best_threshold'])}",
        highlight=False,
    )
    if "per_class_iou" in r:
        per_class = ", ".join(f"{escape(k)} {_fmt(v)}" for k, v in r["per_class_iou"].items())
        out.print(f"per-class IoU: {per_class}; mean IoU {_fmt(r['mean_iou'])}", highlight=False)
