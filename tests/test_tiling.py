"""Tiled inference (runtime/tiling.py) with tiny torch-free ONNX models whose output is known.

The darkness segmenter is per-pixel (its map is a closed-form function of the pixel), so
tiling must reproduce a whole-image pass exactly; the blurred variant is fully
convolutional, so tiles only differ from a whole-image pass near their own edges, which
the blend window must hide (no seams).
"""

from __future__ import annotations

import itertools
import tracemalloc
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from crackscan.runtime.predictor import OnnxPredictor, load_predictor
from crackscan.runtime.tiling import (
    PatchGrid,
    TilingError,
    blend_window,
    classify_patches,
    count_tiles,
    patch_screen,
    predict_tiled,
    tile_grid,
)
from onnx_models import classification_model, segmentation_model


def expected_prob(rgb: np.ndarray, a: float = -10.0, b: float = -5.0) -> np.ndarray:
    """The darkness segmenter in numpy: sigmoid(a · mean_c(2·grey/255 − 1) + b)."""
    x = rgb.astype(np.float64).mean(axis=2) / 127.5 - 1.0
    return 1.0 / (1.0 + np.exp(-(a * x + b)))


def whole_image(predictor: OnnxPredictor, rgb: np.ndarray) -> np.ndarray:
    """One model call on the whole photo (padded to multiples of 32 at the bottom/right)."""
    h, w = rgb.shape[:2]
    padded = np.pad(rgb, ((0, (-h) % 32), (0, (-w) % 32), (0, 0)), mode="reflect")
    return predictor.probability_map(padded[None])[0, :h, :w]


@pytest.fixture(scope="module")
def seg(tmp_path_factory: pytest.TempPathFactory) -> OnnxPredictor:
    return load_predictor(segmentation_model(tmp_path_factory.mktemp("m") / "seg.onnx"), threads=1)


@pytest.fixture(scope="module")
def blurred(tmp_path_factory: pytest.TempPathFactory) -> OnnxPredictor:
    return load_predictor(segmentation_model(tmp_path_factory.mktemp("m") / "blur.onnx", blur=7), threads=1)


def smooth_photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 4)


def test_tile_grid_covers_and_ends_at_the_border() -> None:
    grid = tile_grid(1000, 700, 256, 0.25)
    ys, xs = sorted({y for y, _ in grid}), sorted({x for _, x in grid})
    assert ys[0] == 0 and ys[-1] == 1000 - 256 and xs[-1] == 700 - 256
    assert len(grid) == len(ys) * len(xs) and grid == sorted(grid)  # row by row
    assert all(b - a <= 192 for a, b in itertools.pairwise(ys))  # stride 256 × 0.75
    covered = np.zeros((1000, 700), bool)
    for y, x in grid:
        covered[y : y + 256, x : x + 256] = True
    assert covered.all()
    assert tile_grid(100, 50, 512, 0.5) == [(0, 0)]  # shorter than a tile: one tile (padded)
    assert tile_grid(10, 600, (8, 256), 0.0) == [(0, 0), (0, 256), (0, 344), (2, 0), (2, 256), (2, 344)]
    assert tile_grid(512, 512, 512, 0.0) == [(0, 0)]
    with pytest.raises(TilingError, match="overlap"):
        tile_grid(10, 10, 4, 1.0)
    with pytest.raises(TilingError, match="empty"):
        tile_grid(0, 10, 4, 0.1)


def test_blend_window_is_centred_symmetric_and_floored() -> None:
    w = blend_window(64)
    assert w.shape == (64, 64) and w.dtype == np.float32
    assert w.max() == pytest.approx(1.0, abs=2e-3) and w.min() >= 0.05
    np.testing.assert_allclose(w, w[::-1, ::-1])
    np.testing.assert_allclose(w, w.T)
    assert w[32, 32] > w[32, 5] > w[32, 0]
    assert blend_window((32, 96)).shape == (32, 96)


def test_one_tile_equals_a_whole_image_pass(seg: OnnxPredictor) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    prob = predict_tiled(seg, rgb)  # default 512-px tile: one tile
    assert prob.shape == (50, 70) and prob.dtype == np.float32
    np.testing.assert_allclose(prob, whole_image(seg, rgb), atol=1e-6)
    np.testing.assert_allclose(prob, expected_prob(rgb), atol=1e-5)


def test_many_tiles_of_a_per_pixel_model_are_exact(seg: OnnxPredictor) -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (300, 410, 3), dtype=np.uint8)
    for overlap in (0.0, 0.25, 0.5):
        prob = predict_tiled(seg, rgb, tile=64, overlap=overlap, batch_size=3)
        np.testing.assert_allclose(prob, expected_prob(rgb), atol=1e-5)
    assert count_tiles(seg, 300, 410, tile=64, overlap=0.25) > 20


def test_no_seams_with_a_fully_convolutional_model(blurred: OnnxPredictor) -> None:
    rgb = smooth_photo(600, 760)
    whole = whole_image(blurred, rgb)
    tiled = predict_tiled(blurred, rgb, tile=128, overlap=0.25, batch_size=8)
    inner = (slice(8, -8), slice(8, -8))  # the whole-image pass zero-pads at the photo border; tiles mirror
    diff = np.abs(tiled - whole)[inner]
    assert diff.max() < 0.01, diff.max()
    # Seams would show as steps along tile edges: the tiled map is as smooth as the true one.
    step_true = np.abs(np.diff(whole[inner], axis=1)).max()
    step_tiled = np.abs(np.diff(tiled[inner], axis=1)).max()
    assert step_tiled <= step_true + 0.01
    # Without blending (no overlap, so each pixel from one tile) the tile edges do differ more.
    hard = predict_tiled(blurred, rgb, tile=128, overlap=0.0)
    assert np.abs(hard - whole)[inner].max() > diff.max()


def test_tta_is_exact_for_a_flip_invariant_model(seg: OnnxPredictor) -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (90, 130, 3), dtype=np.uint8)
    plain = predict_tiled(seg, rgb, tile=64)
    np.testing.assert_allclose(predict_tiled(seg, rgb, tile=64, tta=True), plain, atol=1e-5)


def test_tta_averages_flipped_predictions() -> None:
    class LeftBiased:
        """Probability = column position within the tile (not flip invariant)."""

        metadata = types.SimpleNamespace(extra={"size_multiple": 32}, crack_class=1)

        def probability_map(self, batch: np.ndarray) -> np.ndarray:
            n, h, w = batch.shape[:3]
            return np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32), (n, h, w)).copy()

    rgb = np.zeros((64, 64, 3), np.uint8)
    prob = predict_tiled(LeftBiased(), rgb, tile=64, overlap=0.0, tta=True)
    # identity + h-flip average to 0.5 exactly, v-flip keeps the ramp: mean of the three
    ramp = np.linspace(0, 1, 64, dtype=np.float32)
    np.testing.assert_allclose(prob[0], (ramp + ramp[::-1] + ramp) / 3, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1), (7, 10000), (10000, 5), (33, 31)])
def test_odd_sizes(seg: OnnxPredictor, shape: tuple[int, int]) -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (*shape, 3), dtype=np.uint8)
    prob = predict_tiled(seg, rgb, tile=512)
    assert prob.shape == shape
    np.testing.assert_allclose(prob, expected_prob(rgb), atol=1e-5)


def test_sixteen_bit_rgb_tiff(seg: OnnxPredictor, tmp_path: Path) -> None:
    from crackscan.imageio import read_image

    rgb16 = np.full((40, 60, 3), 50000, np.uint16)
    rgb16[10:14, :, :] = 2000  # a dark band
    path = tmp_path / "deep.tif"
    assert cv2.imwrite(str(path), rgb16)
    rgb = read_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (40, 60, 3)
    prob = predict_tiled(seg, rgb)
    assert (prob[10:14] > 0.9).all() and (prob[20:] < 0.1).all()


def test_bad_arguments(seg: OnnxPredictor) -> None:
    rgb = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(TilingError, match="uint8"):
        predict_tiled(seg, rgb.astype(np.float32))
    with pytest.raises(TilingError, match="H×W×3"):
        predict_tiled(seg, rgb[:, :, 0])
    with pytest.raises(TilingError, match="empty"):
        predict_tiled(seg, np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(TilingError, match="batch"):
        predict_tiled(seg, rgb, batch_size=0)
    with pytest.raises(TilingError, match="overlap"):
        predict_tiled(seg, rgb, overlap=-0.1)


def test_memory_is_two_float_maps_not_copies_of_the_photo() -> None:
    """An 8000×6000 photo: the tiler holds two float32 maps and one batch, no per-tile photo copies."""

    class Constant:
        metadata = types.SimpleNamespace(extra={"size_multiple": 32}, crack_class=1)
        tiles = 0

        def probability_map(self, batch: np.ndarray) -> np.ndarray:
            assert batch.shape[1:] == (1024, 1024, 3)  # every tile is full-size
            self.tiles += len(batch)
            return np.full(batch.shape[:3], 0.25, np.float32)

    h, w = 6000, 8000
    rgb = np.zeros((h, w, 3), np.uint8)  # zero pages: costs nothing until written
    model = Constant()
    tracemalloc.start()
    try:
        prob = predict_tiled(model, rgb, tile=1024, overlap=0.25, batch_size=4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prob.shape == (h, w) and float(prob.min()) == float(prob.max()) == pytest.approx(0.25)
    assert model.tiles == count_tiles(model, h, w, tile=1024, overlap=0.25)  # type: ignore[arg-type]
    maps = 2 * 4 * h * w  # probability × weight and weight, float32
    assert peak < maps + 128 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_classifier_patch_grid(tmp_path: Path) -> None:
    predictor = load_predictor(classification_model(tmp_path / "cls.onnx"), threads=1)
    rgb = np.full((500, 700, 3), 220, np.uint8)
    rgb[0:227, 227:454] = 5  # exactly patch (0, 1) is dark
    grid = classify_patches(predictor, rgb, patch=227)
    assert grid.probabilities.shape == (3, 4)
    assert tuple(grid.boxes[-1, -1]) == (500 - 227, 700 - 227, 500, 700)  # moved back to end at the border
    assert grid.probabilities[0, 1] > 0.99 and grid.probabilities[0, 0] < 0.01
    above = grid.above(0.5)
    assert [(p["row"], p["col"]) for p in above] == [(0, 1)]
    assert (above[0]["y0"], above[0]["x0"], above[0]["y1"], above[0]["x1"]) == (0, 227, 227, 454)
    # TTA on a flip-invariant model changes nothing
    np.testing.assert_allclose(classify_patches(predictor, rgb, tta=True).probabilities, grid.probabilities, atol=1e-6)
    small = classify_patches(predictor, np.zeros((20, 30, 3), np.uint8))
    assert small.probabilities.shape == (1, 1) and tuple(small.boxes[0, 0]) == (0, 0, 20, 30)


# --------------------------------------------------------------------------- coarse-to-fine


def _wall_with_one_crack(h: int = 1500, w: int = 2100) -> np.ndarray:
    photo = np.full((h, w, 3), 230, dtype=np.uint8)
    cv2.line(photo, (200, 150), (520, 400), (20, 20, 20), 6)  # one dark crack near a corner
    return photo


def test_coarse_gate_runs_only_the_tiles_near_cracks_and_keeps_the_map(seg: OnnxPredictor) -> None:
    photo = _wall_with_one_crack()
    full_stats: dict[str, int] = {}
    full = predict_tiled(seg, photo, tile=256, stats=full_stats)
    stats: dict[str, int] = {}
    gated = predict_tiled(seg, photo, tile=256, coarse_gate=0.5, stats=stats)
    assert full_stats == {"tiles": stats["tiles"], "tiles_run": stats["tiles"], "coarse_tiles": 0}
    assert 0 < stats["tiles_run"] <= stats["tiles"] // 4  # the crack touches a few tiles of ~100
    assert stats["coarse_tiles"] > 0
    np.testing.assert_array_equal(gated >= 0.5, full >= 0.5)
    np.testing.assert_allclose(gated, full, atol=1e-3)


def test_coarse_gate_is_skipped_on_photos_of_few_tiles(seg: OnnxPredictor) -> None:
    photo = _wall_with_one_crack(400, 600)
    stats: dict[str, int] = {}
    gated = predict_tiled(seg, photo, tile=512, coarse_gate=0.5, stats=stats)
    assert stats["coarse_tiles"] == 0 and stats["tiles_run"] == stats["tiles"]
    np.testing.assert_array_equal(gated, predict_tiled(seg, photo, tile=512))


@pytest.mark.parametrize("gate", [0.0, 1.0, -0.2, 1.5])
def test_coarse_gate_out_of_range_is_an_error(seg: OnnxPredictor, gate: float) -> None:
    with pytest.raises(TilingError, match="coarse gate"):
        predict_tiled(seg, _wall_with_one_crack(), tile=256, coarse_gate=gate)


# --------------------------------------------------------------------------- tile screens (classifier gate)


def test_a_screen_that_keeps_every_tile_changes_nothing(seg: OnnxPredictor) -> None:
    photo = _wall_with_one_crack(700, 900)
    stats: dict[str, int] = {}
    screened = predict_tiled(seg, photo, tile=256, screen=lambda *box: True, stats=stats)
    assert stats["tiles_run"] == stats["tiles"] > 1
    np.testing.assert_array_equal(screened, predict_tiled(seg, photo, tile=256))


def test_a_screen_that_rejects_every_tile_gives_zero_and_runs_nothing(seg: OnnxPredictor) -> None:
    calls: list[tuple[int, int, int, int]] = []

    def reject(*box: int) -> bool:
        calls.append(box)
        return False

    stats: dict[str, int] = {}
    prob = predict_tiled(seg, _wall_with_one_crack(700, 900), tile=256, screen=reject, stats=stats)
    assert stats["tiles_run"] == 0 and len(calls) == stats["tiles"]
    assert prob.shape == (700, 900) and not prob.any()
    for y0, y1, x0, x1 in calls:  # the screen sees each tile's part inside the photo
        assert 0 <= y0 < y1 <= 700 and 0 <= x0 < x1 <= 900


def test_patch_screen_runs_only_tiles_next_to_positive_patches(seg: OnnxPredictor) -> None:
    photo = _wall_with_one_crack()  # the crack lies in rows 150–400, columns 200–520
    probs = np.zeros((7, 10), np.float32)
    rows, cols = np.arange(7) * 227, np.arange(10) * 227
    boxes = np.stack(np.broadcast_arrays(rows[:, None], cols[None, :], rows[:, None] + 227, cols[None, :] + 227), -1)
    probs[0:2, 0:3] = 0.9  # the classifier saw the crack in these patches
    grid = PatchGrid(probabilities=probs, boxes=boxes.astype(np.int64), patch=227)
    stats: dict[str, int] = {}
    screened = predict_tiled(seg, photo, tile=256, screen=patch_screen(grid, 0.5), stats=stats)
    full = predict_tiled(seg, photo, tile=256)
    assert 0 < stats["tiles_run"] <= stats["tiles"] // 4
    crack = full >= 0.5
    assert crack.any()
    np.testing.assert_array_equal(screened >= 0.5, crack)  # the crack's tiles all ran
    assert not screened[:, 1200:].any() and not screened[800:, :].any()  # far from the positive patches: 0


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.1])
def test_patch_screen_threshold_out_of_range_is_an_error(threshold: float) -> None:
    grid = PatchGrid(probabilities=np.zeros((1, 1), np.float32), boxes=np.zeros((1, 1, 4), np.int64), patch=227)
    with pytest.raises(TilingError, match="screen threshold"):
        patch_screen(grid, threshold)
