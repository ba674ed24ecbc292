"""Several models as one: the mean of their probabilities.

``crackscan evaluate crack-seg+crack-seg-unet …`` (and ``inspect``, ``predict``, ``serve``):
a model spec with ``+`` between model files or bundled names opens an
:class:`EnsemblePredictor`. Members must agree on the task and the classes; each one
normalises its own input, so their preprocessing constants may differ. The ensemble's
threshold is the mean of the members' stored thresholds (none of them was calibrated for
the mean, so that is a neutral choice, not a tuned one).

Why: models of different designs make different errors; the mean of the FPN (crack-seg) and
a 256-px-crop U-Net scored higher IoU on DeepCrack than either alone (docs/benchmarks.md,
session 10), at the sum of their CPU time.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from crackscan.runtime.predictor import ModelLoadError, Predictor, Task, size_multiple

SEPARATOR = "+"


def is_ensemble_spec(model: str | os.PathLike[str]) -> bool:
    """``a+b``: two or more model names or files, unless a file of that very name exists."""
    return isinstance(model, str) and SEPARATOR in model and not Path(model).exists()


def split_spec(spec: str) -> list[str]:
    parts = [part.strip() for part in spec.split(SEPARATOR)]
    if len(parts) < 2 or not all(parts):
        raise ModelLoadError(
            f"{spec!r}: an ensemble is two or more models joined by '+', e.g. crack-seg+crack-seg-unet"
        )
    return parts


class EnsemblePredictor:
    """The mean of the members' probabilities; satisfies :class:`Predictor`."""

    def __init__(self, members: Sequence[Predictor], *, name: str | None = None) -> None:
        if len(members) < 2:
            raise ModelLoadError("an ensemble needs two or more models")
        first = members[0].metadata
        for member in members[1:]:
            meta = member.metadata
            if meta.task != first.task:
                raise ModelLoadError(
                    f"ensemble: {member.path} is a {meta.task!r} model, {members[0].path} a {first.task!r} one"
                )
            if meta.class_names != first.class_names or meta.crack_class != first.crack_class:
                raise ModelLoadError(
                    f"ensemble: {member.path} has classes {meta.class_names}, {members[0].path} {first.class_names}"
                )
            if first.task == "classify" and meta.input_size != first.input_size:
                raise ModelLoadError(
                    f"ensemble: classifiers of different input sizes ({meta.input_size} and {first.input_size} px)"
                )
            if meta.extra.get("preprocess") != first.extra.get("preprocess"):
                # the caller applies one preprocessing step to the image for all members
                raise ModelLoadError(f"ensemble: {member.path} and {members[0].path} ask for different preprocessing")
        self.members = list(members)
        self.path = Path(name or SEPARATOR.join(str(m.path.name) for m in members))
        meta = copy.deepcopy(first)
        meta.threshold = float(np.mean([m.metadata.threshold for m in members]))
        meta.arch = SEPARATOR.join(m.metadata.arch for m in members)
        meta.extra = {
            **{k: v for k, v in first.extra.items() if k in ("tile_size", "preprocess", "mask_kind")},
            "size_multiple": math.lcm(*(size_multiple(m.metadata) for m in members)),
            "ensemble": [str(m.path) for m in members],
        }
        if any("tta_threshold" in m.metadata.extra for m in members):
            meta.extra["tta_threshold"] = float(np.mean([m.metadata.threshold_for(tta=True) for m in members]))
        self.metadata = meta

    @property
    def task(self) -> Task:
        return self.metadata.task

    def probability_map(self, batch_uint8: np.ndarray) -> np.ndarray:
        total = np.asarray(self.members[0].probability_map(batch_uint8), dtype=np.float32).copy()
        for member in self.members[1:]:
            total += np.asarray(member.probability_map(batch_uint8), dtype=np.float32)
        return total / np.float32(len(self.members))

    def class_probabilities(self, batch_uint8: np.ndarray) -> np.ndarray:
        return np.mean([m.class_probabilities(batch_uint8) for m in self.members], axis=0)

    def crack_probability(self, batch_uint8: np.ndarray) -> np.ndarray:
        if self.task == "segment":
            return self.probability_map(batch_uint8)
        return self.class_probabilities(batch_uint8)[:, self.metadata.crack_class].astype(np.float32)

    def logits(self, batch_uint8: np.ndarray) -> np.ndarray:
        """Logits whose sigmoid (one channel) or softmax (several) is the mean probability."""
        eps = np.float32(1e-6)
        if self.task == "segment":
            probs = self.probability_map(batch_uint8)
            if probs.ndim == 3:  # binary: (N, H, W) → (N, 1, H, W)
                p = np.clip(probs, eps, 1 - eps)
                return np.log(p / (1 - p))[:, None]
            return np.log(np.clip(probs, eps, 1.0))
        return np.log(np.clip(self.class_probabilities(batch_uint8), eps, 1.0)).astype(np.float32)
