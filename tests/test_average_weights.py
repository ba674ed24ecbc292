"""tools/average_weights.py: the weight average of models of one design, and its refusals."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

TOOL = Path(__file__).resolve().parents[1] / "tools" / "average_weights.py"
spec = importlib.util.spec_from_file_location("average_weights", TOOL)
assert spec and spec.loader
average_weights = importlib.util.module_from_spec(spec)
spec.loader.exec_module(average_weights)

META = {
    "task": "segment", "arch": "fpn", "class_names": ["background", "crack"], "crack_class": 1,
    "input_size": 256, "mean": [0.5] * 3, "std": [0.5] * 3, "threshold": 0.6,
    "extra": {"encoder": "tf_efficientnet_lite0", "decoder_channels": [64], "metrics": {"val_iou": 0.5}},
}  # fmt: skip


def _save(path: Path, weight: float, threshold: float, **changes: object) -> Path:
    state = {"conv.weight": torch.full((2, 2), weight), "bn.num_batches_tracked": torch.tensor(7 + int(weight))}
    torch.save({"state_dict": state, "metadata": {**META, "threshold": threshold, **changes}}, path)
    return path


def test_average_means_float_tensors_and_thresholds_and_keeps_integer_buffers(tmp_path: Path) -> None:
    a, b = _save(tmp_path / "a.pt", 1.0, 0.6), _save(tmp_path / "b.pt", 3.0, 0.8)
    soup = average_weights.average([a, b])
    assert torch.equal(soup["state_dict"]["conv.weight"], torch.full((2, 2), 2.0))
    assert int(soup["state_dict"]["bn.num_batches_tracked"]) == 8  # the first model's
    assert soup["metadata"]["threshold"] == pytest.approx(0.7)
    assert "metrics" not in soup["metadata"]["extra"]  # they described model a only
    assert soup["metadata"]["extra"]["soup_of"] == [str(a), str(b)]
    assert average_weights.average([a, b], threshold=0.5)["metadata"]["threshold"] == 0.5


def test_average_refuses_models_of_different_designs(tmp_path: Path) -> None:
    a = _save(tmp_path / "a.pt", 1.0, 0.6)
    b = _save(tmp_path / "b.pt", 3.0, 0.8, arch="unet")
    with pytest.raises(SystemExit, match="arch"):
        average_weights.average([a, b])
    with pytest.raises(SystemExit, match="two or more"):
        average_weights.average([a])
