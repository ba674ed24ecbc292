"""Export a torch model to ONNX with its metadata inside, and prove the export agrees.

Needs torch (the ``train`` extra); everything that *runs* the exported file does not.
"""

from __future__ import annotations

import io
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crackscan import __version__
from crackscan.runtime.predictor import METADATA_KEY, ModelMetadata, OnnxPredictor, _normalise

log = logging.getLogger(__name__)
DEFAULT_OPSET = 17


class ExportError(RuntimeError):
    """The export failed or disagreed with the torch model; the message gives the figures."""


class _Probabilities(nn.Module):
    """Classification graphs end in logits; keep them (softmax is done by the predictor)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, (tuple, list)) else out


class _FixedPadConv(nn.Module):
    """A TF-style "same" convolution whose padding was fixed at export (see :func:`freeze_same_padding`)."""

    def __init__(self, conv: nn.Conv2d, pad: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.conv = conv
        self.pad = pad  # (left, right, top, bottom), F.pad's order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return nn.functional.conv2d(nn.functional.pad(x, self.pad), c.weight, c.bias, c.stride, 0, c.dilation, c.groups)


def freeze_same_padding(
    model: nn.Module, example: torch.Tensor, size_multiple: int | None = None
) -> tuple[nn.Module, int, int]:
    """A copy of ``model`` whose TF-style "same" convolutions pad by constants; how many; the modulus.

    timm's ``tf_*`` encoders (EfficientNet-Lite0 in every bundled model) compute the
    padding of each strided convolution from the input's shape at run time. Exported,
    that is a Shape → Ceil → Pad chain per convolution, which ONNX Runtime can neither
    fold into the Conv nor keep in its blocked (NCHWc) layout: the Pads and the layout
    reorders around them were 27 % of crack-seg v3's CPU time at 512². Constant pads are
    fused into the Conv by ONNX Runtime.

    The padding depends only on the parity of the size each convolution sees, so the
    amounts taken at ``example``'s size hold for every input whose size at that
    convolution has the same parity. Classifiers always run at their input size
    (``size_multiple=None``: every such convolution is fixed). Segmenters run on any
    multiple of ``size_multiple``: a convolution at downsampling factor ``f`` is fixed only
    when ``size_multiple`` is a multiple of ``2f`` and the example's size is one of
    ``size_multiple``, else it keeps its dynamic padding.

    Returns the model to export (``model`` itself when nothing was fixed), the number of
    convolutions fixed, and the modulus ``M``: the graph equals ``model`` for every input
    whose height and width are congruent to the example's modulo ``M`` (1: any input).
    """
    try:
        from timm.layers import Conv2dSame
        from timm.layers.padding import get_same_padding
    except ImportError:  # no timm: nothing of this kind in the model
        return model, 0, 1
    if not any(isinstance(m, Conv2dSame) for m in model.modules()):
        return model, 0, 1
    import copy

    frozen = copy.deepcopy(model).eval()
    seen: dict[str, tuple[int, int]] = {}

    def record(name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:  # returns None: inputs unchanged
            seen.setdefault(name, (int(args[0].shape[-2]), int(args[0].shape[-1])))

        return hook

    convs = [(name, m) for name, m in frozen.named_modules() if isinstance(m, Conv2dSame)]
    hooks = [m.register_forward_pre_hook(record(name)) for name, m in convs]
    try:
        with torch.no_grad():
            frozen(example)
    finally:
        for hook in hooks:
            hook.remove()
    eh, ew = example.shape[-2:]
    fixed, modulus = 0, 1
    for name, (ih, iw) in seen.items():
        conv = frozen.get_submodule(name)
        factor = max(eh // max(ih, 1), ew // max(iw, 1), 1)
        if size_multiple is not None and (size_multiple % (2 * factor) or eh % size_multiple or ew % size_multiple):
            continue
        (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
        pad_h, pad_w = get_same_padding(ih, kh, sh, dh), get_same_padding(iw, kw, sw, dw)
        parent_name, _, child = name.rpartition(".")
        parent = frozen.get_submodule(parent_name) if parent_name else frozen
        pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)  # timm's pad_same split
        setattr(parent, child, _FixedPadConv(conv, pad))
        fixed, modulus = fixed + 1, max(modulus, 2 * factor)
    return (frozen, fixed, modulus) if fixed else (model, 0, 1)


_FOLDABLE = {"Constant", "ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose", "Cast", "Unsqueeze", "Squeeze"}


def _consumers(graph: Any) -> dict[str, list[Any]]:
    """Tensor name → the nodes that read it."""
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _move_pad_into_conv(pad: Any, conv: Any, pads: list[int]) -> None:
    """Give ``conv`` the ONNX ``pads`` ``[top, left, bottom, right]`` and feed it what ``pad`` read."""
    from onnx import helper

    for attr in list(conv.attribute):
        if attr.name == "pads":
            conv.attribute.remove(attr)
    conv.attribute.append(helper.make_attribute("pads", pads))
    conv.input[0] = pad.input[0]


def _drop_unused_nodes(graph: Any) -> None:
    """Remove nodes whose outputs nothing reads (e.g. the amount chains of removed Pads), until none is left."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def fuse_pads_into_convs(proto: Any) -> int:
    """Fold constant zero ``Pad`` nodes into the ``Conv`` they feed (ONNX ``pads`` may be asymmetric); in place.

    The torch exporter writes ``F.pad``'s amounts as a Constant → … → Slice(step −1) →
    Cast chain that it does not fold (and ONNX Runtime then keeps the Pad as a separate
    op outside its blocked layout). This evaluates such chains, moves the amounts into
    the Conv and drops the Pad and the nodes nothing uses any more. Returns how many
    Pads were fused.
    """
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = proto.graph
    values: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:  # nodes are topologically sorted
        if node.op_type in _FOLDABLE and all(not i or i in values for i in node.input):
            feeds = {i: values[i] for i in node.input if i}
            for name, value in zip(node.output, ReferenceEvaluator(node).run(None, feeds), strict=True):
                values[name] = np.asarray(value)
    consumers = _consumers(graph)
    outputs = {o.name for o in graph.output}
    fused = []
    for pad in graph.node:
        if pad.op_type != "Pad" or len(pad.input) < 2 or pad.input[1] not in values or pad.output[0] in outputs:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in pad.attribute}
        if attrs.get("mode", b"constant") not in (b"constant", "constant"):
            continue
        value = pad.input[2] if len(pad.input) > 2 else ""
        if value and (value not in values or np.any(values[value] != 0)):  # pads with a non-zero value
            continue
        if len(pad.input) > 3 and pad.input[3]:  # axes input: keep the general case out
            continue
        amounts = values[pad.input[1]].astype(np.int64).ravel()
        users = consumers.get(pad.output[0], [])
        if len(amounts) != 8 or np.any(amounts < 0) or np.any(amounts[[0, 1, 4, 5]]) or len(users) != 1:
            continue
        conv = users[0]
        conv_attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        if conv.op_type != "Conv" or conv.input[0] != pad.output[0]:
            continue
        if conv_attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        old = [int(v) for v in conv_attrs.get("pads", [0, 0, 0, 0])]
        added = [int(v) for v in amounts[[2, 3, 6, 7]]]  # top, left, bottom, right
        _move_pad_into_conv(pad, conv, [o + a for o, a in zip(old, added, strict=True)])
        fused.append(pad)
    for pad in fused:
        graph.node.remove(pad)
    _drop_unused_nodes(graph)
    return len(fused)


def fix_runtime_same_padding(proto: Any) -> int:
    """Give a graph exported with run-time TF-"same" padding constant Conv pads instead; in place.

    For ONNX files written before :func:`freeze_same_padding` existed (no ``model.pt`` to
    export again): every ``Pad`` whose amounts are computed from the input's shape and
    which feeds a stride-2 Conv gets the padding timm computes for an *even* input at
    that Conv, ``(k − 1)·d − 1`` split as ``pad_same`` does, moved into the Conv. That is
    exact for inputs whose size is even at every such Conv — multiples of 32 for the
    bundled encoders; :func:`upgrade_onnx_padding` checks it numerically. Returns how many
    Pads were replaced; call :func:`fuse_pads_into_convs` first for the constant ones.
    """
    from onnx import helper

    graph = proto.graph
    constant = {i.name for i in graph.initializer}
    constant |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    consumers = _consumers(graph)
    fixed = []
    for pad in graph.node:
        if pad.op_type != "Pad" or len(pad.input) < 2 or pad.input[1] in constant:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in pad.attribute}
        if attrs.get("mode", b"constant") not in (b"constant", "constant"):
            continue
        users = consumers.get(pad.output[0], [])
        if len(users) != 1 or users[0].op_type != "Conv" or users[0].input[0] != pad.output[0]:
            continue
        conv = users[0]
        ca = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        kernel, strides = list(ca.get("kernel_shape", [])), list(ca.get("strides", [1, 1]))
        dilations = list(ca.get("dilations", [1, 1]))
        if len(kernel) != 2 or strides != [2, 2] or any(ca.get("pads", [0, 0, 0, 0])):
            continue
        totals = [(k - 1) * d - 1 for k, d in zip(kernel, dilations, strict=True)]  # even input, stride 2
        begins = [t // 2 for t in totals]
        _move_pad_into_conv(pad, conv, [*begins, *(t - b for t, b in zip(totals, begins, strict=True))])
        fixed.append(pad)
    for pad in fixed:
        graph.node.remove(pad)
    _drop_unused_nodes(graph)  # the shape arithmetic only the removed Pads used
    return len(fixed)


def upgrade_onnx_padding(source: str | Path, target: str | Path, *, sizes: tuple[int, ...] = (256, 320, 512)) -> dict:
    """Write ``source`` (a crackscan ONNX file) with constant padding to ``target``, proven equal on ``sizes``.

    Both graphs run on random images of every ``sizes`` side (segmenters; multiples of the
    model's size multiple) or of the input size (classifiers); a largest probability
    difference above 1e-4 raises :class:`ExportError` and writes nothing.
    """
    import tempfile

    import onnx

    old = OnnxPredictor(source)  # a corrupt, foreign or metadata-less file fails here with ModelLoadError
    proto = onnx.load(str(source))
    fused = fuse_pads_into_convs(proto)
    fixed = fix_runtime_same_padding(proto)
    meta_entry = next((p for p in proto.metadata_props if p.key == METADATA_KEY), None)
    if meta_entry is None:
        raise ExportError(f"{source}: not a crackscan model file (no crackscan metadata)")
    meta = ModelMetadata.from_json(meta_entry.value)
    meta.extra = {**meta.extra, "fixed_same_padding": {"convs": fixed + fused, "upgraded_from": Path(source).name}}
    meta_entry.value = meta.to_json()
    onnx.checker.check_model(proto)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="crackscan-upgrade-") as tmp:
        candidate = Path(tmp) / "model.onnx"
        onnx.save(proto, str(candidate))
        new = OnnxPredictor(candidate)
        checked = sizes if meta.task == "segment" else (meta.input_size,)
        diff = 0.0
        for side in checked:
            batch = rng.integers(0, 256, (2, side, side, 3), dtype=np.uint8)
            if meta.task == "segment":
                a, b = old.probability_map(batch), new.probability_map(batch)
            else:
                a, b = old.class_probabilities(batch), new.class_probabilities(batch)
            diff = max(diff, float(np.abs(a - b).max()))
        if diff > 1e-4:
            raise ExportError(f"{source}: the upgraded graph disagrees (max |Δp| = {diff:.2e} on sides {checked})")
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(candidate, target)
    return {"pads_replaced": fixed, "pads_fused": fused, "max_abs_diff": diff, "sides": list(checked)}


def export_onnx(
    model: nn.Module,
    metadata: ModelMetadata,
    path: str | Path,
    *,
    parity_images: np.ndarray | None = None,
    opset: int = DEFAULT_OPSET,
    tolerance: float = 1e-4,
) -> dict[str, float]:
    """Write ``model`` as ONNX (dynamic batch, height and width) with ``metadata`` inside.

    ``parity_images`` (N×H×W×3 uint8, at the model's input size) are run through both
    torch and ONNX Runtime; a max absolute difference of probabilities above ``tolerance``
    raises :class:`ExportError`. Returns the parity figures.
    """
    import onnx

    path = Path(path)
    metadata.crackscan_version = __version__
    size = metadata.input_size
    example = torch.zeros(1, 3, size, size)
    multiple = None if metadata.task == "classify" else int(metadata.extra.get("size_multiple", 32) or 1)
    graph_model, fixed, modulus = freeze_same_padding(model, example, multiple)
    if fixed:  # say in the file for which sizes the graph is exact (classifiers: their input size and ≡ it mod M)
        metadata.extra = {**metadata.extra, "fixed_same_padding": {"convs": fixed, "exact_for_sizes_mod": modulus}}
    wrapped = _Probabilities(graph_model).eval()
    # Segmentation logits keep the input's height and width: both stay dynamic.
    output_axes = {0: "batch"} if metadata.task == "classify" else {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            wrapped,
            (example,),
            buf,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "logits": output_axes},
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    fused = fuse_pads_into_convs(proto)
    if fused:
        log.info("export: %d constant Pads fused into their Convs", fused)
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = metadata.to_json()
    proto.producer_name = "crackscan"
    proto.producer_version = __version__
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    onnx.save(proto, str(tmp))
    figures: dict[str, float] = {}
    if parity_images is not None and len(parity_images):
        figures = check_parity(model, tmp, parity_images, tolerance=tolerance)
    tmp.replace(path)
    return figures


def check_parity(
    model: nn.Module, onnx_path: str | Path, images: np.ndarray, *, tolerance: float = 1e-4
) -> dict[str, float]:
    """Compare probabilities of torch and ONNX Runtime on the same uint8 images.

    Classifiers and multi-class segmenters: softmax over classes; binary segmenters
    (one output channel): sigmoid.
    """
    predictor = OnnxPredictor(onnx_path)
    meta = predictor.metadata
    x = _normalise(images, np.asarray(meta.mean, np.float32), np.asarray(meta.std, np.float32))
    with torch.no_grad():
        out = _Probabilities(model).eval()(torch.from_numpy(x))
        binary = meta.task != "classify" and out.shape[1] == 1
        torch_probs = torch.sigmoid(out)[:, 0].numpy() if binary else torch.softmax(out, dim=1).numpy()
    if meta.task == "classify":
        onnx_probs = predictor.class_probabilities(images)
    else:
        onnx_probs = predictor.probability_map(images)
    diff = float(np.abs(torch_probs - onnx_probs).max())
    figures = {"parity_max_abs_diff": diff, "parity_n": float(len(images))}
    if diff > tolerance:
        raise ExportError(
            f"ONNX export disagrees with torch: max |Δp| = {diff:.2e} > {tolerance:.0e} on {len(images)} images"
        )
    log.info("export parity: max |Δp| = %.2e on %d images", diff, len(images))
    return figures


# ----------------------------------------------------------------------------- crackscan export
# Static QDQ: on the Özgenel run (crackscan_lite0_s4, 96 px) accuracy 99.00 → 99.22 %, 1.08 → 0.49 MB;
# dynamic kept accuracy too but runs convs as ConvInteger, ~10× slower than fp32 on this CPU.
INT8_METHOD = "static"
PARITY_IMAGES = {"classify": 32, "segment": 4}
CALIBRATION_IMAGES = {"classify": 200, "segment": 16}
EVALUATION_IMAGES = {"classify": 1000, "segment": 32}
PARITY_TOLERANCE = {"classify": 1e-4, "segment": 2e-4}  # segment: per pixel over deep decoders, as training


class ExportRefused(ExportError):
    """The INT8 model lost more accuracy than allowed; ``figures`` holds the comparison."""

    def __init__(self, message: str, figures: dict[str, Any]) -> None:
        super().__init__(message)
        self.figures = figures


@dataclass
class ReferenceData:
    """Real (or synthetic) inputs at the model's input size, for parity, calibration and the INT8 check.

    ``evaluation``: N×S×S×3 uint8; ``truth``: N class indices (classification), N×S×S
    bool crack masks (segmentation) or ``None`` when the images carry no labels (the INT8
    check then scores agreement with the fp32 model). ``calibration`` is a separate set
    where one exists (the run's training split), so calibration never sees the images it
    is judged on.
    """

    evaluation: np.ndarray
    truth: np.ndarray | None
    calibration: np.ndarray
    source: str


@dataclass
class ExportResult:
    path: Path
    metadata: ModelMetadata
    precision: str
    parity: dict[str, float]
    reference_source: str
    size_bytes: int
    fp32_size_bytes: int
    int8: dict[str, Any] = field(default_factory=dict)  # accuracy comparison when quantised


def _fit(image: np.ndarray, size: int, *, nearest: bool = False) -> np.ndarray:
    import cv2

    if image.shape[:2] == (size, size):
        return image
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if min(image.shape[:2]) > size else cv2.INTER_LINEAR)
    return cv2.resize(image, (size, size), interpolation=interp)


def _spread(items: list[Any], n: int) -> list[Any]:
    """At most ``n`` items evenly spread over the list (deterministic, keeps class balance)."""
    if len(items) <= n:
        return items
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def _classify_samples(samples: list[Any], meta: ModelMetadata, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    from crackscan.data.classes import canonical_class
    from crackscan.imageio import ImageReadError
    from crackscan.runtime.preprocess import load_patch

    names = [canonical_class(c) for c in meta.class_names]
    images, labels = [], []
    for s in _spread(samples, n):
        try:
            images.append(load_patch(s.image, meta.input_size))
        except ImageReadError:
            continue
        label = canonical_class(s.label) if s.label else None
        labels.append(names.index(label) if label in names else -1)
    if not images:
        return np.zeros((0, meta.input_size, meta.input_size, 3), np.uint8), None
    y = np.asarray(labels, np.int64)
    return np.stack(images), (y if (y >= 0).all() else None)


def _segment_samples(samples: list[Any], meta: ModelMetadata, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    from crackscan.imageio import ImageReadError, read_image, read_mask
    from crackscan.runtime.preprocess_seg import apply_preprocess

    size = meta.input_size
    images, masks = [], []
    for s in _spread(samples, n):
        try:
            rgb = apply_preprocess(read_image(s.image), meta.extra.get("preprocess"))
            mask = read_mask(s.mask).labels == meta.crack_class if s.mask else None
        except (ImageReadError, OSError, ValueError):
            continue
        if mask is not None and len(meta.class_names) <= 2:
            mask = read_mask(s.mask).labels > 0
        images.append(_fit(rgb, size))
        masks.append(None if mask is None else _fit(mask.astype(np.uint8), size, nearest=True).astype(bool))
    if not images:
        return np.zeros((0, size, size, 3), np.uint8), None
    truth = None if any(m is None for m in masks) else np.stack(masks)
    return np.stack(images), truth


def _samples_of(meta: ModelMetadata, run_dir: Path | None, split: str) -> tuple[list[Any], str] | None:
    """Samples of ``split`` from the run's training data, when its folder and split file are reachable."""
    from crackscan.data.layouts import index_dataset
    from crackscan.data.split import read_split, select_split

    data = meta.extra.get("training_data") or {}
    if meta.task == "classify" and not data.get("sources"):
        entries = [(data.get("root"), run_dir / "split.json" if run_dir else None)]
    else:  # segmenters, and classifiers trained on several sets: one split file per set
        entries = [
            (s.get("root"), (run_dir / s["split_file"]) if run_dir and s.get("split_file") else None)
            for s in data.get("sources", [])
        ]
    samples: list[Any] = []
    for root, split_file in entries:
        if not root or split_file is None or not Path(root).is_dir() or not split_file.is_file():
            continue
        try:
            samples += select_split(index_dataset(root), read_split(split_file), split)
        except Exception as exc:  # a moved or edited data set: fall back to other inputs
            log.info("training data %s not usable for export checks: %s", root, exc)
    if not samples:
        return None
    return samples, f"the run's {split} split ({', '.join(str(r) for r, _ in entries if r)})"


def _synthetic(meta: ModelMetadata, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from crackscan.data.synth import synth_sample

    size = max(32, meta.input_size)
    non_crack = next((i for i in range(len(meta.class_names)) if i != meta.crack_class), 0)
    images, truth = [], []
    for i in range(n):
        crack = i % 2 == 0
        image, mask, _ = synth_sample(np.random.default_rng([seed, i]), size, size, crack=crack)
        images.append(_fit(image, meta.input_size))
        if meta.task == "classify":
            truth.append(meta.crack_class if crack else non_crack)
        else:
            truth.append(_fit(mask.astype(np.uint8), meta.input_size, nearest=True).astype(bool))
    return np.stack(images), np.asarray(truth)


def reference_data(
    meta: ModelMetadata, run_dir: Path | None, calibration: str | Path | None = None, *, synthetic_n: int | None = None
) -> ReferenceData:
    """Inputs for the export checks, best source first.

    1. the run's validation split (``extra.training_data`` + the run's split file), with
       its training split for calibration; 2. ``calibration`` (a folder of images: class
       folders or image/mask pairs give labels); 3. synthetic crack images from
       :mod:`crackscan.data.synth` (labels and masks known exactly).
    """
    task = meta.task
    read = _classify_samples if task == "classify" else _segment_samples
    n_eval, n_cal = EVALUATION_IMAGES[task], CALIBRATION_IMAGES[task]
    val = _samples_of(meta, run_dir, "val")
    if val is not None:
        images, truth = read(val[0], meta, n_eval)
        if len(images):
            train = _samples_of(meta, run_dir, "train")
            cal = read(train[0], meta, n_cal)[0] if train else images[:n_cal]
            return ReferenceData(images, truth, cal if len(cal) else images[:n_cal], val[1])
    if calibration is not None:
        from crackscan.data.layouts import LayoutKind, index_dataset
        from crackscan.data.layouts import Sample as _Sample
        from crackscan.evaluation.files import collect_images

        root = Path(calibration)
        try:
            index = index_dataset(root)
            wanted = LayoutKind.CLASS_FOLDERS if task == "classify" else LayoutKind.PAIRS
            samples = list(index.samples) if index.layout is wanted else []
        except Exception:
            samples = []
        if not samples:
            files, _ = collect_images([root])
            samples = [_Sample(image=f) for f in files]
        images, truth = read(samples, meta, n_eval)
        if not len(images):
            raise ExportError(f"--calibration {root}: no readable images")
        return ReferenceData(images, truth, images[:n_cal], f"--calibration {root}")
    n = synthetic_n or (64 if task == "classify" else 8)
    images, truth = _synthetic(meta, n, seed=1)
    cal, _ = _synthetic(meta, min(n, n_cal), seed=2)
    return ReferenceData(images, truth, cal, f"{n} synthetic images (crackscan.data.synth; no training data reachable)")


def _scores(
    predictor: Any, images: np.ndarray, truth: np.ndarray | None, reference: np.ndarray | None
) -> dict[str, Any]:
    """Accuracy and crack F1 (classification) or pixel accuracy and crack F1 (segmentation), in %.

    Against ``truth`` when known, else against ``reference`` (the fp32 model's labels).
    Returns the figures and the predicted labels.
    """
    from crackscan.metrics.classification import accuracy, precision_recall_f1

    meta = predictor.metadata
    if meta.task == "classify":
        from crackscan.evaluation.inference import predict_labels

        probs = np.concatenate([predictor.class_probabilities(images[i : i + 64]) for i in range(0, len(images), 64)])
        pred = predict_labels(probs, meta.crack_class, meta.threshold)
        positive = meta.crack_class
    else:
        maps = np.concatenate([predictor.probability_map(images[i : i + 4]) for i in range(0, len(images), 4)])
        crack = maps if maps.ndim == 3 else maps[:, meta.crack_class]
        pred = (crack >= meta.threshold).reshape(-1).astype(np.int64)
        positive = 1
    target = truth if truth is not None else reference
    if target is None:
        return {"labels": pred}
    target = np.asarray(target).reshape(-1).astype(np.int64)
    _, _, f1 = precision_recall_f1(target, pred, positive=positive)
    return {"accuracy": 100.0 * accuracy(target, pred), "f1": 100.0 * f1, "labels": pred}


def compare_int8(
    fp32_path: Path, int8_path: Path, refs: ReferenceData, *, max_drop: float, label: str = "int8"
) -> tuple[bool, dict[str, Any]]:
    """Score the fp32 model and its reduced-precision copy (``label``: int8 or fp16) on the reference images.

    Accepted when neither accuracy nor crack F1 drops by more than ``max_drop`` percentage points.
    """
    fp32 = OnnxPredictor(fp32_path)
    int8 = OnnxPredictor(int8_path)
    a = _scores(fp32, refs.evaluation, refs.truth, None)
    b = _scores(int8, refs.evaluation, refs.truth, a["labels"])
    if refs.truth is None:  # unlabelled images: fp32 is the reference, so it scores 100
        a = {"accuracy": 100.0, "f1": 100.0, "labels": a["labels"]}
    agreement = 100.0 * float((a["labels"] == b["labels"]).mean())
    drop = max(a["accuracy"] - b["accuracy"], a["f1"] - b["f1"])
    figures = {
        "images": len(refs.evaluation),
        "against": "labels" if refs.truth is not None else "the fp32 model's predictions",
        "fp32_accuracy": round(a["accuracy"], 3),
        f"{label}_accuracy": round(b["accuracy"], 3),
        "fp32_f1": round(a["f1"], 3),
        f"{label}_f1": round(b["f1"], 3),
        "agreement": round(agreement, 3),
        "drop_points": round(drop, 3),
        "max_drop_points": max_drop,
    }
    return drop <= max_drop, figures


def default_output(source: Path, run_dir: Path | None, precision: str) -> Path:
    folder = source if source.is_dir() else (run_dir if source.suffix == ".ckpt" and run_dir else source.parent)
    return folder / ("model.onnx" if precision == "fp32" else f"model.{precision}.onnx")


def export_model(
    source: str | Path,
    *,
    out: str | Path | None = None,
    quantize: str | None = None,
    method: str = INT8_METHOD,
    opset: int = DEFAULT_OPSET,
    calibration: str | Path | None = None,
    max_drop: float = 0.5,
) -> ExportResult:
    """``crackscan export``: rebuild a trained network and write a checked ONNX model.

    ``source``: ``model.pt``, a Lightning ``.ckpt`` or a run folder. The fp32 export is
    parity-checked against torch on real inputs (see :func:`reference_data`). With
    ``quantize="int8"`` the fp32 graph is quantised (``method`` static/dynamic) and kept
    only when accuracy and F1 on the reference images drop by at most ``max_drop``
    points; otherwise :class:`ExportRefused` is raised and nothing is written.
    Default output: ``model.onnx`` / ``model.int8.onnx`` next to ``source``.
    """
    import copy
    import tempfile

    from crackscan.runtime.quantize import quantize_int8, store_fp16_weights, store_int8_weights
    from crackscan.runtime.torch_backend import load_torch_model

    if quantize not in (None, "int8", "fp16", "int8-weights"):
        raise ExportError(f"--quantize {quantize}: use int8, fp16 or int8-weights")
    source = Path(source)
    loaded = load_torch_model(source)
    precision = quantize or "fp32"
    target = Path(out) if out else default_output(source, loaded.run_dir, precision)
    refs = reference_data(loaded.metadata, loaded.run_dir, calibration)
    meta = copy.deepcopy(loaded.metadata)
    meta.precision = "fp32"
    meta.extra = {**meta.extra, "export": {"source": str(loaded.source), "opset": opset, "checked_on": refs.source}}
    tolerance = PARITY_TOLERANCE[meta.task]
    with tempfile.TemporaryDirectory(prefix="crackscan-export-") as tmp:
        fp32_path = target if not quantize else Path(tmp) / "model.onnx"
        parity = export_onnx(
            loaded.model,
            meta,
            fp32_path,
            parity_images=refs.evaluation[: PARITY_IMAGES[meta.task]],
            opset=opset,
            tolerance=tolerance,
        )
        fp32_size = fp32_path.stat().st_size
        if not quantize:
            return ExportResult(target, meta, "fp32", parity, refs.source, fp32_size, fp32_size)
        int8_tmp = Path(tmp) / f"model.{quantize}.onnx"
        if quantize == "fp16":
            store_fp16_weights(fp32_path, int8_tmp)
            method = "fp16-weights"
        elif quantize == "int8-weights":
            store_int8_weights(fp32_path, int8_tmp)
            method = "int8-weights"
        else:
            quantize_int8(
                fp32_path, int8_tmp, method=method, calibration_images=refs.calibration, calibration_source=refs.source
            )  # type: ignore[arg-type]
        q = quantize
        accepted, figures = compare_int8(fp32_path, int8_tmp, refs, max_drop=max_drop, label=q)
        figures.update(method=method, label=q, fp32_size_bytes=fp32_size)
        figures[f"{q}_size_bytes"] = int8_tmp.stat().st_size
        if not accepted:
            raise ExportRefused(
                f"{q.upper()} model refused: accuracy/F1 drop {figures['drop_points']:.2f} points > allowed "
                f"{max_drop:g} (accuracy {figures['fp32_accuracy']:.2f} → {figures[f'{q}_accuracy']:.2f}, "
                f"F1 {figures['fp32_f1']:.2f} → {figures[f'{q}_f1']:.2f} on {figures['images']} images, {refs.source})",
                figures,
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(target.name + ".tmp")
        shutil.copyfile(int8_tmp, staged)
        staged.replace(target)
        int8_meta = OnnxPredictor(target).metadata
        return ExportResult(
            target, int8_meta, int8_meta.precision, parity, refs.source, figures[f"{q}_size_bytes"], fp32_size, figures
        )
