"""Classifier training end to end on a tiny data set made in the test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from crackscan.cli import app  # noqa: E402
from crackscan.models.classifiers import FIRST_CLASS, create_classifier, load_pretrained  # noqa: E402
from crackscan.models.pretrained import PretrainedWeightsError  # noqa: E402
from crackscan.runtime.predictor import load_predictor  # noqa: E402

runner = CliRunner()


def _patches(root: Path, per_class: int = 12, size: int = 40, seed: int = 0) -> Path:
    """Grey concrete-like noise; 'Positive' patches carry a dark diagonal line."""
    rng = np.random.default_rng(seed)
    for cls in ("Positive", "Negative"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.normal(150, 12, (size, size, 3)).clip(0, 255).astype(np.uint8)
            if cls == "Positive":
                offset = int(rng.integers(-8, 8))
                for t in range(size):
                    x = min(size - 1, max(0, t + offset))
                    img[t, max(0, x - 1) : x + 2] = 40
            Image.fromarray(img).save(root / cls / f"{i:03d}.jpg", quality=95)
    return root


ARGS = ["--img-size", "32", "--epochs", "2", "--freeze-epochs", "1", "--batch-size", "8", "--accelerator", "cpu"]


def test_train_classify_writes_a_complete_run(tmp_path: Path) -> None:
    data = _patches(tmp_path / "data")
    (data / "Negative" / "broken.jpg").write_bytes(b"not a jpeg")  # skipped, not fatal
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "classify", str(data), "--out", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    assert "ImageNet EfficientNet-Lite0 (offline package)" in result.output
    for name in ("config.json", "metrics.csv", "curves.png", "model.onnx", "model.pt", "split.json", "result.json"):
        assert (out / name).is_file(), name
    assert any((out / "checkpoints").glob("best-*.ckpt")) and (out / "checkpoints" / "last.ckpt").is_file()
    predictor = load_predictor(out / "model.onnx")
    meta = predictor.metadata
    assert meta.task == "classify" and meta.class_names == ["no_crack", "crack"] and meta.crack_class == 1
    assert meta.input_size == 32 and meta.extra["training_data"]["folders"]["Positive"] == "crack"
    probs = predictor.crack_probability(np.zeros((2, 32, 32, 3), np.uint8))
    assert probs.shape == (2,) and np.all((probs >= 0) & (probs <= 1))
    res = json.loads((out / "result.json").read_text())
    assert res["metrics"]["parity_max_abs_diff"] <= 1e-4


def test_resume_continues_from_last_checkpoint(tmp_path: Path) -> None:
    data = _patches(tmp_path / "data", per_class=8)
    out = tmp_path / "run"
    base = ["train", "classify", str(data), "--out", str(out), "--no-pretrained", *ARGS]
    assert runner.invoke(app, base).exit_code == 0
    again = runner.invoke(app, base)
    assert again.exit_code == 1 and "--resume" in again.output
    resumed = runner.invoke(app, [*base[:-8], *ARGS[:2], "--epochs", "3", "--freeze-epochs", "1", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    epochs = {row.split(",")[0] for row in (out / "metrics.csv").read_text().splitlines()[1:]}
    assert len(epochs) >= 1
    # last.ckpt is the newest epoch, not the best one (Lightning's save_last only follows improvements)
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 2
    assert len(list((out / "checkpoints").glob("best-*.ckpt"))) == 1


@pytest.mark.parametrize("case", ["single_class", "empty_class", "no_images"])
def test_bad_data_sets_get_clear_errors(tmp_path: Path, case: str) -> None:
    data = _patches(tmp_path / "data", per_class=4)
    if case == "single_class":
        for f in (data / "Negative").iterdir():
            f.unlink()
        (data / "Negative").rmdir()
    elif case == "empty_class":
        for f in (data / "Negative").iterdir():
            f.unlink()
    else:
        data = tmp_path / "nothing"
        data.mkdir()
    result = runner.invoke(app, ["train", "classify", str(data), "--out", str(tmp_path / "run"), *ARGS])
    assert result.exit_code == 1
    assert "error" in result.output.lower() and "Traceback" not in result.output


def test_weights_file_and_failed_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = create_classifier("resnet18", 2)
    weights = tmp_path / "resnet18.pt"
    torch.save(create_classifier("resnet18", 1000).state_dict(), weights)
    assert "weights file" in load_pretrained(model, "resnet18", weights=str(weights), pretrained=True)
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("no tensors here")
    with pytest.raises(PretrainedWeightsError):
        load_pretrained(model, "resnet18", weights=str(bogus), pretrained=True)

    import timm

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(PretrainedWeightsError, match="could not download"):
        load_pretrained(model, "resnet18", weights=None, pretrained=True)


@pytest.mark.parametrize("arch", FIRST_CLASS)
def test_first_class_architectures_build(arch: str) -> None:
    model = create_classifier(arch, 2).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 2)


def test_lite0_cut_after_other_stages() -> None:
    """crackscan_lite0_sN keeps N stages; the packaged ImageNet weights fill each of them."""
    s5 = create_classifier("crackscan_lite0_s5", 2).eval()
    assert s5.num_features == 112 and len(s5.blocks) == 5
    assert "ImageNet EfficientNet-Lite0" in load_pretrained(s5, "crackscan_lite0_s5", weights=None, pretrained=True)
    with torch.no_grad():
        assert s5(torch.zeros(2, 3, 64, 64)).shape == (2, 2)
    with pytest.raises(ValueError, match="unknown architecture"):
        create_classifier("crackscan_lite0_s9", 2)


def test_unknown_architecture_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    data = _patches(tmp_path / "data", per_class=4)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "classify", str(data), "--out", str(out), *ARGS, "--arch", "no_such_net"])
    assert result.exit_code == 1 and "unknown architecture" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_fine_tune_the_bundled_classifier_from_its_onnx_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`--weights crack-cls` starts from the bundled model (its Conv and Gemm weights poured back, checked against
    ONNX Runtime); the options its metadata records are named when they differ, before anything is written."""
    from crackscan.models.from_onnx import onnx_model_metadata, onnx_weights_file

    bundled = onnx_weights_file("crack-cls")
    meta = onnx_model_metadata(bundled)
    data = _patches(tmp_path / meta.extra["training_data"]["root"], per_class=10, size=meta.input_size + 8)
    wrong = runner.invoke(
        app, ["train", "classify", str(data), "--out", str(tmp_path / "bad"), "--weights", "crack-cls"]
    )
    assert (
        wrong.exit_code == 1
        and f"--arch {meta.arch}" in wrong.output
        and f"--img-size {meta.input_size}" in wrong.output
    )
    assert not (tmp_path / "bad").exists()
    out = tmp_path / "run"
    fit = ["--arch", meta.arch, "--img-size", str(meta.input_size), *ARGS[2:]]
    result = runner.invoke(app, ["train", "classify", str(data), "--out", str(out), "--weights", "crack-cls", *fit])
    assert result.exit_code == 0, result.output
    assert "ONNX model" in result.output and "max |Δlogit|" in result.output
    assert load_predictor(out / "model.onnx").metadata.class_names == meta.class_names
    # It records its test patches' digests (tools/record_test_digests.py): checked, none of these is one.
    assert "may train on its held-out images" not in caplog.text

    three = _patches(tmp_path / "three", per_class=6, size=meta.input_size + 8)
    (three / "Spalling").mkdir()
    for f in sorted((three / "Negative").iterdir())[:6]:
        (three / "Spalling" / f.name).write_bytes(f.read_bytes())
    other = runner.invoke(
        app, ["train", "classify", str(three), "--out", str(tmp_path / "o"), "--weights", "crack-cls", *fit]
    )
    assert other.exit_code == 1 and "classes must be the same" in other.output


def test_a_classifier_without_digests_warns_on_a_set_of_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Files exported before digests were kept name the set they were split from, nothing more: a warning."""
    from crackscan.runtime.predictor import ModelMetadata
    from crackscan.training import classify

    old = {"root": "ozgenel", "split": "split file runs/x/split.json"}
    meta = ModelMetadata(
        "classify", "resnet18", ["no_crack", "crack"], 1, 88, (0.5,) * 3, (0.5,) * 3, extra={"training_data": old}
    )
    monkeypatch.setattr(classify, "onnx_model_metadata", lambda _: meta)
    classify._check_onnx_classes(Path("m.onnx"), ["no_crack", "crack"], [str(tmp_path / "mine")], [])
    assert "may train on its held-out images" not in caplog.text
    classify._check_onnx_classes(Path("m.onnx"), ["no_crack", "crack"], [str(tmp_path / "ozgenel")], [])
    assert "may train on its held-out images" in caplog.text


def test_fine_tune_may_not_train_on_the_models_test_images(tmp_path: Path) -> None:
    """A model records the content digests of its test patches; a fine-tune whose split trains on any of them —
    under another name, in a set of another name — is refused before anything is trained."""
    data = _patches(tmp_path / "data")
    out = tmp_path / "run"
    assert (
        runner.invoke(app, ["train", "classify", str(data), "--out", str(out), "--no-pretrained", *ARGS]).exit_code == 0
    )
    recorded = load_predictor(out / "model.onnx").metadata.extra["training_data"]
    test_keys = json.loads((out / "split.json").read_text())["splits"]["test"]
    assert len(recorded["test_digests"]) == len(test_keys) > 0 and recorded["licence"] == "unknown"
    copy = tmp_path / "renamed"  # same bytes, other names, another set name; split with another seed
    for i, f in enumerate(sorted(data.rglob("*.jpg"))):
        (copy / f.parent.name).mkdir(parents=True, exist_ok=True)
        (copy / f.parent.name / f"p{i}.jpg").write_bytes(f.read_bytes())
    tune = ["train", "classify", str(copy), "--out", str(tmp_path / "ft"), "--weights", str(out / "model.onnx"), *ARGS]
    refused = runner.invoke(app, [*tune, "--seed", "1"])
    assert refused.exit_code == 1 and "in the test split of --weights" in " ".join(refused.output.split())
    assert not (tmp_path / "ft" / "model.onnx").exists()
    # the model's own split keeps its test patches out: accepted
    own = runner.invoke(
        app,
        ["train", "classify", str(data), "--out", str(tmp_path / "ok"), "--weights", str(out / "model.onnx"),
         "--split", str(out / "split.json"), *ARGS],
    )  # fmt: skip
    assert own.exit_code == 0, own.output


def test_several_sets_train_one_classifier_each_split_on_its_own(tmp_path: Path) -> None:
    """Fine-tuning on a new surface while keeping the old: several class-folder sets, each split on its own
    (its test part never trains), one model; the record and the test figures are per set, a set may hold only
    hard negatives, and the run's splits/ folder reproduces the split."""
    from crackscan.runtime.catalog import summarise

    walls = _patches(tmp_path / "walls", per_class=10)
    pavement = _patches(tmp_path / "pavement", per_class=10, seed=1)
    stains = tmp_path / "stains" / "no_crack"  # hard negatives only
    _patches(tmp_path / "more", per_class=8, seed=2)
    shutil.copytree(tmp_path / "more" / "Negative", stains)
    out = tmp_path / "run"
    sets = [str(walls), str(pavement), str(stains.parent)]
    result = runner.invoke(app, ["train", "classify", *sets, "--out", str(out), "--no-pretrained", *ARGS])
    assert result.exit_code == 0, result.output
    assert not (out / "split.json").exists()
    assert {p.name for p in (out / "splits").iterdir()} == {"walls.json", "pavement.json", "stains.json"}
    meta = load_predictor(out / "model.onnx").metadata
    assert meta.class_names == ["no_crack", "crack"]
    record = meta.extra["training_data"]
    assert [s["name"] for s in record["sources"]] == ["walls", "pavement", "stains"]
    assert record["classes"] == {"crack": 20, "no_crack": 28}
    for source in record["sources"]:
        split = json.loads((out / source["split_file"]).read_text())["splits"]
        assert source["counts"]["test_kept_out"] == len(split["test"]) == len(source["test_digests"]) > 0
        assert not set(split["train"]) & set(split["test"])
    metrics = json.loads((out / "result.json").read_text())["metrics"]
    per_set = sum(metrics[f"test_n_{name}"] for name in ("walls", "pavement", "stains"))
    assert per_set == metrics["test_n"] and 0 <= metrics["test_accuracy_stains"] <= 1
    assert [s.name for s in summarise(out / "model.onnx").training_sets] == ["walls", "pavement", "stains"]

    again = tmp_path / "again"
    same = runner.invoke(
        app,
        ["train", "classify", *sets, "--out", str(again), "--split", str(out / "splits"), "--no-pretrained", *ARGS],
    )
    assert same.exit_code == 0, same.output
    for name in ("walls", "pavement", "stains"):
        assert (
            json.loads((again / "splits" / f"{name}.json").read_text())["splits"]
            == json.loads((out / "splits" / f"{name}.json").read_text())["splits"]
        )
    one_file = runner.invoke(
        app,
        ["train", "classify", *sets, "--out", str(tmp_path / "x"), "--split", str(out / "splits" / "walls.json")],
    )
    assert one_file.exit_code == 1 and "single data set" in one_file.output
    copies = tmp_path / "copies"  # the walls again under other names: split otherwise, its test part trains
    for i, f in enumerate(sorted(walls.rglob("*.jpg"), reverse=True)):
        (copies / f.parent.name).mkdir(parents=True, exist_ok=True)
        (copies / f.parent.name / f"c{i:03d}.jpg").write_bytes(f.read_bytes())
    leak = runner.invoke(app, ["train", "classify", str(walls), str(copies), "--out", str(tmp_path / "z"), *ARGS])
    assert leak.exit_code == 1 and "byte-for-byte copies of test images" in one_line(leak.output)
    assert not any((tmp_path / "z").rglob("*"))  # a refused run writes nothing: fix the data, run it again
    for f in copies.rglob("*.jpg"):  # the same photos saved again: no byte-for-byte copy left
        Image.open(f).convert("RGB").save(f, format="JPEG", quality=80)
    leak = runner.invoke(app, ["train", "classify", str(walls), str(copies), "--out", str(tmp_path / "z"), *ARGS])
    near = "near copies (re-encoded, resized, turned or mirrored) of test images"
    assert leak.exit_code == 1 and near in one_line(leak.output)
    assert not (tmp_path / "z" / "model.onnx").exists()
    only_negatives = runner.invoke(app, ["train", "classify", str(stains.parent), "--out", str(tmp_path / "y")])
    assert only_negatives.exit_code == 1 and "at least two class folders" in one_line(only_negatives.output)


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("arch", ["resnet18", "mobilenetv2_100"])
def test_onnx_weights_recovered_with_a_linear_head(tmp_path: Path, arch: str) -> None:
    """A trained classifier's export (BatchNorms folded, the head a Gemm) comes back into a fresh model: the same
    logits as the graph, and every Linear weight equal to the trained one."""
    from crackscan.models.from_onnx import load_onnx_weights
    from crackscan.runtime.export import export_onnx
    from crackscan.runtime.predictor import ModelMetadata

    torch.manual_seed(0)
    trained = create_classifier(arch, 2)
    with torch.no_grad():  # BatchNorm statistics and affine parameters unlike a fresh layer's
        for m in trained.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    trained.eval()
    meta = ModelMetadata(
        task="classify",
        arch=arch,
        class_names=["no_crack", "crack"],
        crack_class=1,
        input_size=64,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
    )
    path = tmp_path / "model.onnx"
    export_onnx(trained, meta, path, parity_images=np.zeros((1, 64, 64, 3), np.uint8))
    fresh = create_classifier(arch, 2)
    batches = [torch.randn(8, 3, 64, 64) for _ in range(2)]
    message = load_onnx_weights(fresh, path, batches)
    assert "max |Δlogit|" in message
    fresh.eval()
    with torch.no_grad():
        assert torch.allclose(fresh(batches[0]), trained(batches[0]), atol=1e-3)
    head = [m for m in fresh.modules() if isinstance(m, torch.nn.Linear)][-1]
    trained_head = [m for m in trained.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert torch.allclose(head.weight, trained_head.weight) and torch.allclose(head.bias, trained_head.bias)
