"""``a+b`` model specs: the mean of the members' probabilities, through every command's loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from crackscan.cli import app
from crackscan.runtime.ensemble import EnsemblePredictor
from crackscan.runtime.predictor import ModelLoadError, load_predictor
from onnx_models import classification_model, multiclass_segmentation_model, segmentation_model


@pytest.fixture()
def two_segmenters(tmp_path: Path) -> tuple[Path, Path]:
    # different slopes and thresholds, so the mean differs from either member
    a = segmentation_model(tmp_path / "a.onnx", a=-10.0, b=-5.0, threshold=0.4)
    b = segmentation_model(tmp_path / "b.onnx", a=-4.0, b=-1.0, threshold=0.6, mean=(0.4, 0.4, 0.4))
    return a, b


def test_ensemble_is_the_mean_of_its_members(two_segmenters: tuple[Path, Path]) -> None:
    a, b = two_segmenters
    ens = load_predictor(f"{a}+{b}")
    assert isinstance(ens, EnsemblePredictor) and ens.task == "segment"
    assert ens.metadata.threshold == pytest.approx(0.5)
    batch = np.random.default_rng(0).integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    pa, pb = load_predictor(a).probability_map(batch), load_predictor(b).probability_map(batch)
    assert not np.allclose(pa, pb, atol=0.05)
    np.testing.assert_allclose(ens.probability_map(batch), (pa + pb) / 2, atol=1e-6)
    # logits are consistent with the probabilities, as the Predictor protocol promises
    logits = ens.logits(batch)
    assert logits.shape == (2, 1, 64, 96)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits[:, 0])), (pa + pb) / 2, atol=1e-4)


def test_classifier_ensemble(tmp_path: Path) -> None:
    a = classification_model(tmp_path / "a.onnx")
    b = classification_model(tmp_path / "b.onnx", a=-3.0, b=-1.0)
    ens = load_predictor(f"{a}+{b}")
    batch = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    expected = (load_predictor(a).crack_probability(batch) + load_predictor(b).crack_probability(batch)) / 2
    np.testing.assert_allclose(ens.crack_probability(batch), expected, atol=1e-6)
    np.testing.assert_allclose(ens.class_probabilities(batch).sum(axis=1), 1.0, atol=1e-6)


def test_members_must_agree(tmp_path: Path, two_segmenters: tuple[Path, Path]) -> None:
    a, _ = two_segmenters
    cls = classification_model(tmp_path / "cls.onnx")
    three = multiclass_segmentation_model(tmp_path / "three.onnx")
    prep = segmentation_model(tmp_path / "prep.onnx", extra={"preprocess": {"invert": True}})
    with pytest.raises(ModelLoadError, match="'classify' model"):
        load_predictor(f"{a}+{cls}")
    with pytest.raises(ModelLoadError, match="has classes"):
        load_predictor(f"{a}+{three}")
    with pytest.raises(ModelLoadError, match="different preprocessing"):
        load_predictor(f"{a}+{prep}")
    with pytest.raises(ModelLoadError, match="two or more models"):
        load_predictor(f"{a}+")
    with pytest.raises(ModelLoadError, match="no such model"):
        load_predictor(f"{a}+missing.onnx")


def test_evaluate_and_inspect_take_an_ensemble(two_segmenters: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_segmenters
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        image = rng.integers(150, 255, (64, 96, 3), dtype=np.uint8)
        mask = np.zeros((64, 96), np.uint8)
        mask[:, 40 + i : 44 + i] = 255
        image[mask > 0] = 20
        Image.fromarray(image).save(data / "images" / f"{i}.png")
        Image.fromarray(mask).save(data / "masks" / f"{i}.png")
    runner = CliRunner()
    out = runner.invoke(app, ["evaluate", f"{a}+{b}", str(data), "--split", "all", "--json", str(tmp_path / "e.json")])
    assert out.exit_code == 0, out.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["n"] == 3 and report["threshold"] == pytest.approx(0.5) and report["iou"] > 0.9
    json_t = str(tmp_path / "t.json")
    args = ["evaluate", f"{a}+{b}", str(data), "--split", "all", "--threshold", "0.7", "--json", json_t]
    assert runner.invoke(app, args).exit_code == 0
    assert json.loads((tmp_path / "t.json").read_text())["threshold"] == pytest.approx(0.7)
    out = runner.invoke(
        app, ["inspect", str(data / "images" / "0.png"), "--model", f"{a}+{b}", "--out", str(tmp_path / "i")]
    )
    assert out.exit_code == 0, out.output
    assert (tmp_path / "i" / "report.html").is_file()


def test_service_names_an_ensemble_without_a_plus(two_segmenters: tuple[Path, Path]) -> None:
    from crackscan.serve.inference import load_models

    a, b = two_segmenters
    registry = load_models([f"{a}+{b}", str(a)])
    # "+" would read as a space in ?model=…
    chosen = registry.for_task(("segment",), "a-plus-b", "/v1/segment")
    assert isinstance(chosen.predictor, EnsemblePredictor)
    assert registry.for_task(("segment",), "a", "/v1/segment").predictor.path == a


def test_serve_cli_checks_each_member(two_segmenters: tuple[Path, Path], tmp_path: Path) -> None:
    import typer

    from crackscan.cli.serve import _model_sources

    a, b = two_segmenters
    assert _model_sources([f"{a}+{b}"]) == [f"{a.resolve()}+{b.resolve()}"]
    first, second = _model_sources(["crack-seg+crack-seg-unet"])[0].split("+")
    assert Path(first).name == "crack-seg.onnx" and Path(second).name == "crack-seg-unet.onnx"
    with pytest.raises(typer.Exit):
        _model_sources([f"{a}+{tmp_path / 'missing.onnx'}"])
