"""Record the content digests of a bundled model's test images in its metadata, from its split files.

Models trained since session 16 record a digest of every test image they kept out, and
``train … --weights MODEL`` refuses a split that would train on any of them, whatever its
name or set. The bundled ``crack-cls``, ``crack-seg`` and ``crack-seg-unet`` predate that;
their splits are kept in ``benchmarks/splits/seed0`` (each reproduces the model's recorded
test figures exactly, docs/data.md). This writes the digests of those test images into the
model's ``training_data`` (per source for a segmenter, as training does) and notes where
they came from. Only the metadata changes; the graph and weights are copied as they are.

    python tools/record_test_digests.py crack-seg-unet crack-seg crack-cls [--check]

``--check`` fails when a model's recorded digests differ from its split files' (or are missing).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import onnx

from crackscan.data.heldout import held_out_digests
from crackscan.data.split import read_split
from crackscan.runtime.predictor import METADATA_KEY, ModelMetadata, resolve_model_path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SPLITS = ROOT / "benchmarks" / "splits" / "seed0"
NOTE = "added in session 18 from benchmarks/splits/seed0 (splits that reproduce the recorded test figures)"


def test_digests(name: str, data: Path) -> list[str]:
    plan = read_split(SPLITS / f"{name}.json")
    return held_out_digests(data / name / key for key in plan.splits["test"])


def digested(meta: ModelMetadata, data: Path) -> dict:
    """The model's ``training_data`` with the test digests of every source its split files cover."""
    training = dict(meta.extra.get("training_data", {}))
    if "sources" in training:  # a segmenter: one entry per set
        sources = []
        for source in training["sources"]:
            source = dict(source)
            source["test_digests"] = test_digests(str(source["name"]), data)
            source["test_digests_source"] = NOTE
            sources.append(source)
        training["sources"] = sources
    else:  # a classifier trained on one set
        training["test_digests"] = test_digests(Path(str(training["root"])).name, data)
        training["test_digests_source"] = NOTE
    return training


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="bundled model names or .onnx files")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    stale = []
    for model in args.models:
        path = resolve_model_path(model)
        proto = onnx.load(str(path))
        entry = next(p for p in proto.metadata_props if p.key == METADATA_KEY)
        meta = ModelMetadata.from_json(entry.value)
        training = digested(meta, args.data)
        if args.check:
            if training != meta.extra.get("training_data"):
                stale.append(str(path))
            continue
        meta.extra["training_data"] = training
        entry.value = meta.to_json()
        tmp = path.with_name(path.name + ".tmp")
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
        n = sum(len(s.get("test_digests", [])) for s in training.get("sources", [training]))
        print(f"{path}: {n} test digests recorded")
    if stale:
        print("digests missing or different from benchmarks/splits/seed0: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
