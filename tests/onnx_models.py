"""Tiny crackscan ONNX models built with ``onnx.helper`` — no torch, milliseconds to build.

Each builder writes a valid crackscan model file (ONNX graph + the ``crackscan``
metadata JSON in ``metadata_props``) that :func:`crackscan.runtime.predictor.load_predictor`
opens like an exported model. The graphs are simple functions of the normalised input
``x`` (with the default mean = std = 0.5, ``x = 2·grey/255 − 1``: −1 black, 1 white), so
tests know the right answer in closed form:

* :func:`segmentation_model`: per-pixel logit ``a · mean_c(x) + b`` (N×1×H×W); with the
  default ``a = −10, b = −5`` darker pixels are more "crack" and a pixel is crack
  (p > 0.5) below grey ~64. ``blur = k`` box-filters ``mean_c(x)`` over ``k×k`` (zero
  padding) first: a fully convolutional model whose output depends on a neighbourhood.
* :func:`multiclass_segmentation_model`: logits ``[0, a·m + b, −a·m + b]`` for classes
  background / crack / light (``m = mean_c(x)``): mid grey is background, dark crack,
  bright "light".
* :func:`classification_model`: two logits ``[0, a · mean(x) + b]`` per image (class 1
  is "crack"): a darker image is more likely a crack.

Keyword arguments other than the graph's own (``a``, ``b``, ``blur``) override fields of
the crackscan metadata (``threshold=0.3``, ``input_size=128``, ``class_names=[…]``);
``extra={…}`` is merged into the default ``{"size_multiple": 32}``.

Use from a test: ``from onnx_models import segmentation_model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17
IR_VERSION = 8  # the oldest IR that carries opset 17: every onnxruntime we support reads it


def model_metadata(task: str, **fields: Any) -> Any:
    """A :class:`~crackscan.runtime.predictor.ModelMetadata` for a tiny test model; ``fields`` override.

    Defaults: 64-px input, mean = std = 0.5, threshold 0.5, crack class 1,
    ``extra={"size_multiple": 32}`` (``extra`` given here is merged into it).
    """
    from crackscan.runtime.predictor import ModelMetadata

    base: dict[str, Any] = {
        "task": task,
        "arch": f"tiny-{task}",
        "class_names": ["background", "crack"] if task == "segment" else ["no_crack", "crack"],
        "crack_class": 1,
        "input_size": 64,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "threshold": 0.5,
        "crackscan_version": "test",
        "extra": {"size_multiple": 32},
    }
    extra = fields.pop("extra", None) or {}
    base.update(fields)
    base["extra"] = {**base["extra"], **extra}
    base["mean"], base["std"] = tuple(base["mean"]), tuple(base["std"])
    return ModelMetadata(**base)


def _save(graph: Any, path: Path, task: str, fields: dict[str, Any]) -> Path:
    import onnx
    from onnx import helper

    from crackscan.runtime.predictor import METADATA_KEY

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="crackscan-tests")
    model.ir_version = IR_VERSION
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = model_metadata(task, **fields).to_json()
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _scalars(**values: float) -> list[Any]:
    from onnx import TensorProto, helper

    return [helper.make_tensor(name, TensorProto.FLOAT, [], [float(v)]) for name, v in values.items()]


def _io(out_shape: list[Any]) -> tuple[list[Any], list[Any]]:
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)]
    return inputs, outputs


def _grey_nodes(blur: int) -> tuple[list[Any], list[Any]]:
    """Nodes computing ``grey`` (N×1×H×W) = channel mean of the input, box-filtered if ``blur`` > 0."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceMean", ["image"], ["grey0"], axes=[1], keepdims=1)]
    inits: list[Any] = []
    if blur > 0:
        kernel = np.full((1, 1, blur, blur), 1.0 / (blur * blur), dtype=np.float32)
        inits.append(helper.make_tensor("kernel", TensorProto.FLOAT, kernel.shape, kernel.ravel().tolist()))
        lo, hi = (blur - 1) // 2, blur // 2
        nodes.append(helper.make_node("Conv", ["grey0", "kernel"], ["grey"], pads=[lo, lo, hi, hi]))
    else:
        nodes.append(helper.make_node("Identity", ["grey0"], ["grey"]))
    return nodes, inits


def segmentation_model(path: Path, *, a: float = -10.0, b: float = -5.0, blur: int = 0, **metadata: Any) -> Path:
    """A binary segmenter: logit ``a · mean_c(x) + b`` per pixel (box-filtered over ``blur×blur`` if > 0)."""
    from onnx import helper

    nodes, inits = _grey_nodes(blur)
    nodes += [helper.make_node("Mul", ["grey", "a"], ["scaled"]), helper.make_node("Add", ["scaled", "b"], ["logits"])]
    graph = helper.make_graph(
        nodes, "tiny_segmenter", *_io(["batch", 1, "height", "width"]), inits + _scalars(a=a, b=b)
    )
    return _save(graph, path, "segment", metadata)


def multiclass_segmentation_model(path: Path, *, a: float = -10.0, b: float = -5.0, **metadata: Any) -> Path:
    """Three classes background / crack / light: logits ``[0, a·m + b, −a·m + b]`` with ``m = mean_c(x)``."""
    from onnx import helper

    nodes, inits = _grey_nodes(0)
    nodes += [
        helper.make_node("Mul", ["grey", "a"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b"], ["crack"]),
        helper.make_node("Neg", ["scaled"], ["flipped"]),
        helper.make_node("Add", ["flipped", "b"], ["light"]),
        helper.make_node("Mul", ["grey", "zero"], ["background"]),
        helper.make_node("Concat", ["background", "crack", "light"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_multiclass_segmenter", *_io(["batch", 3, "height", "width"]), inits + _scalars(a=a, b=b, zero=0.0)
    )
    metadata.setdefault("class_names", ["background", "crack", "light"])
    return _save(graph, path, "segment", metadata)


def classification_model(path: Path, *, a: float = -10.0, b: float = -5.0, **metadata: Any) -> Path:
    """A two-class classifier: logits ``[0, a · mean(x) + b]``; class 1 ("crack") for dark images."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["m", "axis1"], ["m1"]),
        helper.make_node("Mul", ["m1", "a"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b"], ["crack"]),
        helper.make_node("Mul", ["crack", "zero"], ["background"]),
        helper.make_node("Concat", ["background", "crack"], ["logits"], axis=1),
    ]
    inits = [*_scalars(a=a, b=b, zero=0.0), helper.make_tensor("axis1", TensorProto.INT64, [1], [1])]
    graph = helper.make_graph(nodes, "tiny_classifier", *_io(["batch", 2]), inits)
    metadata.setdefault("extra", {})
    return _save(graph, path, "classify", metadata)
