"""crackscan bench: every backend measured in one run, JSON report, torch parts skippable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crackscan import bench
from crackscan.cli import app
from onnx_models import classification_model

runner = CliRunner()
RESULT_KEYS = {"images", "seconds", "images_per_s", "batch", "batch_latency_p50_ms", "batch_latency_p95_ms"}


@pytest.fixture
def one_torch_thread():
    """The suite shares two cores with training jobs: OpenMP threads spinning against them cost 10×."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_cli_bench_default_model_writes_json(tmp_path: Path, one_torch_thread: None) -> None:
    pytest.importorskip("torchvision")
    report_path = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "--n", "64", "--batch-size", "32", "--json", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert {"machine", "task", "model", "images", "n", "results", "ratios", "notes"} <= set(report)
    assert report["task"] == "classify" and report["n"] == 64 and "synthetic" in report["images"]
    results = report["results"]
    for name in ("seeds_baseline", "torch_eager", "onnx_fp32", "onnx_int8"):
        assert results[name] is not None, (name, report["notes"])
        assert set(results[name]) >= RESULT_KEYS
        assert results[name]["images_per_s"] > 0
    assert results["onnx_fp32"]["images"] == 64 and results["seeds_baseline"]["batch"] == 32
    assert "latency_1_p50_ms" in results["onnx_fp32"]
    ratios = report["ratios"]
    assert ratios["onnx_fp32_vs_seeds_baseline"] == pytest.approx(
        results["onnx_fp32"]["images_per_s"] / results["seeds_baseline"]["images_per_s"], rel=0.01
    )
    assert "seeds" in result.output and "int8" in result.output


def test_bench_without_torch_skips_torch_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An .onnx model on a machine without torch: ONNX Runtime figures, torch rows skipped with a note."""
    model = classification_model(tmp_path / "model.onnx", input_size=32)
    monkeypatch.setattr(bench, "torch_available", lambda: False)
    report = bench.run_bench(model=str(model), n=16, batch_size=8)
    results = report["results"]
    assert results["torch_eager"] is None and results["seeds_baseline"] is None
    assert results["onnx_fp32"]["images"] == 16
    assert any("torch not installed" in note for note in report["notes"])
    assert report["ratios"]["onnx_fp32_vs_seeds_baseline"] is None


def test_bench_rejects_wrong_task_and_bad_n(tmp_path: Path) -> None:
    model = classification_model(tmp_path / "model.onnx", input_size=32)
    with pytest.raises(bench.BenchError, match="--task classify"):
        bench.run_bench(task="segment", model=str(model), n=2)
    result = runner.invoke(app, ["bench", "--task", "detect"])
    assert result.exit_code == 1 and "--task" in result.output


def test_bench_does_not_quantise_a_model_whose_weights_are_already_reduced(tmp_path: Path) -> None:
    from crackscan.bench import _fill_missing
    from crackscan.runtime.predictor import resolve_model_path

    models = {"torch": None, "fp32": resolve_model_path("crack-seg"), "int8": None}  # fp16-stored weights
    notes: list[str] = []
    _fill_missing(models, tmp_path, np.zeros((1, 64, 64, 3), np.uint8), notes)
    assert models["int8"] is None and not (tmp_path / "export").exists()
    assert notes == ["onnx int8: skipped (precision fp16-weights: static INT8 starts from an fp32 export)"]


def test_bench_times_an_ensemble_spec_as_one_merged_graph() -> None:
    pytest.importorskip("onnx")
    report = bench.run_bench(task="segment", model="crack-seg+crack-seg-unet", n=2, images=None)
    assert report["arch"] == "fpn+unet"
    assert report["results"]["onnx_fp32"]["images_per_s"] > 0
    assert report["results"]["torch_eager"] is None  # no model.pt behind a merged graph
    assert any("merged into one graph" in note for note in report["notes"])
    with pytest.raises(bench.BenchError, match="crack-cls"):
        bench.run_bench(task="segment", model="crack-seg+crack-cls", n=2)
