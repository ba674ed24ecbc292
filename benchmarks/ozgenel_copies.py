"""Does a classifier's Özgenel test figure lean on test patches with a copy in training?

The bundled crack-cls was trained on the seed-0 split made before the near-duplicate
search (exact duplicates kept together only): ``make_split(similarity=None)`` rebuilds it
(its test accuracy reproduces the card's). This finds the test patches with a near copy —
re-encoded, turned or mirrored — in that split's training part, and scores the model on
the whole test split, on the test split without them, and on them alone.

    .venv/bin/python benchmarks/ozgenel_copies.py [--model crack-cls] [--data ../shared/data/ozgenel]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from crackscan.data.check import inspect_image, map_files
from crackscan.data.similar import similar_pairs
from crackscan.data.split import make_split, write_split

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ozgenel"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="crack-cls")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    plan = make_split(args.data, seed=args.seed, similarity=None)
    where = {k: part for part, keys in plan.splits.items() for k in keys}
    keys = list(where)
    facts = list(map_files(inspect_image, [args.data / k for k in keys]))
    copied = set()
    for pair in similar_pairs([f.fingerprint for f in facts]):
        a, b = keys[pair.i], keys[pair.j]
        if {where[a], where[b]} == {"train", "test"}:
            copied.add(a if where[a] == "test" else b)
    test = plan.splits["test"]
    parts = {"whole test split": test, "without copies": [k for k in test if k not in copied], "copies": sorted(copied)}
    print(f"{len(copied)} of {len(test)} test patches have a near copy in training")
    with tempfile.TemporaryDirectory() as tmp:
        for name, chosen in parts.items():
            split = Path(tmp) / "split.json"
            report = Path(tmp) / "eval.json"
            write_split(dataclasses.replace(plan, splits={**plan.splits, "test": chosen}), split)
            cli = str(Path(sys.executable).with_name("crackscan"))  # the one installed beside this Python
            cmd = [cli, "evaluate", args.model, str(args.data), "--split", str(split), "--json", str(report)]
            subprocess.run(cmd, check=True, capture_output=True)
            r = json.loads(report.read_text())
            print(f"{name}: n {r['n']}, accuracy {r['accuracy']:.4f}, F1 {r['f1']:.4f}")


if __name__ == "__main__":
    main()
