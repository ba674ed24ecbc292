"""Turn what a user typed (files, folders, globs) into a sorted list of image files."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from crackscan.imageio import IMAGE_EXTENSIONS, is_image_file

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class FileProblem:
    """A path that was asked for but could not be used, and a short reason why."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _hidden(path: Path, base: Path) -> bool:
    # Hidden files and folders (.DS_Store, macOS "._IMG_1.jpg" resource forks, .git) are
    # never photos, even when their extension says so.
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        parts = (path.name,)
    return any(part.startswith(".") for part in parts)


def _walk(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and is_image_file(p) and not _hidden(p, folder)]


def collect_images(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[FileProblem]]:
    """Expand files, folders (recursively) and glob patterns into image files.

    Only extensions :func:`crackscan.imageio.is_image_file` accepts are kept (nothing is
    decoded here). Returns ``(files, problems)``: files sorted by path and deduplicated
    (the same file reached twice, e.g. by a folder and a glob, counts once); problems
    name each argument that yielded nothing — missing paths, a named non-image file, an
    image-less folder, a glob without matches.
    """
    found: list[Path] = []
    problems: list[FileProblem] = []
    for raw in paths:
        text = os.fspath(raw)
        path = Path(text)
        if path.is_dir():
            files = _walk(path)
            if not files:
                problems.append(FileProblem(text, "folder holds no image files"))
            found += files
        elif path.is_file():
            if is_image_file(path):
                found.append(path)
            else:
                exts = ", ".join(sorted(IMAGE_EXTENSIONS))
                problems.append(
                    FileProblem(text, f"not an image file (extension {path.suffix or 'none'}; expected {exts})")
                )
        elif _GLOB_CHARS & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            files = []
            for m in map(Path, matches):
                if m.is_dir():
                    files += _walk(m)
                elif m.is_file() and is_image_file(m):
                    files.append(m)
            if not matches:
                problems.append(FileProblem(text, "no files match this pattern"))
            elif not files:
                problems.append(FileProblem(text, "pattern matches no image files"))
            found += files
        else:
            problems.append(FileProblem(text, "no such file or folder"))
    seen: set[str] = set()
    unique: list[Path] = []
    for p in sorted(found, key=lambda p: p.as_posix()):
        # realpath: "data/a.jpg", "./data/a.jpg" and a symlink to it are one file
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            unique.append(p)
    return unique, problems
