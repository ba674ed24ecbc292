"""Which samples of a data set an evaluation uses: ``--split test|val|train|all|FILE``.

One rule set for classification and segmentation evaluation, so both commands accept
the same ``--split`` / ``--split-file`` options and explain a bad choice the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from crackscan.data.layouts import SPLIT_NAMES, DatasetIndex, Sample


def pick_split(
    index: DatasetIndex,
    data: str | os.PathLike[str],
    split: str,
    split_file: str | os.PathLike[str] | None,
    *,
    error: type[Exception],
    unit: str = "images",
) -> tuple[list[Sample], str]:
    """The samples of ``index`` named by ``split`` and a description of where they came from.

    ``split``: ``all`` (every sample), ``test``/``val``/``train`` (from ``split_file``
    when given, else the layout's own split folders), or the path of a split file (its
    test split). Problems raise ``error`` with a message that says what to do; ``unit``
    names the samples in messages ("images", "image/mask pairs").
    """
    from crackscan.data.split import select_split  # lazy: only split-file users pay for it

    name = split.strip()
    if name.lower() == "all":
        if split_file is not None:
            raise error(f"--split all uses every one of the {unit} under DATA; drop --split-file or name a split")
        samples, desc = list(index.samples), f"all {unit}"
    elif name.lower() in SPLIT_NAMES:
        which = SPLIT_NAMES[name.lower()]
        if split_file is not None:
            samples, desc = select_split(index, split_file, which), f"{which} split of {split_file}"
        elif index.splits:
            samples = [s for s in index.samples if s.split == which]
            if not samples:
                raise error(
                    f"{data} has split folders ({', '.join(sorted(index.splits))}) but no {which!r} one; "
                    "pick one of those, pass --split-file FILE, or --split all"
                )
            desc = f"{which} split folder"
        else:
            raise error(
                f"{data} has no split folders, so --split {which} needs a split file: make one with "
                f"`crackscan data split {data} --out split.json` and pass --split-file split.json, "
                f"or evaluate on all {unit} with --split all"
            )
    elif Path(name).is_file():
        if split_file is not None:
            raise error("give the split file once: either --split FILE or --split-file FILE")
        samples, desc = select_split(index, name, "test"), f"test split of {name}"
    else:
        raise error(f"--split {name!r}: expected test, val, train, all or an existing split file")
    if not samples:
        raise error(f"the {desc} holds no {unit}")
    return samples, desc
