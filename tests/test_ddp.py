"""Multi-process training: the Lightning options reach the Trainer, and a 2-process DDP run on CPU works.

The DDP run goes through the real command in a subprocess (``python -m crackscan train
classify --strategy ddp --devices 2 --accelerator cpu``): Lightning's ``ddp`` launcher
starts rank 1 by re-running that command line, which is exactly how users (and
torchrun/srun) start ranks, and which pytest's own process could not be re-run as.
``ddp_spawn`` would hide the bugs that matter here (every rank executing the whole
command: run-folder checks, split/config writes, export), so it is not what is tested.
The backend on CPU is gloo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from crackscan.cli import app
from crackscan.data.synth import generate_dataset

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning")

runner = CliRunner()


class _Stop(Exception):
    """Raised by the fake Trainer: everything up to the Trainer ran."""


def _fake_trainer(seen: dict[str, Any]) -> type:
    class FakeTrainer:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)
            raise _Stop

    return FakeTrainer


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_distributed_options_reach_the_trainer(task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = pytest.importorskip(f"crackscan.training.{task}")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(module.L, "Trainer", _fake_trainer(seen))
    data = tmp_path / "data"
    generate_dataset(data, task=task, n=8, size=64, seed=0)
    extra = ["--img-size", 32] if task == "classify" else ["--crop", 64]
    args = ["train", task, data, "--out", tmp_path / "run", "--no-pretrained", "--epochs", 1, *extra]
    args += ["--accelerator", "cpu", "--devices", "3", "--num-nodes", "2", "--strategy", "ddp"]
    with pytest.raises(_Stop):
        runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert seen["accelerator"] == "cpu" and seen["devices"] == 3
    assert seen["num_nodes"] == 2 and seen["strategy"] == "ddp"


def test_two_process_ddp_on_cpu_trains_and_exports_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_dataset(data, task="classify", n=24, size=48, seed=0)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "crackscan", "train", "classify", str(data), "--out", str(run)]
    cmd += ["--no-pretrained", "--img-size", "32", "--epochs", "1", "--freeze-epochs", "0", "--batch-size", "4"]
    cmd += ["--limit-per-class", "6", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
    # One thread per rank: two ranks share a small machine; no GPU even where one exists.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "COLUMNS": "200"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]

    # Both ranks trained (Lightning reports the group), only rank 0 evaluated and exported.
    assert "distributed_backend=gloo" in output and "All distributed processes registered" in output
    assert done.stdout.count("val_accuracy") == 1, done.stdout
    assert done.stdout.count("training took") == 2  # rank 1 finishes too, with no metrics of its own
    for name in ("config.json", "split.json", "model.onnx", "model.pt", "metrics.csv", "result.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text())["strategy"] == "ddp"
    checkpoints = sorted((run / "checkpoints").glob("*.ckpt"))
    assert [c.name for c in checkpoints if c.name != "last.ckpt"] and (run / "checkpoints" / "last.ckpt").is_file()
    state = torch.load(checkpoints[0], map_location="cpu", weights_only=True)["state_dict"]
    assert state and all(k.startswith("model.") for k in state)

    from crackscan.runtime.predictor import load_predictor

    predictor = load_predictor(run / "model.onnx")
    probabilities = predictor.crack_probability(np.full((2, 32, 32, 3), 100, np.uint8))
    assert probabilities.shape == (2,) and np.all((probabilities >= 0) & (probabilities <= 1))
    assert json.loads((run / "result.json").read_text())["metrics"]["val_n"] > 0
