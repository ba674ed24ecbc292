"""Held-out content digests: what a model records of its test images, and how a fine-tune is checked against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from crackscan.data.heldout import DIGEST_HEX, content_digest, find_held_out, held_out_digests, recorded_held_out


def _files(root: Path, n: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = root / f"{i:02d}.jpg"
        p.write_bytes(f"{root.name}: image bytes {i}".encode())
        paths.append(p)
    return paths


def test_digests_follow_the_bytes_not_the_name(tmp_path: Path) -> None:
    test = _files(tmp_path / "a", 4)
    digests = held_out_digests([*test, test[0]])  # a duplicate counts once
    assert digests == sorted(digests) and len(digests) == 4 and all(len(d) == DIGEST_HEX for d in digests)
    copy = tmp_path / "elsewhere" / "renamed.png"
    copy.parent.mkdir()
    copy.write_bytes(test[2].read_bytes())
    others = _files(tmp_path / "b", 3)
    others[0].write_bytes(b"a: image bytes 0, edited")
    assert find_held_out([*others, copy], set(digests)) == [copy]
    assert content_digest(copy) == content_digest(test[2]) != content_digest(others[0])


def test_recorded_digests_of_a_classifier_a_segmenter_and_an_older_model() -> None:
    assert recorded_held_out({"root": "ozgenel", "split": "split file x"}) is None  # recorded before digests
    assert recorded_held_out({"test_digests": ["a", "b"]}) == {"a", "b"}
    sources = {"sources": [{"name": "x", "test_digests": ["a"]}, {"name": "y", "test_digests": []}, {"name": "z"}]}
    assert recorded_held_out(sources) == {"a"}
    assert recorded_held_out({"sources": [{"name": "z"}]}) is None


def test_a_fine_tune_is_refused_only_when_it_trains_on_a_recorded_test_image(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    from crackscan.training.run import TrainingDataError, refuse_held_out

    test, train = _files(tmp_path / "test", 5), _files(tmp_path / "train", 5)
    recorded = {"sources": [{"name": "walls", "test_digests": held_out_digests(test)}]}
    assert refuse_held_out(train, {"root": "walls"}, Path("m.onnx")) is False  # no digests: caller falls back
    assert refuse_held_out(train, recorded, Path("m.onnx")) is True  # checked, nothing shared
    with pytest.raises(TrainingDataError, match=r"walls: 2 training image\(s\) of this split \(00.jpg, 03.jpg\)"):
        refuse_held_out([*train, test[0], test[3]], recorded, Path("m.onnx"), what="walls: ")


def test_readers_see_how_many_digests_not_the_digests() -> None:
    from crackscan.data.heldout import without_digests

    meta = {"extra": {"training_data": {"test_digests": ["a", "b"], "sources": [{"test_digests": []}], "root": "x"}}}
    assert without_digests(meta) == {
        "extra": {
            "training_data": {
                "test_digests": "2 content digests",
                "sources": [{"test_digests": "0 content digests"}],
                "root": "x",
            }
        }
    }
