"""Segmentation models by name: smp architectures and crackscan's U-Net3+, timm encoders.

Every model is encoder + decoder + head (smp's shape) and returns N×C×H×W logits for
inputs whose sides are multiples of 32. Encoders are timm models through smp's universal
``tu-<timm_name>`` encoder, so any timm CNN works; ``tf_efficientnet_lite0`` is the
default because its ImageNet weights ship offline (see :mod:`crackscan.models.pretrained`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import segmentation_models_pytorch as smp
from torch import nn

from crackscan.models.pretrained import (
    LITE0_ARCH,
    PretrainedWeightsError,
    has_packaged_weights,
    load_into,
    load_state_dict_file,
    packaged_description,
    packaged_state_dict,
    timm_hub_state_dict,
)
from crackscan.models.unet3plus import UNet3Plus

DEFAULT_ENCODER = LITE0_ARCH
DEFAULT_DECODER_CHANNELS = (128, 64, 32, 24, 16)
SIZE_MULTIPLE = 32
# Archs the project documents, tests and benchmarks; other smp names work too.
FIRST_CLASS = ("unet", "unetplusplus", "unet3plus", "deeplabv3plus", "fpn")
# Decoders that take one channel list per stage; the others take a single width.
_STAGED = {"unet", "unetplusplus", "manet"}
_ALIASES = {"unet++": "unetplusplus", "unet3+": "unet3plus", "deeplabv3+": "deeplabv3plus"}


def canonical_arch(arch: str) -> str:
    key = arch.strip().lower().replace("-", "").replace("_", "")
    return _ALIASES.get(key, key)


def smp_encoder_name(encoder: str) -> str:
    """smp's name for a timm encoder: ``tu-<timm_name>`` (already-prefixed names pass)."""
    return encoder if encoder.startswith("tu-") else f"tu-{encoder}"


def timm_name(encoder: str) -> str:
    return encoder.removeprefix("tu-")


class _PassThrough(nn.Module):
    """Stands in for U-Net's last decoder block: keeps the stride-2 features as they are."""

    def forward(self, feature_map: Any, target_height: int, target_width: int, skip_connection: Any = None) -> Any:
        return feature_map


def _predict_at_half_resolution(model: nn.Module, classes: int, width: int) -> nn.Module:
    """Make an smp U-Net predict at stride 2 and upsample its logits ×2.

    Measured with ONNX Runtime on 2 CPU cores (512×512, Lite0 encoder): the full-resolution
    decoder block, the 3×3 head on 512×512 maps and their resize are about 30 % of a profiled
    run; without them the network runs 1.3–1.6× faster (benchmarks/segmenter_speed.py).
    Cracks a pixel or two wide stay visible in bilinearly upsampled logits; what is lost
    is sub-pixel edge placement. ``width``: channels of the stride-2 decoder block.
    """
    model.decoder.blocks[-1] = _PassThrough()
    head = model.segmentation_head
    head[0] = nn.Conv2d(width, classes, kernel_size=3, padding=1)
    # Logits, not labels, are upsampled; align_corners=False keeps pixel centres in place.
    head[1] = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    return model


def available_archs() -> list[str]:
    return sorted({*smp.MODEL_ARCHITECTURES_MAPPING, "unet3plus"})


def create_segmenter(
    arch: str,
    encoder: str = DEFAULT_ENCODER,
    classes: int = 1,
    *,
    decoder_channels: Sequence[int] | None = None,
    deep_supervision: bool = True,
    cgm: bool = False,
    cgm_gate_inference: bool = False,
    head_stride: int = 1,
    decoder_norm: str = "group",
    **kwargs: Any,
) -> nn.Module:
    """A randomly initialised segmenter with ``classes`` output channels (logits).

    ``decoder_channels``: for U-Net-like decoders (unet, unetplusplus, manet) one width
    per stage, five values from deep to shallow (default 128, 64, 32, 24, 16); for
    single-width decoders the first value is used (FPN pyramid width, DeepLabV3+
    decoder width, U-Net3+ ``cat_channels``). ``deep_supervision``/``cgm`` apply to
    U-Net3+ only. ``head_stride=2`` (U-Net only) predicts at half resolution and
    upsamples the logits: about 1.3–1.6× faster on CPU. ``decoder_norm="batch"`` (FPN
    only) replaces the decoder's GroupNorm — which at 32 groups of its 32 channels is a
    per-tile instance norm, so a tile's predictions depend on what else the tile holds —
    by BatchNorm, folded into the convolutions at export (trained once on the bundled
    crack-seg's recipe it scored lower, and tiled maps still depended on the overlap:
    docs/benchmarks.md). Raises ``ValueError`` for an unknown arch or encoder.
    """
    name = canonical_arch(arch)
    enc = smp_encoder_name(encoder)
    channels = tuple(int(c) for c in decoder_channels) if decoder_channels else None
    if head_stride not in (1, 2):
        raise ValueError(f"--head-stride must be 1 or 2, got {head_stride}")
    if head_stride == 2 and name != "unet":
        raise ValueError(f"--head-stride 2 is built for unet only, not {arch}")
    if decoder_norm not in ("group", "batch"):
        raise ValueError(f"--decoder-norm must be group or batch, got {decoder_norm!r}")
    if decoder_norm == "batch" and name != "fpn":
        raise ValueError(f"--decoder-norm batch is built for fpn only (the decoder with GroupNorm), not {arch}")
    try:
        if name == "unet3plus":
            return UNet3Plus(
                enc,
                encoder_weights=None,
                classes=classes,
                cat_channels=channels[0] if channels else 16,
                deep_supervision=deep_supervision,
                cgm=cgm,
                cgm_gate_inference=cgm_gate_inference,
            )
        if name not in smp.MODEL_ARCHITECTURES_MAPPING:
            raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(available_archs())}")
        options: dict[str, Any] = dict(kwargs)
        if name in _STAGED:
            staged = channels or DEFAULT_DECODER_CHANNELS
            if len(staged) != 5:
                raise ValueError(f"--decoder-channels for {name} needs 5 values (deep to shallow), got {len(staged)}")
            options["decoder_channels"] = staged
        elif name == "fpn":
            width = channels[0] if channels else 128
            # FPN's segmentation blocks use GroupNorm(32): keep that width a multiple of 32.
            seg = max(32, (width // 2) // 32 * 32)
            options.update(decoder_pyramid_channels=width, decoder_segmentation_channels=seg)
        elif name in ("deeplabv3plus", "deeplabv3", "upernet", "pan"):
            options["decoder_channels"] = channels[0] if channels else 128
        model = smp.create_model(name, encoder_name=enc, encoder_weights=None, classes=classes, **options)
        if head_stride == 2:  # unet only (checked above): the stride-2 block is the second-to-last
            return _predict_at_half_resolution(model, classes, width=options["decoder_channels"][-2])
        if decoder_norm == "batch":  # fpn only (checked above)
            _group_to_batch_norm(model.decoder)
        return model
    except (KeyError, RuntimeError) as exc:  # timm: unknown model / unsupported layout
        raise ValueError(f"cannot build {arch} with encoder {timm_name(enc)!r}: {exc}") from None


def _group_to_batch_norm(module: nn.Module) -> None:
    """Replace every GroupNorm inside ``module`` by a BatchNorm2d of the same width, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.GroupNorm):
            setattr(module, name, nn.BatchNorm2d(child.num_channels))
        else:
            _group_to_batch_norm(child)


def encoder_module(model: nn.Module) -> nn.Module:
    """The timm model inside the smp encoder (the tensors ImageNet weights fill)."""
    encoder = getattr(model, "encoder", None)
    inner = getattr(encoder, "model", None)
    if not isinstance(inner, nn.Module):
        raise PretrainedWeightsError("model has no timm encoder to load weights into")
    return inner


def _load_all(target: nn.Module, state: dict[str, Any], what: str) -> str:
    """Load ``state`` into ``target`` and insist every tensor of ``target`` was filled."""
    own = target.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    counted = [k for k in own if not k.endswith("num_batches_tracked")]
    if missing:
        raise PretrainedWeightsError(
            f"{what}: only {len(counted) - len(missing)} of {len(counted)} encoder tensors match "
            f"(first missing: {missing[0]})"
        )
    target.load_state_dict(usable, strict=False)
    return f"{what}: {len(counted)}/{len(counted)} tensors"


def load_encoder_pretrained(model: nn.Module, encoder: str, weights: str | None, pretrained: bool) -> str:
    """Fill the model's weights by the project's rules and say where they came from.

    ``weights`` (a file) wins: a whole segmenter (``model.pt``, a Lightning checkpoint)
    loads into the whole model, a backbone state dict into the encoder. Otherwise, with
    ``pretrained``, EfficientNet-Lite0/1/2 load their packaged ImageNet weights offline and every other
    encoder downloads through timm — a failure raises :class:`PretrainedWeightsError`,
    never a silent random init. Every encoder tensor must load.
    """
    inner = encoder_module(model)
    name = timm_name(encoder)
    if weights:
        state = load_state_dict_file(weights)
        state = {k.removeprefix("model."): v for k, v in state.items()}  # Lightning module prefix
        whole = model.state_dict()
        if sum(k in whole for k in state) >= 0.5 * len(whole):
            return load_into(model, state, what=f"weights file {weights} (whole model)")
        return _load_all(inner, state, f"weights file {weights} (encoder)")
    if not pretrained:
        return "random initialisation (--no-pretrained)"
    if has_packaged_weights(name):
        return _load_all(inner, packaged_state_dict(name), packaged_description(name))
    return _load_all(inner, timm_hub_state_dict(name), f"ImageNet {name} (timm hub)")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "DEFAULT_DECODER_CHANNELS",
    "DEFAULT_ENCODER",
    "FIRST_CLASS",
    "SIZE_MULTIPLE",
    "available_archs",
    "canonical_arch",
    "count_parameters",
    "create_segmenter",
    "encoder_module",
    "load_encoder_pretrained",
    "smp_encoder_name",
    "timm_name",
]
