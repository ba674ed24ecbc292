"""``crackscan export``: a trained model.pt / checkpoint / run folder → a checked ONNX model file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from crackscan.cli._common import err, out
from crackscan.cli._common import fail as _fail

QUANTIZE_CHOICES = ("int8", "fp16", "int8-weights")
MERGE_CHECK_IMAGES = 4  # synthetic crack photos the merged file is compared on against the load-time ensemble


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def export(
    model: Path = typer.Argument(
        ...,
        help="model.pt, a Lightning .ckpt from a run's checkpoints/, or a training run folder; or an older "
        "crackscan .onnx, rewritten with constant TF-'same' padding (faster; proven equal) to --out; or "
        "segmenters joined by '+' (A.onnx+B.onnx or bundled names), merged into one file (--out) that outputs "
        "the mean of their probabilities.",
    ),
    fmt: str = typer.Option("onnx", "--format", help="Output format (onnx)."),
    quantize: str | None = typer.Option(
        None,
        "--quantize",
        help="int8 (static QDQ), fp16 (weights stored as float16, float32 compute) or int8-weights (weights "
        "stored as int8 per output channel, float32 compute); kept only if accuracy holds (see --max-drop).",
    ),
    opset: int = typer.Option(17, "--opset", min=11, help="ONNX opset."),
    out_file: Path | None = typer.Option(
        None, "--out", help="Output file (default: model.onnx / model.int8.onnx next to MODEL)."
    ),
    calibration: Path | None = typer.Option(
        None,
        "--calibration",
        help="Images for the parity check and INT8 calibration when the run's training data is not reachable "
        "(class folders or image/mask pairs also give labels).",
    ),
    max_drop: float = typer.Option(
        0.5, "--max-drop", help="INT8: largest accepted drop of accuracy / crack F1, in percentage points."
    ),
    method: str = typer.Option(
        "static", "--int8-method", help="INT8: static (calibrated QDQ) or dynamic.", hidden=True
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the export figures as JSON here."),
) -> None:
    """Export a trained model to ONNX (metadata inside, parity-checked against torch), optionally INT8."""
    if fmt.lower() != "onnx":
        raise _fail(f"--format {fmt}: only onnx is supported")
    if quantize is not None and quantize.lower() not in QUANTIZE_CHOICES:
        raise _fail(f"--quantize {quantize}: use int8, fp16 or int8-weights")
    if method not in ("static", "dynamic"):
        raise _fail(f"--int8-method {method}: use static or dynamic")
    if "+" in str(model) and not model.exists():
        _merge(str(model), out_file, quantize.lower() if quantize else None, json_out)
        return
    if model.suffix.lower() == ".onnx":
        _upgrade(model, out_file, quantize, json_out)
        return
    try:
        from crackscan.runtime.export import ExportError, ExportRefused, export_model
        from crackscan.runtime.predictor import ModelLoadError
        from crackscan.runtime.quantize import QuantizationError
    except ImportError as exc:
        raise _fail(
            f'exporting needs torch and onnx ({exc.name or exc} is missing): pip install "crackscan[train]"'
        ) from None
    try:
        with err.status("exporting", spinner="dots"):
            result = export_model(
                model,
                out=out_file,
                quantize=quantize.lower() if quantize else None,
                method=method,
                opset=opset,
                calibration=calibration,
                max_drop=max_drop,
            )
    except ExportRefused as exc:
        figures = exc.figures
        err.print(f"[red]refused:[/] {escape(str(exc))}")
        if json_out:
            json_out.write_text(json.dumps({"accepted": False, "reduced": figures}, indent=2) + "\n")
        raise typer.Exit(code=1) from None
    except (ModelLoadError, ExportError, QuantizationError) as exc:
        raise _fail(str(exc)) from None
    meta = result.metadata
    out.print(f"wrote [bold]{escape(str(result.path))}[/] ({result.precision}, {_mb(result.size_bytes)})")
    out.print(
        f"  {meta.task} · {escape(meta.arch)} · classes {escape(', '.join(meta.class_names))} · "
        f"input {meta.input_size} px · threshold {meta.threshold:g}"
    )
    out.print(
        f"  parity vs torch (fp32): max |Δp| = {result.parity.get('parity_max_abs_diff', float('nan')):.2e} "
        f"on {int(result.parity.get('parity_n', 0))} images from {escape(result.reference_source)}"
    )
    if result.int8:
        f = result.int8
        q = f["label"]
        out.print(
            f"  {q} ({f['method']}): {_mb(f['fp32_size_bytes'])} → {_mb(f[f'{q}_size_bytes'])}; "
            f"accuracy {f['fp32_accuracy']:.2f} → {f[f'{q}_accuracy']:.2f}, F1 {f['fp32_f1']:.2f} → {f[f'{q}_f1']:.2f} "
            f"(drop {f['drop_points']:.2f} ≤ {max_drop:g} points, {f['images']} images, against {f['against']}); "
            f"labels agree on {f['agreement']:.1f}%"
        )
    if json_out:
        payload = {
            "accepted": True,
            "path": str(result.path),
            "precision": result.precision,
            "size_bytes": result.size_bytes,
            "parity": result.parity,
            "checked_on": result.reference_source,
            "int8": result.int8 or None,  # figures of the reduced-precision copy (int8 or fp16)
        }
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(payload, indent=2) + "\n")


def _upgrade(source: Path, target: Path | None, quantize: str | None, json_out: Path | None) -> None:
    """`crackscan export OLD.onnx`: the same graph with constant padding, written next to it (never over it)."""
    if quantize is not None:
        raise _fail("--quantize needs the trained model (model.pt or a run folder), not an .onnx file")
    if not source.is_file():
        raise _fail(f"{source}: no such file")
    target = target or source.with_name(f"{source.stem}.upgraded.onnx")
    if target.resolve() == source.resolve():
        raise _fail(f"--out {target}: that is the input file; crackscan never overwrites its input")
    try:
        from crackscan.runtime.export import ExportError, upgrade_onnx_padding
        from crackscan.runtime.predictor import ModelLoadError
    except ImportError as exc:
        missing = exc.name or exc
        raise _fail(f'rewriting ONNX files needs onnx ({missing}): pip install "crackscan[train]"') from None
    try:
        figures = upgrade_onnx_padding(source, target)
    except (ModelLoadError, ExportError) as exc:
        raise _fail(str(exc)) from None
    out.print(
        f"wrote [bold]{escape(str(target))}[/]: {figures['pads_replaced'] + figures['pads_fused']} Pads moved into "
        f"their Convs; max |Δp| against {escape(source.name)} = {figures['max_abs_diff']:.2e} on sides "
        f"{', '.join(str(s) for s in figures['sides'])}"
    )
    if json_out:
        json_out.write_text(json.dumps({"accepted": True, "path": str(target), **figures}, indent=2) + "\n")


def _merge(spec: str, target: Path | None, quantize: str | None, json_out: Path | None) -> None:
    """`crackscan export A+B --out F`: the load-time ensemble as one ONNX file, checked against it."""
    import tempfile

    import numpy as np

    from crackscan.runtime.ensemble import split_spec
    from crackscan.runtime.predictor import ModelLoadError, resolve_model_path

    if target is None:
        raise _fail("merging models needs --out FILE.onnx")
    if quantize == "int8":
        raise _fail("--quantize int8 (static) needs calibration of a trained model; a merge takes fp16 or int8-weights")
    try:
        from crackscan.runtime.merge import MergeError, check_merge, merge_segmenters
        from crackscan.runtime.quantize import QuantizationError, store_fp16_weights, store_int8_weights
    except ImportError as exc:
        raise _fail(f'merging ONNX files needs onnx ({exc.name or exc}): pip install "crackscan[train]"') from None
    from crackscan.data.synth import synth_sample

    try:
        members = [resolve_model_path(part) for part in split_spec(spec)]
    except ModelLoadError as exc:
        raise _fail(str(exc)) from None
    if any(target.resolve() == m.resolve() for m in members):
        raise _fail(f"--out {target}: that is an input file; crackscan never overwrites its input")
    rng = np.random.default_rng(0)
    images = np.stack([synth_sample(rng, 256, 256)[0] for _ in range(MERGE_CHECK_IMAGES)])
    try:
        with tempfile.TemporaryDirectory(prefix="crackscan-merge-") as tmp:
            fp32 = target if quantize is None else Path(tmp) / "merged.onnx"
            meta = merge_segmenters(members, fp32)
            if quantize == "fp16":
                store_fp16_weights(fp32, target)
            elif quantize == "int8-weights":
                store_int8_weights(fp32, target)
            figures = check_merge(members, target, images)
    except (MergeError, QuantizationError, ModelLoadError) as exc:
        raise _fail(str(exc)) from None
    size = target.stat().st_size
    out.print(
        f"wrote [bold]{escape(str(target))}[/] ({quantize or 'fp32'}, {_mb(size)}): the mean of "
        f"{len(members)} segmenters ({escape(meta.arch)}; {escape(str(meta.extra.get('encoder')))}), "
        f"threshold {meta.threshold:g} (the members' mean; calibrate it with `crackscan calibrate`)"
    )
    out.print(
        f"  against the load-time ensemble: max |Δp| = {figures['max_abs_diff']:.2e}, masks agree on "
        f"{100 * figures['mask_agreement']:.3f}% of pixels ({MERGE_CHECK_IMAGES} synthetic 256×256 photos)"
    )
    if json_out:
        payload = {"accepted": True, "path": str(target), "precision": quantize or "fp32", "size_bytes": size}
        json_out.write_text(json.dumps({**payload, "members": [str(m) for m in members], **figures}, indent=2) + "\n")
