"""Loaded models and the bounded inference queue.

Inference runs on a small thread pool, never on the event loop: decoding a 12 MP JPEG
and tiling it through a segmenter takes seconds, and the loop must keep answering
health checks meanwhile. ONNX Runtime's ``InferenceSession.run`` is thread-safe, so the
workers share one session per model. Admission is bounded: at most ``workers`` jobs run
and ``queue`` wait; beyond that a request gets 429 at once instead of piling up memory
(every waiting request holds its upload) and latency.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from crackscan.runtime.ensemble import is_ensemble_spec, split_spec
from crackscan.runtime.predictor import ModelLoadError, OnnxPredictor, load_predictor
from crackscan.serve.errors import ApiError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class LoadedModel:
    """A model the service answers with: its public ``name`` and the shared predictor."""

    name: str
    predictor: OnnxPredictor
    source: str

    @property
    def task(self) -> str:
        return self.predictor.metadata.task


class ModelRegistry:
    """Models by name, in load order (the first of a task is that task's default)."""

    def __init__(self, models: Sequence[LoadedModel] = ()) -> None:
        self._models: dict[str, LoadedModel] = {m.name: m for m in models}

    def __len__(self) -> int:
        return len(self._models)

    def all(self) -> list[LoadedModel]:
        return list(self._models.values())

    def for_task(self, tasks: Sequence[str], name: str | None, endpoint: str) -> LoadedModel:
        """The model named ``name`` (must have one of ``tasks``), or the first loaded one of those tasks.

        422 for an unknown name or a model of another task; 503 when no model of the task is loaded.
        """
        if name:
            model = self._models.get(name)
            if model is None:
                known = ", ".join(m.name for m in self._models.values() if m.task in tasks) or "none"
                raise ApiError(422, "unknown_model", f"no loaded model named {name!r} (for {endpoint}: {known})")
            if model.task not in tasks:
                raise ApiError(
                    422,
                    "wrong_model_task",
                    f"model {name!r} is a {model.task!r} model; {endpoint} needs {' or '.join(repr(t) for t in tasks)}",
                )
            return model
        for task in tasks:  # tasks in order of preference
            for model in self._models.values():
                if model.task == task:
                    return model
        raise ApiError(503, "no_model", f"no {' or '.join(tasks)} model is loaded, so {endpoint} is unavailable")


def _base_name(source: str) -> str:
    stem = Path(source).stem if source.lower().endswith(".onnx") else Path(source).name
    if stem == "model":  # a training run's model.onnx: the run folder says more
        stem = Path(source).resolve().parent.name or stem
    return stem


def _model_name(source: str, taken: set[str]) -> str:
    if is_ensemble_spec(source):
        # "+" reads as a space in a query string: crack-seg+crack-seg-unet is served as crack-seg-plus-crack-seg-unet
        stem = "-plus-".join(_base_name(part) for part in split_spec(source))
    else:
        stem = _base_name(source)
    name, k = stem, 1
    while name in taken:
        k += 1
        name = f"{stem}-{k}"
    return name


def load_models(sources: Sequence[str], *, threads: int | None = None) -> ModelRegistry:
    """Open every model file or bundled name; :class:`ModelLoadError` names the first one that fails."""
    loaded: list[LoadedModel] = []
    taken: set[str] = set()
    for source in sources:
        path = Path(source)
        if path.is_dir() and (path / "model.onnx").is_file():
            path = path / "model.onnx"
        predictor = load_predictor(path if path.exists() else source, threads=threads)
        if predictor.metadata.task not in ("classify", "segment"):
            raise ModelLoadError(f"{source}: a {predictor.metadata.task!r} model; the service runs classify/segment")
        name = _model_name(str(path) if path.exists() else source, taken)
        taken.add(name)
        loaded.append(LoadedModel(name=name, predictor=predictor, source=str(predictor.path)))
        log.info("loaded model %s (%s, %s)", name, predictor.metadata.task, predictor.path)
    return ModelRegistry(loaded)


def default_threads(workers: int) -> int:
    """ONNX Runtime threads per session so that ``workers`` parallel runs fill the cores, not oversubscribe them."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


class InferenceQueue:
    """A thread pool of ``workers`` with at most ``queue`` jobs waiting; more → :class:`ApiError` 429."""

    def __init__(self, workers: int, queue: int, *, on_reject: Callable[[], None] | None = None) -> None:
        self.workers = workers
        self.queue = queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crackscan-infer")
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting
        self._running = 0
        self._closed = False
        self._on_reject = on_reject
        self._idle = threading.Condition(self._lock)

    @property
    def depth(self) -> int:
        """Jobs admitted but not yet running (waiting for a worker)."""
        with self._lock:
            return self._admitted - self._running

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def _admit(self) -> None:
        with self._lock:
            if self._closed:
                raise ApiError(503, "shutting_down", "the server is shutting down; retry on another instance")
            if self._admitted >= self.workers + self.queue:
                waiting = self._admitted - self._running
                full = True
            else:
                self._admitted += 1
                full = False
        if full:
            if self._on_reject is not None:
                self._on_reject()
            raise ApiError(
                429,
                "queue_full",
                f"server busy: {waiting} requests already waiting (queue limit {self.queue}); retry shortly",
                headers={"Retry-After": "1"},
            )

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1
            self._idle.notify_all()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a worker thread once admitted; 429 when the queue is full."""
        self._admit()

        def job() -> T:
            with self._lock:
                self._running += 1
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self._running -= 1

        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, job)
        except RuntimeError:  # executor already shut down
            self._release()
            raise ApiError(503, "shutting_down", "the server is shutting down") from None
        try:
            # shield: a client that disconnects must not leave the admitted count wrong while the job still runs.
            return await asyncio.shield(future)
        finally:
            if future.done():
                self._release()
            else:
                future.add_done_callback(lambda _f: self._release())

    def close(self, timeout: float) -> bool:
        """Stop admitting, wait up to ``timeout`` s for admitted jobs, stop the threads; True when drained."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            while self._admitted > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._idle.wait(left)
            drained = self._admitted == 0
        self._executor.shutdown(wait=drained, cancel_futures=True)
        return drained
