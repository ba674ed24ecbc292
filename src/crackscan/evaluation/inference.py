"""Batch classification of image files: threaded reading overlapped with ONNX inference."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crackscan.evaluation.files import FileProblem
from crackscan.imageio import DEFAULT_MAX_PIXELS, ImageReadError
from crackscan.runtime.predictor import ModelLoadError, OnnxPredictor, load_predictor
from crackscan.runtime.preprocess import load_patch

ProgressCallback = Callable[[int, int], None]
DEFAULT_BATCH_SIZE = 64
READ_THREADS = 2


class NotBuiltError(RuntimeError):
    """The request is valid but the feature is not built yet (the CLI exits 2)."""


def open_model(model: str | os.PathLike[str], *, threads: int | None = None, spin_wait: bool = True) -> OnnxPredictor:
    """Open a model file, a bundled model name, or a training run folder holding ``model.onnx``.

    ``spin_wait=False`` for pipelines that decode files beside inference (see
    :func:`~crackscan.runtime.predictor.session_options`).

    Raises :class:`~crackscan.runtime.predictor.ModelLoadError` with a user-facing reason.
    """
    path = Path(model)
    if path.is_dir():
        candidate = path / "model.onnx"
        if not candidate.is_file():
            raise ModelLoadError(f"{path}: a folder without model.onnx; give the .onnx model file")
        return load_predictor(candidate, threads=threads, spin_wait=spin_wait)
    return load_predictor(model, threads=threads, spin_wait=spin_wait)


def predict_labels(class_probs: np.ndarray, crack_class: int, threshold: float) -> np.ndarray:
    """Class index per row of ``class_probs`` (N×K, rows sum to 1).

    The crack class wins when its probability is ``>= threshold`` (the model's tuned
    operating point, not argmax); otherwise the most probable of the other classes.
    """
    probs = np.asarray(class_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0:
        return np.zeros(probs.shape[:1], dtype=np.int64)
    is_crack = probs[:, crack_class] >= threshold
    others = probs.copy()
    others[:, crack_class] = -np.inf
    return np.where(is_crack, crack_class, others.argmax(axis=1)).astype(np.int64)


@dataclass
class ClassifiedFiles:
    """Class probabilities for the files that could be read.

    ``indices[i]`` is the position in the input list of the file whose probabilities
    are ``probs[i]`` (N×K float32, rows sum to 1); unreadable files are in ``problems``.
    """

    indices: np.ndarray
    probs: np.ndarray
    problems: list[FileProblem]


def _read(path: Path, size: int, max_pixels: int | None) -> np.ndarray | FileProblem:
    try:
        return load_patch(path, size, max_pixels=max_pixels)
    except ImageReadError as exc:
        return FileProblem(str(path), exc.reason)
    except Exception as exc:  # a decoder bug on one odd file must not end a 100k-image run
        return FileProblem(str(path), f"unreadable ({type(exc).__name__}: {exc})")


def classify_files(
    predictor: OnnxPredictor,
    files: Sequence[str | os.PathLike[str]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    read_threads: int = READ_THREADS,
) -> ClassifiedFiles:
    """Run a classifier over ``files`` in batches of ``batch_size``.

    Each file is read with :func:`~crackscan.runtime.preprocess.load_patch` at the
    model's input size by ``read_threads`` threads that work up to two batches ahead
    of inference (bounded memory, decoding hidden behind ONNX Runtime). Unreadable
    files are recorded, never fatal. ``progress(done, total)`` is called per batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    size = predictor.metadata.input_size
    n_classes = len(predictor.metadata.class_names)
    total = len(files)
    paths = [Path(f) for f in files]
    indices: list[int] = []
    chunks: list[np.ndarray] = []
    problems: list[FileProblem] = []
    if progress is not None:
        progress(0, total)
    with ThreadPoolExecutor(max_workers=max(1, read_threads), thread_name_prefix="crackscan-read") as pool:
        window: deque[tuple[int, Future[np.ndarray | FileProblem]]] = deque()
        next_index = 0

        def fill() -> None:
            nonlocal next_index
            while next_index < total and len(window) < 2 * batch_size:
                window.append((next_index, pool.submit(_read, paths[next_index], size, max_pixels)))
                next_index += 1

        fill()
        while window:
            batch_idx: list[int] = []
            batch: list[np.ndarray] = []
            for _ in range(min(batch_size, len(window))):
                i, future = window.popleft()
                result = future.result()
                if isinstance(result, FileProblem):
                    problems.append(result)
                else:
                    batch_idx.append(i)
                    batch.append(result)
            fill()  # queue the next reads before inference so readers keep working
            if batch:
                probs = predictor.class_probabilities(np.stack(batch))
                indices += batch_idx
                chunks.append(probs)
            if progress is not None:
                progress(next_index - len(window), total)
    probs = np.concatenate(chunks) if chunks else np.zeros((0, n_classes), np.float32)
    return ClassifiedFiles(indices=np.asarray(indices, dtype=np.int64), probs=probs, problems=problems)
