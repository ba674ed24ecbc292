"""Segmenters merged into one ONNX file (``crackscan export A+B``) and int8-stored weights, on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from typer.testing import CliRunner  # noqa: E402

from crackscan.cli import app  # noqa: E402
from crackscan.runtime.ensemble import EnsemblePredictor  # noqa: E402
from crackscan.runtime.predictor import ModelMetadata, OnnxPredictor  # noqa: E402

runner = CliRunner()
UNET_CHANNELS = [32, 24, 16, 16, 8]


def _exported_segmenter(
    folder: Path,
    arch: str,
    *,
    classes: int = 1,
    seed: int = 0,
    mean: float = 0.5,
    threshold: float = 0.5,
    opset: int = 17,
) -> Path:
    """A random mobilenetv2_035 segmenter, exported to fp32 ONNX with crackscan's metadata."""
    from crackscan.models.segmenters import create_segmenter
    from crackscan.runtime.export import export_model

    torch.manual_seed(seed)
    channels = [32] if arch == "fpn" else UNET_CHANNELS
    model = create_segmenter(arch, "mobilenetv2_035", classes, decoder_channels=channels)
    names = ["background", "crack"] if classes == 1 else ["background", *[f"c{i}" for i in range(1, classes)]]
    meta = ModelMetadata(
        task="segment",
        arch=arch,
        class_names=names,
        crack_class=1,
        input_size=64,
        mean=(mean, mean, mean),
        std=(0.5, 0.5, 0.5),
        threshold=threshold,
        extra={
            "encoder": "mobilenetv2_035",
            "decoder_channels": channels,
            "size_multiple": 32,
            "training_data": {"sources": [{"name": f"set{seed}", "test_digests": [f"d{seed}"]}]},
        },
    )
    pt = folder / f"{arch}-{classes}-{seed}" / "model.pt"
    pt.parent.mkdir(parents=True)
    torch.save({"state_dict": model.state_dict(), "metadata": json.loads(meta.to_json())}, pt)
    return export_model(pt, opset=opset).path


def _images(n: int, size: int = 64) -> np.ndarray:
    from crackscan.data.synth import synth_sample

    return np.stack([synth_sample(np.random.default_rng([7, i]), size, size)[0] for i in range(n)])


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("members")
    return (
        _exported_segmenter(folder, "fpn", seed=0, threshold=0.4),
        _exported_segmenter(folder, "unet", seed=1, threshold=0.6),
    )


def test_merged_file_computes_the_load_time_ensemble(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    merged = tmp_path / "both.onnx"
    report = tmp_path / "merge.json"
    result = runner.invoke(app, ["export", f"{a}+{b}", "--out", str(merged), "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "load-time ensemble" in result.output
    images = _images(3, size=96)  # not the traced size: the merged input stays dynamic
    single = OnnxPredictor(merged)
    expected = EnsemblePredictor([OnnxPredictor(a), OnnxPredictor(b)]).probability_map(images)
    got = single.probability_map(images)
    assert got.shape == (3, 96, 96)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    meta = single.metadata
    assert meta.arch == "fpn+unet" and meta.precision == "fp32"
    assert meta.threshold == pytest.approx(0.5)  # the members' mean, as the load-time ensemble uses
    assert [m["file"] for m in meta.extra["ensemble"]] == [a.name, b.name]
    assert all(len(m["sha256"]) == 64 for m in meta.extra["ensemble"])
    # each set's test digests travel with the merged file (the fine-tune check reads them)
    sources = {s["name"]: s for s in meta.extra["training_data"]["sources"]}
    assert sources["set0"]["test_digests"] == ["d0"] and sources["set1"]["test_digests"] == ["d1"]
    assert json.loads(report.read_text())["max_abs_diff"] < 1e-5


def test_int8_weights_take_a_quarter_of_the_file_and_keep_predictions(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    fp32, small = tmp_path / "fp32.onnx", tmp_path / "int8w.onnx"
    assert runner.invoke(app, ["export", f"{a}+{b}", "--out", str(fp32)]).exit_code == 0
    result = runner.invoke(app, ["export", f"{a}+{b}", "--out", str(small), "--quantize", "int8-weights"])
    assert result.exit_code == 0, result.output
    assert small.stat().st_size < 0.4 * fp32.stat().st_size
    images = _images(2)
    reduced = OnnxPredictor(small)
    assert reduced.metadata.precision == "int8-weights"
    assert reduced.metadata.extra["quantization"]["compute"] == "float32"
    diff = np.abs(reduced.probability_map(images) - OnnxPredictor(fp32).probability_map(images))
    assert 0 < diff.max() < 0.05  # rounded weights: close, not identical


def test_multi_class_members_are_averaged_after_softmax(tmp_path: Path) -> None:
    a = _exported_segmenter(tmp_path, "fpn", classes=3, seed=2)
    b = _exported_segmenter(tmp_path, "fpn", classes=3, seed=3)
    merged = tmp_path / "both.onnx"
    assert runner.invoke(app, ["export", f"{a}+{b}", "--out", str(merged)]).exit_code == 0
    images = _images(2)
    got = OnnxPredictor(merged).probability_map(images)
    expected = EnsemblePredictor([OnnxPredictor(a), OnnxPredictor(b)]).probability_map(images)
    assert got.shape == (2, 3, 64, 64)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_merging_refuses_what_cannot_be_one_model(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    no_out = runner.invoke(app, ["export", f"{a}+{b}"])
    assert no_out.exit_code != 0 and "--out" in no_out.output
    onto_input = runner.invoke(app, ["export", f"{a}+{b}", "--out", str(a)])
    assert onto_input.exit_code != 0 and "never overwrites" in onto_input.output
    static = runner.invoke(app, ["export", f"{a}+{b}", "--out", str(tmp_path / "q.onnx"), "--quantize", "int8"])
    assert static.exit_code != 0 and "int8-weights" in static.output
    other_norm = _exported_segmenter(tmp_path, "fpn", seed=4, mean=0.45)
    normed = runner.invoke(app, ["export", f"{a}+{other_norm}", "--out", str(tmp_path / "n.onnx")])
    assert normed.exit_code != 0 and "normalises its input differently" in normed.output
    classes = _exported_segmenter(tmp_path, "fpn", classes=3, seed=5)
    mixed = runner.invoke(app, ["export", f"{a}+{classes}", "--out", str(tmp_path / "c.onnx")])
    assert mixed.exit_code != 0 and "classes" in mixed.output
    older = _exported_segmenter(tmp_path, "fpn", seed=6, opset=16)
    opsets = runner.invoke(app, ["export", f"{a}+{older}", "--out", str(tmp_path / "o.onnx")])
    assert opsets.exit_code != 0 and "opsets ([16, 17])" in opsets.output
    missing = runner.invoke(app, ["export", f"{a}+{tmp_path / 'nope.onnx'}", "--out", str(tmp_path / "m.onnx")])
    assert missing.exit_code != 0 and "nope.onnx" in missing.output
    assert not any((tmp_path / n).exists() for n in ("q.onnx", "n.onnx", "c.onnx", "o.onnx", "m.onnx"))


def test_int8_weight_files_can_be_fine_tuned_but_merged_files_cannot(pair: tuple[Path, Path], tmp_path: Path) -> None:
    from crackscan.models.from_onnx import _onnx_layer_params, load_onnx_weights
    from crackscan.models.pretrained import PretrainedWeightsError
    from crackscan.models.segmenters import create_segmenter
    from crackscan.runtime.quantize import store_int8_weights

    a, b = pair
    small = store_int8_weights(b, tmp_path / "b.int8w.onnx")
    exact, rounded = _onnx_layer_params(b), _onnx_layer_params(small)
    assert [w.shape for _, w, _ in rounded] == [w.shape for _, w, _ in exact]
    for (_, w, _), (_, q, _) in zip(exact, rounded, strict=True):
        step = np.abs(w.reshape(len(w), -1)).max(axis=1) / 127.0  # one int8 step per output channel
        assert np.all(np.abs(q - w).reshape(len(w), -1).max(axis=1) <= step / 2 + 1e-7)
    x = torch.randn(2, 3, 64, 64)
    model = create_segmenter("unet", "mobilenetv2_035", 1, decoder_channels=UNET_CHANNELS)
    assert "max |Δlogit|" in load_onnx_weights(model, small, [x])
    merged = tmp_path / "both.onnx"
    assert runner.invoke(app, ["export", f"{a}+{b}", "--out", str(merged)]).exit_code == 0
    with pytest.raises(PretrainedWeightsError, match="merged into one file"):
        load_onnx_weights(create_segmenter("unet", "mobilenetv2_035", 1, decoder_channels=UNET_CHANNELS), merged, [x])


def test_train_segment_refuses_a_merged_file_as_weights(pair: tuple[Path, Path], tmp_path: Path) -> None:
    from crackscan.data.synth import generate_dataset

    a, b = pair
    merged = tmp_path / "both.onnx"
    assert runner.invoke(app, ["export", f"{a}+{b}", "--out", str(merged)]).exit_code == 0
    data = tmp_path / "data"
    generate_dataset(data, task="segment", n=8, size=64)
    result = runner.invoke(
        app, ["train", "segment", str(data), "--out", str(tmp_path / "run"), "--weights", str(merged), "--epochs", "1"]
    )
    assert result.exit_code != 0
    assert "several models merged into one file" in " ".join(result.output.split())
    assert a.name in result.output and not (tmp_path / "run" / "model.pt").exists()
