"""Compare crack classifiers trained with one recipe on one split (issue #3's comparison table).

Each architecture trains with ``crackscan train classify`` settings — the same split file,
input size, epochs, frozen epochs, batch size, learning rate and seed — then its exported
``model.onnx`` is scored on the split's test part with ``crackscan evaluate``'s own code
(accuracy, precision, recall, F1 of the crack class, errors), and timed in ONNX Runtime on
decoded patches in memory (batch 256, 2 cores): the network's own speed, without JPEG decoding.

ImageNet weights: ``crackscan_lite0_s4`` and ``tf_efficientnet_lite0`` load the packaged
offline EfficientNet-Lite0 weights; the seeds' ``resnet18``, ``mobilenetv2_100`` and
``tf_efficientnetv2_b0`` need a hub download, so on a machine without internet list them in
``--scratch`` (random initialisation, no frozen epochs) — the table then says so.

    python benchmarks/compare_classifiers.py ../shared/data/ozgenel --split runs/crack-cls-s4-96b/split.json \\
        --img-size 64 --epochs 6 --scratch resnet18,mobilenetv2_100,tf_efficientnetv2_b0
    python benchmarks/compare_classifiers.py DATA --archs resnet18 --scratch resnet18 --limit-per-class 40 --epochs 1

Prints a Markdown table (for docs/benchmarks.md) and writes ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from crackscan.runtime.predictor import load_predictor
from crackscan.training.classify import ClassifyConfig, train_classifier

SEEDS = "resnet18,mobilenetv2_100,tf_efficientnetv2_b0"


def patches_per_second(model: Path, size: int, batch: int = 256, repeats: int = 4) -> float:
    """ONNX Runtime patches/s on decoded ``size``×``size`` uint8 patches (no JPEG decoding)."""
    predictor = load_predictor(model)
    x = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    predictor.crack_probability(x)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        predictor.crack_probability(x)
    return batch * repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="class-folder data set (e.g. ../shared/data/ozgenel)")
    parser.add_argument("--archs", default="crackscan_lite0_s4," + SEEDS)
    parser.add_argument("--scratch", default="", help="archs to train from random initialisation (no hub here)")
    parser.add_argument("--split", default=None, help="split file shared by every arch (default: a new seeded one)")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--freeze-epochs", type=int, default=2, help="for pretrained archs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--patience", type=int, default=100, help="early stopping patience (default: off)")
    parser.add_argument("--limit-per-class", type=int, default=None, help="smoke runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/compare-classifiers")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    out = Path(args.out)
    scratch = {a for a in args.scratch.split(",") if a}
    rows = []
    for arch in args.archs.split(","):
        pretrained = arch not in scratch
        cfg = ClassifyConfig(
            data=args.data,
            out=str(out / arch),
            split=args.split,
            arch=arch,
            img_size=args.img_size,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            freeze_epochs=args.freeze_epochs if pretrained else 0,
            pretrained=pretrained,
            patience=args.patience,
            seed=args.seed,
            limit_per_class=args.limit_per_class,
            accelerator="cpu",
            command=f"benchmarks/compare_classifiers.py {arch}",
        )
        result = train_classifier(cfg)
        test = _test_metrics(result.model_file, args.data, out / arch)
        rows.append(
            {
                "arch": arch,
                "weights": result.weights_message,
                "train_seconds": result.train_seconds,
                "val_accuracy": result.metrics.get("val_accuracy", float("nan")),
                **test,
                "onnx_mb": result.model_file.stat().st_size / 1e6,
                "patches_per_s": patches_per_second(result.model_file, args.img_size),
            }
        )
        (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")

    print(f"{args.data}, {args.img_size} px, {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}")
    print(
        "| arch | weights | test accuracy | precision | recall | F1 | errors | val accuracy "
        "| train s | ONNX MB | patches/s in memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['arch']} | {r['weights']} | {100 * r['accuracy']:.2f} % | {100 * r['precision']:.2f} | "
            f"{100 * r['recall']:.2f} | {100 * r['f1']:.2f} | {r['errors']} of {r['n']} | "
            f"{100 * r['val_accuracy']:.2f} % | {r['train_seconds']:.0f} | {r['onnx_mb']:.1f} | "
            f"{r['patches_per_s']:.0f} |"
        )


def _test_metrics(model: Path, data: str, run_dir: Path) -> dict[str, float]:
    """``crackscan evaluate MODEL DATA --split test`` with the run's own split file."""
    from crackscan.evaluation.classification import evaluate_classifier, select_samples

    evaluation = evaluate_classifier(
        load_predictor(model), select_samples(data, "test", run_dir / "split.json"), model_name=str(model)
    )
    m = evaluation.metrics()
    return {
        "accuracy": m["accuracy"],
        "precision": m["precision"],
        "recall": m["recall"],
        "f1": m["f1"],
        "n": evaluation.n,
        "errors": len(evaluation.misclassified()),
    }


if __name__ == "__main__":
    main()
