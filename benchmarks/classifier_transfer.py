"""How a crack classifier trained on Özgenel's patches does on surfaces and cameras it never saw.

Özgenel's shared split says little about unseen images: its 900 test patches come from the
same photos as the training patches, and every candidate model makes 0–3 errors there. This
cuts the held-out test images of the segmentation sets (DeepCrack, CRACK500, crackmix — none
used to train a classifier) into the 227-px patch grid ``inspect --gate`` uses and labels each
patch from its mask:

* **crack** — at least ``--min-crack`` of the patch's pixels are annotated crack (0.4 % is
  a 1-px crack across a third of the patch; the thin cracks Özgenel-trained models miss);
* **no crack** — no annotated crack pixel within ``--margin`` px of the patch;
* patches in between are left out (a crack tip at the border is neither).

For each classifier it reports recall on crack patches (also on the thinnest third of them,
ranked by crack pixels per patch), the share of crack-free patches called crack, and balanced
accuracy, at the model's stored threshold. The figures rank models on transfer, not Özgenel:
pavement and asphalt cracks are not the walls the classifier learnt.

    .venv/bin/python benchmarks/classifier_transfer.py --models crack-cls,runs/compare-s5-96/crackscan_lite0_s5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from coarse_gate import DEFAULT_DATA, test_images  # the same held-out images as the other benchmarks

from crackscan.imageio import read_image, read_mask
from crackscan.runtime.predictor import load_predictor, resolve_model_path
from crackscan.runtime.tiling import classify_patches


def label_patches(truth: np.ndarray, boxes: np.ndarray, min_crack: float, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Per patch: 1 crack, 0 no crack, -1 left out; and the crack-pixel share of each patch."""
    h, w = truth.shape
    flat = boxes.reshape(-1, 4)
    labels = np.full(len(flat), -1, dtype=np.int64)
    share = np.zeros(len(flat))
    for i, (y0, x0, y1, x1) in enumerate(flat):
        share[i] = truth[y0:y1, x0:x1].mean()
        near = truth[max(0, y0 - margin) : min(h, y1 + margin), max(0, x0 - margin) : min(w, x1 + margin)]
        if share[i] >= min_crack:
            labels[i] = 1
        elif not near.any():
            labels[i] = 0
    return labels, share


def collect(data: Path, sets: list[str], models: dict[str, object], min_crack: float, margin: int) -> dict:
    """Crack probabilities of every labelled patch, per set and model."""
    out: dict[str, dict] = {}
    for name in sets:
        labels_all, share_all = [], []
        probs_all: dict[str, list[np.ndarray]] = {m: [] for m in models}
        for image_path, mask_path in test_images(data, name):
            image = read_image(image_path)
            truth = read_mask(mask_path).labels > 0
            grids = {m: classify_patches(p, image, batch_size=64) for m, p in models.items()}
            first = next(iter(grids.values()))
            labels, share = label_patches(truth, first.boxes, min_crack, margin)
            keep = labels >= 0
            labels_all.append(labels[keep])
            share_all.append(share[keep])
            for m, grid in grids.items():
                probs_all[m].append(grid.probabilities.reshape(-1)[keep])
        out[name] = {
            "labels": np.concatenate(labels_all),
            "share": np.concatenate(share_all),
            "probs": {m: np.concatenate(v) for m, v in probs_all.items()},
        }
    return out


def scores(labels: np.ndarray, share: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, float]:
    called = probs >= threshold
    pos, neg = labels == 1, labels == 0
    thin = pos & (share <= np.quantile(share[pos], 1 / 3)) if pos.any() else pos
    recall = float(called[pos].mean()) if pos.any() else float("nan")
    false_alarms = float(called[neg].mean()) if neg.any() else float("nan")
    return {
        "n_crack": int(pos.sum()),
        "n_no_crack": int(neg.sum()),
        "recall": recall,
        "recall_thin_third": float(called[thin].mean()) if thin.any() else float("nan"),
        "false_alarm_rate": false_alarms,
        "balanced_accuracy": (recall + 1 - false_alarms) / 2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="crack-cls", help="comma-separated model files, run folders or names")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sets", default="deepcrack,crack500,crackmix")
    parser.add_argument("--min-crack", type=float, default=0.004, help="crack-pixel share of a crack patch")
    parser.add_argument("--margin", type=int, default=16, help="px around a no-crack patch that must be crack-free")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    models = {m: load_predictor(resolve_model_path(m)) for m in args.models.split(",")}
    collected = collect(args.data, args.sets.split(","), models, args.min_crack, args.margin)
    rows = []
    print(
        "| model | input | set | crack patches | no-crack patches | recall | recall, thinnest third "
        "| false alarms | balanced accuracy |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, c in collected.items():
        for m, predictor in models.items():
            meta = predictor.metadata
            s = scores(c["labels"], c["share"], c["probs"][m], meta.threshold)
            rows.append({"model": m, "input_size": meta.input_size, "set": name, **s})
            print(
                f"| {m} | {meta.input_size} px | {name} | {s['n_crack']} | {s['n_no_crack']} "
                f"| {100 * s['recall']:.1f} % "
                f"| {100 * s['recall_thin_third']:.1f} % | {100 * s['false_alarm_rate']:.1f} % "
                f"| {100 * s['balanced_accuracy']:.1f} % |"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
