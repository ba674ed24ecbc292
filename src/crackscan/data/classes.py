"""Class names as data sets spell them, mapped onto crackscan's own.

Özgenel calls its classes ``Positive``/``Negative``, others ``crack``/``no_crack``,
``cracked``/``uncracked`` or ``1``/``0``. Training, evaluation and the service all decide
which folder is "crack" here, case-insensitively.
"""

from __future__ import annotations

CRACK = "crack"
NO_CRACK = "no_crack"
_CRACK_NAMES = {"crack", "cracks", "cracked", "positive", "pos", "1", "defect", "damage", "damaged", "scratch"}
_NO_CRACK_NAMES = {
    "no_crack",
    "nocrack",
    "no-crack",
    "non_crack",
    "noncrack",
    "non-crack",
    "uncracked",
    "negative",
    "neg",
    "0",
    "intact",
    "background",
    "normal",
}


def canonical_class(name: str) -> str:
    """``crack`` / ``no_crack`` for a recognised spelling, else the name itself (lower-cased)."""
    key = name.strip().lower()
    if key in _CRACK_NAMES:
        return CRACK
    if key in _NO_CRACK_NAMES:
        return NO_CRACK
    return key


def model_class_names(folder_names: list[str]) -> list[str]:
    """Class list a new model is trained with: ``[no_crack, crack]`` for a crack set."""
    canon = sorted({canonical_class(n) for n in folder_names})
    if set(canon) == {CRACK, NO_CRACK}:
        return [NO_CRACK, CRACK]
    return canon


def crack_index(class_names: list[str]) -> int:
    """Index of the class reported as "crack" (the last class when none is recognised)."""
    for i, name in enumerate(class_names):
        if canonical_class(name) == CRACK:
            return i
    return len(class_names) - 1
