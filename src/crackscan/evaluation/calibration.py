"""Re-calibrate a segmenter's crack threshold on labelled images, and write the calibrated copy.

Training picks the threshold with the best pooled exact-pixel F1 on its validation split.
That choice belongs to the images and to how the model is run: on another surface (your
own labelled photos) or with flips averaged (``--tta``, whose smoother edges shift the
best threshold down) another one fits. :func:`calibrate_threshold` applies the same rule —
F1 pooled over every image of every given set, thresholds 0.05–0.95 — to any pairs;
:func:`write_calibrated` stores the result in a *copy* of the ONNX file (``threshold``, or
``extra["tta_threshold"]`` for TTA, with where it came from), never in the input.

Pick the threshold on validation images and report on test images: calibrating on the
images you then score inflates the score.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crackscan.evaluation.segmentation import PairSelection, evaluate_segmenter
from crackscan.metrics.segmentation import CALIBRATION_THRESHOLDS, CurveCounts
from crackscan.runtime.predictor import METADATA_KEY, ModelLoadError, ModelMetadata

THRESHOLDS = CALIBRATION_THRESHOLDS  # the grid training calibrates on


class CalibrationError(ValueError):
    """Calibration impossible: no crack pixels, a multi-class model, an unwritable model file."""


@dataclass(frozen=True)
class SetCalibration:
    """One data set's own best threshold (for comparison; the pooled one is what is stored)."""

    name: str
    split: str
    n: int
    best_threshold: float
    best_f1: float


@dataclass
class Calibration:
    threshold: float  # best pooled exact F1 over all sets
    f1: float
    tta: bool
    previous: float  # the threshold the model used before (its stored one for this mode)
    n: int
    sets: list[SetCalibration] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rule": "best pooled exact-pixel F1, thresholds 0.05-0.95"}


def calibrate_threshold(
    predictor: Any,
    selections: Sequence[tuple[str, PairSelection]],
    *,
    tta: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> Calibration:
    """The threshold with the best exact-pixel F1 pooled over every pair of ``selections``.

    ``selections``: (name, pairs) per data set. Binary segmenters only (multi-class masks
    are an argmax, no threshold). Raises :class:`CalibrationError` when the pairs hold no
    crack pixel (any threshold would do).
    """
    meta: ModelMetadata = predictor.metadata
    if meta.task != "segment":
        raise CalibrationError(f"{predictor.path}: a {meta.task} model; calibrate segmentation models")
    if len(meta.class_names) > 2:
        names = ", ".join(meta.class_names)
        raise CalibrationError(f"{predictor.path}: a multi-class model ({names}) has no threshold (masks are argmax)")
    counts = np.zeros((3, len(THRESHOLDS)), np.int64)  # tp_pred, n_pred, tp_true per threshold
    n_true, n_images = 0, 0
    sets: list[SetCalibration] = []
    for name, selection in selections:
        step = (lambda done, total, name=name: progress(name, done, total)) if progress else None
        ev = evaluate_segmenter(predictor, selection, thresholds=THRESHOLDS, tta=tta, progress=step)
        curve = ev.exact_curve
        counts += np.stack([curve.tp_pred, curve.n_pred, curve.tp_true])
        n_true += curve.n_true
        n_images += curve.n
        if curve.n:
            sets.append(SetCalibration(name, selection.description, curve.n, curve.ods_threshold, curve.ods_f1))
    if n_true == 0:
        raise CalibrationError(f"no crack pixel in the {n_images} masks: nothing to calibrate the threshold on")
    f1 = CurveCounts(counts[0], counts[1], counts[2], n_true).f1()
    best = int(np.argmax(f1))  # the lowest threshold among ties, as in training
    return Calibration(
        threshold=float(THRESHOLDS[best]),
        f1=float(f1[best]),
        tta=tta,
        previous=meta.threshold_for(tta=tta),
        n=n_images,
        sets=sets,
    )


def check_output(model: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Refuse an output that would overwrite the model or is not an ONNX file name (:class:`CalibrationError`)."""
    src, dst = Path(model), Path(out)
    if dst.resolve() == src.resolve():
        raise CalibrationError(f"--out {dst} is the model itself; the input is never modified, write a copy")
    if dst.suffix.lower() != ".onnx":
        raise CalibrationError(f"--out {dst}: give a .onnx file name")


def write_calibrated(
    model: str | os.PathLike[str], out: str | os.PathLike[str], calibration: Calibration, *, source: str = ""
) -> Path:
    """Copy the ONNX file ``model`` to ``out`` with the calibrated threshold in its metadata.

    Without TTA the stored ``threshold`` changes; with it ``extra["tta_threshold"]`` (read
    by ``--tta`` runs), leaving the plain threshold as it was. ``extra["calibration"]`` /
    ``extra["tta_calibration"]`` records the figures and ``source`` (the data used).
    """
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - onnx is a dependency
        raise CalibrationError(f"writing a calibrated model needs the onnx package ({exc})") from None
    src, dst = Path(model), Path(out)
    check_output(src, dst)
    try:
        proto = onnx.load(str(src))
    except Exception as exc:  # onnx raises DecodeError, OSError, …
        raise ModelLoadError(f"{src}: not a readable ONNX file ({exc})") from None
    entry = next((p for p in proto.metadata_props if p.key == METADATA_KEY), None)
    if entry is None:
        raise ModelLoadError(f"{src}: no crackscan metadata (not a crackscan model)")
    meta = ModelMetadata.from_json(entry.value)
    record = {**calibration.to_dict(), "source": source}
    if calibration.tta:
        meta.extra["tta_threshold"] = calibration.threshold
        meta.extra["tta_calibration"] = record
    else:
        meta.threshold = calibration.threshold
        meta.extra["threshold_source"] = f"crackscan calibrate on {source}" if source else "crackscan calibrate"
        meta.extra["calibration"] = record
    entry.value = meta.to_json()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    onnx.save(proto, str(tmp))
    os.replace(tmp, dst)  # a crash mid-write leaves no half model under the real name
    return dst


__all__ = [
    "THRESHOLDS",
    "Calibration",
    "CalibrationError",
    "SetCalibration",
    "calibrate_threshold",
    "check_output",
    "write_calibrated",
]
