"""Export a torch model to ONNX with its metadata inside, and prove the export agrees.

Needs torch (the ``train`` extra); everything that *runs* the exported file does not.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

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
    wrapped = _Probabilities(model).eval()
    size = metadata.input_size
    example = torch.zeros(1, 3, size, size)
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            wrapped,
            (example,),
            buf,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
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
    """Compare softmax probabilities of torch and ONNX Runtime on the same uint8 images."""
    predictor = OnnxPredictor(onnx_path)
    meta = predictor.metadata
    x = _normalise(images, np.asarray(meta.mean, np.float32), np.asarray(meta.std, np.float32))
    with torch.no_grad():
        out = _Probabilities(model).eval()(torch.from_numpy(x))
        torch_probs = (
            torch.softmax(out, dim=1).numpy() if meta.task == "classify" else torch.sigmoid(out).numpy()
        )
    onnx_out = predictor.logits(images)
    if meta.task == "classify":
        onnx_probs = predictor.class_probabilities(images)
    else:
        onnx_probs = 1.0 / (1.0 + np.exp(-onnx_out))
    diff = float(np.abs(torch_probs - onnx_probs).max())
    figures = {"parity_max_abs_diff": diff, "parity_n": float(len(images))}
    if diff > tolerance:
        raise ExportError(
            f"ONNX export disagrees with torch: max |Δp| = {diff:.2e} > {tolerance:.0e} on {len(images)} images"
        )
    log.info("export parity: max |Δp| = %.2e on %d images", diff, len(images))
    return figures
