"""Knowledge distillation for binary segmenters: a teacher's probability maps as soft targets.

A stronger model that is too slow or too large to ship — an ensemble of two networks, run
with flip TTA — labels every training image once with its crack probabilities; the
student then learns from those maps (binary cross-entropy against the soft target) as
well as from the annotators' masks. Soft targets carry what a 0/1 mask cannot: how sure
the teacher is at a crack's blurred edge, where most of a thin crack's IoU is won or lost.

The teacher must not have seen this run's test images, or the student's test figures
would inherit that: a teacher model file that records the digests of its own test images
must have held out every test image of this run (else the run is refused); one that
records none is named in a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crackscan.data.heldout import content_digest, recorded_held_out
from crackscan.evaluation import open_model
from crackscan.evaluation.segmentation import crack_probability, segment_image
from crackscan.imageio import read_image
from crackscan.runtime.predictor import ModelLoadError
from crackscan.training.run import TrainingDataError

log = logging.getLogger(__name__)


def open_teacher(teacher: str | Any) -> Any:
    """The teacher's predictor (a model file, bundled name, run folder or ``a+b`` ensemble; an open one passes
    through), refused unless it is a binary segmenter."""
    if not isinstance(teacher, str):
        return teacher
    try:
        predictor = open_model(teacher)
    except ModelLoadError as exc:
        raise TrainingDataError(f"--teacher {teacher}: {exc}") from exc
    meta = predictor.metadata
    if meta.task != "segment" or len(meta.class_names) > 2:
        raise TrainingDataError(f"--teacher {teacher}: distillation needs a binary segmentation model")
    return predictor


def check_teacher_held_out(teacher: str | Any, test_images: Sequence[Path]) -> list[str]:
    """Refuse a teacher that may have trained on one of ``test_images``; return warnings for unverifiable members.

    Each member's metadata lists the content digests of its test images
    (``training_data.sources[].test_digests``); every test image of this run must be among them.
    """
    warnings: list[str] = []
    wanted = {content_digest(p): p for p in test_images}
    predictor = open_teacher(teacher)
    for member in getattr(predictor, "members", [predictor]):
        recorded = recorded_held_out(member.metadata.extra.get("training_data", {}))
        if recorded is None:
            warnings.append(
                f"teacher {member.path} records no test-image digests: it cannot be checked that it never trained "
                "on this run's test images (a teacher must be trained with the same held-out split)"
            )
            continue
        unseen = sorted(str(p) for d, p in wanted.items() if d not in recorded)
        if unseen:
            shown = ", ".join(unseen[:3]) + (" …" if len(unseen) > 3 else "")
            raise TrainingDataError(
                f"teacher {member.path} held out other test images than this run: {len(unseen)} test image(s) of "
                f"this run ({shown}) were not among its test images, so it may have trained on them; "
                "use a teacher trained with this run's split"
            )
    return warnings


def teacher_maps(
    teacher: str | Any,
    images: Sequence[Path],
    shapes: Sequence[tuple[int, int]],
    *,
    tta: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """The teacher's crack probability of every pixel of each image, as uint8 (0-255) H×W maps.

    Each photo is read again as it is on disk (the teacher applies its own preprocessing) at
    full resolution; ``shapes`` are the training masks' sizes, which every map must match.
    """
    predictor = open_teacher(teacher)
    meta = predictor.metadata
    maps = []
    for k, (path, shape) in enumerate(zip(images, shapes, strict=True)):
        prob = crack_probability(segment_image(predictor, read_image(path), tta=tta), meta.crack_class)
        if prob.shape != tuple(shape):
            raise TrainingDataError(f"teacher map of {path} is {prob.shape}, its mask {shape}")
        maps.append(np.clip(np.rint(prob * 255.0), 0, 255).astype(np.uint8))
        if progress is not None:
            progress(k + 1)
    log.info("teacher %s labelled %d training images%s", predictor.path, len(maps), " (flip TTA)" if tta else "")
    return maps
