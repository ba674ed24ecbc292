"""The folder an inspection report is written into: whose files are whose.

A report folder carries a ``.crackscan-inspect`` marker listing the files crackscan
wrote, so a rerun removes exactly those and nothing else; a folder holding other files
(or the input photos themselves) is refused. Output names are derived from photo stems
but never paths. Shared by the local engine and the Ray engine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

MARKER = ".crackscan-inspect"  # marks a folder crackscan wrote a report into (lists the files it wrote)


class InspectionError(ValueError):
    """Bad settings, no usable model, or an output folder crackscan must not write to."""


class OutputFolderError(InspectionError):
    """The output folder holds files crackscan did not write (use another folder or overwrite)."""


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def prepare_output_dir(out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Make ``out_dir`` ready for a report.

    A missing or empty folder is used as is. A folder holding an earlier crackscan
    report (its ``.crackscan-inspect`` marker) has that report's files removed — only
    the files the marker lists. Any other non-empty folder is refused with
    :class:`OutputFolderError` unless ``overwrite`` (then files are written over, none
    deleted).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"{out}: exists and is a file; give a folder for the report")
    if out.is_dir() and any(out.iterdir()):
        if (out / MARKER).is_file():
            for rel in marker_files(out):
                target = out / str(rel)
                # Only plain files inside the folder that the earlier run wrote.
                if _inside(target, out) and target.is_file() and not target.is_symlink():
                    target.unlink()
        elif not overwrite:
            raise OutputFolderError(
                f"{out}: folder exists and holds other files; choose a new --out folder, "
                "or pass --overwrite to write into it anyway"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out


def marker_files(out: Path) -> list[str]:
    """The files an earlier crackscan report in ``out`` wrote (empty without a marker)."""
    marker = out / MARKER
    if not marker.is_file():
        return []
    try:
        files = json.loads(marker.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [str(f) for f in files if isinstance(f, str)]


def exclude_own_outputs(files: Sequence[Path], out: Path) -> list[Path]:
    """Drop an earlier report's own files from the inputs; refuse photos that live in ``out``.

    ``crackscan inspect photos/ --out photos/report`` run twice finds the first run's
    overlays under ``photos/``: they are not photos. Any other input inside ``out``
    would be deleted or overwritten by the report, so that is an error.
    """
    if not out.exists():
        return list(files)
    previous = set(marker_files(out))
    kept = []
    for f in files:
        if _inside(f, out):
            rel = f.resolve().relative_to(out.resolve()).as_posix()
            if rel in previous:
                continue
            raise OutputFolderError(f"{out}: holds input photos (e.g. {f}); write the report to a folder of its own")
        kept.append(f)
    return kept


def safe_name(text: str) -> str:
    """A file-name stem made of letters, digits, ``-``, ``_`` and ``.`` only (never hidden, never empty)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).lstrip(".") or "image"


def unique_names(files: Sequence[Path]) -> list[str]:
    """Output file stems: the photo's stem (unsafe characters → _), with -2, -3 … when taken."""
    taken: set[str] = set()
    names = []
    for f in files:
        stem = safe_name(f.stem)
        name, k = stem, 1
        while name.lower() in taken:  # case-insensitive file systems would merge A.png and a.png
            k += 1
            name = f"{stem}-{k}"
        taken.add(name.lower())
        names.append(name)
    return names


def write_marker(out: Path, files: Sequence[str]) -> None:
    doc = {"written_by": "crackscan inspect", "files": sorted(set(files))}
    (out / MARKER).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
