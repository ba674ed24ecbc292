"""Crack measurement: exactness on bands and synthetic cracks, instances, output, CLI, no torch."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import make_empty, make_mask, make_text_file, make_truncated_jpeg
from crackscan.analysis.measure import (
    CSV_COLUMNS,
    ImageMeasurement,
    MeasureError,
    measure_file,
    measure_mask,
    read_json,
    width_map,
    write_csv,
    write_json,
)
from crackscan.analysis.severity import SeverityBands, SeverityError
from crackscan.cli import app
from crackscan.data.synth import random_crack, rasterise_crack, straight_crack


def band(width: float, angle_deg: float, length: float = 160.0, size: int = 220) -> np.ndarray:
    """A flat-ended straight band: pixel centres within ``length/2`` along and ``width/2`` across."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    c = (size - 1) / 2.0 + 0.3  # off the pixel grid, so parity does not help
    a = math.radians(angle_deg)
    u = (xx - c) * math.cos(a) + (yy - c) * math.sin(a)
    v = -(xx - c) * math.sin(a) + (yy - c) * math.cos(a)
    return (np.abs(u) <= length / 2.0) & (np.abs(v) <= width / 2.0)


def angle_diff(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0, 90.0, 137.0])
def test_straight_bands_width_length_orientation(angle: float) -> None:
    for w in range(2, 16):
        result = measure_mask(band(w, angle), min_area_px=1)
        assert result.n_cracks == 1
        crack = result.cracks[0]
        assert abs(crack.max_width_px - w) <= 1.0, (w, angle, crack)
        assert abs(crack.length_px - 160.0) <= 0.03 * 160.0, (w, angle, crack)
        assert angle_diff(crack.orientation_deg, angle) <= 2.0, (w, angle, crack)
        assert crack.branches == 1, (w, angle, crack)  # corner spurs of the flat ends pruned


def test_width_is_full_width_not_half() -> None:
    crack = measure_mask(band(10, 0.0)).cracks[0]
    assert 9.0 <= crack.max_width_px <= 11.0
    assert 9.0 <= crack.mean_width_px <= 11.0
    assert crack.p95_width_px <= crack.max_width_px


CASES = [  # (seed, max width px, curvature, branches)
    (0, 2.0, 0.3, 0),
    (1, 3.0, 1.0, 2),
    (2, 5.0, 0.6, 1),
    (3, 7.0, 1.0, 0),
    (4, 9.0, 0.2, 3),
    (5, 11.0, 0.8, 2),
    (6, 13.0, 1.0, 1),
    (7, 15.0, 0.5, 2),
    (8, 4.0, 0.9, 3),
    (9, 15.0, 1.0, 0),
]


@pytest.mark.parametrize(("seed", "max_width", "curvature", "branches"), CASES)
def test_synthetic_cracks_match_truth(seed: int, max_width: float, curvature: float, branches: int) -> None:
    rng = np.random.default_rng([seed, 7])
    geom = random_crack(rng, 384, 384, max_width=max_width, curvature=curvature, branches=branches)
    result = measure_mask(rasterise_crack(geom, 384, 384))
    assert result.n_cracks == 1
    assert abs(result.total_length_px - geom.length_px) <= 0.03 * geom.length_px, (result, geom.to_truth())
    assert abs(result.max_width_px - geom.max_width_px) <= 1.0, (result, geom.to_truth())


def test_branch_lengths_are_summed_once() -> None:
    mask = np.zeros((300, 300), dtype=bool)
    mask[100:104, 30:270] = True  # 240 px long, 4 px wide
    mask[104:250, 148:152] = True  # a 146 px branch hanging from it
    result = measure_mask(mask)
    assert result.n_cracks == 1 and result.cracks[0].branches == 3
    assert abs(result.total_length_px - (240 + 148)) <= 0.03 * 388


def test_width_bulge_does_not_add_spurs() -> None:
    mask = band(4, 20.0, length=200, size=260)
    yy, xx = np.mgrid[0:260, 0:260]
    mask |= (yy - 130) ** 2 + (xx - 129) ** 2 <= 9**2  # a round bulge on the crack
    crack = measure_mask(mask).cracks[0]
    assert abs(crack.length_px - 200) <= 0.03 * 200
    assert crack.branches == 1
    assert abs(crack.max_width_px - 18) <= 1.0


def test_crack_running_off_the_image_keeps_its_width() -> None:
    mask = np.zeros((60, 200), dtype=bool)
    mask[20:27, :] = True  # 7 px wide, crosses the whole image
    crack = measure_mask(mask).cracks[0]
    assert abs(crack.max_width_px - 7) <= 1.0
    assert abs(crack.length_px - 200) <= 2.0
    assert crack.bbox == (0, 20, 200, 27)


def test_round_capped_band_measures_tip_to_tip() -> None:
    geom = straight_crack(200, 300, width_px=9.0, angle_deg=10.0, length_px=180.0)
    crack = measure_mask(rasterise_crack(geom, 200, 300)).cracks[0]
    # The mask reaches width/2 beyond each end of the centreline.
    assert abs(crack.length_px - (180.0 + 9.0)) <= 0.03 * 189
    assert abs(crack.max_width_px - 9.0) <= 1.0


# --------------------------------------------------------------------------- instances


def test_two_separate_cracks_are_two_instances() -> None:
    mask = np.zeros((200, 300), dtype=bool)
    mask[40:44, 20:280] = True
    mask[140:147, 20:200] = True
    result = measure_mask(mask)
    assert result.n_cracks == 2
    lengths = sorted(c.length_px for c in result.cracks)
    assert abs(lengths[0] - 180) <= 4 and abs(lengths[1] - 260) <= 4
    assert result.total_length_px == pytest.approx(sum(lengths), abs=0.01)
    assert result.max_width_px == max(c.max_width_px for c in result.cracks)
    assert [c.id for c in result.cracks] == [1, 2]


def test_small_gap_is_joined_and_not_counted() -> None:
    mask = np.zeros((60, 300), dtype=bool)
    mask[20:25, 20:140] = True
    mask[20:25, 142:280] = True  # 2 px gap
    joined = measure_mask(mask, join_gap_px=3)
    assert joined.n_cracks == 1
    assert joined.cracks[0].area_px == int(mask.sum())  # grouping never adds pixels
    assert abs(joined.cracks[0].max_width_px - 5) <= 1.0
    assert abs(joined.total_length_px - 258) <= 0.03 * 258
    assert measure_mask(mask, join_gap_px=0).n_cracks == 2
    wide = mask.copy()
    wide[20:25, 140:150] = False  # now a 12 px gap
    assert measure_mask(wide, join_gap_px=3).n_cracks == 2


def test_min_area_filter() -> None:
    mask = np.zeros((100, 200), dtype=bool)
    mask[50:53, 20:180] = True
    mask[10:13, 10:14] = True  # 12 px speck
    assert measure_mask(mask, min_area_px=20).n_cracks == 1
    assert measure_mask(mask, min_area_px=1).n_cracks == 2


def test_empty_mask() -> None:
    result = measure_mask(np.zeros((64, 80), dtype=bool), mm_per_px=0.1, image="empty.png")
    assert result.n_cracks == 0 and result.severity == "none"
    assert result.total_length_px == 0.0 and result.max_width_px == 0.0
    assert result.length_mm == 0.0 and result.image == "empty.png"
    assert (result.height, result.width) == (64, 80)


def test_small_holes_do_not_split_the_centreline() -> None:
    mask = band(9, 0.0, length=200, size=240)
    clean = measure_mask(mask).cracks[0]
    holed = mask.copy()
    holed[119:121, 60:62] = False  # a 4 px hole inside the crack
    crack = measure_mask(holed).cracks[0]
    assert crack.branches == 1
    assert crack.length_px == pytest.approx(clean.length_px, abs=1.0)


def test_width_map_matches_measurement() -> None:
    mask = band(6, 30.0)
    skeleton, width = width_map(mask)
    assert skeleton.dtype == bool and width.dtype == np.float32 and width.shape == mask.shape
    assert skeleton.any() and not (skeleton & ~mask).any()
    assert np.all(width[~skeleton] == 0) and np.all(width[skeleton] > 0)
    crack = measure_mask(mask).cracks[0]
    assert float(width.max()) == pytest.approx(crack.max_width_px, abs=0.01)


def test_kept_centreline_is_the_width_map_and_gives_the_same_overlay() -> None:
    from crackscan.analysis.report import render_width_overlay

    rng = np.random.default_rng(3)
    mask = np.zeros((300, 400), dtype=bool)
    for seed in range(3):
        mask |= rasterise_crack(random_crack(np.random.default_rng(seed), 300, 400), 300, 400)
    result = measure_mask(mask, min_area_px=20, join_gap_px=3, keep_centreline=True)
    assert result.centreline is not None and "centreline" not in result.to_dict()
    ys, xs, widths = result.centreline
    skeleton, width = width_map(mask, min_area_px=20, join_gap_px=3)
    assert np.array_equal(np.sort(np.ravel_multi_index((ys, xs), mask.shape)), np.flatnonzero(skeleton))
    assert np.array_equal(width[ys, xs], widths)
    photo = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    kw = {"min_area_px": 20, "join_gap_px": 3}
    assert np.array_equal(
        render_width_overlay(photo, mask, centreline=result.centreline, **kw), render_width_overlay(photo, mask, **kw)
    )
    assert measure_mask(mask).centreline is None


@pytest.mark.parametrize("kernel", [3, 23, 101])
def test_blockwise_width_spread_equals_one_dilation(kernel: int) -> None:
    import cv2

    from crackscan.analysis.report import spread_widths

    # Cracks touching the borders and block edges, and blocks far from any crack.
    h, w = 700, 530
    mask = np.zeros((h, w), dtype=bool)
    for seed in range(4):
        mask |= rasterise_crack(random_crack(np.random.default_rng(seed), h, w), h, w)
    mask[:2, :] = mask[:, -3:] = True
    _, width = width_map(mask)
    assert width.max() > 0
    whole = cv2.dilate(width, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel)))
    whole[~mask] = 0.0
    for block in (64, 256, 1024):
        assert np.array_equal(spread_widths(width, mask, kernel, block=block), whole)


def test_bad_arguments() -> None:
    with pytest.raises(MeasureError):
        measure_mask(np.zeros((10, 10), bool), mm_per_px=0)
    with pytest.raises(MeasureError):
        measure_mask(np.zeros((10, 10), bool), mm_per_px=float("nan"))
    with pytest.raises(MeasureError):
        measure_mask(np.zeros((10, 10, 3), bool))


def test_large_mask_is_fast() -> None:
    mask = np.zeros((3000, 4000), dtype=bool)
    for i, (w, a) in enumerate([(12.0, 20.0), (5.0, 100.0), (8.0, 160.0)]):
        geom = straight_crack(3000, 4000, width_px=w, angle_deg=a, length_px=1500, centre=(900 + 1100 * i, 1500))
        rasterise_crack(geom, 3000, 4000, out=mask)
    measure_mask(mask[:200, :200])  # first call imports scikit-image
    start = time.perf_counter()
    result = measure_mask(mask)
    elapsed = time.perf_counter() - start
    assert result.n_cracks == 3
    assert elapsed < 3.0, f"{elapsed:.2f} s"  # ~0.3 s on 2 cores; generous for loaded CI machines


# --------------------------------------------------------------------------- scale and severity


def test_mm_conversion_and_severity() -> None:
    mask = band(6, 0.0)
    r = measure_mask(mask, mm_per_px=0.1)
    c = r.cracks[0]
    assert c.length_mm == pytest.approx(c.length_px * 0.1, abs=1e-4)
    assert c.max_width_mm == pytest.approx(c.max_width_px * 0.1, abs=1e-4)
    assert r.length_mm == pytest.approx(r.total_length_px * 0.1, abs=1e-4)
    assert r.severity == c.severity == "medium"  # ~0.6 mm
    assert measure_mask(mask, mm_per_px=0.01).severity == "hairline"  # ~0.06 mm
    assert measure_mask(mask, mm_per_px=0.03).severity == "fine"  # ~0.18 mm
    assert measure_mask(mask, mm_per_px=0.5).severity == "wide"  # ~3 mm
    unscaled = measure_mask(mask)
    assert unscaled.severity == "unknown" and unscaled.length_mm is None and unscaled.cracks[0].max_width_mm is None
    px_bands = SeverityBands(edges=(3.0, 10.0), names=("thin", "mid", "thick"), unit="px")
    assert measure_mask(mask, bands=px_bands).severity == "mid"


def test_severity_bands() -> None:
    bands = SeverityBands()
    assert [bands.classify(w) for w in (0.05, 0.1, 0.29, 0.3, 0.99, 1.0, 5.0)] == [
        "hairline",
        "fine",
        "fine",
        "medium",
        "medium",
        "wide",
        "wide",
    ]
    assert bands.classify(None) == "unknown" and bands.classify(0.0) == "none"
    assert SeverityBands.parse("0.2,0.5,2").edges == (0.2, 0.5, 2.0)
    assert SeverityBands.parse("1,2").names == ("band0", "band1", "band2")
    for bad in ("0.3,0.1", "a,b", "-1,2", ""):
        with pytest.raises(SeverityError):
            SeverityBands.parse(bad)
    with pytest.raises(SeverityError):
        SeverityBands(edges=(1.0,), names=("a",))


# --------------------------------------------------------------------------- output


def _two_crack_result() -> ImageMeasurement:
    mask = np.zeros((200, 300), dtype=bool)
    mask[40:44, 20:280] = True
    mask[140:147, 20:200] = True
    return measure_mask(mask, mm_per_px=0.05, image="a.png")


def test_csv_columns(tmp_path: Path) -> None:
    rows = [_two_crack_result(), measure_mask(band(3, 45.0), image="b.png")]
    write_csv(rows, tmp_path / "m.csv")
    with (tmp_path / "m.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        got = list(reader)
    assert [r["image"] for r in got] == ["a.png", "b.png"]
    assert got[0]["cracks"] == "2" and float(got[0]["length_mm"]) > 0
    assert got[1]["length_mm"] == "" and got[1]["max_width_mm"] == "" and got[1]["severity"] == "unknown"


def test_json_round_trip(tmp_path: Path) -> None:
    results = [_two_crack_result(), measure_mask(np.zeros((8, 8), bool), image="e.png")]
    write_json(results, tmp_path / "m.json", skipped=[{"image": "x.png", "reason": "truncated"}])
    assert read_json(tmp_path / "m.json") == results
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["skipped"] == [{"image": "x.png", "reason": "truncated"}]
    assert doc["bands"]["unit"] == "mm"
    crack = doc["images"][0]["cracks"][0]
    for key in ("id", "length_px", "max_width_px", "mean_width_px", "p95_width_px", "orientation_deg", "bbox"):
        assert key in crack


def test_measure_file(tmp_path: Path) -> None:
    labels = band(5, 30.0).astype(np.uint8)
    path = make_mask(tmp_path / "m.png", kind="binary", labels=labels)
    result = measure_file(path, mm_per_px=0.1)
    assert result.image == str(path) and result.n_cracks == 1


# --------------------------------------------------------------------------- CLI

runner = CliRunner()


def _mask_folder(root: Path) -> Path:
    folder = root / "masks"
    make_mask(folder / "one.png", labels=band(5, 30.0).astype(np.uint8))
    make_mask(folder / "sub" / "two.png", labels=band(9, 120.0).astype(np.uint8))
    make_mask(folder / "none.png", size=(64, 64), crack=False)
    return folder


def test_cli_folder_to_csv(tmp_path: Path) -> None:
    folder = _mask_folder(tmp_path)
    out = tmp_path / "out" / "m.csv"
    res = runner.invoke(app, ["measure", str(folder), "--mm-per-px", "0.1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with out.open(newline="") as fh:
        rows = {Path(r["image"]).name: r for r in csv.DictReader(fh)}
    assert set(rows) == {"one.png", "two.png", "none.png"}
    assert rows["none.png"]["severity"] == "none" and rows["none.png"]["cracks"] == "0"
    assert rows["two.png"]["severity"] == "medium" and rows["one.png"]["cracks"] == "1"


def test_cli_unreadable_files_are_listed_and_skipped(tmp_path: Path) -> None:
    folder = _mask_folder(tmp_path)
    make_truncated_jpeg(folder / "broken.jpg")
    make_empty(folder / "empty.png")
    make_text_file(folder / "notes.txt")  # not an image extension: ignored in folders
    out = tmp_path / "m.json"
    res = runner.invoke(app, ["measure", str(folder), str(tmp_path / "missing.png"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "broken.jpg" in res.output and "empty.png" in res.output and "missing.png" in res.output
    assert "Traceback" not in res.output
    doc = json.loads(out.read_text())
    assert {Path(i["image"]).name for i in doc["images"]} == {"one.png", "two.png", "none.png"}
    assert {Path(s["image"]).name for s in doc["skipped"]} == {"broken.jpg", "empty.png", "missing.png"}


def test_cli_glob_and_px_bands(tmp_path: Path) -> None:
    folder = _mask_folder(tmp_path)
    out = tmp_path / "m.json"
    res = runner.invoke(app, ["measure", str(folder / "*.png"), "--bands-px", "3,7,20", "--out", str(out)])
    assert res.exit_code == 0, res.output
    images = {Path(i["image"]).name: i for i in json.loads(out.read_text())["images"]}
    assert set(images) == {"one.png", "none.png"}  # the glob is not recursive
    assert images["one.png"]["severity"] == "fine" and images["none.png"]["severity"] == "none"


@pytest.mark.parametrize(
    "args",
    [
        ["--mm-per-px", "0"],
        ["--mm-per-px", "-0.2"],
        ["--out", "result.txt"],
        ["--bands", "0.3,0.1"],
        ["--bands", "0.1", "--bands-px", "3"],
    ],
)
def test_cli_bad_options_exit_2(tmp_path: Path, args: list[str]) -> None:
    folder = _mask_folder(tmp_path)
    res = runner.invoke(app, ["measure", str(folder), *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "error" in res.output


def test_cli_nothing_measured_exits_1(tmp_path: Path) -> None:
    res = runner.invoke(app, ["measure", str(make_text_file(tmp_path / "x.png"))])
    assert res.exit_code == 1
    assert "x.png" in res.output and "Traceback" not in res.output


def test_no_torch_import() -> None:
    code = (
        "import sys, numpy as np\n"
        "import crackscan.analysis.measure as m, crackscan.cli.measure\n"
        "z = np.zeros((64, 64), bool); z[30:34, 5:60] = True; m.measure_mask(z)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
