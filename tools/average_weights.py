"""Average the weights of several trained models of one design (a "model soup", Wortsman et al. 2022).

    python tools/average_weights.py runs/a/model.pt runs/b/model.pt --out runs/soup/model.pt
    python tools/average_weights.py runs/a/model.pt runs/a/checkpoints/last.ckpt --out …   # two epochs of one run
    crackscan export runs/soup/model.pt          # → runs/soup/model.onnx, parity-checked

Soups work for models that share a starting point (one run and its fine-tunes, or runs
from the same initial weights); they need the same architecture, encoder and classes,
which is checked from each ``model.pt``'s metadata. Floating-point tensors are averaged
(BatchNorm running statistics included, an approximation); integer buffers such as
``num_batches_tracked`` come from the first model. The threshold is the mean of the
models' thresholds unless ``--threshold`` is given: recalibrate on validation data if it
matters (a threshold picked on the test split is not a result).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

# Metadata that must agree for an average to be one model.
SAME = ("task", "arch", "class_names", "crack_class", "input_size", "mean", "std")
SAME_EXTRA = ("encoder", "decoder_channels", "head_stride", "decoder_norm", "preprocess")


def _load(path: Path) -> dict:
    """``{"state_dict", "metadata"}`` of a ``model.pt``, or of a Lightning ``.ckpt`` (rebuilt with its run's
    metadata by crackscan's loader, so its keys are the network's, as in ``model.pt``)."""
    if path.suffix == ".ckpt":
        from crackscan.runtime.torch_backend import load_torch_model

        loaded = load_torch_model(path)
        return {"state_dict": loaded.model.state_dict(), "metadata": json.loads(loaded.metadata.to_json())}
    return torch.load(path, map_location="cpu", weights_only=True)


def average(paths: list[Path], threshold: float | None = None) -> dict:
    """The averaged ``{"state_dict", "metadata"}`` of ``paths`` (each a crackscan ``model.pt``)."""
    if len(paths) < 2:
        raise SystemExit("give two or more model.pt files")
    loaded = [_load(p) for p in paths]
    first_meta = loaded[0]["metadata"]
    for path, item in zip(paths[1:], loaded[1:], strict=True):
        meta = item["metadata"]
        for key in SAME:
            if meta.get(key) != first_meta.get(key):
                raise SystemExit(f"{path}: {key} {meta.get(key)!r} differs from {paths[0]}'s {first_meta.get(key)!r}")
        for key in SAME_EXTRA:
            if meta.get("extra", {}).get(key) != first_meta.get("extra", {}).get(key):
                raise SystemExit(f"{path}: extra.{key} differs from {paths[0]}'s")
        if item["state_dict"].keys() != loaded[0]["state_dict"].keys():
            raise SystemExit(f"{path}: its tensors do not match {paths[0]}'s")
    state = {}
    for key, first in loaded[0]["state_dict"].items():
        if first.is_floating_point():
            state[key] = torch.stack([item["state_dict"][key].float() for item in loaded]).mean(0).to(first.dtype)
        else:
            state[key] = first
    metadata = dict(first_meta)
    thresholds = [float(item["metadata"]["threshold"]) for item in loaded]
    metadata["threshold"] = round(sum(thresholds) / len(thresholds), 2) if threshold is None else threshold
    extra = dict(metadata.get("extra", {}))
    extra["soup_of"] = [str(p) for p in paths]
    for key in ("metrics", "val_by_source"):  # they described the first model, not the average
        extra.pop(key, None)
    metadata["extra"] = extra
    return {"state_dict": state, "metadata": metadata}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="model.pt (or a run's .ckpt) files of one design")
    parser.add_argument("--out", type=Path, required=True, help="where to write the averaged model.pt")
    parser.add_argument("--threshold", type=float, default=None, help="stored threshold (default: the mean)")
    args = parser.parse_args()
    if args.out.resolve() in {p.resolve() for p in args.models}:
        raise SystemExit("--out must not be one of the input models")
    soup = average(args.models, args.threshold)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(soup, args.out)
    print(f"wrote {args.out}: mean of {len(args.models)} models, threshold {soup['metadata']['threshold']}")


if __name__ == "__main__":
    main()
