"""Recover trainable torch weights from a crackscan ONNX export, to fine-tune a bundled model.

Export folds every BatchNorm into the convolution before it (and may store weights as fp16),
so an exported graph holds one weight and one bias per convolution and no BatchNorm statistics.
:func:`load_onnx_weights` pours those back into a freshly built model of the same architecture:

* convolutions and linear layers are paired with the graph's ``Conv`` and ``Gemm`` nodes in execution
  order (kinds and shapes must agree);
* a BatchNorm that follows a convolution gets the statistics of that convolution's output measured
  on ``calibration`` batches (mean ``m``, variance ``v``), with ``gamma = sqrt(v + eps)`` and
  ``beta = bias + m`` — so in eval mode the layer adds exactly the folded bias (the graph's function
  is reproduced), and in train mode, where BatchNorm normalises by batch statistics, it stays close
  to that instead of rescaling every activation to unit variance.

The result is checked against ONNX Runtime on the calibration batches before it is returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from crackscan.models.pretrained import PretrainedWeightsError
from crackscan.runtime.predictor import METADATA_KEY, ModelLoadError, ModelMetadata, resolve_model_path

_LAYER_OPS = {"Conv": nn.Conv2d, "Gemm": nn.Linear}  # graph op -> the torch layer that exports as it
PARITY_TOLERANCE = 1e-3  # logits; fp16-stored weights round-trip exactly, float32 sums differ by ~1e-5


def onnx_weights_file(weights: str | Path | None) -> Path | None:
    """The model file when ``--weights`` names an exported model (a ``.onnx`` file or a bundled model's name)."""
    if not weights:
        return None
    path = Path(weights)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise PretrainedWeightsError(f"{path}: weights file not found")
        return path
    if path.exists() or "/" in str(weights):
        return None  # a state dict or checkpoint (or a missing one: its own loader says so)
    try:
        return resolve_model_path(str(weights))
    except ModelLoadError:
        return None


def onnx_model_metadata(path: str | Path) -> ModelMetadata:
    """The crackscan metadata stored in an exported model (architecture, training data…)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # truncated or foreign files
        raise PretrainedWeightsError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise PretrainedWeightsError(f"{path}: no crackscan metadata (not exported by crackscan?)")
    return ModelMetadata.from_json(props[METADATA_KEY])


def _onnx_layer_params(path: Path) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(op, weight, bias) of every Conv and Gemm node of the graph, in node order, as float32 in torch's layout."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load(str(path))
    tensors = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    # fp16-stored weights reach their Conv through a Cast; the exporter stores equal tensors once
    # (two layers' biases that are still equal, e.g. untrained zeros) and hands the copy on through an Identity.
    for node in proto.graph.node:
        if node.op_type in ("Cast", "Identity") and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]]
        elif node.op_type == "Mul" and all(name in tensors for name in node.input):  # int8-weights: int8 · scale
            tensors[node.output[0]] = tensors[node.input[0]].astype(np.float32) * tensors[node.input[1]]
        elif node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    params = []
    for node in proto.graph.node:
        if node.op_type not in _LAYER_OPS:
            continue
        has_bias = len(node.input) > 2 and bool(node.input[2])
        for role, name in (("weight", node.input[1]), ("bias", node.input[2] if has_bias else None)):
            if name is not None and name not in tensors:
                raise PretrainedWeightsError(
                    f"{path}: {node.op_type} {node.name} takes a {role} that is not stored in the graph"
                )
        weight = tensors[node.input[1]].astype(np.float32)
        bias = tensors[node.input[2]].astype(np.float32) if has_bias else None
        if node.op_type == "Gemm":  # Y = alpha·A·B' + beta·C, B' = B or Bᵀ; torch's Linear keeps (out, in)
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transA", 0):
                raise PretrainedWeightsError(f"{path}: Gemm {node.name} transposes its input (not a linear layer)")
            weight = weight if attrs.get("transB", 0) else weight.T
            weight = weight * np.float32(attrs.get("alpha", 1.0))
            bias = bias * np.float32(attrs.get("beta", 1.0)) if bias is not None else None
        params.append((node.op_type, np.ascontiguousarray(weight), bias))
    return params


def _execution_order(model: nn.Module, example: torch.Tensor) -> tuple[list[nn.Module], dict[nn.Module, nn.Module]]:
    """Convolutions and linear layers in the order they run, and the BatchNorm (if any) taking each one's output."""
    order: list[nn.Module] = []
    outputs: dict[int, nn.Module] = {}
    follows: dict[nn.Module, nn.Module] = {}

    def after_conv(module: nn.Module, _inp: object, out: torch.Tensor) -> None:
        order.append(module)
        outputs[id(out)] = module

    def before_norm(module: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
        conv = outputs.get(id(inp[0]))
        if conv is not None:
            follows[conv] = module

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(after_conv))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            hooks.append(m.register_forward_pre_hook(before_norm))
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    if len(set(map(id, order))) != len(order):
        raise PretrainedWeightsError("a layer runs more than once: cannot pair it with the graph's nodes")
    return order, follows


def load_onnx_weights(
    model: nn.Module,
    path: str | Path,
    calibration: Iterable[torch.Tensor],
    *,
    logits_of=None,
) -> str:
    """Fill ``model`` (the architecture the ONNX file was exported from) with its weights.

    ``calibration``: normalised N×3×H×W batches (a few training crops) for the BatchNorm statistics.
    ``logits_of``: maps the model's output to the graph's output (default: the first item of a tuple).
    Returns a one-line description; raises :class:`PretrainedWeightsError` when the graph does not fit.
    """
    import onnxruntime as ort

    path = Path(path)
    members = onnx_model_metadata(path).extra.get("ensemble")
    if members:
        raise PretrainedWeightsError(
            f"{path}: {len(members)} models merged into one file; fine-tune one of them "
            f"({', '.join(str(m.get('file')) for m in members)}) instead"
        )
    was_training = model.training  # pairing and calibration run in eval mode; the caller's mode comes back
    batches = [b.float() for b in calibration]
    if not batches:
        raise PretrainedWeightsError("no calibration images to re-estimate BatchNorm statistics")
    params = _onnx_layer_params(path)
    order, follows = _execution_order(model, batches[0][:1])
    if len(order) != len(params):
        raise PretrainedWeightsError(
            f"{path}: the graph has {len(params)} layers with weights, the model {len(order)} (another architecture?)"
        )
    # 1. folded weights in; each BatchNorm an identity plus the folded bias (reproduces the graph in eval mode).
    # Folding scales each output channel by gamma/sqrt(var): 0.03x to 50x the size the layer had before training
    # here. A BatchNorm cancels a channel's scale, but the optimiser's step does not (Adam moves every weight by
    # about lr), so a shrunken channel would take outsized steps: each one is rescaled to the norm the freshly
    # built layer has, and its BatchNorm takes the inverse scale (``scales``), which changes no output.
    scales: dict[nn.Module, torch.Tensor] = {}
    with torch.no_grad():
        for i, (conv, (op, weight, bias)) in enumerate(zip(order, params, strict=True)):
            if not isinstance(conv, _LAYER_OPS[op]) or tuple(conv.weight.shape) != weight.shape:
                raise PretrainedWeightsError(
                    f"{path}: {op} #{i} has weight {weight.shape}, the model's {type(conv).__name__} "
                    f"{tuple(conv.weight.shape)} (another architecture?)"
                )
            w = torch.from_numpy(weight)
            norm = follows.get(conv)
            b = torch.from_numpy(bias) if bias is not None else torch.zeros(weight.shape[0])
            if norm is not None:
                fused = w.flatten(1).norm(dim=1)
                fresh = conv.weight.detach().flatten(1).norm(dim=1)
                scale = torch.where(
                    (fused > 1e-12) & (fresh > 0), fresh / fused.clamp_min(1e-12), torch.ones_like(fused)
                )
                w = w * scale.view(-1, *([1] * (w.dim() - 1)))
                scales[norm] = scale.double()
                if conv.bias is not None:
                    conv.bias.zero_()
                norm.running_mean.zero_()
                norm.running_var.fill_(1.0 - norm.eps)
                norm.weight.copy_(1.0 / scale)
                norm.bias.copy_(b)
            conv.weight.copy_(w)
            if norm is None and conv.bias is not None:
                conv.bias.copy_(b)
            elif norm is None and bias is not None and np.any(bias):
                raise PretrainedWeightsError(f"{path}: {op} #{i} has a bias the model has no place for")
    # 2. statistics of each BatchNorm's input over the calibration batches
    sums: dict[nn.Module, list[torch.Tensor]] = {}

    def collect(module: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
        x = inp[0].detach().double()
        dims = [d for d in range(x.dim()) if d != 1]  # all but the channels: BatchNorm1d/2d alike
        s = sums.setdefault(module, [torch.zeros(x.shape[1], dtype=torch.float64)] * 2 + [torch.zeros(())])
        s[0] = s[0] + x.sum(dims)
        s[1] = s[1] + (x * x).sum(dims)
        s[2] = s[2] + x.numel() / x.shape[1]

    hooks = [norm.register_forward_pre_hook(collect) for norm in follows.values()]
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        for norm, (s, ss, n) in sums.items():
            # input y = c·(folded conv output); keep gamma·(y − mean)/sqrt(var + eps) + beta = y/c + bias
            mean = s / n
            var = (ss / n - mean * mean).clamp_min(0)
            c = scales[norm]
            norm.running_mean.copy_(mean.float())
            norm.running_var.copy_(var.float())
            norm.bias.add_((mean / c).float())
            norm.weight.copy_((torch.sqrt(var + norm.eps) / c).float())
    # 3. the graph and the model must agree
    logits_of = logits_of or (lambda out: out[0] if isinstance(out, (tuple, list)) else out)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    diff = 0.0
    with torch.no_grad():
        for batch in batches[:2]:
            ours = logits_of(model(batch)).numpy()
            theirs = session.run(None, {name: batch.numpy()})[0]
            diff = max(diff, float(np.abs(ours - theirs).max()))
    model.train(was_training)
    if diff > PARITY_TOLERANCE:
        raise PretrainedWeightsError(f"{path}: recovered weights disagree with the graph (max |Δlogit| = {diff:.2e})")
    return (
        f"ONNX model {path} (whole model): {len(order)} layers, {len(sums)} BatchNorms re-estimated on "
        f"{sum(len(b) for b in batches)} images, max |Δlogit| vs the graph {diff:.1e}"
    )


__all__ = ["load_onnx_weights", "onnx_model_metadata", "onnx_weights_file"]
