"""Patch classifiers by name: any timm architecture, plus crackscan's fast default.

``crackscan_lite0_s4`` is EfficientNet-Lite0 cut after its fourth stage (stride 16,
80 channels), global-average-pooled into a linear head. It keeps ImageNet features
(loaded offline from the efficientnet-lite0 package) at a tenth of the full network's
cost, which is what a 2-core laptop needs to classify thousands of patches a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
from torch import nn

from crackscan.models.pretrained import (
    LITE0_ARCH,
    PretrainedWeightsError,
    lite0_package_state_dict,
    load_into,
    load_state_dict_file,
    timm_hub_state_dict,
)

FAST_DEFAULT = "crackscan_lite0_s4"
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


def normalisation_for(arch: str) -> Normalisation:
    if arch == FAST_DEFAULT:
        arch = LITE0_ARCH
    cfg = timm.create_model(arch, pretrained=False, num_classes=0).pretrained_cfg
    return Normalisation(mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))  # type: ignore[arg-type]


def create_classifier(arch: str, num_classes: int) -> nn.Module:
    """A randomly initialised classifier with ``num_classes`` outputs (logits)."""
    if arch == FAST_DEFAULT:
        return TruncatedLite0(num_classes)
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
    if arch in (LITE0_ARCH, FAST_DEFAULT):
        return load_into(model, lite0_package_state_dict(), what="ImageNet EfficientNet-Lite0 (offline package)")
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
]
