"""Patch classifiers by name: any timm architecture, plus crackscan's fast default.

``crackscan_lite0_s4`` is EfficientNet-Lite0 cut after its fourth stage (stride 16,
80 channels), global-average-pooled into a linear head. It keeps ImageNet features
(loaded offline from the efficientnet-lite0 package) at a tenth of the full network's
cost, which is what a 2-core laptop needs to classify thousands of patches a second.
``crackscan_lite0_s3`` … ``crackscan_lite0_s6`` cut after another stage (s5 adds the
112-channel stage, which still runs at stride 16).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import timm
import torch
from torch import nn

from crackscan.models.pretrained import (
    LITE0_ARCH,
    PretrainedWeightsError,
    has_packaged_weights,
    lite0_package_state_dict,
    load_into,
    load_state_dict_file,
    packaged_description,
    packaged_state_dict,
    timm_hub_state_dict,
)

FAST_DEFAULT = "crackscan_lite0_s4"
_TRUNCATED = re.compile(r"crackscan_lite0_s([3-6])")  # EfficientNet-Lite0 cut after stage 3…6
# Archs the project documents and tests; any other timm name works too.
FIRST_CLASS = (FAST_DEFAULT, "tf_efficientnet_lite0", "mobilenetv2_100", "resnet18", "tf_efficientnetv2_b0")


@dataclass(frozen=True)
class Normalisation:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class TruncatedLite0(nn.Module):
    """EfficientNet-Lite0 stem + the first ``stages`` block groups + pooled linear head."""

    def __init__(self, num_classes: int, stages: int = 4) -> None:
        super().__init__()
        full = timm.create_model(LITE0_ARCH, pretrained=False)
        self.conv_stem = full.conv_stem
        self.bn1 = full.bn1
        self.blocks = nn.Sequential(*list(full.blocks.children())[:stages])
        channels = self.blocks[-1][-1].conv_pwl.out_channels
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(channels, num_classes)
        self.num_features = channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.bn1(self.conv_stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.forward_features(x).mean((2, 3))))

    def get_classifier(self) -> nn.Module:
        return self.classifier


def truncated_stages(arch: str) -> int | None:
    """How many Lite0 stages a ``crackscan_lite0_sN`` arch keeps; ``None`` for other names."""
    match = _TRUNCATED.fullmatch(arch)
    return int(match.group(1)) if match else None


def normalisation_for(arch: str) -> Normalisation:
    if truncated_stages(arch) is not None:
        arch = LITE0_ARCH
    try:
        cfg = timm.create_model(arch, pretrained=False, num_classes=0).pretrained_cfg
    except RuntimeError as exc:  # timm: "Unknown model"
        raise ValueError(f"unknown architecture {arch!r}: use a timm model name or {FAST_DEFAULT}") from exc
    return Normalisation(mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))  # type: ignore[arg-type]


def create_classifier(arch: str, num_classes: int) -> nn.Module:
    """A randomly initialised classifier with ``num_classes`` outputs (logits)."""
    if (stages := truncated_stages(arch)) is not None:
        return TruncatedLite0(num_classes, stages=stages)
    try:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes)
    except RuntimeError as exc:  # timm: "Unknown model"
        raise ValueError(f"unknown architecture {arch!r}: use a timm model name or {FAST_DEFAULT}") from exc


def load_pretrained(model: nn.Module, arch: str, *, weights: str | None, pretrained: bool) -> str:
    """Load backbone weights by the project's rules and say where they came from.

    ``weights`` (a file) wins; otherwise with ``pretrained`` the Lite0 family loads the
    packaged ImageNet weights offline and other archs use timm's hub download — a failed
    download raises :class:`PretrainedWeightsError`, it never falls back to random init.
    """
    if weights:
        return load_into(model, load_state_dict_file(weights), what=f"weights file {weights}")
    if not pretrained:
        return "random initialisation (--no-pretrained)"
    if truncated_stages(arch) is not None:
        return load_into(model, lite0_package_state_dict(), what="ImageNet EfficientNet-Lite0 (offline package)")
    if has_packaged_weights(arch):
        return load_into(model, packaged_state_dict(arch), what=packaged_description(arch))
    return load_into(model, timm_hub_state_dict(arch), what=f"ImageNet {arch} (timm hub)")


def classifier_head(model: nn.Module) -> nn.Module:
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Module):
        raise PretrainedWeightsError("model has no classifier head to train on its own")
    return head


__all__ = [
    "FAST_DEFAULT",
    "FIRST_CLASS",
    "Normalisation",
    "TruncatedLite0",
    "classifier_head",
    "create_classifier",
    "load_pretrained",
    "normalisation_for",
    "truncated_stages",
]
