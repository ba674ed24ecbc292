"""``crackscan calibrate``: the pooled best-F1 threshold on labelled pairs, stored in a copy of the model.

The torch-free test models (tests/onnx_models.py) score darkness per pixel, so the
calibrated threshold can be checked against a brute-force sweep of the same probabilities.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import make_pair_set
from crackscan.cli import app
from crackscan.data.synth import generate_dataset
from crackscan.evaluation import open_model
from crackscan.evaluation.calibration import (
    THRESHOLDS,
    Calibration,
    CalibrationError,
    calibrate_threshold,
    write_calibrated,
)
from crackscan.evaluation.segmentation import select_pairs
from crackscan.imageio import read_image, read_mask
from crackscan.runtime.predictor import load_predictor
from onnx_models import model_metadata, multiclass_segmentation_model, segmentation_model

runner = CliRunner()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def text(result) -> str:  # type: ignore[no-untyped-def]
    return " ".join(result.output.split())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("cal")
    generate_dataset(base / "walls", task="segment", n=5, size=64, seed=1)
    generate_dataset(base / "decks", task="segment", n=4, size=64, seed=2)
    return base / "walls", base / "decks"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    # a = -6 spreads the probabilities of the synthetic cracks' pixels, so the threshold matters
    return segmentation_model(tmp_path / "seg.onnx", a=-6.0, b=-2.0, threshold=0.5)


def brute_force_threshold(predictor, roots: tuple[Path, ...]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Pooled exact F1 per threshold from the model's probabilities, counted directly."""
    tp = np.zeros(len(THRESHOLDS))
    n_pred = np.zeros(len(THRESHOLDS))
    n_true = 0
    for root in roots:
        for image_path in sorted((root / "images").iterdir()):
            rgb = read_image(image_path)
            truth = read_mask(root / "masks" / f"{image_path.stem}.png").labels > 0
            prob = predictor.probability_map(rgb[None])[0]
            for i, t in enumerate(THRESHOLDS):
                pred = prob >= t
                tp[i] += (pred & truth).sum()
                n_pred[i] += pred.sum()
            n_true += truth.sum()
    f1 = 2 * tp / np.maximum(n_pred + n_true, 1)
    best = int(np.argmax(f1))
    return float(THRESHOLDS[best]), float(f1[best])


def test_threshold_is_the_best_pooled_exact_f1_over_every_set(model: Path, sets: tuple[Path, Path]) -> None:
    predictor = open_model(model)
    cal = calibrate_threshold(predictor, [(r.name, select_pairs(r, "all")) for r in sets])
    threshold, f1 = brute_force_threshold(predictor, sets)
    assert cal.threshold == pytest.approx(threshold) and cal.f1 == pytest.approx(f1, abs=1e-9)
    assert cal.threshold != 0.5  # the sweep moved it (else the test would not tell)
    assert cal.n == 9 and [s.name for s in cal.sets] == ["walls", "decks"] and [s.n for s in cal.sets] == [5, 4]
    assert cal.previous == 0.5 and not cal.tta


def test_cli_writes_a_calibrated_copy_and_never_touches_the_model(
    model: Path, sets: tuple[Path, Path], tmp_path: Path
) -> None:
    before, data_before = sha(model), {p: sha(p) for r in sets for p in sorted(r.rglob("*.png"))}
    out, report = tmp_path / "calibrated" / "seg.onnx", tmp_path / "cal.json"
    result = invoke("calibrate", model, *sets, "--split", "all", "--out", out, "--json", report)
    assert result.exit_code == 0, result.output
    saved = json.loads(report.read_text())
    threshold = saved["threshold"]
    assert f"threshold {threshold:g} (was 0.5)" in text(result)
    meta = load_predictor(out).metadata
    assert meta.threshold == threshold and "tta_threshold" not in meta.extra
    assert meta.extra["calibration"]["f1"] == pytest.approx(saved["f1"])
    assert "walls" in meta.extra["calibration"]["source"] and "calibrate" in meta.extra["threshold_source"]
    assert sha(model) == before and {p: sha(p) for p in data_before} == data_before
    # evaluate and inspect then use it without being told
    metrics = tmp_path / "m.json"
    assert invoke("evaluate", out, sets[0], "--split", "all", "--json", metrics).exit_code == 0
    assert json.loads(metrics.read_text())["threshold"] == threshold


def test_tta_threshold_is_stored_apart_and_used_only_by_tta_runs(
    model: Path, sets: tuple[Path, Path], tmp_path: Path
) -> None:
    predictor = open_model(model)
    cal = calibrate_threshold(predictor, [("walls", select_pairs(sets[0], "all"))], tta=True)
    cal.threshold = 0.37  # a value no plain run would pick, to see who reads it
    out = write_calibrated(model, tmp_path / "tta.onnx", cal, source="walls (all)")
    meta = load_predictor(out).metadata
    assert meta.threshold == 0.5 and meta.extra["tta_threshold"] == 0.37
    assert meta.threshold_for(tta=True) == 0.37 and meta.threshold_for() == 0.5

    def evaluated(*extra: str) -> float:
        report = tmp_path / "e.json"
        result = invoke("evaluate", out, sets[0], "--split", "all", "--json", report, *extra)
        assert result.exit_code == 0, result.output
        return json.loads(report.read_text())["threshold"]

    assert evaluated("--tta") == 0.37
    assert evaluated() == 0.5
    assert evaluated("--tta", "--threshold", "0.6") == 0.6  # an explicit threshold wins
    # inspect likewise
    from crackscan.analysis.inspect import InspectionSettings, inspect_image

    rgb = read_image(sorted((sets[0] / "images").iterdir())[0])
    tta_predictor = load_predictor(out, threads=1)
    assert inspect_image(tta_predictor, rgb, settings=InspectionSettings(tile=64, tta=True)).threshold == 0.37
    assert inspect_image(tta_predictor, rgb, settings=InspectionSettings(tile=64)).threshold == 0.5


def test_threshold_for_ignores_a_broken_tta_value() -> None:
    meta = model_metadata("segment", threshold=0.6)
    for bad in (None, "0.3", 0.0, 1.0, float("nan")):
        meta.extra["tta_threshold"] = bad
        assert meta.threshold_for(tta=True) == 0.6


@pytest.mark.parametrize("case", ["multiclass", "no_crack", "out_is_model", "file_for_two_sets", "no_set_file"])
def test_bad_calibrations_get_clear_errors(case: str, model: Path, sets: tuple[Path, Path], tmp_path: Path) -> None:
    args: list[object] = [model, sets[0], "--split", "all"]
    if case == "multiclass":
        args[0] = multiclass_segmentation_model(tmp_path / "mc.onnx")
        expected = "multi-class"
    elif case == "no_crack":
        make_pair_set(tmp_path / "clean", 3, n_no_crack=3)
        args[1] = tmp_path / "clean"
        expected = "no crack pixel"
    elif case == "out_is_model":
        args += ["--out", model]
        expected = "never modified"
    elif case == "file_for_two_sets":
        split = tmp_path / "split.json"
        split.write_text("{}")
        args = [model, *sets, "--split-file", split]
        expected = "serves one data set"
    else:
        (tmp_path / "splits").mkdir()
        args = [model, sets[0], "--split-file", tmp_path / "splits"]
        expected = "no walls.json"
    before = sha(model)
    result = invoke("calibrate", *args)
    assert result.exit_code == 1, result.output
    assert expected in text(result) and "Traceback" not in text(result)
    assert sha(model) == before


def test_write_refuses_files_that_are_not_crackscan_models(model: Path, tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match=r"\.onnx"):
        write_calibrated(model, tmp_path / "seg.txt", Calibration(0.4, 0.9, False, 0.5, 3))
