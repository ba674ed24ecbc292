"""Class names as data sets spell them, mapped onto crackscan's own.

Özgenel calls its classes ``Positive``/``Negative``, others ``crack``/``no_crack``,
``cracked``/``uncracked`` or ``1``/``0``. Training, evaluation and the service all decide
which folder is "crack" here, case-insensitively.
"""

from __future__ import annotations

CRACK = "crack"
NO_CRACK = "no_crack"
# Compared after lower-casing and turning "-" and " " into "_". A model's own class
# names always win over these synonyms (see evaluation.classification).
_CRACK_NAMES = frozenset(
    {"crack", "cracks", "cracked", "positive", "positives", "pos", "1", "defect", "defective", "damage", "scratch"}
)
_NO_CRACK_NAMES = frozenset(
    {
        "no_crack",
        "no_cracks",
        "nocrack",
        "non_crack",
        "noncrack",
        "not_crack",
        "uncracked",
        "negative",
        "negatives",
        "neg",
        "0",
        "intact",
        "sound",
        "no_defect",
        "background",
        "normal",
    }
)


def normal_class_name(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def canonical_class(name: str) -> str:
    """``crack`` / ``no_crack`` for a recognised spelling, else the name itself (lower-cased)."""
    key = normal_class_name(name)
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
