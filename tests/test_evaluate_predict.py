"""``crackscan evaluate`` / ``crackscan predict`` on a tiny synthetic set and a tiny exported model.

The model has fixed weights that score the fraction of very dark pixels, so its
predictions are known exactly: images with dark lines are cracks (p ≈ 1), plain noise
is not (p ≈ 0.007, identical for every plain image). Two plain images sit in the
crack folder as labelling mistakes, which gives exact expected metrics.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import make_empty, make_text_file, make_truncated_jpeg
from crackscan.cli import app
from crackscan.evaluation import collect_images, open_model
from crackscan.evaluation.classification import ClassMappingError, match_class_folders
from crackscan.evaluation.inference import classify_files, predict_labels

runner = CliRunner()
CLASSES = ["no_crack", "crack"]


def write_patch(path: Path, seed: int, *, crack: bool, size: int = 32, width: int = 2) -> Path:
    """Grey noise in 100..200; a crack adds a dark (value 10) line of ``width`` px."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(100, 201, (size, size, 3), dtype=np.uint8)
    if crack:
        at = int(rng.integers(2, size - width - 2))
        length = int(rng.integers(3 * size // 4, size + 1))  # distinct lengths → distinct scores
        if seed % 2:
            arr[at : at + width, :length] = 10
        else:
            arr[:length, at : at + width] = 10
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def make_set(root: Path, crack_dir: str = "Positive", no_crack_dir: str = "Negative", split: str | None = None) -> Path:
    """16 crack-folder images (14 with lines, 2 plain = mislabelled) + 16 plain ones."""
    base = root / split if split else root
    for i in range(16):
        write_patch(base / crack_dir / f"c_{i:02d}.png", 1000 + i, crack=i < 14)
        write_patch(base / no_crack_dir / f"n_{i:02d}.png", 2000 + i, crack=False)
    return root


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from torch import nn

    from crackscan.runtime.export import export_onnx
    from crackscan.runtime.predictor import ModelMetadata

    class DarkPixels(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # normalised x = 2v/255 - 1: dark pixels (v ≤ 20) give relu(-mean(x) - 0.5) > 0.34,
            # noise (v ≥ 100) gives 0
            self.conv = nn.Conv2d(3, 1, 1)
            self.fc = nn.Linear(1, 2)
            with torch.no_grad():
                self.conv.weight.fill_(-1 / 3)
                self.conv.bias.fill_(-0.5)
                self.fc.weight.copy_(torch.tensor([[0.0], [400.0]]))
                self.fc.bias.copy_(torch.tensor([0.0, -5.0]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    meta = ModelMetadata(
        task="classify",
        arch="dark_pixels",
        class_names=list(CLASSES),
        crack_class=1,
        input_size=32,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        threshold=0.5,
    )
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_onnx(DarkPixels(), meta, path)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_set(tmp_path_factory.mktemp("ozgenel"))


def invoke(*args: object) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    # a clean exit, never an uncaught exception with a traceback
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


# ---------------------------------------------------------------- evaluate


def test_evaluate_all_positive_negative(model_path: Path, dataset: Path, tmp_path: Path) -> None:
    report = tmp_path / "metrics.json"
    plots = tmp_path / "plots"
    result = invoke("evaluate", model_path, dataset, "--split", "all", "--json", report, "--out", plots)
    assert result.exit_code == 0, result.output
    r = json.loads(report.read_text())
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix", "threshold", "n", "skipped"):
        assert key in r
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision"):
        assert 0.0 <= r[key] <= 1.0
    assert r["n"] == 32 and r["skipped"] == 0 and r["threshold"] == 0.5
    # Positive → crack, Negative → no_crack, matched case-insensitively via synonyms
    assert r["class_mapping"] == {"Negative": "no_crack", "Positive": "crack"}
    assert r["confusion_matrix"] == [[16, 0], [2, 14]]
    assert r["accuracy"] == pytest.approx(30 / 32)
    assert r["precision"] == pytest.approx(1.0)
    assert r["recall"] == pytest.approx(14 / 16)
    assert r["f1"] == pytest.approx(2 * 0.875 / 1.875)
    # the two plain "cracks" tie with all 16 negatives: (14·16 + 2·16·½) / 256
    assert r["roc_auc"] == pytest.approx(0.9375)
    assert {Path(m["path"]).name for m in r["misclassified"]} == {"c_14.png", "c_15.png"}
    assert "weighted avg" in r["classification_report"] and "crack" in result.output
    for name in ("confusion_matrix.png", "roc.png", "pr.png", "misclassified.png", "metrics.json"):
        assert (plots / name).stat().st_size > 0, name


def test_evaluate_without_matplotlib_skips_plots(
    model_path: Path, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    result = invoke("evaluate", model_path, dataset, "--split", "all", "--out", tmp_path / "plots")
    assert result.exit_code == 0, result.output
    assert "matplotlib is not installed" in result.output
    assert json.loads((tmp_path / "plots" / "metrics.json").read_text())["plots"] == []


def test_evaluate_needs_a_split_and_reads_split_files(model_path: Path, dataset: Path, tmp_path: Path) -> None:
    # no split folders and no split file: a clear pointer to --split-file / --split all
    result = invoke("evaluate", model_path, dataset)
    assert result.exit_code == 1
    assert "split" in result.output and "--split all" in result.output

    from crackscan.data.split import make_split, write_split

    plan = make_split(dataset, val=0.25, test=0.25, seed=3)
    split_file = tmp_path / "split.json"
    write_split(plan, split_file)
    out_a, out_b, out_v = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "v.json"
    assert invoke("evaluate", model_path, dataset, "--split-file", split_file, "--json", out_a).exit_code == 0
    assert invoke("evaluate", model_path, dataset, "--split", split_file, "--json", out_b).exit_code == 0
    assert (
        invoke("evaluate", model_path, dataset, "--split", "val", "--split-file", split_file, "--json", out_v).exit_code
        == 0
    )
    a, b, v = (json.loads(p.read_text()) for p in (out_a, out_b, out_v))
    assert a["n"] == len(plan.splits["test"]) == b["n"] and v["n"] == len(plan.splits["val"])
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert "test split of" in a["split"]


def test_evaluate_uses_layout_split_folders(model_path: Path, tmp_path: Path) -> None:
    root = tmp_path / "set"
    make_set(root, "crack", "no_crack", split="train")
    for i in range(3):
        write_patch(root / "test" / "CRACKED" / f"t{i}.png", 3000 + i, crack=True)
        write_patch(root / "test" / "uncracked" / f"u{i}.png", 4000 + i, crack=False)
    out = tmp_path / "m.json"
    result = invoke("evaluate", model_path, root, "--json", out)  # default --split test
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text())
    assert r["n"] == 6 and r["accuracy"] == 1.0
    assert r["class_mapping"] == {"CRACKED": "crack", "uncracked": "no_crack"}
    result = invoke("evaluate", model_path, root, "--split", "val")
    assert result.exit_code == 1 and "no 'val'" in result.output


def test_unmatched_class_folder_lists_model_classes(model_path: Path, tmp_path: Path) -> None:
    root = tmp_path / "set"
    for i in range(2):
        write_patch(root / "crack" / f"c{i}.png", i, crack=True)
        write_patch(root / "pothole" / f"p{i}.png", 10 + i, crack=False)
    result = invoke("evaluate", model_path, root, "--split", "all")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "'pothole'" in text and "no_crack, crack" in text
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("Positive", 1),
        ("NEGATIVE", 0),
        ("crack", 1),
        ("Cracked", 1),
        ("1", 1),
        ("no_crack", 0),
        ("No-Crack", 0),
        ("nocrack", 0),
        ("Uncracked", 0),
        ("0", 0),
    ],
)
def test_class_folder_synonyms(folder: str, expected: int) -> None:
    assert match_class_folders([folder], CLASSES, crack_class=1) == {folder: expected}


def test_exact_class_names_win_and_unknown_folders_fail() -> None:
    # a model whose own classes are Positive/Negative (crack_class 0) still maps "crack"
    assert match_class_folders(["negative", "crack"], ["Positive", "Negative"], 0) == {"negative": 1, "crack": 0}
    with pytest.raises(ClassMappingError, match="no_crack, crack"):
        match_class_folders(["crack", "spalling"], CLASSES, 1)


def test_corrupt_images_are_listed_and_skipped(model_path: Path, tmp_path: Path) -> None:
    root = make_set(tmp_path / "set")
    make_truncated_jpeg(root / "Positive" / "cut.jpg")
    make_empty(root / "Negative" / "empty.png")
    make_text_file(root / "Negative" / "text.jpg")
    out = tmp_path / "m.json"
    result = invoke("evaluate", model_path, root, "--split", "all", "--json", out, "--batch-size", "5")
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text())
    assert r["n"] == 32 and r["skipped"] == 3
    assert {Path(s["path"]).name for s in r["skipped_files"]} == {"cut.jpg", "empty.png", "text.jpg"}
    assert r["confusion_matrix"] == [[16, 0], [2, 14]]
    assert "skipped 3 unreadable" in result.output and "cut.jpg" in result.output


def test_non_model_files_give_a_clear_error(dataset: Path, tmp_path: Path) -> None:
    notes = make_text_file(tmp_path / "notes.txt")
    fake = make_text_file(tmp_path / "fake.onnx", "not a model")
    img = write_patch(tmp_path / "x.png", 0, crack=True)
    for model in (notes, fake, tmp_path / "missing.onnx", tmp_path):
        for args in (("evaluate", model, dataset, "--split", "all"), ("predict", model, img)):
            result = invoke(*args)
            assert result.exit_code == 1, (model, result.output)
            assert "error" in result.output and "Traceback" not in result.output


def test_segmentation_model_on_class_folders_is_a_clear_error(dataset: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    from crackscan.runtime.export import export_onnx
    from crackscan.runtime.predictor import ModelMetadata

    meta = ModelMetadata("segment", "conv", ["background", "crack"], 1, 32, (0.5,) * 3, (0.5,) * 3)
    path = tmp_path / "seg.onnx"
    export_onnx(torch.nn.Conv2d(3, 1, 1), meta, path)
    result = invoke("evaluate", path, dataset, "--split", "all")
    assert result.exit_code == 1
    assert "image/mask" in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------- predict


def test_predict_files_folders_globs_to_csv_and_json(model_path: Path, tmp_path: Path) -> None:
    a = write_patch(tmp_path / "single" / "a.png", 1, crack=True)
    folder = tmp_path / "folder"
    write_patch(folder / "sub" / "b.png", 2, crack=False)
    write_patch(folder / "c.jpeg", 3, crack=False)
    big = write_patch(folder / "big.png", 5, crack=True, size=64, width=4)  # resized to 32 by load_patch
    make_truncated_jpeg(folder / "broken.jpg")
    make_text_file(folder / "README.md")  # not an image extension: ignored in folders
    globbed = tmp_path / "glob"
    write_patch(globbed / "g1.png", 7, crack=True)
    write_patch(globbed / "g2.png", 8, crack=False)
    args = [a, folder, str(globbed / "*.png"), str(a), tmp_path / "missing.png", str(tmp_path / "none*.png")]

    csv_out = tmp_path / "out" / "pred.csv"
    result = invoke("predict", model_path, *args, "--out", csv_out)
    assert result.exit_code == 0, result.output
    with csv_out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "label", "probability", "crack_probability", "crack"]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert sorted(by_name) == ["a.png", "b.png", "big.png", "c.jpeg", "g1.png", "g2.png"]  # a.png once
    assert {n for n, r in by_name.items() if r["crack"] == "true"} == {"a.png", "big.png", "g1.png"}
    for r in rows:
        assert 0.5 <= float(r["probability"]) <= 1.0 and 0.0 <= float(r["crack_probability"]) <= 1.0
        assert r["label"] == ("crack" if r["crack"] == "true" else "no_crack")
    assert "broken.jpg" in result.output and "missing.png" in result.output and "none*.png" in result.output
    assert str(big) in by_name["big.png"]["path"]

    json_out = tmp_path / "pred.json"
    assert invoke("predict", model_path, *args, "--out", json_out, "--batch-size", "2").exit_code == 0
    payload = json.loads(json_out.read_text())
    assert payload["n"] == 6 and payload["n_crack"] == 3 and payload["threshold"] == 0.5
    assert [p["path"] for p in payload["predictions"]] == [r["path"] for r in rows]
    assert {Path(s["path"]).name for s in payload["skipped_files"]} == {"broken.jpg", "missing.png", "none*.png"}


def test_predict_table_and_exit_codes(model_path: Path, tmp_path: Path) -> None:
    img = write_patch(tmp_path / "crack.png", 1, crack=True)
    result = invoke("predict", model_path, img)
    assert result.exit_code == 0
    assert "crack.png" in result.output and "1 crack" in result.output
    bad = make_truncated_jpeg(tmp_path / "only" / "bad.jpg")
    result = invoke("predict", model_path, bad)
    assert result.exit_code == 1 and "bad.jpg" in result.output
    assert invoke("predict", model_path, img, "--out", tmp_path / "x.txt").exit_code == 2


# ---------------------------------------------------------------- library pieces


def test_collect_images_expands_sorts_and_deduplicates(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", "sub/c.tif", ".hidden/d.png", "._e.jpg"):
        write_patch(tmp_path / "d" / name, 0, crack=False)
    make_text_file(tmp_path / "d" / "notes.txt")
    files, problems = collect_images(
        [tmp_path / "d", str(tmp_path / "d" / "*.png"), tmp_path / "d" / "notes.txt", tmp_path / "nope"]
    )
    assert [f.relative_to(tmp_path / "d").as_posix() for f in files] == ["a.JPG", "b.png", "sub/c.tif"]
    assert [(Path(p.path).name, p.reason.split(" (")[0]) for p in problems] == [
        ("notes.txt", "not an image file"),
        ("nope", "no such file or folder"),
    ]


def test_batches_do_not_change_results(model_path: Path, dataset: Path) -> None:
    files = sorted(dataset.rglob("*.png"))
    predictor = open_model(model_path)
    seen: list[tuple[int, int]] = []
    one = classify_files(predictor, files, batch_size=64)
    many = classify_files(predictor, files, batch_size=3, progress=lambda d, t: seen.append((d, t)))
    assert one.indices.tolist() == many.indices.tolist() == list(range(32))
    np.testing.assert_allclose(one.probs, many.probs, atol=1e-6)
    assert np.allclose(one.probs.sum(axis=1), 1.0)
    assert seen[0] == (0, 32) and seen[-1] == (32, 32) and len(seen) == 1 + 11


def test_predict_labels_threshold_and_more_classes() -> None:
    probs = np.array([[0.5, 0.5], [0.6, 0.4], [0.2, 0.8]])
    assert predict_labels(probs, 1, 0.5).tolist() == [1, 0, 1]  # crack when p >= threshold
    assert predict_labels(probs, 1, 0.9).tolist() == [0, 0, 0]
    three = np.array([[0.3, 0.45, 0.25], [0.1, 0.3, 0.6]])
    # crack (index 2) below threshold: the most probable other class
    assert predict_labels(three, 2, 0.5).tolist() == [1, 2]


def test_inference_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import crackscan.cli.evaluate, crackscan.cli.predict, crackscan.evaluation\n"
        "import crackscan.evaluation.classification, crackscan.evaluation.predict, crackscan.evaluation.plots\n"
        "import crackscan.metrics.classification\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sklearn'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
