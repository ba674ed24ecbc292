"""Near duplicates: fingerprints, pairs and groups, and how ``data check`` and ``data split`` use them."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import make_class_set, make_mask, make_pair_set, tree_hashes
from crackscan.data.check import check_dataset
from crackscan.data.similar import (
    DEFAULT_SIMILARITY,
    ORIENTATIONS,
    _orientations,
    fingerprint,
    link_groups,
    similar_pairs,
)
from crackscan.data.split import make_split, read_split


def _surface(seed: int, size: int = 160) -> np.ndarray:
    """A concrete-like texture: noise blurred at two scales, with a dark crack line."""
    rng = np.random.default_rng(seed)
    coarse = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 6)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.2)
    grey = 128 + 40 * coarse / coarse.std() + 12 * fine / fine.std()
    cv2.line(grey, (int(rng.integers(0, size)), 0), (int(rng.integers(0, size)), size - 1), 60.0, 3)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _reencoded(rgb: np.ndarray, *, quality: int = 60, scale: float = 0.75, gain: float = 1.1, offset: int = 12):
    """What copies of one photo look like in real sets: resized, re-exposed, saved again as JPEG."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    brighter = np.clip(small.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(brighter).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _save(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def _leaky_class_set(root: Path, n: int) -> None:
    """Class folders in train/ and test/, with a re-encoded test copy of one training photo."""
    make_class_set(root, {"crack": n, "no_crack": n}, split="train")
    make_class_set(root, {"crack": 2, "no_crack": 2}, split="test")
    _save(root / "train" / "crack" / "wall.png", _surface(7))
    _save(root / "test" / "crack" / "wall_copy.jpg", _reencoded(_surface(7)))


def test_copies_score_near_one_and_other_surfaces_far_below() -> None:
    a = fingerprint(_surface(1))
    copy = fingerprint(_reencoded(_surface(1)))
    others = [fingerprint(_surface(s)) for s in range(2, 12)]
    assert a is not None and copy is not None and a.shape == (1024,)
    assert np.isclose(np.linalg.norm(a), 1.0, atol=1e-5)
    assert float(a @ copy) > 0.95
    assert max(float(a @ o) for o in others if o is not None) < 0.5
    # Grey input gives the fingerprint of the same picture in RGB.
    assert np.allclose(fingerprint(_surface(1)[..., 0]), a, atol=1e-5)


def test_flat_images_have_no_fingerprint() -> None:
    assert fingerprint(np.full((64, 64, 3), 200, np.uint8)) is None
    # A smooth gradient (vignetting, an over-exposed sky) has no texture either.
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (64, 1)).astype(np.uint8)
    assert fingerprint(ramp) is None


def test_pairs_and_groups_are_transitive_and_threshold_checked() -> None:
    base = [_surface(s) for s in (1, 2, 3)]
    prints = [
        fingerprint(base[0]),
        fingerprint(base[1]),
        fingerprint(_reencoded(base[0])),
        None,  # flat: never linked
        fingerprint(_reencoded(_reencoded(base[0]), quality=50)),
        fingerprint(base[2]),
    ]
    pairs = similar_pairs(prints)
    assert {(p.i, p.j) for p in pairs} <= {(0, 2), (0, 4), (2, 4)} and len(pairs) >= 2
    assert all(p.i < p.j and p.similarity >= DEFAULT_SIMILARITY and p.orientation == 0 for p in pairs)
    assert link_groups(len(prints), pairs) == [[0, 2, 4]]
    assert link_groups(3, [(0, 1, 0.99), (1, 2, 0.95)]) == [[0, 1, 2]]
    assert similar_pairs([prints[0]]) == [] and similar_pairs([None, None]) == []
    with pytest.raises(ValueError, match="threshold"):
        similar_pairs(prints, 0.0)


def _turned(rgb: np.ndarray, k: int, mirror: bool) -> np.ndarray:
    out = np.rot90(rgb, k)
    return np.ascontiguousarray(out[:, ::-1] if mirror else out)


def test_turned_and_mirrored_copies_are_found_with_how_they_were_turned() -> None:
    # Augmented sets carry rotated copies (Özgenel: about 150 patches rotated by 90°); the photo
    # is not square, so its thumbnail is squeezed one way and the copy's the other.
    photo = cv2.resize(_surface(3, size=240), (240, 160), interpolation=cv2.INTER_AREA)
    for k in range(4):
        for mirror in (False, True):
            copy = _reencoded(_turned(photo, k, mirror), scale=0.8)
            prints = [fingerprint(photo), fingerprint(_surface(4)), fingerprint(copy)]
            pairs = similar_pairs(prints)
            assert [(p.i, p.j) for p in pairs] == [(0, 2)], (k, mirror)
            assert pairs[0].similarity > 0.95
            turn = f"rotated {90 * k}°" if k else ""
            label = (f"{turn} and mirrored" if turn else "mirrored") if mirror else (turn or "as is")
            assert ORIENTATIONS[pairs[0].orientation] == label
            if k or mirror:
                assert similar_pairs(prints, orientations=False) == []


def test_orientation_screen_misses_nothing_the_full_comparison_finds() -> None:
    # The screen compares orientation-free parts; scoring every pair in all eight orientations is
    # the reference. Mixed in: copies turned every way, near misses (a shifted crop) and
    # textures with almost no orientation-free part (which the screen cannot judge).
    rng = np.random.default_rng(0)
    prints: list[np.ndarray | None] = []
    for seed in range(30):
        base = _surface(100 + seed, size=120)
        prints.append(fingerprint(base))
        if seed % 3 == 0:
            prints.append(fingerprint(_reencoded(_turned(base, seed % 4, seed % 2 == 1))))
        if seed % 5 == 0:
            prints.append(fingerprint(np.ascontiguousarray(base[6:, 6:])))
    antisymmetric = rng.normal(0, 1, (32, 32)).astype(np.float32)
    antisymmetric = antisymmetric - antisymmetric[:, ::-1]  # its mirror image is its negative
    no_symmetric_part = (antisymmetric / np.linalg.norm(antisymmetric)).ravel()
    prints += [
        no_symmetric_part,
        np.rot90(no_symmetric_part.reshape(32, 32)).ravel().copy(),
    ]  # found only by the fallback
    matrix = np.stack([p for p in prints if p is not None])
    best = np.max([matrix @ o.T for o in _orientations(matrix)], axis=0)
    expected = {(i, j) for i, j in zip(*np.nonzero(best >= DEFAULT_SIMILARITY), strict=True) if i < j}
    assert len(expected) >= 10
    assert {(p.i, p.j) for p in similar_pairs(list(matrix))} == expected


def test_check_reports_a_reencoded_test_copy_of_a_training_image_as_leakage(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _leaky_class_set(root, 3)
    _save(root / "train" / "no_crack" / "plain.png", _surface(8))
    _save(root / "train" / "no_crack" / "plain_again.jpg", _reencoded(_surface(8), quality=80))
    before = tree_hashes(root)

    r = check_dataset(root).to_dict()
    assert r["duplicates"] == []  # no byte-for-byte copy: hashing alone finds nothing
    by_path = {tuple(d["paths"]): d for d in r["near_duplicates"]}
    leak = by_path[("test/crack/wall_copy.jpg", "train/crack/wall.png")]
    assert leak["problem"] and leak["splits"] == ["test", "train"] and leak["similarity"] > 0.9
    inside = by_path[("train/no_crack/plain.png", "train/no_crack/plain_again.jpg")]
    assert not inside["problem"] and "within class no_crack" in inside["note"]
    assert len(by_path) == 2
    assert not r["usable"] and any("near-duplicate group across splits" in p for p in r["problems"])
    assert any("1 group of near duplicates" in w for w in r["warnings"])

    skipped = check_dataset(root, similarity=None).to_dict()
    assert skipped["near_duplicates"] == [] and skipped["usable"] and skipped["similarity"] is None
    assert tree_hashes(root) == before  # nothing written into the data set


def test_check_names_how_a_turned_test_copy_was_turned(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_class_set(root, {"crack": 3, "no_crack": 3}, split="train")
    make_class_set(root, {"crack": 2, "no_crack": 2}, split="test")
    _save(root / "train" / "crack" / "wall.png", _surface(7))
    _save(root / "test" / "crack" / "wall_turned.jpg", _reencoded(_turned(_surface(7), 1, False)))
    r = check_dataset(root).to_dict()
    (leak,) = r["near_duplicates"]
    assert leak["paths"] == ["test/crack/wall_turned.jpg", "train/crack/wall.png"]
    assert leak["problem"] and leak["orientation"] in ("rotated 90°", "rotated 270°")
    assert not r["usable"]


def test_split_keeps_near_duplicates_together_and_out_of_an_official_test_split(tmp_path: Path) -> None:
    # No official split: each copy of a photo lands where the photo does.
    root = tmp_path / "flat"
    make_class_set(root, {"crack": 12, "no_crack": 12})
    for k in range(4):
        _save(root / "crack" / f"wall_{k}.png", _surface(20 + k))
        _save(root / "crack" / f"wall_{k}_copy.jpg", _reencoded(_surface(20 + k)))
    for seed in range(6):
        plan = make_split(root, seed=seed)
        for k in range(4):
            assert plan.split_of(f"crack/wall_{k}.png") == plan.split_of(f"crack/wall_{k}_copy.jpg")
    assert plan.similarity == DEFAULT_SIMILARITY
    assert any("4 group(s) of near duplicates" in w for w in plan.warnings)
    exact_only = make_split(root, seed=0, similarity=None)
    assert exact_only.similarity is None and not any("near duplicates" in w for w in exact_only.warnings)

    # An official split: the training copy of a test photo is left out, with the reason.
    pairs = tmp_path / "pairs"
    make_pair_set(pairs, 6, split="train")
    make_pair_set(pairs, 3, split="test")
    _save(pairs / "images" / "test" / "road.png", _surface(30))
    make_mask(pairs / "masks" / "test" / "road.png", (160, 160))
    _save(pairs / "images" / "train" / "road_2016.png", _reencoded(_surface(30), scale=1.0))
    make_mask(pairs / "masks" / "train" / "road_2016.png", (160, 160), seed=3)
    plan = make_split(pairs)
    assert "images/test/road.png" in plan.splits["test"]
    assert plan.split_of("images/train/road_2016.png") is None
    [entry] = [e for e in plan.excluded if e["path"] == "images/train/road_2016.png"]
    assert entry["reason"].startswith("near duplicate of images/test/road.png in official split test")


def test_cli_check_lists_near_duplicates_and_similarity_zero_skips_the_search(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from crackscan.cli import app

    root = tmp_path / "ds"
    _leaky_class_set(root, 2)
    runner = CliRunner()
    found = runner.invoke(app, ["data", "check", str(root)])
    assert found.exit_code == 1, found.output
    assert "near duplicates (1)" in found.output and "leakage across splits: test, train" in found.output
    skipped = runner.invoke(app, ["data", "check", str(root), "--similarity", "0"])
    assert skipped.exit_code == 0 and "near duplicates" not in skipped.output
    split_file = tmp_path / "split.json"
    made = runner.invoke(app, ["data", "split", str(root), "--out", str(split_file)])
    assert made.exit_code == 0, made.output
    plan = read_split(split_file)
    assert plan.split_of("train/crack/wall.png") is None and plan.similarity == DEFAULT_SIMILARITY
    assert [e["path"] for e in plan.excluded] == ["train/crack/wall.png"]  # named, with the reason


def test_fix_leaves_the_training_copy_of_a_test_photo_out_so_the_copy_checks_clean(tmp_path: Path) -> None:
    from crackscan.data.fix import fix_dataset

    root, dst = tmp_path / "ds", tmp_path / "fixed"
    _leaky_class_set(root, 2)
    before = tree_hashes(root)
    report = fix_dataset(root, dst)
    [entry] = report.left_out
    assert entry["path"] == "train/crack/wall.png"
    assert entry["reason"] == (
        "near duplicate of test/crack/wall_copy.jpg in split test (kept there only, to avoid leakage)"
    )
    assert (dst / "test" / "crack" / "wall_copy.jpg").is_file() and not (dst / "train" / "crack" / "wall.png").exists()
    assert check_dataset(dst).usable
    assert tree_hashes(root) == before
