"""Distillation (`train segment --teacher`): teacher maps, the held-out check, joint crops and the loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")
pytest.importorskip("segmentation_models_pytorch")

from conftest import make_image, tree_hashes  # noqa: E402
from crackscan.cli import app  # noqa: E402
from crackscan.data.heldout import held_out_digests  # noqa: E402
from crackscan.data.synth import generate_dataset  # noqa: E402
from crackscan.training.distill import check_teacher_held_out, teacher_maps  # noqa: E402
from crackscan.training.run import TrainingDataError  # noqa: E402
from crackscan.training.segment import CropDataset, Decoded, SegmenterModule  # noqa: E402
from onnx_models import multiclass_segmentation_model, segmentation_model  # noqa: E402

runner = CliRunner()
ARGS = ["--crop", "64", "--epochs", "1", "--batch-size", "4", "--accelerator", "cpu", "--val-fraction", "0.25"]


def _expected(rgb: np.ndarray, a: float = -10.0, b: float = -5.0) -> np.ndarray:
    """What tests/onnx_models.segmentation_model gives: sigmoid(a · mean_c((x/255 − 0.5)/0.5) + b)."""
    grey = ((rgb.astype(np.float64) / 255.0 - 0.5) / 0.5).mean(axis=2)
    return 1.0 / (1.0 + np.exp(-(a * grey + b)))


def test_teacher_maps_are_the_teachers_probabilities_at_full_resolution(tmp_path: Path) -> None:
    teacher = segmentation_model(tmp_path / "teacher.onnx")
    multi = multiclass_segmentation_model(tmp_path / "multi.onnx")
    paths = [make_image(tmp_path / f"img{i}.png", size=size, seed=i) for i, size in enumerate([(70, 50), (64, 64)])]
    before = tree_hashes(tmp_path)
    shapes = [(50, 70), (64, 64)]
    seen: list[int] = []
    maps = teacher_maps(str(teacher), paths, shapes, tta=True, progress=seen.append)
    assert seen == [1, 2]
    for path, shape, got in zip(paths, shapes, maps, strict=True):
        assert got.dtype == np.uint8 and got.shape == shape
        want = _expected(np.asarray(Image.open(path).convert("RGB")))
        assert np.abs(got.astype(np.float64) / 255.0 - want).max() <= 1 / 255 + 1e-3
    with pytest.raises(TrainingDataError, match=r"teacher map of .* is"):
        teacher_maps(str(teacher), paths[:1], [(10, 10)])
    with pytest.raises(TrainingDataError, match="binary segmentation"):
        teacher_maps(str(multi), paths[:1], shapes[:1])
    assert tree_hashes(tmp_path) == before  # nothing written beside the images


def test_a_teacher_must_have_held_out_this_runs_test_images(tmp_path: Path) -> None:
    test_images = [make_image(tmp_path / f"test{i}.png", seed=10 + i) for i in range(3)]
    digests = held_out_digests(test_images)
    held = {"training_data": {"sources": [{"name": "walls", "test_digests": digests}]}}
    fair = segmentation_model(tmp_path / "fair.onnx", extra=held)
    assert check_teacher_held_out(str(fair), test_images) == []
    # held out only two of the three: it may have trained on the third
    partial = {"training_data": {"sources": [{"name": "walls", "test_digests": digests[:2]}]}}
    unfair = segmentation_model(tmp_path / "unfair.onnx", extra=partial)
    with pytest.raises(TrainingDataError, match="1 test image"):
        check_teacher_held_out(str(unfair), test_images)
    # an ensemble is checked member by member; a member without digests is a warning, not a pass
    blind = segmentation_model(tmp_path / "blind.onnx")
    (warning,) = check_teacher_held_out(f"{fair}+{blind}", test_images)
    assert "blind.onnx records no test-image digests" in warning
    with pytest.raises(TrainingDataError):
        check_teacher_held_out(f"{fair}+{unfair}", test_images)


def test_crops_carry_the_teacher_map_through_the_same_augmentation() -> None:
    from crackscan.training.augment import segmentation_train_transform

    rng = np.random.default_rng(0)
    decoded = Decoded()
    soft = []
    for i in range(3):
        mask = np.zeros((80, 60), np.uint8)
        mask[:, 20 + 5 * i : 24 + 5 * i] = 1
        mask[10 + i, :] = 1
        decoded.images.append(rng.integers(0, 255, (80, 60, 3), dtype=np.uint8))
        decoded.masks.append(mask)
        soft.append(np.where(mask > 0, 230, 20).astype(np.uint8))  # the teacher agrees with the mask
    transform = segmentation_train_transform()
    transform.set_random_seed(0)
    ds = CropDataset(decoded, 64, transform, (0.5,) * 3, (0.5,) * 3, length=24, soft=soft)
    for i in range(len(ds)):
        x, labels, target = ds[i]
        assert x.shape == (3, 64, 64) and labels.shape == target.shape == (64, 64)
        assert target.dtype == torch.float32
        # every augmentation moved both alike: where the mask says crack, the teacher does too
        assert torch.equal(labels > 0, target > 0.5)
        assert set(torch.unique(torch.round(target * 255)).tolist()) <= {20.0, 230.0}  # nearest, never blended
    plain = CropDataset(decoded, 64, transform, (0.5,) * 3, (0.5,) * 3, length=4)
    assert len(plain[0]) == 2  # without a teacher, batches stay (image, mask)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_the_loss_adds_the_weighted_soft_target_bce() -> None:
    model = torch.nn.Conv2d(3, 1, 1)
    loss = torch.nn.BCEWithLogitsLoss()
    x = torch.randn(2, 3, 8, 8)
    y = (torch.rand(2, 8, 8) > 0.7).long()
    soft = torch.rand(2, 8, 8)
    kwargs = {"classes": 1, "crack_class": 1, "lr": 1e-3, "scheduler": "onecycle", "epochs": 1, "steps_per_epoch": 1}

    class Hard(torch.nn.Module):
        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return loss(logits[:, 0], target.float())

    plain = SegmenterModule(model, Hard(), **kwargs)
    distilled = SegmenterModule(model, Hard(), distill_weight=2.0, **kwargs)
    hard = plain.training_step((x, y), 0)
    both = distilled.training_step((x, y, soft), 0)
    kd = torch.nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], soft)
    assert torch.allclose(both, hard + 2.0 * kd, atol=1e-6)


def test_train_segment_with_a_teacher_records_it_and_caches_its_maps(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_dataset(data, task="segment", n=8, size=64)
    base = ["train", "segment", str(data), *ARGS]
    teacher_run = tmp_path / "teacher"
    first = runner.invoke(app, [*base, "--out", str(teacher_run)])
    assert first.exit_code == 0, first.output
    before = tree_hashes(data)
    student = tmp_path / "student"
    args = [*base, "--out", str(student), "--teacher", str(teacher_run), "--teacher-tta", "--distill-weight", "1.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((student / "result.json").read_text())["distillation"]
    assert summary["teacher"] == str(teacher_run) and summary["teacher_tta"] and summary["weight"] == 1.5
    assert summary["warnings"] == [] and summary["teacher_seconds"] >= 0  # the teacher held out the same test split
    rows = list((student / "metrics.csv").read_text().splitlines())
    assert "train_distill_loss" in rows[0]
    with np.load(student / "teacher_maps.npz") as held:
        assert held["map0"].dtype == np.uint8 and held["map0"].shape == (64, 64)
    assert tree_hashes(data) == before
    # a teacher that is not a binary segmenter, or no model at all, is a clear error and trains nothing
    bad = runner.invoke(app, [*base, "--out", str(tmp_path / "bad"), "--teacher", str(tmp_path / "nope.onnx")])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
