"""Training (needs the ``train`` extra: torch, timm, smp, lightning, albumentations)."""
