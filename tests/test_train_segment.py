"""Segmentation models, losses and `crackscan train segment` on tiny data made in the test."""

from __future__ import annotations

import csv
import json
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")
pytest.importorskip("segmentation_models_pytorch")
F = torch.nn.functional

from crackscan.cli import app  # noqa: E402
from crackscan.data.synth import generate_dataset  # noqa: E402
from crackscan.models.segmenters import (  # noqa: E402
    FIRST_CLASS,
    create_segmenter,
    encoder_module,
    load_encoder_pretrained,
)
from crackscan.runtime.predictor import load_predictor  # noqa: E402
from crackscan.runtime.preprocess_seg import apply_preprocess, pad_to_multiple, preprocess_spec  # noqa: E402
from crackscan.training.losses import LOSSES, DeepSupervisionLoss, create_loss, ms_ssim  # noqa: E402

runner = CliRunner()
TINY = "resnet18"  # cheapest timm encoder to build without weights
ARGS = ["--crop", "64", "--epochs", "1", "--batch-size", "4", "--accelerator", "cpu", "--val-fraction", "0.25"]


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seg") / "data"
    generate_dataset(root, task="segment", n=8, size=64)
    return root


@pytest.fixture(scope="module")
def trained_run(synth_set: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("seg-run") / "run"
    result = runner.invoke(app, ["train", "segment", str(synth_set), "--out", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    return out, result.output


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("arch", FIRST_CLASS)
def test_every_architecture_gives_full_size_logits(arch: str) -> None:
    model = create_segmenter(arch, TINY, 2, decoder_channels=[32, 16, 16, 8, 8] if arch != "fpn" else [32]).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 2, 64, 64)


@pytest.mark.parametrize("cgm", [False, True])
def test_unet3plus_deep_supervision_and_cgm(cgm: bool) -> None:
    model = create_segmenter("unet3plus", TINY, 1, decoder_channels=[8], cgm=cgm)
    x = torch.randn(2, 3, 64, 96)
    model.train()
    out = model(x)
    assert isinstance(out, dict) and len(out["masks"]) == 5
    assert all(m.shape == (2, 1, 64, 96) for m in out["masks"])
    assert (out["presence"] is not None) == cgm
    if cgm:
        assert out["presence"].shape == (2, 1)
    target = (torch.rand(2, 64, 96) > 0.9).long()
    loss = DeepSupervisionLoss(create_loss("hybrid"))(out, target)
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        single = model(x)
    assert isinstance(single, torch.Tensor) and single.shape == (2, 1, 64, 96)


def test_half_resolution_head_gives_full_size_logits_without_a_full_size_block() -> None:
    model = create_segmenter("unet", TINY, 2, decoder_channels=[32, 16, 16, 8, 8], head_stride=2).eval()
    assert not any(p.numel() for p in model.decoder.blocks[-1].parameters())  # the 1× block is gone
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = model(x)
        features = model.decoder(model.encoder(x))
    assert out.shape == (1, 2, 64, 96)
    assert features.shape[-2:] == (32, 48)  # the head sees stride-2 features
    with pytest.raises(ValueError, match="unet only"):
        create_segmenter("fpn", TINY, 1, head_stride=2)
    with pytest.raises(ValueError, match="1 or 2"):
        create_segmenter("unet", TINY, 1, head_stride=4)


def test_unknown_arch_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        create_segmenter("segnet-9000", TINY)


def test_offline_lite0_encoder_weights_load_completely() -> None:
    model = create_segmenter("unet", "tf_efficientnet_lite0", 1)
    message = load_encoder_pretrained(model, "tf_efficientnet_lite0", None, True)
    assert message.startswith("ImageNet EfficientNet-Lite0 (offline package)")
    loaded, total = message.rsplit(" ", 2)[-2].split("/")
    assert loaded == total and int(total) > 200
    from crackscan.models.pretrained import lite0_package_state_dict

    ref = lite0_package_state_dict()["conv_stem.weight"]
    assert torch.equal(encoder_module(model).state_dict()["conv_stem.weight"], ref)


# ----------------------------------------------------------------------------- losses
@pytest.mark.parametrize("classes", [1, 3])
@pytest.mark.parametrize("name", LOSSES)
def test_losses_are_finite_with_gradients(name: str, classes: int) -> None:
    loss = create_loss(name, classes, pos_weight=8.0)
    logits = torch.randn(2, classes, 48, 48, requires_grad=True)
    target = torch.randint(0, max(2, classes), (2, 48, 48))
    target[1] = 0  # an image without any crack must not produce NaN
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("classes", [1, 3])
def test_lovasz_is_zero_for_confident_right_answers_and_grows_with_iou_error(classes: int) -> None:
    target = torch.zeros(1, 32, 32, dtype=torch.long)
    target[0, 10:14, :] = 1
    right = F.one_hot(target, max(2, classes)).permute(0, 3, 1, 2).float() * 20 - 10
    right = right[:, 1:] if classes == 1 else right
    half_missed = right.clone()
    half_missed[..., :16] = right[..., :16].roll(1, dims=1) if classes > 1 else -right[..., :16]  # left half wrong
    loss = create_loss("lovasz", classes)
    assert loss(right, target).item() < 1e-6
    assert loss(half_missed, target).item() > 0.1


def test_ms_ssim_is_one_for_identical_maps_and_works_on_small_crops() -> None:
    x = torch.rand(2, 1, 32, 32)
    assert torch.allclose(ms_ssim(x, x), torch.ones(2), atol=1e-4)
    assert (ms_ssim(x, 1 - x) < 0.9).all()


# ----------------------------------------------------------------------------- preprocessing
def test_preprocessing_is_deterministic_and_keeps_shape() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, (40, 70, 3), dtype=np.uint8)
    image[5:12, 5:12] = 255  # a glare spot
    spec = preprocess_spec(grayscale=True, clahe=True, deglare=True)
    assert spec["steps"] == ["deglare", "clahe", "grayscale"]
    out = apply_preprocess(image, spec)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[:, :, 0], out[:, :, 2])
    assert np.array_equal(out, apply_preprocess(image, json.loads(json.dumps(spec))))
    assert apply_preprocess(image, {"steps": []}) is image
    padded, hw = pad_to_multiple(image, 32)
    assert padded.shape[:2] == (64, 96) and hw == (40, 70)


# ----------------------------------------------------------------------------- training runs
def test_train_segment_writes_a_calibrated_exported_run(trained_run: tuple[Path, str]) -> None:
    out, output = trained_run
    assert "ImageNet EfficientNet-Lite0 (offline package)" in output
    for name in ("config.json", "metrics.csv", "curves.png", "model.onnx", "model.pt", "result.json"):
        assert (out / name).is_file(), name
    assert (out / "splits" / "data.json").is_file()
    assert (out / "checkpoints" / "last.ckpt").is_file()
    predictor = load_predictor(out / "model.onnx")
    meta = predictor.metadata
    assert meta.task == "segment" and meta.class_names == ["background", "crack"] and meta.crack_class == 1
    assert meta.input_size == 64 and meta.extra["size_multiple"] == 32
    assert 0.05 <= meta.threshold <= 0.95
    result = json.loads((out / "result.json").read_text())
    assert result["threshold"] == meta.threshold
    assert meta.extra["preprocess"] == {"steps": []}
    assert meta.extra["training_data"]["sources"][0]["counts"]["test_kept_out"] >= 1
    assert "val_iou" in meta.extra["metrics"] and "val_ods_f1" in meta.extra["metrics"]
    # a threshold of its own for --tta runs, calibrated the same way under flips
    assert 0.05 <= meta.extra["tta_threshold"] <= 0.95 and meta.threshold_for(tta=True) == meta.extra["tta_threshold"]
    assert "val_tta_calibrated_f1" in meta.extra["metrics"]
    # whole model.pt loads without pickles
    saved = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert saved["metadata"]["threshold"] == meta.threshold


def test_a_soup_takes_a_runs_checkpoint_as_well_as_its_model(trained_run: tuple[Path, str]) -> None:
    """tools/average_weights.py rebuilds a Lightning checkpoint with its run's metadata: one epoch's checkpoint
    and the model.pt saved from it average to the same weights."""
    import importlib.util

    tool_file = Path(__file__).resolve().parents[1] / "tools" / "average_weights.py"
    spec = importlib.util.spec_from_file_location("average_weights", tool_file)
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out, _ = trained_run
    soup = tool.average([out / "model.pt", out / "checkpoints" / "last.ckpt"])
    model = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert soup["state_dict"].keys() == model["state_dict"].keys()
    assert all(torch.equal(soup["state_dict"][k], v) for k, v in model["state_dict"].items())
    assert soup["metadata"]["arch"] == "unet" and len(soup["metadata"]["extra"]["soup_of"]) == 2


def test_onnx_matches_torch_on_other_sizes(trained_run: tuple[Path, str]) -> None:
    out, _ = trained_run
    saved = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    model = create_segmenter("unet", "tf_efficientnet_lite0", 1).eval()
    model.load_state_dict(saved["state_dict"])
    predictor = load_predictor(out / "model.onnx")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 96, 160, 3), dtype=np.uint8)  # 3×5 blocks of 32: not the export size
    onnx_probs = predictor.probability_map(images)
    meta = predictor.metadata
    x = (images.astype(np.float32) / 255.0 - np.array(meta.mean, np.float32)) / np.array(meta.std, np.float32)
    with torch.no_grad():
        torch_probs = torch.sigmoid(model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())))[:, 0].numpy()
    assert onnx_probs.shape == (2, 96, 160)
    assert np.abs(onnx_probs - torch_probs).max() < 2e-4


def test_resume_continues_a_run(trained_run: tuple[Path, str], synth_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained_run[0], out)
    base = ["train", "segment", str(synth_set), "--out", str(out), *ARGS]
    again = runner.invoke(app, base)
    assert again.exit_code == 1 and "--resume" in again.output
    resumed = runner.invoke(app, [*base, "--epochs", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    epochs = {row.split(",")[0] for row in (out / "metrics.csv").read_text().splitlines()[1:]}
    assert "1" in epochs and "0" not in epochs  # the resumed run starts at epoch 1


def _index_mask_set(root: Path, n: int = 6, size: int = 64, classes: int = 3) -> Path:
    rng = np.random.default_rng(3)
    for i in range(n):
        image = rng.normal(140, 15, (size, size, 3)).clip(0, 255).astype(np.uint8)
        labels = np.zeros((size, size), np.uint8)
        labels[10 + i : 14 + i, 5:60] = 1  # a "scratch"
        if classes > 2:
            labels[40:55, 40:55] = 2  # a "wheel"
            image[40:55, 40:55] = 30
        image[labels == 1] = 60
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "images" / f"car_{i}.png")
        Image.fromarray(labels, mode="L").save(root / "masks" / f"car_{i}.png")
    return root


def test_multiclass_index_masks(tmp_path: Path) -> None:
    data = _index_mask_set(tmp_path / "cars")
    out = tmp_path / "run"
    names = "background,scratch,wheel"
    multi = ["--no-pretrained", "--arch", "fpn", "--decoder-channels", "32", *ARGS]
    result = runner.invoke(
        app,
        ["train", "segment", str(data), "--out", str(out), "--classes", "3", "--class-names", names, *multi],
    )
    assert result.exit_code == 0, result.output
    predictor = load_predictor(out / "model.onnx")
    assert predictor.metadata.class_names == ["background", "scratch", "wheel"]
    assert predictor.metadata.crack_class == 1
    probs = predictor.probability_map(np.zeros((1, 64, 96, 3), np.uint8))
    assert probs.shape == (1, 3, 64, 96) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)


def test_several_sets_get_validation_figures_each_at_the_shared_threshold(synth_set: Path, tmp_path: Path) -> None:
    cars = _index_mask_set(tmp_path / "cars", n=8, classes=2)
    out = tmp_path / "run"
    args = ["--no-pretrained", "--arch", "fpn", "--decoder-channels", "32", *ARGS]
    result = runner.invoke(app, ["train", "segment", str(synth_set), str(cars), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "result.json").read_text())
    by_source = saved["val_by_source"]
    assert set(by_source) == {"data", "cars"}
    assert sum(part["n_images"] for part in by_source.values()) == saved["metrics"]["val_n_images"]
    for part in by_source.values():
        assert 0.0 <= part["iou"] <= 1.0 and 0.0 <= part["ods_f1"] <= 1.0
    assert load_predictor(out / "model.onnx").metadata.extra["val_by_source"] == by_source
    assert "val cars (" in result.output and "val data (" in result.output


def test_select_on_mean_of_sets_logs_each_set_every_epoch(synth_set: Path, tmp_path: Path) -> None:
    cars = _index_mask_set(tmp_path / "cars", n=8, classes=2)
    out = tmp_path / "run"
    args = ["--no-pretrained", "--arch", "fpn", "--decoder-channels", "32", *ARGS, "--epochs", "2"]
    result = runner.invoke(
        app, ["train", "segment", str(synth_set), str(cars), "--out", str(out), "--select-on", "mean-of-sets", *args]
    )
    assert result.exit_code == 0, result.output
    rows = [r for r in csv.DictReader((out / "metrics.csv").open()) if r.get("val_iou_sets")]
    assert len(rows) == 2  # one validation per epoch
    for row in rows:
        parts = float(row["val_iou_data"]), float(row["val_iou_cars"])
        assert float(row["val_iou_sets"]) == pytest.approx(sum(parts) / 2, abs=1e-6)
    (best,) = (out / "checkpoints").glob("best-*.ckpt")
    assert "val_iou_sets=" in best.name
    assert json.loads((out / "config.json").read_text())["select_on"] == "mean-of-sets"


@pytest.mark.parametrize(("value", "message"), [("mean-of-sets", "two or more data sets"), ("median", "pooled")])
def test_select_on_needs_several_sets_and_a_known_name(
    synth_set: Path, tmp_path: Path, value: str, message: str
) -> None:
    args = ["--no-pretrained", "--arch", "fpn", "--decoder-channels", "32", *ARGS]
    result = runner.invoke(
        app, ["train", "segment", str(synth_set), "--out", str(tmp_path / "run"), "--select-on", value, *args]
    )
    assert result.exit_code == 1 and message in result.output, result.output


@pytest.mark.parametrize("case", ["no_masks", "size_mismatch", "empty_folder", "single_class", "index_in_binary"])
def test_bad_data_sets_get_clear_errors(tmp_path: Path, case: str) -> None:
    data = tmp_path / "data"
    extra: list[str] = []
    if case == "no_masks":
        for cls in ("crack", "no_crack"):
            (data / cls).mkdir(parents=True)
            Image.new("RGB", (32, 32)).save(data / cls / "a.png")
        expected = "image/mask pairs"
    elif case == "size_mismatch":
        generate_dataset(data, task="segment", n=6, size=64)
        mask = next((data / "masks").iterdir())
        Image.new("L", (32, 32)).save(mask)
        expected = "size mismatch"
    elif case == "empty_folder":
        data.mkdir()
        expected = "no images"
    elif case == "single_class":
        generate_dataset(data, task="segment", n=6, size=64)
        extra = ["--classes", "4"]
        expected = "background and one class"
    else:
        _index_mask_set(data)
        expected = "--classes"
    result = runner.invoke(
        app, ["train", "segment", str(data), "--out", str(tmp_path / "run"), "--no-pretrained", *ARGS, *extra]
    )
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())  # rich wraps long messages
    assert "error" in text and expected in text
    assert "Traceback" not in text


# ----------------------------------------------------------------------------- splits of fine-tunes


def _sources(cfg_kwargs: dict, tmp_path: Path) -> list:
    from crackscan.training.segment import SegmentConfig, resolve_sources

    return resolve_sources(SegmentConfig(**cfg_kwargs), tmp_path / "new-run", write=False)


def test_fine_tune_refuses_a_split_that_trains_on_the_weights_runs_test_images(synth_set: Path, tmp_path: Path) -> None:
    import dataclasses

    from crackscan.data.split import make_split, write_split
    from crackscan.training.segment import TrainingDataError

    plan = make_split(synth_set, val=0.25, test=0.25, seed=1)
    # the earlier run held out an image that a seed-1 split trains on
    moved = plan.splits["train"][0]
    earlier = dataclasses.replace(
        plan,
        splits={
            "train": [k for k in plan.splits["train"] if k != moved] + plan.splits["test"],
            "val": plan.splits["val"],
            "test": [moved],
        },
    )
    run = tmp_path / "earlier-run"
    write_split(earlier, run / "splits" / "data.json")
    args = {"data": [str(synth_set)], "val_fraction": 0.25, "test_fraction": 0.25, "seed": 1}
    with pytest.raises(TrainingDataError, match=r"1 of its test images would train.*--split"):
        _sources({**args, "weights": str(run / "model.pt")}, tmp_path)
    with pytest.raises(TrainingDataError, match="test images would train"):  # a Lightning checkpoint's run too
        _sources({**args, "weights": str(run / "checkpoints" / "last.ckpt")}, tmp_path)
    # keeping the earlier run's split (its splits/ folder) is accepted and used as it is
    (source,) = _sources({**args, "weights": str(run / "model.pt"), "split": str(run / "splits")}, tmp_path)
    assert {s.image.relative_to(synth_set).as_posix() for s in source.train} == set(earlier.splits["train"])
    # without --weights the seed-1 split is fine
    assert _sources(args, tmp_path)


def test_a_split_folder_gives_each_set_its_own_file_and_a_file_serves_one_set(synth_set: Path, tmp_path: Path) -> None:
    from crackscan.data.split import make_split, write_split
    from crackscan.training.segment import TrainingDataError

    other = tmp_path / "other"
    generate_dataset(other, task="segment", n=8, size=64, seed=3)
    splits = tmp_path / "splits"
    write_split(make_split(synth_set, val=0.25, test=0.25, seed=2), splits / "data.json")
    write_split(make_split(other, val=0.25, test=0.25, seed=4), splits / "other.json")
    sources = _sources({"data": [str(synth_set), str(other)], "split": str(splits)}, tmp_path)
    assert [s.split_source for s in sources] == [f"split file {splits / n}" for n in ("data.json", "other.json")]
    (splits / "other.json").unlink()
    with pytest.raises(TrainingDataError, match=r"no other\.json"):
        _sources({"data": [str(synth_set), str(other)], "split": str(splits)}, tmp_path)
    with pytest.raises(TrainingDataError, match="single data set"):
        _sources({"data": [str(synth_set), str(other)], "split": str(splits / "data.json")}, tmp_path)


def test_a_copy_of_one_sets_test_image_may_not_train_through_another_set(synth_set: Path, tmp_path: Path) -> None:
    """Each set is split on its own, so a copy of a set under another name would train on its test part."""
    import shutil

    from crackscan.training.segment import TrainingDataError

    copy = tmp_path / "copy"
    shutil.copytree(synth_set, copy)
    for sub in ("images", "masks"):  # other names in the reverse order, so another split; same bytes
        files = sorted((copy / sub).iterdir())
        for i, f in enumerate(reversed(files)):
            f.rename(f.with_name(f"c{i:03d}{f.suffix}"))
    args = {"data": [str(synth_set), str(copy)], "val_fraction": 0.25, "test_fraction": 0.25}
    with pytest.raises(TrainingDataError, match="byte-for-byte copies of test images"):
        _sources(args, tmp_path)
    assert len(_sources({**args, "data": [str(synth_set)]}, tmp_path)) == 1
    # Saved again a little brighter: no byte is the same, the photos are.
    from PIL import Image, ImageEnhance

    for f in sorted((copy / "images").iterdir()):
        ImageEnhance.Brightness(Image.open(f).convert("RGB")).enhance(1.1).save(f)
    near = r"near copies \(re-encoded, resized, turned or mirrored\) of test images"
    with pytest.raises(TrainingDataError, match=near):
        _sources(args, tmp_path)


def test_a_split_file_that_trains_on_a_near_copy_of_a_test_image_is_refused(synth_set: Path, tmp_path: Path) -> None:
    """A split file made before near duplicates were grouped (or by another tool) may train on a test photo
    saved again; a new split of the same set keeps the two together and trains."""
    import shutil

    from PIL import Image

    from crackscan.data.split import make_split, write_split
    from crackscan.training.segment import TrainingDataError

    data = tmp_path / "data"
    shutil.copytree(synth_set, data)
    first = sorted((data / "images").iterdir())[0]
    Image.open(first).convert("RGB").save(data / "images" / "again.jpg", quality=85)
    shutil.copy(data / "masks" / f"{first.stem}.png", data / "masks" / "again.png")
    plan = make_split(data, val=0.25, test=0.25, similarity=None)  # exact duplicates only
    for name in ("train", "val", "test"):
        for key in (f"images/{first.name}", "images/again.jpg"):
            if key in plan.splits[name]:
                plan.splits[name].remove(key)
    plan.splits["test"].append(f"images/{first.name}")
    plan.splits["train"].append("images/again.jpg")
    write_split(plan, tmp_path / "old.json")
    with pytest.raises(TrainingDataError, match=r"again\.jpg\) are near copies"):
        _sources({"data": [str(data)], "split": str(tmp_path / "old.json")}, tmp_path)
    [source] = _sources({"data": [str(data)], "val_fraction": 0.25, "test_fraction": 0.25}, tmp_path)
    train = {p.image.name for p in source.train}
    assert (first.name in train) == ("again.jpg" in train)


def test_tta_calibration_sees_the_flips_runtime_tta_averages() -> None:
    """Training's TTA calibration and ``--tta`` at run time average the same three views."""
    from crackscan.evaluation.segmentation import segment_image
    from crackscan.training.segment import _flip_averaged

    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 1, 5, padding=2).eval()  # asymmetric kernel: flips change the output
    rgb = np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8)

    class Torchy:
        metadata = types.SimpleNamespace(extra={"size_multiple": 32}, class_names=["background", "crack"])

        def probability_map(self, batch: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(batch.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
            with torch.no_grad():
                return torch.sigmoid(model(x))[:, 0].numpy()

    x = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        trained = _flip_averaged(model, x, model(x), crack_class=1)[0].numpy()
    runtime = segment_image(Torchy(), rgb, tta=True)
    plain = segment_image(Torchy(), rgb)
    np.testing.assert_allclose(trained, runtime, atol=1e-5)
    assert np.abs(trained - plain).max() > 1e-3  # the views differ, so the check means something


# ----------------------------------------------------------------------------- fine-tuning an exported model
def test_weights_recovered_from_an_export_reproduce_it_and_stay_close_in_train_mode(
    trained_run: tuple[Path, str],
) -> None:
    from crackscan.models.from_onnx import load_onnx_weights

    out, _ = trained_run
    predictor = load_predictor(out / "model.onnx")
    model = create_segmenter("unet", "tf_efficientnet_lite0", 1)
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (4, 64, 96, 3), dtype=np.uint8)
    x = torch.from_numpy(((images / 255.0 - 0.5) / 0.5).astype(np.float32).transpose(0, 3, 1, 2).copy())
    stem = model.encoder.model.conv_stem
    fresh_norms = stem.weight.detach().flatten(1).norm(dim=1).clone()
    message = load_onnx_weights(model, out / "model.onnx", [x])
    assert "re-estimated" in message
    assert model.training  # handed back in the mode it came in: Lightning keeps eval-mode modules frozen
    with torch.no_grad():
        eval_probs = torch.sigmoid(model.eval()(x))[:, 0].numpy()
        # batch statistics of the calibration batch are the stored ones: train mode computes the same function
        train_probs = torch.sigmoid(model.train()(x))[:, 0].numpy()
    assert np.abs(eval_probs - predictor.probability_map(images)).max() < 1e-4
    assert np.abs(train_probs - eval_probs).max() < 1e-3
    # channels keep the size of a freshly built layer (the optimiser's steps stay in proportion); BatchNorm
    # carries the trained scale
    assert torch.allclose(stem.weight.detach().flatten(1).norm(dim=1), fresh_norms, rtol=1e-4)


def test_weights_shared_by_the_exporter_through_an_identity_are_recovered(tmp_path: Path) -> None:
    """torch's exporter stores equal tensors once (two layers' still-zero biases) and feeds the second layer through
    an Identity node; a fine-tune of such a file once failed with a KeyError (seen as a rare test flake)."""
    import onnx

    from crackscan.models.from_onnx import _onnx_layer_params

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 1))
    with torch.no_grad():
        model[0].bias.zero_()
        model[2].bias.zero_()
    path = tmp_path / "shared.onnx"
    torch.onnx.export(model, torch.randn(1, 3, 8, 8), str(path), dynamo=False)
    assert any(n.op_type == "Identity" for n in onnx.load(str(path)).graph.node)
    params = _onnx_layer_params(path)
    assert [w.shape for _, w, _ in params] == [(4, 3, 1, 1), (4, 4, 1, 1)]
    assert all(b is not None and not b.any() for _, _, b in params)
    assert np.array_equal(params[1][1], model[2].weight.detach().numpy())


def test_bundled_segmenter_weights_are_recoverable() -> None:
    from crackscan.models.from_onnx import load_onnx_weights, onnx_weights_file

    path = onnx_weights_file("crack-seg-unet")
    assert path is not None and path.name == "crack-seg-unet.onnx"
    model = create_segmenter("unet", "tf_efficientnet_lite0", 1)
    x = torch.randn(2, 3, 64, 64)
    assert "max |Δlogit|" in load_onnx_weights(model, path, [x])
    # another architecture does not fit the graph
    from crackscan.models.pretrained import PretrainedWeightsError

    with pytest.raises(PretrainedWeightsError, match="another architecture"):
        load_onnx_weights(create_segmenter("fpn", "tf_efficientnet_lite0", 1), path, [x])


def test_train_segment_fine_tunes_an_exported_model(trained_run: tuple[Path, str], synth_set: Path, tmp_path: Path):
    out, _ = trained_run
    base = ["train", "segment", str(synth_set), *ARGS]
    tuned = runner.invoke(app, [*base, "--out", str(tmp_path / "ft"), "--weights", str(out / "model.onnx")])
    assert tuned.exit_code == 0, tuned.output
    assert "BatchNorms re-estimated" in " ".join(tuned.output.split())
    assert load_predictor(tmp_path / "ft" / "model.onnx").metadata.arch == "unet"
    # options that do not rebuild the exported model are named
    wrong = runner.invoke(
        app, [*base, "--out", str(tmp_path / "w"), "--weights", str(out / "model.onnx"), "--arch", "fpn"]
    )
    assert wrong.exit_code != 0 and "--arch unet" in " ".join(wrong.output.split())
    # the model records its test images' content digests: a split that trains on one of them is refused, even
    # with every file renamed in a set of another name
    recorded = load_predictor(out / "model.onnx").metadata.extra["training_data"]["sources"][0]["test_digests"]
    assert len(recorded) == recorded_test_count(out) > 0
    copy = tmp_path / "copy"
    for sub in ("images", "masks"):
        (copy / sub).mkdir(parents=True)
        for f in sorted((synth_set / sub).iterdir()):
            (copy / sub / f"x{f.name}").write_bytes(f.read_bytes())
    import dataclasses

    from crackscan.data.split import make_split, write_split

    plan = make_split(copy, val=0.25, test=0.0)
    held_out = {f"images/x{Path(k).name}" for f in (out / "splits").glob("*.json")
                for k in json.loads(f.read_text())["splits"]["test"]}  # fmt: skip
    keys = sorted(k for part in plan.splits.values() for k in part)
    val = [k for k in keys if k not in held_out][:2]
    write_split(
        dataclasses.replace(plan, splits={"train": [k for k in keys if k not in val], "val": val}), copy / "split.json"
    )
    leak = runner.invoke(
        app, ["train", "segment", str(copy), *ARGS, "--out", str(tmp_path / "s"), "--weights", str(out / "model.onnx"),
              "--split", str(copy / "split.json")],
    )  # fmt: skip
    assert leak.exit_code != 0 and "in the test split of --weights" in " ".join(leak.output.split())


def recorded_test_count(run: Path) -> int:
    return sum(len(json.loads(f.read_text())["splits"].get("test", [])) for f in (run / "splits").glob("*.json"))


def test_models_without_digests_are_checked_against_their_split_drawn_again(
    synth_set: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Files exported before digests were kept record each set's split by description and counts only: the
    generated split is drawn again as it was then (no near-duplicate grouping) and compared by content."""
    from crackscan.data.layouts import index_dataset
    from crackscan.data.split import make_split, select_split
    from crackscan.runtime.predictor import ModelMetadata
    from crackscan.training import segment

    index = index_dataset(synth_set)
    then = make_split(synth_set, seed=0, similarity=None)
    counts = {name: len(then.splits[name]) for name in ("train", "val")}
    counts["test_kept_out"] = len(then.splits["test"])
    how = "new stratified split (seed 0), test part kept out"

    def recorded(counts: dict) -> None:
        old = {"sources": [{"name": "data", "split": how, "counts": counts}]}
        meta = ModelMetadata(
            "segment", "unet", ["background", "crack"], 1, 64, (0.5,) * 3, (0.5,) * 3, extra={"training_data": old}
        )
        monkeypatch.setattr(segment, "onnx_model_metadata", lambda _: meta)

    recorded(counts)
    train = select_split(index, then, "train")
    test = select_split(index, then, "test")
    segment._check_onnx_held_out("data", index, train, Path("m.onnx"))  # the model's own split
    segment._check_onnx_held_out("data", index, train[1:], Path("m.onnx"))  # less of it
    segment._check_onnx_held_out("other", index, train + test, Path("m.onnx"))  # another set
    with pytest.raises(segment.TrainingDataError, match="--similarity 0") as err:
        segment._check_onnx_held_out("data", index, train + test[:1], Path("m.onnx"))
    assert index.relative(test[0].image) in str(err.value) and "1 training image(s)" in str(err.value)
    recorded({**counts, "train": counts["train"] + 1})  # another folder of that name: nothing to compare with
    segment._check_onnx_held_out("data", index, train + test, Path("m.onnx"))
    assert "cannot be drawn again" in caplog.text


def test_training_keeps_freed_memory_on_glibc_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    from crackscan.training.run import keep_freed_memory

    monkeypatch.setenv("CRACKSCAN_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False
    monkeypatch.delenv("CRACKSCAN_KEEP_FREED_MEMORY")
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is on_glibc  # glibc accepted both thresholds
