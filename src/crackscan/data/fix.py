"""``crackscan data fix``: a normalised, cleaned copy of a data set.

What DST holds, in the same layout as SRC (splits, class folders, ``images``/``masks``):

* every image decoded by :func:`crackscan.imageio.read_image` (EXIF orientation
  applied, any mode → RGB uint8) and **always re-encoded**: JPEG sources as JPEG
  quality 95 (suffix kept when it is a JPEG one), every other format as PNG
  (lossless). Re-encoding everything, instead of copying unchanged files byte for
  byte, means every file in DST went through the one reader and carries no EXIF tag,
  at the cost of a small, one-off JPEG generation loss;
* masks as single-channel PNG: binary, noisy (JPEG) and empty masks as 0/255;
  multi-class (index) masks keep their index values;
* left out, and listed with the reason in ``DST/REPORT.json``: unreadable images or
  masks, images without a mask and masks without an image, image/mask size
  mismatches, exact duplicate images whose copies carry different labels (all copies:
  nobody knows which label is right), and copies of an image that also sits in a
  later official split (the test copy is kept, so the official test set stays whole
  and training never sees it) — exact copies and near duplicates (re-encoded, resized,
  turned or mirrored; :mod:`crackscan.data.similar`) alike. Duplicates within one class/split are kept.

SRC is only ever read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crackscan.data.check import ProgressCallback, map_files
from crackscan.data.layouts import MASK_DIR_NAMES, DatasetIndex, LayoutKind, Sample, index_dataset
from crackscan.data.similar import DEFAULT_SIMILARITY, fingerprint, link_groups, similar_pairs
from crackscan.imageio import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    MaskKind,
    probe,
    read_image,
    read_mask,
    write_image,
    write_mask,
)

log = logging.getLogger(__name__)

REPORT_NAME = "REPORT.json"
JPEG_QUALITY = 95
_JPEG_FORMATS = ("JPEG", "MPO")  # MPO: multi-picture JPEG from some phone cameras
# Where a duplicate is kept when its copies sit in several official splits.
_SPLIT_PRIORITY = {"test": 0, "val": 1, "train": 2}


class FixError(ValueError):
    """SRC/DST cannot be used for a fix (DST inside SRC, DST not empty, …)."""


@dataclass
class FixReport:
    """What ``fix_dataset`` wrote and what it left out (also saved as ``DST/REPORT.json``)."""

    n_written: int
    left_out: list[dict[str, str]]
    dst: Path
    src: Path | None = None
    layout: str = ""
    mask_kinds: dict[str, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    duplicates_kept: list[list[str]] = field(default_factory=list)
    copied_as_is: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "src": str(self.src) if self.src else None,
            "dst": str(self.dst),
            "layout": self.layout,
            "n_written": self.n_written,
            "image_policy": (
                f"decoded with EXIF orientation applied, converted to RGB; JPEG sources re-encoded as "
                f"JPEG quality {JPEG_QUALITY}, other formats as PNG"
            ),
            "mask_policy": "single-channel PNG: binary/noisy/empty masks as 0/255, multi-class as indices",
            "classes": dict(self.classes),
            "splits": dict(self.splits),
            "mask_kinds": dict(self.mask_kinds),
            "left_out": [dict(x) for x in self.left_out],
            "duplicates_kept": [list(g) for g in self.duplicates_kept],
            "copied_as_is": list(self.copied_as_is),
            "warnings": list(self.warnings),
        }


@dataclass
class _Job:
    sample: Sample
    image_out: Path
    mask_out: Path | None


@dataclass
class _Done:
    job: _Job
    error: str | None = None
    sha1: str | None = None
    labels_sha1: str | None = None
    mask_kind: str | None = None
    mask_values: tuple[int, ...] = ()
    fingerprint: np.ndarray | None = None  # near-duplicate search (crackscan.data.similar)


def check_destination(src: Path, dst: Path) -> None:
    """DST must be a new or empty folder outside SRC: nothing a command writes ever lands in (or over) the input."""
    src_r, dst_r = src.resolve(), dst.resolve()
    if dst_r == src_r or src_r in dst_r.parents:
        raise FixError(f"{dst}: DST must not be inside SRC ({src}); SRC is never modified")
    if dst.exists():
        if not dst.is_dir():
            raise FixError(f"{dst}: exists and is not a folder")
        if any(dst.iterdir()):
            raise FixError(f"{dst}: not empty; give a new or empty folder")


def _image_out_path(src_rel: Path, fmt: str | None) -> Path:
    if fmt in _JPEG_FORMATS:
        # Keep .jpg/.JPG/.jpeg so paths stay recognisable; fix a wrong suffix.
        return src_rel if src_rel.suffix.lower() in (".jpg", ".jpeg") else src_rel.with_suffix(".jpg")
    return src_rel.with_suffix(".png")


def _process(job: _Job, max_pixels: int) -> _Done:
    """Read, check and write one sample; returns what happened, never raises for bad data."""
    s = job.sample
    try:
        data = s.image.read_bytes()
        rgb = read_image(data, max_pixels=max_pixels)
    except ImageReadError as exc:
        return _Done(job, error=f"image: {exc.reason}")
    except OSError as exc:
        return _Done(job, error=f"image: cannot read file ({exc.strerror or exc})")
    except Exception as exc:  # a decoder bug must not stop the copy of thousands of files
        log.debug("unexpected error reading %s", s.image, exc_info=True)
        return _Done(job, error=f"image: unreadable ({type(exc).__name__}: {exc})")
    sha1 = hashlib.sha1(data).hexdigest()
    mask = None
    if s.mask is not None:
        try:
            mask = read_mask(s.mask.read_bytes(), max_pixels=max_pixels)
        except ImageReadError as exc:
            return _Done(job, error=f"mask: {exc.reason}", sha1=sha1)
        except OSError as exc:
            return _Done(job, error=f"mask: cannot read file ({exc.strerror or exc})", sha1=sha1)
        except Exception as exc:  # see above
            log.debug("unexpected error reading %s", s.mask, exc_info=True)
            return _Done(job, error=f"mask: unreadable ({type(exc).__name__}: {exc})", sha1=sha1)
        if mask.labels.shape[:2] != rgb.shape[:2]:
            ih, iw = rgb.shape[:2]
            mh, mw = mask.labels.shape[:2]
            return _Done(job, error=f"size mismatch: image {iw}x{ih}, mask {mw}x{mh}", sha1=sha1)
    write_image(job.image_out, rgb, quality=JPEG_QUALITY)
    texture = fingerprint(rgb)
    if mask is None or job.mask_out is None:
        return _Done(job, sha1=sha1, fingerprint=texture)
    write_mask(job.mask_out, mask.labels, binary=mask.kind is not MaskKind.MULTICLASS)
    labels_sha1 = hashlib.sha1(np.ascontiguousarray(mask.labels).tobytes()).hexdigest()
    return _Done(
        job,
        sha1=sha1,
        labels_sha1=labels_sha1,
        mask_kind=str(mask.kind),
        mask_values=mask.source_values,
        fingerprint=texture,
    )


def _plan_jobs(index: DatasetIndex, dst: Path, left_out: list[dict[str, str]]) -> tuple[list[_Job], str | None]:
    """Decide every output path up front, so name clashes are found deterministically."""
    rel = index.relative
    out_mask_dir: str | None = None
    src_mask_dir: Path | None = None
    if index.layout is LayoutKind.IMAGE_MASK_PAIRS and index.mask_dir is not None:
        src_mask_dir = index.root / index.mask_dir
        # An explicitly chosen folder like masks_binary/ becomes masks/ in DST, so that
        # DST is found without --mask-dir.
        out_mask_dir = index.mask_dir if index.mask_dir.lower() in MASK_DIR_NAMES else "masks"
    jobs: list[_Job] = []
    taken: dict[Path, str] = {}
    for s in index.samples:
        try:
            fmt = probe(s.image).format
        except Exception:
            fmt = None  # the real read in _process reports the reason
        image_out = dst / _image_out_path(Path(rel(s.image)), fmt)
        mask_out = None
        if s.mask is not None and src_mask_dir is not None and out_mask_dir is not None:
            mask_out = dst / out_mask_dir / s.mask.relative_to(src_mask_dir).with_suffix(".png")
        clash = next((taken[p] for p in (image_out, mask_out) if p is not None and p in taken), None)
        if clash is not None:
            left_out.append({"path": rel(s.image), "reason": f"name clash in DST with {clash}"})
            continue
        for p in (image_out, mask_out):
            if p is not None:
                taken[p] = rel(s.image)
        jobs.append(_Job(s, image_out, mask_out))
    return jobs, out_mask_dir


def _remove_outputs(done: _Done) -> None:
    for p in (done.job.image_out, done.job.mask_out):
        if p is not None and p.exists():
            p.unlink()


def _resolve_duplicates(
    written: list[_Done], index: DatasetIndex, left_out: list[dict[str, str]]
) -> tuple[list[_Done], list[list[str]]]:
    rel = index.relative
    groups: dict[str, list[_Done]] = {}
    for d in written:
        groups.setdefault(d.sha1 or "", []).append(d)
    drop: dict[int, str] = {}
    kept_groups: list[list[str]] = []
    for members in groups.values():
        if len(members) < 2:
            continue
        names = [rel(m.job.sample.image) for m in members]
        labels = {m.job.sample.label for m in members}
        masks = {m.labels_sha1 for m in members}
        splits = {m.job.sample.split for m in members}
        if len(labels) > 1 or len(masks) > 1:
            for m in members:
                others = ", ".join(n for n in names if n != rel(m.job.sample.image))
                drop[id(m)] = f"exact duplicate of {others} with a different label (conflicting labels)"
            continue
        if len(splits) > 1:
            best = min(splits, key=lambda x: _SPLIT_PRIORITY.get(x or "", 9))
            kept = [rel(m.job.sample.image) for m in members if m.job.sample.split == best]
            for m in members:
                if m.job.sample.split != best:
                    drop[id(m)] = (
                        f"exact duplicate of {', '.join(kept)} in split {best} (kept there only, to avoid leakage)"
                    )
            if len(kept) > 1:
                kept_groups.append(kept)
            continue
        kept_groups.append(names)
    _drop_near_copies_across_splits([d for d in written if id(d) not in drop], rel, drop)
    survivors = []
    for d in written:
        if id(d) in drop:
            _remove_outputs(d)
            entry = {"path": rel(d.job.sample.image), "reason": drop[id(d)]}
            if d.job.sample.mask is not None:
                entry["mask"] = rel(d.job.sample.mask)
            left_out.append(entry)
        else:
            survivors.append(d)
    return survivors, kept_groups


def _drop_near_copies_across_splits(written: list[_Done], rel: Callable[[Path], str], drop: dict[int, str]) -> None:
    """Near duplicates (re-encoded, resized, turned or mirrored) in several official splits: keep the test/val copy."""
    pairs = similar_pairs([d.fingerprint for d in written], DEFAULT_SIMILARITY)
    for group in link_groups(len(written), pairs):
        members = [written[i] for i in group]
        splits = {m.job.sample.split for m in members}
        if len(splits) < 2:
            continue
        best = min(splits, key=lambda x: _SPLIT_PRIORITY.get(x or "", 9))
        kept = ", ".join(rel(m.job.sample.image) for m in members if m.job.sample.split == best)
        for m in members:
            if m.job.sample.split != best:
                drop[id(m)] = f"near duplicate of {kept} in split {best} (kept there only, to avoid leakage)"


def _unify_index_masks(written: list[_Done], warnings: list[str], max_pixels: int) -> None:
    """In a multi-class set, rewrite {0,1} masks written as 0/255 back to index values.

    The reader calls a file holding only {0,1} binary (it cannot know the set); in a set
    of index masks, 1 is class 1 and must not become 255.
    """
    if not any(d.mask_kind == MaskKind.MULTICLASS for d in written):
        return
    odd = 0
    for d in written:
        if d.mask_kind != MaskKind.BINARY or d.job.mask_out is None or d.job.sample.mask is None:
            continue
        if set(d.mask_values) <= {0, 1}:
            mask = read_mask(d.job.sample.mask, max_pixels=max_pixels)
            write_mask(d.job.mask_out, mask.labels, binary=False)
        else:
            odd += 1
    if odd:
        warnings.append(
            f"{odd} binary masks (e.g. 0/255) in a set of index masks were written as 0/255: "
            "check which class they mean"
        )


def fix_dataset(
    src: str | Path,
    dst: str | Path,
    *,
    mask_dir: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> FixReport:
    """Write a normalised copy of the data set at ``src`` into the new folder ``dst``.

    Raises :class:`~crackscan.data.layouts.LayoutError` when ``src`` is no data set and
    :class:`FixError` when ``dst`` is inside ``src`` or not empty.
    """
    src, dst = Path(src), Path(dst)
    index = index_dataset(src, mask_dir=mask_dir)
    check_destination(src, dst)
    dst.mkdir(parents=True, exist_ok=True)
    rel = index.relative

    left_out: list[dict[str, str]] = []
    left_out += [{"path": rel(p), "reason": "image without a mask"} for p in index.unmatched_images]
    left_out += [{"path": rel(p), "reason": "mask without an image"} for p in index.unmatched_masks]
    jobs, _ = _plan_jobs(index, dst, left_out)

    done = list(map_files(lambda j: _process(j, max_pixels), jobs, progress=progress, workers=workers))
    written = []
    for d in done:
        if d.error is None:
            written.append(d)
            continue
        _remove_outputs(d)
        entry = {"path": rel(d.job.sample.image), "reason": d.error}
        if d.job.sample.mask is not None:
            entry["mask"] = rel(d.job.sample.mask)
        left_out.append(entry)

    written, kept_groups = _resolve_duplicates(written, index, left_out)
    warnings: list[str] = []
    _unify_index_masks(written, warnings, max_pixels)

    # An empty class folder that another split fills is part of the layout: keep it.
    for folder in index.empty_folders:
        if folder.name in index.classes:
            (dst / rel(folder)).mkdir(parents=True, exist_ok=True)
    copied: list[str] = []
    for p in index.ignored:
        # Licence/readme/manifest files at the top travel with the data.
        if p.parent == src and p.is_file() and p.name != REPORT_NAME:
            shutil.copy2(p, dst / p.name)
            copied.append(p.name)

    report = FixReport(
        n_written=len(written),
        left_out=sorted(left_out, key=lambda e: e["path"]),
        dst=dst,
        src=src,
        layout=str(index.layout),
        mask_kinds=dict(sorted(Counter(d.mask_kind for d in written if d.mask_kind).items())),
        classes=dict(sorted(Counter(d.job.sample.label for d in written if d.job.sample.label).items())),
        splits=dict(sorted(Counter(d.job.sample.split for d in written if d.job.sample.split).items())),
        duplicates_kept=kept_groups,
        copied_as_is=copied,
        warnings=warnings,
    )
    (dst / REPORT_NAME).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("fixed %s -> %s: %d written, %d left out", src, dst, report.n_written, len(report.left_out))
    return report
