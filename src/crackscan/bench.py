"""Throughput and latency: torch eager vs ONNX Runtime fp32 vs INT8, and the seeds' baseline.

Classification is measured end to end, from JPEG files on disk to crack probabilities,
through :func:`crackscan.evaluation.inference.classify_files` (threaded reduced-size
decode overlapped with inference) for every backend, so only the backend differs. The
**seeds' baseline** is the path crackscan replaces: PIL decode, torchvision
``Resize(224)`` + ``ToTensor`` + ``Normalize``, torchvision ResNet18 (2-class head),
PyTorch eager, batch 32. Segmentation is measured on decoded 512×512 photos, one per
call (the way ``inspect`` runs tiles), in images/s.

Figures: images/s, per-batch latency p50/p95 (ms) and single-image latency p50/p95 (ms).
Torch parts are skipped with a note when torch is not installed. Library code: nothing
is printed; :func:`run_bench` returns a JSON-ready dict.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crackscan.runtime.predictor import ModelLoadError, OnnxPredictor, Predictor, physical_cores

log = logging.getLogger(__name__)
TASKS = ("classify", "segment")
SEGMENT_SIZE = 512  # px: the segmentation figure is 512×512 images/s
UNIQUE_SYNTHETIC = {"classify": 32, "segment": 8}  # distinct synthetic files; the list repeats them
SYNTH_CLASSIFY_SIZE = 227  # px: the size of the public crack patch sets (Özgenel)
LATENCY_SAMPLES = 32
Progress = Callable[[str], None]


class BenchError(RuntimeError):
    """The benchmark cannot run as asked; the message says why."""


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------- figures
def figures(n: int, seconds: float, latencies: Sequence[float], batch: int) -> dict[str, float]:
    """Throughput and batch latency percentiles (``latencies`` in seconds per batch)."""
    lat = np.asarray(latencies, dtype=np.float64) * 1000.0 if len(latencies) else np.zeros(1)
    return {
        "images": float(n),
        "seconds": round(seconds, 3),
        "images_per_s": round(n / seconds, 1) if seconds > 0 else float("nan"),
        "batch": float(batch),
        "batch_latency_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "batch_latency_p95_ms": round(float(np.percentile(lat, 95)), 1),
    }


def _single_latency(run: Callable[[np.ndarray], Any], images: np.ndarray) -> dict[str, float]:
    """p50/p95 of one-image calls (what a service request sees), after one warm-up call."""
    run(images[:1])
    times = []
    for i in range(len(images)):
        t = time.perf_counter()
        run(images[i : i + 1])
        times.append(time.perf_counter() - t)
    lat = np.asarray(times) * 1000.0
    return {
        "latency_1_p50_ms": round(float(np.percentile(lat, 50)), 2),
        "latency_1_p95_ms": round(float(np.percentile(lat, 95)), 2),
    }


# ----------------------------------------------------------------------------- seeds' baseline
def seeds_baseline(files: Sequence[Path], batch_size: int = 32) -> dict[str, float]:
    """The seeds' path: PIL decode, torchvision transforms, ResNet18 at 224×224, eager, batch 32.

    Random weights: speed does not depend on them. Needs torch and torchvision.
    """
    import torch
    import torchvision
    from PIL import Image
    from torchvision import transforms

    model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Linear(model.fc.in_features, 2)
    model.eval()
    tf = transforms.Compose(
        [
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    latencies = []
    started = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(files), batch_size):
            t = time.perf_counter()
            x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files[i : i + batch_size]])
            torch.softmax(model(x), dim=1)
            latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    return figures(len(files), total, latencies, batch_size)


# ----------------------------------------------------------------------------- crackscan paths
def classify_throughput(predictor: Predictor, files: Sequence[Path], batch_size: int = 256) -> dict[str, float]:
    """End-to-end files → crack probabilities with ``crackscan predict``'s own code path."""
    from crackscan.evaluation.inference import classify_files

    classify_files(predictor, files[: min(len(files), 2 * batch_size)], batch_size=batch_size)  # type: ignore[arg-type]
    started = time.perf_counter()
    marks: list[float] = []
    result = classify_files(
        predictor,  # type: ignore[arg-type]
        files,
        batch_size=batch_size,
        progress=lambda done, total: marks.append(time.perf_counter()),
    )
    total = time.perf_counter() - started
    latencies = list(np.diff([started, *marks[1:]])) if len(marks) > 1 else [total]
    out = figures(len(files), total, latencies, batch_size)
    out["unreadable"] = float(len(result.problems))
    return out


def crackscan_path(model: str, files: list[Path], batch_size: int) -> dict[str, float]:
    """Throughput of a model file / bundled name / run folder with ONNX Runtime (the script's entry)."""
    from crackscan.evaluation import open_model

    return classify_throughput(open_model(model, spin_wait=False), files, batch_size)


def segment_throughput(predictor: Predictor, images: np.ndarray) -> dict[str, float]:
    """512×512 photos, one per call: images/s and per-image latency."""
    predictor.probability_map(images[:1])  # warm-up: allocations, kernel selection
    times = []
    started = time.perf_counter()
    for i in range(len(images)):
        t = time.perf_counter()
        predictor.probability_map(images[i : i + 1])
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    out = figures(len(images), total, times, 1)
    out["latency_1_p50_ms"] = out["batch_latency_p50_ms"]
    out["latency_1_p95_ms"] = out["batch_latency_p95_ms"]
    return out


# ----------------------------------------------------------------------------- inputs
def synthetic_images(task: str, folder: Path, n: int) -> list[Path]:
    """``n`` image paths under ``folder``: a few distinct synthetic photos, repeated (decode cost is real)."""
    from crackscan.data.synth import generate_dataset

    unique = min(n, UNIQUE_SYNTHETIC[task])
    size = SYNTH_CLASSIFY_SIZE if task == "classify" else SEGMENT_SIZE
    generate_dataset(folder, task=task, n=unique, size=size, seed=0)
    made = sorted(p for p in folder.rglob("*.jpg"))
    return [made[i % len(made)] for i in range(n)]


def image_files(task: str, images: str | Path | None, n: int, scratch: Path) -> tuple[list[Path], str]:
    if images is None:
        return synthetic_images(task, scratch / "images", n), f"synthetic ({UNIQUE_SYNTHETIC[task]} distinct, repeated)"
    from crackscan.evaluation.files import collect_images

    files, _ = collect_images([images])
    if not files:
        raise BenchError(f"{images}: no images")
    rng = np.random.default_rng(0)
    files = [files[i] for i in rng.permutation(len(files))]
    files = [files[i % len(files)] for i in range(n)]
    return files, str(images)


# ----------------------------------------------------------------------------- models
def _fresh_model(task: str, folder: Path) -> Path:
    """An untrained default model saved like training does (speed does not depend on weights)."""
    import json

    import torch

    from crackscan.models.classifiers import FAST_DEFAULT, create_classifier, normalisation_for
    from crackscan.runtime.predictor import ModelMetadata

    torch.manual_seed(0)
    if task == "classify":
        net = create_classifier(FAST_DEFAULT, 2)
        norm = normalisation_for(FAST_DEFAULT)
        meta = ModelMetadata("classify", FAST_DEFAULT, ["no_crack", "crack"], 1, 96, norm.mean, norm.std)
    else:
        from crackscan.models.segmenters import DEFAULT_ENCODER, create_segmenter

        net = create_segmenter("unet", DEFAULT_ENCODER, 1)
        norm = normalisation_for(DEFAULT_ENCODER)
        meta = ModelMetadata(
            "segment",
            "unet",
            ["background", "crack"],
            1,
            SEGMENT_SIZE,
            norm.mean,
            norm.std,
            extra={"encoder": DEFAULT_ENCODER, "classes": 1, "size_multiple": 32},
        )
    meta.extra["note"] = "untrained default architecture made by crackscan bench (speed only)"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pt"
    torch.save({"state_dict": net.state_dict(), "metadata": json.loads(meta.to_json())}, path)
    return path


def _merged(spec: str, dst: Path, notes: list[str]) -> Path:
    """``A+B``: the members merged into one graph, the file ``crackscan export A+B --out F`` writes.

    Timing the merged graph rather than the load-time ensemble: it is what one ships, and one
    ONNX Runtime session runs both members without a Python loop between them.
    """
    from crackscan.runtime.ensemble import split_spec
    from crackscan.runtime.predictor import resolve_model_path

    try:
        from crackscan.runtime.merge import MergeError, merge_segmenters
    except ImportError as exc:
        raise BenchError(
            f'timing an ensemble merges it with onnx ({exc.name or exc}): pip install "crackscan[train]"'
        ) from None
    try:
        merge_segmenters([resolve_model_path(part) for part in split_spec(spec)], dst)
    except (MergeError, ModelLoadError) as exc:
        raise BenchError(str(exc)) from None
    notes.append("model: the members merged into one graph for this run (as `crackscan export A+B --out F` writes)")
    return dst


def resolve_models(model: str | None, task: str, scratch: Path, notes: list[str]) -> dict[str, Path | None]:
    """The files to compare: ``torch`` (model.pt), ``fp32`` (.onnx) and ``int8`` (.onnx), any may be None."""
    from crackscan.runtime.predictor import resolve_model_path

    have_torch = torch_available()
    if model is None:
        if not have_torch:
            raise BenchError("no --model given and torch is not installed to build the default one; pass --model")
        pt = _fresh_model(task, scratch / "fresh")
        notes.append("model: an untrained default architecture (random weights; speed only)")
        return {"torch": pt, "fp32": None, "int8": None}
    from crackscan.runtime.ensemble import is_ensemble_spec

    if is_ensemble_spec(model):
        return {"torch": None, "fp32": _merged(model, scratch / "ensemble" / "model.onnx", notes), "int8": None}
    path = Path(model)
    if path.is_dir():
        pt = path / "model.pt"
        onnx = path / "model.onnx"
        int8 = path / "model.int8.onnx"
    else:
        path = resolve_model_path(model)
        pt = path if path.suffix == ".pt" else path.with_name("model.pt")
        onnx = path if path.suffix == ".onnx" else path.with_name("model.onnx")
        int8 = path.with_name("model.int8.onnx")
        if path.suffix == ".onnx" and OnnxPredictor(path).metadata.precision == "int8":
            int8, onnx = path, path.with_name("model.onnx")
    return {
        "torch": pt if pt.is_file() else None,
        "fp32": onnx if onnx.is_file() else None,
        "int8": int8 if int8.is_file() else None,
    }


def _fill_missing(models: dict[str, Path | None], scratch: Path, calibration: np.ndarray, notes: list[str]) -> None:
    """Export fp32 from model.pt and quantise INT8 when the files are not there already."""
    if models["fp32"] is None and models["torch"] is not None and torch_available():
        from crackscan.runtime.export import export_onnx
        from crackscan.runtime.torch_backend import load_torch_model

        loaded = load_torch_model(models["torch"])
        out = scratch / "export" / "model.onnx"
        export_onnx(loaded.model, loaded.metadata, out)
        models["fp32"] = out
        notes.append("onnx fp32: exported from model.pt for this run")
    stored = OnnxPredictor(models["fp32"]).metadata.precision if models["fp32"] is not None else "fp32"
    if models["int8"] is None and stored != "fp32":  # fp16- or int8-stored weights: the fp32 original is not here
        notes.append(f"onnx int8: skipped (precision {stored}: static INT8 starts from an fp32 export)")
    elif models["int8"] is None and models["fp32"] is not None:
        try:
            from crackscan.runtime.export import INT8_METHOD
            from crackscan.runtime.quantize import quantize_int8

            out = scratch / "export" / "model.int8.onnx"
            quantize_int8(models["fp32"], out, method=INT8_METHOD, calibration_images=calibration)  # type: ignore[arg-type]
            models["int8"] = out
            notes.append(f"onnx int8: quantised ({INT8_METHOD}) for this run, calibrated on the bench images")
        except ImportError as exc:
            notes.append(f"onnx int8: skipped ({exc.name or exc} not installed; needs the train extra)")
        except Exception as exc:
            notes.append(f"onnx int8: skipped (quantisation failed: {exc})")


def _machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs ({physical_cores()} physical cores)"


def run_bench(
    *,
    task: str = "classify",
    model: str | None = None,
    images: str | Path | None = None,
    n: int = 1000,
    batch_size: int = 256,
    n_baseline: int | None = None,
    baseline: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure every backend available for ``model`` on the same images; return the report.

    ``model``: a run folder, ``model.pt``, ``.onnx`` or bundled name, or segmenters joined by
    ``+`` (merged into one graph first); ``None`` builds an untrained default model (needs
    torch). Missing siblings are made on the fly: the fp32 ONNX file from ``model.pt`` and
    the INT8 file by quantising the fp32 one. ``images``:
    a folder (default: synthetic images made now). Report keys: ``machine``, ``task``,
    ``model``, ``images``, ``n``, ``results`` (``torch_eager``, ``onnx_fp32``, ``onnx_int8``,
    ``seeds_baseline``; each ``None`` when skipped), ``ratios``, ``notes``.
    """
    if task not in TASKS:
        raise BenchError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    if n < 1:
        raise BenchError(f"--n must be at least 1, got {n}")
    say = progress or (lambda message: None)
    notes: list[str] = []
    results: dict[str, dict[str, float] | None] = {
        "seeds_baseline": None,
        "torch_eager": None,
        "onnx_fp32": None,
        "onnx_int8": None,
    }
    with tempfile.TemporaryDirectory(prefix="crackscan-bench-") as tmp:
        scratch = Path(tmp)
        say("preparing images")
        files, image_source = image_files(task, images, n, scratch)
        models = resolve_models(model, task, scratch, notes)
        meta_source = models["fp32"] or models["int8"]
        if meta_source is not None:
            meta = OnnxPredictor(meta_source).metadata
        elif models["torch"] is not None and torch_available():
            from crackscan.runtime.torch_backend import load_torch_model

            meta = load_torch_model(models["torch"]).metadata
        else:
            raise BenchError(f"{model}: no runnable model (no .onnx file, and torch is needed for model.pt)")
        if meta.task != task:
            raise BenchError(f"{model}: a {meta.task} model; run with --task {meta.task}")
        size = meta.input_size if task == "classify" else SEGMENT_SIZE
        decoded = _decode(files[: max(LATENCY_SAMPLES, 64)] if task == "classify" else files, size)
        say("preparing models")
        _fill_missing(models, scratch, decoded[:64], notes)
        if not torch_available():
            notes.append("torch eager and the seeds' baseline: skipped (torch not installed)")
            models["torch"] = None
        elif models["torch"] is None:
            notes.append("torch eager: skipped (no model.pt next to the model)")
        backends: list[tuple[str, Callable[[], Predictor]]] = []
        if models["torch"] is not None:
            from crackscan.runtime.torch_backend import TorchPredictor

            pt = models["torch"]
            backends.append(("torch_eager", lambda: TorchPredictor(pt)))
        spin = task != "classify"  # classification reads JPEG files beside inference: idle ORT threads sleep
        for key, name in (("fp32", "onnx_fp32"), ("int8", "onnx_int8")):
            path = models[key]
            if path is not None:
                backends.append((name, lambda path=path: OnnxPredictor(path, spin_wait=spin)))
        for name, make in backends:
            say(f"measuring {name}")
            predictor = make()
            if task == "classify":
                fig = classify_throughput(predictor, files, batch_size)
                fig.update(_single_latency(predictor.class_probabilities, decoded[:LATENCY_SAMPLES]))
            else:
                fig = segment_throughput(predictor, decoded)
            results[name] = fig
        if task == "classify" and baseline and torch_available():
            try:
                say("measuring the seeds' baseline")
                results["seeds_baseline"] = seeds_baseline(files[: n_baseline or min(n, 320)])
            except ImportError as exc:
                notes.append(f"seeds' baseline: skipped ({exc.name or exc} not installed)")
        elif task == "segment":
            notes.append("seeds' baseline: classification only (ResNet18 patches); not run for segmentation")
    return {
        "machine": _machine(),
        "task": task,
        "model": model or "untrained default",
        "arch": meta.arch,
        "input_size": size,
        "images": image_source,
        "n": n,
        "results": results,
        "ratios": ratios(results),
        "notes": notes,
    }


def _decode(files: Sequence[Path], size: int) -> np.ndarray:
    from crackscan.runtime.preprocess import load_patch

    return np.stack([load_patch(f, size) for f in files])


def ratios(results: dict[str, dict[str, float] | None]) -> dict[str, float | None]:
    """Throughput ratios: each crackscan backend vs the seeds' baseline, and between backends."""

    def rate(name: str) -> float | None:
        fig = results.get(name)
        return fig["images_per_s"] if fig and fig.get("images_per_s") else None

    def ratio(a: str, b: str) -> float | None:
        ra, rb = rate(a), rate(b)
        return round(ra / rb, 2) if ra and rb else None

    return {
        "onnx_fp32_vs_seeds_baseline": ratio("onnx_fp32", "seeds_baseline"),
        "onnx_int8_vs_seeds_baseline": ratio("onnx_int8", "seeds_baseline"),
        "torch_eager_vs_seeds_baseline": ratio("torch_eager", "seeds_baseline"),
        "onnx_fp32_vs_torch_eager": ratio("onnx_fp32", "torch_eager"),
        "onnx_int8_vs_onnx_fp32": ratio("onnx_int8", "onnx_fp32"),
    }


__all__ = [
    "BenchError",
    "ModelLoadError",
    "classify_throughput",
    "crackscan_path",
    "figures",
    "ratios",
    "run_bench",
    "seeds_baseline",
    "segment_throughput",
]
