"""Classify image files and write the predictions as CSV or JSON."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crackscan.evaluation.files import FileProblem
from crackscan.evaluation.inference import (
    DEFAULT_BATCH_SIZE,
    NotBuiltError,
    ProgressCallback,
    classify_files,
    predict_labels,
)
from crackscan.runtime.predictor import OnnxPredictor

PREDICTION_FORMATS = (".csv", ".json")
CSV_COLUMNS = ("path", "label", "probability", "crack_probability", "crack")


@dataclass(frozen=True)
class Prediction:
    """One image: the predicted ``label``, its ``probability`` and the crack probability
    (both in [0, 1]); ``crack`` is ``crack_probability >= threshold``."""

    path: str
    label: str
    probability: float
    crack_probability: float
    crack: bool


@dataclass
class PredictionResult:
    """Predictions for the readable images (input order) and the unreadable ones."""

    predictions: list[Prediction]
    problems: list[FileProblem]
    model: str
    threshold: float
    class_names: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "threshold": self.threshold,
            "class_names": list(self.class_names),
            "n": len(self.predictions),
            "n_crack": sum(p.crack for p in self.predictions),
            "skipped": len(self.problems),
            "predictions": [asdict(p) for p in self.predictions],
            "skipped_files": [p.to_dict() for p in self.problems],
        }


def predict_images(
    predictor: OnnxPredictor,
    files: Sequence[str | os.PathLike[str]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
) -> PredictionResult:
    """Classify ``files`` with the model's own threshold; unreadable files are recorded.

    Raises :class:`NotBuiltError` for a segmentation model: masks are written by
    :func:`crackscan.evaluation.segmentation.predict_masks`.
    """
    meta = predictor.metadata
    if meta.task != "classify":
        raise NotBuiltError(
            f"{predictor.path} is a {meta.task} model; use evaluation.segmentation.predict_masks for masks"
        )
    result = classify_files(predictor, files, batch_size=batch_size, progress=progress)
    labels = predict_labels(result.probs, meta.crack_class, meta.threshold)
    rows = []
    for row, (i, label) in enumerate(zip(result.indices, labels, strict=True)):
        probs = result.probs[row]
        rows.append(
            Prediction(
                path=os.fspath(files[int(i)]),
                label=meta.class_names[int(label)],
                probability=float(probs[int(label)]),
                crack_probability=float(probs[meta.crack_class]),
                crack=bool(label == meta.crack_class),
            )
        )
    return PredictionResult(
        predictions=rows,
        problems=result.problems,
        model=str(predictor.path),
        threshold=float(meta.threshold),
        class_names=list(meta.class_names),
    )


def check_output_path(path: str | os.PathLike[str]) -> None:
    """Raise ValueError unless ``path`` ends in .csv or .json (checked before any work)."""
    if Path(path).suffix.lower() not in PREDICTION_FORMATS:
        raise ValueError(f"{path}: the output file must end in .csv or .json")


def write_predictions(result: PredictionResult, path: str | os.PathLike[str]) -> Path:
    """Write one row per predicted image: CSV (columns :data:`CSV_COLUMNS`) or JSON
    (an object with ``predictions`` and ``skipped_files``), chosen by extension."""
    check_output_path(path)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        out.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return out
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for p in result.predictions:
            writer.writerow(
                [p.path, p.label, f"{p.probability:.6f}", f"{p.crack_probability:.6f}", "true" if p.crack else "false"]
            )
    return out
