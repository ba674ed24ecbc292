"""``crackscan data fix``: a normalised copy, SRC untouched, left-out files listed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import (
    make_class_set,
    make_image,
    make_mask,
    make_pair_set,
    make_truncated_jpeg,
    tree_hashes,
)
from crackscan.cli import app
from crackscan.data.check import check_dataset
from crackscan.data.fix import FixError, fix_dataset
from crackscan.imageio import read_image

runner = CliRunner()


def _quirky_pairs(root: Path) -> None:
    img, msk = root / "images" / "train", root / "masks" / "train"
    make_pair_set(root, 2, split="test")
    make_image(img / "onebit.png")
    make_mask(msk / "onebit.png", kind="1bit")
    make_image(img / "jpegmask.jpg")
    make_mask(msk / "jpegmask.jpg", kind="jpeg")
    make_image(img / "rgbmask.png")
    make_mask(msk / "rgbmask.png", kind="rgb")
    make_image(img / "sixteen.png", mode="I;16")
    make_mask(msk / "sixteen.png", kind="01")
    make_image(img / "grey.jpg", mode="L")
    make_mask(msk / "grey.png", kind="16bit")
    make_image(img / "rotated.jpg", (40, 32), exif_orientation=6)
    make_mask(msk / "rotated.png", (32, 40))
    # Left out: truncated image, size mismatch, image without mask, mask without image.
    make_truncated_jpeg(img / "cut.jpg")
    make_mask(msk / "cut.png", (64, 64))
    make_image(img / "wrong.png", (32, 32))
    make_mask(msk / "wrong.png", (24, 32))
    make_image(img / "lonely.png")
    make_mask(msk / "orphan.png")


def test_fix_normalises_and_lists_left_out(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _quirky_pairs(src)
    before = tree_hashes(src)
    report = fix_dataset(src, dst)
    assert tree_hashes(src) == before  # SRC is never modified

    assert report.n_written == 8
    written_masks = sorted(p.relative_to(dst).as_posix() for p in (dst / "masks").rglob("*.png"))
    assert written_masks == [
        "masks/test/p_test_000.png",
        "masks/test/p_test_001.png",
        "masks/train/grey.png",
        "masks/train/jpegmask.png",
        "masks/train/onebit.png",
        "masks/train/rgbmask.png",
        "masks/train/rotated.png",
        "masks/train/sixteen.png",
    ]
    for p in (dst / "masks").rglob("*.png"):
        with Image.open(p) as m:
            assert m.mode == "L" and m.format == "PNG"
            values = set(np.unique(np.asarray(m)).tolist())
        assert values <= {0, 255} and 255 in values, p

    # Images: RGB, orientation applied (pixels now stored 32 wide, 40 high), no EXIF tag.
    with Image.open(dst / "images" / "train" / "rotated.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (32, 40)
        assert im.getexif().get(0x0112) in (None, 1)
    with Image.open(dst / "images" / "train" / "sixteen.png") as im:
        assert im.mode == "RGB" and im.format == "PNG"
    with Image.open(dst / "images" / "train" / "grey.jpg") as im:
        assert im.mode == "RGB" and im.format == "JPEG"
    # Content survives: a PNG re-encode is lossless.
    assert np.array_equal(
        read_image(dst / "images" / "train" / "rgbmask.png"), read_image(src / "images" / "train" / "rgbmask.png")
    )

    doc = json.loads((dst / "REPORT.json").read_text())
    reasons = {e["path"]: e["reason"] for e in doc["left_out"]}
    assert set(reasons) == {
        "images/train/cut.jpg",
        "images/train/wrong.png",
        "images/train/lonely.png",
        "masks/train/orphan.png",
    }
    assert "truncated" in reasons["images/train/cut.jpg"]
    assert "size mismatch" in reasons["images/train/wrong.png"]
    assert reasons["images/train/lonely.png"] == "image without a mask"
    assert reasons["masks/train/orphan.png"] == "mask without an image"
    assert doc["n_written"] == 8 and doc["splits"] == {"test": 2, "train": 6}
    assert not (dst / "images" / "train" / "cut.jpg").exists()

    # The copy passes check.
    r = check_dataset(dst)
    assert r.usable, r.problems
    assert r.n_pairs == 8 and set(r.mask_kinds) <= {"binary"}


def test_fix_keeps_index_masks(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    labels = np.zeros((32, 32), np.uint8)
    labels[2:10, 2:10] = 1
    labels[20:30, 20:30] = 3
    make_image(src / "images" / "a.png")
    make_mask(src / "masks" / "a.png", kind="index", labels=labels)
    only_one = np.zeros((32, 32), np.uint8)
    only_one[5:9, 5:9] = 1  # {0,1} alone reads as binary; in this set it is class 1
    make_image(src / "images" / "b.png")
    make_mask(src / "masks" / "b.png", kind="index", labels=only_one)
    fix_dataset(src, dst)
    with Image.open(dst / "masks" / "a.png") as m:
        assert m.mode == "L" and np.array_equal(np.asarray(m), labels)
    with Image.open(dst / "masks" / "b.png") as m:
        assert np.array_equal(np.asarray(m), only_one)


def test_fix_class_folders_duplicates(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_class_set(src, {"crack": 3, "no_crack": 3}, split="train", suffix=".jpg")
    make_class_set(src, {"crack": 2, "no_crack": 2}, split="test", suffix=".jpg")
    (src / "MANIFEST.csv").write_text("file,class\n")
    # Conflicting classes: both copies go. Leakage: the train copy goes, test keeps it.
    make_image(src / "train" / "crack" / "conf_a.png", seed=11)
    make_image(src / "train" / "no_crack" / "conf_b.png", seed=11)
    make_image(src / "train" / "crack" / "leak.png", seed=12)
    make_image(src / "test" / "crack" / "leak.png", seed=12)
    # Within one class: kept (split keeps them together).
    make_image(src / "train" / "no_crack" / "same_a.png", seed=13)
    make_image(src / "train" / "no_crack" / "same_b.png", seed=13)
    before = tree_hashes(src)
    report = fix_dataset(src, dst)
    assert tree_hashes(src) == before
    left = {e["path"] for e in report.left_out}
    assert left == {"train/crack/conf_a.png", "train/no_crack/conf_b.png", "train/crack/leak.png"}
    assert (dst / "test" / "crack" / "leak.png").exists()
    assert (dst / "train" / "no_crack" / "same_b.png").exists()
    assert report.duplicates_kept == [["train/no_crack/same_a.png", "train/no_crack/same_b.png"]]
    assert (dst / "MANIFEST.csv").read_text() == "file,class\n"
    assert report.classes == {"crack": 6, "no_crack": 7}
    r = check_dataset(dst)
    assert r.usable, r.problems
    assert r.splits["train"]["n"] == 8 and r.splits["test"]["n"] == 5


def test_fix_refuses_bad_destinations(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_pair_set(src, 2)
    before = tree_hashes(src)
    with pytest.raises(FixError, match="inside SRC"):
        fix_dataset(src, src / "clean")
    with pytest.raises(FixError, match="inside SRC"):
        fix_dataset(src, src)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("x")
    with pytest.raises(FixError, match="not empty"):
        fix_dataset(src, busy)
    assert tree_hashes(src) == before
    assert not (src / "clean").exists()

    result = runner.invoke(app, ["data", "fix", str(src), str(busy)])
    flat = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 1 and "not empty" in flat and "Traceback" not in flat
    result = runner.invoke(app, ["data", "fix", str(src), str(tmp_path / "out")])
    assert result.exit_code == 0 and "wrote 2 samples" in result.output
