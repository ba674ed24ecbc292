"""``crackscan data patches``: cut a segmentation set (image/mask pairs) into crack / no-crack patches.

Özgenel's classification set was made this way (227-px patches of wall photos); this turns any labelled
segmentation set — a new surface, your own photos — into a set ``train classify`` takes, for example to fine-tune
the bundled classifier on it.

Rules:

* **Photos are split before they are cut.** Neighbouring patches of one photo share lighting, texture and
  often the same crack, so a split made on patches would test on near-copies of training patches. Each photo's
  split (the layout's own, else a seeded stratified split, or ``--split FILE``) is kept by all its patches:
  ``DST/<split>/<crack|no_crack>/``, which ``train classify`` reads as the layout's split.
* **A patch is crack** when at least ``min_crack`` of its pixels are crack pixels, **no_crack** when it has
  none; patches in between (a crack's edge grazing a corner) would be label noise either way and are left out,
  and counted.
* Patches tile the photo with ``stride`` (default: the patch size), the last row and column flush with the
  far edge so nothing is cut off; photos smaller than a patch are left out, and listed.
* SRC is never modified; DST must be new or empty. ``DST/PATCHES.json`` records the counts, the rule and what
  was left out.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crackscan.data.fix import check_destination
from crackscan.data.layouts import LayoutError, LayoutKind, index_dataset
from crackscan.data.split import SplitPlan, make_split, read_split
from crackscan.imageio import DEFAULT_MAX_PIXELS, ImageReadError, MaskKind, read_image, read_mask, write_image

CRACK, NO_CRACK = "crack", "no_crack"


class PatchError(ValueError):
    """The patches cannot be cut; the message says why."""


@dataclass
class PatchSummary:
    src: str
    dst: str
    size: int
    stride: int
    min_crack: float
    split: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> patches
    photos: dict[str, int] = field(default_factory=dict)  # split -> photos cut
    ambiguous: int = 0  # patches with a few crack pixels, left out
    left_out: list[dict[str, str]] = field(default_factory=list)  # photos: {path, reason}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _starts(length: int, size: int, stride: int) -> list[int]:
    """Tile origins along one side: every ``stride``, the last one flush with the far edge."""
    starts = list(range(0, length - size + 1, stride))
    if starts and starts[-1] != length - size:
        starts.append(length - size)
    return starts


def cut_patches(
    src: str | Path,
    dst: str | Path,
    *,
    size: int = 227,
    stride: int | None = None,
    min_crack: float = 0.01,
    split: str | Path | None = None,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    mask_dir: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> PatchSummary:
    """Cut every pair of ``src`` into ``size``-px patches under ``dst/<split>/<class>/`` (module docstring)."""
    src, dst = Path(src), Path(dst)
    stride = stride or size
    if size < 16 or stride < 1:
        raise PatchError(f"--size must be at least 16 px and --stride at least 1, got {size} and {stride}")
    if not 0.0 < min_crack <= 1.0:
        raise PatchError(f"--min-crack must be a fraction in (0, 1], got {min_crack:g}")
    index = index_dataset(src, mask_dir=mask_dir)
    if index.layout is not LayoutKind.IMAGE_MASK_PAIRS:
        raise LayoutError(
            f"{src}: patches are cut from image/mask pairs (SRC/images/ + SRC/masks/), found class folders"
        )
    if not index.samples:
        raise LayoutError(f"{src}: no image has a mask with the same file stem")
    check_destination(src, dst)
    plan: SplitPlan = read_split(split) if split else make_split(src, val=val, test=test, seed=seed, mask_dir=mask_dir)
    where = {key: name for name, keys in plan.splits.items() for key in keys}
    how = f"split file {split}" if split else ("the layout's split" if plan.kept_official else f"seed {seed}")
    summary = PatchSummary(str(src), str(dst), size, stride, min_crack, how)
    counts: dict[str, Counter[str]] = {}
    dst.mkdir(parents=True, exist_ok=True)
    try:
        for sample in index.samples:
            part = where.get(index.relative(sample.image))
            if part is None:  # excluded by the split (a conflicting duplicate …) or not in the given split file
                summary.left_out.append({"path": str(sample.image), "reason": "not in the split"})
                continue
            try:
                image = read_image(sample.image, max_pixels=max_pixels)
                mask = read_mask(sample.mask, max_pixels=max_pixels)  # type: ignore[arg-type]
            except ImageReadError as exc:
                summary.left_out.append({"path": str(sample.image), "reason": f"unreadable: {exc.reason}"})
                continue
            if mask.kind is MaskKind.MULTICLASS:  # wheels and mirrors are not cracks: which class is meant is unknown
                raise PatchError(
                    f"{sample.mask}: a multi-class index mask (values {', '.join(map(str, mask.source_values[:8]))}); "
                    "patches need binary crack masks: pass --mask-dir with a binary view of the set"
                )
            crack = mask.labels > 0
            h, w = crack.shape
            if image.shape[:2] != (h, w):
                summary.left_out.append({"path": str(sample.image), "reason": "image and mask sizes differ"})
                continue
            if h < size or w < size:
                summary.left_out.append({"path": str(sample.image), "reason": f"smaller than a {size}-px patch"})
                continue
            # the photo's path (not just its stem) names its patches: two photos called 001.jpg in other folders
            stem = index.relative(sample.image).rsplit(".", 1)[0].replace("/", "_")
            summary.photos[part] = summary.photos.get(part, 0) + 1
            for y in _starts(h, size, stride):
                for x in _starts(w, size, stride):
                    fraction = float(crack[y : y + size, x : x + size].mean())
                    label = CRACK if fraction >= min_crack else NO_CRACK if fraction == 0 else None
                    if label is None:
                        summary.ambiguous += 1
                        continue
                    write_image(dst / part / label / f"{stem}_y{y}_x{x}.png", image[y : y + size, x : x + size])
                    counts.setdefault(part, Counter())[label] += 1
        summary.counts = {part: dict(sorted(c.items())) for part, c in sorted(counts.items())}
        if not counts:
            raise PatchError(f"{src}: no patch could be cut ({len(summary.left_out)} photos left out, see the reasons)")
    except BaseException:
        # DST was new or empty (check_destination): all it holds now is this run's half-made output
        for child in dst.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    (dst / "PATCHES.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return summary
