"""``crackscan inspect --engine ray``: same rows as the local engine, failures as rows, resume, no-ray exit.

One local Ray instance (2 CPUs, no dashboard) serves the whole module and is shut down
after it; the photos are three small synthetic walls (``crackscan.data.synth``) and a
corrupt JPEG, inspected with the darkness segmenter of tests/onnx_models.py.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_truncated_jpeg
from crackscan.analysis.inspect import inspect_paths
from crackscan.cli import app
from crackscan.data.synth import synth_wall
from crackscan.imageio import write_image
from onnx_models import segmentation_model

ray = pytest.importorskip("ray")

runner = CliRunner()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 96-px tiles: several per photo, so tiling and blending are part of what is compared.
    return segmentation_model(tmp_path_factory.mktemp("models") / "seg.onnx", input_size=64, extra={"tile_size": 96})


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for seed in range(3):
        image, _, _ = synth_wall(seed, 160, 224, n_cracks=1)
        write_image(folder / f"wall_{seed}.png", image)
    make_truncated_jpeg(folder / "broken.jpg")
    return folder


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def assert_same_rows(a: list[dict[str, str]], b: list[dict[str, str]]) -> None:
    assert [r["image"] for r in a] == [r["image"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key in ra:
            try:
                assert math.isclose(float(ra[key]), float(rb[key]), rel_tol=1e-6, abs_tol=1e-6), (ra["image"], key)
            except ValueError:
                assert ra[key] == rb[key], (ra["image"], key)


@pytest.fixture(scope="module")
def local_report(photos: Path, model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "report"
    inspect_paths([photos], model=model, out_dir=out)
    return out


def previews(report: Path) -> list[str]:
    """The embedded thumbnails and overlays of report.html, in page order."""
    return re.findall(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+", (report / "report.html").read_text())


def test_ray_engine_gives_the_local_rows(
    ray_local: None, photos: Path, model: Path, local_report: Path, tmp_path: Path
) -> None:
    # The inputs as a list file, shuffled: rows come sorted by path, as the local engine's do.
    listing = tmp_path / "paths.txt"
    names = ["wall_2.png", "broken.jpg", "wall_0.png", "wall_1.png"]
    listing.write_text("# photos\n" + "".join(f"{photos / n}\n" for n in names) + "\n")
    out = tmp_path / "ray"
    result = invoke("inspect", f"@{listing}", "--model", model, "--engine", "ray", "--num-workers", 2, "--out", out)
    assert result.exit_code == 0, result.output
    rows = read_rows(out / "summary.csv")
    assert_same_rows(rows, read_rows(local_report / "summary.csv"))
    failed = [r for r in rows if r["status"] == "failed"]
    assert [Path(r["image"]).name for r in failed] == ["broken.jpg"] and failed[0]["error"]
    assert int(next(r for r in rows if r["image"].endswith("wall_0.png"))["cracks"]) >= 1
    for stem in ("wall_0", "wall_1", "wall_2"):
        assert (out / "masks" / f"{stem}.png").is_file() and (out / "overlays" / f"{stem}.png").is_file()
        doc = json.loads((out / "results" / f"{stem}.json").read_text())
        assert doc["status"] == "ok" and doc["model"]["path"] == str(model)
    assert "broken.jpg" in (out / "report.html").read_text()
    assert len(previews(out)) == 6 and previews(out) == previews(local_report)  # thumbnails + overlays
    for folder in ("masks", "overlays"):
        assert (out / folder / "wall_1.png").read_bytes() == (local_report / folder / "wall_1.png").read_bytes()
    marker = json.loads((out / ".crackscan-inspect").read_text())["files"]
    assert "summary.csv" in marker and "results/wall_1.json" in marker


def test_resume_skips_done_photos(ray_local: None, photos: Path, model: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray"
    first = invoke("inspect", photos, "--model", model, "--engine", "ray", "--out", out)
    assert first.exit_code == 0, first.output
    before, pictures = read_rows(out / "summary.csv"), previews(out)
    kept = {s: (out / "results" / f"{s}.json").read_bytes() for s in ("wall_0", "wall_2")}
    (out / "results" / "wall_1.json").unlink()  # as if the run had stopped before this photo

    again = invoke("inspect", photos, "--model", model, "--engine", "ray", "--resume", "--out", out)
    assert again.exit_code == 0, again.output
    assert "2 photos reused" in " ".join(again.output.split())
    assert {s: (out / "results" / f"{s}.json").read_bytes() for s in kept} == kept  # not inspected again
    assert (out / "results" / "wall_1.json").is_file()
    assert_same_rows(read_rows(out / "summary.csv"), before)
    assert previews(out) == pictures  # reused photos keep their thumbnails and overlays

    # Other settings: stored results are not reused.
    changed = invoke(
        "inspect", photos, "--model", model, "--engine", "ray", "--resume", "--threshold", 0.6, "--out", out
    )
    assert changed.exit_code == 0, changed.output
    assert "reused" not in changed.output


def test_without_ray_the_engine_says_how_to_install(
    model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    result = invoke("inspect", photos, "--model", model, "--engine", "ray", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert 'pip install "crackscan[ray]"' in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_ray_options_need_the_ray_engine(model: Path, photos: Path, tmp_path: Path) -> None:
    result = invoke("inspect", photos, "--model", model, "--resume", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "--engine ray" in result.output
    missing = invoke("inspect", "@" + str(tmp_path / "nope.txt"), "--model", model, "--out", tmp_path / "out")
    assert missing.exit_code == 2 and "list file not found" in " ".join(missing.output.split())
