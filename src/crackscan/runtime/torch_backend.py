"""The torch backend: run a training run's ``model.pt`` with the predictor interface.

:class:`TorchPredictor` rebuilds the network from the metadata stored next to the
weights (task, arch, encoder, classes, decoder channels), loads the weights with
``weights_only=True`` and answers like :class:`~crackscan.runtime.predictor.OnnxPredictor`
— same preprocessing, same outputs — so the two can be compared number for number.

:func:`load_torch_model` is also what ``crackscan export`` uses: it accepts a
``model.pt``, a Lightning ``.ckpt`` from a run's ``checkpoints/`` or a run folder.
Needs torch (the ``train`` extra).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crackscan.runtime.predictor import METADATA_KEY, ModelLoadError, ModelMetadata, Task, _normalise

log = logging.getLogger(__name__)


@dataclass
class TorchModel:
    """A rebuilt network in eval mode and what is known about it.

    ``run_dir`` is the training run folder when the weights came from one (it holds
    ``split.json`` and ``config.json``); ``source`` is the file the weights came from.
    """

    model: nn.Module
    metadata: ModelMetadata
    source: Path
    run_dir: Path | None


def _run_dir_of(path: Path) -> Path | None:
    """The run folder a weights file belongs to (``model.pt`` beside it, ``.ckpt`` one level down)."""
    for folder in (path.parent, path.parent.parent):
        if (folder / "config.json").is_file() or (folder / "split.json").is_file():
            return folder
    return None


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, foreign formats
        raise ModelLoadError(f"{path}: not a loadable torch weights file ({type(exc).__name__}: {exc})") from None


def _onnx_metadata(path: Path) -> ModelMetadata | None:
    try:
        import onnx
    except ImportError:
        return None
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return None
    props = {p.key: p.value for p in proto.metadata_props}
    return ModelMetadata.from_json(props[METADATA_KEY]) if METADATA_KEY in props else None


def _metadata_from_config(run_dir: Path) -> ModelMetadata:
    """Rebuild metadata from a run's ``config.json`` (a run stopped before it exported).

    The threshold is the default 0.5 (calibration happens at the end of training).
    """
    from crackscan.models.classifiers import normalisation_for

    cfg = json.loads((run_dir / "config.json").read_text())
    if "encoder" in cfg:  # segmentation config
        from crackscan.data.classes import canonical_class

        classes = int(cfg.get("classes", 1))
        n = max(2, classes)
        names = list(cfg.get("class_names") or (["background", "crack"] if classes == 1 else []))
        names = names or ["background", *(f"class_{i}" for i in range(1, n))]
        crack = next((i for i, c in enumerate(names[1:], 1) if canonical_class(c) == "crack"), 1)
        norm = normalisation_for(cfg["encoder"].removeprefix("tu-"))
        from crackscan.runtime.preprocess_seg import preprocess_spec

        return ModelMetadata(
            task="segment",
            arch=cfg["arch"],
            class_names=names,
            crack_class=crack,
            input_size=int(cfg.get("crop", 512)),
            mean=norm.mean,
            std=norm.std,
            extra={
                "encoder": cfg["encoder"].removeprefix("tu-"),
                "classes": classes,
                "decoder_channels": cfg.get("decoder_channels"),
                "head_stride": int(cfg.get("head_stride", 1)),
                "decoder_norm": cfg.get("decoder_norm", "group"),
                "deep_supervision": cfg.get("deep_supervision", True),
                "cgm": cfg.get("cgm", False),
                "size_multiple": 32,
                "preprocess": preprocess_spec(
                    grayscale=bool(cfg.get("grayscale")), clahe=bool(cfg.get("clahe")), deglare=bool(cfg.get("deglare"))
                ),
                "threshold_source": "default (run stopped before calibration)",
            },
        )
    from crackscan.data.classes import crack_index, model_class_names
    from crackscan.data.layouts import index_dataset

    roots = [cfg["data"]] if isinstance(cfg["data"], str) else list(cfg["data"])  # one set, or several
    try:
        names = model_class_names(list(dict.fromkeys(c for r in roots for c in index_dataset(r).class_counts)))
    except Exception as exc:
        raise ModelLoadError(
            f"{run_dir}: no model.pt or model.onnx to read the class names from, and the training data "
            f"{cfg.get('data')} is not readable ({exc})"
        ) from None
    norm = normalisation_for(cfg["arch"])
    return ModelMetadata(
        task="classify",
        arch=cfg["arch"],
        class_names=names,
        crack_class=crack_index(names),
        input_size=int(cfg.get("img_size", 96)),
        mean=norm.mean,
        std=norm.std,
        extra={"training_data": {"root": str(Path(roots[0]).resolve())}},
    )


def _metadata_for_checkpoint(ckpt: Path, run_dir: Path | None) -> ModelMetadata:
    if run_dir is None:
        raise ModelLoadError(
            f"{ckpt}: a Lightning checkpoint outside a run folder; crackscan needs the run's model.pt, "
            "model.onnx or config.json to know the architecture"
        )
    if (run_dir / "model.pt").is_file():
        raw = _torch_load(run_dir / "model.pt")
        if isinstance(raw, dict) and isinstance(raw.get("metadata"), dict):
            return ModelMetadata.from_json(json.dumps(raw["metadata"]))
    if (run_dir / "model.onnx").is_file():
        meta = _onnx_metadata(run_dir / "model.onnx")
        if meta is not None:
            meta.precision = "fp32"
            return meta
    if (run_dir / "config.json").is_file():
        return _metadata_from_config(run_dir)
    raise ModelLoadError(f"{ckpt}: the run folder {run_dir} holds no model.pt, model.onnx or config.json")


def _segment_options(meta: ModelMetadata, run_dir: Path | None, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Constructor arguments of a segmenter, from metadata, then the run's config, then the weights."""
    extra = meta.extra
    cfg: dict[str, Any] = {}
    if run_dir is not None and (run_dir / "config.json").is_file():
        try:
            cfg = json.loads((run_dir / "config.json").read_text())
        except ValueError:
            cfg = {}
    # The output channels: 1 for a binary (sigmoid) model, else one per class; the weights settle it.
    classes = extra.get("classes", cfg.get("classes"))
    if classes is None:
        classes = 1 if len(meta.class_names) <= 2 else len(meta.class_names)
    return {
        "arch": meta.arch,
        "encoder": extra.get("encoder", cfg.get("encoder")),
        "classes": int(classes),
        "decoder_channels": extra.get("decoder_channels", cfg.get("decoder_channels")),
        "head_stride": int(extra.get("head_stride", cfg.get("head_stride", 1))),
        "decoder_norm": str(extra.get("decoder_norm", cfg.get("decoder_norm", "group"))),
        "deep_supervision": bool(extra.get("deep_supervision", cfg.get("deep_supervision", True))),
        # A classification-guidance branch shows in the weights even when nothing recorded it.
        "cgm": bool(extra.get("cgm", cfg.get("cgm", any(k.startswith("cgm.") for k in state)))),
    }


def build_network(meta: ModelMetadata, state: dict[str, torch.Tensor], run_dir: Path | None = None) -> nn.Module:
    """The network the metadata describes, with ``state`` loaded strictly, in eval mode."""
    if meta.task == "classify":
        from crackscan.models.classifiers import create_classifier

        try:
            model = create_classifier(meta.arch, len(meta.class_names))
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from None
    elif meta.task == "segment":
        try:
            from crackscan.models.segmenters import create_segmenter
        except ImportError as exc:
            raise ModelLoadError(f"segmentation models need segmentation-models-pytorch ({exc})") from None
        options = _segment_options(meta, run_dir, state)
        if not options["encoder"]:
            raise ModelLoadError(f"segmentation model {meta.arch!r}: the metadata names no encoder")
        arch = options.pop("arch")
        encoder = options.pop("encoder")
        classes = options.pop("classes")
        try:
            model = create_segmenter(arch, encoder, classes, **options)
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from None
    else:
        raise ModelLoadError(f"unknown task {meta.task!r} in the model's metadata")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelLoadError(
            f"the weights do not fit a {meta.task} {meta.arch} with {len(meta.class_names)} classes "
            f"({first[1].strip() if len(first) > 1 else first[0]})"
        ) from None
    return model.eval()


def load_torch_model(path: str | os.PathLike[str]) -> TorchModel:
    """Rebuild a trained network from ``model.pt``, a Lightning ``.ckpt`` or a run folder.

    ``model.pt`` carries ``{"state_dict", "metadata"}``; a checkpoint carries only weights
    (keys prefixed ``model.``), so its metadata comes from the run folder (``model.pt``,
    else ``model.onnx``, else ``config.json``). Raises :class:`ModelLoadError`.
    """
    path = Path(path)
    if path.is_dir():
        run_dir: Path | None = path
        if (path / "model.pt").is_file():
            path = path / "model.pt"
        else:
            ckpts = sorted((path / "checkpoints").glob("best*.ckpt")) or sorted((path / "checkpoints").glob("*.ckpt"))
            if not ckpts:
                raise ModelLoadError(f"{path}: a folder without model.pt or checkpoints/*.ckpt")
            path = ckpts[-1]
    elif not path.is_file():
        raise ModelLoadError(f"{path}: no such file or folder")
    else:
        run_dir = _run_dir_of(path)
    raw = _torch_load(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("state_dict"), dict):
        raise ModelLoadError(f"{path}: not a crackscan model.pt or Lightning checkpoint (no state_dict)")
    if isinstance(raw.get("metadata"), dict):
        try:
            meta = ModelMetadata.from_json(json.dumps(raw["metadata"]))
        except (TypeError, KeyError, ValueError) as exc:
            raise ModelLoadError(f"{path}: unreadable crackscan metadata ({exc})") from None
        state = raw["state_dict"]
    else:
        meta = _metadata_for_checkpoint(path, run_dir)
        # Lightning modules hold the network as ``self.model``; loss modules may add tensors.
        state = {k.removeprefix("model."): v for k, v in raw["state_dict"].items() if k.startswith("model.")}
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path}: the state_dict holds no network tensors")
    model = build_network(meta, state, run_dir)
    return TorchModel(model=model, metadata=meta, source=path, run_dir=run_dir)


def network_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The logits tensor of a forward pass (some models return a tuple/list/dict in training)."""
    out = model(x)
    if isinstance(out, dict):
        out = out.get("masks", next(iter(out.values())))
    return out[0] if isinstance(out, (tuple, list)) else out


class TorchPredictor:
    """Run ``model.pt`` (or a checkpoint / run folder) with torch, as ``OnnxPredictor`` runs ``.onnx``.

    Same preprocessing (:func:`~crackscan.runtime.predictor._normalise`), same outputs;
    float32 on the CPU, eager mode, no gradients.
    """

    def __init__(self, model: str | os.PathLike[str], *, threads: int | None = None) -> None:
        loaded = load_torch_model(model)
        self.path = loaded.source
        self.run_dir = loaded.run_dir
        self.metadata = loaded.metadata
        self.model = loaded.model
        if threads:
            torch.set_num_threads(threads)
        self._mean = np.asarray(self.metadata.mean, dtype=np.float32)
        self._std = np.asarray(self.metadata.std, dtype=np.float32)

    @property
    def task(self) -> Task:
        return self.metadata.task

    def logits(self, batch_uint8: np.ndarray) -> np.ndarray:
        """Raw outputs for an N×H×W×3 uint8 batch (already at the model's size)."""
        x = torch.from_numpy(_normalise(batch_uint8, self._mean, self._std))
        with torch.inference_mode():
            return network_output(self.model, x).float().numpy()

    def class_probabilities(self, batch_uint8: np.ndarray) -> np.ndarray:
        logits = self.logits(batch_uint8).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)

    def crack_probability(self, batch_uint8: np.ndarray) -> np.ndarray:
        """Classification: probability of the crack class per image, shape (N,)."""
        return self.class_probabilities(batch_uint8)[:, self.metadata.crack_class]

    def probability_map(self, batch_uint8: np.ndarray) -> np.ndarray:
        """Segmentation: (N, H, W) crack probability (binary) or (N, C, H, W) softmax."""
        logits = self.logits(batch_uint8).astype(np.float32)
        if logits.shape[1] == 1:
            return 1.0 / (1.0 + np.exp(-logits[:, 0]))
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)
