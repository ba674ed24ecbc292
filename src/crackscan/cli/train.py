"""``crackscan train``: classifiers now, segmenters in issue #4."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.logging import RichHandler

app = typer.Typer(help="Train crack classifiers and segmenters.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


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
    data: Path = typer.Argument(..., help="Class-folder data set (ROOT/<class>/*.jpg or ROOT/<split>/<class>/)."),
    split: Path | None = typer.Option(None, "--split", help="Split file from `crackscan data split`."),
    arch: str = typer.Option("crackscan_lite0_s4", "--arch", help="timm name or crackscan_lite0_s4 (fast default)."),
    img_size: int = typer.Option(96, "--img-size", min=32, help="Input side in px."),
    epochs: int = typer.Option(12, "--epochs", min=1),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    lr: float = typer.Option(2e-3, "--lr", min=0.0),
    freeze_epochs: int = typer.Option(2, "--freeze-epochs", min=0, help="Epochs with the backbone frozen."),
    pretrained: bool = typer.Option(True, "--pretrained/--no-pretrained", help="Start from ImageNet weights."),
    weights: Path | None = typer.Option(None, "--weights", help="Local backbone weights (state dict)."),
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
        data=str(data),
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


@app.command("segment", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def segment(ctx: typer.Context) -> None:
    """(not built yet) Train a segmentation model (issue #4)."""
    err.print("[yellow]crackscan train segment[/]: not built yet (planned in issue #4).")
    raise typer.Exit(code=2)
