"""Content digests of a model's held-out (test) images, so a later fine-tune can show it never trains on them.

A model file travels without its run folder, and a split file records paths, which say little once a set is
copied, renamed or merged into another. The bytes do: training records a short SHA-1 digest of every test image
it kept out (``training_data.test_digests`` for a classifier, per source for a segmenter), and
``train … --weights MODEL.onnx`` refuses a split whose training images have any of those digests, whatever
their names or set.

12 hex digits (48 bits) keep a 6,000-image test split at about 100 kB of metadata; the odds of a chance match
between 100,000 training images and 10,000 held-out ones are about 1 in 280,000.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

DIGEST_HEX = 12


def content_digest(path: str | Path) -> str:
    """The first :data:`DIGEST_HEX` hex digits of the SHA-1 of the file's bytes (the split's duplicate key)."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:DIGEST_HEX]


def _digests(paths: Iterable[str | Path]) -> list[str]:
    # hashlib and file reads release the GIL: threads read several files at once
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        return list(pool.map(content_digest, paths))


def held_out_digests(paths: Iterable[str | Path]) -> list[str]:
    """Sorted, unique digests of ``paths`` — what a model's metadata records for its test split."""
    return sorted(set(_digests(paths)))


def recorded_held_out(training_data: Mapping[str, Any]) -> set[str] | None:
    """Every held-out digest a model's ``training_data`` metadata records, or None when it records none
    (models trained before digests were kept): then only the split's description can be compared."""
    found: list[str] | None = None
    for part in (training_data, *training_data.get("sources", [])):
        if isinstance(part, Mapping) and isinstance(part.get("test_digests"), list):
            found = (found or []) + [str(d) for d in part["test_digests"]]
    return None if found is None else set(found)


def find_held_out(paths: Iterable[str | Path], digests: set[str]) -> list[Path]:
    """The ``paths`` whose content digest is one of ``digests`` (a fine-tune's leaked training images)."""
    paths = [Path(p) for p in paths]
    return [p for p, d in zip(paths, _digests(paths), strict=True) if d in digests]


def without_digests(value: Any) -> Any:
    """``value`` (metadata, nested) with each list of held-out digests replaced by how many there are: they are
    for ``train --weights`` to check, not for a reader (model cards, the service's /v1/models)."""
    if isinstance(value, Mapping):
        return {
            k: (f"{len(v)} content digests" if k == "test_digests" and isinstance(v, list) else without_digests(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [without_digests(v) for v in value]
    return value
