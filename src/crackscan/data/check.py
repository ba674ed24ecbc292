"""``crackscan data check``: what a data set holds and what in it is broken.

Every image is hashed (exact duplicates), fingerprinted (near duplicates: re-encoded,
resized, turned or mirrored copies, :mod:`crackscan.data.similar`), decoded in full through
:mod:`crackscan.imageio` (a header check misses a truncated JPEG tail) and measured
after EXIF orientation; every mask is decoded (kind, crack-pixel fraction, size). Bad
files become entries of the report, never exceptions: the only error raised is
:class:`~crackscan.data.layouts.LayoutError` when the folder is no data set at all.

The per-file helpers here (:func:`inspect_image`, :func:`inspect_mask`,
:func:`map_files`) are shared with ``fix`` and ``split``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from crackscan.data.layouts import DatasetIndex, LayoutError, LayoutKind, Sample, index_dataset
from crackscan.data.similar import DEFAULT_SIMILARITY, ORIENTATIONS, fingerprint, link_groups, similar_pairs
from crackscan.imageio import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    MaskKind,
    is_image_file,
    read_image,
    read_mask,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
T = TypeVar("T")
R = TypeVar("R")

# Layout name used when images sit directly in ROOT, with neither class folders nor masks:
# still worth checking for broken files, but not usable for training.
UNLABELLED = "unlabelled_images"

# Pillow (decode), hashlib and file reads release the GIL, so threads give real speed-up.
# More than a few threads only adds memory for big photos.
DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))


# --------------------------------------------------------------------------- per file


@dataclass(frozen=True)
class ImageFacts:
    """What checking one image file found; ``error`` is set when it is unreadable."""

    path: Path
    sha1: str | None = None
    width: int | None = None
    height: int | None = None
    error: str | None = None
    # Texture fingerprint for the near-duplicate search (crackscan.data.similar); None when flat or not decoded.
    fingerprint: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width is not None and self.height is not None else None


@dataclass(frozen=True)
class MaskFacts:
    """What checking one mask file found; ``error`` is set when it is unreadable."""

    path: Path
    kind: str | None = None
    width: int | None = None
    height: int | None = None
    fraction: float | None = None  # foreground (crack) pixels / all pixels
    labels_sha1: str | None = None  # hash of the decoded labels: compares masks across encodings
    error: str | None = None

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width is not None and self.height is not None else None

    @property
    def has_crack(self) -> bool:
        return bool(self.fraction)


def inspect_image(path: Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, decode: bool = True) -> ImageFacts:
    """Hash an image file and decode it fully; never raises for bad data.

    The bytes are read once and both hashed and decoded from memory. ``decode=False``
    only hashes (used by ``split``, which leaves validation to ``check``).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        return ImageFacts(path=path, error=f"cannot read file ({exc.strerror or exc})")
    if not data:
        return ImageFacts(path=path, error="empty file (0 bytes)")
    sha1 = hashlib.sha1(data).hexdigest()
    if not decode:
        return ImageFacts(path=path, sha1=sha1)
    try:
        rgb = read_image(data, max_pixels=max_pixels)
    except ImageReadError as exc:
        return ImageFacts(path=path, sha1=sha1, error=exc.reason)
    except Exception as exc:  # a decoder bug must not stop a scan of thousands of files
        log.debug("unexpected error reading %s", path, exc_info=True)
        return ImageFacts(path=path, sha1=sha1, error=f"unreadable ({type(exc).__name__}: {exc})")
    h, w = rgb.shape[:2]
    return ImageFacts(path=path, sha1=sha1, width=int(w), height=int(h), fingerprint=fingerprint(rgb))


def inspect_mask(path: Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> MaskFacts:
    """Decode a mask file fully and summarise it; never raises for bad data."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return MaskFacts(path=path, error=f"cannot read file ({exc.strerror or exc})")
    if not data:
        return MaskFacts(path=path, error="empty file (0 bytes)")
    try:
        mask = read_mask(data, max_pixels=max_pixels)
    except ImageReadError as exc:
        return MaskFacts(path=path, error=exc.reason)
    except Exception as exc:  # see inspect_image
        log.debug("unexpected error reading mask %s", path, exc_info=True)
        return MaskFacts(path=path, error=f"unreadable ({type(exc).__name__}: {exc})")
    labels = mask.labels
    h, w = labels.shape[:2]
    digest = hashlib.sha1(f"{h}x{w}:".encode())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return MaskFacts(
        path=path,
        kind=str(mask.kind),
        width=int(w),
        height=int(h),
        fraction=mask.foreground_fraction,
        labels_sha1=digest.hexdigest(),
    )


def map_files(
    func: Callable[[T], R],
    items: Iterable[T],
    *,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    done_before: int = 0,
    total: int | None = None,
) -> Iterator[R]:
    """``map(func, items)`` on a small thread pool, in order, reporting progress.

    ``done_before``/``total`` let several passes share one progress bar.
    """
    items = list(items)
    total = total if total is not None else done_before + len(items)
    n_workers = workers or DEFAULT_WORKERS
    if progress is not None:
        progress(done_before, total)
    if n_workers <= 1 or len(items) <= 1:
        for i, item in enumerate(items, 1):
            yield func(item)
            if progress is not None:
                progress(done_before + i, total)
        return
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="crackscan-data") as pool:
        # pool.map submits everything up front; results are small, so that is fine.
        for i, result in enumerate(pool.map(func, items), 1):
            yield result
            if progress is not None:
                progress(done_before + i, total)


# ----------------------------------------------------------------------------- report


@dataclass
class CheckReport:
    """Everything ``crackscan data check`` found; :meth:`to_dict` is the JSON report."""

    root: Path
    layout: str
    n_images: int = 0
    n_masks: int = 0
    n_pairs: int = 0
    n_usable: int = 0  # samples whose files all read, match in size and carry a label
    classes: dict[str, int] = field(default_factory=dict)
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    image_sizes: dict[str, int] = field(default_factory=dict)
    corrupt: list[dict[str, str]] = field(default_factory=list)
    unmatched_images: list[str] = field(default_factory=list)
    unmatched_masks: list[str] = field(default_factory=list)
    size_mismatches: list[dict[str, str]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)
    similarity: float | None = DEFAULT_SIMILARITY  # near-duplicate threshold; None: not searched
    mask_kinds: dict[str, int] = field(default_factory=dict)
    crack_pixel_fraction: dict[str, float] | None = None
    empty_folders: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def usable(self) -> bool:
        """True when nothing needs fixing (warnings are allowed)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "layout": self.layout,
            "n_images": self.n_images,
            "n_masks": self.n_masks,
            "n_pairs": self.n_pairs,
            "n_usable": self.n_usable,
            "classes": dict(self.classes),
            "splits": {k: dict(v) for k, v in self.splits.items()},
            "image_sizes": dict(self.image_sizes),
            "corrupt": [dict(c) for c in self.corrupt],
            "unmatched_images": list(self.unmatched_images),
            "unmatched_masks": list(self.unmatched_masks),
            "size_mismatches": [dict(m) for m in self.size_mismatches],
            "duplicates": [dict(d) for d in self.duplicates],
            "near_duplicates": [dict(d) for d in self.near_duplicates],
            "similarity": self.similarity,
            "mask_kinds": dict(self.mask_kinds),
            "crack_pixel_fraction": dict(self.crack_pixel_fraction) if self.crack_pixel_fraction else None,
            "empty_folders": list(self.empty_folders),
            "ignored": list(self.ignored),
            "warnings": list(self.warnings),
            "problems": list(self.problems),
            "usable": self.usable,
            "seconds": round(self.seconds, 2),
        }


def _size_str(size: tuple[int, int] | None) -> str:
    return f"{size[0]}x{size[1]}" if size else "?"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _unlabelled_index(root: Path) -> DatasetIndex | None:
    """Images directly in ROOT (no class folders, no masks): checkable, not trainable."""
    try:
        files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError:
        return None
    images = [p for p in files if is_image_file(p)]
    if not images:
        return None
    return DatasetIndex(
        root=root,
        layout=LayoutKind.CLASS_FOLDERS,
        samples=[Sample(image=p, root=root) for p in images],
        ignored=[p for p in files if not is_image_file(p)],
    )


def group_duplicates(
    facts: Iterable[ImageFacts],
) -> dict[str, list[Path]]:
    """Readable images grouped by content hash, only groups with more than one file."""
    groups: dict[str, list[Path]] = {}
    for f in facts:
        if f.sha1 is not None and f.error is None:
            groups.setdefault(f.sha1, []).append(f.path)
    return {h: sorted(paths) for h, paths in sorted(groups.items()) if len(paths) > 1}


def check_dataset(
    root: str | Path,
    *,
    mask_dir: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    similarity: float | None = DEFAULT_SIMILARITY,
) -> CheckReport:
    """Check every file of the data set at ``root`` and return a :class:`CheckReport`.

    ``similarity``: the fingerprint similarity from which two different files count as
    near duplicates (:mod:`crackscan.data.similar`); None skips that search.

    Raises :class:`LayoutError` only when ``root`` is no data set (missing, a file, or
    without images); broken files are reported, never raised.
    """
    started = time.perf_counter()
    root = Path(root)
    layout_name: str
    try:
        index = index_dataset(root, mask_dir=mask_dir)
        layout_name = str(index.layout)
    except LayoutError:
        # A plain folder of photos is still worth scanning for broken files.
        flat = _unlabelled_index(root) if root.is_dir() and mask_dir is None else None
        if flat is None:
            raise
        index, layout_name = flat, UNLABELLED
    pairs = index.layout is LayoutKind.IMAGE_MASK_PAIRS and layout_name != UNLABELLED
    rel = index.relative

    image_paths = [s.image for s in index.samples] + list(index.unmatched_images)
    mask_paths = [s.mask for s in index.samples if s.mask is not None] + list(index.unmatched_masks)
    total = len(image_paths) + len(mask_paths)

    def do_image(p: Path) -> ImageFacts:
        return inspect_image(p, max_pixels=max_pixels)

    def do_mask(p: Path) -> MaskFacts:
        return inspect_mask(p, max_pixels=max_pixels)

    img_facts = {f.path: f for f in map_files(do_image, image_paths, progress=progress, workers=workers, total=total)}
    mask_facts = {
        f.path: f
        for f in map_files(
            do_mask, mask_paths, progress=progress, workers=workers, done_before=len(image_paths), total=total
        )
    }

    report = CheckReport(root=root, layout=layout_name, similarity=similarity)
    report.n_images = len(image_paths)
    report.n_masks = len(mask_paths) if pairs else 0
    report.n_pairs = len(index.samples) if pairs else 0
    report.unmatched_images = [rel(p) for p in index.unmatched_images]
    report.unmatched_masks = [rel(p) for p in index.unmatched_masks]
    report.empty_folders = [rel(p) for p in index.empty_folders]
    report.ignored = [rel(p) for p in index.ignored]
    report.corrupt = [
        {"path": rel(f.path), "reason": f.error}
        for f in [*img_facts.values(), *mask_facts.values()]
        if f.error is not None
    ]
    report.image_sizes = dict(
        Counter(_size_str(f.size) for f in img_facts.values() if f.size is not None).most_common()
    )

    # Per-sample: usable? size mismatch? crack or not (for split counts)?
    usable_samples: list[Sample] = []
    for s in index.samples:
        fi = img_facts[s.image]
        fm = mask_facts.get(s.mask) if s.mask is not None else None
        if fi.error is not None or (fm is not None and fm.error is not None):
            continue
        if fm is not None and fi.size != fm.size:
            report.size_mismatches.append(
                {
                    "image": rel(s.image),
                    "mask": rel(fm.path),
                    "image_size": _size_str(fi.size),
                    "mask_size": _size_str(fm.size),
                }
            )
            continue
        if layout_name == UNLABELLED:
            continue
        usable_samples.append(s)
    report.n_usable = len(usable_samples)

    # Class and split counts describe the files the layout found (what a user sees on
    # disk); n_usable says how many survive.
    if index.layout is LayoutKind.CLASS_FOLDERS and layout_name != UNLABELLED:
        report.classes = index.class_counts
    split_names = sorted({s.split for s in index.samples if s.split})
    for name in split_names:
        members = [s for s in index.samples if s.split == name]
        info: dict[str, Any] = {"n": len(members)}
        if pairs:
            facts = [mask_facts.get(s.mask) for s in members if s.mask is not None]
            info["with_crack"] = sum(1 for f in facts if f is not None and f.error is None and f.has_crack)
            info["no_crack"] = sum(1 for f in facts if f is not None and f.error is None and not f.has_crack)
        else:
            info["classes"] = dict(sorted(Counter(s.label for s in members if s.label).items()))
        report.splits[name] = info

    readable_masks = [f for f in mask_facts.values() if f.error is None]
    report.mask_kinds = dict(sorted(Counter(f.kind for f in readable_masks if f.kind).items()))
    paired_masks = [mask_facts[s.mask] for s in usable_samples if s.mask is not None]
    fractions = [f.fraction for f in paired_masks if f.fraction is not None]
    if fractions:
        report.crack_pixel_fraction = {
            "mean": float(np.mean(fractions)),
            "min": float(np.min(fractions)),
            "max": float(np.max(fractions)),
        }

    _find_duplicates(report, index, img_facts, mask_facts)
    if similarity is not None:
        _find_near_duplicates(report, index, img_facts, similarity)
    _judge(report, index, layout_name, pairs, paired_masks)
    report.seconds = time.perf_counter() - started
    log.info("checked %s: %d files in %.1f s", root, total, report.seconds)
    return report


def _label_and_split_of(samples: list[Sample | None], entry: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The classes and splits a group of copies sits in, also written into its report ``entry``."""
    labels = sorted({s.label for s in samples if s is not None and s.label is not None})
    splits = sorted({s.split for s in samples if s is not None and s.split is not None})
    if labels:
        entry["classes"] = labels
    if splits:
        entry["splits"] = splits
    return labels, splits


def _find_duplicates(
    report: CheckReport,
    index: DatasetIndex,
    img_facts: dict[Path, ImageFacts],
    mask_facts: dict[Path, MaskFacts],
) -> None:
    by_image = {s.image: s for s in index.samples}
    rel = index.relative
    for sha1, paths in group_duplicates(img_facts.values()).items():
        samples = [by_image.get(p) for p in paths]
        mask_hashes = {
            mask_facts[s.mask].labels_sha1
            for s in samples
            if s is not None and s.mask is not None and mask_facts[s.mask].error is None
        }
        entry: dict[str, Any] = {"sha1": sha1, "paths": [rel(p) for p in paths]}
        labels, splits = _label_and_split_of(samples, entry)
        notes: list[str] = []
        if len(labels) > 1:
            notes.append("conflicting classes: " + ", ".join(labels))
        if len(mask_hashes) > 1:
            notes.append("conflicting masks: the copies are labelled differently")
        if len(splits) > 1:
            notes.append("leakage across splits: " + ", ".join(splits))
        entry["problem"] = bool(notes)
        if not notes:
            where = f"class {labels[0]}" if labels else "one folder"
            if splits:
                where += f", split {splits[0]}"
            notes.append(f"within {where}")
        entry["note"] = "; ".join(notes)
        report.duplicates.append(entry)


def _find_near_duplicates(
    report: CheckReport, index: DatasetIndex, img_facts: dict[Path, ImageFacts], similarity: float
) -> None:
    """Groups of different files (by content hash) whose fingerprints link them."""
    by_image = {s.image: s for s in index.samples}
    facts = [f for f in img_facts.values() if f.error is None and f.fingerprint is not None]
    pairs = similar_pairs([f.fingerprint for f in facts], similarity)
    groups = link_groups(len(facts), pairs)
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    weakest = [1.0] * len(groups)  # the lowest similarity of a link that made the group
    turns: list[set[str]] = [set() for _ in groups]  # how copies in the group were turned or mirrored
    for pair in pairs:
        g = group_of[pair.i]
        weakest[g] = min(weakest[g], pair.similarity)
        if pair.orientation:
            turns[g].add(ORIENTATIONS[pair.orientation])
    for g, group in enumerate(groups):
        members = [facts[i] for i in group]
        if len({f.sha1 for f in members}) < 2:
            continue  # byte-for-byte copies only: listed with the exact duplicates
        score = weakest[g]
        samples = [by_image.get(f.path) for f in members]
        entry: dict[str, Any] = {
            "paths": sorted(index.relative(f.path) for f in members),
            "similarity": round(score, 4),
            "orientation": ", ".join(sorted(turns[g])) or ORIENTATIONS[0],
        }
        labels, splits = _label_and_split_of(samples, entry)
        notes: list[str] = []
        # Only a test copy of a training image is a problem; differing classes may be two
        # crops of one wall, one with the crack and one without, so they are a warning.
        if len(splits) > 1:
            notes.append("leakage across splits: " + ", ".join(splits))
        entry["problem"] = bool(notes)
        if len(labels) > 1:
            notes.append("different classes: " + ", ".join(labels))
        entry["note"] = "; ".join(notes) or "within " + (f"class {labels[0]}" if labels else "one folder")
        report.near_duplicates.append(entry)


def _judge(
    report: CheckReport,
    index: DatasetIndex,
    layout_name: str,
    pairs: bool,
    paired_masks: list[MaskFacts],
) -> None:
    """Sort what was found into problems (exit 1) and warnings (exit 0)."""
    problems, warnings = report.problems, report.warnings
    if report.corrupt:
        problems.append(_plural(len(report.corrupt), "corrupt file"))
    if report.unmatched_images:
        problems.append(_plural(len(report.unmatched_images), "image") + " without a mask")
    if report.unmatched_masks:
        problems.append(_plural(len(report.unmatched_masks), "mask") + " without an image")
    if report.size_mismatches:
        problems.append(_plural(len(report.size_mismatches), "image/mask size mismatch", "image/mask size mismatches"))
    bad_dups = [d for d in report.duplicates if d["problem"]]
    if bad_dups:
        problems.append(_plural(len(bad_dups), "duplicate group") + " with conflicting labels or across splits")
    leaking = [d for d in report.near_duplicates if d["problem"]]
    if leaking:
        problems.append(_plural(len(leaking), "near-duplicate group") + " across splits (leakage)")
    if layout_name == UNLABELLED:
        problems.append(
            "no labels: images sit directly in the folder; expected class folders "
            "(ROOT/<class>/*.jpg) or image/mask pairs (ROOT/images/ + ROOT/masks/)"
        )
    elif index.layout is LayoutKind.CLASS_FOLDERS:
        filled = [c for c, n in report.classes.items() if n > 0]
        if len(filled) < 2:
            problems.append(
                f"only {_plural(len(filled), 'class', 'classes')} with images "
                f"({', '.join(filled) or 'none'}): classification needs at least 2"
            )
    if report.n_usable == 0 and layout_name != UNLABELLED:
        problems.append("no usable samples")

    soft_dups = len(report.duplicates) - len(bad_dups)
    if soft_dups:
        warnings.append(
            _plural(soft_dups, "group")
            + " of exact duplicates within one class/split (split keeps each group together)"
        )
    soft_near = len(report.near_duplicates) - len(leaking)
    if soft_near:
        warnings.append(
            _plural(soft_near, "group")
            + f" of near duplicates (fingerprint similarity ≥ {report.similarity}) within one class/split: "
            "split keeps each group together"
        )
    for folder in report.empty_folders:
        name = Path(folder).name
        if name in report.classes:
            warnings.append(f"empty class folder {folder} (other splits have {name} images)")
        else:
            warnings.append(f"empty folder {folder} ignored (no split has {name} images)")
    if len(report.image_sizes) > 1:
        warnings.append(f"mixed image sizes ({len(report.image_sizes)} different): training resizes or crops them")
    if pairs:
        empty = sum(1 for f in paired_masks if f.kind == MaskKind.EMPTY)
        if empty:
            warnings.append(_plural(empty, "mask") + " with no crack pixels (normal for crack-free images)")
        kinds = set(report.mask_kinds) - {str(MaskKind.EMPTY)}
        if str(MaskKind.MULTICLASS) in kinds and len(kinds) > 1:
            warnings.append(
                "index (multi-class) masks mixed with binary ones: masks with values {0,1} are read as "
                "binary; check that this set is meant to be multi-class"
            )
