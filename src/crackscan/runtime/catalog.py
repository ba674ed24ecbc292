"""What a model file says about itself, for people: the bundled models' catalogue and ``crackscan models``.

Everything here is read from the ONNX metadata that training and export write (no torch, no card parsing):
task, design, input, thresholds, size, what it was trained on and under which licences, and its validation
figures. A model's test figures live in its card (``assets/models/NAME.md``) and docs/benchmarks.md.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crackscan.data.licences import KNOWN_LICENCES
from crackscan.runtime.predictor import BUNDLED_DIR, ModelMetadata, OnnxPredictor

# terms that limit the use of a model trained on the set: CC BY-NC, "non-commercial research only", …
_RESTRICTIVE = re.compile(r"non-?commercial|research|\bnc\b", re.IGNORECASE)

# validation figures worth a column, in the order shown
HEADLINE_METRICS = ("val_iou", "val_calibrated_f1", "val_ods_f1", "val_acc", "val_f1", "test_acc", "test_f1")


def bundled_names() -> list[str]:
    """The bundled models' names, as ``predict``, ``inspect`` and ``serve`` take them."""
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.onnx")) if BUNDLED_DIR.is_dir() else []


@dataclass
class TrainingSet:
    name: str
    licence: str
    train: int | None = None
    val: int | None = None
    test: int | None = None  # kept out of training
    test_digests: int | None = None  # content digests of the test images recorded (None: model predates them)


@dataclass
class ModelSummary:
    name: str
    path: str
    task: str
    arch: str
    encoder: str | None
    input_size: int
    class_names: list[str]
    threshold: float
    tta_threshold: float | None
    precision: str
    size_mb: float
    crackscan_version: str
    training_sets: list[TrainingSet] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    command: str | None = None
    card: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _count(digests: Any) -> int | None:
    return len(digests) if isinstance(digests, list) else None


def _training_sets(meta: ModelMetadata) -> list[TrainingSet]:
    data = meta.extra.get("training_data") or {}
    sets = []
    for source in data.get("sources", []):  # segmenters: one entry per DATA argument
        counts = source.get("counts", {})
        sets.append(
            TrainingSet(
                name=str(source.get("name", "?")),
                licence=str(source.get("licence", "unknown")),
                train=counts.get("train"),
                val=counts.get("val"),
                test=counts.get("test_kept_out"),
                test_digests=_count(source.get("test_digests")),
            )
        )
    if not sets and data.get("root"):  # classifiers: one class-folder set
        name = Path(str(data["root"])).name
        counts = data.get("counts", {})
        licence = data.get("licence") or KNOWN_LICENCES.get(name.lower(), "unknown")
        sets.append(
            TrainingSet(
                name,
                str(licence),
                counts.get("train"),
                counts.get("val"),
                counts.get("test"),
                _count(data.get("test_digests")),
            )
        )
    return sets


def summarise(model: str | Path) -> ModelSummary:
    """Read a model file, run folder or bundled name (:class:`~crackscan.runtime.predictor.ModelLoadError` if none)."""
    path = Path(model)
    if path.is_dir() and (path / "model.onnx").is_file():
        path = path / "model.onnx"
    predictor = OnnxPredictor(path if path.exists() else model, threads=1)
    meta, path = predictor.metadata, predictor.path
    card = path.with_suffix(".md")
    metrics = meta.extra.get("metrics") or {}
    tta = meta.extra.get("tta_threshold")
    return ModelSummary(
        name=path.stem if path.parent == BUNDLED_DIR else str(model),
        path=str(path),
        task=meta.task,
        arch=meta.arch,
        encoder=meta.extra.get("encoder"),
        input_size=int(meta.input_size),
        class_names=list(meta.class_names),
        threshold=float(meta.threshold),
        tta_threshold=float(tta) if isinstance(tta, (int, float)) else None,
        precision=meta.precision,
        size_mb=round(path.stat().st_size / 1e6, 2),
        crackscan_version=meta.crackscan_version,
        training_sets=_training_sets(meta),
        metrics={k: float(metrics[k]) for k in HEADLINE_METRICS if isinstance(metrics.get(k), (int, float))},
        command=meta.extra.get("command"),
        card=str(card) if card.is_file() else None,
    )


def restrictive_licences(summary: ModelSummary) -> list[str]:
    """The training sets whose terms limit use of the model (research-only, non-commercial)."""
    return [f"{s.name} ({s.licence})" for s in summary.training_sets if _RESTRICTIVE.search(s.licence)]
