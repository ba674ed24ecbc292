"""``crackscan data import``: VIA / COCO / LabelMe / CVAT annotations → image/mask pairs.

The default tests make every image and annotation file themselves (``tmp_path``); the
``shared_data`` tests compare against the masks shipped with the public VIA sets in
``../shared/data`` and skip when it is absent.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from crackscan.cli import app
from crackscan.data.annotations import (
    AnnotationError,
    ImportReport,
    _rle_counts_from_string,
    import_annotations,
)
from crackscan.data.layouts import LayoutKind, index_dataset
from crackscan.imageio import read_mask, write_image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ------------------------------------------------------------------------- helpers


def _image(folder: Path, name: str, w: int = 64, h: int = 48) -> Path:
    rng = np.random.default_rng(len(name))
    path = folder / name
    write_image(path, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return path


def _mask(out: Path, stem: str) -> np.ndarray:
    """The written mask's raw values (0/255 binary or 0..K index)."""
    mask = read_mask(out / "masks" / f"{stem}.png")
    values = set(mask.source_values)
    if values <= {0, 255}:
        return mask.labels.astype(np.uint8) * 255
    return mask.labels


def _via_region(name: str, cls: str | None = None, **attrs: Any) -> dict[str, Any]:
    return {"shape_attributes": {"name": name, **attrs}, "region_attributes": {"cls": cls} if cls else {}}


def _via2_project(entries: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    meta = {
        f"{name}123": {"filename": name, "size": 123, "regions": regions, "file_attributes": {}}
        for name, regions in entries.items()
    }
    return {"_via_settings": {}, "_via_img_metadata": meta, "_via_attributes": {"region": {}, "file": {}}}


def _write_json(path: Path, payload: Any) -> Path:
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def _tree_hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


SQUARE = {"all_points_x": [10, 29, 29, 10], "all_points_y": [10, 10, 29, 29]}  # 20×20 px inclusive
TRIANGLE = {"all_points_x": [0, 20, 0], "all_points_y": [0, 0, 20]}  # x + y ≤ 20: 231 px


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "src_images"
    _image(folder, "a.jpg")
    _image(folder, "b.png")
    return folder


# -------------------------------------------------------------------------- VIA


def test_via2_polygon_fill_counts_and_binary_mask(tmp_path: Path, images: Path) -> None:
    ann = _write_json(
        tmp_path / "via.json",
        _via2_project(
            {
                "a.jpg": [_via_region("polygon", "scratch", **SQUARE)],
                "b.png": [_via_region("polygon", "scratch", **TRIANGLE)],
            }
        ),
    )
    report = import_annotations(ann, images, tmp_path / "out", fmt="via")
    assert isinstance(report, ImportReport)
    assert report.n_written == 2 and report.classes == ["scratch"] and report.binary
    a = _mask(tmp_path / "out", "a")
    assert a.shape == (48, 64) and a.dtype == np.uint8
    assert set(np.unique(a).tolist()) == {0, 255}
    assert (a == 255).sum() == 400
    assert (a[10:30, 10:30] == 255).all()
    b = _mask(tmp_path / "out", "b")
    yy, xx = np.mgrid[:48, :64]
    assert np.array_equal(b == 255, (xx + yy <= 20))
    assert (b == 255).sum() == 231
    classes = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert classes == {"classes": ["background", "scratch"], "binary": True, "source": str(ann), "format": "via"}
    assert (tmp_path / "out" / "images" / "a.jpg").exists()


def test_via1_export_with_region_dict_and_other_shapes(tmp_path: Path, images: Path) -> None:
    # VIA 1.x: a dict keyed "filename+size", regions as a dict, the class under "name".
    export = {
        "a.jpg999": {
            "filename": "a.jpg",
            "size": 999,
            "file_attributes": {},
            "regions": {
                "0": {
                    "shape_attributes": {"name": "rect", "x": 2, "y": 3, "width": 4, "height": 5},
                    "region_attributes": {"name": "damage"},
                },
                "1": {
                    "shape_attributes": {"name": "circle", "cx": 40, "cy": 30, "r": 5},
                    "region_attributes": {"name": "damage"},
                },
                "2": {
                    "shape_attributes": {"name": "point", "cx": 60, "cy": 5},
                    "region_attributes": {"name": "damage"},
                },
            },
        },
        "b.png5": {"filename": "b.png", "size": 5, "file_attributes": {}, "regions": {}},
    }
    report = import_annotations(_write_json(tmp_path / "via.json", export), images, tmp_path / "o", fmt="via")
    assert report.n_written == 2 and report.problems == [] and report.classes == ["damage"]
    a = _mask(tmp_path / "o", "a") > 0
    assert a[3:9, 2:7].all() and a[3:9, 2:7].sum() == 30  # rect x 2..6, y 3..8 inclusive
    assert a[30, 40] and a[30, 44] and not a[30, 47]  # circle r=5 about (40, 30)
    assert 60 <= a[25:36, 34:47].sum() <= 130  # ≈ π·5² plus its rim
    assert a[5, 60]  # a point is drawn as a dot
    assert not _mask(tmp_path / "o", "b").any()  # listed with no regions: an empty mask
    assert report.empty_masks == ["b.png"]


def test_via_list_export_and_class_under_any_key(tmp_path: Path, images: Path) -> None:
    entries = [
        {"filename": "a.jpg", "size": 1, "regions": [_via_region("polygon", **SQUARE)], "file_attributes": {}},
    ]
    entries[0]["regions"][0]["region_attributes"] = {"Class Name": "dent", "note": "left door"}
    report = import_annotations(_write_json(tmp_path / "v.json", entries), images, tmp_path / "o", fmt="via")
    assert report.classes == ["dent"]
    assert report.unannotated_images == ["b.png"]  # in the folder, never mentioned: skipped
    assert not (tmp_path / "o" / "masks" / "b.png").exists()


def test_polyline_width(tmp_path: Path, images: Path) -> None:
    line = {"all_points_x": [10, 50], "all_points_y": [20, 20]}
    ann = _write_json(tmp_path / "v.json", _via2_project({"a.jpg": [_via_region("polyline", "crack", **line)]}))
    for width in (1, 3, 5):
        out = tmp_path / f"o{width}"
        import_annotations(ann, images, out, fmt="via", line_width=width)
        m = _mask(out, "a") > 0
        assert m[:, 30].sum() == width  # the stroke is exactly `width` px thick
        rows = np.flatnonzero(m[:, 30])
        assert rows.min() == 20 - width // 2 and rows.max() == 20 + width // 2
        assert m[20, 10:51].all()


def test_multiclass_index_mask_order_and_overdraw(tmp_path: Path, images: Path) -> None:
    big = {"all_points_x": [0, 39, 39, 0], "all_points_y": [0, 0, 39, 39]}
    small = {"all_points_x": [10, 19, 19, 10], "all_points_y": [10, 10, 19, 19]}
    ann = _write_json(
        tmp_path / "v.json",
        _via2_project({"a.jpg": [_via_region("polygon", "wheel", **big), _via_region("polygon", "scratch", **small)]}),
    )
    report = import_annotations(ann, images, tmp_path / "o", fmt="via")
    assert report.classes == ["scratch", "wheel"] and not report.binary  # sorted by default
    m = _mask(tmp_path / "o", "a")
    assert m[15, 15] == 1 and m[5, 5] == 2 and m[45, 45] == 0  # later shape drawn over earlier
    assert (m == 1).sum() == 100 and (m == 2).sum() == 1600 - 100
    classes = json.loads((tmp_path / "o" / "classes.json").read_text())
    assert classes["classes"] == ["background", "scratch", "wheel"] and classes["binary"] is False

    report = import_annotations(ann, images, tmp_path / "o2", fmt="via", classes=["wheel", "scratch"])
    m = _mask(tmp_path / "o2", "a")
    assert report.classes == ["wheel", "scratch"] and m[15, 15] == 2 and m[5, 5] == 1

    # A single class given: the others are left out and reported, the mask is binary.
    report = import_annotations(ann, images, tmp_path / "o3", fmt="via", classes=["scratch"])
    assert report.binary and (_mask(tmp_path / "o3", "a") == 255).sum() == 100
    assert any("'wheel' is not in --classes" in p for p in report.problems)


# ---------------------------------------------------------------------- problems


def test_problems_are_listed_not_fatal(tmp_path: Path, images: Path) -> None:
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    ann = _write_json(
        tmp_path / "v.json",
        _via2_project(
            {
                "a.jpg": [
                    _via_region("polygon", "c", all_points_x=[1, 5], all_points_y=[1, 5]),
                    _via_region("hexagon", "c"),
                    _via_region("polygon", "c", all_points_x=[50, 90, 90, 50], all_points_y=[0, 0, 10, 10]),
                    _via_region("polygon", "c", all_points_x=[100, 120, 110], all_points_y=[100, 100, 120]),
                    _via_region("polygon", "c", all_points_x=[1, 2], all_points_y=[1, 2, 3]),
                ],
                "gone.jpg": [_via_region("polygon", "c", **SQUARE)],
                "broken.jpg": [_via_region("polygon", "c", **SQUARE)],
            }
        ),
    )
    report = import_annotations(ann, images, tmp_path / "o", fmt="via")
    text = "\n".join(report.problems)
    assert report.n_written == 1
    assert "fewer than 3 points" in text
    assert "unknown shape type 'hexagon'" in text
    assert "extends outside the image; clipped" in text
    assert "entirely outside the image" in text
    assert "malformed coordinates" in text
    assert "gone.jpg: image not found" in text
    assert "broken.jpg: unreadable image" in text
    assert report.missing_images == ["gone.jpg"] and report.unreadable_images == ["broken.jpg"]
    m = _mask(tmp_path / "o", "a") > 0
    assert m[0:11, 50:64].all() and m.sum() == 11 * 14  # clipped at the right edge
    saved = json.loads((tmp_path / "o" / "REPORT.json").read_text())
    assert saved["problems"] == report.problems and saved["n_written"] == 1
    assert saved["unannotated_images"] == ["b.png"]


def test_mask_has_the_displayed_size_after_exif_orientation(tmp_path: Path) -> None:
    # imageio writes no EXIF, so the tagged fixtures are made with Pillow directly.
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: the stored 60×40 pixels are shown as 40×60
    Image.new("RGB", (60, 40), (128, 128, 128)).save(folder / "rot.jpg", exif=exif.tobytes())
    exif[0x0112] = 0  # invalid value (like car_scratch/car_0.png): ignored, not fatal
    Image.new("RGB", (60, 40), (128, 128, 128)).save(folder / "bad.jpg", exif=exif.tobytes())
    ann = _write_json(
        tmp_path / "v.json",
        _via2_project({"rot.jpg": [_via_region("polygon", "c", **SQUARE)], "bad.jpg": []}),
    )
    report = import_annotations(ann, folder, tmp_path / "o", fmt="via")
    assert report.n_written == 2
    assert _mask(tmp_path / "o", "rot").shape == (60, 40)
    assert _mask(tmp_path / "o", "bad").shape == (40, 60)


def test_sources_never_modified_and_images_copied_byte_for_byte(tmp_path: Path, images: Path) -> None:
    ann = _write_json(tmp_path / "v.json", _via2_project({"a.jpg": [_via_region("polygon", "c", **SQUARE)]}))
    before = _tree_hashes(images), hashlib.sha256(ann.read_bytes()).hexdigest()
    import_annotations(ann, images, tmp_path / "o", fmt="via")
    assert (_tree_hashes(images), hashlib.sha256(ann.read_bytes()).hexdigest()) == before
    assert (tmp_path / "o" / "images" / "a.jpg").read_bytes() == (images / "a.jpg").read_bytes()


def test_output_is_an_image_mask_layout(tmp_path: Path, images: Path) -> None:
    ann = _write_json(
        tmp_path / "v.json",
        _via2_project({"a.jpg": [_via_region("polygon", "c", **SQUARE)], "b.png": []}),
    )
    import_annotations(ann, images, tmp_path / "o", fmt="via")
    index = index_dataset(tmp_path / "o")
    assert index.layout is LayoutKind.IMAGE_MASK_PAIRS and len(index.samples) == 2


# ------------------------------------------------------------------------ errors


def test_refusals(tmp_path: Path, images: Path) -> None:
    ann = _write_json(tmp_path / "v.json", _via2_project({"a.jpg": []}))
    with pytest.raises(AnnotationError, match="unknown format"):
        import_annotations(ann, images, tmp_path / "o", fmt="yolo")
    with pytest.raises(AnnotationError, match="not found"):
        import_annotations(tmp_path / "nope.json", images, tmp_path / "o", fmt="via")
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(AnnotationError, match="not valid JSON"):
        import_annotations(tmp_path / "bad.json", images, tmp_path / "o", fmt="via")
    coco = _write_json(tmp_path / "coco.json", {"images": [], "annotations": [], "categories": []})
    with pytest.raises(AnnotationError, match="--from coco"):
        import_annotations(coco, images, tmp_path / "o", fmt="via")
    with pytest.raises(AnnotationError, match="not a COCO"):
        import_annotations(ann, images, tmp_path / "o", fmt="coco")
    with pytest.raises(AnnotationError, match="not a LabelMe"):
        import_annotations(ann, images, tmp_path / "o", fmt="labelme")
    with pytest.raises(AnnotationError, match="not valid XML"):
        import_annotations(ann, images, tmp_path / "o", fmt="cvat")
    with pytest.raises(AnnotationError, match="images folder not found"):
        import_annotations(ann, tmp_path / "no_images", tmp_path / "o", fmt="via")
    full = tmp_path / "full"
    (full / "x").mkdir(parents=True)
    with pytest.raises(AnnotationError, match="not empty"):
        import_annotations(ann, images, full, fmt="via")
    with pytest.raises(AnnotationError, match="more than once"):
        import_annotations(ann, images, tmp_path / "o", fmt="via", classes=["a", "a"])
    assert not (tmp_path / "o").exists()  # nothing written by any refusal
    # An existing but empty destination is fine.
    (tmp_path / "empty").mkdir()
    assert import_annotations(ann, images, tmp_path / "empty", fmt="via").n_written == 1


# -------------------------------------------------------------------------- COCO


def _rle_encode_string(counts: list[int]) -> str:
    """pycocotools' rleToString, so the decoder is tested against the reference code."""
    out = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def _rle_counts(mask: np.ndarray) -> list[int]:
    flat = mask.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return np.diff(np.concatenate([[0], change])).tolist()


def test_compressed_rle_round_trip() -> None:
    counts = [0, 5, 300, 2, 1, 70000, 3, 9]
    assert _rle_counts_from_string(_rle_encode_string(counts)) == counts


def test_coco_polygons_rle_and_categories(tmp_path: Path, images: Path) -> None:
    h, w = 48, 64
    blob = np.zeros((h, w), dtype=bool)
    blob[30:40, 50:60] = True
    coco = {
        "images": [
            {"id": 1, "file_name": "subdir/a.jpg", "width": w, "height": h},
            {"id": 2, "file_name": "b.png", "width": w, "height": h},
        ],
        "categories": [{"id": 7, "name": "rust"}, {"id": 3, "name": "crack"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 3,
                "iscrowd": 0,
                "segmentation": [[10, 10, 29, 10, 29, 29, 10, 29]],
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 7,
                "iscrowd": 1,
                "segmentation": {"size": [h, w], "counts": _rle_counts(blob)},
            },
            {
                "id": 3,
                "image_id": 2,
                "category_id": 7,
                "iscrowd": 1,
                "segmentation": {"size": [h, w], "counts": _rle_encode_string(_rle_counts(blob))},
            },
            {"id": 4, "image_id": 2, "category_id": 99, "segmentation": [[0, 0, 5, 0, 5, 5]]},
            {"id": 5, "image_id": 2, "category_id": 3, "bbox": [0, 0, 5, 5]},
        ],
    }
    report = import_annotations(_write_json(tmp_path / "c.json", coco), images, tmp_path / "o", fmt="coco")
    assert report.classes == ["crack", "rust"]  # category id order
    assert report.n_written == 2
    a = _mask(tmp_path / "o", "a")
    assert (a == 1).sum() == 400 and np.array_equal(a == 2, blob)
    assert np.array_equal(_mask(tmp_path / "o", "b") == 2, blob)
    text = "\n".join(report.problems)
    assert "unknown category_id 99" in text and "no segmentation" in text


# ----------------------------------------------------------------------- LabelMe


def _labelme(image: str, shapes: list[dict[str, Any]], w: int = 64, h: int = 48) -> dict[str, Any]:
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image,
        "imageData": None,
        "imageWidth": w,
        "imageHeight": h,
    }


def _lm_shape(kind: str, label: str, points: list[list[float]]) -> dict[str, Any]:
    return {"label": label, "points": points, "group_id": None, "shape_type": kind, "flags": {}}


def test_labelme_file_and_folder(tmp_path: Path, images: Path) -> None:
    single = _labelme(
        "../src_images/a.jpg",
        [
            _lm_shape("polygon", "crack", [[10, 10], [29, 10], [29, 29], [10, 29]]),
            _lm_shape("rectangle", "crack", [[45, 40], [40, 35]]),
            _lm_shape("linestrip", "crack", [[0, 2], [30, 2], [30, 6]]),
            _lm_shape("circle", "crack", [[50, 10], [53, 10]]),
            _lm_shape("cuboid", "crack", [[0, 0], [1, 1]]),
        ],
    )
    report = import_annotations(
        _write_json(tmp_path / "a.json", single), images, tmp_path / "o", fmt="labelme", line_width=1
    )
    m = _mask(tmp_path / "o", "a") > 0
    assert report.n_written == 1 and report.classes == ["crack"]
    assert m[10:30, 10:30].all() and m[35:41, 40:46].all()
    assert m[2, 0:31].all() and m[2:7, 30].all() and not m[3, 0]
    assert m[10, 50] and m[10, 53] and not m[10, 55]
    assert any("unknown shape type 'cuboid'" in p for p in report.problems)

    folder = tmp_path / "lm"
    folder.mkdir()
    _write_json(folder / "a.json", single)
    _write_json(folder / "b.json", _labelme("b.png", [_lm_shape("line", "dent", [[0, 20], [63, 20]])]))
    _write_json(folder / "other.json", {"not": "labelme"})
    report = import_annotations(folder, images, tmp_path / "o2", fmt="labelme")
    assert report.n_written == 2 and report.classes == ["crack", "dent"] and not report.binary
    assert (_mask(tmp_path / "o2", "b")[:, 10] == 2).sum() == 3
    assert any("other.json: not a LabelMe file" in p for p in report.problems)


# -------------------------------------------------------------------------- CVAT


CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><labels>
    <label><name>scratch</name></label><label><name>dent</name></label><label><name>unused</name></label>
  </labels></task></meta>
  <image id="0" name="a.jpg" width="64" height="48">
    <polygon label="scratch" occluded="0" points="10,10;29,10;29,29;10,29" z_order="1"/>
    <box label="dent" occluded="0" xtl="0" ytl="0" xbr="39.5" ybr="39.5" z_order="0"/>
    <polyline label="scratch" points="0,45;63,45" z_order="0"/>
    <cuboid label="dent" z_order="0"/>
    <tag label="dent"/>
  </image>
  <image id="1" name="b.png" width="32" height="48"/>
</annotations>
"""


def test_cvat_xml(tmp_path: Path, images: Path) -> None:
    ann = tmp_path / "cvat.xml"
    ann.write_text(CVAT_XML, encoding="utf-8")
    report = import_annotations(ann, images, tmp_path / "o", fmt="cvat")
    assert report.classes == ["scratch", "dent", "unused"] and report.n_written == 2
    m = _mask(tmp_path / "o", "a")
    # The box has the lower z_order: the polygon stays on top though it comes first.
    assert m[15, 15] == 1 and m[5, 5] == 2 and (m == 2).sum() == 1600 - 400
    assert (m[:, 20] == 1).sum() == 20 + 3  # polygon + a 3 px polyline
    text = "\n".join(report.problems)
    assert "unknown shape type 'cuboid'" in text
    assert "b.png: annotated as 32×48 but the image is 64×48" in text
    assert not _mask(tmp_path / "o", "b").any()


# --------------------------------------------------------------------------- CLI


def test_cli_import(tmp_path: Path, images: Path) -> None:
    ann = _write_json(
        tmp_path / "v.json",
        _via2_project({"a.jpg": [_via_region("polyline", "crack", all_points_x=[0, 60], all_points_y=[5, 5])]}),
    )
    runner = CliRunner()
    out = tmp_path / "o"
    args = ["data", "import", str(ann), "--images", str(images), "--out", str(out), "--from", "via"]
    result = runner.invoke(app, [*args, "--line-width", "5", "--classes", "crack"])
    assert result.exit_code == 0, result.output
    assert "wrote 1 image/mask pairs" in result.output
    assert (_mask(out, "a")[:, 30] == 255).sum() == 5
    result = runner.invoke(app, args)  # the destination is no longer empty
    assert result.exit_code == 1
    result = runner.invoke(app, [*args[:-1], "yolo", "--out", str(tmp_path / "o3")])
    assert result.exit_code == 1


# ------------------------------------------------------------ real data (opt-in)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _compare(out: Path, reference: Path) -> tuple[list[float], int]:
    ious, exact = [], 0
    for mask in sorted((out / "masks").glob("*.png")):
        ours, ref = read_mask(mask), read_mask(reference / mask.name)
        assert ours.labels.shape == ref.labels.shape, mask.name
        ious.append(_iou(ours.foreground, ref.foreground))
        exact += int(np.array_equal(ours.labels, ref.labels))
    return ious, exact


needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")


@pytest.mark.shared_data
@needs_shared
def test_car_scratch_via_matches_shipped_masks(tmp_path: Path) -> None:
    root = SHARED / "car_scratch"
    # Index order of the shipped masks: 1 scratch (rayure), 2 wheel (roue), 3 mirror (retro).
    report = import_annotations(
        root / "annotations" / "via_all.json",
        root / "images",
        tmp_path / "multi",
        fmt="via",
        classes=["rayure", "roue", "retro"],
    )
    assert report.n_written == 121 and report.problems == []
    ious, exact = _compare(tmp_path / "multi", root / "masks")
    assert len(ious) == 121 and min(ious) >= 0.95, (np.mean(ious), min(ious))
    assert exact == 121  # identical index masks, pixel for pixel

    found = import_annotations(root / "annotations" / "via_all.json", root / "images", tmp_path / "d", fmt="via")
    assert sorted(found.classes) == ["rayure", "retro", "roue"]

    report = import_annotations(
        root / "annotations" / "via_all.json", root / "images", tmp_path / "bin", fmt="via", classes=["rayure"]
    )
    ious, exact = _compare(tmp_path / "bin", root / "masks_binary")
    assert min(ious) >= 0.95 and exact == 121


@pytest.mark.shared_data
@needs_shared
@pytest.mark.parametrize("split", ["train", "val"])
def test_car_damage_via_matches_shipped_masks(tmp_path: Path, split: str) -> None:
    root = SHARED / "car_damage"
    report = import_annotations(
        root / "annotations" / f"via_{split}.json", root / "images" / split, tmp_path / "o", fmt="via"
    )
    assert report.classes == ["damage"] and report.binary
    n_images = len(list((root / "images" / split).iterdir()))
    assert report.n_written == n_images and not report.unannotated_images
    ious, exact = _compare(tmp_path / "o", root / "masks" / split)
    assert min(ious) >= 0.95 and exact == n_images
