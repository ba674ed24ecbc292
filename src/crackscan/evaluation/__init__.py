"""Evaluating and running models on image files, with ONNX Runtime and no torch.

``evaluate_model`` dispatches on the model's task: classification lives in
:mod:`crackscan.evaluation.classification`; segmentation will slot in beside it
(``segmentation.py``) under the ``task == "segment"`` branch.
"""

from __future__ import annotations

import os
from typing import Any

from crackscan.evaluation.files import FileProblem, collect_images
from crackscan.evaluation.inference import DEFAULT_BATCH_SIZE, NotBuiltError, ProgressCallback, open_model
from crackscan.runtime.predictor import OnnxPredictor

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "FileProblem",
    "NotBuiltError",
    "collect_images",
    "evaluate_model",
    "open_model",
]


def evaluate_model(
    predictor: OnnxPredictor,
    data: str | os.PathLike[str],
    *,
    split: str = "test",
    split_file: str | os.PathLike[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    tta: bool = False,
) -> Any:
    """Evaluate ``predictor`` on the labelled data set ``data``; the result type depends on the task.

    Classification returns a :class:`~crackscan.evaluation.classification.ClassificationEvaluation`.
    Segmentation returns a :class:`~crackscan.evaluation.segmentation.SegmentationEvaluation`;
    ``tta`` (segmentation only) averages each image over horizontal and vertical flips.
    """
    task = predictor.metadata.task
    if task == "classify":
        from crackscan.evaluation.classification import evaluate_classifier, select_samples

        selection = select_samples(data, split, split_file)
        return evaluate_classifier(predictor, selection, batch_size=batch_size, progress=progress)
    if task == "segment":
        from crackscan.evaluation.segmentation import evaluate_segmenter, select_pairs

        return evaluate_segmenter(predictor, select_pairs(data, split, split_file), progress=progress, tta=tta)
    raise NotBuiltError(f"evaluation of {task!r} models is not supported")
