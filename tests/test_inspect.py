"""``crackscan inspect`` and its library: tiled photos → masks, measurements, overlays, CSV, HTML.

Photos are bright walls with dark lines drawn in the test; the darkness segmenter of
tests/onnx_models.py marks exactly those lines, so counts and widths are known.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import make_empty, make_png_claiming, make_truncated_jpeg, tree_hashes
from crackscan.analysis.inspect import (
    DEFAULT_COARSE_GATE,
    InspectionError,
    InspectionSettings,
    inspect_image,
    inspect_paths,
)
from crackscan.analysis.output_folder import MARKER
from crackscan.cli import app
from crackscan.imageio import write_image
from crackscan.runtime.predictor import load_predictor
from onnx_models import classification_model, segmentation_model

runner = CliRunner()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def text(result) -> str:  # type: ignore[no-untyped-def]
    """CLI output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def wall(h: int = 400, w: int = 600, lines: tuple[tuple[int, int, int, int, int], ...] = ()) -> np.ndarray:
    """A bright wall with dark straight cracks ``(x0, y0, x1, y1, thickness px)``."""
    rgb = np.full((h, w, 3), 205, np.uint8)
    rgb += np.random.default_rng(h * w).integers(0, 20, rgb.shape, dtype=np.uint8)  # texture, never dark
    for x0, y0, x1, y1, t in lines:
        cv2.line(rgb, (x0, y0), (x1, y1), (15, 15, 15), t)
    return rgb


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return segmentation_model(tmp_path_factory.mktemp("models") / "seg.onnx", input_size=128)


@pytest.fixture(scope="module")
def cls_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return classification_model(tmp_path_factory.mktemp("models") / "cls.onnx")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Two good photos (one crack each, one < &"odd" name) and one corrupt JPEG."""
    folder = tmp_path / "photos"
    write_image(folder / "horizontal.png", wall(lines=((40, 200, 560, 200, 6),)))
    write_image(folder / 'odd <b>&"name".png', wall(300, 500, lines=((60, 40, 60, 260, 3),)))
    make_truncated_jpeg(folder / "corrupt.jpg")
    return folder


def test_cli_folder_with_a_corrupt_file(seg_model: Path, photos: Path, tmp_path: Path) -> None:
    before = tree_hashes(photos)
    out = tmp_path / "report"
    result = invoke("inspect", photos, "--model", seg_model, "--mm-per-px", "0.1", "--out", out)
    assert result.exit_code == 0, result.output
    assert "corrupt.jpg" in text(result) and "truncated" in text(result)
    assert tree_hashes(photos) == before  # inputs untouched

    for stem in ("horizontal", "odd__b___name_"):
        mask = np.asarray(Image.open(out / "masks" / f"{stem}.png"))
        assert set(np.unique(mask).tolist()) == {0, 255}
        assert (out / "overlays" / f"{stem}.png").is_file()
        doc = json.loads((out / "results" / f"{stem}.json").read_text())
        assert doc["status"] == "ok" and doc["model"]["task"] == "segment" and doc["settings"]["mm_per_px"] == 0.1
        assert doc["measurement"]["cracks"] and doc["threshold"] == 0.5
    mask = np.asarray(Image.open(out / "masks" / "horizontal.png")) > 0
    assert mask.shape == (400, 600) and mask[200, 100:500].all() and not mask[:150].any()

    with (out / "summary.csv").open() as fh:
        rows = {Path(r["image"]).name: r for r in csv.DictReader(fh)}
    expected_columns = "image cracks length_px max_width_px mean_width_px length_mm max_width_mm severity"
    assert set(expected_columns.split()) | {"crack_probability", "status", "error"} <= set(next(iter(rows.values())))
    assert rows["corrupt.jpg"]["status"] == "failed" and "truncated" in rows["corrupt.jpg"]["error"]
    h = rows["horizontal.png"]
    assert h["status"] == "ok" and int(h["cracks"]) == 1
    assert float(h["length_px"]) == pytest.approx(520 + 6, rel=0.03)  # cv2 line ends are round caps
    assert 5.0 <= float(h["max_width_px"]) <= 8.0 and float(h["max_width_mm"]) == pytest.approx(
        float(h["max_width_px"]) * 0.1, abs=1e-3
    )
    assert h["severity"] in ("medium", "fine") and float(h["crack_probability"]) > 0.95
    v = rows['odd <b>&"name".png']
    assert int(v["cracks"]) == 1 and float(v["max_width_px"]) < float(h["max_width_px"])

    page = (out / "report.html").read_text()
    assert "odd &lt;b&gt;&amp;&quot;name&quot;.png" in page and "<b>&" not in page
    assert page.count("data:image/jpeg;base64,") >= 4  # 2 thumbnails + 2 overlays
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained
    assert "corrupt.jpg" in page and str(seg_model.stem) in page
    # sorted by severity: the wider crack first
    assert page.index("horizontal.png") < page.index("odd &lt;b&gt;")
    # how far the model's widths are from hand-measured ones, in mm at the given scale
    assert "differs from the hand-annotated one by 1–4 px on average (0.1–0.4 mm at this scale)" in page
    assert (out / MARKER).is_file()


def test_output_folder_rules(seg_model: Path, photos: Path, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    result = invoke("inspect", photos, "--model", seg_model, "--out", busy)
    assert result.exit_code == 2 and "--overwrite" in text(result)
    assert invoke("inspect", photos, "--model", seg_model, "--out", busy, "--overwrite").exit_code == 0
    assert (busy / "notes.txt").read_text() == "mine" and (busy / "report.html").is_file()

    # A folder holding an earlier report is reused; its old per-photo files are removed.
    out = tmp_path / "again"
    assert invoke("inspect", photos, "--model", seg_model, "--out", out).exit_code == 0
    assert (out / "masks" / "horizontal.png").is_file()
    assert invoke("inspect", photos / "odd*.png", "--model", seg_model, "--out", out).exit_code == 0
    assert not (out / "masks" / "horizontal.png").exists() and (out / "masks" / "odd__b___name_.png").is_file()

    # A report inside the photo folder: the second run does not inspect the first run's overlays.
    inner = photos / "report"
    assert invoke("inspect", photos, "--model", seg_model, "--out", inner).exit_code == 0
    results = inspect_paths([photos], model=seg_model, out_dir=inner)
    assert sorted(Path(r.source).name for r in results) == ["corrupt.jpg", "horizontal.png", 'odd <b>&"name".png']
    # …but a folder holding input photos is never written into.
    result = invoke("inspect", photos, "--model", seg_model, "--out", photos, "--overwrite")
    assert result.exit_code == 2 and "input photos" in text(result)


def test_bad_options_exit_2(seg_model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for scale in ("0", "-0.2", "nan"):
        result = invoke("inspect", photos, "--model", seg_model, "--mm-per-px", scale, "--out", tmp_path / "o")
        assert result.exit_code == 2 and "mm-per-px" in text(result), scale
    assert invoke("inspect", photos, "--model", seg_model, "--overlap", "1.0", "--out", tmp_path / "o").exit_code == 2
    assert invoke("inspect", photos, "--model", seg_model, "--threshold", "1.5", "--out", tmp_path / "o").exit_code == 2
    result = invoke("inspect", photos, "--model", seg_model, "--coarse-gate", "-0.1", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "coarse-gate" in text(result)
    result = invoke("inspect", photos, "--model", tmp_path / "missing.onnx", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "missing.onnx" in text(result)
    monkeypatch.setattr("crackscan.analysis.inspect.DEFAULT_MODEL", "no-such-bundled-model")
    result = invoke("inspect", photos, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "--model" in text(result)
    assert not (tmp_path / "o").exists()


def test_unreadable_empty_and_enormous_files_are_listed(seg_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_image(folder / "ok.png", wall(64, 64))
    make_empty(folder / "empty.png")
    make_png_claiming(folder / "huge.png", 50_000, 50_000)
    (folder / "text.jpg").write_text("not an image")
    results = inspect_paths([folder, tmp_path / "nowhere"], model=seg_model, out_dir=tmp_path / "out")
    reasons = {Path(r.source).name: r.error for r in results if not r.ok}
    assert set(reasons) == {"empty.png", "huge.png", "text.jpg", "nowhere"}
    assert "empty" in reasons["empty.png"] and "too large" in reasons["huge.png"]
    assert [Path(r.source).name for r in results if r.ok] == ["ok.png"]
    # the pixel limit is a setting: a normal photo over it is refused too
    limited = inspect_paths([folder / "ok.png"], model=seg_model, settings=InspectionSettings(max_pixels=1000))
    assert not limited[0].ok and "too large" in limited[0].error
    # nothing inspectable: exit 1
    result = invoke("inspect", folder / "empty.png", "--model", seg_model, "--out", tmp_path / "none")
    assert result.exit_code == 1 and "no photo could be inspected" in text(result)


def test_inspect_image_on_an_array(seg_model: Path) -> None:
    predictor = load_predictor(seg_model, threads=1)
    rgb = wall(700, 900, lines=((100, 100, 800, 100, 9), (450, 300, 450, 650, 4)))
    result = inspect_image(predictor, rgb, settings=InspectionSettings(mm_per_px=0.5, tile=128))
    assert result.ok and result.task == "segment" and result.mask.shape == (700, 900)
    assert result.probability.dtype == np.float32 and result.crack_probability > 0.95
    m = result.measurement
    assert m.n_cracks == 2 and m.mm_per_px == 0.5
    widths = sorted(c.max_width_px for c in m.cracks)
    drawn = (rgb[:, :, 0] < 100).sum(axis=0)[300], (rgb[:, :, 0] < 100).sum(axis=1)[500]  # cv2's true widths
    assert widths[0] == pytest.approx(drawn[1], abs=1.0) and widths[1] == pytest.approx(drawn[0], abs=1.0)
    assert m.max_width_mm == pytest.approx(m.max_width_px * 0.5, abs=1e-3) and m.severity == "wide"
    assert result.to_row()["cracks"] == 2 and json.dumps(result.to_dict())
    # a stricter threshold than the model's keeps fewer pixels
    strict = inspect_image(predictor, rgb, settings=InspectionSettings(threshold=0.999, tile=128))
    assert strict.threshold == 0.999 and strict.mask.sum() <= result.mask.sum()
    with pytest.raises(InspectionError, match="uint8"):
        inspect_image(predictor, rgb.astype(np.float32))
    with pytest.raises(InspectionError, match="mm-per-px"):
        inspect_image(predictor, rgb, settings=InspectionSettings(mm_per_px=0))


def test_classifier_gives_a_patch_heatmap(cls_model: Path, tmp_path: Path) -> None:
    rgb = wall(454, 681)
    rgb[227:454, 0:227] = 10  # the patch at row 1, column 0 is dark
    write_image(tmp_path / "in" / "block.png", rgb)
    write_image(tmp_path / "in" / "clean.png", wall(300, 300))
    out = tmp_path / "report"
    result = invoke("inspect", tmp_path / "in", "--model", cls_model, "--mm-per-px", "0.2", "--out", out)
    assert result.exit_code == 0, result.output
    assert not (out / "masks").exists()  # classifiers outline nothing
    assert Image.open(out / "overlays" / "block.png").size == (681, 454)
    doc = json.loads((out / "results" / "block.json").read_text())
    assert doc["task"] == "classify" and doc["measurement"] is None and doc["n_patches"] == 6
    assert [(p["row"], p["col"]) for p in doc["patches"]] == [(1, 0)]
    assert doc["patches"][0]["probability"] > 0.95 and doc["severity"] == "unknown"
    with (out / "summary.csv").open() as fh:
        rows = {Path(r["image"]).name: r for r in csv.DictReader(fh)}
    assert rows["block.png"]["crack_patches"] == "1" and rows["block.png"]["max_width_px"] == ""
    assert rows["clean.png"]["severity"] == "none" and float(rows["clean.png"]["crack_probability"]) < 0.01
    page = (out / "report.html").read_text()
    assert "no length or width is measured" in page and "hand-annotated" not in page


def test_large_photo_is_tiled_and_the_overlay_downscaled(seg_model: Path, tmp_path: Path) -> None:
    rgb = wall(1200, 3000, lines=((100, 600, 2900, 650, 5),))
    write_image(tmp_path / "in" / "long.png", rgb)
    ticks: list[tuple[str, int, int]] = []
    photos: list[tuple[int, int]] = []
    settings = InspectionSettings(overlay_max_side=1024, tile=128)
    results = inspect_paths(
        [tmp_path / "in"],
        model=seg_model,
        settings=settings,
        out_dir=tmp_path / "out",
        progress=lambda d, t: photos.append((d, t)),
        tile_progress=lambda n, d, t: ticks.append((n, d, t)),
    )
    assert results[0].ok and results[0].measurement.n_cracks == 1
    assert results[0].image is None and results[0].mask is None  # released once written
    assert photos[-1] == (1, 1) and ticks[-1][1] == ticks[-1][2] > 50 and ticks[-1][0] == "long"
    assert Image.open(tmp_path / "out" / "overlays" / "long.png").size == (1024, 410)
    assert Image.open(tmp_path / "out" / "masks" / "long.png").size == (3000, 1200)


def test_preprocessing_models(tmp_path: Path) -> None:
    grey = segmentation_model(tmp_path / "grey.onnx", extra={"preprocess": {"steps": ["grayscale"]}})
    rgb = wall(64, 64, lines=((5, 30, 60, 30, 3),))
    result = inspect_image(load_predictor(grey), rgb)
    assert result.measurement.n_cracks == 1
    unknown = segmentation_model(tmp_path / "new.onnx", extra={"preprocess": {"steps": ["sharpen"]}})
    with pytest.raises(InspectionError, match="sharpen"):
        inspect_paths([tmp_path], model=unknown)


def test_demo_walls(tmp_path: Path) -> None:
    from crackscan.analysis.samples import make_demo_walls

    paths = make_demo_walls(tmp_path / "walls", n=2, size=(240, 320), seed=3)
    assert [p.name for p in paths] == ["wall_0.jpg", "wall_1.jpg"]
    assert Image.open(paths[0]).size == (320, 240)
    truth = json.loads((tmp_path / "walls" / "walls.json").read_text())
    assert set(truth["walls"]) == {"wall_0.jpg", "wall_1.jpg"} and len(truth["walls"]["wall_0.jpg"]) == 3
    again = make_demo_walls(tmp_path / "again", n=1, size=(240, 320), seed=3)
    assert again[0].read_bytes() == paths[0].read_bytes()


def test_inspection_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import crackscan.runtime.tiling, crackscan.analysis.inspect, crackscan.analysis.report\n"
        "import crackscan.analysis.samples, crackscan.cli.inspect\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- classifier gate (--gate)


def test_gate_segments_only_tiles_next_to_patches_the_classifier_calls_cracked(
    seg_model: Path, cls_model: Path
) -> None:
    # The toy classifier calls a patch cracked when it is dark on average: a dark 240-px block in
    # the top-left corner is "seen"; a thin line in the far corner is not, so the gate skips it.
    photo = wall(1200, 1600, lines=((1300, 1000, 1550, 1150, 5),))
    photo[0:240, 0:240] = 15
    settings = InspectionSettings(tile=128, gate=str(cls_model), gate_threshold=0.5)
    gated = inspect_image(load_predictor(seg_model), photo, settings=settings)
    full = inspect_image(load_predictor(seg_model), photo, settings=InspectionSettings(tile=128, coarse_gate=None))
    assert full.tiles_run == full.tiles and full.measurement.n_cracks == 2
    assert 0 < gated.tiles_run < gated.tiles // 4
    assert gated.mask[:240, :240].all()  # the seen block: segmented as with every tile
    assert not gated.mask[900:, 1200:].any()  # the unseen line: its tiles never ran
    assert gated.measurement.n_cracks == 1
    assert gated.to_dict()["tiles_run"] == gated.tiles_run


def test_gate_options_are_checked_before_anything_runs(
    seg_model: Path, cls_model: Path, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "o"
    result = invoke("inspect", photos, "--model", seg_model, "--gate", seg_model, "--out", out)
    assert result.exit_code == 2 and "crack classifier" in text(result)
    result = invoke("inspect", photos, "--model", seg_model, "--gate", tmp_path / "none.onnx", "--out", out)
    assert result.exit_code == 2 and "none.onnx" in text(result)
    result = invoke("inspect", photos, "--model", seg_model, "--gate", cls_model, "--gate-threshold", "1", "--out", out)
    assert result.exit_code == 2 and "gate-threshold" in text(result)
    result = invoke("inspect", photos, "--model", seg_model, "--gate", cls_model, "--coarse-gate", "0.1", "--out", out)
    assert result.exit_code == 2 and "not both" in text(result)
    assert not out.exists()


def test_screening_is_on_by_default_and_coarse_gate_0_runs_every_tile(seg_model: Path, tmp_path: Path) -> None:
    photo = tmp_path / "wall.png"
    write_image(photo, wall(400, 600, lines=((40, 200, 560, 200, 6),)))
    docs, masks = {}, {}
    for label, extra in (("default", ()), ("full", ("--coarse-gate", "0"))):
        out = tmp_path / label
        result = invoke("inspect", photo, "--model", seg_model, "--tile", "128", *extra, "--out", out)
        assert result.exit_code == 0, result.output
        docs[label] = json.loads((out / "results" / "wall.json").read_text())
        masks[label] = cv2.imread(str(out / docs[label]["outputs"]["mask"]), cv2.IMREAD_GRAYSCALE)
    assert docs["full"]["tiles_run"] == docs["full"]["tiles"] >= 6
    assert 0 < docs["default"]["tiles_run"] < docs["default"]["tiles"] == docs["full"]["tiles"]
    assert docs["default"]["measurement"]["n_cracks"] == docs["full"]["measurement"]["n_cracks"] == 1
    assert docs["default"]["settings"]["coarse_gate"] == DEFAULT_COARSE_GATE
    assert docs["full"]["settings"]["coarse_gate"] is None
    assert np.array_equal(masks["default"], masks["full"])  # the skipped tiles were crack-free


def test_screening_gate_never_exceeds_the_mask_threshold(seg_model: Path) -> None:
    photo = wall(400, 600, lines=((40, 200, 560, 200, 6),))
    photo[0:60, 480:600] = 92  # mid grey: the toy model's crack probability ≈ 0.1 there
    seg = load_predictor(seg_model)
    low = inspect_image(seg, photo, settings=InspectionSettings(tile=128, threshold=0.02, coarse_gate=0.5))
    same = inspect_image(seg, photo, settings=InspectionSettings(tile=128, threshold=0.02, coarse_gate=0.02))
    high = inspect_image(seg, photo, settings=InspectionSettings(tile=128, threshold=0.6, coarse_gate=0.5))
    assert low.tiles_run == same.tiles_run and np.array_equal(low.mask, same.mask)
    assert high.tiles_run < low.tiles_run  # at threshold 0.6 the grey corner's tiles need no full-size look


def test_cli_gate_writes_the_tiles_it_ran(seg_model: Path, cls_model: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = invoke("inspect", photos, "--model", seg_model, "--gate", cls_model, "--out", out)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results" / "horizontal.json").read_text())
    assert doc["tiles"] >= 1 and 0 <= doc["tiles_run"] <= doc["tiles"]
