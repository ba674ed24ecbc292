"""Transfer-learned patch classifiers: data, Lightning module, schedule and run folder.

The seeds' recipe: ImageNet backbone frozen for ``freeze_epochs`` while the new head
learns, then the whole network fine-tuned at a tenth of the learning rate on a cosine
schedule. The run folder ends with ``model.onnx`` (metadata inside, parity-checked), so
everything downstream runs without torch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, Dataset

from crackscan.data.check import ImageFacts
from crackscan.data.classes import canonical_class, crack_index, model_class_names
from crackscan.data.heldout import held_out_digests
from crackscan.data.layouts import LayoutKind, Sample, index_dataset
from crackscan.data.licences import licence_of
from crackscan.data.split import SplitPlan, make_split, read_split, select_split, write_split
from crackscan.imageio import ImageReadError
from crackscan.models.classifiers import (
    FAST_DEFAULT,
    classifier_head,
    create_classifier,
    load_pretrained,
    normalisation_for,
)
from crackscan.models.from_onnx import load_onnx_weights, onnx_model_metadata, onnx_weights_file
from crackscan.runtime.export import export_onnx
from crackscan.runtime.predictor import ModelMetadata
from crackscan.runtime.preprocess import load_patch
from crackscan.training.augment import classification_eval_transform, classification_train_transform
from crackscan.training.run import (
    TrainingDataError,
    latest_checkpoint,
    launched_as_rank_zero,
    make_trainer,
    plot_curves,
    progress_callbacks,
    refuse_copies_across_sets,
    refuse_held_out,
    set_names,
    split_file_in,
    split_folder,
)

__all__ = ["ClassifyConfig", "ClassifyResult", "TrainingDataError", "train_classifier"]

CURVES = (("loss", ("train_loss", "val_loss")), ("accuracy", ("train_acc", "val_acc")))

log = logging.getLogger(__name__)


@dataclass
class ClassifyConfig:
    data: str | list[str]  # one class-folder set, or several trained together (each split on its own)
    out: str = "runs/classify"
    split: str | None = None
    arch: str = FAST_DEFAULT
    img_size: int = 96
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    freeze_epochs: int = 2
    pretrained: bool = True
    weights: str | None = None
    resume: bool = False
    seed: int = 0
    patience: int = 5
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    label_smoothing: float = 0.05
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    limit_per_class: int | None = None  # for quick runs and tests
    command: str = field(default_factory=lambda: " ".join(["crackscan", *sys.argv[1:]]))

    @property
    def data_sets(self) -> list[str]:
        return [self.data] if isinstance(self.data, str) else list(self.data)


@dataclass
class ClassifyResult:
    run_dir: Path
    model_file: Path
    weights_message: str
    metrics: dict[str, float]
    class_names: list[str]
    train_seconds: float


# ----------------------------------------------------------------------------- data
class PatchDataset(Dataset):
    """Decoded uint8 patches held in memory (decoding once beats decoding every epoch)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any, mean: Any, std: Any) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform
        self.mean = np.asarray(mean, np.float32) * 255.0
        self.std = np.asarray(std, np.float32) * 255.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.transform(image=self.images[i])["image"]
        x = (image.astype(np.float32) - self.mean) / self.std
        return torch.from_numpy(x.transpose(2, 0, 1).copy()), int(self.labels[i])


def _decode_all(samples: list[Sample], size: int) -> tuple[np.ndarray, list[int], list[dict[str, str]]]:
    def one(s: Sample) -> np.ndarray | str:
        try:
            return load_patch(s.image, size)
        except ImageReadError as exc:
            return exc.reason

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        decoded = list(pool.map(one, samples))
    kept = [i for i, d in enumerate(decoded) if not isinstance(d, str)]
    problems = [{"path": str(samples[i].image), "reason": d} for i, d in enumerate(decoded) if isinstance(d, str)]
    if not kept:
        return np.zeros((0, size, size, 3), np.uint8), [], problems
    return np.stack([decoded[i] for i in kept]), kept, problems  # type: ignore[misc]


@dataclass
class ResolvedSplits:
    """Samples per split (all sets together), the set each came from, the model's classes, the record."""

    splits: dict[str, list[Sample]]
    origins: dict[str, list[str]]  # per split: the name of the set each sample came from
    class_names: list[str]
    summary: dict[str, Any]


def _split_of(
    cfg: ClassifyConfig, root: str, name: str, split_dir: Path | None, facts: dict[Path, ImageFacts]
) -> tuple[SplitPlan, str]:
    if split_dir is not None:
        path = split_file_in(split_dir, name, root)
        return read_split(path), f"split file {path}"
    if cfg.split:
        return read_split(cfg.split), f"split file {cfg.split}"
    plan = make_split(root, val=cfg.val_fraction, test=cfg.test_fraction, seed=cfg.seed, facts=facts)
    return plan, ("kept the layout's split" if plan.kept_official else f"new stratified split, seed {cfg.seed}")


def _limit(samples: list[Sample], per_class: int | None) -> list[Sample]:
    if not per_class:
        return samples
    seen: dict[str | None, int] = {}
    kept = []
    for s in samples:
        seen[s.label] = seen.get(s.label, 0) + 1
        if seen[s.label] <= per_class:
            kept.append(s)
    return kept


def _resolve_splits(cfg: ClassifyConfig, run_dir: Path, *, write: bool = True) -> ResolvedSplits:
    """Index and split every DATA set (each on its own: its test part never trains), then pool the parts.

    One set keeps the record it always had (``training_data.root``, ``split.json``); several record one
    entry per set under ``training_data.sources`` with split files in ``splits/<set>.json``, as
    ``train segment`` does. A set may hold a subset of the classes (only hard negatives, say); together
    they need two.
    """
    roots = cfg.data_sets
    if not roots:
        raise TrainingDataError("give at least one class-folder data set")
    split_dir = split_folder(cfg.split, len(roots))
    splits: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    origins: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    totals: dict[str, int] = {}
    sources: list[dict[str, Any]] = []
    plans: list[tuple[SplitPlan, Path]] = []  # written once every check has passed: a refused run leaves nothing
    facts: dict[Path, ImageFacts] = {}  # images decoded by the split, reused by the cross-set copy check
    for root, name in zip(roots, set_names(roots), strict=True):
        index = index_dataset(root)
        if index.layout is not LayoutKind.CLASS_FOLDERS:
            raise TrainingDataError(f"{root}: classification needs class folders (ROOT/<class>/*.jpg)")
        counts = index.class_counts
        empty = [c for c, n in counts.items() if n == 0]
        if empty:
            raise TrainingDataError(f"{root}: class folder(s) with no images: {', '.join(empty)}")
        if len(roots) == 1 and len(counts) < 2:
            raise TrainingDataError(
                f"{root}: found only {len(counts)} class ({', '.join(counts) or 'none'}); "
                "a classifier needs at least two class folders"
            )
        plan, how = _split_of(cfg, root, name, split_dir, facts)
        split_file = run_dir / ("split.json" if len(roots) == 1 else f"splits/{name}.json")
        plans.append((plan, split_file))
        parts = {k: _limit(select_split(index, plan, k), cfg.limit_per_class) for k in splits if plan.splits.get(k)}
        if not parts.get("train"):
            raise TrainingDataError(f"{root}: the split leaves no training images; check --split / fractions")
        for k, samples in parts.items():
            splits[k] += samples
            origins[k] += [name] * len(samples)
        for folder, n in counts.items():
            totals[canonical_class(folder)] = totals.get(canonical_class(folder), 0) + n
        sources.append(
            {
                "name": name,
                "root": str(Path(root).resolve()),
                "licence": licence_of(Path(root)),
                "split": how,
                "split_file": str(split_file.relative_to(run_dir)),
                "classes": {canonical_class(k): v for k, v in counts.items()},
                "folders": {k: canonical_class(k) for k in counts},
                "counts": {k: len(v) for k, v in parts.items()},
                "test_digests": held_out_digests(s.image for s in parts.get("test", [])),
            }
        )
    if not splits["val"]:
        raise TrainingDataError("the split has no validation images; check --split / fractions")
    if len(totals) < 2:
        raise TrainingDataError(
            f"{', '.join(roots)}: found only the class {', '.join(totals) or 'none'}; "
            "a classifier needs at least two class folders"
        )
    # Several sets are split one by one; a given split file may predate the near-duplicate grouping
    # of `data split` (or come from another tool). A new split of one set already keeps copies together.
    if len(sources) > 1 or cfg.split:
        refuse_copies_across_sets(
            [s.image for s in splits["train"]],
            [s.image for s in splits["test"]],
            {d for x in sources for d in x["test_digests"]},
            facts,
        )
    if write:
        for plan, split_file in plans:
            write_split(plan, split_file)
    splits = {k: v for k, v in splits.items() if v}
    class_names = model_class_names(list(totals))
    if len(sources) == 1:
        summary = {k: v for k, v in sources[0].items() if k not in ("name", "split_file")}
    else:
        for source in sources:  # the catalogue's and segmenters' name for a part that never trains
            source["counts"]["test_kept_out"] = source["counts"].pop("test", 0)
        summary = {
            "sources": sources,
            "classes": totals,
            "counts": {k: len(v) for k, v in splits.items()},
        }
    return ResolvedSplits(splits, origins, class_names, summary)


# ----------------------------------------------------------------------------- model
class ClassifierModule(L.LightningModule):
    def __init__(self, model: nn.Module, *, lr: float, epochs: int, freeze_epochs: int, label_smoothing: float) -> None:
        super().__init__()
        self.model = model
        self.lr = lr
        self.epochs = epochs
        self.freeze_epochs = freeze_epochs
        self.loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.head_params = {id(p) for p in classifier_head(model).parameters()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        on_step = stage == "train"
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log(f"{stage}_acc", acc, on_step=False, on_epoch=True, prog_bar=not on_step, sync_dist=True)
        if stage == "val":
            # The checkpoint's score: accuracy first, loss breaking ties. Its epoch mean is val_acc −
            # val_loss / 1000; the loss (≈ 0.1–1) / 1000 stays below one error's worth of accuracy on
            # sets of up to ~1,000 images, so it only orders epochs of equal accuracy.
            self.log("val_select", acc - loss / 1000.0, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> Any:
        head = [p for p in self.model.parameters() if id(p) in self.head_params]
        backbone = [p for p in self.model.parameters() if id(p) not in self.head_params]
        optimizer = torch.optim.AdamW(
            [{"params": backbone, "name": "backbone"}, {"params": head, "name": "head"}],
            lr=self.lr,
            weight_decay=1e-4,
        )
        frozen, total = self.freeze_epochs, max(self.epochs, self.freeze_epochs + 1)

        def factor(epoch: int) -> float:
            if epoch < frozen:
                return 1.0  # only the head trains: full learning rate
            progress = (epoch - frozen) / max(1, total - frozen)
            return 0.1 * 0.5 * (1.0 + math.cos(math.pi * progress))  # fine-tune: lr/10, cosine

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


class FreezeBackbone(Callback):
    """Keep the backbone (weights and BatchNorm statistics) fixed for the first epochs."""

    def __init__(self, freeze_epochs: int) -> None:
        self.freeze_epochs = freeze_epochs

    def _set(self, module: ClassifierModule, frozen: bool) -> None:
        for p in module.model.parameters():
            if id(p) not in module.head_params:
                p.requires_grad_(not frozen)
        for m in module.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(
                id(p) in module.head_params for p in m.parameters()
            ):
                m.train(not frozen)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert isinstance(pl_module, ClassifierModule)
        self._set(pl_module, trainer.current_epoch < self.freeze_epochs)


# ----------------------------------------------------------------------------- run
def _check_onnx_classifier(cfg: ClassifyConfig, model_file: Path) -> None:
    """Name the options that rebuild an exported classifier, before any work."""
    meta = onnx_model_metadata(model_file)
    if meta.task != "classify":
        raise TrainingDataError(f"--weights {model_file}: a {meta.task} model, not a classifier")
    recorded = {"--arch": (meta.arch, cfg.arch), "--img-size": (meta.input_size, cfg.img_size)}
    wrong = [f"{option} {want}" for option, (want, have) in recorded.items() if want != have]
    if wrong:
        raise TrainingDataError(f"--weights {model_file} was built with other options; pass {' '.join(wrong)}")


def _check_onnx_classes(model_file: Path, class_names: list[str], data: list[str], train: list[Path]) -> None:
    """The data's classes must be the model's (its head is kept), and no training image may be one it was tested on."""
    meta = onnx_model_metadata(model_file)
    theirs = list(meta.class_names)
    if theirs != class_names:
        raise TrainingDataError(
            f"--weights {model_file} predicts classes {theirs}; {', '.join(data)} has {class_names}: "
            "fine-tuning keeps the model's head, so the classes must be the same"
        )
    recorded = meta.extra.get("training_data", {})
    if refuse_held_out(train, recorded, model_file):
        return
    # Models trained before digests were kept record their split by name only: a new split cannot be checked.
    if recorded.get("root") and Path(str(recorded["root"])).name in {Path(d).resolve().name for d in data}:
        log.warning(
            "--weights %s was trained on a set named %r (%s): this run's split may train on its held-out images; "
            "judge the result on images neither saw",
            model_file, recorded.get("root"), recorded.get("split", "split not recorded"),
        )  # fmt: skip


def train_classifier(cfg: ClassifyConfig) -> ClassifyResult:
    """Train, test and export a classifier; everything lands in ``cfg.out``."""
    run_dir = Path(cfg.out)
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    rank_zero = launched_as_rank_zero()
    if rank_zero and run_dir.exists() and any(run_dir.iterdir()) and not cfg.resume:
        raise TrainingDataError(f"{run_dir} already holds a run; pass --resume to continue it or choose --out")
    if cfg.resume and not last.is_file():
        raise TrainingDataError(f"--resume: no checkpoint at {last}")
    norm = normalisation_for(cfg.arch)  # a bad --arch fails here, before anything is written
    onnx_file = onnx_weights_file(cfg.weights)
    if onnx_file is not None:
        _check_onnx_classifier(cfg, onnx_file)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    resolved = _resolve_splits(cfg, run_dir, write=rank_zero)
    splits, class_names, data_summary = resolved.splits, resolved.class_names, resolved.summary
    if onnx_file is not None:
        _check_onnx_classes(onnx_file, class_names, cfg.data_sets, [s.image for s in splits["train"]])
    test_origins: list[str] = []

    def arrays(name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
        samples = splits.get(name, [])
        images, kept, problems = _decode_all(samples, size)
        for p in problems:
            log.warning("skipped unreadable %s: %s", p["path"], p["reason"])
        data_summary.setdefault("skipped", []).extend(problems)
        if name == "test":
            test_origins.extend(resolved.origins["test"][i] for i in kept)
        labels = [class_names.index(canonical_class(str(samples[i].label))) for i in kept]
        return images, np.array(labels, dtype=np.int64)

    cache = round(cfg.img_size * 1.15)
    train_x, train_y = arrays("train", cache)
    val_x, val_y = arrays("val", cfg.img_size)
    test_x, test_y = arrays("test", cfg.img_size) if splits.get("test") else (None, None)
    if len(np.unique(train_y)) < 2:
        raise TrainingDataError("the training split holds fewer than two classes after skipping unreadable files")

    model = create_classifier(cfg.arch, len(class_names))
    train_ds = PatchDataset(train_x, train_y, classification_train_transform(cfg.img_size), norm.mean, norm.std)
    val_ds = PatchDataset(val_x, val_y, classification_eval_transform(cfg.img_size), norm.mean, norm.std)
    if onnx_file is not None:  # an exported (e.g. bundled) model: its folded BatchNorms re-estimated on patches
        n = min(len(train_ds), 128)
        calibration = [torch.stack([train_ds[i][0] for i in range(b, min(b + 32, n))]) for b in range(0, n, 32)]
        weights_message = load_onnx_weights(model, onnx_file, calibration)
    else:
        weights_message = load_pretrained(model, cfg.arch, weights=cfg.weights, pretrained=cfg.pretrained)
    log.info("weights: %s", weights_message)
    generator = torch.Generator().manual_seed(cfg.seed)
    train_dl = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=len(train_ds) > cfg.batch_size,
        generator=generator,
        num_workers=0,
    )
    val_dl = DataLoader(val_ds, batch_size=cfg.batch_size * 2, num_workers=0)

    module = ClassifierModule(
        model, lr=cfg.lr, epochs=cfg.epochs, freeze_epochs=cfg.freeze_epochs, label_smoothing=cfg.label_smoothing
    )
    # Accuracy picks the checkpoint, and the validation loss breaks ties (``val_select``): one
    # error of 900 patches moves accuracy by 0.0011, so on a saturated set several epochs tie,
    # and the first of them — often the first epoch after unfreezing — used to win.
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best-{epoch:02d}-{val_acc:.4f}",
        monitor="val_select",
        mode="max",
        save_top_k=1,
    )
    callbacks: list[Callback] = [
        FreezeBackbone(cfg.freeze_epochs),
        checkpoint,
        latest_checkpoint(ckpt_dir),
        EarlyStopping(monitor="val_acc", mode="max", patience=cfg.patience),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    callbacks += progress_callbacks()
    if rank_zero:
        (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    trainer = make_trainer(
        run_dir,
        epochs=cfg.epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        callbacks=callbacks,
    )
    started = time.perf_counter()
    trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if cfg.resume else None)
    train_seconds = time.perf_counter() - started
    if not trainer.is_global_zero:
        # Rank 0 evaluates and exports; the model file it writes is this run's result too.
        return ClassifyResult(run_dir, run_dir / "model.onnx", weights_message, {}, class_names, train_seconds)

    best = checkpoint.best_model_path or str(last)
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    model = module.model.eval()

    metrics: dict[str, float] = {}
    for name, xs, ys in (("val", val_x, val_y), ("test", test_x, test_y)):
        if xs is None or not len(xs):
            continue
        preds = _predict(model, xs, norm.mean, norm.std, cfg.batch_size * 2)
        metrics[f"{name}_accuracy"] = float((preds.argmax(1) == ys).mean())
        metrics[f"{name}_n"] = float(len(ys))
        if name == "test" and len(cfg.data_sets) > 1:  # several sets: does the model still know each one?
            origin = np.asarray(test_origins)
            for set_name in dict.fromkeys(test_origins):
                hit = origin == set_name
                metrics[f"test_accuracy_{set_name}"] = float((preds.argmax(1)[hit] == ys[hit]).mean())
                metrics[f"test_n_{set_name}"] = float(hit.sum())

    metadata = ModelMetadata(
        task="classify",
        arch=cfg.arch,
        class_names=class_names,
        crack_class=crack_index(class_names),
        input_size=cfg.img_size,
        mean=norm.mean,
        std=norm.std,
        threshold=0.5,
        extra={
            "training_data": data_summary | {"skipped": len(data_summary.get("skipped", []))},
            "metrics": metrics,
            "command": cfg.command,
            "weights": weights_message,
            "train_seconds": round(train_seconds, 1),
        },
    )
    parity_source = test_x if test_x is not None and len(test_x) else val_x
    model_file = run_dir / "model.onnx"
    parity = export_onnx(model, metadata, model_file, parity_images=parity_source[:32])
    metrics.update(parity)
    torch.save({"state_dict": model.state_dict(), "metadata": json.loads(metadata.to_json())}, run_dir / "model.pt")

    csv_path = run_dir / "logs" / "metrics.csv"
    if csv_path.is_file():
        shutil.copyfile(csv_path, run_dir / "metrics.csv")
        try:
            plot_curves(csv_path, run_dir / "curves.png", CURVES, "training curves")
        except ImportError:
            log.warning("matplotlib missing: no curves.png")
    (run_dir / "result.json").write_text(
        json.dumps(
            {
                "metrics": metrics,
                "weights": weights_message,
                "class_names": class_names,
                "train_seconds": round(train_seconds, 1),
                "model_file": str(model_file),
            },
            indent=2,
        )
        + "\n"
    )
    return ClassifyResult(run_dir, model_file, weights_message, metrics, class_names, train_seconds)


@torch.no_grad()
def _predict(model: nn.Module, images: np.ndarray, mean: Any, std: Any, batch: int) -> np.ndarray:
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).float()
        out.append(torch.softmax(model((x - m) / s), dim=1).numpy())
    return np.concatenate(out)
