"""`crackscan models`: the bundled catalogue and one model's facts, read from the ONNX metadata alone."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crackscan.cli import app
from crackscan.data.licences import licence_of
from crackscan.runtime.catalog import bundled_names, restrictive_licences, summarise
from onnx_models import classification_model, segmentation_model

runner = CliRunner()


def test_the_bundled_catalogue_lists_every_model_with_its_training_licences() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [m["name"] for m in listed] == bundled_names() and {"crack-seg", "crack-cls"} <= set(bundled_names())
    seg = next(m for m in listed if m["name"] == "crack-seg")
    assert seg["task"] == "segment" and 0 < seg["threshold"] < 1 and seg["size_mb"] <= 10
    deepcrack = next(t for t in seg["training_sets"] if t["name"] == "deepcrack")
    assert "research" in deepcrack["licence"] and deepcrack["test"] == 237  # the official test split kept out
    assert Path(seg["card"]).name == "crack-seg.md"
    table = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "crack-seg-unet" in table.output
    assert "note: crack-seg was trained on deepcrack" in " ".join(table.output.split())  # its terms travel with it


def test_one_model_file_in_full(tmp_path: Path) -> None:
    sources = [
        {
            "name": "walls",
            "licence": "CC BY-NC 4.0",
            "counts": {"train": 40, "val": 8, "test_kept_out": 9},
            "test_digests": [f"{i:012x}" for i in range(9)],
        },
        {"name": "roads", "licence": "MIT (LICENSE)", "counts": {"train": 20, "val": 4, "test_kept_out": 0}},
    ]
    extra = {
        "encoder": "tf_efficientnet_lite0",
        "tta_threshold": 0.41,
        "training_data": {"sources": sources},
        "metrics": {"val_iou": 0.61, "val_loss": 0.3},
        "command": "crackscan train segment walls roads",
    }
    model = segmentation_model(tmp_path / "seg.onnx", threshold=0.45, extra=extra)
    s = summarise(model)
    assert (s.task, s.threshold, s.tta_threshold, s.card) == ("segment", 0.45, 0.41, None)
    assert s.encoder == "tf_efficientnet_lite0"
    assert [(t.name, t.train, t.test, t.test_digests) for t in s.training_sets] == [
        ("walls", 40, 9, 9),
        ("roads", 20, 0, None),
    ]
    assert s.metrics == {"val_iou": 0.61}  # headline figures only
    assert restrictive_licences(s) == ["walls (CC BY-NC 4.0)"]
    shown = runner.invoke(app, ["models", str(model)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "crackscan train segment walls roads" in shown.output
    assert "0.45 (TTA 0.41)" in shown.output and "trained on walls" in shown.output
    assert "9 test images' digests recorded" in " ".join(shown.output.split())

    # a classifier records one class-folder set; its licence comes from the known public sets
    cls = classification_model(tmp_path / "cls.onnx", extra={"training_data": {"root": "/data/ozgenel"}})
    assert [(t.name, t.licence) for t in summarise(cls).training_sets] == [("ozgenel", "CC BY 4.0")]


def test_a_missing_or_foreign_model_is_a_clear_error(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["models", "no-such-model"])
    assert missing.exit_code == 1 and "crack-seg" in missing.output  # the bundled names are offered
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    junk = runner.invoke(app, ["models", str(tmp_path / "junk.onnx")])
    assert junk.exit_code == 1 and "not a loadable ONNX model" in junk.output and "Traceback" not in junk.output


def test_a_sets_licence_file_is_read_for_the_licence_it_names(tmp_path: Path) -> None:
    mit = tmp_path / "scratches"
    mit.mkdir()
    (mit / "SOURCE_LICENSE").write_text("Some Project\n\nThe MIT License (MIT)\n\nCopyright (c) 2017 Someone\n")
    assert licence_of(mit) == "MIT (SOURCE_LICENSE)"
    other = tmp_path / "own"
    other.mkdir()
    (other / "LICENSE.txt").write_text("\nInternal use only, ACME Corp.\n")
    assert licence_of(other) == "LICENSE.txt: Internal use only, ACME Corp."
    assert licence_of(tmp_path / "deepcrack") == "non-commercial research and education only"
    assert licence_of(tmp_path / "anything") == "unknown"
