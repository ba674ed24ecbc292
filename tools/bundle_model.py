"""Copy a trained model into the package as a bundled model, with its model card.

    python tools/bundle_model.py runs/crack-cls/model.onnx --name crack-cls \
        --eval ozgenel-test=runs/crack-cls/eval_test.json --notes docs/cards/crack-cls.notes.md

The card is written from the model's own metadata (architecture, input size, training
data, command, validation metrics) plus the evaluation JSON files given with ``--eval``
(each ``label=path`` from ``crackscan evaluate --json``) and free-text notes
(limitations, licences) from ``--notes``. The ONNX file must stay ≤ 10 MB.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crackscan.data.heldout import without_digests
from crackscan.runtime.predictor import BUNDLED_DIR, METADATA_KEY, OnnxPredictor

DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"

MAX_BYTES = 10 * 1000 * 1000
CLASSIFY_KEYS = ("n", "accuracy", "precision", "recall", "f1", "roc_auc", "threshold")
SEGMENT_KEYS = ("n", "iou", "dice", "precision", "recall", "ods_f1", "ois_f1", "cldice", "threshold")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def card(name: str, onnx_path: Path, evals: dict[str, dict], notes: str) -> str:
    meta = OnnxPredictor(onnx_path).metadata
    extra = meta.extra
    size_mb = onnx_path.stat().st_size / 1e6
    lines = [
        f"# {name}",
        "",
        f"Bundled crackscan model: `crackscan predict {name} …` / `crackscan inspect --model {name} …`.",
        "",
        "| field | value |",
        "|---|---|",
        f"| task | {meta.task} |",
        f"| architecture | {meta.arch}{(' / encoder ' + extra['encoder']) if extra.get('encoder') else ''} |",
        f"| input | {meta.input_size} px, RGB, mean {list(meta.mean)}, std {list(meta.std)} |",
        f"| classes | {', '.join(meta.class_names)} (crack class: {meta.class_names[meta.crack_class]}) |",
        f"| threshold | {meta.threshold:.3f} |",
        *([f"| TTA threshold | {extra['tta_threshold']:.3f} (`--tta` runs) |"] if "tta_threshold" in extra else []),
        f"| precision | {meta.precision} (weights; computation in float32 unless int8) |",
        f"| file | `{name}.onnx`, {size_mb:.2f} MB, crackscan {meta.crackscan_version} |",
        f"| weights | {extra.get('weights', 'see training command')} |",
        "",
        "## Training",
        "",
        f"Command: `{extra.get('command', '?')}`",
        "",
        "Training data (as recorded in the model):",
        "",
        "```json",
        json.dumps(without_digests(extra.get("training_data", {})), indent=2, default=str)[:4000],
        "```",
        "",
    ]
    if extra.get("ensemble"):
        lines += [
            "Members (the file computes the mean of their probabilities; `crackscan export A+B`):",
            "",
            "| member | design | threshold | precision | sha256 of the member file | training command |",
            "|---|---|---|---|---|---|",
        ]
        for m in extra["ensemble"]:
            lines.append(
                f"| `{m.get('file')}` | {m.get('arch')} / {m.get('encoder')} | {m.get('threshold')} | "
                f"{m.get('precision')} | `{str(m.get('sha256'))[:16]}…` | `{m.get('command')}` |"
            )
        lines.append("")
    if extra.get("train_seconds"):
        lines += [f"Training time: {extra['train_seconds']:.0f} s on 2 CPU cores.", ""]
    if extra.get("metrics"):
        lines += [
            "Validation metrics recorded at training time:",
            "",
            "```json",
            json.dumps(extra["metrics"], indent=2, default=str),
            "```",
            "",
        ]
    if extra.get("val_by_source"):
        lines += ["Validation per data set, at the stored threshold:", "", "| set | images | IoU | Dice | ODS F1 |"]
        lines += ["|---|---|---|---|---|"]
        for name, part in extra["val_by_source"].items():
            figures = " | ".join(f"{part[k]:.3f}" for k in ("iou", "dice", "ods_f1"))
            lines.append(f"| {name} | {part['n_images']:.0f} | {figures} |")
        lines.append("")
    if evals:
        keys = CLASSIFY_KEYS if meta.task == "classify" else SEGMENT_KEYS
        lines += [
            "## Evaluation (`crackscan evaluate … --json`)",
            "",
            "| data | " + " | ".join(keys) + " |",
            "|---" * (len(keys) + 1) + "|",
        ]
        for label, result in evals.items():
            lines.append(f"| {label} | " + " | ".join(_fmt(result.get(k, "")) for k in keys) + " |")
        lines.append("")
    if notes:
        lines += [notes.strip(), ""]
    return "\n".join(lines)


def portable_copy(src: Path, dst: Path, data_root: Path) -> None:
    """Copy ``src`` to ``dst`` with this machine's data paths in the metadata made relative.

    Training records absolute paths (``/work/shared/data/ozgenel``); a shipped model should
    name its data sets, not the build machine's folders.
    """
    import onnx

    proto = onnx.load(str(src))
    prefixes = {str(data_root.resolve()) + "/", str(data_root.resolve())}
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            for prefix in sorted(prefixes, key=len, reverse=True):
                prop.value = prop.value.replace(prefix, "")
    onnx.save(proto, str(dst))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--eval", action="append", default=[], help="label=path to an evaluate --json file")
    parser.add_argument("--notes", type=Path)
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT, help="made relative in the metadata")
    args = parser.parse_args()
    if args.model.stat().st_size > MAX_BYTES:
        raise SystemExit(f"{args.model} is {args.model.stat().st_size / 1e6:.1f} MB: bundled models must be ≤ 10 MB")
    evals = {}
    for item in args.eval:
        label, _, path = item.partition("=")
        evals[label] = json.loads(Path(path).read_text())
    notes = args.notes.read_text() if args.notes else ""
    BUNDLED_DIR.mkdir(parents=True, exist_ok=True)
    target = BUNDLED_DIR / f"{args.name}.onnx"
    portable_copy(args.model, target, args.data_root)
    (BUNDLED_DIR / f"{args.name}.md").write_text(card(args.name, target, evals, notes))
    print(f"bundled {target} ({target.stat().st_size / 1e6:.2f} MB) with {target.with_suffix('.md')}")


if __name__ == "__main__":
    main()
