"""The synthetic crack generator: determinism, layouts, truth and exact geometry."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from crackscan.data.layouts import LayoutKind, index_dataset
from crackscan.data.synth import (
    MAX_WIDTH_PX,
    CrackGeometry,
    SynthError,
    generate_dataset,
    random_crack,
    rasterise_crack,
    straight_crack,
    synth_sample,
    synth_surface,
    synth_wall,
)
from crackscan.imageio import MaskKind, read_image, read_mask


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _two_dt_max(mask: np.ndarray) -> float:
    """2 × the largest distance (px) from a crack pixel to the nearest background pixel."""
    dt = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return 2.0 * float(dt.max())


def _components(mask: np.ndarray) -> int:
    n, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return n - 1


# --------------------------------------------------------------------------- data sets


@pytest.mark.parametrize("task", ["segment", "classify"])
def test_same_seed_gives_identical_bytes(tmp_path: Path, task: str) -> None:
    generate_dataset(tmp_path / "a", task=task, n=4, size=64, seed=3)
    generate_dataset(tmp_path / "b", task=task, n=4, size=64, seed=3)
    generate_dataset(tmp_path / "c", task=task, n=4, size=64, seed=4)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    assert a != c
    differing = [k for k in a if k.endswith(".jpg") and a[k] != c[k]]
    assert differing, "a different seed must give different images"


def test_sample_does_not_depend_on_n(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "few", n=2, size=64, seed=1)
    generate_dataset(tmp_path / "many", n=5, size=64, seed=1)
    few, many = _files(tmp_path / "few"), _files(tmp_path / "many")
    for key in ("images/synth_00000.jpg", "masks/synth_00001.png"):
        assert few[key] == many[key]


def test_segment_layout_truth_and_masks(tmp_path: Path) -> None:
    dst = tmp_path / "seg"
    calls: list[tuple[int, int]] = []
    summary = generate_dataset(dst, task="segment", n=5, size=96, seed=0, progress=lambda d, t: calls.append((d, t)))
    assert summary.n_images == 5 and summary.task == "segment" and summary.root == dst
    assert summary.truth_path == dst / "truth.json"
    assert calls[-1] == (5, 5) and len(calls) == 5

    images = sorted(p.stem for p in (dst / "images").iterdir())
    masks = sorted(p.stem for p in (dst / "masks").iterdir())
    assert images == masks == [f"synth_{i:05d}" for i in range(5)]
    assert all(p.suffix == ".jpg" for p in (dst / "images").iterdir())
    assert all(p.suffix == ".png" for p in (dst / "masks").iterdir())

    truth = json.loads(summary.truth_path.read_text())
    assert sorted(truth) == images
    for stem, entry in truth.items():
        assert set(entry) == {"length_px", "max_width_px"}
        assert entry["length_px"] > 0.25 * 96 * 0.5, stem
        assert 1.0 <= entry["max_width_px"] <= MAX_WIDTH_PX
        image = read_image(dst / "images" / f"{stem}.jpg")
        mask = read_mask(dst / "masks" / f"{stem}.png")
        assert image.shape == (96, 96, 3)
        assert mask.labels.shape == (96, 96)
        assert mask.kind is MaskKind.BINARY and mask.source_values == (0, 255)
        # The border margin keeps every crack fully inside the image.
        fg = mask.foreground
        assert not (fg[0].any() or fg[-1].any() or fg[:, 0].any() or fg[:, -1].any())
        # Cracks are dark: the photo under the mask is darker than around it.
        grey = image.mean(axis=2)
        assert grey[fg].mean() < grey[~fg].mean()

    index = index_dataset(dst)
    assert index.layout is LayoutKind.IMAGE_MASK_PAIRS
    assert len(index.samples) == 5 and not index.unmatched_images and not index.unmatched_masks


def test_classify_layout_half_with_cracks(tmp_path: Path) -> None:
    dst = tmp_path / "cls"
    summary = generate_dataset(dst, task="classify", n=6, size=64, seed=0)
    crack = sorted(p.stem for p in (dst / "crack").iterdir())
    no_crack = sorted(p.stem for p in (dst / "no_crack").iterdir())
    assert len(crack) == len(no_crack) == 3
    assert not (dst / "images").exists() and not (dst / "masks").exists()
    truth = json.loads(summary.truth_path.read_text())
    assert sorted(truth) == sorted(crack + no_crack)
    for stem in crack:
        assert truth[stem]["length_px"] > 0 and 1.0 <= truth[stem]["max_width_px"] <= MAX_WIDTH_PX
    for stem in no_crack:
        assert truth[stem] == {"length_px": 0.0, "max_width_px": 0.0}
    index = index_dataset(dst)
    assert index.layout is LayoutKind.CLASS_FOLDERS
    assert index.class_counts == {"crack": 3, "no_crack": 3}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be"),
        ({"size": 31}, "size must be"),
        ({"task": "detect"}, "task must be"),
        ({"seed": -1}, "seed must be"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(SynthError, match=message):
        generate_dataset(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_never_writes_into_a_non_empty_folder(tmp_path: Path) -> None:
    dst = tmp_path / "mine"
    dst.mkdir()
    precious = dst / "notes.txt"
    precious.write_text("keep me")
    with pytest.raises(SynthError, match="not empty"):
        generate_dataset(dst, n=1, size=32)
    assert [p.name for p in dst.iterdir()] == ["notes.txt"] and precious.read_text() == "keep me"

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(SynthError, match="is a file"):
        generate_dataset(a_file, n=1, size=32)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert generate_dataset(empty, n=1, size=32).n_images == 1  # an empty folder is fine


def test_cli_synth(tmp_path: Path) -> None:
    from crackscan.cli import app

    dst = tmp_path / "cli"
    runner = CliRunner()
    result = runner.invoke(app, ["data", "synth", str(dst), "--task", "segment", "--n", "3", "--size", "128"])
    assert result.exit_code == 0, result.output
    assert len(json.loads((dst / "truth.json").read_text())) == 3
    assert len(list((dst / "masks").iterdir())) == 3

    again = runner.invoke(app, ["data", "synth", str(dst), "--n", "3", "--size", "128"])
    assert again.exit_code == 1  # refuses to write into the now non-empty folder


# --------------------------------------------------------------------------- geometry


def test_straight_crack_mask_is_the_exact_band() -> None:
    """Away from the end caps, a pixel is set iff its centre is within w/2 of the centreline."""
    rng = np.random.default_rng(0)
    for w in (1.0, 2.5, 7.0, 15.0):
        for angle in (0.0, 23.0, 45.0, 101.0):
            centre = (64 + rng.uniform(0, 1), 64 + rng.uniform(0, 1))
            geom = straight_crack(128, 128, width_px=w, angle_deg=angle, length_px=100, centre=centre)
            mask = rasterise_crack(geom, 128, 128)
            a = np.radians(angle)
            ys, xs = np.mgrid[0:128, 0:128].astype(np.float64)
            along = (xs - centre[0]) * np.cos(a) + (ys - centre[1]) * np.sin(a)
            across = -(xs - centre[0]) * np.sin(a) + (ys - centre[1]) * np.cos(a)
            interior = np.abs(along) < 50 - w
            expected = np.abs(across) <= w / 2
            assert np.array_equal(mask[interior], expected[interior]), (w, angle)
            assert geom.length_px == pytest.approx(100.0)
            assert geom.max_width_px == w


@pytest.mark.parametrize("w", range(2, 16))
def test_distance_transform_recovers_constant_width(w: int) -> None:
    """2·max(dt) of a straight crack of width w is within 1 px of w.

    Near the diagonals the pixel lattice lets the distance transform reach up to
    1.5 px over w (a property of sampling, not of the mask, which is exact above).
    """
    rng = np.random.default_rng(w)
    for angle in (0.0, 10.0, 30.0, 60.0, 80.0, 90.0, 100.0, 170.0):
        centre = (48 + rng.uniform(0, 1), 48 + rng.uniform(0, 1))
        geom = straight_crack(96, 96, width_px=w, angle_deg=angle, length_px=60, centre=centre)
        assert abs(_two_dt_max(rasterise_crack(geom, 96, 96)) - w) <= 1.0, angle
    for angle in (40.0, 45.0, 135.0):
        centre = (48 + rng.uniform(0, 1), 48 + rng.uniform(0, 1))
        geom = straight_crack(96, 96, width_px=w, angle_deg=angle, length_px=60, centre=centre)
        assert -1.0 <= _two_dt_max(rasterise_crack(geom, 96, 96)) - w <= 1.5, angle


@pytest.mark.parametrize("curvature", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("w", [2, 6, 15])
def test_curved_constant_width_crack_keeps_its_width(curvature: float, w: int) -> None:
    """Bends never fold the band: the widest inscribed disc stays at the stated width."""
    for seed in range(3):
        geom = random_crack(
            np.random.default_rng(seed),
            256,
            256,
            max_width=w,
            branches=0,
            curvature=curvature,
            width_variation=0.0,
            taper=False,
        )
        assert np.allclose(geom.widths[0], w)
        mask = rasterise_crack(geom, 256, 256)
        assert -1.0 <= _two_dt_max(mask) - w <= 1.5
        assert mask.sum() == pytest.approx(geom.area_px + np.pi * w * w / 4, rel=0.03)


def test_random_cracks_truth_matches_mask() -> None:
    for seed in range(25):
        rng = np.random.default_rng(seed)
        geom = random_crack(rng, 256, 256)
        mask = rasterise_crack(geom, 256, 256)
        # Truth is the geometry: length = sum of segment lengths, width = largest vertex width.
        seg_len = sum(float(np.hypot(*np.diff(p, axis=0).T).sum()) for p in geom.polylines)
        assert geom.length_px == pytest.approx(seg_len)
        assert geom.max_width_px == max(float(w.max()) for w in geom.widths)
        assert all(w.min() >= 1.0 for w in geom.widths)
        assert 1.0 <= geom.max_width_px <= MAX_WIDTH_PX
        # Branches start on their parent's centreline.
        for branch in geom.polylines[1:]:
            assert np.min(np.hypot(*(geom.polylines[0] - branch[0]).T)) < 1e-9
        # Area ≈ ∫ width ds (end caps and branch roots inside the parent are small).
        assert mask.sum() == pytest.approx(geom.area_px, rel=0.05), seed
        # Branches never cross other parts: the crack is one piece, no stray blobs.
        assert _components(mask) == 1
        # No bulge at junctions or bends wider than the stated maximum.
        assert _two_dt_max(mask) - geom.max_width_px <= 1.5, seed


def test_random_crack_respects_requested_width_and_refuses_bad_values() -> None:
    geom = random_crack(np.random.default_rng(1), 200, 200, max_width=9.0, branches=2)
    assert geom.max_width_px == 9.0
    with pytest.raises(SynthError):
        random_crack(np.random.default_rng(1), 200, 200, max_width=20.0)
    with pytest.raises(SynthError):
        random_crack(np.random.default_rng(1), 200, 200, curvature=2.0)
    with pytest.raises(SynthError):
        CrackGeometry.from_polylines([np.zeros((1, 2))], [np.ones(1)])


def test_synth_sample_and_surface() -> None:
    rng = np.random.default_rng(5)
    surface = synth_surface(rng, 40, 70)
    assert surface.shape == (40, 70, 3) and surface.dtype == np.uint8
    assert surface.std() > 2  # textured, not flat

    image, mask, geom = synth_sample(np.random.default_rng(6), 128, 160, crack=True)
    assert image.shape == (128, 160, 3) and image.dtype == np.uint8
    assert mask.shape == (128, 160) and mask.dtype == bool and mask.any()
    assert geom is not None
    assert np.array_equal(mask, rasterise_crack(geom, 128, 160))

    image, mask, geom = synth_sample(np.random.default_rng(6), 64, 64, crack=False)
    assert geom is None and not mask.any()


def test_synth_wall_separate_cracks() -> None:
    image, mask, geoms = synth_wall(2, height=600, width=800, n_cracks=3)
    assert image.shape == (600, 800, 3) and image.dtype == np.uint8
    assert mask.shape == (600, 800) and mask.dtype == bool
    assert len(geoms) == 3
    union = np.zeros_like(mask)
    for geom in geoms:
        rasterise_crack(geom, 600, 800, out=union)
    assert np.array_equal(mask, union)
    assert _components(mask) == 3  # cracks keep clear of each other
    again, _, _ = synth_wall(2, height=600, width=800, n_cracks=3)
    assert np.array_equal(image, again)
