"""``crackscan evaluate`` / ``predict`` with segmentation models, on synthetic pairs and torch-free ONNX models.

The models (tests/onnx_models.py) score darkness per pixel, so their output is known in
closed form: with ``x = 2·grey/255 - 1`` the crack probability is ``sigmoid(-10·x - 5)``;
the synthetic cracks are dark lines.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import make_truncated_jpeg
from crackscan.cli import app
from crackscan.data.synth import generate_dataset
from crackscan.evaluation import open_model
from crackscan.evaluation.segmentation import (
    PreprocessUnavailable,
    _tiled,
    evaluate_segmenter,
    segment_image,
    select_pairs,
)
from crackscan.imageio import read_image, read_mask
from crackscan.metrics.segmentation import PixelCounts, ToleranceCurve
from onnx_models import classification_model, multiclass_segmentation_model, segmentation_model

runner = CliRunner()
N = 6


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def text(result) -> str:  # type: ignore[no-untyped-def]
    """CLI output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def expected_prob(rgb: np.ndarray, a: float = -10.0, b: float = -5.0) -> np.ndarray:
    x = 2.0 * rgb.astype(np.float32).mean(axis=2) / 255.0 - 1.0
    return 1.0 / (1.0 + np.exp(-(a * x + b)))


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "set"
    generate_dataset(root, task="segment", n=N, size=64)
    return root


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return segmentation_model(tmp_path_factory.mktemp("models") / "seg.onnx")


def test_evaluate_cli_json_csv_and_plots(synth: Path, seg_model: Path, tmp_path: Path) -> None:
    report, out_dir = tmp_path / "m.json", tmp_path / "eval"
    result = invoke("evaluate", seg_model, synth, "--split", "all", "--json", report, "--out", out_dir)
    assert result.exit_code == 0, result.output
    r = json.loads(report.read_text())
    assert r["task"] == "segment" and r["n"] == N and r["threshold"] == 0.5 and r["tolerance_px"] == 2.0
    keys = ["iou", "dice", "precision", "recall", "ods_f1", "ods_threshold", "ois_f1", "cldice"]
    keys += [f"{m}_per_image_mean" for m in ("iou", "dice", "precision", "recall", "cldice")]
    for key in keys:
        assert r[key] is not None and 0.0 <= r[key] <= 1.0, key
    # the darkness model does find the synthetic cracks, and the tolerance only helps
    assert r["iou"] > 0.1 and r["ods_f1"] >= r["dice"] - 1e-9
    assert r["ois_f1"] >= r["ods_f1"] - 0.05
    assert len(r["pr_curve"]["thresholds"]) == 99
    assert "per_class_iou" not in r  # binary model
    with (out_dir / "per_image.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N
    assert list(rows[0]) == [
        "image",
        "iou",
        "dice",
        "precision",
        "recall",
        "cldice",
        "crack_fraction_true",
        "crack_fraction_pred",
    ]
    assert all(0 <= float(row[c]) <= 1 for row in rows for c in list(rows[0])[1:])
    assert np.mean([float(row["iou"]) for row in rows]) == pytest.approx(r["iou_per_image_mean"], abs=1e-5)
    for name in ("overlays.png", "pr_curve.png", "metrics.json"):
        assert (out_dir / name).stat().st_size > 0, name
    assert Image.open(out_dir / "overlays.png").size[0] > 100
    assert json.loads((out_dir / "metrics.json").read_text())["iou"] == r["iou"]


def test_library_matches_direct_metric_computation(synth: Path, seg_model: Path) -> None:
    predictor = open_model(seg_model)
    ev = evaluate_segmenter(predictor, select_pairs(synth, "all"))
    pixels, curve = PixelCounts(), ToleranceCurve()
    for img_path in sorted((synth / "images").iterdir()):
        rgb = read_image(img_path)
        truth = read_mask(synth / "masks" / f"{img_path.stem}.png").foreground
        prob = expected_prob(rgb)
        pixels.update(prob, truth, 0.5)
        curve.update(prob.astype(np.float32), truth)
    # a pixel right at the threshold may flip between ONNX's and numpy's float rounding
    assert ev.pixels.iou == pytest.approx(pixels.iou, abs=2e-3)
    assert ev.curve.ods_f1 == pytest.approx(curve.ods_f1, abs=2e-3)
    assert [s.image for s in ev.scores] == [f"images/synth_{i:05d}.jpg" for i in range(N)]
    worst, best = ev.examples()
    assert worst and worst[0].iou == min(s.iou for s in ev.scores)
    assert best[0].iou == max(s.iou for s in ev.scores) or len(ev.scores) <= 3


def test_padding_and_tiles_keep_full_resolution(seg_model: Path) -> None:
    predictor = open_model(seg_model)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)  # not multiples of 32
    probs = segment_image(predictor, rgb)
    assert probs.shape == (50, 70) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected_prob(rgb), atol=1e-5)
    # the tiled paths (runtime.tiling when present, else plain tiles) agree for a per-pixel model
    big = rng.integers(0, 256, (100, 130, 3), dtype=np.uint8)
    np.testing.assert_allclose(segment_image(predictor, big, tile_above=40), expected_prob(big), atol=1e-4)
    np.testing.assert_allclose(_tiled(predictor, big, 64), expected_prob(big), atol=1e-5)


def test_preprocessing_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = segmentation_model(tmp_path / "prep.onnx", extra={"preprocess": {"invert": True}})
    predictor = open_model(path)
    rgb = np.full((20, 20, 3), 230, np.uint8)
    # no preprocessing module: a clear error, only for models that ask for preprocessing
    monkeypatch.setitem(sys.modules, "crackscan.runtime.preprocess_seg", None)
    with pytest.raises(PreprocessUnavailable, match="asks for image preprocessing"):
        segment_image(predictor, rgb)
    plain = open_model(segmentation_model(tmp_path / "plain.onnx"))
    assert segment_image(plain, rgb).shape == (20, 20)
    # with the module, its function is applied to the whole image first
    fake = types.ModuleType("crackscan.runtime.preprocess_seg")
    seen: list[object] = []

    def preprocess_image(image: np.ndarray, spec: object) -> np.ndarray:
        seen.append(spec)
        return 255 - image

    fake.preprocess_image = preprocess_image  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "crackscan.runtime.preprocess_seg", fake)
    probs = segment_image(predictor, rgb)
    assert seen == [{"invert": True}]
    np.testing.assert_allclose(probs, expected_prob(255 - rgb), atol=1e-5)


def write_pair(root: Path, stem: str, rgb: np.ndarray, labels: np.ndarray, split: str | None = None) -> None:
    images = root / "images" / (split or "")
    masks = root / "masks" / (split or "")
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(images / f"{stem}.png")
    Image.fromarray(labels.astype(np.uint8), mode="L").save(masks / f"{stem}.png")


def test_empty_images_skipped_files_and_splits(seg_model: Path, tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    rgb = np.full((32, 32, 3), 200, np.uint8)
    rgb[10:12, 4:28] = 0
    labels = np.zeros((32, 32), np.uint8)
    labels[10:12, 4:28] = 255
    write_pair(root, "crack", rgb, labels, "test")
    write_pair(root, "clean", np.full((32, 32, 3), 200, np.uint8), np.zeros((32, 32)), "test")
    write_pair(root, "train_one", rgb, labels, "train")
    write_pair(root, "wrong_size", np.full((16, 16, 3), 200, np.uint8), np.zeros((32, 32)), "test")
    make_truncated_jpeg(root / "images" / "test" / "broken.jpg")
    Image.fromarray(np.zeros((64, 64), np.uint8), mode="L").save(root / "masks" / "test" / "broken.png")
    report = tmp_path / "r.json"
    result = invoke("evaluate", seg_model, root, "--json", report)  # default: the test split folder
    assert result.exit_code == 0, result.output
    r = json.loads(report.read_text())
    assert r["n"] == 2 and r["n_empty"] == 1 and r["split"] == "test split folder"
    # perfect on both: the crack found exactly, the clean image left empty (counts as 1.0)
    assert r["iou"] == 1.0 and r["iou_per_image_mean"] == 1.0 and r["cldice"] == 1.0
    assert r["iou_per_image_mean_nonempty"] == 1.0
    skipped = {s["path"]: s["reason"] for s in r["skipped_files"]}
    assert set(skipped) == {"images/test/broken.jpg", "images/test/wrong_size.png"}
    assert "but its image is 16×16" in skipped["images/test/wrong_size.png"]
    assert "wrong_size" in result.output

    flat = tmp_path / "flat"
    write_pair(flat, "a", rgb, labels)
    result = invoke("evaluate", seg_model, flat)
    assert result.exit_code == 1 and "--split all" in text(result)
    classes = tmp_path / "classes"
    (classes / "crack").mkdir(parents=True)
    Image.fromarray(rgb).save(classes / "crack" / "x.png")
    result = invoke("evaluate", seg_model, classes, "--split", "all")
    assert result.exit_code == 1 and "image/mask" in text(result)


def test_multiclass_model_reports_per_class_iou(tmp_path: Path) -> None:
    model = multiclass_segmentation_model(tmp_path / "mc.onnx")
    root = tmp_path / "mc"
    rgb = np.full((32, 32, 3), 128, np.uint8)  # mid grey: background wins
    labels = np.zeros((32, 32), np.uint8)
    rgb[4:6, :] = 0  # dark: crack (class 1)
    labels[4:6, :] = 1
    rgb[20:28, 20:28] = 255  # bright: class 2 ("light")
    labels[20:28, 20:28] = 2
    labels[30:, :] = 2  # truth says light, image is grey: missed
    write_pair(root, "one", rgb, labels)
    report = tmp_path / "mc.json"
    result = invoke("evaluate", model, root, "--split", "all", "--json", report)
    assert result.exit_code == 0, result.output
    r = json.loads(report.read_text())
    assert list(r["per_class_iou"]) == ["background", "crack", "light"]
    assert r["per_class_iou"]["crack"] == 1.0 and r["iou"] == 1.0
    assert r["per_class_iou"]["light"] == pytest.approx(64 / (64 + 64))
    bg = 32 * 32 - 64 - 128
    assert r["per_class_iou"]["background"] == pytest.approx(bg / (bg + 64))
    assert r["mean_iou"] == pytest.approx(np.mean(list(r["per_class_iou"].values())))
    assert "per-class IoU" in result.output


def test_predict_writes_masks_overlays_and_csv(synth: Path, seg_model: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "pred"
    broken = make_truncated_jpeg(tmp_path / "bad" / "broken.jpg")
    result = invoke("predict", seg_model, synth / "images", broken, "--out", out_dir)
    assert result.exit_code == 0, result.output
    with (out_dir / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N and "broken.jpg" in result.output
    predictor = open_model(seg_model)
    for row in rows:
        mask = np.asarray(Image.open(row["mask"]))
        assert mask.shape == (64, 64) and set(np.unique(mask).tolist()) <= {0, 255}
        assert Path(row["overlay"]).is_file() and Image.open(row["overlay"]).size == (64, 64)
        assert float(row["crack_fraction"]) == pytest.approx((mask > 0).mean(), abs=1e-6)
        expected = segment_image(predictor, read_image(row["path"])) >= 0.5
        assert np.array_equal(mask > 0, expected)
    assert sorted(p.name for p in (out_dir / "masks").iterdir()) == [f"synth_{i:05d}.png" for i in range(N)]
    # a segmentation model needs a folder
    assert invoke("predict", seg_model, synth / "images").exit_code == 2
    assert invoke("predict", seg_model, synth / "images", "--out", tmp_path / "p.csv").exit_code == 2


def test_classification_builder_still_goes_to_the_classifier(tmp_path: Path) -> None:
    model = classification_model(tmp_path / "cls.onnx")
    dark = tmp_path / "dark.png"
    Image.fromarray(np.full((32, 32, 3), 10, np.uint8)).save(dark)
    out = tmp_path / "p.csv"
    result = invoke("predict", model, dark, "--out", out)
    assert result.exit_code == 0, result.output
    assert "true" in out.read_text()


@pytest.mark.shared_data
def test_deepcrack_one_bit_masks_end_to_end(shared_data: Path, seg_model: Path, tmp_path: Path) -> None:
    src = shared_data / "deepcrack"
    root = tmp_path / "dc"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for img in sorted((src / "images" / "test").glob("*.jpg"))[:10]:
        (root / "images" / img.name).symlink_to(img)
        mask = src / "masks" / "test" / f"{img.stem}.png"
        (root / "masks" / mask.name).symlink_to(mask)
    report = tmp_path / "dc.json"
    result = invoke("evaluate", seg_model, root, "--split", "all", "--json", report, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    r = json.loads(report.read_text())
    assert r["n"] == 10 and not r["skipped_files"]
    for key in ("iou", "dice", "precision", "recall", "ods_f1", "ois_f1", "cldice"):
        assert 0.0 <= r[key] <= 1.0
    shutil.rmtree(root)


def test_tta_averages_the_image_and_its_flips(seg_model: Path, synth: Path, tmp_path: Path) -> None:
    class Ramp:
        """A 'model' whose probability is the column position: flips change it, so TTA shows."""

        metadata = SimpleNamespace(extra={"size_multiple": 32}, class_names=["background", "crack"])

        def probability_map(self, batch: np.ndarray) -> np.ndarray:
            n, h, w = batch.shape[:3]
            return np.broadcast_to(np.arange(w, dtype=np.float32) / w, (n, h, w)).copy()

    rgb = np.zeros((32, 64, 3), np.uint8)
    plain = segment_image(Ramp(), rgb)
    tta = segment_image(Ramp(), rgb, tta=True)
    x = np.arange(64, dtype=np.float32)
    np.testing.assert_allclose(plain[0], x / 64)
    np.testing.assert_allclose(tta[0], (x + x + (63 - x)) / (3 * 64), atol=1e-6)  # identity, h-flip, v-flip
    report = tmp_path / "m.json"
    result = invoke("evaluate", seg_model, synth, "--split", "all", "--tta", "--json", report)
    assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["tta"] is True
