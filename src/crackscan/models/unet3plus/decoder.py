"""U-Net3+ decoder: full-scale skip connections and deep-supervision side heads.

Encoder maps ``e1 … e5`` sit at strides 2, 4, 8, 16, 32 (smp encoders also return the
input as stride 1, which is not used). Decoder node ``d_i`` (stride ``2**i``) fuses
*every* scale, each squeezed to ``cat_channels`` by conv-BN-ReLU:

* shallower encoder maps ``e_j`` (j < i), max-pooled down by ``2**(i-j)``;
* the same-scale encoder map ``e_i``;
* deeper decoder maps ``d_j`` (j > i, with ``d5 = e5``), bilinearly upsampled by ``2**(j-i)``;

then one conv-BN-ReLU over the ``5 * cat_channels`` concatenation. Every resize uses a
fixed scale factor, never a size read from a tensor, so the traced ONNX graph accepts
any input whose sides are multiples of 32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class _FullScaleNode(nn.Module):
    """One decoder node ``d_level``: fuse all five scales at stride ``2**level``."""

    def __init__(self, level: int, encoder_channels: list[int], deeper_channels: list[int], cat_channels: int) -> None:
        super().__init__()
        self.level = level
        n_levels = len(encoder_channels)
        # encoder_channels[k] is e_{k+1}; e_1..e_level feed this node directly.
        self.from_encoder = nn.ModuleList(conv_bn_relu(encoder_channels[j], cat_channels) for j in range(level))
        # d_{level+1} .. d_5 (d_5 is e_5): upsampled inputs.
        self.from_deeper = nn.ModuleList(conv_bn_relu(c, cat_channels) for c in deeper_channels)
        self.fuse = conv_bn_relu(cat_channels * n_levels, cat_channels * n_levels)

    def forward(self, encoder_maps: list[torch.Tensor], deeper_maps: list[torch.Tensor]) -> torch.Tensor:
        parts = []
        for j, conv in enumerate(self.from_encoder):
            factor = 2 ** (self.level - 1 - j)
            x = encoder_maps[j]
            parts.append(conv(F.max_pool2d(x, factor, factor, ceil_mode=True) if factor > 1 else x))
        for k, conv in enumerate(self.from_deeper):
            factor = 2 ** (k + 1)
            parts.append(conv(F.interpolate(deeper_maps[k], scale_factor=factor, mode="bilinear", align_corners=False)))
        return self.fuse(torch.cat(parts, dim=1))


class UNet3PlusDecoder(nn.Module):
    """Full-scale decoder over five encoder levels; returns ``[d1, d2, d3, d4, d5]``.

    ``encoder_channels`` are the smp encoder's ``out_channels`` (six entries, the first
    being the input). ``d1`` (stride 2) is the top node; ``d5`` is the deepest encoder map.
    """

    def __init__(self, encoder_channels: list[int] | tuple[int, ...], cat_channels: int = 16) -> None:
        super().__init__()
        channels = list(encoder_channels)[1:]
        if len(channels) != 5:
            raise ValueError(f"U-Net3+ needs an encoder of depth 5, got {len(channels)} stages")
        self.cat_channels = cat_channels
        self.up_channels = cat_channels * 5
        self.encoder_channels = channels
        nodes = []
        for level in (4, 3, 2, 1):
            # deeper inputs in order d_{level+1}, …, d_4, e_5
            deeper = [self.up_channels] * (4 - level) + [channels[4]]
            nodes.append(_FullScaleNode(level, channels, deeper, cat_channels))
        self.nodes = nn.ModuleList(nodes)  # d4, d3, d2, d1

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        e = list(features)[1:]  # drop the stride-1 input
        decoded: dict[int, torch.Tensor] = {5: e[4]}
        for node in self.nodes:
            level = node.level
            deeper = [decoded[j] for j in range(level + 1, 6)]
            decoded[level] = node(e[:level], deeper)
        return [decoded[i] for i in (1, 2, 3, 4, 5)]


class ClassificationGuidance(nn.Module):
    """Classification-guided module: does the image hold any crack at all?

    A dropout-1×1-conv-global-max-pool head on the deepest encoder map giving one logit
    per image. During training it multiplies the crack odds of every side output by the
    predicted presence probability (``logit + log σ(presence)``), which suppresses
    false positives on crack-free surfaces; at inference the same gate is applied when
    ``gate_inference`` is set.
    """

    def __init__(self, in_channels: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(in_channels, 1, kernel_size=1))

    def forward(self, deepest: torch.Tensor) -> torch.Tensor:
        return torch.amax(self.head(deepest), dim=(2, 3))  # (N, 1) logits

    @staticmethod
    def gate(mask_logits: torch.Tensor, presence_logits: torch.Tensor) -> torch.Tensor:
        return mask_logits + F.logsigmoid(presence_logits)[:, :, None, None]
