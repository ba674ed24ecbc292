"""INT8 quantisation of crackscan ONNX models (onnxruntime.quantization).

Two methods:

* ``static`` (default) — QDQ graph, weights int8 per output channel, activations uint8
  with ranges calibrated on real images (MinMax over a calibration reader). Conv nets
  need this: every conv runs as an integer conv with fused requantisation.
* ``dynamic`` — weights int8, activation ranges computed per batch at run time. No
  calibration data needed, but ONNX Runtime then runs convs as ConvInteger plus float
  rescaling, which on CNNs is slower than fp32 (it pays off for MatMul-heavy models).

The quantised file keeps the crackscan metadata with ``precision = "int8"`` and the
method in ``extra["quantization"]``. Needs ``onnx`` (the ``train`` extra); the result
runs on plain ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from crackscan.runtime.predictor import METADATA_KEY, ModelMetadata, _normalise

log = logging.getLogger(__name__)
Method = Literal["static", "dynamic"]
METHODS: tuple[str, ...] = ("static", "dynamic")
CALIBRATION_BATCH = 8
# Only the compute-heavy ops get QDQ pairs. Quantising Concat/Resize as well forces one
# scale on a U-Net skip concatenation whose inputs have very different ranges: on the
# bundled crack-seg that cost 3.95 F1 points on its validation crops, while Conv + Add
# alone changed F1 by +0.3 points at the same speed (measured; docs/benchmarks.md).
QUANTIZED_OPS: tuple[str, ...] = ("Conv", "Add", "Gemm", "MatMul")


class QuantizationError(RuntimeError):
    """Quantisation failed; the message says why."""


class _ImageReader:
    """onnxruntime's CalibrationDataReader over uint8 images, normalised like the predictor does."""

    def __init__(self, input_name: str, images: np.ndarray, meta: ModelMetadata) -> None:
        mean = np.asarray(meta.mean, np.float32)
        std = np.asarray(meta.std, np.float32)
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            {input_name: _normalise(images[i : i + CALIBRATION_BATCH], mean, std)}
            for i in range(0, len(images), CALIBRATION_BATCH)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


class _QuantizerChatter(logging.Filter):
    """onnxruntime.quantization logs per-tensor notes on the *root* logger; keep them at debug here."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "onnxruntime" in record.pathname and "quantization" in record.pathname:
            log.debug("onnxruntime.quantization: %s", record.getMessage())
            return False
        return True


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    chatter = _QuantizerChatter()
    root = logging.getLogger()
    root.addFilter(chatter)
    try:
        yield
    finally:
        root.removeFilter(chatter)


def _read_metadata(proto: Any) -> ModelMetadata:
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise QuantizationError("the model has no crackscan metadata; export it with `crackscan export` first")
    return ModelMetadata.from_json(props[METADATA_KEY])


def quantize_int8(
    src: str | Path,
    dst: str | Path,
    *,
    method: Method = "static",
    calibration_images: np.ndarray | None = None,
    calibration_source: str = "",
) -> Path:
    """Write an INT8 copy of the fp32 crackscan model ``src`` to ``dst``.

    ``calibration_images`` (N×H×W×3 uint8 at the model's input size; a few dozen to a few
    hundred) are required for ``static``. Returns ``dst``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    src, dst = Path(src).resolve(), Path(dst).resolve()  # the work below runs in a temporary folder
    proto = onnx.load(str(src))
    meta = _read_metadata(proto)
    if meta.precision != "fp32":
        raise QuantizationError(f"{src}: already quantised ({meta.precision}); quantise the fp32 model")
    input_name = proto.graph.input[0].name
    # onnxruntime's quantisation tools write scratch files (external weight data,
    # sym_shape_infer_temp.onnx) into the current folder: work inside a temporary one.
    with (
        tempfile.TemporaryDirectory(prefix="crackscan-quant-") as tmp,
        contextlib.chdir(tmp),
        _quiet_quantizer(),
    ):
        prepared = Path(tmp) / "prepared.onnx"
        try:
            # Shape inference + fusions first, as onnxruntime recommends: better QDQ placement.
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=False)
        except Exception as exc:  # pre-processing is an optimisation, not a requirement
            log.info("quantisation pre-processing skipped (%s)", exc)
            prepared = src
        out = Path(tmp) / "int8.onnx"
        try:
            if method == "static":
                if calibration_images is None or not len(calibration_images):
                    raise QuantizationError("static INT8 quantisation needs calibration images")
                quantize_static(
                    str(prepared),
                    str(out),
                    _ImageReader(input_name, calibration_images, meta),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    op_types_to_quantize=list(QUANTIZED_OPS),
                )
            elif method == "dynamic":
                quantize_dynamic(
                    str(prepared),
                    str(out),
                    per_channel=True,
                    weight_type=QuantType.QInt8,
                    op_types_to_quantize=list(QUANTIZED_OPS),
                )
            else:
                raise QuantizationError(f"unknown quantisation method {method!r}; use one of {', '.join(METHODS)}")
        except QuantizationError:
            raise
        except Exception as exc:
            raise QuantizationError(f"INT8 quantisation ({method}) failed: {type(exc).__name__}: {exc}") from None
        qproto = onnx.load(str(out))
    meta.precision = "int8"
    meta.extra = {
        **meta.extra,
        "quantization": {
            "method": method,
            "format": "QDQ" if method == "static" else "dynamic",
            "weights": "int8 per-channel",
            "ops": list(QUANTIZED_OPS),
            "activations": "uint8 (MinMax calibration)" if method == "static" else "uint8 (per batch)",
            "calibration": calibration_source if method == "static" else "",
            "calibration_images": len(calibration_images)
            if method == "static" and calibration_images is not None
            else 0,
        },
    }
    del qproto.metadata_props[:]
    entry = qproto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = meta.to_json()
    qproto.producer_name = proto.producer_name or "crackscan"
    qproto.producer_version = proto.producer_version
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp_dst = dst.with_name(dst.name + ".tmp")
    onnx.save(qproto, str(tmp_dst))
    tmp_dst.replace(dst)
    return dst


def _stored_as_fp16(value: np.ndarray, name: str) -> tuple[Any, Any]:
    """A float16 initializer for ``value`` and the ``Cast`` that gives the graph ``name`` back in float32."""
    from onnx import TensorProto, helper, numpy_helper

    half = numpy_helper.from_array(value.astype(np.float16), name + "__fp16")
    return half, helper.make_node("Cast", [half.name], [name], to=TensorProto.FLOAT)


def _replace_initializers(graph: Any, initializers: list[Any], prologue: list[Any]) -> None:
    """Swap in the stored ``initializers``; the ``prologue`` nodes that rebuild the weights run first."""
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(prologue + nodes)  # weights first: the graph stays topologically sorted


def store_fp16_weights(src: str | Path, dst: str | Path, *, min_elements: int = 1024) -> Path:
    """Write a copy of the fp32 model ``src`` whose large weights are stored as float16.

    Each float32 initializer with at least ``min_elements`` values becomes a float16
    initializer followed by a ``Cast`` back to float32, so the file is about half the size
    while every computation stays in float32 (ONNX Runtime folds the casts when the
    session is created, so inference speed is unchanged). The rounding of the weights is
    the only difference; ``crackscan export --quantize fp16`` checks its effect on
    accuracy like INT8's.
    """
    import onnx
    from onnx import TensorProto, numpy_helper

    src, dst = Path(src), Path(dst)
    proto = onnx.load(str(src))
    meta = _read_metadata(proto)
    if meta.precision != "fp32":
        raise QuantizationError(f"{src}: already reduced ({meta.precision}); start from the fp32 model")
    casts = []
    kept = []
    converted = 0
    for init in proto.graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            half, cast = _stored_as_fp16(numpy_helper.to_array(init), init.name)
            kept.append(half)
            casts.append(cast)
            converted += 1
        else:
            kept.append(init)
    _replace_initializers(proto.graph, kept, casts)
    meta.precision = "fp16-weights"
    meta.extra = {
        **meta.extra,
        "quantization": {"method": "fp16-weights", "converted_initializers": converted, "compute": "float32"},
    }
    _write(proto, meta, dst)
    return dst


def _fold_fp16_casts(graph: Any) -> int:
    """Turn ``store_fp16_weights``' float16 initializer + ``Cast`` pairs back into float32 initializers.

    float16 → float32 is exact, so a model reduced with ``--quantize fp16`` can be reduced further
    (or merged with others) without its fp32 file. Returns the number of casts folded.
    """
    from onnx import TensorProto, numpy_helper

    halves = {i.name: i for i in graph.initializer if i.data_type == TensorProto.FLOAT16}
    folded: dict[str, Any] = {}
    for node in graph.node:
        if node.op_type == "Cast" and len(node.input) == 1 and node.input[0] in halves:
            to = next((a.i for a in node.attribute if a.name == "to"), None)
            if to == TensorProto.FLOAT:
                folded[node.output[0]] = numpy_helper.from_array(
                    numpy_helper.to_array(halves[node.input[0]]).astype(np.float32), node.output[0]
                )
    if not folded:
        return 0
    used = {n.input[0] for n in graph.node if n.op_type == "Cast" and n.output[0] in folded}
    nodes = [n for n in graph.node if not (n.op_type == "Cast" and n.output[0] in folded)]
    kept = [i for i in graph.initializer if i.name not in used] + list(folded.values())
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return len(folded)


def store_int8_weights(src: str | Path, dst: str | Path, *, min_elements: int = 1024) -> Path:
    """Write a copy of ``src`` whose large weight tensors are stored as int8, one scale per output channel.

    Each float initializer of two or more dimensions with at least ``min_elements`` values becomes an
    int8 initializer (symmetric, scale = max |w| / 127 per slice along axis 0) that a ``Cast`` and a
    ``Mul`` by its scales turn back into float32; other large initializers are stored as float16. Activations
    and every computation stay in float32, so unlike static INT8 (refused for the U-Nets: their skip
    concatenations lose too much at 8-bit activations) the only change is the rounding of the weights,
    at about a quarter of the fp32 file. Why: it lets two segmenters share one file of under 10 MB
    (``crackscan export A.onnx+B.onnx``). ``src`` may be fp32 or fp16-weights.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    src, dst = Path(src), Path(dst)
    proto = onnx.load(str(src))
    meta = _read_metadata(proto)
    if meta.precision not in ("fp32", "fp16-weights"):
        raise QuantizationError(f"{src}: already reduced to {meta.precision}; start from an fp32 or fp16 model")
    graph = proto.graph
    _fold_fp16_casts(graph)
    prologue, kept = [], []
    n_int8 = n_half = 0
    for init in graph.initializer:
        size = int(np.prod(init.dims)) if len(init.dims) else 1
        if init.data_type != TensorProto.FLOAT or size < min_elements:
            kept.append(init)
            continue
        w = numpy_helper.to_array(init)
        if w.ndim >= 2:
            peak = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
            scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32).reshape(-1, *([1] * (w.ndim - 1)))
            q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
            kept += [
                numpy_helper.from_array(q, init.name + "__int8"),
                numpy_helper.from_array(scale, init.name + "__scale"),
            ]
            # Cast + Mul rather than DequantizeLinear: ONNX Runtime folds these at session start into a float
            # initializer its convolutions pre-pack; a DequantizeLinear it keeps (for QDQ fusion) and runs at
            # every call, which cost 30 % of the speed of a merged pair of U-Nets (measured).
            prologue += [
                helper.make_node("Cast", [init.name + "__int8"], [init.name + "__int8f"], to=TensorProto.FLOAT),
                helper.make_node("Mul", [init.name + "__int8f", init.name + "__scale"], [init.name]),
            ]
            n_int8 += 1
        else:
            half, cast = _stored_as_fp16(w, init.name)
            kept.append(half)
            prologue.append(cast)
            n_half += 1
    _replace_initializers(graph, kept, prologue)
    meta.precision = "int8-weights"
    meta.extra = {
        **meta.extra,
        "quantization": {
            "method": "int8-weights",
            "weights": "int8 symmetric, per output channel",
            "int8_initializers": n_int8,
            "fp16_initializers": n_half,
            "compute": "float32",
        },
    }
    _write(proto, meta, dst)
    return dst


def _write(proto: Any, meta: ModelMetadata, dst: Path) -> None:
    import onnx

    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = meta.to_json()
    onnx.checker.check_model(proto)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp_dst = dst.with_name(dst.name + ".tmp")
    onnx.save(proto, str(tmp_dst))
    tmp_dst.replace(dst)
