"""``crackscan data patches``: crack / no_crack patches cut from image/mask pairs, split by photo, SRC untouched."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from conftest import make_class_set, tree_hashes
from crackscan.cli import app
from crackscan.data.layouts import LayoutKind, index_dataset
from crackscan.data.patches import _starts, cut_patches

runner = CliRunner()


def _pair(root: Path, split: str | None, name: str, crack: np.ndarray) -> None:
    h, w = crack.shape
    parts = (split,) if split else ()
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    for sub, array in (("images", rng.integers(90, 200, (h, w, 3), dtype=np.uint8)), ("masks", crack * 255)):
        folder = root.joinpath(sub, *parts)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array.astype(np.uint8)).save(folder / f"{name}.png")


def test_tiles_cover_the_photo_to_its_far_edge() -> None:
    assert _starts(100, 32, 32) == [0, 32, 64, 68] and _starts(64, 32, 32) == [0, 32] and _starts(20, 32, 32) == []


def test_patches_keep_the_official_split_label_by_crack_share_and_list_what_is_left_out(tmp_path: Path) -> None:
    src = tmp_path / "walls"
    a = np.zeros((64, 100), np.uint8)
    a[:, 10:13] = 1  # a crack through the first column of patches: 96 of 1024 pixels each
    a[40, 40] = 1  # one stray pixel: that patch is neither crack nor clean
    _pair(src, "train", "a", a)
    _pair(src, "test", "small", np.zeros((20, 20), np.uint8))
    _pair(src, "test", "clean", np.zeros((32, 32), np.uint8))
    before = tree_hashes(src)

    result = runner.invoke(app, ["data", "patches", str(src), str(tmp_path / "p"), "--size", "32"])
    assert result.exit_code == 0, result.output
    assert tree_hashes(src) == before  # SRC is never modified
    summary = json.loads((tmp_path / "p" / "PATCHES.json").read_text())
    assert summary["counts"] == {"test": {"no_crack": 1}, "train": {"crack": 2, "no_crack": 5}}
    assert summary["ambiguous"] == 1 and summary["photos"] == {"train": 1, "test": 1}
    assert [e["reason"] for e in summary["left_out"]] == ["smaller than a 32-px patch"]
    assert sorted(p.name for p in (tmp_path / "p" / "train" / "crack").iterdir()) == [
        "images_train_a_y0_x0.png",
        "images_train_a_y32_x0.png",
    ]
    patch = np.asarray(Image.open(tmp_path / "p" / "train" / "crack" / "images_train_a_y32_x0.png"))
    photo = np.asarray(Image.open(src / "images" / "train" / "a.png"))
    assert np.array_equal(patch, photo[32:64, 0:32])  # lossless copies of the photo's pixels
    index = index_dataset(tmp_path / "p")
    assert index.layout is LayoutKind.CLASS_FOLDERS and {s.split for s in index.samples} == {"train", "test"}

    again = runner.invoke(app, ["data", "patches", str(src), str(tmp_path / "p"), "--size", "32"])
    assert again.exit_code == 1 and "not empty" in again.output
    inside = runner.invoke(app, ["data", "patches", str(src), str(src / "patches")])
    assert inside.exit_code == 1 and "must not be inside SRC" in " ".join(inside.output.split())


def test_photos_are_split_before_they_are_cut(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    for i in range(12):
        crack = np.zeros((64, 64), np.uint8)
        if i % 3:
            crack[:, 5 + i : 8 + i] = 1
        _pair(src, None, f"p{i:02d}", crack)
    summary = cut_patches(src, tmp_path / "out", size=32, val=0.25, test=0.25, seed=3)
    assert summary.split == "seed 3" and set(summary.photos) == {"train", "val", "test"}
    split_of: dict[str, set[str]] = defaultdict(set)
    for f in (tmp_path / "out").glob("*/*/*.png"):
        split_of[f.name.split("_y")[0]].add(f.parts[-3])
    assert len(split_of) == 12 and all(len(parts) == 1 for parts in split_of.values())  # no photo in two splits


def test_class_folders_and_bad_options_are_clear_errors(tmp_path: Path) -> None:
    make_class_set(tmp_path / "cls", {"crack": 2, "no_crack": 2})
    r = runner.invoke(app, ["data", "patches", str(tmp_path / "cls"), str(tmp_path / "o")])
    assert r.exit_code == 1 and "image/mask pairs" in r.output
    _pair(tmp_path / "ok", None, "x", np.zeros((40, 40), np.uint8))
    r = runner.invoke(app, ["data", "patches", str(tmp_path / "ok"), str(tmp_path / "o2"), "--min-crack", "0"])
    assert r.exit_code == 1 and "--min-crack" in r.output


def test_a_multi_class_mask_is_refused_with_the_way_out(tmp_path: Path) -> None:
    labels = np.zeros((40, 40), np.uint8)
    labels[5:10, :] = 1
    labels[20:30, :] = 2  # e.g. car_scratch's wheels
    _pair(tmp_path / "cars", None, "a_binary", (labels == 1).astype(np.uint8))  # read first: its patches are cut
    for sub, array in (("images", np.full((40, 40, 3), 120, np.uint8)), ("masks", labels)):
        Image.fromarray(array).save(tmp_path / "cars" / sub / "b_car.png")
    r = runner.invoke(app, ["data", "patches", str(tmp_path / "cars"), str(tmp_path / "o"), "--size", "32"])
    assert r.exit_code == 1 and "multi-class index mask" in r.output and "--mask-dir" in " ".join(r.output.split())
    assert list((tmp_path / "o").iterdir()) == []  # no half-made set left behind
