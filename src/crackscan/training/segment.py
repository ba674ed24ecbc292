"""Crack segmentation training: data from several sets, crack-biased crops, Lightning, export.

Recipe: each DATA set keeps its official test split out of training (a set without one
gets a seeded split whose test part is kept out); validation is carved from the training
part. Training sees random ``crop×crop`` windows of the cached, preprocessed images —
two in three centred near a crack pixel, because cracks cover a few percent of pixels —
with joint image/mask augmentation. Validation runs on whole images padded to a multiple
of 32. After training the crack threshold is calibrated on the validation split
(maximum pooled F1) and the model is exported to ``model.onnx`` with everything the
runtime needs in its metadata.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from crackscan.data.check import ImageFacts
from crackscan.data.classes import canonical_class
from crackscan.data.heldout import held_out_digests
from crackscan.data.layouts import SPLIT_NAMES, DatasetIndex, LayoutKind, Sample, index_dataset
from crackscan.data.licences import licence_of
from crackscan.data.split import SplitError, SplitPlan, make_split, read_split, select_split, write_split
from crackscan.imageio import ImageReadError, MaskKind, read_image, read_mask
from crackscan.metrics.segmentation import CALIBRATION_THRESHOLDS, ConfusionMatrix, PixelCounts, ToleranceCurve
from crackscan.models.classifiers import normalisation_for
from crackscan.models.from_onnx import load_onnx_weights, onnx_model_metadata, onnx_weights_file
from crackscan.models.segmenters import (
    DEFAULT_ENCODER,
    SIZE_MULTIPLE,
    canonical_arch,
    count_parameters,
    create_segmenter,
    load_encoder_pretrained,
    timm_name,
)
from crackscan.runtime.export import export_onnx
from crackscan.runtime.predictor import ModelMetadata
from crackscan.runtime.preprocess_seg import apply_preprocess, pad_to_multiple, preprocess_spec
from crackscan.training.augment import segmentation_train_transform
from crackscan.training.distill import check_teacher_held_out, open_teacher, teacher_maps
from crackscan.training.losses import DeepSupervisionLoss, create_loss, pos_weight_for
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

log = logging.getLogger(__name__)
CURVES = (("loss", ("train_loss", "val_loss")), ("crack IoU / Dice (val)", ("val_iou", "val_dice")))

SCHEDULERS = ("cosine-warm-restarts", "plateau", "onecycle")
# What picks the best epoch (checkpoint, early stopping, plateau): crack IoU pooled over all
# validation pixels, or the mean of each data set's crack IoU (every set weighs the same,
# however many crack pixels its images hold).
SELECT_ON = {"pooled": "val_iou", "mean-of-sets": "val_iou_sets"}


# Licences of the public sets in ../shared/data (docs/data.md), used when a set has no licence file.
@dataclass
class SegmentConfig:
    data: list[str]
    out: str = "runs/segment"
    split: str | None = None
    arch: str = "unet"
    encoder: str = DEFAULT_ENCODER
    loss: str | None = None  # None: hybrid for unet3plus, bce+dice otherwise
    crop: int = 256
    classes: int = 1
    class_names: list[str] | None = None
    scheduler: str = "cosine-warm-restarts"
    select_on: str = "pooled"
    grayscale: bool = False
    clahe: bool = False
    deglare: bool = False
    epochs: int = 40
    batch_size: int = 8
    lr: float = 1e-3
    decoder_channels: list[int] | None = None
    head_stride: int = 1  # 2: U-Net predicts at half resolution (faster on CPU)
    decoder_norm: str = "group"  # "batch": FPN's decoder with BatchNorm instead of per-tile GroupNorm
    deep_supervision: bool = True
    cgm: bool = False
    resume: bool = False
    seed: int = 0
    pretrained: bool = True
    weights: str | None = None
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    mask_dir: str | None = None
    limit: int | None = None  # at most N train and N val images per data set (quick runs, tests)
    patience: int = 10
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    crack_bias: float = 2 / 3  # share of crops centred near a crack pixel
    crops_per_image: int = 1
    val_max_side: int = 1024  # larger validation images are centre-cropped to this (px)
    max_minutes: float | None = None  # wall-clock budget (benchmarks)
    teacher: str | None = None  # distillation: a binary segmentation model (or a+b ensemble) labelling the crops
    teacher_tta: bool = False  # the teacher's maps averaged over flips
    distill_weight: float = 0.5  # weight of the soft-target BCE beside the mask loss
    workers: int = 0
    command: str = field(default_factory=lambda: " ".join(["crackscan", *sys.argv[1:]]))

    @property
    def loss_name(self) -> str:
        return self.loss or ("hybrid" if canonical_arch(self.arch) == "unet3plus" else "bce+dice")


@dataclass
class SegmentResult:
    run_dir: Path
    model_file: Path
    weights_message: str
    metrics: dict[str, float]
    threshold: float
    class_names: list[str]
    train_seconds: float
    onnx_bytes: int
    parameters: int
    val_by_source: dict[str, dict[str, float]] = field(default_factory=dict)  # with several DATA sets


# ----------------------------------------------------------------------------- data sets
@dataclass
class SourceSplit:
    """One DATA argument: its samples per split and where the split came from."""

    name: str
    root: Path
    train: list[Sample]
    val: list[Sample]
    kept_out: int
    split_source: str
    split_file: Path
    licence: str
    test_digests: list[str] = field(default_factory=list)  # content digests of the test part (data.heldout)
    test_images: list[Path] = field(default_factory=list)  # the test part's image files (near-copy check)


def parse_data_argument(arg: str) -> tuple[Path, str | None]:
    """``ROOT`` or ``ROOT/train`` (a set's training part, e.g. ``deepcrack/train``).

    A trailing split name that is not a folder of its own names which part of ROOT's
    split to train on; only ``train`` is accepted, so test images never train a model.
    """
    path = Path(arg)
    if path.is_dir() or path.name.lower() not in SPLIT_NAMES:
        return path, None
    split = SPLIT_NAMES[path.name.lower()]
    if split != "train":
        raise TrainingDataError(f"{arg}: only a set's train part can train a model (use {path.parent}/train)")
    return path.parent, split


def _check_same_split(plan: SplitPlan, name: str, weights: Path) -> None:
    """Refuse a fine-tune whose split would train on the test (or validate on the training) images of the run
    its ``--weights`` come from.

    A run keeps its split files in ``splits/`` beside ``model.pt`` (and above ``checkpoints/``). A
    different ``--seed`` draws a different split, so without this a fine-tune would quietly
    see the earlier run's held-out images.
    """
    for run in (weights.parent, weights.parent.parent):
        earlier = run / "splits" / f"{name}.json"
        if not earlier.is_file():
            continue
        try:
            old = read_split(earlier).splits
        except SplitError:
            return
        leaked = set(plan.splits.get("train", [])) & set(old.get("test", []))
        seen = set(plan.splits.get("val", [])) & set(old.get("train", []))
        if leaked or seen:
            detail = (
                f"{len(leaked)} of its test images would train this model"
                if leaked
                else f"{len(seen)} of its training images would validate this model"
            )
            raise TrainingDataError(
                f"{name}: --weights {weights} were trained on the split in {earlier}; this run's split differs "
                f"({detail}). Pass --split {run / 'splits'} "
                "to keep that split"
            )
        return


def _check_onnx_held_out(name: str, index: DatasetIndex, train: list[Sample], model_file: Path) -> None:
    """The exported-model counterpart of :func:`_check_same_split`: no training image of this run may be one the
    model was tested on. A model file records the content digests of its test images (any set: a copy under
    another name is caught too). Files from before digests were kept record how each set was split: a
    generated split is drawn again as it was then (before near duplicates were grouped, ``similarity=None``);
    when its counts match the recorded ones, this run's training images must lie outside its test part (else a
    warning: another folder of the same name, or other fractions)."""
    training_data = onnx_model_metadata(model_file).extra.get("training_data", {})
    if refuse_held_out([s.image for s in train], training_data, model_file, what=f"{name}: "):
        return
    for source in training_data.get("sources", []):
        earlier = str(source.get("split", ""))
        seed = re.match(r"new stratified split \(seed (-?\d+)\)", earlier)
        if source.get("name") != name or seed is None:
            continue
        # Why not compare the seed: since near duplicates are grouped, the same seed draws another split
        # (28 of crackmix's 105 test images moved), so only the split's content can tell.
        old = make_split(index.root, seed=int(seed.group(1)), similarity=None, mask_dir=index.mask_dir)
        recorded = source.get("counts", {})
        rebuilt = {"train": len(old.splits["train"]), "val": len(old.splits["val"])}
        rebuilt["test_kept_out"] = len(old.splits["test"])
        if any(recorded.get(k) != v for k, v in rebuilt.items()):
            # Another folder of the same name, or other fractions: nothing to compare with (as for classifiers).
            log.warning(
                "%s: --weights %s were trained on a %s of a set of this name that cannot be drawn again here "
                "(recorded %s, drawn %s): if this is that set, this split may train on its held-out images",
                name, model_file, earlier, recorded, rebuilt,
            )  # fmt: skip
            continue
        leaked = sorted(set(index.relative(s.image) for s in train) & set(old.splits["test"]))
        if leaked:
            shown = ", ".join(leaked[:3]) + (" …" if len(leaked) > 3 else "")
            raise TrainingDataError(
                f"{name}: {len(leaked)} training image(s) of this split ({shown}) are in the test part of the "
                f"{earlier} that --weights {model_file} kept out. Pass --split with that split "
                f"(`crackscan data split {index.root} --seed {seed.group(1)} --similarity 0` draws it again)"
            )


def resolve_sources(cfg: SegmentConfig, run_dir: Path, *, write: bool = True) -> list[SourceSplit]:
    """Index every DATA set, split it (official split kept, test kept out) and write split files (if ``write``)."""
    if not cfg.data:
        raise TrainingDataError("give at least one data set (ROOT with images/ and masks/)")
    split_dir = split_folder(cfg.split, len(cfg.data))
    sources: list[SourceSplit] = []
    plans: list[tuple[SplitPlan, Path]] = []  # written once every check has passed: a refused run leaves nothing
    roots = [parse_data_argument(arg)[0] for arg in cfg.data]
    facts: dict[Path, ImageFacts] = {}  # images decoded by the split, reused by the cross-set copy check
    for root, name in zip(roots, set_names(roots), strict=True):
        index = index_dataset(root, mask_dir=cfg.mask_dir)
        if index.layout is not LayoutKind.IMAGE_MASK_PAIRS:
            raise TrainingDataError(
                f"{root}: segmentation needs image/mask pairs (ROOT/images/ + ROOT/masks/), found class folders"
            )
        if not index.samples:
            raise TrainingDataError(
                f"{root}: no image has a mask with the same file stem in {index.mask_dir}/ "
                f"({len(index.unmatched_images)} images without a mask)"
            )
        if split_dir is not None:
            path = split_file_in(split_dir, name, root)
            plan: SplitPlan = read_split(path)
            how = f"split file {path}"
        elif cfg.split:
            plan = read_split(cfg.split)
            how = f"split file {cfg.split}"
        else:
            plan = make_split(
                root, val=cfg.val_fraction, test=cfg.test_fraction, seed=cfg.seed, mask_dir=cfg.mask_dir, facts=facts
            )
            how = (
                "official split kept, val carved from train"
                if plan.kept_official
                else f"new stratified split (seed {cfg.seed}), test part kept out"
            )
        train = select_split(index, plan, "train") if plan.splits.get("train") else []
        val = select_split(index, plan, "val") if plan.splits.get("val") else []
        # the test part is only hashed (data.heldout), never read as pairs: files missing from it are no error
        test = [index.root / k for k in plan.splits.get("test", []) if (index.root / k).is_file()]
        if cfg.limit:
            train, val = train[: cfg.limit], val[: cfg.limit]
        onnx_file = onnx_weights_file(cfg.weights)
        if onnx_file is not None:
            _check_onnx_held_out(name, index, train, onnx_file)
        elif cfg.weights:
            _check_same_split(plan, name, Path(cfg.weights))
        split_file = run_dir / "splits" / f"{name}.json"
        plans.append((plan, split_file))
        if not train:
            raise TrainingDataError(f"{root}: the split leaves no training images")
        kept_out = len(plan.splits.get("test", []))
        sources.append(
            SourceSplit(
                name, root, train, val, kept_out, how, split_file, licence_of(root), held_out_digests(test), test
            )
        )
    if not any(s.val for s in sources):
        raise TrainingDataError("no validation images: raise --val-fraction or give a split file with a val split")
    # Several sets are split one by one; a given split file may predate the near-duplicate grouping
    # of `data split` (or come from another tool). A new split of one set already keeps copies together.
    if len(sources) > 1 or cfg.split:
        refuse_copies_across_sets(
            [x.image for s in sources for x in s.train],
            [p for s in sources for p in s.test_images],
            {d for s in sources for d in s.test_digests},
            facts,
        )
    if write:
        for plan, split_file in plans:
            write_split(plan, split_file)
    return sources


@dataclass
class Decoded:
    images: list[np.ndarray] = field(default_factory=list)  # H×W×3 uint8, preprocessed
    masks: list[np.ndarray] = field(default_factory=list)  # H×W uint8 labels
    names: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)  # image files, for a distillation teacher
    skipped: list[dict[str, str]] = field(default_factory=list)


def decode_pairs(samples: list[Sample], *, classes: int, preprocess: dict[str, Any]) -> Decoded:
    """Read every pair once (RAM cache), check sizes and labels, apply the preprocessing.

    Unreadable files are skipped (listed in ``skipped``); image/mask size mismatches and
    labels the model cannot represent raise :class:`TrainingDataError`.
    """

    def one(s: Sample) -> tuple[np.ndarray, np.ndarray] | str:
        try:
            image = read_image(s.image)
            mask = read_mask(s.mask)  # type: ignore[arg-type]
        except ImageReadError as exc:
            return f"unreadable: {exc.reason}"
        if image.shape[:2] != mask.labels.shape:
            h, w = image.shape[:2]
            mh, mw = mask.labels.shape
            return f"size mismatch: image {w}×{h}, mask {mw}×{mh}"
        labels = mask.labels
        if classes == 1 and mask.kind is MaskKind.MULTICLASS and labels.max() > 1:
            return (
                "multi-class index mask "
                f"(values {', '.join(map(str, sorted(set(np.unique(labels).tolist()))))}) in a binary run"
            )
        return apply_preprocess(image, preprocess), labels

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(one, samples))
    out = Decoded()
    fatal: list[str] = []
    for s, r in zip(samples, results, strict=True):
        if isinstance(r, str):
            if r.startswith("unreadable"):
                out.skipped.append({"path": str(s.image), "reason": r})
            else:
                fatal.append(f"{s.image.name}: {r}")
            continue
        out.images.append(r[0])
        out.masks.append(r[1])
        out.names.append(s.key)
        out.paths.append(s.image)
    if fatal:
        hint = (
            " — use --classes N for index masks or --mask-dir to pick a binary mask folder"
            if any("multi-class" in f for f in fatal)
            else " — run `crackscan data check` / `crackscan data fix`"
        )
        shown = "; ".join(fatal[:5]) + (f"; … and {len(fatal) - 5} more" if len(fatal) > 5 else "")
        raise TrainingDataError(f"{len(fatal)} image/mask pair(s) cannot train: {shown}{hint}")
    top = max((int(m.max()) for m in out.masks), default=0)
    if classes > 1 and top >= classes:
        raise TrainingDataError(f"masks hold label {top} but --classes {classes} allows 0..{classes - 1}")
    return out


def _check_labels(train: Decoded, classes: int) -> None:
    present = set()
    for m in train.masks:
        present.update(np.unique(m).tolist())
    if classes > 2 and len(present - {0}) <= 1:
        raise TrainingDataError(
            f"--classes {classes} but the training masks hold only "
            f"{'background' if present <= {0} else 'background and one class'}: "
            "train a binary model (--classes 1) or point --mask-dir at the multi-class masks"
        )
    if not (present - {0}):
        raise TrainingDataError("no training mask holds a single crack pixel; nothing to learn")


def _normalise(image: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    x = (image.astype(np.float32) - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


class CropDataset(Dataset):
    """Random ``crop×crop`` training windows of cached images, biased towards cracks.

    Images smaller than the crop are reflect-padded (image and mask alike) once. A share
    ``crack_bias`` of windows is centred (± a quarter crop) on a random crack pixel; the
    rest are uniform, so crack-free texture is still learnt as background.
    """

    def __init__(
        self,
        decoded: Decoded,
        crop: int,
        transform: Any,
        mean: Any,
        std: Any,
        *,
        crack_bias: float = 2 / 3,
        length: int | None = None,
        seed: int = 0,
        max_coords: int = 4096,
        soft: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.crop = crop
        self.transform = transform
        self.mean = np.asarray(mean, np.float32) * 255.0
        self.std = np.asarray(std, np.float32) * 255.0
        self.crack_bias = crack_bias
        self.rng = np.random.default_rng(seed)
        self.images: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.coords: list[np.ndarray] = []
        # A teacher's uint8 probability map rides along as the mask's second channel: one
        # geometric augmentation (nearest-neighbour, as for labels) moves both.
        self.distilled = soft is not None
        softs = soft if soft is not None else [None] * len(decoded.masks)
        for image, mask, prob in zip(decoded.images, decoded.masks, softs, strict=True):
            if prob is not None:
                mask = np.dstack([mask, prob])
            h, w = mask.shape[:2]
            if h < crop or w < crop:
                pad = ((0, max(0, crop - h)), (0, max(0, crop - w)))
                mode = "reflect" if crop - h < h and crop - w < w else "symmetric"
                image = np.pad(image, (*pad, (0, 0)), mode=mode)
                mask = np.pad(mask, pad + ((0, 0),) * (mask.ndim - 2), mode=mode)
            fg = np.flatnonzero((mask[..., 0] if mask.ndim == 3 else mask).ravel())
            if len(fg) > max_coords:  # a sample of crack pixels is enough to aim at
                fg = self.rng.choice(fg, max_coords, replace=False)
            self.images.append(image)
            self.masks.append(mask)
            self.coords.append(fg.astype(np.int64))
        self.length = length or len(self.images)

    def __len__(self) -> int:
        return self.length

    def window(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask, fg = self.images[i], self.masks[i], self.coords[i]
        h, w = mask.shape[:2]
        c = self.crop
        if len(fg) and self.rng.random() < self.crack_bias:
            y, x = divmod(int(fg[self.rng.integers(len(fg))]), w)
            jitter = self.rng.integers(-(c // 4), c // 4 + 1, size=2)
            top = int(np.clip(y + jitter[0] - c // 2, 0, h - c))
            left = int(np.clip(x + jitter[1] - c // 2, 0, w - c))
        else:
            top, left = int(self.rng.integers(0, h - c + 1)), int(self.rng.integers(0, w - c + 1))
        return image[top : top + c, left : left + c], mask[top : top + c, left : left + c]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        image, mask = self.window(i % len(self.images))
        out = self.transform(image=image, mask=mask)
        x = _normalise(out["image"], self.mean, self.std)
        if not self.distilled:
            return x, torch.from_numpy(out["mask"].astype(np.int64))
        both = out["mask"]
        labels = torch.from_numpy(both[..., 0].astype(np.int64))
        return x, labels, torch.from_numpy(both[..., 1].astype(np.float32) / 255.0)


class WholeImageDataset(Dataset):
    """Validation images padded to a multiple of 32 (centre-cropped beyond ``max_side``).

    Items are ``(x, labels, (h, w), source)``: metrics use only the top-left ``h×w`` (the
    padding is reflection, not truth); ``source`` is the image's data-set index from
    ``sources`` (0 when not given), for per-set validation figures.
    """

    def __init__(
        self, decoded: Decoded, mean: Any, std: Any, *, max_side: int = 1024, sources: Sequence[int] | None = None
    ) -> None:
        self.mean = np.asarray(mean, np.float32) * 255.0
        self.std = np.asarray(std, np.float32) * 255.0
        self.items: list[tuple[np.ndarray, np.ndarray, tuple[int, int]]] = []
        self.sources = list(sources) if sources is not None else [0] * len(decoded.images)
        if len(self.sources) != len(decoded.images):
            raise ValueError(f"{len(self.sources)} source indices for {len(decoded.images)} images")
        limit = max(SIZE_MULTIPLE, max_side - max_side % SIZE_MULTIPLE)
        for image, mask in zip(decoded.images, decoded.masks, strict=True):
            h, w = mask.shape
            if h > limit or w > limit:
                top, left = max(0, (h - limit) // 2), max(0, (w - limit) // 2)
                image = image[top : top + limit, left : left + limit]
                mask = mask[top : top + limit, left : left + limit]
            padded, hw = pad_to_multiple(image, SIZE_MULTIPLE)
            padded_mask, _ = pad_to_multiple(mask, SIZE_MULTIPLE)
            self.items.append((padded, padded_mask, hw))

    def __len__(self) -> int:
        return len(self.items)

    def shape_of(self, i: int) -> tuple[int, int]:
        return self.items[i][0].shape[:2]  # type: ignore[return-value]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        image, mask, hw = self.items[i]
        x = _normalise(image, self.mean, self.std)
        return x, torch.from_numpy(mask.astype(np.int64)), torch.tensor(hw), self.sources[i]


class SameShapeBatches(Sampler[list[int]]):
    """Batches of images with equal padded shape and data set (whole-image validation of mixed sizes)."""

    def __init__(self, dataset: WholeImageDataset, batch_size: int) -> None:
        groups: dict[tuple[tuple[int, int], int], list[int]] = {}
        for i in range(len(dataset)):
            groups.setdefault((dataset.shape_of(i), dataset.sources[i]), []).append(i)
        self.batches = [idx[k : k + batch_size] for idx in groups.values() for k in range(0, len(idx), batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def whole_image_loader(dataset: WholeImageDataset, train_batch_size: int) -> DataLoader:
    """Validation loader: whole images, half the training batch (they are larger than crops)."""
    return DataLoader(dataset, batch_sampler=SameShapeBatches(dataset, max(1, train_batch_size // 2)), num_workers=0)


# ----------------------------------------------------------------------------- model
def crack_probabilities(logits: torch.Tensor, crack_class: int = 1) -> torch.Tensor:
    """N×H×W crack probability from N×C×H×W logits (sigmoid for C = 1, softmax otherwise)."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)[:, crack_class]


class SegmenterModule(L.LightningModule):
    """Loss, optimiser, schedule and validation metrics around any segmenter."""

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        *,
        classes: int,
        crack_class: int,
        lr: float,
        scheduler: str,
        epochs: int,
        steps_per_epoch: int,
        source_names: Sequence[str] = (),
        monitor: str = "val_iou",
        distill_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = DeepSupervisionLoss(loss)
        self.classes = classes
        self.crack_class = crack_class
        self.lr = lr
        self.scheduler = scheduler
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.images_seen = 0
        # Per-set figures only mean something with two or more sets.
        self.source_names = list(source_names) if len(source_names) > 1 else []
        self.monitor = monitor
        self.distill_weight = distill_weight
        self._counts: PixelCounts | ConfusionMatrix = PixelCounts()
        self._by_source: dict[int, PixelCounts | ConfusionMatrix] = {}

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, *soft = batch
        out = self.model(x)
        loss = self.loss(out, y)
        if soft:  # distillation: BCE of the top output against the teacher's probabilities
            top = out if isinstance(out, torch.Tensor) else out["masks"][0]
            kd = F.binary_cross_entropy_with_logits(top[:, 0], soft[0])
            self.log("train_distill_loss", kd, on_step=False, on_epoch=True, sync_dist=True)
            loss = loss + self.distill_weight * kd
        self.images_seen += len(x)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def _new_counts(self) -> PixelCounts | ConfusionMatrix:
        return PixelCounts() if self.classes == 1 else ConfusionMatrix(self.classes)

    def on_validation_epoch_start(self) -> None:
        self._counts = self._new_counts()
        self._by_source = {i: self._new_counts() for i in range(len(self.source_names))}

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y, hw, *rest = batch
        logits = self.model(x)
        self.log("val_loss", self.loss(logits, y), on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        update_counts(self._counts, logits, y, hw, self.crack_class, threshold=0.5)
        if self.source_names and rest:
            sources = torch.as_tensor(rest[0])
            for index in sources.unique().tolist():
                pick = sources == index
                update_counts(self._by_source[index], logits[pick], y[pick], hw[pick], self.crack_class, threshold=0.5)

    def on_validation_epoch_end(self) -> None:
        for name, value in counts_summary(self._counts, self.crack_class).items():
            self.log(f"val_{name}", value, prog_bar=name == "iou", sync_dist=True)
        if not self.source_names:
            return
        ious = []
        for index, name in enumerate(self.source_names):
            iou = counts_summary(self._by_source[index], self.crack_class)["iou"]
            self.log(f"val_iou_{metric_slug(name)}", iou, sync_dist=True)
            ious.append(iou)
        self.log("val_iou_sets", float(np.mean(ious)), prog_bar=self.monitor == "val_iou_sets", sync_dist=True)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=1e-4)
        if self.scheduler == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=3)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "monitor": self.monitor}}
        if self.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=self.lr, total_steps=max(2, self.epochs * self.steps_per_epoch), pct_start=0.2
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        # Warm restarts: cycles of 10 epochs (doubling) shake the decoder out of
        # "all background", the usual first minimum of a rare-class problem.
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=max(1, min(10, self.epochs)), T_mult=2, eta_min=self.lr * 0.01
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def metric_slug(name: str) -> str:
    """A data-set name as a metric-name part: ``crack500`` stays, ``my set`` becomes ``my_set``."""
    return re.sub(r"\W+", "_", name).strip("_") or "set"


@torch.no_grad()
def update_counts(
    counts: PixelCounts | ConfusionMatrix,
    logits: torch.Tensor,
    labels: torch.Tensor,
    hw: torch.Tensor,
    crack_class: int,
    *,
    threshold: float = 0.5,
) -> None:
    """Add a padded batch to the metric accumulators, each image cropped to its real size."""
    if isinstance(counts, PixelCounts):
        probs = crack_probabilities(logits.float(), crack_class).cpu().numpy()
        target = labels.cpu().numpy()
        for p, t, (h, w) in zip(probs, target, hw.tolist(), strict=True):
            counts.update(p[:h, :w], t[:h, :w] > 0, threshold)
    else:
        pred = logits.argmax(dim=1).cpu().numpy()
        target = labels.cpu().numpy()
        for p, t, (h, w) in zip(pred, target, hw.tolist(), strict=True):
            counts.update(p[:h, :w], t[:h, :w])


def counts_summary(counts: PixelCounts | ConfusionMatrix, crack_class: int) -> dict[str, float]:
    """Crack IoU, Dice/F1, precision and recall (pooled over pixels), in [0, 1].

    Multi-class: ``iou``/``dice`` are means over the foreground classes present; precision
    and recall are the crack class's.
    """
    if isinstance(counts, PixelCounts):
        if not counts.n:
            return {"iou": 0.0, "dice": 0.0, "precision": 0.0, "recall": 0.0}
        return {"iou": counts.iou, "dice": counts.dice, "precision": counts.precision, "recall": counts.recall}
    m = counts.matrix.astype(np.float64)
    iou, dice = counts.iou()[1:], counts.dice()[1:]
    tp = m[crack_class, crack_class]
    return {
        "iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
        "dice": float(np.nanmean(dice)) if np.isfinite(dice).any() else 0.0,
        "precision": float(tp / m[:, crack_class].sum()) if m[:, crack_class].sum() else 0.0,
        "recall": float(tp / m[crack_class].sum()) if m[crack_class].sum() else 0.0,
        "crack_iou": float(counts.iou()[crack_class]) if np.isfinite(counts.iou()[crack_class]) else 0.0,
    }


class Throughput(Callback):
    """Training images per second: forward, backward and optimiser step of each batch.

    Timed per batch because Lightning runs validation inside the training epoch; data
    loading (crop + augmentation) is not included.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.images = 0
        self._t0 = 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.seconds += time.perf_counter() - self._t0
        self.images += len(batch[0])

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


# ----------------------------------------------------------------------------- run
def _class_names(cfg: SegmentConfig) -> list[str]:
    n = max(2, cfg.classes)
    if cfg.class_names:
        if len(cfg.class_names) != n:
            raise TrainingDataError(f"--class-names needs {n} names (background first), got {len(cfg.class_names)}")
        return list(cfg.class_names)
    if cfg.classes == 1:
        return ["background", "crack"]
    return ["background", *(f"class_{i}" for i in range(1, n))]


def _crack_class(names: list[str]) -> int:
    for i, name in enumerate(names[1:], start=1):
        if canonical_class(name) == "crack":
            return i
    return 1


def _flip_averaged(model: nn.Module, x: torch.Tensor, logits: torch.Tensor, crack_class: int) -> torch.Tensor:
    """Crack probabilities of ``x`` (whose logits are given) averaged with its horizontal and vertical flips,
    as runtime TTA does."""
    p = crack_probabilities(logits.float(), crack_class)
    p = p + crack_probabilities(model(x.flip(-1)).float(), crack_class).flip(-1)
    p = p + crack_probabilities(model(x.flip(-2)).float(), crack_class).flip(-2)
    return p / 3.0


@torch.no_grad()
def calibrate(
    model: nn.Module,
    loader: DataLoader,
    *,
    classes: int,
    crack_class: int,
    threshold: float | None = None,
    tta: bool = False,
) -> tuple[float, dict[str, float]]:
    """The crack threshold in [0.05, 0.95] maximising pooled pixel F1 on ``loader``, and metrics.

    Metrics: pooled IoU/Dice/precision/recall at that threshold, ODS/OIS F1 with a 2-px
    tolerance, and the calibrated F1. Multi-class models keep 0.5 (their masks are argmax).
    A given ``threshold`` is kept instead (scoring one part of the validation split at the
    threshold calibrated on all of it). ``tta`` (binary models): probabilities averaged over
    flips, for the threshold ``--tta`` runs use.
    """
    if tta and classes > 1:
        raise ValueError("TTA calibration is for binary segmenters (multi-class masks are an argmax)")
    model.eval()
    exact = ToleranceCurve(CALIBRATION_THRESHOLDS.copy(), 0.0)
    tolerant = ToleranceCurve()
    maps: list[tuple[np.ndarray, np.ndarray]] = []
    confusion = ConfusionMatrix(classes) if classes > 1 else None
    for x, y, hw, *_ in loader:
        logits = model(x)
        probs = (
            _flip_averaged(model, x, logits, crack_class) if tta else crack_probabilities(logits.float(), crack_class)
        ).numpy()
        if confusion is not None:
            update_counts(confusion, logits, y, hw, crack_class)
        for p, t, (h, w) in zip(probs, y.numpy(), hw.tolist(), strict=True):
            truth = t[:h, :w] == crack_class if classes > 1 else t[:h, :w] > 0
            exact.update(p[:h, :w], truth)
            tolerant.update(p[:h, :w], truth)
            maps.append((p[:h, :w], truth))
    if not maps:
        return 0.5, {}
    if threshold is None:
        threshold = float(exact.ods_threshold) if classes == 1 else 0.5
    metrics: dict[str, float] = {"calibrated_f1": float(exact.ods_f1)}
    if confusion is not None:
        metrics.update(counts_summary(confusion, crack_class))
    else:
        pixel = PixelCounts()
        for p, t in maps:
            pixel.update(p, t, threshold)
        metrics.update(counts_summary(pixel, crack_class))
    metrics.update(
        ods_f1=tolerant.ods_f1, ods_threshold=tolerant.ods_threshold, ois_f1=tolerant.ois_f1, n_images=float(len(maps))
    )
    return threshold, metrics


def _distillation_targets(
    cfg: SegmentConfig, sources: list[SourceSplit], train: Decoded, run_dir: Path
) -> tuple[list[np.ndarray] | None, dict[str, Any]]:
    """The teacher's map of every training image (``--teacher``), cached in the run folder for ``--resume``."""
    if not cfg.teacher:
        return None, {}
    if cfg.classes != 1:
        raise TrainingDataError("--teacher: distillation is for binary segmenters (--classes 1)")
    if cfg.distill_weight < 0:
        raise TrainingDataError(f"--distill-weight must be >= 0, got {cfg.distill_weight}")
    teacher = open_teacher(cfg.teacher)  # opened once: checked, then labelling
    warnings = check_teacher_held_out(teacher, [p for s in sources for p in s.test_images])
    for w in warnings:
        log.warning("%s", w)
    info: dict[str, Any] = {
        "teacher": cfg.teacher,
        "teacher_tta": cfg.teacher_tta,
        "weight": cfg.distill_weight,
        "warnings": warnings,
    }
    cache = run_dir / "teacher_maps.npz"
    key = json.dumps({"teacher": cfg.teacher, "tta": cfg.teacher_tta, "images": train.names})
    if cache.is_file():
        with np.load(cache) as held:
            if str(held["key"]) == key:
                log.info("teacher maps: reusing %s", cache)
                return [held[f"map{i}"] for i in range(len(train.names))], info
    started = time.perf_counter()
    total = len(train.paths)

    def progress(done: int) -> None:  # labelling takes minutes on a CPU: say how far it got
        if done % 50 == 0 or done == total:
            log.info("teacher: %d/%d training images labelled", done, total)

    maps = teacher_maps(teacher, train.paths, [m.shape for m in train.masks], tta=cfg.teacher_tta, progress=progress)
    info["teacher_seconds"] = round(time.perf_counter() - started, 1)
    if launched_as_rank_zero():
        np.savez_compressed(cache, key=np.array(key), **{f"map{i}": m for i, m in enumerate(maps)})
    return maps, info


def _check_onnx_architecture(cfg: SegmentConfig, model_file: Path) -> None:
    """Name the options that rebuild an exported model, before any work (what its metadata records is compared)."""
    meta = onnx_model_metadata(model_file)
    if meta.task != "segment":
        raise TrainingDataError(f"--weights {model_file}: a {meta.task} model, not a segmenter")
    if meta.extra.get("ensemble"):  # no one architecture rebuilds it
        files = ", ".join(str(m.get("file")) for m in meta.extra["ensemble"])
        raise TrainingDataError(
            f"--weights {model_file}: several models merged into one file; fine-tune one of them ({files})"
        )
    recorded = {
        "--arch": (meta.arch, canonical_arch(cfg.arch)),
        "--classes": (len(meta.class_names) if len(meta.class_names) > 2 else 1, cfg.classes),
        "--encoder": (meta.extra.get("encoder"), cfg.encoder),
        "--head-stride": (meta.extra.get("head_stride"), cfg.head_stride),
        "--decoder-norm": (meta.extra.get("decoder_norm"), cfg.decoder_norm),
        "--decoder-channels": (meta.extra.get("decoder_channels"), cfg.decoder_channels),
    }
    wrong = [
        f"{option} {','.join(map(str, want)) if isinstance(want, list) else want}"
        for option, (want, have) in recorded.items()
        if want is not None and want != have
    ]
    if wrong:
        raise TrainingDataError(f"--weights {model_file} was built with other options; pass {' '.join(wrong)}")


def train_segmenter(cfg: SegmentConfig) -> SegmentResult:
    """Train, calibrate and export a segmenter; everything lands in ``cfg.out``."""
    if cfg.scheduler not in SCHEDULERS:
        raise TrainingDataError(f"unknown scheduler {cfg.scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    if cfg.select_on not in SELECT_ON:
        raise TrainingDataError(f"unknown --select-on {cfg.select_on!r}; choose one of {', '.join(SELECT_ON)}")
    if cfg.crop % SIZE_MULTIPLE:
        raise TrainingDataError(f"--crop must be a multiple of {SIZE_MULTIPLE} px, got {cfg.crop}")
    if cfg.classes < 1:
        raise TrainingDataError("--classes must be >= 1 (1 = binary crack mask)")
    run_dir = Path(cfg.out)
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    rank_zero = launched_as_rank_zero()  # other DDP ranks start after rank 0 made the folder
    if rank_zero and run_dir.exists() and any(run_dir.iterdir()) and not cfg.resume:
        raise TrainingDataError(f"{run_dir} already holds a run; pass --resume to continue it or choose --out")
    if cfg.resume and not last.is_file():
        raise TrainingDataError(f"--resume: no checkpoint at {last}")
    onnx_file = onnx_weights_file(cfg.weights)
    if onnx_file is not None:
        _check_onnx_architecture(cfg, onnx_file)
    class_names = _class_names(cfg)
    crack_class = _crack_class(class_names)
    # Build the model before touching the run folder: a bad --arch/--encoder leaves nothing behind.
    model = create_segmenter(
        cfg.arch, cfg.encoder, cfg.classes, decoder_channels=cfg.decoder_channels,
        deep_supervision=cfg.deep_supervision, cgm=cfg.cgm, head_stride=cfg.head_stride,
        decoder_norm=cfg.decoder_norm,
    )  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    sources = resolve_sources(cfg, run_dir, write=rank_zero)
    preprocess = preprocess_spec(grayscale=cfg.grayscale, clahe=cfg.clahe, deglare=cfg.deglare)
    train = Decoded()
    val = Decoded()
    val_parts: dict[str, Decoded] = {}  # per source, for the per-set validation figures
    val_sources: list[int] = []  # per validation image, its index in val_parts
    for src in sources:
        for samples, into in ((src.train, train), (src.val, val)):
            part = decode_pairs(samples, classes=cfg.classes, preprocess=preprocess)
            into.images += part.images
            into.masks += part.masks
            into.names += part.names
            into.paths += part.paths
            into.skipped += part.skipped
            if into is val and part.images:
                val_sources += [len(val_parts)] * len(part.images)
                val_parts[src.name] = part
    for p in train.skipped + val.skipped:
        log.warning("skipped %s: %s", p["path"], p["reason"])
    if not train.images or not val.images:
        raise TrainingDataError("no readable training or validation pairs left after skipping unreadable files")
    _check_labels(train, cfg.classes)
    soft, distillation = _distillation_targets(cfg, sources, train, run_dir)
    if cfg.select_on == "mean-of-sets" and len(val_parts) < 2:
        raise TrainingDataError("--select-on mean-of-sets needs validation images from two or more data sets")
    monitor = SELECT_ON[cfg.select_on]

    norm = normalisation_for(timm_name(cfg.encoder))
    crack_fraction = float(np.mean([(m > 0).mean() for m in train.masks]))
    loss = create_loss(cfg.loss_name, cfg.classes, pos_weight=pos_weight_for(crack_fraction))

    transform = segmentation_train_transform()
    transform.set_random_seed(cfg.seed)
    length = max(len(train.images) * cfg.crops_per_image, cfg.batch_size)
    train_ds = CropDataset(
        train, cfg.crop, transform, norm.mean, norm.std, crack_bias=cfg.crack_bias, length=length, seed=cfg.seed,
        soft=soft,
    )  # fmt: skip
    if onnx_file is not None:  # an exported (e.g. bundled) model: its folded BatchNorms re-estimated on crops
        calibration = [torch.stack([train_ds[i][0] for i in range(b, b + 8)]) for b in range(0, 32, 8)]
        weights_message = load_onnx_weights(model, onnx_file, calibration)
    else:
        weights_message = load_encoder_pretrained(model, cfg.encoder, cfg.weights, cfg.pretrained)
    log.info("weights: %s", weights_message)
    val_ds = WholeImageDataset(val, norm.mean, norm.std, max_side=cfg.val_max_side, sources=val_sources)
    generator = torch.Generator().manual_seed(cfg.seed)
    train_dl = DataLoader(
        train_ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True, generator=generator, num_workers=cfg.workers
    )
    val_dl = whole_image_loader(val_ds, cfg.batch_size)

    module = SegmenterModule(
        model,
        loss,
        classes=cfg.classes,
        crack_class=crack_class,
        lr=cfg.lr,
        scheduler=cfg.scheduler,
        epochs=cfg.epochs,
        steps_per_epoch=len(train_dl),
        source_names=list(val_parts),
        monitor=monitor,
        distill_weight=cfg.distill_weight if soft is not None else 0.0,
    )
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename=f"best-{{epoch:02d}}-{{{monitor}:.4f}}",
        monitor=monitor,
        mode="max",
        save_top_k=1,
    )
    throughput = Throughput()
    callbacks: list[Callback] = [
        checkpoint,
        latest_checkpoint(ckpt_dir),
        EarlyStopping(monitor=monitor, mode="max", patience=cfg.patience),
        LearningRateMonitor(logging_interval="epoch"),
        throughput,
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
        max_time=timedelta(minutes=cfg.max_minutes) if cfg.max_minutes else None,
        num_sanity_val_steps=0,
    )
    started = time.perf_counter()
    trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if cfg.resume else None)
    train_seconds = time.perf_counter() - started
    if not trainer.is_global_zero:
        # Rank 0 calibrates and exports; the model file it writes is this run's result too.
        model_file = run_dir / "model.onnx"
        return SegmentResult(
            run_dir, model_file, weights_message, {}, math.nan, class_names, train_seconds, 0, count_parameters(model)
        )

    best = checkpoint.best_model_path or str(last)
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    model = module.model.cpu().eval()

    threshold, val_metrics = calibrate(
        model, whole_image_loader(val_ds, cfg.batch_size), classes=cfg.classes, crack_class=crack_class
    )
    metrics = {f"val_{k}": float(v) for k, v in val_metrics.items()}
    metrics["train_images_per_s"] = round(throughput.images_per_second, 2)
    log.info("calibrated threshold %.2f (val F1 %.3f)", threshold, val_metrics.get("calibrated_f1", math.nan))
    # Pooled validation favours the set with the most crack pixels; with several sets, say
    # how each one fares at the shared threshold (annotation styles differ between sets).
    by_source: dict[str, dict[str, float]] = {}
    if len(val_parts) > 1:
        for name, part in val_parts.items():
            part_dl = whole_image_loader(
                WholeImageDataset(part, norm.mean, norm.std, max_side=cfg.val_max_side), cfg.batch_size
            )
            _, part_metrics = calibrate(
                model, part_dl, classes=cfg.classes, crack_class=crack_class, threshold=threshold
            )
            by_source[name] = {k: round(float(v), 4) for k, v in part_metrics.items()}
            log.info("val %s: IoU %.3f, ODS F1 %.3f", name, part_metrics["iou"], part_metrics["ods_f1"])

    if cfg.classes == 1:
        # flips soften the map's edges, so --tta runs get a threshold of their own (ModelMetadata.threshold_for)
        tta_threshold, tta_metrics = calibrate(
            model, whole_image_loader(val_ds, cfg.batch_size), classes=1, crack_class=crack_class, tta=True
        )
        metrics.update({f"val_tta_{k}": float(v) for k, v in tta_metrics.items() if k in ("calibrated_f1", "iou")})
        log.info(
            "TTA threshold %.2f (val F1 %.3f, IoU %.3f)",
            tta_threshold,
            tta_metrics["calibrated_f1"],
            tta_metrics["iou"],
        )

    data_summary = {
        "sources": [
            {
                "name": s.name,
                "root": str(s.root.resolve()),
                "split": s.split_source,
                "split_file": str(s.split_file.relative_to(run_dir)),
                "counts": {"train": len(s.train), "val": len(s.val), "test_kept_out": s.kept_out},
                "licence": s.licence,
                "test_digests": s.test_digests,
            }
            for s in sources
        ],
        "train_images": len(train.images),
        "val_images": len(val.images),
        "crack_pixel_fraction": round(crack_fraction, 5),
        "skipped": len(train.skipped) + len(val.skipped),
    }
    metadata = ModelMetadata(
        task="segment",
        arch=canonical_arch(cfg.arch),
        class_names=class_names,
        crack_class=crack_class,
        input_size=cfg.crop,
        mean=norm.mean,
        std=norm.std,
        threshold=threshold,
        extra={
            "encoder": timm_name(cfg.encoder),
            "size_multiple": SIZE_MULTIPLE,
            "preprocess": preprocess,
            "loss": cfg.loss_name,
            "decoder_channels": cfg.decoder_channels,
            "head_stride": cfg.head_stride,
            "decoder_norm": cfg.decoder_norm,
            "training_data": data_summary,
            "metrics": metrics,
            "val_by_source": by_source,
            "command": cfg.command,
            "weights": weights_message,
            "train_seconds": round(train_seconds, 1),
            **({"tta_threshold": tta_threshold} if cfg.classes == 1 else {}),
            **({"distillation": distillation} if distillation else {}),
        },
    )
    first = val_ds.shape_of(0)
    same = [i for i in range(len(val_ds)) if val_ds.shape_of(i) == first][:4]
    parity_images = np.stack([val_ds.items[i][0] for i in same])
    model_file = run_dir / "model.onnx"
    metrics.update(export_onnx(model, metadata, model_file, parity_images=parity_images, tolerance=2e-4))
    torch.save({"state_dict": model.state_dict(), "metadata": json.loads(metadata.to_json())}, run_dir / "model.pt")

    csv_path = run_dir / "logs" / "metrics.csv"
    if csv_path.is_file():
        shutil.copyfile(csv_path, run_dir / "metrics.csv")
        try:
            panels = CURVES
            if len(val_parts) > 1:
                per_set = (*(f"val_iou_{metric_slug(name)}" for name in val_parts), "val_iou_sets")
                panels = (*CURVES, ("crack IoU per set (val, 0.5)", per_set))
            plot_curves(csv_path, run_dir / "curves.png", panels, "segmentation training")
        except ImportError:
            log.warning("matplotlib missing: no curves.png")
    parameters = count_parameters(model)
    onnx_bytes = model_file.stat().st_size
    (run_dir / "result.json").write_text(
        json.dumps(
            {
                "metrics": metrics,
                "val_by_source": by_source,
                "threshold": threshold,
                "weights": weights_message,
                "class_names": class_names,
                "parameters": parameters,
                "onnx_bytes": onnx_bytes,
                "train_seconds": round(train_seconds, 1),
                "model_file": str(model_file),
                **({"distillation": distillation} if distillation else {}),
            },
            indent=2,
        )
        + "\n"
    )
    return SegmentResult(
        run_dir, model_file, weights_message, metrics, threshold, class_names, train_seconds, onnx_bytes, parameters,
        by_source,
    )  # fmt: skip


__all__ = [
    "SCHEDULERS",
    "SELECT_ON",
    "CropDataset",
    "SegmentConfig",
    "SegmentResult",
    "SegmenterModule",
    "WholeImageDataset",
    "calibrate",
    "crack_probabilities",
    "parse_data_argument",
    "resolve_sources",
    "train_segmenter",
]
