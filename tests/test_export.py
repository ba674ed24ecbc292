"""crackscan export, INT8 quantisation and the torch backend, on tiny models built here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from typer.testing import CliRunner  # noqa: E402

from crackscan.cli import app  # noqa: E402
from crackscan.runtime.predictor import ModelLoadError, ModelMetadata, OnnxPredictor, Predictor, load_predictor  # noqa: E402

runner = CliRunner()
TINY_SIZE = 48  # px: small enough for milliseconds per batch on 2 shared cores


def _images(n: int, size: int = TINY_SIZE, seed: int = 0) -> np.ndarray:
    from crackscan.data.synth import synth_sample

    return np.stack([synth_sample(np.random.default_rng([seed, i]), size, size, crack=i % 2 == 0)[0] for i in range(n)])


def _save_classifier(folder: Path, *, seed: int = 0, extra: dict | None = None) -> Path:
    """A tiny crackscan_lite0_s4 saved as training saves model.pt (random weights)."""
    from crackscan.models.classifiers import create_classifier

    torch.manual_seed(seed)
    model = create_classifier("crackscan_lite0_s4", 2)
    meta = ModelMetadata(
        task="classify",
        arch="crackscan_lite0_s4",
        class_names=["no_crack", "crack"],
        crack_class=1,
        input_size=TINY_SIZE,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        threshold=0.5,
        extra={"metrics": {"val_accuracy": 0.5}, **(extra or {})},
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pt"
    torch.save({"state_dict": model.state_dict(), "metadata": json.loads(meta.to_json())}, path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fp32 export shared by the tests that only read it."""
    from crackscan.runtime.export import export_model

    pt = _save_classifier(tmp_path_factory.mktemp("run"))
    result = export_model(pt)
    assert result.path == pt.with_name("model.onnx")
    return pt


def test_export_matches_torch_and_keeps_metadata(exported: Path) -> None:
    onnx_path = exported.with_name("model.onnx")
    onnx = load_predictor(onnx_path)
    torch_pred = load_predictor(exported)
    assert isinstance(onnx, OnnxPredictor)
    assert type(torch_pred).__name__ == "TorchPredictor"
    assert isinstance(onnx, Predictor) and isinstance(torch_pred, Predictor)
    meta = onnx.metadata
    assert (meta.task, meta.arch, meta.class_names, meta.crack_class) == (
        "classify",
        "crackscan_lite0_s4",
        ["no_crack", "crack"],
        1,
    )
    assert meta.input_size == TINY_SIZE and meta.mean == (0.5, 0.5, 0.5) and meta.precision == "fp32"
    assert meta.crackscan_version and meta.extra["metrics"] == {"val_accuracy": 0.5}
    assert "synthetic" in meta.extra["export"]["checked_on"]
    images = _images(7)
    for batch in (images[:1], images):  # dynamic batch: 1 and 7
        a, b = onnx.class_probabilities(batch), torch_pred.class_probabilities(batch)
        assert a.shape == (len(batch), 2)
        np.testing.assert_allclose(a, b, atol=1e-4)
        np.testing.assert_allclose(onnx.crack_probability(batch), torch_pred.crack_probability(batch), atol=1e-4)
    # The encoder's TF-"same" paddings are constants in the graph: exact at every size ≡ the input size mod M.
    fixed = meta.extra["fixed_same_padding"]
    assert fixed["convs"] == 4 and fixed["exact_for_sizes_mod"] == 16
    big = _images(2, size=TINY_SIZE + 2 * fixed["exact_for_sizes_mod"])  # dynamic H/W: a size it was not traced at
    np.testing.assert_allclose(onnx.logits(big), torch_pred.logits(big), atol=1e-4)


def test_large_batches_run_in_slices_with_the_same_outputs(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crackscan.runtime import predictor as predictor_module

    onnx = load_predictor(exported.with_name("model.onnx"))
    images = _images(11)
    whole = onnx.logits(images)
    assert predictor_module.run_batch_size(TINY_SIZE, TINY_SIZE) >= 11  # one call at the default budget
    calls: list[int] = []
    run = onnx._run
    monkeypatch.setattr(onnx, "_run", lambda batch: calls.append(len(batch)) or run(batch))
    monkeypatch.setattr(predictor_module, "RUN_PIXELS", 4 * TINY_SIZE * TINY_SIZE)
    sliced = onnx.logits(images)
    assert calls == [4, 4, 3]
    np.testing.assert_allclose(sliced, whole, atol=1e-5)
    assert predictor_module.run_batch_size(10_000, 10_000) == 1  # never zero images per call


def test_spin_wait_off_lets_idle_threads_sleep(exported: Path) -> None:
    from crackscan.runtime.predictor import session_options

    assert session_options(1, spin_wait=False).get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(RuntimeError):  # default: the entry is not set and ONNX Runtime spins
        session_options(1).get_session_config_entry("session.intra_op.allow_spinning")
    quiet = load_predictor(exported.with_name("model.onnx"), spin_wait=False)
    busy = load_predictor(exported.with_name("model.onnx"))
    images = _images(3)
    np.testing.assert_array_equal(quiet.logits(images), busy.logits(images))


def test_cli_int8_refused_then_accepted(exported: Path, tmp_path: Path) -> None:
    int8 = tmp_path / "m.int8.onnx"
    refused = runner.invoke(
        app, ["export", str(exported), "--quantize", "int8", "--out", str(int8), "--max-drop", "-100"]
    )
    assert refused.exit_code == 1, refused.output
    assert "refused" in refused.output and "accuracy" in refused.output
    assert not int8.exists()
    report = tmp_path / "int8.json"
    accepted = runner.invoke(
        app,
        ["export", str(exported), "--quantize", "int8", "--out", str(int8), "--max-drop", "100", "--json", str(report)],
    )
    assert accepted.exit_code == 0, accepted.output
    figures = json.loads(report.read_text())
    assert figures["accepted"] and figures["precision"] == "int8"
    assert figures["int8"]["int8_size_bytes"] < figures["int8"]["fp32_size_bytes"]
    quantised = OnnxPredictor(int8)
    assert quantised.metadata.precision == "int8" and quantised.metadata.extra["quantization"]["method"] == "static"
    probs = quantised.class_probabilities(_images(3))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_export_from_checkpoint_and_run_folder(tmp_path: Path) -> None:
    """A Lightning-style checkpoint (``model.`` prefix, no metadata) reads its metadata from the run folder."""
    from crackscan.runtime.export import export_model
    from crackscan.runtime.torch_backend import load_torch_model

    run = tmp_path / "run"
    pt = _save_classifier(run, seed=3)
    (run / "split.json").write_text("{}")
    state = torch.load(pt, weights_only=True)["state_dict"]
    (run / "checkpoints").mkdir()
    ckpt = run / "checkpoints" / "best-epoch=01.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 1}, ckpt)
    from_run = load_torch_model(run)
    assert from_run.source == pt and from_run.run_dir == run
    result = export_model(ckpt)
    assert result.path == run / "model.onnx"  # default: next to the run, not inside checkpoints/
    assert result.parity["parity_max_abs_diff"] <= 1e-4
    images = _images(3)
    np.testing.assert_allclose(
        OnnxPredictor(result.path).class_probabilities(images),
        load_predictor(pt).class_probabilities(images),
        atol=1e-4,
    )


def test_reference_images_from_calibration_folder(tmp_path: Path) -> None:
    from crackscan.data.synth import generate_dataset
    from crackscan.runtime.export import reference_data

    data = tmp_path / "data"
    generate_dataset(data, task="classify", n=6, size=64, seed=4)
    meta = ModelMetadata("classify", "x", ["no_crack", "crack"], 1, TINY_SIZE, (0.5,) * 3, (0.5,) * 3)
    refs = reference_data(meta, None, data)
    assert refs.source.startswith("--calibration")
    assert refs.evaluation.shape == (6, TINY_SIZE, TINY_SIZE, 3)
    assert sorted(refs.truth.tolist()) == [0, 0, 0, 1, 1, 1]  # class folders give labels
    synthetic = reference_data(meta, None, None)
    assert "synthetic" in synthetic.source and set(synthetic.truth.tolist()) == {0, 1}


def _saved_segmenter(tmp_path: Path, arch: str, channels: list[int], **options: Any) -> Path:
    """A random mobilenetv2_035 segmenter saved as model.pt with the metadata export rebuilds it from."""
    segmenters = pytest.importorskip("crackscan.models.segmenters")
    torch.manual_seed(0)
    model = segmenters.create_segmenter(arch, "mobilenetv2_035", 1, decoder_channels=channels, **options)
    meta = ModelMetadata(
        task="segment",
        arch=arch,
        class_names=["background", "crack"],
        crack_class=1,
        input_size=64,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        extra={"encoder": "mobilenetv2_035", "decoder_channels": channels, "size_multiple": 32, **options},
    )
    pt = tmp_path / "seg" / "model.pt"
    pt.parent.mkdir()
    torch.save({"state_dict": model.state_dict(), "metadata": json.loads(meta.to_json())}, pt)
    return pt


def test_export_segmenter_odd_sizes(tmp_path: Path) -> None:
    """Segmentation: rebuilt from arch/encoder/classes; outputs follow any input H×W."""
    from crackscan.runtime.export import export_model

    pt = _saved_segmenter(tmp_path, "fpn", [32])
    result = export_model(pt)
    onnx, eager = OnnxPredictor(result.path), load_predictor(pt)
    odd = _images(1, size=96)[:, :96, :64]  # 96×64: multiples of 32, not the traced 64×64
    a, b = onnx.probability_map(odd), eager.probability_map(odd)
    assert a.shape == (1, 96, 64)
    np.testing.assert_allclose(a, b, atol=2e-4)


def test_tf_same_padding_becomes_part_of_the_convs(tmp_path: Path) -> None:
    """EfficientNet-Lite0's run-time "same" padding is exported as Conv pads: no Pad, Shape or Ceil ops."""
    import onnx

    from crackscan.models.segmenters import create_segmenter
    from crackscan.runtime.export import export_onnx

    torch.manual_seed(0)
    model = create_segmenter("fpn", "tf_efficientnet_lite0", 1, decoder_channels=[16]).eval()
    meta = ModelMetadata("segment", "fpn", ["background", "crack"], 1, 64, (0.5,) * 3, (0.5,) * 3)
    meta.extra["size_multiple"] = 32
    path = tmp_path / "seg.onnx"
    export_onnx(model, meta, path, parity_images=_images(2, size=64))
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not ops & {"Pad", "Ceil"}, ops
    onnx_pred = OnnxPredictor(path)
    assert onnx_pred.metadata.extra["fixed_same_padding"] == {"convs": 5, "exact_for_sizes_mod": 32}
    for h, w in ((64, 64), (96, 160), (32, 224)):  # every multiple of the size multiple, not only the traced one
        image = _images(1, size=max(h, w))[:, :h, :w]
        x = torch.from_numpy(((image.astype(np.float32) / 255 - 0.5) / 0.5).transpose(0, 3, 1, 2).copy())
        with torch.no_grad():
            expected = torch.sigmoid(model(x))[:, 0].numpy()
        np.testing.assert_allclose(onnx_pred.probability_map(image), expected, atol=1e-4)


def test_cli_upgrades_an_older_export_with_run_time_padding(tmp_path: Path) -> None:
    """`crackscan export OLD.onnx`: Pads gone, same outputs at every tile size, the input file untouched."""
    import hashlib

    import onnx

    from crackscan.models.segmenters import create_segmenter
    from crackscan.runtime.predictor import METADATA_KEY

    torch.manual_seed(0)
    model = create_segmenter("fpn", "tf_efficientnet_lite0", 1, decoder_channels=[16]).eval()
    old = tmp_path / "old.onnx"  # as crackscan exported before the padding was fixed: plain torch.onnx.export
    torch.onnx.export(
        model, (torch.zeros(1, 3, 64, 64),), str(old), input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    proto = onnx.load(str(old))
    meta = ModelMetadata("segment", "fpn", ["background", "crack"], 1, 64, (0.5,) * 3, (0.5,) * 3)
    meta.extra["size_multiple"] = 32
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    onnx.save(proto, str(old))
    assert "Pad" in {n.op_type for n in proto.graph.node}
    before = hashlib.sha256(old.read_bytes()).hexdigest()
    new = tmp_path / "new.onnx"
    result = runner.invoke(app, ["export", str(old), "--out", str(new)])
    assert result.exit_code == 0, result.output
    assert "5 Pads" in result.output and hashlib.sha256(old.read_bytes()).hexdigest() == before
    assert not {"Pad", "Ceil"} & {n.op_type for n in onnx.load(str(new)).graph.node}
    a, b = OnnxPredictor(old), OnnxPredictor(new)
    image = _images(1, size=160)[:, :96]  # 96×160: a size the upgrade did not check
    np.testing.assert_allclose(a.probability_map(image), b.probability_map(image), atol=1e-5)
    assert b.metadata.extra["fixed_same_padding"]["upgraded_from"] == "old.onnx"
    refused = runner.invoke(app, ["export", str(old), "--out", str(old)])
    assert refused.exit_code == 1 and "never overwrites" in " ".join(refused.output.split())
    (tmp_path / "junk.onnx").write_text("not a model")
    junk = runner.invoke(app, ["export", str(tmp_path / "junk.onnx"), "--out", str(tmp_path / "x.onnx")])
    assert junk.exit_code == 1 and "not a loadable ONNX model" in " ".join(junk.output.split())


def test_pads_that_are_not_zero_constants_stay(tmp_path: Path) -> None:
    """Only zero, constant-mode pads are fused; reflection padding keeps its Pad op and its output."""
    import onnx

    from crackscan.runtime.export import fuse_pads_into_convs

    class ReflectThenConv(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            zero = torch.nn.functional.pad(x, (0, 1, 0, 1))
            return self.conv(torch.nn.functional.pad(zero, (1, 1, 1, 1), mode="reflect"))

    path = tmp_path / "m.onnx"
    torch.onnx.export(ReflectThenConv().eval(), (torch.zeros(1, 3, 8, 8),), str(path), opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    assert fuse_pads_into_convs(proto) == 0  # the zero pad feeds the reflect pad, not a Conv
    assert [n.op_type for n in proto.graph.node].count("Pad") == 2


def test_fpn_with_batch_norm_decoder_is_rebuilt_and_tiles_do_not_see_each_other(tmp_path: Path) -> None:
    """--decoder-norm batch travels in the metadata; the exported decoder has no per-tile normalisation."""
    import onnx

    from crackscan.runtime.export import export_model

    pt = _saved_segmenter(tmp_path, "fpn", [32], decoder_norm="batch")
    onnx_path = export_model(pt).path
    ops = {node.op_type for node in onnx.load(str(onnx_path)).graph.node}
    assert "InstanceNormalization" not in ops and "BatchNormalization" not in ops  # folded into the convs
    onnx_pred = OnnxPredictor(onnx_path)
    assert onnx_pred.metadata.extra["decoder_norm"] == "batch"
    image = _images(1, size=128)
    np.testing.assert_allclose(onnx_pred.probability_map(image), load_predictor(pt).probability_map(image), atol=2e-4)
    # Each output pixel depends on its neighbourhood only: the left half of a 128×128 input
    # predicts the same whether the right half is there or not (away from the cut).
    whole = onnx_pred.probability_map(image)[0]
    half = onnx_pred.probability_map(np.ascontiguousarray(image[:, :, :64]))[0]
    assert np.abs(whole[:, :16] - half[:, :16]).max() < 1e-3  # GroupNorm: ~0.1 in the same test
    with pytest.raises(ValueError, match="fpn only"):
        pytest.importorskip("crackscan.models.segmenters").create_segmenter("unet", decoder_norm="batch")


def test_export_rebuilds_a_half_resolution_unet(tmp_path: Path) -> None:
    """head_stride travels in the metadata: the rebuilt network loads the weights strictly."""
    from crackscan.runtime.export import export_model

    pt = _saved_segmenter(tmp_path, "unet", [32, 16, 16, 8, 8], head_stride=2)
    onnx = OnnxPredictor(export_model(pt).path)
    assert onnx.metadata.extra["head_stride"] == 2
    image = _images(1, size=64)
    np.testing.assert_allclose(onnx.probability_map(image), load_predictor(pt).probability_map(image), atol=2e-4)


def test_bad_model_files_give_clear_errors(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    text = tmp_path / "notes.onnx"
    text.write_text("not a model\n")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    foreign = tmp_path / "foreign.onnx"
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8  # readable by every onnxruntime we support
    onnx.save(proto, str(foreign))
    junk_pt = tmp_path / "junk.pt"
    junk_pt.write_bytes(b"\x00garbage")
    for path, words in ((text, "not a loadable ONNX"), (foreign, "without crackscan metadata")):
        with pytest.raises(ModelLoadError, match=words):
            load_predictor(path)
        result = runner.invoke(app, ["predict", str(path), str(tmp_path)])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    for path in (junk_pt, text, tmp_path / "missing.pt"):
        result = runner.invoke(app, ["export", str(path)])
        assert result.exit_code == 1, result.output
        assert "error" in result.output and "Traceback" not in result.output
    with pytest.raises(ModelLoadError, match="not a loadable torch"):
        load_predictor(junk_pt)


@pytest.mark.parametrize(
    ("quantize", "precision", "max_size", "atol"),
    [("fp16", "fp16-weights", 0.7, 2e-3), ("int8-weights", "int8-weights", 0.5, 2e-2)],
)
def test_cli_reduced_weights_shrink_the_file_and_keep_predictions(
    exported: Path, tmp_path: Path, quantize: str, precision: str, max_size: float, atol: float
) -> None:
    """Weights stored as float16 or int8 (per output channel), computed in float32."""
    fp32 = tmp_path / "m.onnx"
    small = tmp_path / f"m.{quantize}.onnx"
    assert runner.invoke(app, ["export", str(exported), "--out", str(fp32)]).exit_code == 0
    report = tmp_path / "reduced.json"
    result = runner.invoke(
        app, ["export", str(exported), "--quantize", quantize, "--out", str(small), "--json", str(report)]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(report.read_text())
    assert figures["precision"] == precision and figures["int8"]["label"] == quantize
    assert small.stat().st_size < max_size * fp32.stat().st_size
    batch = _images(4)
    np.testing.assert_allclose(
        OnnxPredictor(small).crack_probability(batch), OnnxPredictor(fp32).crack_probability(batch), atol=atol
    )


def test_int8_quantisation_leaves_no_scratch_files_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # onnxruntime's pre-processing dumps sym_shape_infer_temp.onnx and its external weight data
    # into the current folder when symbolic shape inference is incomplete, as it is for the
    # TF-"same"-padded EfficientNet-Lite0 encoder of the bundled segmenters.
    from crackscan.models.segmenters import create_segmenter
    from crackscan.runtime.export import export_onnx
    from crackscan.runtime.predictor import ModelMetadata
    from crackscan.runtime.quantize import quantize_int8

    meta = ModelMetadata("segment", "fpn", ["background", "crack"], 1, 64, (0.5,) * 3, (0.5,) * 3)
    fp32 = tmp_path / "model.onnx"
    export_onnx(create_segmenter("fpn", "tf_efficientnet_lite0", 1, decoder_channels=[16]).eval(), meta, fp32)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    quantize_int8(fp32, "m.int8.onnx", calibration_images=_images(4, size=64))
    assert sorted(p.name for p in work.iterdir()) == ["m.int8.onnx"]
    # Concat/Resize stay float (one shared scale over a skip concatenation costs accuracy).
    quant = OnnxPredictor(work / "m.int8.onnx").metadata.extra["quantization"]
    assert quant["ops"] == ["Conv", "Add", "Gemm", "MatMul"]
