"""Evaluate a crack classifier on a labelled class-folder data set.

Folder names are matched to the model's classes case-insensitively, with the synonyms
public sets use (Özgenel's ``Positive``/``Negative``). The images to use come from
``--split``: every image, the layout's own split folders, or a split file made by
``crackscan data split``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crackscan.data.classes import canonical_class
from crackscan.data.classes import normal_class_name as _normal
from crackscan.data.layouts import DatasetIndex, LayoutKind, Sample, index_dataset
from crackscan.evaluation.files import FileProblem
from crackscan.evaluation.inference import (
    DEFAULT_BATCH_SIZE,
    ProgressCallback,
    classify_files,
    predict_labels,
)
from crackscan.evaluation.splits import pick_split
from crackscan.metrics.classification import (
    accuracy,
    average_precision,
    confusion_matrix,
    per_class_scores,
    precision_recall_f1,
    report_from_confusion,
    roc_auc,
)
from crackscan.runtime.predictor import OnnxPredictor


class EvaluationError(ValueError):
    """The evaluation cannot run as asked; the message says why and what to do."""


class ClassMappingError(EvaluationError):
    """A class folder matches none of the model's classes."""


def match_class_folders(folders: Iterable[str], class_names: list[str], crack_class: int) -> dict[str, int]:
    """Map each class-folder name to an index into ``class_names``.

    An exact (case-insensitive) class name wins; otherwise synonyms: ``crack``,
    ``cracked``, ``positive``, ``1`` … mean the crack class, ``no_crack``, ``nocrack``,
    ``uncracked``, ``negative``, ``0`` … mean the non-crack class. Raises
    :class:`ClassMappingError` listing the model's classes for any folder left over.
    """
    exact = {_normal(name): i for i, name in enumerate(class_names)}
    by_canonical: dict[str, int] = {}
    for i, name in enumerate(class_names):
        by_canonical.setdefault(canonical_class(name), i)
    by_canonical["crack"] = crack_class
    if len(class_names) == 2:
        # In a two-class model the other class is "no crack", whatever it is called.
        by_canonical.setdefault("no_crack", 1 - crack_class)
    mapping: dict[str, int] = {}
    unmatched: list[str] = []
    for folder in folders:
        n = _normal(folder)
        index = exact.get(n, by_canonical.get(canonical_class(folder)))
        if index is None:
            unmatched.append(folder)
        else:
            mapping[folder] = index
    if unmatched:
        others = [name for i, name in enumerate(class_names) if i != crack_class]
        hint = f"folders named crack, cracked, positive or 1 mean {class_names[crack_class]!r}" + (
            f"; no_crack, nocrack, uncracked, negative or 0 mean {others[0]!r}" if len(others) == 1 else ""
        )
        raise ClassMappingError(
            f"class folder{'s' if len(unmatched) > 1 else ''} {', '.join(repr(u) for u in sorted(unmatched))} "
            f"match{'' if len(unmatched) > 1 else 'es'} none of the model's classes "
            f"({', '.join(class_names)}); rename {'them' if len(unmatched) > 1 else 'it'} ({hint})"
        )
    return mapping


@dataclass
class SplitSelection:
    """The samples an evaluation uses and a human-readable account of where they came from."""

    samples: list[Sample]
    description: str
    index: DatasetIndex


def select_samples(
    data: str | os.PathLike[str], split: str = "test", split_file: str | os.PathLike[str] | None = None
) -> SplitSelection:
    """Pick the samples of the class-folder data set ``data`` named by ``split``.

    ``split``: ``all`` (every image), ``test``/``val``/``train`` (from ``split_file`` when
    given, else the layout's own split folders), or the path of a split file (its test
    split). Raises :class:`EvaluationError`, ``LayoutError`` or ``SplitError``.
    """
    index = index_dataset(data)
    if index.layout is not LayoutKind.CLASS_FOLDERS:
        raise EvaluationError(
            f"{data}: an image/mask (segmentation) data set; classification evaluation needs class folders "
            "(DATA/<class>/*.jpg or DATA/<split>/<class>/*.jpg)"
        )
    samples, desc = pick_split(index, data, split, split_file, error=EvaluationError, unit="images")
    return SplitSelection(samples, desc, index)


def _finite(value: float) -> float | None:
    # JSON has no NaN: undefined metrics (e.g. ROC-AUC with one class) become null.
    return None if value is None or math.isnan(value) else float(value)


@dataclass
class ClassificationEvaluation:
    """Everything one evaluation found. Probabilities and metrics are in [0, 1]."""

    class_names: list[str]
    crack_class: int
    threshold: float
    paths: list[Path]  # the images evaluated (readable ones), in order
    y_true: np.ndarray  # class index per image
    y_pred: np.ndarray  # class index per image (crack when p_crack >= threshold)
    class_probs: np.ndarray  # N×K
    skipped: list[FileProblem]
    class_mapping: dict[str, str]  # folder name -> model class name
    model: str = ""
    data: str = ""
    split: str = ""
    confusion: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.confusion = confusion_matrix(self.y_true, self.y_pred, len(self.class_names))

    @property
    def n(self) -> int:
        return len(self.paths)

    @property
    def crack_prob(self) -> np.ndarray:
        return self.class_probs[:, self.crack_class] if self.n else np.zeros(0, np.float32)

    @property
    def is_crack(self) -> np.ndarray:
        """Binary ground truth: 1 where the true class is the crack class."""
        return (self.y_true == self.crack_class).astype(np.int64)

    def misclassified(self) -> list[int]:
        """Indices of wrong predictions, most confident mistakes first."""
        wrong = np.flatnonzero(self.y_true != self.y_pred)
        # how far the crack probability sits on the wrong side of the threshold
        margin = np.abs(self.crack_prob[wrong] - self.threshold)
        return [int(i) for i in wrong[np.argsort(-margin, kind="stable")]]

    def metrics(self) -> dict[str, Any]:
        """Headline metrics of the crack class (precision, recall, F1 of "crack")."""
        if self.n == 0:
            nan = float("nan")
            p = r = f1 = acc = auc = ap = nan
        else:
            acc = accuracy(self.y_true, self.y_pred)
            p, r, f1 = precision_recall_f1(self.y_true, self.y_pred, positive=self.crack_class)
            auc = roc_auc(self.is_crack, self.crack_prob)
            ap = average_precision(self.is_crack, self.crack_prob)
        return {
            "accuracy": _finite(acc),
            "precision": _finite(p),
            "recall": _finite(r),
            "f1": _finite(f1),
            "roc_auc": _finite(auc),
            "average_precision": _finite(ap),
        }

    def report(self, digits: int = 3) -> str:
        """scikit-learn-style text classification report."""
        return report_from_confusion(self.confusion, self.class_names, digits=digits)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; undefined metrics are ``None``."""
        scores = per_class_scores(self.confusion, self.class_names)
        crack = self.crack_prob
        return {
            "task": "classify",
            "model": self.model,
            "data": self.data,
            "split": self.split,
            "n": self.n,
            "skipped": len(self.skipped),
            "threshold": float(self.threshold),
            "class_names": list(self.class_names),
            "crack_class": self.crack_class,
            "class_mapping": dict(self.class_mapping),
            **self.metrics(),
            "confusion_matrix": self.confusion.tolist(),
            "confusion_matrix_axes": "rows: true class, columns: predicted class (order of class_names)",
            "support": {name: int(self.confusion[i].sum()) for i, name in enumerate(self.class_names)},
            "per_class": {s.name: s.to_dict() for s in scores},
            "classification_report": self.report(),
            "misclassified": [
                {
                    "path": str(self.paths[i]),
                    "true": self.class_names[int(self.y_true[i])],
                    "predicted": self.class_names[int(self.y_pred[i])],
                    "crack_probability": float(crack[i]),
                }
                for i in self.misclassified()
            ],
            "skipped_files": [p.to_dict() for p in self.skipped],
        }


def evaluate_classifier(
    predictor: OnnxPredictor,
    selection: SplitSelection,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    model_name: str = "",
) -> ClassificationEvaluation:
    """Classify every sample of ``selection`` and compare with its folder's class.

    Raises :class:`ClassMappingError` before any image is read when a folder name
    matches no class of the model. Unreadable images end up in ``skipped``.
    """
    meta = predictor.metadata
    if meta.task != "classify":
        raise EvaluationError(f"evaluate_classifier needs a classification model, got task {meta.task!r}")
    folders = sorted({s.label for s in selection.samples if s.label is not None})
    mapping = match_class_folders(folders, meta.class_names, meta.crack_class)
    samples = selection.samples
    result = classify_files(predictor, [s.image for s in samples], batch_size=batch_size, progress=progress)
    kept = [samples[i] for i in result.indices]
    y_true = np.asarray([mapping[s.label or ""] for s in kept], dtype=np.int64)
    y_pred = predict_labels(result.probs, meta.crack_class, meta.threshold)
    return ClassificationEvaluation(
        class_names=list(meta.class_names),
        crack_class=meta.crack_class,
        threshold=float(meta.threshold),
        paths=[s.image for s in kept],
        y_true=y_true,
        y_pred=y_pred,
        class_probs=result.probs,
        skipped=result.problems,
        class_mapping={folder: meta.class_names[i] for folder, i in mapping.items()},
        model=model_name or str(predictor.path),
        data=str(selection.index.root),
        split=selection.description,
    )
