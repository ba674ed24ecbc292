"""Find the samples of a data set laid out the way public crack sets come.

Two layouts are recognised:

* **class folders** — ``ROOT/<class>/*`` or ``ROOT/<split>/<class>/*`` (Özgenel's
  ``Positive/`` and ``Negative/``);
* **image/mask pairs** — ``ROOT/images[/<split>]/*`` with ``ROOT/masks[/<split>]/*``,
  matched by file stem whatever the extensions (DeepCrack's ``.jpg`` images with
  ``.png`` masks, crackmix's ``.jpg`` masks).

Anything else (README files, manifests, ``images_unlabeled/``) is listed as ignored,
never an error. Nothing here reads pixels: it only walks folders.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from crackscan.imageio import is_image_file

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
IMAGE_DIR_NAMES = ("images", "image", "imgs", "img")
MASK_DIR_NAMES = ("masks", "mask", "labels", "annotations_png", "gt", "groundtruth")


class LayoutKind(StrEnum):
    CLASS_FOLDERS = "class_folders"
    IMAGE_MASK_PAIRS = "image_mask_pairs"


class LayoutError(ValueError):
    """The folder is not a data set crackscan can read; the message says why."""


@dataclass(frozen=True)
class Sample:
    """One item of a data set. ``mask`` is set for pairs, ``label`` for class folders."""

    image: Path
    mask: Path | None = None
    label: str | None = None
    split: str | None = None  # the split given by the layout itself, if any
    # The data set folder; kept out of equality so samples compare by their files.
    root: Path | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        """A stable, root-relative identifier used by split files."""
        # ``image`` is root-joined: without stripping the root, a split file made from
        # ``../data/x`` would not match the same set opened as ``/abs/data/x``.
        if self.root is not None:
            try:
                return self.image.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return self.image.as_posix()


@dataclass
class DatasetIndex:
    """What a data set folder holds, found by walking it (no pixels read)."""

    root: Path
    layout: LayoutKind
    samples: list[Sample]
    classes: list[str] = field(default_factory=list)
    unmatched_images: list[Path] = field(default_factory=list)
    unmatched_masks: list[Path] = field(default_factory=list)
    empty_folders: list[Path] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    mask_dir: str | None = None

    @property
    def splits(self) -> dict[str, int]:
        """Counts per split given by the layout (empty when the layout has none)."""
        return dict(Counter(s.split for s in self.samples if s.split))

    @property
    def class_counts(self) -> dict[str, int]:
        counts = Counter(s.label for s in self.samples if s.label is not None)
        return {c: counts.get(c, 0) for c in self.classes}

    def relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()


def _children(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return [p for p in _children(folder) if p.is_file() and is_image_file(p)]


def _find_dir(root: Path, names: tuple[str, ...], explicit: str | None = None) -> Path | None:
    if explicit is not None:
        candidate = root / explicit
        if not candidate.is_dir():
            raise LayoutError(f"{root}: no folder named {explicit!r}")
        return candidate
    by_lower = {p.name.lower(): p for p in _children(root) if p.is_dir()}
    for name in names:
        if name in by_lower:
            return by_lower[name]
    return None


def _split_of(name: str) -> str | None:
    return SPLIT_NAMES.get(name.lower())


def _split_folders(folder: Path) -> dict[str, Path]:
    """Sub-folders of ``folder`` named like splits (train/val/test and synonyms)."""
    return {_split_of(p.name): p for p in _children(folder) if p.is_dir() and _split_of(p.name)}


def _index_pairs(root: Path, images_dir: Path, masks_dir: Path) -> DatasetIndex:
    ignored: list[Path] = []
    image_splits = _split_folders(images_dir)
    mask_splits = _split_folders(masks_dir)
    groups: list[tuple[str | None, Path, Path | None]] = []
    if image_splits:
        for split, folder in sorted(image_splits.items()):
            groups.append((split, folder, mask_splits.get(split)))
        ignored += [p for p in _children(images_dir) if p.is_dir() and p not in image_splits.values()]
        ignored += [p for p in _children(masks_dir) if p.is_dir() and p not in mask_splits.values()]
        ignored += [p for p in _image_files(images_dir)] + [p for p in _image_files(masks_dir)]
    else:
        groups.append((None, images_dir, masks_dir))
        ignored += [p for p in _children(images_dir) if p.is_dir()]
        ignored += [p for p in _children(masks_dir) if p.is_dir()]

    samples: list[Sample] = []
    unmatched_images: list[Path] = []
    unmatched_masks: list[Path] = []
    for split, img_folder, mask_folder in groups:
        images = _image_files(img_folder)
        masks = _image_files(mask_folder) if mask_folder is not None else []
        masks_by_stem: dict[str, list[Path]] = {}
        for m in masks:
            masks_by_stem.setdefault(m.stem, []).append(m)
        used: set[Path] = set()
        for img in images:
            candidates = masks_by_stem.get(img.stem, [])
            if not candidates:
                unmatched_images.append(img)
                continue
            # Prefer a lossless mask when a stem has several (e.g. .png beside .jpg).
            mask = sorted(candidates, key=lambda p: (p.suffix.lower() in (".jpg", ".jpeg"), p.name))[0]
            used.add(mask)
            samples.append(Sample(image=img, mask=mask, split=split, root=root))
        unmatched_masks += [m for m in masks if m not in used]
        if mask_folder is not None:
            ignored += [p for p in _children(mask_folder) if p.is_file() and not is_image_file(p)]
        ignored += [p for p in _children(img_folder) if p.is_file() and not is_image_file(p)]
    for split, folder in mask_splits.items():
        if split not in image_splits and image_splits:
            unmatched_masks += _image_files(folder)
    ignored += [p for p in _children(root) if p not in (images_dir, masks_dir)]
    return DatasetIndex(
        root=root,
        layout=LayoutKind.IMAGE_MASK_PAIRS,
        samples=samples,
        unmatched_images=unmatched_images,
        unmatched_masks=unmatched_masks,
        ignored=ignored,
        mask_dir=masks_dir.name,
    )


def _index_class_folders(root: Path) -> DatasetIndex:
    split_dirs = _split_folders(root)
    groups: list[tuple[str | None, Path]] = sorted(split_dirs.items()) if split_dirs else [(None, root)]
    samples: list[Sample] = []
    classes: set[str] = set()
    empty: list[Path] = []
    ignored: list[Path] = []
    for split, folder in groups:
        for child in _children(folder):
            if not child.is_dir():
                ignored.append(child)
                continue
            if split is None and child in split_dirs.values():
                continue
            files = _image_files(child)
            if not files:
                empty.append(child)
                continue
            classes.add(child.name)
            samples += [Sample(image=f, label=child.name, split=split, root=root) for f in files]
            ignored += [p for p in _children(child) if not (p.is_file() and is_image_file(p))]
    if split_dirs:
        ignored += [p for p in _children(root) if p not in split_dirs.values()]
    # Empty folders are real classes only if some split has images for that name; an
    # empty folder no split fills is listed in ``empty_folders``, not counted as a class
    # (else ``Positive/`` + an empty ``Negative/`` would look like a two-class set).
    return DatasetIndex(
        root=root,
        layout=LayoutKind.CLASS_FOLDERS,
        samples=samples,
        classes=sorted(classes),
        empty_folders=empty,
        ignored=ignored,
    )


def index_dataset(
    root: str | Path,
    *,
    layout: LayoutKind | str | None = None,
    mask_dir: str | None = None,
) -> DatasetIndex:
    """Walk ``root`` and return its samples.

    ``layout`` forces a layout instead of detecting it; ``mask_dir`` names the mask
    folder when a set has several (``car_scratch`` has ``masks`` and ``masks_binary``).
    Raises :class:`LayoutError` for a missing or empty folder or one with no images.
    """
    root = Path(root)
    if not root.exists():
        raise LayoutError(f"{root}: folder not found")
    if not root.is_dir():
        raise LayoutError(f"{root}: is a file, expected a data set folder")
    kind = LayoutKind(layout) if layout is not None else None
    images_dir = _find_dir(root, IMAGE_DIR_NAMES)
    masks_dir = _find_dir(root, MASK_DIR_NAMES, mask_dir)
    if kind is None:
        kind = LayoutKind.IMAGE_MASK_PAIRS if images_dir and masks_dir else LayoutKind.CLASS_FOLDERS
    if kind is LayoutKind.IMAGE_MASK_PAIRS:
        if images_dir is None or masks_dir is None:
            raise LayoutError(f"{root}: an image/mask layout needs both images/ and masks/ folders")
        index = _index_pairs(root, images_dir, masks_dir)
    else:
        index = _index_class_folders(root)
    if not index.samples and not index.unmatched_images and not index.empty_folders:
        raise LayoutError(
            f"{root}: no images found. Expected class folders (ROOT/<class>/*.jpg, optionally "
            "ROOT/<split>/<class>/) or image/mask pairs (ROOT/images/ + ROOT/masks/)"
        )
    return index
