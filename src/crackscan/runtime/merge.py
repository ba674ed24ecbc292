"""Several segmenters in one ONNX file: the mean of their probabilities, computed inside the graph.

``crackscan export A.onnx+B.onnx --out both.onnx [--quantize int8-weights]`` writes what
:class:`crackscan.runtime.ensemble.EnsemblePredictor` computes at load time, as one model file: one
input, each member's graph beside the others, ``sigmoid`` (binary) or ``softmax`` (several classes)
of each member's output, their mean, and that mean turned back into logits so that every consumer
(ONNX Runtime predictor, tiling, TTA, calibration, the service) treats the file like any other model.

Why one file: a bundled model is a single file of at most 10 MB, and two U-Nets of different encoders
beat either alone on every crack set measured (docs/benchmarks.md, session 17). With
:func:`crackscan.runtime.quantize.store_int8_weights` two such U-Nets fit in about 9 MB.

Needs ``onnx`` (the ``train`` extra) to write; the result runs on plain ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crackscan.runtime.predictor import ModelLoadError, ModelMetadata, OnnxPredictor, size_multiple
from crackscan.runtime.quantize import _fold_fp16_casts, _write

EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] before the logit: finite outputs


class MergeError(ValueError):
    """The models cannot be merged; the message says why."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_members(paths: Sequence[Path], metas: Sequence[ModelMetadata]) -> None:
    if len(paths) < 2:
        raise MergeError("merging needs two or more models")
    first = metas[0]
    for path, meta in zip(paths, metas, strict=True):
        if meta.task != "segment":
            raise MergeError(f"{path}: a {meta.task!r} model; only segmenters are merged into one file")
        if "ensemble" in meta.extra:
            raise MergeError(f"{path}: already an ensemble; merge its members instead")
        if meta.class_names != first.class_names:
            raise MergeError(f"{path} has classes {meta.class_names}, {paths[0]} {first.class_names}")
        if tuple(meta.mean) != tuple(first.mean) or tuple(meta.std) != tuple(first.std):
            # the file has one input, normalised once by the predictor
            raise MergeError(f"{path} normalises its input differently from {paths[0]} (mean/std)")
        if meta.extra.get("preprocess") != first.extra.get("preprocess"):
            raise MergeError(f"{path} and {paths[0]} ask for different preprocessing")


def _merged_sources(metas: Sequence[ModelMetadata]) -> dict[str, Any]:
    """The members' training data as one record: each set once, its test digests the union of the members'.

    Counts are the first member's that names the set; a member trained on a different split of the same set
    has its own record under ``extra["ensemble"]``.
    """
    by_name: dict[str, dict[str, Any]] = {}
    for meta in metas:
        for source in (meta.extra.get("training_data") or {}).get("sources", []):
            name = source.get("name")
            if name not in by_name:
                by_name[name] = dict(source)
                continue
            digests = set(by_name[name].get("test_digests") or []) | set(source.get("test_digests") or [])
            if digests:
                by_name[name]["test_digests"] = sorted(digests)
    first = dict(metas[0].extra.get("training_data") or {})
    first["sources"] = list(by_name.values())
    return first


def _member_graph(proto: Any, prefix: str) -> Any:
    from onnx import compose

    if len(proto.graph.input) != 1 or len(proto.graph.output) != 1:
        raise MergeError("a member graph must have one input and one output")
    _fold_fp16_casts(proto.graph)  # float32 initializers: the merged file is reduced as one, if at all
    return compose.add_prefix(proto, prefix)


def merge_segmenters(paths: Sequence[str | Path], dst: str | Path) -> ModelMetadata:
    """Write one ONNX model that outputs the logits of the mean of ``paths``' probabilities; return its metadata.

    The threshold stored is the mean of the members' (as the load-time ensemble uses); calibrate the file
    with ``crackscan calibrate`` for a tuned one. Parity with the load-time ensemble is checked by the caller
    (see :func:`check_merge`).
    """
    import onnx
    from onnx import TensorProto, helper

    files = [Path(p) for p in paths]
    try:
        predictors = [OnnxPredictor(p) for p in files]
    except ModelLoadError as exc:
        raise MergeError(str(exc)) from None
    metas = [p.metadata for p in predictors]
    files = [p.path for p in predictors]
    _check_members(files, metas)
    protos = [onnx.load(str(f)) for f in files]
    opsets = {next(o.version for o in p.opset_import if o.domain in ("", "ai.onnx")) for p in protos}
    if len(opsets) != 1 or len({p.ir_version for p in protos}) != 1:
        # an op's meaning may change between opsets (Resize, Clip …): one graph takes one opset
        raise MergeError(
            f"the members were exported with different ONNX opsets ({sorted(opsets)}) or IR versions; "
            "export them again with the same --opset"
        )
    opset = opsets.pop()
    members = [_member_graph(p, f"m{i}_") for i, p in enumerate(protos)]

    # dynamic in batch and size, as every crackscan export is
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    nodes: list[Any] = []
    initializers: list[Any] = []
    probs: list[str] = []
    probe = np.zeros((1, size_multiple(metas[0]) * 2, size_multiple(metas[0]) * 2, 3), np.uint8)
    channels = {int(p.logits(probe).shape[1]) for p in predictors}
    if len(channels) != 1:
        raise MergeError(f"the members output different numbers of channels ({sorted(channels)})")
    binary = channels == {1}  # one channel: sigmoid; several: softmax
    for i, member in enumerate(members):
        g = member.graph
        nodes.append(helper.make_node("Identity", ["image"], [g.input[0].name], name=f"m{i}_feed"))
        nodes.extend(g.node)
        initializers.extend(g.initializer)
        prob = f"m{i}_probability"
        if binary:
            nodes.append(helper.make_node("Sigmoid", [g.output[0].name], [prob], name=f"m{i}_sigmoid"))
        else:
            nodes.append(helper.make_node("Softmax", [g.output[0].name], [prob], axis=1, name=f"m{i}_softmax"))
        probs.append(prob)
    initializers += [
        helper.make_tensor("ensemble_weight", TensorProto.FLOAT, [], [1.0 / len(members)]),
        helper.make_tensor("ensemble_eps", TensorProto.FLOAT, [], [EPS]),
        helper.make_tensor("ensemble_one_minus_eps", TensorProto.FLOAT, [], [1.0 - EPS]),
    ]
    nodes += [
        helper.make_node("Sum", probs, ["ensemble_sum"], name="ensemble_sum"),
        helper.make_node("Mul", ["ensemble_sum", "ensemble_weight"], ["ensemble_mean"], name="ensemble_mean"),
        helper.make_node(
            "Clip", ["ensemble_mean", "ensemble_eps", "ensemble_one_minus_eps"], ["ensemble_p"], name="ensemble_clip"
        ),
        helper.make_node("Log", ["ensemble_p"], ["ensemble_log_p"], name="ensemble_log_p"),
    ]
    if binary:  # logit(p) = log p - log(1 - p): its sigmoid is the mean probability
        nodes += [
            helper.make_node("Sub", ["ensemble_one", "ensemble_p"], ["ensemble_q"], name="ensemble_q"),
            helper.make_node("Log", ["ensemble_q"], ["ensemble_log_q"], name="ensemble_log_q"),
            helper.make_node("Sub", ["ensemble_log_p", "ensemble_log_q"], ["logits"], name="ensemble_logit"),
        ]
        initializers.append(helper.make_tensor("ensemble_one", TensorProto.FLOAT, [], [1.0]))
    else:  # log of the mean softmax: its softmax is the mean again
        nodes.append(helper.make_node("Identity", ["ensemble_log_p"], ["logits"], name="ensemble_logit"))
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", channels.pop(), "height", "width"])
    graph = helper.make_graph(nodes, "crackscan_ensemble", [image], [out], initializer=initializers)
    merged = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    merged.ir_version = protos[0].ir_version
    merged.producer_name = "crackscan"

    meta = ModelMetadata.from_json(metas[0].to_json())
    meta.arch = "+".join(m.arch for m in metas)
    meta.threshold = float(np.mean([m.threshold for m in metas]))
    meta.precision = "fp32"
    keep = ("tile_size", "preprocess", "mask_kind", "loss")
    meta.extra = {k: v for k, v in metas[0].extra.items() if k in keep}
    meta.extra.update(
        encoder="+".join(str(m.extra.get("encoder", "?")) for m in metas),
        size_multiple=math.lcm(*(size_multiple(m) for m in metas)),
        training_data=_merged_sources(metas),
        ensemble=[
            {
                "file": f.name,
                "sha256": _sha256(f),
                "arch": m.arch,
                "encoder": m.extra.get("encoder"),
                "threshold": m.threshold,
                "tta_threshold": m.extra.get("tta_threshold"),
                "precision": m.precision,
                "command": m.extra.get("command"),
                "metrics": m.extra.get("metrics"),
                "val_by_source": m.extra.get("val_by_source"),
            }
            for f, m in zip(files, metas, strict=True)
        ],
        command="crackscan export " + "+".join(str(f) for f in files),
    )
    if any("tta_threshold" in m.extra for m in metas):
        meta.extra["tta_threshold"] = float(np.mean([m.threshold_for(tta=True) for m in metas]))
    _write(merged, meta, Path(dst))
    return meta


def check_merge(paths: Sequence[str | Path], merged: str | Path, images: np.ndarray) -> dict[str, float]:
    """Largest |Δp| between the merged file and the load-time ensemble of ``paths`` on ``images`` (N×H×W×3 uint8)."""
    from crackscan.runtime.ensemble import EnsemblePredictor

    reference = EnsemblePredictor([OnnxPredictor(p) for p in paths]).probability_map(images)
    single = OnnxPredictor(merged)
    got = single.probability_map(images)
    threshold = single.metadata.threshold
    return {
        "max_abs_diff": float(np.abs(got - reference).max()),
        "mask_agreement": float(((got >= threshold) == (reference >= threshold)).mean()),
        "n_images": float(len(images)),
    }


__all__ = ["MergeError", "check_merge", "merge_segmenters"]
