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
