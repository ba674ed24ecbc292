"""U-Net3+ (Huang et al., ICASSP 2020) in segmentation_models_pytorch's encoder + decoder + head shape."""

from crackscan.models.unet3plus.decoder import ClassificationGuidance, UNet3PlusDecoder
from crackscan.models.unet3plus.model import UNet3Plus

__all__ = ["ClassificationGuidance", "UNet3Plus", "UNet3PlusDecoder"]
