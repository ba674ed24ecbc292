"""Rebuild the split files the bundled segmenters were trained with, and their clean variant.

The bundled ``crack-seg`` and ``crack-seg-unet`` were trained on ``crackscan data split``'s
seed-0 splits of crackmix, DeepCrack and CRACK500 as they were *before* the split grouped
near duplicates (session 16): exact duplicates only. ``make_split(seed=0)`` now keeps
turned and re-encoded copies together, which moves 28 of crackmix's 105 test images — so
a fresh seed-0 split scores those models partly on their own training images. This script
writes the original splits again (``make_split(seed=0, similarity=None)``; checked: the
crackmix test split reproduces ``crack-seg-unet``'s recorded crackmix IoU, 0.5099, exactly)
to ``benchmarks/splits/seed0/``, and a ``seed0-clean/`` variant for new training runs: the
same splits less the training and validation copies of test images that ``crackscan data
check`` names (``train`` refuses a split that trains on a near copy of a test image). The
test splits of both are identical.

``scratch-seg`` was trained the same way on ``car_scratch`` and ``car_damage`` after
``crackscan data fix`` (its card): both are fixed into a temporary folder and split again
(``seed0/car_*.json``, keys relative to the fixed folder; checked: they reproduce its held-out
IoUs 0.4667 and 0.4275). ``car_damage`` shows why: a grouped seed-0 split carves its test part
out of the official training photos instead of holding out the official val part.

``crack-cls`` was trained on Özgenel's seed-0 split of the same kind (``seed0/ozgenel.json``;
its test accuracy reproduces the card's, ``benchmarks/ozgenel_copies.py``).

    .venv/bin/python benchmarks/make_bundled_splits.py [--data ../shared/data] [--check]

``--check`` rebuilds in memory and fails when the committed files differ.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from crackscan.data.fix import fix_dataset
from crackscan.data.split import SplitPlan, make_split

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data"
OUT = HERE / "splits"
SETS = ("crackmix", "deepcrack", "crack500")
CAR_SETS = {"car_scratch": "masks_binary", "car_damage": None}  # set -> --mask-dir of scratch-seg's `data fix`

# Copies of test images in the other splits, as `crackscan data check` reports them
# (docs/data.md): key in train/val -> the test image it copies.
TEST_COPIES: dict[str, dict[str, str]] = {
    "deepcrack": {"images/train/11158.jpg": "images/test/11216.jpg"},
    "crack500": {
        "images/train/20160329_103609.jpg": "images/test/20160329_103609.jpg",
        "images/train/20160329_111111.jpg": "images/test/20160329_111111.jpg",
    },
    "crackmix": {
        "images/noncrack_noncrack_concrete_wall_73_1.jpg.jpg": "images/noncrack_noncrack_concrete_wall_73_4.jpg.jpg",
        "images/noncrack_noncrack_concrete_wall_73_2.jpg.jpg": "images/noncrack_noncrack_concrete_wall_73_4.jpg.jpg",
        "images/noncrack_noncrack_concrete_wall_75_0.jpg.jpg": "images/noncrack_noncrack_concrete_wall_75_24.jpg.jpg",
    },
}


def without_test_copies(plan: SplitPlan, copies: dict[str, str]) -> SplitPlan:
    """``plan`` less the train/val keys that copy a test image (listed as excluded, with the reason)."""
    test = set(plan.splits["test"])
    for key, original in copies.items():
        where = plan.split_of(key)
        if where is None or where == "test" or original not in test:
            raise SystemExit(f"{plan.root}: expected {key} in train/val and {original} in test (found {where})")
    splits = {name: [k for k in keys if k not in copies] for name, keys in plan.splits.items()}
    excluded = plan.excluded + [
        {"path": key, "reason": f"near copy of test image {original} (crackscan data check)"}
        for key, original in sorted(copies.items())
    ]
    counts = {name: dict(sorted(Counter(plan.strata[k] for k in keys).items())) for name, keys in splits.items()}
    return dataclasses.replace(
        plan,
        splits=splits,
        strata_counts=counts,
        strata={k: v for k, v in plan.strata.items() if k not in copies},
        excluded=sorted(excluded, key=lambda e: e["path"]),
    )


def _text(plan: SplitPlan, root: str) -> str:
    # The data folder is named relative to the repository so the files do not carry this machine's paths.
    raw = plan.to_dict()
    raw["root"] = root
    return json.dumps(raw, indent=2, ensure_ascii=False) + "\n"


def _plans(data: Path, tmp: Path) -> list[tuple[str, str, SplitPlan]]:
    """(folder, set, plan) for every file to write."""
    out = []
    for name in SETS:
        plan = make_split(data / name, seed=0, similarity=None)
        out.append(("seed0", name, plan))
        out.append(("seed0-clean", name, without_test_copies(plan, TEST_COPIES[name])))
    out.append(("seed0", "ozgenel", make_split(data / "ozgenel", seed=0, similarity=None)))
    for name, mask_dir in CAR_SETS.items():
        fix_dataset(data / name, tmp / name, mask_dir=mask_dir)
        out.append(("seed0", name, make_split(tmp / name, seed=0, similarity=None)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = ap.parse_args(argv)
    stale = []
    with tempfile.TemporaryDirectory() as tmp:
        plans = _plans(args.data, Path(tmp))
    for folder, name, plan in plans:
        path = OUT / folder / f"{name}.json"
        text = _text(plan, f"runs/data/{name}" if name in CAR_SETS else f"../shared/data/{name}")
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"{path}: {plan.counts}")
    if stale:
        print("differ from a rebuild: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
