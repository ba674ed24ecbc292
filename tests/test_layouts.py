"""Layout detection on folders made in the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackscan.data.layouts import LayoutError, LayoutKind, index_dataset


def _img(path: Path, size: tuple[int, int] = (8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(path)


def test_class_folders_ignore_other_files(tmp_path: Path) -> None:
    for i in range(3):
        _img(tmp_path / "Positive" / f"{i}.jpg")
        _img(tmp_path / "Negative" / f"{i}.jpg")
    (tmp_path / "MANIFEST.csv").write_text("class,file\n")
    (tmp_path / "Positive" / "Thumbs.db").write_bytes(b"x")
    index = index_dataset(tmp_path)
    assert index.layout is LayoutKind.CLASS_FOLDERS
    assert index.class_counts == {"Negative": 3, "Positive": 3}
    assert tmp_path / "MANIFEST.csv" in index.ignored


def test_class_folders_with_splits(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for cls in ("crack", "no_crack"):
            _img(tmp_path / split / cls / "a.png")
    index = index_dataset(tmp_path)
    assert index.splits == {"test": 2, "train": 2}
    assert index.classes == ["crack", "no_crack"]


def test_pairs_by_stem_whatever_the_extension(tmp_path: Path) -> None:
    _img(tmp_path / "images" / "train" / "a.jpg")
    _img(tmp_path / "masks" / "train" / "a.png")
    _img(tmp_path / "images" / "test" / "b.JPG")
    _img(tmp_path / "masks" / "test" / "b.jpg")
    _img(tmp_path / "images" / "test" / "lonely.jpg")
    _img(tmp_path / "masks" / "test" / "orphan.png")
    _img(tmp_path / "images_unlabeled" / "c.jpg")
    (tmp_path / "README.md").write_text("hi")
    index = index_dataset(tmp_path)
    assert index.layout is LayoutKind.IMAGE_MASK_PAIRS
    assert sorted(s.image.name for s in index.samples) == ["a.jpg", "b.JPG"]
    assert [p.name for p in index.unmatched_images] == ["lonely.jpg"]
    assert [p.name for p in index.unmatched_masks] == ["orphan.png"]
    assert tmp_path / "images_unlabeled" in index.ignored
    assert index.splits == {"test": 1, "train": 1}


def test_explicit_mask_dir(tmp_path: Path) -> None:
    _img(tmp_path / "images" / "a.jpg")
    _img(tmp_path / "masks" / "a.png")
    _img(tmp_path / "masks_binary" / "a.png")
    index = index_dataset(tmp_path, mask_dir="masks_binary")
    assert index.samples[0].mask == tmp_path / "masks_binary" / "a.png"


@pytest.mark.parametrize("setup", ["missing", "file", "empty"])
def test_not_a_data_set(tmp_path: Path, setup: str) -> None:
    root = tmp_path / "ds"
    if setup == "file":
        root.write_text("x")
    elif setup == "empty":
        root.mkdir()
    with pytest.raises(LayoutError):
        index_dataset(root)
