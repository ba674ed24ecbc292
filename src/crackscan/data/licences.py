"""The licence a data set comes under, as far as crackscan can tell: a licence file in its folder, else what its
source states for the public sets the bundled models were trained on (docs/data.md). Recorded in every model
trained here and shown by ``crackscan models``: DeepCrack's terms (research and education only) travel with a
model trained on it."""

from __future__ import annotations

import re
from pathlib import Path

KNOWN_LICENCES = {
    "deepcrack": "non-commercial research and education only",
    "crack500": "AFL-3.0 (source repo)",
    "crackmix": "none stated",
    "car_scratch": "MIT",
    "car_damage": "none stated",
    "ozgenel": "CC BY 4.0",
}


# licence names as their texts state them (the first line of a licence file is often the project's title)
_NAMED = (
    (re.compile(r"\bMIT License\b|Permission is hereby granted, free of charge", re.I), "MIT"),
    (re.compile(r"Apache License,?\s+Version 2\.0", re.I), "Apache-2.0"),
    (re.compile(r"\bBSD\b", re.I), "BSD"),
    (re.compile(r"GNU GENERAL PUBLIC LICENSE", re.I), "GPL"),
    (re.compile(r"Attribution-NonCommercial|\bCC[ -]BY-NC\b", re.I), "CC BY-NC"),
    (re.compile(r"Creative Commons Attribution|\bCC[ -]BY\b", re.I), "CC BY"),
)


def licence_of(root: Path) -> str:
    """The licence ``root``'s licence file names ("MIT (SOURCE_LICENSE)"), else that file's first line, else the
    known licence of a set of that name, else "unknown"."""
    for pattern in ("SOURCE_LICENSE*", "LICENSE*", "LICENCE*"):
        for f in sorted(root.glob(pattern)):
            if f.is_file():
                text = f.read_text(errors="replace")
                named = next((name for rule, name in _NAMED if rule.search(text)), None)
                if named:
                    return f"{named} ({f.name})"
                first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
                return f"{f.name}: {first[:120]}"
    return KNOWN_LICENCES.get(root.name.lower(), "unknown")
