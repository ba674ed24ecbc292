"""``crackscan data split``: deterministic, stratified, duplicate-safe, official split kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_class_set, make_image, make_mask, make_pair_set
from crackscan.cli import app
from crackscan.data.check import inspect_image
from crackscan.data.layouts import index_dataset
from crackscan.data.split import SplitError, SplitPlan, make_split, read_split, select_split, write_split

runner = CliRunner()


def _hash_split(root: Path, plan: SplitPlan) -> dict[str, set[str]]:
    """content hash -> the splits its copies landed in."""
    where: dict[str, set[str]] = {}
    for name, keys in plan.splits.items():
        for k in keys:
            sha1 = inspect_image(root / k, decode=False).sha1
            assert sha1 is not None
            where.setdefault(sha1, set()).add(name)
    return where


def test_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_class_set(root, {"crack": 20, "no_crack": 20})
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_split(make_split(root, seed=3), a)
    write_split(make_split(root, seed=3), b)
    assert a.read_bytes() == b.read_bytes()
    assert make_split(root, seed=4).splits != make_split(root, seed=3).splits
    doc = json.loads(a.read_text())
    assert doc["version"] == 1 and doc["seed"] == 3
    assert doc["fractions"] == {"val": 0.15, "test": 0.15}
    assert doc["counts"] == {"train": 28, "val": 6, "test": 6}


def test_fractions_and_class_stratification(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_class_set(root, {"crack": 60, "no_crack": 20})
    plan = make_split(root, val=0.2, test=0.1, seed=0)
    assert plan.stratify == "class" and not plan.kept_official
    assert plan.counts == {"train": 56, "val": 16, "test": 8}
    assert plan.strata_counts == {
        "train": {"crack": 42, "no_crack": 14},
        "val": {"crack": 12, "no_crack": 4},
        "test": {"crack": 6, "no_crack": 2},
    }
    every = [k for keys in plan.splits.values() for k in keys]
    assert len(every) == len(set(every)) == 80
    assert all(k.startswith(("crack/", "no_crack/")) for k in every)  # root-relative


def test_zero_fractions(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_class_set(root, {"a": 5, "b": 5})
    plan = make_split(root, val=0.0, test=0.0)
    assert plan.counts == {"train": 10, "val": 0, "test": 0}
    with pytest.raises(SplitError):
        make_split(root, val=0.6, test=0.5)


def test_segmentation_stratified_by_crack(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_pair_set(root, 40, n_no_crack=20)
    plan = make_split(root, val=0.25, test=0.25, seed=1)
    assert plan.stratify == "crack"
    for name, n in (("train", 10), ("val", 5), ("test", 5)):
        assert plan.strata_counts[name] == {"crack": n, "no_crack": n}


def test_duplicates_land_in_one_split(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_class_set(root, {"crack": 20, "no_crack": 20})
    for g in range(6):  # six groups of three identical files
        for c in range(3):
            make_image(root / "crack" / f"dup_{g}_{c}.png", seed=100 + g)
    for seed in range(5):
        plan = make_split(root, seed=seed)
        where = _hash_split(root, plan)
        assert all(len(splits) == 1 for splits in where.values())
        assert sum(len(v) for v in plan.splits.values()) == 58


def test_official_split_kept_and_val_carved_from_train(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_pair_set(root, 40, split="train", n_no_crack=20)
    make_pair_set(root, 10, split="test", n_no_crack=4)
    # A test image copied into train: leakage, the train copy is left out.
    make_image(root / "images" / "train" / "leak.png", seed=77)
    make_mask(root / "masks" / "train" / "leak.png")
    make_image(root / "images" / "test" / "leak.png", seed=77)
    make_mask(root / "masks" / "test" / "leak.png")
    plan = make_split(root, val=0.25, test=0.15, seed=0)
    assert plan.kept_official
    official_test = {f"images/test/{p.name}" for p in (root / "images" / "test").iterdir()}
    assert set(plan.splits["test"]) == official_test
    assert all(k.startswith("images/train/") for k in plan.splits["train"] + plan.splits["val"])
    assert plan.strata_counts["val"] == {"crack": 5, "no_crack": 5}  # 25 % of train, stratified
    assert plan.counts == {"train": 30, "val": 10, "test": 11}
    assert [e["path"] for e in plan.excluded] == ["images/train/leak.png"]
    assert all(len(s) == 1 for s in _hash_split(root, plan).values())
    assert make_split(root, val=0.25, test=0.15, seed=0).splits == plan.splits


def test_official_train_val_test_untouched(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        make_class_set(root, {"a": n, "b": n}, split=split)
    plan = make_split(root)
    assert plan.counts == {"train": 12, "val": 4, "test": 4}
    assert all(k.startswith("val/") for k in plan.splits["val"])


def test_write_read_select_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_pair_set(root, 20, n_no_crack=5)
    plan = make_split(root, seed=2)
    path = tmp_path / "splits" / "split.json"
    write_split(plan, path)
    back = read_split(path)
    assert back.splits == plan.splits and back.seed == 2 and back.stratify == "crack"
    assert back.strata_counts == plan.strata_counts and back.fractions == plan.fractions

    # Keys are root-relative: the split still applies after the set moves.
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    samples = select_split(index_dataset(moved), path, "val")
    assert [s.image.relative_to(moved).as_posix() for s in samples] == plan.splits["val"]
    assert all(s.mask is not None and s.mask.parent == moved / "masks" for s in samples)
    assert [s.key for s in samples] == plan.splits["val"]

    with pytest.raises(SplitError, match="no split named"):
        select_split(index_dataset(moved), back, "holdout")
    (moved / plan.splits["test"][0]).unlink()
    with pytest.raises(SplitError, match="not in the data set"):
        select_split(index_dataset(moved), back, "test")


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"version": 1}),
        json.dumps({"version": 99, "splits": {}}),
        json.dumps({"version": 1, "splits": {"train": ["a"], "test": ["a"]}}),
    ],
)
def test_read_split_rejects_bad_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SplitError):
        read_split(path)
    with pytest.raises(SplitError, match="not found"):
        read_split(tmp_path / "missing.json")


def test_cli_split(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_class_set(root, {"a": 10, "b": 10})
    out = tmp_path / "split.json"
    result = runner.invoke(app, ["data", "split", str(root), "--out", str(out), "--val", "0.1", "--test", "0.2"])
    assert result.exit_code == 0, result.output
    assert read_split(out).counts == {"train": 14, "val": 2, "test": 4}
    bad = runner.invoke(app, ["data", "split", str(tmp_path / "nope"), "--out", str(out)])
    assert bad.exit_code == 1 and "Traceback" not in bad.output


@pytest.mark.shared_data
def test_shared_split_deepcrack_and_ozgenel(shared_data: Path) -> None:
    plan = make_split(shared_data / "deepcrack")
    assert plan.kept_official and plan.counts["test"] == 237
    # Training image 11158.jpg is a re-encoded copy of test image 11216.jpg: left out of train.
    assert plan.counts["train"] + plan.counts["val"] == 299 and plan.counts["val"] == 45
    assert [e["path"] for e in plan.excluded] == ["images/train/11158.jpg"]
    plan = make_split(shared_data / "ozgenel", seed=0)
    assert plan.counts == {"train": 4200, "val": 900, "test": 900}
    assert plan.strata_counts["test"] == {"Negative": 450, "Positive": 450}
    # Its ~250 groups of copies (half of them mirrored or upside down) each land in one split.
    assert any("251 group(s) of near duplicates" in w for w in plan.warnings)


@pytest.mark.shared_data
def test_committed_bundled_splits_are_the_seed0_splits_drawn_again(shared_data: Path) -> None:
    """benchmarks/splits/ holds the splits the bundled crack segmenters trained on; a rebuild must give them."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "make_bundled_splits.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check", "--data", str(shared_data)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    clean = read_split(script.parent / "splits" / "seed0-clean" / "deepcrack.json")
    kept = read_split(script.parent / "splits" / "seed0" / "deepcrack.json")
    assert clean.splits["test"] == kept.splits["test"] and "images/train/11158.jpg" not in clean.splits["train"]


def test_a_split_hands_its_decoded_images_to_the_cross_set_copy_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training run splits each set (decoding every image for near duplicates), then checks copies across
    sets: with one ``facts`` dict the second pass decodes nothing, and finds the same copies."""
    from crackscan.training import run

    roots = [tmp_path / "a", tmp_path / "b"]
    make_pair_set(roots[0], 8, size=(48, 48))
    shutil.copytree(roots[0], roots[1])  # set b holds set a's images again
    facts: dict = {}
    plans = [make_split(root, seed=seed, facts=facts) for seed, root in enumerate(roots)]
    assert len(facts) == 16 and all(f.fingerprint is not None for f in facts.values())
    indexes = [index_dataset(root) for root in roots]
    train = [s.image for index, plan in zip(indexes, plans, strict=True) for s in select_split(index, plan, "train")]
    test = [s.image for index, plan in zip(indexes, plans, strict=True) for s in select_split(index, plan, "test")]

    def no_decoding(path: Path, **_: object) -> None:
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(run, "inspect_image", no_decoding)
    # Split with other seeds, b trains on copies of a's test images: found from the split's fingerprints alone.
    with pytest.raises(run.TrainingDataError, match=r"near copies .* of test images"):
        run.refuse_copies_across_sets(train, test, set(), facts)


@pytest.mark.shared_data
def test_bundled_models_record_the_test_digests_of_their_split_files(shared_data: Path) -> None:
    """crack-cls, crack-seg and crack-seg-unet carry digests of the test images of benchmarks/splits/seed0."""
    import subprocess
    import sys

    tool = Path(__file__).resolve().parents[1] / "tools" / "record_test_digests.py"
    models = ["crack-cls", "crack-seg", "crack-seg-unet"]
    done = subprocess.run(
        [sys.executable, str(tool), *models, "--check", "--data", str(shared_data)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
