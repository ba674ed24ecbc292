"""Path arguments for batch runs: ``@FILE`` names a list file with one photo path per line.

Lists are how large jobs are handed over (a few hundred thousand paths do not fit on a
command line, and a scheduler or a database query writes them easily). Used by
``crackscan inspect`` for both engines. This module imports neither Ray nor torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

LIST_PREFIX = "@"
COMMENT = "#"


class PathListError(ValueError):
    """An ``@FILE`` argument whose list file cannot be read."""


def read_path_list(path: str | os.PathLike[str]) -> list[str]:
    """The paths in a list file: one per line, surrounding blanks stripped.

    Blank lines and lines starting with ``#`` are skipped. Relative paths stay relative
    (to the current folder, as with ``xargs``). Raises :class:`PathListError` when the
    file is missing or not UTF-8 text.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PathListError(f"{p}: list file not found (@FILE names a file with one path per line)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PathListError(f"{p}: cannot read the list file ({exc})") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith(COMMENT)]


def expand_path_lists(args: Iterable[str]) -> list[str]:
    """Replace each ``@FILE`` argument by the paths listed in FILE; other arguments stay as given.

    An argument that starts with ``@`` but names an existing file or folder itself (a
    photo called ``@wall.jpg``) is kept as a path.
    """
    expanded: list[str] = []
    for arg in args:
        if arg.startswith(LIST_PREFIX) and len(arg) > 1 and not os.path.exists(arg):
            expanded += read_path_list(arg[len(LIST_PREFIX) :])
        else:
            expanded.append(arg)
    return expanded
