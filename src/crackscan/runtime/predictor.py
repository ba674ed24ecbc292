"""One predictor interface for every model file crackscan writes.

A model file is an ONNX graph whose ``metadata_props`` carry the facts needed to use it
(task, classes, which class is "crack", input size, normalisation, threshold, …), so
``predict``, ``evaluate``, ``inspect`` and ``serve`` run it with ONNX Runtime and no torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Task = Literal["classify", "segment"]
METADATA_KEY = "crackscan"
# Pixels per ONNX Runtime call (one 512² tile). A caller's batch is run in slices of about this
# many pixels: measured on 2 cores, crack-cls at 96 px runs 2,200 patches/s in slices of 24–32
# and 770/s as one batch of 256 (activations that outgrow the CPU caches); 64 px peaks at 48–64.
RUN_PIXELS = 512 * 512
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "assets" / "models"


class ModelLoadError(ValueError):
    """The file is not a usable crackscan model; the message says why."""


@dataclass
class ModelMetadata:
    """What a model file says about itself (stored as JSON in the ONNX metadata)."""

    task: Task
    arch: str
    class_names: list[str]
    crack_class: int  # index of the class reported as "crack" (classification)
    input_size: int  # px: square side the classifier expects / segmentation tile size
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    threshold: float = 0.5  # on the crack probability
    crackscan_version: str = ""
    precision: str = "fp32"  # "fp32" or "int8" (a quantised export)
    extra: dict[str, Any] = field(default_factory=dict)  # training data, metrics, command …

    @property
    def tile_size(self) -> int:
        """px: default tile side for tiled segmentation of large photos.

        Fully-convolutional models run on any multiple of their size multiple; tiles
        larger than the training crop waste less work on overlaps, so the default is
        ``extra["tile_size"]`` when the model says, else at least 512.
        """
        return int(self.extra.get("tile_size") or max(self.input_size, 512))

    def threshold_for(self, *, tta: bool = False) -> float:
        """The crack threshold for a run with or without flip TTA.

        Averaging over flips softens the edges of the probability map, so a threshold
        calibrated without TTA sits too high for it; ``extra["tta_threshold"]`` (from
        ``crackscan calibrate --tta``) is used when the model has one.
        """
        if tta:
            value = self.extra.get("tta_threshold")
            if isinstance(value, (int, float)) and 0.0 < float(value) < 1.0:
                return float(value)
        return float(self.threshold)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        raw = json.loads(text)
        raw["mean"] = tuple(raw["mean"])
        raw["std"] = tuple(raw["std"])
        known = {f for f in cls.__dataclass_fields__}
        extra = raw.pop("extra", {}) or {}
        extra.update({k: v for k, v in raw.items() if k not in known})
        return cls(**{k: v for k, v in raw.items() if k in known}, extra=extra)


def size_multiple(metadata: ModelMetadata) -> int:
    """px: a segmenter's input sides must be multiples of this (``extra["size_multiple"]``, else 32)."""
    try:
        multiple = int(metadata.extra.get("size_multiple", 32) or 1)
    except (TypeError, ValueError):
        multiple = 32
    return max(1, multiple)


def resolve_model_path(model: str | os.PathLike[str]) -> Path:
    """A path to a model file, or the name of a bundled model (``crack-cls`` …)."""
    path = Path(model)
    if path.is_file():
        return path
    bundled = BUNDLED_DIR / f"{model}.onnx"
    if isinstance(model, str) and "/" not in model and bundled.is_file():
        return bundled
    names = sorted(p.stem for p in BUNDLED_DIR.glob("*.onnx")) if BUNDLED_DIR.is_dir() else []
    raise ModelLoadError(f"{model}: no such model file or bundled model (bundled: {', '.join(names) or 'none yet'})")


@runtime_checkable
class Predictor(Protocol):
    """What every runtime backend offers (ONNX Runtime, torch): same inputs, same outputs.

    Inputs are N×H×W×3 uint8 RGB batches at the model's size; preprocessing (normalisation
    with ``metadata.mean``/``std``) happens inside, so backends agree to float precision.
    """

    path: Path
    metadata: ModelMetadata

    @property
    def task(self) -> Task: ...

    def logits(self, batch_uint8: np.ndarray) -> np.ndarray: ...

    def crack_probability(self, batch_uint8: np.ndarray) -> np.ndarray: ...

    def class_probabilities(self, batch_uint8: np.ndarray) -> np.ndarray: ...

    def probability_map(self, batch_uint8: np.ndarray) -> np.ndarray: ...


def physical_cores() -> int:
    """Physical CPU cores this process may use (hyper-threads share one core's FPU units).

    Read from /proc/cpuinfo where it exists; elsewhere the logical count. Never above the
    CPUs the process is allowed to run on.
    """
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        physical = core = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                physical = value.strip()
            elif key == "core id":
                core = value.strip()
                cores.add((physical, core))
    except OSError:
        pass
    return max(1, min(allowed, len(cores) or allowed))


def session_options(threads: int | None = None, *, spin_wait: bool = True) -> Any:
    """ONNX Runtime CPU session settings crackscan uses everywhere.

    Intra-op threads = physical cores (hyper-threads add contention, not FLOPs), one
    inter-op thread with sequential execution (CNNs are a chain of ops: parallel branches
    buy nothing), full graph optimisation (conv+BN+activation fusion), memory arena on
    (batches of one size reuse their buffers). ``spin_wait=False`` lets ONNX Runtime's idle
    threads sleep instead of spinning for the next op: the choice when other threads decode
    files beside inference (measured on 2 cores, crack-cls from JPEG files: +5 % patches/s;
    back-to-back in-memory batches: −8 %, so spinning stays the default).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = True
    if not spin_wait:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def run_batch_size(height: int, width: int) -> int:
    """Images per ONNX Runtime call at this input size: :data:`RUN_PIXELS` worth, at least 1."""
    return max(1, RUN_PIXELS // max(1, height * width))


def _normalise(batch: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """uint8 N×H×W×3 → float32 N×3×H×W, ``(x/255 - mean) / std``.

    The transpose is done on the uint8 pixels (a quarter of the bytes) and the scaling
    writes into one preallocated float32 array: ~7× faster than converting first and
    transposing the float copy, with bit-identical results.
    """
    scale = (1.0 / (255.0 * std)).astype(np.float32)[None, :, None, None]
    shift = (-mean / std).astype(np.float32)[None, :, None, None]
    planar = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
    out = np.empty(planar.shape, dtype=np.float32)
    np.multiply(planar, scale, out=out, casting="unsafe")
    out += shift
    return out


class OnnxPredictor:
    """ONNX Runtime on the CPU, tuned for throughput; safe to share between threads."""

    def __init__(self, model: str | os.PathLike[str], *, threads: int | None = None, spin_wait: bool = True) -> None:
        import onnxruntime as ort

        self.path = resolve_model_path(model)
        options = session_options(threads, spin_wait=spin_wait)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(f"{self.path}: not a loadable ONNX model ({exc})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ModelLoadError(
                f"{self.path}: an ONNX file without crackscan metadata; export it with `crackscan export`"
            )
        try:
            self.metadata = ModelMetadata.from_json(props[METADATA_KEY])
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelLoadError(f"{self.path}: unreadable crackscan metadata ({exc})") from None
        self._input = self.session.get_inputs()[0].name
        self._mean = np.asarray(self.metadata.mean, dtype=np.float32)
        self._std = np.asarray(self.metadata.std, dtype=np.float32)

    @property
    def task(self) -> Task:
        return self.metadata.task

    def logits(self, batch_uint8: np.ndarray) -> np.ndarray:
        """Raw outputs for an N×H×W×3 uint8 batch (already at the model's size).

        Large batches run in slices of :data:`RUN_PIXELS` pixels (see there why); the
        outputs are the same as one call's.
        """
        n, height, width = batch_uint8.shape[:3]
        step = run_batch_size(height, width)
        if n <= step:
            return self._run(batch_uint8)
        return np.concatenate([self._run(batch_uint8[i : i + step]) for i in range(0, n, step)])

    def _run(self, batch_uint8: np.ndarray) -> np.ndarray:
        x = _normalise(batch_uint8, self._mean, self._std)
        return self.session.run(None, {self._input: x})[0]

    def crack_probability(self, batch_uint8: np.ndarray) -> np.ndarray:
        """Classification: probability of the crack class per image, shape (N,)."""
        logits = self.logits(batch_uint8).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return probs[:, self.metadata.crack_class].astype(np.float32)

    def probability_map(self, batch_uint8: np.ndarray) -> np.ndarray:
        """Segmentation: per-pixel probabilities for an N×H×W×3 uint8 batch.

        Binary models (one output channel) give the crack probability, shape (N, H, W);
        multi-class models give the softmax over classes, shape (N, C, H, W). H and W
        must be multiples of the model's ``extra["size_multiple"]`` (32 for most encoders).
        """
        logits = self.logits(batch_uint8).astype(np.float32)
        if logits.shape[1] == 1:
            # sigmoid in place: no temporaries the size of the batch
            probs = np.negative(logits[:, 0])
            np.exp(probs, out=probs)
            probs += np.float32(1.0)
            return np.reciprocal(probs, out=probs)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def class_probabilities(self, batch_uint8: np.ndarray) -> np.ndarray:
        logits = self.logits(batch_uint8).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def load_predictor(model: str | os.PathLike[str], *, threads: int | None = None, spin_wait: bool = True) -> Predictor:
    """Open a model with the backend its extension names.

    ``spin_wait``: ONNX Runtime only; see :func:`session_options`.

    ``.onnx`` files and bundled model names run on ONNX Runtime (:class:`OnnxPredictor`);
    ``.pt`` files written by training run on torch
    (:class:`crackscan.runtime.torch_backend.TorchPredictor`, needs the ``train`` extra).
    Both satisfy :class:`Predictor`. ``a+b`` (two or more of the above joined by ``+``) opens
    :class:`crackscan.runtime.ensemble.EnsemblePredictor`, the mean of their probabilities.
    """
    from crackscan.runtime.ensemble import EnsemblePredictor, is_ensemble_spec, split_spec  # it imports this module

    if is_ensemble_spec(model):
        members = [load_predictor(part, threads=threads, spin_wait=spin_wait) for part in split_spec(str(model))]
        return EnsemblePredictor(members, name=str(model))
    path = resolve_model_path(model)
    suffix = path.suffix.lower()
    if suffix == ".pt":
        try:
            from crackscan.runtime.torch_backend import TorchPredictor
        except ImportError as exc:
            raise ModelLoadError(
                f"{path}: running a .pt model needs torch ({exc.name or exc} is missing); "
                'install it with `pip install "crackscan[train]"` or run the exported model.onnx'
            ) from None
        return TorchPredictor(path, threads=threads)
    if suffix != ".onnx":
        raise ModelLoadError(
            f"{path}: crackscan runs .onnx model files (ONNX Runtime) or model.pt (torch); the training "
            "run folder holds both next to its checkpoints"
        )
    return OnnxPredictor(path, threads=threads, spin_wait=spin_wait)
