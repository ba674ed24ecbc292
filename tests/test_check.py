"""``crackscan data check`` on folders made in the test (and, opt-in, the shared sets)."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import (
    make_class_set,
    make_empty,
    make_image,
    make_mask,
    make_pair_set,
    make_png_claiming,
    make_text_file,
    make_truncated_jpeg,
)
from crackscan.cli import app
from crackscan.data.check import check_dataset
from crackscan.data.layouts import LayoutError

runner = CliRunner()

JSON_KEYS = {
    "root",
    "layout",
    "n_images",
    "n_masks",
    "n_pairs",
    "classes",
    "splits",
    "image_sizes",
    "corrupt",
    "unmatched_images",
    "unmatched_masks",
    "size_mismatches",
    "duplicates",
    "mask_kinds",
    "crack_pixel_fraction",
    "warnings",
    "problems",
    "usable",
}


def _cli_check(root: Path, tmp_path: Path, *extra: str) -> tuple[int, dict, str]:
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["data", "check", str(root), "--json", str(out), *extra])
    # A traceback would show up as an exception other than the clean typer exit.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    payload = json.loads(out.read_text()) if out.exists() else {}
    return result.exit_code, payload, result.output


def test_good_pair_set_is_usable(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_pair_set(root, 4, split="train", n_no_crack=1)
    make_pair_set(root, 2, split="test")
    code, r, output = _cli_check(root, tmp_path)
    assert code == 0, output
    assert set(r) >= JSON_KEYS
    assert r["layout"] == "image_mask_pairs"
    assert (r["n_images"], r["n_masks"], r["n_pairs"]) == (6, 6, 6)
    assert r["splits"]["train"] == {"n": 4, "with_crack": 3, "no_crack": 1}
    assert r["splits"]["test"]["n"] == 2
    assert r["mask_kinds"] == {"binary": 5, "empty": 1}
    assert r["image_sizes"] == {"32x32": 6}
    frac = r["crack_pixel_fraction"]
    assert 0.0 == frac["min"] < frac["mean"] < frac["max"] < 0.2
    assert r["corrupt"] == r["unmatched_images"] == r["unmatched_masks"] == r["size_mismatches"] == []
    assert r["usable"] is True and r["problems"] == []
    assert any("no crack pixels" in w for w in r["warnings"])
    assert "usable" in output


def test_reader_quirks_through_check(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    img, msk = root / "images", root / "masks"
    make_image(img / "onebit.png")
    make_mask(msk / "onebit.png", kind="1bit")
    make_image(img / "jpegmask.jpg")
    make_mask(msk / "jpegmask.jpg", kind="jpeg")
    make_image(img / "rgbmask.png")
    make_mask(msk / "rgbmask.png", kind="rgb")
    make_image(img / "sixteen.png", mode="I;16")
    make_mask(msk / "sixteen.png", kind="16bit")
    make_image(img / "grey.jpg", mode="L")
    make_mask(msk / "grey.png", kind="01")
    # Stored 40×32 with orientation 6: shown 32×40, which is the mask's size.
    make_image(img / "rotated.jpg", (40, 32), exif_orientation=6)
    make_mask(msk / "rotated.png", (32, 40))
    # A genuine mismatch for contrast.
    make_image(img / "wrong.png", (32, 32))
    make_mask(msk / "wrong.png", (24, 32))

    r = check_dataset(root).to_dict()
    assert r["corrupt"] == []
    assert r["n_pairs"] == 7
    assert r["size_mismatches"] == [
        {"image": "images/wrong.png", "mask": "masks/wrong.png", "image_size": "32x32", "mask_size": "24x32"}
    ]
    assert r["mask_kinds"] == {"binary": 6, "noisy_binary": 1}
    assert r["image_sizes"] == {"32x32": 6, "32x40": 1}
    assert r["usable"] is False
    assert any("size mismatch" in p for p in r["problems"])


def test_broken_files_are_reported_with_reasons(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_class_set(root, {"crack": 3, "no_crack": 3})
    make_truncated_jpeg(root / "crack" / "truncated.jpg")
    make_empty(root / "crack" / "empty.jpg")
    make_text_file(root / "no_crack" / "text.jpg")
    make_png_claiming(root / "no_crack" / "huge.png", 30000, 30000)

    tracemalloc.start()
    try:
        report = check_dataset(root)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 30000×30000×3 would be 2.7 GB: the header alone must refuse it.
    assert peak < 50 * 2**20
    reasons = {c["path"]: c["reason"] for c in report.corrupt}
    assert set(reasons) == {"crack/truncated.jpg", "crack/empty.jpg", "no_crack/text.jpg", "no_crack/huge.png"}
    assert "truncated" in reasons["crack/truncated.jpg"]
    assert "empty" in reasons["crack/empty.jpg"]
    assert "not an image" in reasons["no_crack/text.jpg"]
    assert "too large" in reasons["no_crack/huge.png"] and "30000" in reasons["no_crack/huge.png"]
    assert report.n_images == 10 and report.n_usable == 6
    assert not report.usable
    assert report.classes == {"crack": 5, "no_crack": 5}


def test_done_when_folder_exit_1_three_corrupt_no_traceback(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_class_set(root, {"Positive": 4, "Negative": 4}, suffix=".jpg")
    make_truncated_jpeg(root / "Positive" / "cut.jpg")
    make_empty(root / "Negative" / "zero.jpg")
    make_text_file(root / "Negative" / "notes.jpg")
    code, r, output = _cli_check(root, tmp_path)
    assert code == 1
    assert sorted(c["path"] for c in r["corrupt"]) == ["Negative/notes.jpg", "Negative/zero.jpg", "Positive/cut.jpg"]
    assert r["problems"] == ["3 corrupt files"]
    assert "corrupt files (3)" in output


def test_flat_folder_of_photos_still_lists_corrupt_files(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    for i in range(3):
        make_image(root / f"good_{i}.jpg")
    make_truncated_jpeg(root / "cut.jpg")
    make_empty(root / "zero.jpg")
    make_text_file(root / "notes.jpg")
    code, r, _ = _cli_check(root, tmp_path)
    assert code == 1
    assert r["layout"] == "unlabelled_images"
    assert sorted(c["path"] for c in r["corrupt"]) == ["cut.jpg", "notes.jpg", "zero.jpg"]
    assert any("no labels" in p for p in r["problems"])


def test_not_a_data_set_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(LayoutError):
        check_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["data", "check", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert "error" in result.output and "Traceback" not in result.output


def test_unmatched_images_and_masks(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_pair_set(root, 3)
    make_image(root / "images" / "lonely.png")
    make_mask(root / "masks" / "orphan.png")
    code, r, _ = _cli_check(root, tmp_path)
    assert code == 1
    assert r["unmatched_images"] == ["images/lonely.png"]
    assert r["unmatched_masks"] == ["masks/orphan.png"]
    assert (r["n_images"], r["n_masks"], r["n_pairs"]) == (4, 4, 3)


def test_duplicates_across_classes_are_a_problem(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_class_set(root, {"crack": 3, "no_crack": 3})
    make_image(root / "crack" / "dup_a.png", seed=7)
    make_image(root / "no_crack" / "dup_b.png", seed=7)
    r = check_dataset(root).to_dict()
    assert len(r["duplicates"]) == 1
    dup = r["duplicates"][0]
    assert dup["paths"] == ["crack/dup_a.png", "no_crack/dup_b.png"]
    assert dup["classes"] == ["crack", "no_crack"] and "conflicting classes" in dup["note"]
    assert not r["usable"]


def test_duplicates_within_a_class_are_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_class_set(root, {"crack": 3, "no_crack": 3})
    make_image(root / "crack" / "dup_a.png", seed=7)
    make_image(root / "crack" / "dup_b.png", seed=7)
    r = check_dataset(root).to_dict()
    assert len(r["duplicates"]) == 1 and "within class crack" in r["duplicates"][0]["note"]
    assert r["usable"] and any("duplicates" in w for w in r["warnings"])


def test_duplicates_across_official_splits_are_leakage(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_pair_set(root, 3, split="train")
    make_pair_set(root, 2, split="test")
    make_image(root / "images" / "train" / "dup.png", seed=5)
    make_mask(root / "masks" / "train" / "dup.png")
    make_image(root / "images" / "test" / "dup.png", seed=5)
    make_mask(root / "masks" / "test" / "dup.png")
    r = check_dataset(root).to_dict()
    (dup,) = r["duplicates"]
    assert dup["splits"] == ["test", "train"] and "leakage" in dup["note"]
    assert not r["usable"]


def test_duplicate_images_with_different_masks_conflict(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_pair_set(root, 2)
    make_image(root / "images" / "a.png", seed=5)
    make_mask(root / "masks" / "a.png", crack=True)
    make_image(root / "images" / "b.png", seed=5)
    make_mask(root / "masks" / "b.png", crack=False)
    r = check_dataset(root).to_dict()
    assert "conflicting masks" in r["duplicates"][0]["note"] and not r["usable"]


def test_class_folder_rules(tmp_path: Path) -> None:
    one = tmp_path / "one"
    make_class_set(one, {"crack": 3})
    r = check_dataset(one).to_dict()
    assert not r["usable"] and any("at least 2" in p for p in r["problems"])

    # An empty class folder in one split, filled in another: a warning, not a problem.
    two = tmp_path / "two"
    make_class_set(two, {"crack": 2, "no_crack": 2}, split="train")
    make_class_set(two, {"crack": 2}, split="test")
    (two / "test" / "no_crack").mkdir()
    r = check_dataset(two).to_dict()
    assert r["usable"], r["problems"]
    assert r["splits"]["test"] == {"n": 2, "classes": {"crack": 2}}
    assert any("empty class folder test/no_crack" in w for w in r["warnings"])


def test_mixed_sizes_warn_and_progress_reaches_total(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_class_set(root, {"a": 2, "b": 2})
    make_image(root / "a" / "big.png", (48, 40))
    calls: list[tuple[int, int]] = []
    r = check_dataset(root, progress=lambda d, t: calls.append((d, t)))
    assert r.usable and any("mixed image sizes" in w for w in r.warnings)
    assert calls[-1] == (5, 5)


def test_max_pixels_option(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_class_set(root, {"a": 2, "b": 2}, size=(32, 32))
    r = check_dataset(root, max_pixels=1000)
    assert len(r.corrupt) == 4 and all("too large" in c["reason"] for c in r.corrupt)


# ---------------------------------------------------------------- opt-in: real data


def _timed_check(path: Path, **kwargs: object) -> dict:
    start = time.perf_counter()
    r = check_dataset(path, **kwargs).to_dict()  # type: ignore[arg-type]
    r["_seconds"] = time.perf_counter() - start
    return r


@pytest.mark.shared_data
def test_shared_deepcrack(shared_data: Path, tmp_path: Path) -> None:
    code, r, _ = _cli_check(shared_data / "deepcrack", tmp_path)
    # The official split leaks one photo: test 11216.jpg is a re-encoded copy of train 11158.jpg.
    assert code == 1 and r["problems"] == ["1 near-duplicate group across splits (leakage)"]
    [leak] = r["near_duplicates"]
    assert leak["paths"] == ["images/test/11216.jpg", "images/train/11158.jpg"] and leak["similarity"] > 0.99
    assert r["duplicates"] == []
    assert r["n_pairs"] == 537 and r["n_images"] == 537 and r["n_masks"] == 537
    assert {k: v["n"] for k, v in r["splits"].items()} == {"train": 300, "test": 237}
    assert r["unmatched_images"] == r["unmatched_masks"] == r["corrupt"] == []
    assert r["mask_kinds"] == {"binary": 537}  # 1-bit test masks and 0/255 train masks
    assert r["image_sizes"] == {"544x384": 537}
    assert 0.02 < r["crack_pixel_fraction"]["mean"] < 0.06


@pytest.mark.shared_data
def test_shared_crackmix(shared_data: Path) -> None:
    r = _timed_check(shared_data / "crackmix")
    assert r["n_pairs"] == 697 and r["corrupt"] == [] and r["unmatched_images"] == []
    assert r["mask_kinds"].get("noisy_binary", 0) > 400  # JPEG masks
    assert r["image_sizes"] == {"448x448": 697}
    assert r["usable"]


@pytest.mark.shared_data
def test_shared_ozgenel(shared_data: Path) -> None:
    r = _timed_check(shared_data / "ozgenel")
    assert r["layout"] == "class_folders" and r["n_images"] == 6000
    assert r["classes"] == {"Negative": 3000, "Positive": 3000}
    assert r["corrupt"] == [] and r["usable"]
    assert r["image_sizes"] == {"227x227": 6000}
    # About 250 patches were saved again under other numbers, half of them mirrored or upside
    # down (an augmented copy): a split must keep each group together.
    groups = r["near_duplicates"]
    assert len(groups) == 251 and min(d["similarity"] for d in groups) > 0.95
    turned = [d for d in groups if d["orientation"] != "as is"]
    assert len(turned) == 142 and any(d["orientation"] == "mirrored" for d in turned)


@pytest.mark.shared_data
def test_shared_crack500_and_car_damage(shared_data: Path) -> None:
    r = _timed_check(shared_data / "crack500")
    assert r["n_pairs"] == 379 and {k: v["n"] for k, v in r["splits"].items()} == {"train": 286, "test": 93}
    assert r["corrupt"] == [] and r["image_sizes"] == {"256x256": 379}
    # Two photos sit in both splits under one name, saved twice (no byte-for-byte copy).
    leaks = [d["paths"] for d in r["near_duplicates"] if d["problem"]]
    assert leaks == [[f"images/test/{n}", f"images/train/{n}"] for n in ("20160329_103609.jpg", "20160329_111111.jpg")]
    r = _timed_check(shared_data / "car_damage")
    assert r["n_pairs"] == 64 and {k: v["n"] for k, v in r["splits"].items()} == {"train": 49, "val": 15}
    assert r["size_mismatches"] == [] and r["corrupt"] == []
    # The set really holds copies of val images in train, with different masks.
    assert any("leakage" in d["note"] for d in r["duplicates"])


@pytest.mark.shared_data
def test_shared_car_scratch_masks(shared_data: Path) -> None:
    r = _timed_check(shared_data / "car_scratch")
    assert r["n_pairs"] == 121 and r["size_mismatches"] == [] and r["corrupt"] == []
    assert r["mask_kinds"].get("multiclass", 0) > 0
    r = _timed_check(shared_data / "car_scratch", mask_dir="masks_binary")
    assert set(r["mask_kinds"]) <= {"binary", "empty"}
    assert np.isclose(sum(r["mask_kinds"].values()), 121)
