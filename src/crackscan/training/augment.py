"""Augmentation pipelines (albumentations), applied to training data only."""

from __future__ import annotations

import albumentations as A


def classification_train_transform(size: int) -> A.Compose:
    """The seeds' augmentations: flips, 90° and small rotations, zoom, light, blur/noise.

    Inputs are cached at ``1.15 × size`` so zooming in crops real pixels instead of
    upsampling a ``size`` image.
    """
    return A.Compose(
        [
            A.RandomResizedCrop(size=(size, size), scale=(0.6, 1.0), ratio=(0.85, 1.18), p=1.0),
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.Affine(rotate=(-15, 15), border_mode=2, p=0.3),  # reflect: no black corners
            A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=0.6),
            A.OneOf(
                [A.GaussianBlur(blur_limit=(3, 5)), A.GaussNoise(std_range=(0.02, 0.08)), A.MotionBlur()],
                p=0.3,
            ),
        ]
    )


def classification_eval_transform(size: int) -> A.Compose:
    return A.Compose([A.Resize(height=size, width=size)])


def segmentation_train_transform() -> A.Compose:
    """Joint image/mask augmentation of a training crop (masks always nearest-neighbour).

    Flips and 90° turns (cracks have no preferred direction), a small affine with
    reflected borders, light changes, and blur/noise — camera and compression artefacts
    a thin crack must survive. The crop itself is taken before (crack-biased, see
    :mod:`crackscan.training.segment`).
    """
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.Affine(
                scale=(0.85, 1.15),
                rotate=(-15, 15),
                translate_percent=(-0.05, 0.05),
                border_mode=2,  # reflect, for image and mask alike
                interpolation=1,
                mask_interpolation=0,  # nearest: labels stay labels
                p=0.4,
            ),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.OneOf(
                [A.GaussianBlur(blur_limit=(3, 5)), A.GaussNoise(std_range=(0.02, 0.06)), A.MotionBlur(blur_limit=5)],
                p=0.25,
            ),
        ]
    )
