"""Segmentation losses for thin, rare structures (cracks cover a few % of pixels).

All losses take logits ``N×C×H×W`` and targets ``N×H×W`` (int64 labels; for binary
models ``C == 1`` and labels are 0/1). Binary: BCE with ``pos_weight`` (class
imbalance), Dice, Focal, Tversky (α=0.3, β=0.7: missing crack pixels costs more than
extra ones), BCE+Dice, U-Net3+'s hybrid loss (focal + MS-SSIM + IoU), and the Lovász
hinge (Berman et al. 2018), a convex surrogate of the IoU itself, alone or beside BCE —
the usual last stage when the metric is IoU at a fixed threshold. Multi-class: the same
names with cross-entropy / multi-class smp losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("bce", "dice", "focal", "tversky", "bce+dice", "hybrid", "lovasz", "bce+lovasz")
# MS-SSIM weights of Wang et al. 2003 (five scales, fine to coarse).
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian_window(size: int, sigma: float, channels: int, ref: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=ref.dtype, device=ref.device) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def _ssim_and_cs(
    x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, c1: float, c2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    channels = x.shape[1]

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=channels)  # 'valid': no border artefacts

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    ssim = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs
    return ssim.mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    kernel_size: int = 11,
    sigma: float = 1.5,
    betas: tuple[float, ...] = MS_SSIM_BETAS,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Multi-scale SSIM per image (N,), in (0, 1], for maps of any size ≥ 3 px.

    torchmetrics' version needs sides ≥ 160 px for five scales; training crops (and
    tests) are often smaller, so the number of scales shrinks to what fits (each scale
    at least one window wide) and the remaining betas are renormalised. Negative
    contrast-structure terms are clamped to ``eps`` (instead of ReLU) so the fractional
    powers keep finite gradients.
    """
    side = min(x.shape[-2:])
    kernel = min(kernel_size, side if side % 2 else side - 1)
    if kernel < 3:
        raise ValueError(f"MS-SSIM needs maps of at least 3 px, got {tuple(x.shape[-2:])}")
    scales = max(1, min(len(betas), math.floor(math.log2(side / kernel)) + 1))
    weights = torch.tensor(betas[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    window = _gaussian_window(kernel, sigma, x.shape[1], x)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    terms = []
    for i in range(scales):
        ssim, cs = _ssim_and_cs(x, y, window, c1, c2)
        if i == scales - 1:
            terms.append(ssim.clamp(min=eps) ** weights[i])
        else:
            terms.append(cs.clamp(min=eps) ** weights[i])
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.stack(terms, dim=0).prod(dim=0)


class MSSSIMLoss(nn.Module):
    """``1 - MS-SSIM`` between predicted probabilities and the one-hot target."""

    def __init__(self, multiclass: bool) -> None:
        super().__init__()
        self.multiclass = multiclass

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs, onehot = _probs_and_onehot(logits, target, self.multiclass)
        return (1.0 - ms_ssim(probs, onehot)).mean()


def _probs_and_onehot(
    logits: torch.Tensor, target: torch.Tensor, multiclass: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    if multiclass:
        probs = logits.softmax(dim=1)
        onehot = F.one_hot(target.long(), logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
        return probs, onehot
    return logits.sigmoid(), target[:, None].to(logits.dtype)


class _Binary(nn.Module):
    """Adapt an smp binary loss (N×1×H×W logits, N×1×H×W float target) to N×H×W labels."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, target[:, None].to(logits.dtype))


class WeightedBCE(nn.Module):
    """BCE on logits with ``pos_weight`` = how much a crack pixel counts against background."""

    def __init__(self, pos_weight: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("pos_weight", torch.tensor([float(pos_weight)]))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target[:, None].to(logits.dtype), pos_weight=self.pos_weight)


class CrossEntropy(nn.Module):
    def __init__(self, class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("class_weights", class_weights if class_weights is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target.long(), weight=self.class_weights)


class SumOfLosses(nn.Module):
    def __init__(self, *losses: nn.Module) -> None:
        super().__init__()
        self.parts = nn.ModuleList(losses)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum((part(logits, target) for part in self.parts), torch.zeros((), device=logits.device))


def pos_weight_for(crack_fraction: float, cap: float = 20.0) -> float:
    """BCE ``pos_weight`` from the crack-pixel fraction: √(background/crack), in [1, cap].

    The square root (not the plain ratio) balances recall against a flood of false
    positives; the calibrated threshold fixes the remaining bias.
    """
    if crack_fraction <= 0.0:
        return 1.0
    return float(min(cap, max(1.0, math.sqrt((1.0 - crack_fraction) / crack_fraction))))


def create_loss(name: str, classes: int = 1, *, pos_weight: float = 1.0) -> nn.Module:
    """The loss ``name`` (one of :data:`LOSSES`) for ``classes`` output channels.

    ``classes == 1``: binary (sigmoid) losses; ``> 1``: multi-class (softmax) losses with
    background as class 0. ``pos_weight`` applies to binary BCE.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    multiclass = classes > 1
    if multiclass:
        mode = smp.losses.MULTICLASS_MODE
        builders: dict[str, Callable[[], nn.Module]] = {
            "bce": lambda: CrossEntropy(),
            "dice": lambda: smp.losses.DiceLoss(mode, from_logits=True),
            "focal": lambda: smp.losses.FocalLoss(mode),
            "tversky": lambda: smp.losses.TverskyLoss(mode, from_logits=True, alpha=0.3, beta=0.7),
            "bce+dice": lambda: SumOfLosses(CrossEntropy(), smp.losses.DiceLoss(mode, from_logits=True)),
            "hybrid": lambda: SumOfLosses(
                smp.losses.FocalLoss(mode),
                MSSSIMLoss(multiclass=True),
                smp.losses.JaccardLoss(mode, from_logits=True),
            ),
            "lovasz": lambda: smp.losses.LovaszLoss(mode),
            "bce+lovasz": lambda: SumOfLosses(CrossEntropy(), smp.losses.LovaszLoss(mode)),
        }
        return builders[name]()
    mode = smp.losses.BINARY_MODE
    builders = {
        "bce": lambda: WeightedBCE(pos_weight),
        "dice": lambda: _Binary(smp.losses.DiceLoss(mode, from_logits=True)),
        "focal": lambda: _Binary(smp.losses.FocalLoss(mode)),
        "tversky": lambda: _Binary(smp.losses.TverskyLoss(mode, from_logits=True, alpha=0.3, beta=0.7)),
        "bce+dice": lambda: SumOfLosses(WeightedBCE(pos_weight), _Binary(smp.losses.DiceLoss(mode, from_logits=True))),
        "hybrid": lambda: SumOfLosses(
            _Binary(smp.losses.FocalLoss(mode)),
            MSSSIMLoss(multiclass=False),
            _Binary(smp.losses.JaccardLoss(mode, from_logits=True)),
        ),
        # per_image=False: the hinge over the whole batch, as the pooled IoU is measured.
        "lovasz": lambda: _Binary(smp.losses.LovaszLoss(mode, per_image=False)),
        "bce+lovasz": lambda: SumOfLosses(
            WeightedBCE(pos_weight), _Binary(smp.losses.LovaszLoss(mode, per_image=False))
        ),
    }
    return builders[name]()


class DeepSupervisionLoss(nn.Module):
    """Loss over a model's outputs: a tensor, or U-Net3+'s dict of side outputs + presence.

    Side outputs count as much as the top output (the paper's plain sum, averaged so the
    scale does not depend on the number of sides); the classification-guided module adds
    BCE on "does this crop hold any crack".
    """

    def __init__(self, loss: nn.Module, presence_weight: float = 0.5) -> None:
        super().__init__()
        self.loss = loss
        self.presence_weight = presence_weight

    def forward(self, outputs: torch.Tensor | dict, target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs, target)
        masks = outputs["masks"]
        total = sum(self.loss(m, target) for m in masks) / len(masks)
        presence = outputs.get("presence")
        if presence is not None:
            has_crack = (target.flatten(1) > 0).any(dim=1, keepdim=True).to(presence.dtype)
            total = total + self.presence_weight * F.binary_cross_entropy_with_logits(presence, has_crack)
        return total


__all__ = [
    "LOSSES",
    "DeepSupervisionLoss",
    "MSSSIMLoss",
    "create_loss",
    "ms_ssim",
    "pos_weight_for",
]
