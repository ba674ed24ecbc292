"""`make demo` runs the pipeline end to end; here with a smaller budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from crackscan import demo

SMALL = {"n_patches": 40, "n_photos": 1, "photo_size": (600, 800), "epochs": 1}


def test_demo_runs_end_to_end_and_is_rerunnable(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    summary = demo.run(out, train=True, **SMALL)
    assert summary["check_patches_usable"] and summary["check_masks_usable"]
    assert (out / "measurements.csv").is_file()
    assert json.loads((out / "summary.json").read_text())["measurement"]["images"] == 12
    training = summary["training"]
    assert (out / "run" / "model.onnx").is_file() and training["evaluation"]["n"] > 0
    if "inspection" in summary:  # the bundled crack-seg model is in this build
        assert (out / "inspection" / "report.html").is_file()
    demo.run(out, train=False, **SMALL)  # idempotent: its own folder is replaced


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("user data")
    with pytest.raises(SystemExit):
        demo.run(tmp_path, **SMALL)
    assert (tmp_path / "precious.txt").read_text() == "user data"
