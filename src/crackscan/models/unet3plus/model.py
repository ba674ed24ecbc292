"""U-Net3+ built like smp's models: ``encoder`` → ``decoder`` → ``segmentation_head``.

* Training mode with ``deep_supervision`` returns a dict: ``masks`` (the top output
  followed by side outputs from d2…d5, every one N×C×H×W logits at full size) and
  ``presence`` (N×1 image-level logits of the classification-guided module, or None).
* Eval mode returns only the top N×C×H×W logits, so the ONNX graph has one output.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base import SegmentationModel
from segmentation_models_pytorch.base import initialization as init
from segmentation_models_pytorch.encoders import get_encoder
from torch import nn

from crackscan.models.unet3plus.decoder import ClassificationGuidance, UNet3PlusDecoder


class UNet3Plus(SegmentationModel):
    """U-Net3+ with full-scale skips, deep supervision and an optional CGM.

    ``classes`` output channels (1 = binary crack logits). ``cat_channels`` is the width
    of each of the five inputs of a decoder node (the paper uses 64; 16 keeps a
    Lite0 model small and fast on a CPU).
    """

    def __init__(
        self,
        encoder_name: str = "tu-tf_efficientnet_lite0",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        classes: int = 1,
        cat_channels: int = 16,
        deep_supervision: bool = True,
        cgm: bool = False,
        cgm_gate_inference: bool = False,
        **encoder_kwargs: Any,
    ) -> None:
        super().__init__()
        self.encoder = get_encoder(
            encoder_name, in_channels=in_channels, depth=5, weights=encoder_weights, **encoder_kwargs
        )
        self.decoder = UNet3PlusDecoder(self.encoder.out_channels, cat_channels=cat_channels)
        up = self.decoder.up_channels
        self.segmentation_head = nn.Conv2d(up, classes, kernel_size=3, padding=1)
        self.deep_supervision = deep_supervision
        # Side heads on d2, d3, d4 (fused width) and d5 (the deepest encoder map).
        side_in = [up, up, up, self.encoder.out_channels[-1]]
        self.side_heads = nn.ModuleList(nn.Conv2d(c, classes, kernel_size=3, padding=1) for c in side_in)
        self.cgm = ClassificationGuidance(self.encoder.out_channels[-1]) if cgm else None
        self.cgm_gate_inference = cgm_gate_inference and cgm
        self.classification_head = None
        self.name = f"u3p-{encoder_name}"
        init.initialize_decoder(self.decoder)
        init.initialize_head(self.segmentation_head)
        for head in self.side_heads:
            init.initialize_head(head)

    def forward(self, x: torch.Tensor) -> Any:
        features = self.encoder(x)
        d1, d2, d3, d4, d5 = self.decoder(features)
        top = F.interpolate(self.segmentation_head(d1), scale_factor=2, mode="bilinear", align_corners=False)
        presence = self.cgm(features[-1]) if self.cgm is not None else None
        if self.training and self.deep_supervision:
            masks = [top]
            for head, d, factor in zip(self.side_heads, (d2, d3, d4, d5), (4, 8, 16, 32), strict=True):
                masks.append(F.interpolate(head(d), scale_factor=factor, mode="bilinear", align_corners=False))
            if presence is not None:
                masks = [ClassificationGuidance.gate(m, presence) for m in masks]
            return {"masks": masks, "presence": presence}
        if self.training and presence is not None:
            return {"masks": [ClassificationGuidance.gate(top, presence)], "presence": presence}
        if presence is not None and self.cgm_gate_inference:
            top = ClassificationGuidance.gate(top, presence)
        return top
