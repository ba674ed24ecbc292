"""`make demo` runs the pipeline end to end; here with a smaller budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from crackscan import demo


def test_demo_runs_end_to_end_and_is_rerunnable(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    summary = demo.run(out, epochs=1, n_patches=40)
    assert summary["check_patches_usable"] and summary["check_walls_usable"]
    assert (out / "run" / "model.onnx").is_file()
    assert summary["evaluation"]["n"] > 0
    assert (out / "measurements.csv").is_file()
    assert json.loads((out / "summary.json").read_text())["measurement"]["images"] == 12
    demo.run(out, epochs=1, n_patches=40)  # idempotent: its own folder is replaced


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("user data")
    with pytest.raises(SystemExit):
        demo.run(tmp_path, epochs=1, n_patches=40)
    assert (tmp_path / "precious.txt").read_text() == "user data"
