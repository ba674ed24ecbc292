"""``crackscan train``: crack classifiers and segmenters."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.logging import RichHandler

from crackscan.cli._common import err, out

app = typer.Typer(help="Train crack classifiers and segmenters.", no_args_is_help=True)


def _need_train_extra() -> None:
    try:
        import lightning  # noqa: F401
        import timm  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        err.print(f"[red]error:[/] training needs the train extra ({exc.name} missing): pip install 'crackscan[train]'")
        raise typer.Exit(code=2) from None


@app.command("classify")
def classify(
    data: list[Path] = typer.Argument(
        ...,
        help="Class-folder data sets (ROOT/<class>/*.jpg or ROOT/<split>/<class>/); several train one model, "
        "each split on its own.",
    ),
    split: Path | None = typer.Option(
        None, "--split", help="Split file (one data set), or a folder of <set>.json split files (a run's splits/)."
    ),
    arch: str = typer.Option("crackscan_lite0_s4", "--arch", help="timm name or crackscan_lite0_s4 (fast default)."),
    img_size: int = typer.Option(96, "--img-size", min=32, help="Input side in px."),
    epochs: int = typer.Option(12, "--epochs", min=1),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    lr: float = typer.Option(2e-3, "--lr", min=0.0),
    freeze_epochs: int = typer.Option(2, "--freeze-epochs", min=0, help="Epochs with the backbone frozen."),
    pretrained: bool = typer.Option(True, "--pretrained/--no-pretrained", help="Start from ImageNet weights."),
    weights: Path | None = typer.Option(
        None,
        "--weights",
        help="Weights to start from: a backbone state dict, or an exported model to fine-tune (.onnx, or crack-cls).",
    ),
    out_dir: Path = typer.Option(Path("runs/classify"), "--out", help="Run folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    seed: int = typer.Option(0, "--seed"),
    patience: int = typer.Option(5, "--patience", min=1, help="Early-stopping patience (epochs)."),
    accelerator: str = typer.Option("auto", "--accelerator", help="cpu | gpu | auto (Lightning)."),
    devices: str = typer.Option("auto", "--devices", help="Number of devices or 'auto'."),
    num_nodes: int = typer.Option(1, "--num-nodes", min=1),
    strategy: str = typer.Option("auto", "--strategy", help="Lightning strategy, e.g. ddp."),
    limit_per_class: int | None = typer.Option(None, "--limit-per-class", help="Use at most N images per class."),
) -> None:
    """Transfer-learn a crack/no-crack patch classifier; writes model.onnx into the run folder."""
    _need_train_extra()
    from crackscan.data.layouts import LayoutError
    from crackscan.data.split import SplitError
    from crackscan.models.pretrained import PretrainedWeightsError
    from crackscan.training.classify import ClassifyConfig, TrainingDataError, train_classifier

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])
    cfg = ClassifyConfig(
        data=[str(d) for d in data],
        out=str(out_dir),
        split=str(split) if split else None,
        arch=arch,
        img_size=img_size,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        freeze_epochs=freeze_epochs,
        pretrained=pretrained,
        weights=str(weights) if weights else None,
        resume=resume,
        seed=seed,
        patience=patience,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        limit_per_class=limit_per_class,
    )
    try:
        result = train_classifier(cfg)
    except (TrainingDataError, LayoutError, SplitError, PretrainedWeightsError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=1) from None
    out.print(f"weights: {result.weights_message}")
    for k, v in result.metrics.items():
        out.print(f"  {k}: {v:.6g}")
    out.print(f"training took {result.train_seconds:.0f} s; model: [bold]{result.model_file}[/]")


def _int_list(text: str | None, option: str) -> list[int] | None:
    if not text:
        return None
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        err.print(f"[red]error:[/] {option} takes whole numbers separated by commas, got {text!r}")
        raise typer.Exit(code=1) from None
    if not values or min(values) < 1:
        err.print(f"[red]error:[/] {option} needs positive widths, got {text!r}")
        raise typer.Exit(code=1)
    return values


@app.command("segment")
def segment(
    data: list[str] = typer.Argument(
        ..., help="Image/mask data sets (ROOT with images/ + masks/); ROOT/train names a set's train part."
    ),
    split: Path | None = typer.Option(
        None, "--split", help="Split file (one data set), or a folder of <set>.json split files (a run's splits/)."
    ),
    arch: str = typer.Option(
        "unet", "--arch", help="unet | unetplusplus | unet3plus | deeplabv3plus | fpn | other smp."
    ),
    encoder: str = typer.Option(
        "tf_efficientnet_lite0",
        "--encoder",
        help="timm encoder name (smp tu-<name>); tf_efficientnet_lite0/1/2 load ImageNet weights offline.",
    ),
    loss: str | None = typer.Option(
        None,
        "--loss",
        help="bce | dice | focal | tversky | bce+dice | hybrid | lovasz | bce+lovasz "
        "(default: hybrid for unet3plus, else bce+dice).",
    ),
    crop: int = typer.Option(256, "--crop", min=32, help="Training crop side in px (multiple of 32)."),
    classes: int = typer.Option(1, "--classes", min=1, help="1 = binary crack mask; N > 1 = index masks 0..N-1."),
    class_names: str | None = typer.Option(None, "--class-names", help="Comma list, background first."),
    scheduler: str = typer.Option(
        "cosine-warm-restarts", "--scheduler", help="cosine-warm-restarts | plateau | onecycle."
    ),
    select_on: str = typer.Option(
        "pooled",
        "--select-on",
        help="Best epoch by val crack IoU: pooled over all pixels, or mean-of-sets (each data set weighs the same).",
    ),
    grayscale: bool = typer.Option(False, "--grayscale", help="Train (and infer) on grey images."),
    clahe: bool = typer.Option(False, "--clahe", help="CLAHE on lightness before the model."),
    deglare: bool = typer.Option(False, "--deglare", help="Inpaint specular glare before the model."),
    epochs: int = typer.Option(40, "--epochs", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    lr: float = typer.Option(1e-3, "--lr", min=0.0),
    decoder_channels: str | None = typer.Option(
        None, "--decoder-channels", help="e.g. 128,64,32,24,16 (U-Net-like); one width for FPN/DeepLabV3+/U-Net3+."
    ),
    head_stride: int = typer.Option(
        1, "--head-stride", help="U-Net: 2 = predict at half resolution, logits upsampled (~1.3-1.6x faster on CPU)."
    ),
    decoder_norm: str = typer.Option(
        "group", "--decoder-norm", help="FPN: group (smp's, per tile) or batch (tiles independent of their content)."
    ),
    cgm: bool = typer.Option(False, "--cgm", help="U-Net3+: classification-guided module."),
    out_dir: Path = typer.Option(Path("runs/segment"), "--out", help="Run folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    seed: int = typer.Option(0, "--seed"),
    pretrained: bool = typer.Option(True, "--pretrained/--no-pretrained", help="Start from ImageNet encoder weights."),
    weights: Path | None = typer.Option(
        None,
        "--weights",
        help=(
            "Weights to start from: a backbone, a whole segmenter (model.pt), or an exported model to fine-tune "
            "(.onnx, or a bundled name such as crack-seg-unet)."
        ),
    ),
    patience: int = typer.Option(10, "--patience", min=1, help="Early-stopping patience (epochs, on val IoU)."),
    val_fraction: float = typer.Option(0.15, "--val-fraction", min=0.0, max=0.9),
    accelerator: str = typer.Option("auto", "--accelerator", help="cpu | gpu | auto (Lightning)."),
    devices: str = typer.Option("auto", "--devices", help="Number of devices or 'auto'."),
    num_nodes: int = typer.Option(1, "--num-nodes", min=1),
    strategy: str = typer.Option("auto", "--strategy", help="Lightning strategy, e.g. ddp."),
    mask_dir: str | None = typer.Option(None, "--mask-dir", help="Mask folder name when a set has several."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most N train and N val images per set."),
    teacher: str | None = typer.Option(
        None,
        "--teacher",
        help=(
            "Distil: a binary segmentation model (.onnx, run folder, bundled name, or an a+b ensemble) whose "
            "probability maps of the training images are soft targets. It must have held out this run's test images."
        ),
    ),
    teacher_tta: bool = typer.Option(False, "--teacher-tta", help="The teacher's maps averaged over flips."),
    distill_weight: float = typer.Option(
        0.5, "--distill-weight", min=0.0, help="Weight of the soft-target BCE beside the mask loss."
    ),
) -> None:
    """Train a crack segmenter; writes model.onnx (calibrated threshold inside) into the run folder."""
    _need_train_extra()
    from crackscan.data.layouts import LayoutError
    from crackscan.data.split import SplitError
    from crackscan.imageio import ImageReadError
    from crackscan.models.pretrained import PretrainedWeightsError
    from crackscan.training.segment import SegmentConfig, TrainingDataError, train_segmenter

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])
    names = [n.strip() for n in class_names.split(",")] if class_names else None
    cfg = SegmentConfig(
        data=list(data),
        out=str(out_dir),
        split=str(split) if split else None,
        arch=arch,
        encoder=encoder,
        loss=loss,
        crop=crop,
        classes=classes,
        class_names=names,
        scheduler=scheduler,
        select_on=select_on,
        grayscale=grayscale,
        clahe=clahe,
        deglare=deglare,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        decoder_channels=_int_list(decoder_channels, "--decoder-channels"),
        head_stride=head_stride,
        decoder_norm=decoder_norm,
        cgm=cgm,
        resume=resume,
        seed=seed,
        pretrained=pretrained,
        weights=str(weights) if weights else None,
        patience=patience,
        val_fraction=val_fraction,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        mask_dir=mask_dir,
        limit=limit,
        teacher=teacher,
        teacher_tta=teacher_tta,
        distill_weight=distill_weight,
    )
    try:
        result = train_segmenter(cfg)
    except (TrainingDataError, LayoutError, SplitError, PretrainedWeightsError, ImageReadError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=1) from None
    out.print(f"weights: {result.weights_message}")
    out.print(f"calibrated threshold: {result.threshold:.2f}")
    for k, v in result.metrics.items():
        out.print(f"  {k}: {v:.6g}")
    for name, part in result.val_by_source.items():
        out.print(
            f"  val {name} ({part['n_images']:.0f} images, same threshold): IoU {part['iou']:.4f}, "
            f"Dice {part['dice']:.4f}, ODS F1 {part['ods_f1']:.4f}"
        )
    out.print(
        f"{result.parameters / 1e6:.2f} M parameters, model.onnx {result.onnx_bytes / 2**20:.1f} MiB; "
        f"training took {result.train_seconds:.0f} s; model: [bold]{result.model_file}[/]"
    )
