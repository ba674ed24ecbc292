"""Turn polygon/polyline annotations from labelling tools into image/mask pairs.

``crackscan data import`` reads the JSON/XML that VIA (1.x and 2.x), COCO, LabelMe and
CVAT ("CVAT for images 1.1") write, and rasterises every shape into the layout the
rest of crackscan reads (``DST/images/*`` + ``DST/masks/*.png`` + ``DST/classes.json``):

* polygons, rectangles, circles and ellipses are filled; polylines (and points) are
  drawn ``line_width`` pixels wide; COCO RLE / CVAT / LabelMe bitmaps are pasted;
* one class → 0/255 binary masks; several classes → an index mask (0 background,
  1..K in class order); ``classes.json`` always says which;
* later shapes are drawn over earlier ones (CVAT: in ``z_order``);
* the mask has the size of the image *as displayed*, i.e. after EXIF orientation,
  because that is the picture the annotator clicked on.

Coordinates are continuous with the origin at the top-left *corner* of the image (all
four tools use that convention), so a vertex belongs to pixel ``floor(x), floor(y)``.
Filled shapes are rasterised with Pillow's ``ImageDraw.polygon``, which is what made the
masks shipped with the public VIA sets: on ``car_scratch`` the result is identical to
the shipped masks pixel for pixel, whereas ``cv2.fillPoly`` adds a one-pixel rim on
some edges (IoU ≈ 0.99). Polylines are stroked ``line_width`` px wide around a
``cv2.polylines`` (``LINE_8``) centre line; ``cv2``'s own ``thickness`` is not used because
it paints 5 px for 3 (see :func:`_stroke`).

Problems with single images or shapes are collected, never fatal; a file that is not
of the requested format, a missing folder or a non-empty destination are refused with
:class:`AnnotationError` before anything is written.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw

from crackscan.imageio import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    is_image_file,
    read_image,
    read_mask,
    write_mask,
)

log = logging.getLogger(__name__)

FORMATS = ("via", "coco", "labelme", "cvat")
_DISPLAY = {"via": "VIA", "coco": "COCO", "labelme": "LabelMe", "cvat": "CVAT"}
BACKGROUND = "background"
# Name given to shapes that carry no class at all (VIA regions without attributes).
DEFAULT_CLASS = "foreground"
# Keys of VIA region attributes that usually hold the class, in order of preference
# (compared lower-case without spaces/underscores: "Class Name" → "classname").
_CLASS_KEYS = ("class", "cls", "classname", "label", "name", "category", "type", "object")
# Vertices further out than this are clamped: a typo like 1e12 must not overflow the
# integer rasterisers, and anything this far out is reported as clipped anyway.
_COORD_LIMIT = 1 << 20
_MAX_PROBLEMS_PER_KIND = 200


class AnnotationError(ValueError):
    """The annotations cannot be imported at all; the message says why."""


@dataclass
class ImportReport:
    """What :func:`import_annotations` wrote and what it had to leave out.

    ``classes`` are the foreground classes in index order (mask value 1..K, or 255 for
    the single class of a binary import); ``classes.json`` adds ``"background"`` first.
    """

    n_written: int
    classes: list[str]
    problems: list[str]
    out: Path
    binary: bool = True
    format: str = ""
    source: str = ""
    n_shapes: int = 0  # shapes drawn into the masks
    written: list[str] = field(default_factory=list)  # image file names written
    missing_images: list[str] = field(default_factory=list)  # annotated, not in --images
    unreadable_images: list[str] = field(default_factory=list)
    unannotated_images: list[str] = field(default_factory=list)  # in --images, never mentioned
    empty_masks: list[str] = field(default_factory=list)  # annotated with no shapes

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "source": self.source,
            "format": self.format,
            "n_written": self.n_written,
            "n_shapes": self.n_shapes,
            "classes": [BACKGROUND, *self.classes],
            "binary": self.binary,
            "problems": self.problems,
            "written": self.written,
            "missing_images": self.missing_images,
            "unreadable_images": self.unreadable_images,
            "unannotated_images": self.unannotated_images,
            "empty_masks": self.empty_masks,
        }


# --------------------------------------------------------------------------- parsing


@dataclass
class _Shape:
    kind: str  # "polygon" | "polyline" | "bitmap"
    label: str | None
    ref: str  # where it came from, for messages ("region 3", "annotation id 17")
    points: np.ndarray | None = None  # (N, 2) float x, y
    bitmap: np.ndarray | None = None  # bool H×W
    origin: tuple[int, int] = (0, 0)  # x, y of the bitmap's top-left pixel


@dataclass
class _Entry:
    name: str  # image name as written in the annotation file (may hold a path or URL)
    shapes: list[_Shape] = field(default_factory=list)
    size: tuple[int, int] | None = None  # (width, height) declared by the file
    problems: list[str] = field(default_factory=list)
    stem_hint: str | None = None  # LabelMe: the JSON's own stem, used when the name fails
    file_size: int | None = None  # VIA: the byte size in its "filename+size" key


@dataclass
class _Parsed:
    entries: list[_Entry]
    defined_classes: list[str] | None  # COCO categories / CVAT labels, in file order
    problems: list[str] = field(default_factory=list)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise AnnotationError(f"{path}: not a text file (expected JSON)") from None
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc})") from None


def _guess_format(data: Any) -> str | None:
    """Name the format a JSON document looks like, for a helpful refusal message."""
    if isinstance(data, dict):
        if "images" in data and "annotations" in data:
            return "coco"
        if "shapes" in data:
            return "labelme"
        if "_via_img_metadata" in data or ("project" in data and "metadata" in data):
            return "via"
        vals = list(data.values())[:5]
        if vals and all(isinstance(v, dict) and "filename" in v for v in vals):
            return "via"
    if isinstance(data, list) and data and all(isinstance(v, dict) and "filename" in v for v in data[:5]):
        return "via"
    return None


def _wrong_format(path: Path, fmt: str, expected: str, data: Any = None) -> AnnotationError:
    hint = ""
    guess = _guess_format(data) if data is not None else None
    if guess and guess != fmt:
        hint = f"; it looks like {_DISPLAY[guess]} — try --from {guess}"
    return AnnotationError(f"{path}: not a {_DISPLAY[fmt]} annotation file (expected {expected}){hint}")


def _num(value: Any) -> float:
    """A finite float, or ValueError (bools and strings of numbers are not coordinates)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a number: {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"not a finite number: {value!r}")
    return out


def _points(xs: Iterable[Any], ys: Iterable[Any]) -> np.ndarray:
    xs, ys = list(xs), list(ys)
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} x but {len(ys)} y coordinates")
    return np.array([[_num(x), _num(y)] for x, y in zip(xs, ys, strict=True)], dtype=np.float64).reshape(-1, 2)


def _rect_points(x: float, y: float, w: float, h: float, rotation_deg: float = 0.0) -> np.ndarray:
    pts = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)
    if rotation_deg:
        # CVAT rotates boxes clockwise (image axes) about their centre.
        centre = np.array([x + w / 2, y + h / 2])
        a = math.radians(rotation_deg)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        pts = (pts - centre) @ rot.T + centre
    return pts


def _ellipse_points(cx: float, cy: float, rx: float, ry: float, theta: float = 0.0) -> np.ndarray:
    """A polygon close enough to the ellipse that no pixel changes (≥ 1 vertex per px of arc)."""
    n = int(min(max(math.ceil(2 * math.pi * max(abs(rx), abs(ry), 1.0)), 16), 4096))
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    x, y = abs(rx) * np.cos(t), abs(ry) * np.sin(t)
    c, s = math.cos(theta), math.sin(theta)
    return np.stack([cx + x * c - y * s, cy + x * s + y * c], axis=1)


# VIA ----------------------------------------------------------------------------------


class _UnknownShapeError(Exception):
    pass


def _via_label(attrs: Any) -> str | None:
    """The class name held by a VIA region's attributes, whatever the key is called."""
    if not isinstance(attrs, dict):
        return None
    values: dict[str, str] = {}
    for key, value in attrs.items():
        if isinstance(value, str) and value.strip():
            values[str(key)] = value.strip()
        elif isinstance(value, dict):  # VIA 2 checkbox attribute: {"option": true, ...}
            chosen = [str(opt) for opt, on in value.items() if on]
            if chosen:
                values[str(key)] = chosen[0]
    if not values:
        return None
    by_norm = {re.sub(r"[\s_\-]", "", k.lower()): k for k in values}
    for key in _CLASS_KEYS:
        if key in by_norm:
            return values[by_norm[key]]
    return next(iter(values.values()))


def _via_shape(attrs: dict[str, Any], label: str | None, ref: str) -> _Shape:
    """One VIA region; ValueError for malformed or unknown shapes."""
    name = str(attrs.get("name", "")).lower()
    if name in ("polygon", "polyline"):
        pts = _points(attrs.get("all_points_x", []), attrs.get("all_points_y", []))
        return _Shape(name, label, ref, points=pts)
    if name == "rect":
        x, y, w, h = (_num(attrs[k]) for k in ("x", "y", "width", "height"))
        return _Shape("polygon", label, ref, points=_rect_points(x, y, w, h))
    if name == "circle":
        cx, cy, r = (_num(attrs[k]) for k in ("cx", "cy", "r"))
        return _Shape("polygon", label, ref, points=_ellipse_points(cx, cy, r, r))
    if name == "ellipse":
        cx, cy, rx, ry = (_num(attrs[k]) for k in ("cx", "cy", "rx", "ry"))
        theta = _num(attrs.get("theta", 0.0))  # VIA 2: radians; VIA 1 has no rotation
        return _Shape("polygon", label, ref, points=_ellipse_points(cx, cy, rx, ry, theta))
    if name == "point":
        return _Shape("polyline", label, ref, points=_points([attrs["cx"]], [attrs["cy"]]))
    raise _UnknownShapeError(f"unknown shape type {name or '(none)'!r}")


def _parse_via(path: Path) -> _Parsed:
    data = _load_json(path)
    expected = 'a VIA project ("_via_img_metadata") or export ({"name+size": {"filename", "regions"}})'
    if isinstance(data, dict) and "project" in data and "metadata" in data and "file" in data:
        raise AnnotationError(f"{path}: VIA 3 projects are not supported; export the annotations as VIA 2 JSON")
    records: list[Any]
    if isinstance(data, dict) and isinstance(data.get("_via_img_metadata"), dict):
        records = list(data["_via_img_metadata"].values())
    elif isinstance(data, dict):
        records = list(data.values())
    elif isinstance(data, list):  # some tools save the export's values as a list
        records = data
    else:
        raise _wrong_format(path, "via", expected, data)
    if not records or not all(isinstance(r, dict) and isinstance(r.get("filename"), str) for r in records):
        raise _wrong_format(path, "via", expected, data)
    entries: list[_Entry] = []
    for rec in records:
        size = rec.get("size")
        file_size = size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None
        entry = _Entry(name=rec["filename"], file_size=file_size)
        regions = rec.get("regions") or []
        if isinstance(regions, dict):  # VIA 1: {"0": region, "1": region, ...}
            regions = list(regions.values())
        if not isinstance(regions, list):
            raise _wrong_format(path, "via", expected, data)
        for i, region in enumerate(regions):
            ref = f"region {i}"
            if not isinstance(region, dict) or not isinstance(region.get("shape_attributes"), dict):
                entry.problems.append(f"{ref}: no shape_attributes; skipped")
                continue
            label = _via_label(region.get("region_attributes"))
            try:
                entry.shapes.append(_via_shape(region["shape_attributes"], label, ref))
            except _UnknownShapeError as exc:
                entry.problems.append(f"{ref}: {exc}; skipped")
            except (KeyError, ValueError, TypeError) as exc:
                entry.problems.append(f"{ref}: malformed coordinates ({exc}); skipped")
        entries.append(entry)
    return _Parsed(entries=entries, defined_classes=None)


# COCO ---------------------------------------------------------------------------------


def _rle_counts_from_string(s: str) -> list[int]:
    """Decode COCO's compressed RLE string (the LEB128-like code of pycocotools' maskApi.c)."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = k = 0
        more = True
        while more:
            if p >= len(s):
                raise ValueError("truncated RLE string")
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:  # counts after the first two are stored as differences
            x += counts[-2]
        counts.append(x)
    return counts


def _rle_decode(counts: list[int], height: int, width: int, *, order: str) -> np.ndarray:
    """Alternating run lengths (background first) → bool mask; ``order`` F = column-major (COCO)."""
    if any(c < 0 for c in counts) or sum(counts) != height * width:
        raise ValueError(f"run lengths add up to {sum(counts)}, expected {height}×{width} = {height * width}")
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, counts)
    return flat.reshape((height, width), order=order)  # type: ignore[call-overload]


def _parse_coco(path: Path) -> _Parsed:
    data = _load_json(path)
    expected = 'a COCO object with "images", "annotations" and "categories" lists'
    if not (
        isinstance(data, dict)
        and isinstance(data.get("images"), list)
        and isinstance(data.get("annotations"), list)
        and isinstance(data.get("categories", []), list)
    ):
        raise _wrong_format(path, "coco", expected, data)
    categories: dict[Any, str] = {}
    for cat in sorted((c for c in data.get("categories", []) if isinstance(c, dict)), key=lambda c: str(c.get("id"))):
        if "id" not in cat:
            raise _wrong_format(path, "coco", expected, data)
        categories[cat["id"]] = str(cat.get("name", cat["id"]))
    # Index order = category id order (the data set's own order), ids compared numerically.
    ordered = sorted(categories.items(), key=lambda kv: (not isinstance(kv[0], int), kv[0]))
    defined = list(dict.fromkeys(name for _, name in ordered))
    entries: dict[Any, _Entry] = {}
    for img in data["images"]:
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise _wrong_format(path, "coco", expected, data)
        size = None
        with contextlib.suppress(KeyError, TypeError, ValueError):
            size = (int(img["width"]), int(img["height"]))
        entries[img["id"]] = _Entry(name=img["file_name"], size=size)
    parsed = _Parsed(entries=list(entries.values()), defined_classes=defined)
    orphans = 0
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise _wrong_format(path, "coco", expected, data)
        ref = f"annotation {ann.get('id', f'#{i}')}"
        entry = entries.get(ann.get("image_id"))
        if entry is None:
            orphans += 1
            continue
        if ann.get("category_id") not in categories:
            entry.problems.append(f"{ref}: unknown category_id {ann.get('category_id')!r}; skipped")
            continue
        label = categories[ann["category_id"]]
        seg = ann.get("segmentation")
        try:
            if isinstance(seg, list) and seg:
                for poly in seg:
                    if not isinstance(poly, list) or len(poly) % 2:
                        raise ValueError("polygon needs an even number of coordinates")
                    entry.shapes.append(_Shape("polygon", label, ref, points=_points(poly[0::2], poly[1::2])))
            elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
                h, w = (int(v) for v in seg["size"])
                counts = seg["counts"]
                if isinstance(counts, str):
                    counts = _rle_counts_from_string(counts)
                elif not isinstance(counts, list):
                    raise ValueError("RLE counts must be a list or a string")
                bitmap = _rle_decode([int(c) for c in counts], h, w, order="F")
                entry.shapes.append(_Shape("bitmap", label, ref, bitmap=bitmap))
            else:
                entry.problems.append(f"{ref}: no segmentation (box only?); skipped")
        except (ValueError, TypeError) as exc:
            entry.problems.append(f"{ref}: malformed segmentation ({exc}); skipped")
    if orphans:
        parsed.problems.append(f"{orphans} annotations refer to an image_id not listed in images; skipped")
    return parsed


# LabelMe ------------------------------------------------------------------------------


def _labelme_entry(data: dict[str, Any], json_path: Path) -> _Entry:
    name = data.get("imagePath") or json_path.stem
    size = None
    if data.get("imageWidth") and data.get("imageHeight"):
        try:
            size = (int(data["imageWidth"]), int(data["imageHeight"]))
        except (TypeError, ValueError):
            size = None
    entry = _Entry(name=str(name), size=size, stem_hint=json_path.stem)
    for i, shape in enumerate(data.get("shapes") or []):
        ref = f"shape {i}"
        if not isinstance(shape, dict):
            entry.problems.append(f"{ref}: not an object; skipped")
            continue
        label = str(shape["label"]).strip() if shape.get("label") not in (None, "") else None
        kind = str(shape.get("shape_type") or "polygon").lower()  # old LabelMe: no shape_type
        try:
            raw = shape.get("points") or []
            pts = _points((p[0] for p in raw), (p[1] for p in raw))
            if kind in ("polygon", "ai_polygon"):
                entry.shapes.append(_Shape("polygon", label, ref, points=pts))
            elif kind in ("line", "linestrip", "point", "points"):
                entry.shapes.append(_Shape("polyline", label, ref, points=pts))
            elif kind == "rectangle":
                (x1, y1), (x2, y2) = pts[0], pts[1]
                box = _rect_points(min(x1, x2), min(y1, y2), abs(x2 - x1), abs(y2 - y1))
                entry.shapes.append(_Shape("polygon", label, ref, points=box))
            elif kind == "circle":
                (cx, cy), (px, py) = pts[0], pts[1]
                r = math.hypot(px - cx, py - cy)
                entry.shapes.append(_Shape("polygon", label, ref, points=_ellipse_points(cx, cy, r, r)))
            elif kind in ("mask", "ai_mask") and shape.get("mask"):
                bitmap = read_mask(base64.b64decode(shape["mask"])).foreground
                x0, y0 = np.floor(pts[0]).astype(int)
                entry.shapes.append(_Shape("bitmap", label, ref, bitmap=bitmap, origin=(int(x0), int(y0))))
            else:
                entry.problems.append(f"{ref}: unknown shape type {kind!r}; skipped")
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            entry.problems.append(f"{ref}: malformed {kind} ({exc}); skipped")
    return entry


def _is_labelme(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("shapes"), list)


def _parse_labelme(path: Path) -> _Parsed:
    expected = 'a LabelMe JSON with a "shapes" list, or a folder of them'
    if path.is_file():
        data = _load_json(path)
        if not _is_labelme(data):
            raise _wrong_format(path, "labelme", expected, data)
        return _Parsed(entries=[_labelme_entry(data, path)], defined_classes=None)
    parsed = _Parsed(entries=[], defined_classes=None)
    for json_path in sorted(path.rglob("*.json")):
        try:
            data = _load_json(json_path)
        except AnnotationError as exc:
            parsed.problems.append(f"{exc}; skipped")
            continue
        if not _is_labelme(data):
            parsed.problems.append(f"{json_path}: not a LabelMe file; skipped")
            continue
        parsed.entries.append(_labelme_entry(data, json_path))
    if not parsed.entries:
        raise AnnotationError(f"{path}: no LabelMe JSON files found in this folder (expected {expected})")
    return parsed


# CVAT ---------------------------------------------------------------------------------


def _xml_parser() -> Any:
    try:  # hardened parser when available: annotation files come from other people
        from defusedxml import ElementTree as SafeET  # type: ignore[import-untyped]

        return SafeET
    except ImportError:
        import xml.etree.ElementTree as ET

        return ET


def _cvat_points(text: str | None) -> np.ndarray:
    if not text:
        raise ValueError("no points")
    pairs = [p.split(",") for p in text.strip().split(";") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"points must be 'x,y;x,y;…', got {text[:40]!r}")
    return _points((p[0] for p in pairs), (p[1] for p in pairs))


def _parse_cvat(path: Path) -> _Parsed:
    et = _xml_parser()
    expected = "CVAT for images 1.1 XML (<annotations> with <image> elements)"
    try:
        root = et.parse(path).getroot()
    except Exception as exc:  # ParseError, or defusedxml's refusal of entity tricks
        raise AnnotationError(f"{path}: not valid XML ({exc})") from None
    if root.tag != "annotations":
        raise AnnotationError(f"{path}: not a CVAT file (expected {expected}, root is <{root.tag}>)")
    images = root.findall("image")
    if not images:
        if root.find("track") is not None:
            raise AnnotationError(f"{path}: this is CVAT *video* XML (<track>); export as 'CVAT for images 1.1'")
        raise AnnotationError(f"{path}: no <image> elements (expected {expected})")
    defined: list[str] = []
    meta = root.find("meta")
    if meta is not None:
        for label in meta.iter("label"):
            name = label.findtext("name")
            if name and name not in defined:
                defined.append(name)
    entries: list[_Entry] = []
    for img in images:
        name = img.get("name")
        if not name:
            raise AnnotationError(f"{path}: an <image> has no name attribute")
        size = None
        with contextlib.suppress(ValueError):
            size = (int(img.get("width", "")), int(img.get("height", "")))
        entry = _Entry(name=name, size=size)
        # CVAT draws higher z_order on top; within one z_order, file order.
        children = sorted(enumerate(img), key=lambda ic: (_z_order(ic[1]), ic[0]))
        for i, el in children:
            ref = f"<{el.tag}> {i}"
            label = el.get("label") or None
            try:
                if el.tag == "polygon":
                    entry.shapes.append(_Shape("polygon", label, ref, points=_cvat_points(el.get("points"))))
                elif el.tag in ("polyline", "points"):
                    entry.shapes.append(_Shape("polyline", label, ref, points=_cvat_points(el.get("points"))))
                elif el.tag == "box":
                    x1, y1, x2, y2 = (_num(el.get(k)) for k in ("xtl", "ytl", "xbr", "ybr"))
                    rot = _num(el.get("rotation", 0))
                    entry.shapes.append(
                        _Shape("polygon", label, ref, points=_rect_points(x1, y1, x2 - x1, y2 - y1, rot))
                    )
                elif el.tag == "ellipse":
                    cx, cy, rx, ry = (_num(el.get(k)) for k in ("cx", "cy", "rx", "ry"))
                    theta = math.radians(_num(el.get("rotation", 0)))
                    entry.shapes.append(_Shape("polygon", label, ref, points=_ellipse_points(cx, cy, rx, ry, theta)))
                elif el.tag == "mask":
                    left, top, w, h = (int(_num(el.get(k))) for k in ("left", "top", "width", "height"))
                    counts = [int(c) for c in (el.get("rle") or "").split(",") if c.strip()]
                    bitmap = _rle_decode(counts, h, w, order="C")
                    entry.shapes.append(_Shape("bitmap", label, ref, bitmap=bitmap, origin=(left, top)))
                elif el.tag in ("tag",):
                    continue  # image-level tag: no geometry, nothing to draw
                else:
                    entry.problems.append(f"{ref}: unknown shape type {el.tag!r}; skipped")
            except (TypeError, ValueError) as exc:
                entry.problems.append(f"{ref}: malformed {el.tag} ({exc}); skipped")
        entries.append(entry)
    return _Parsed(entries=entries, defined_classes=defined or None)


def _z_order(el: Any) -> int:
    try:
        return int(el.get("z_order", 0))
    except ValueError:
        return 0


_PARSERS: dict[str, Callable[[Path], _Parsed]] = {
    "via": _parse_via,
    "coco": _parse_coco,
    "labelme": _parse_labelme,
    "cvat": _parse_cvat,
}


# ---------------------------------------------------------------------- rasterising


@dataclass
class _Patch:
    x0: int
    y0: int
    pixels: np.ndarray  # bool, the part of the shape inside the image
    clipped: bool


def _rasterise(
    shape: _Shape, height: int, width: int, line_width: int, canvas: Image.Image | None = None
) -> _Patch | None:
    """Draw one shape, cropped to the image; None when it lies wholly outside.

    ``canvas`` is a blank image-sized ``L`` image reused for polygons (it is blank again
    on return): Pillow's polygon fill is not exactly translation-invariant (float edge
    arithmetic), so polygons are drawn in image coordinates to match masks made by
    drawing on the whole image, and only their bounding box is read back.
    """
    if shape.kind == "bitmap":
        assert shape.bitmap is not None
        bh, bw = shape.bitmap.shape
        ox, oy = shape.origin
        x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + bw, width), min(oy + bh, height)
        clipped = ox < 0 or oy < 0 or ox + bw > width or oy + bh > height
        if x0 >= x1 or y0 >= y1:
            return None
        return _Patch(x0, y0, shape.bitmap[y0 - oy : y1 - oy, x0 - ox : x1 - ox], clipped)
    assert shape.points is not None
    # Corner-origin continuous coordinates: a vertex lies in pixel floor(x), floor(y)
    # (also what Pillow does with float vertices, so VIA's own masks are reproduced).
    # Integer vertices also keep the strokes translation-invariant (drawn in a patch).
    pts = np.clip(np.floor(shape.points), -_COORD_LIMIT, _COORD_LIMIT).astype(np.int64)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    clipped = bool(lo[0] < 0 or lo[1] < 0 or hi[0] > width - 1 or hi[1] > height - 1)
    # Only the bounding box (plus the line's half width) is read back or drawn, not the
    # whole image: photos are large and have many small shapes.
    pad = 1 if shape.kind == "polygon" else line_width // 2 + 2
    x0, y0 = max(int(lo[0]) - pad, 0), max(int(lo[1]) - pad, 0)
    x1, y1 = min(int(hi[0]) + pad + 1, width), min(int(hi[1]) + pad + 1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    if shape.kind == "polygon":
        if canvas is None:
            canvas = Image.new("L", (width, height), 0)
        ImageDraw.Draw(canvas).polygon([(int(x), int(y)) for x, y in pts], fill=1)
        pixels = np.asarray(canvas.crop((x0, y0, x1, y1)), dtype=bool)
        canvas.paste(0, (x0, y0, x1, y1))
    else:
        pixels = _stroke(pts - np.array([x0, y0]), (y1 - y0, x1 - x0), line_width)
    if not pixels.any():
        return None
    return _Patch(x0, y0, pixels, clipped)


def _stroke(points: np.ndarray, shape: tuple[int, int], width: int) -> np.ndarray:
    """Pixels whose centre lies within ``width / 2`` of the polyline (round caps and joins).

    ``cv2.polylines(thickness=t)`` paints 2·(t//2)+1 px across a horizontal line (5 px
    for t=3), so the stroke is measured instead: odd widths come out exact, even widths
    one pixel wider (a stroke centred on a pixel row is symmetric). The 1-px
    ``cv2.polylines`` (``LINE_8``) centre line keeps thin strokes 8-connected.
    """
    canvas = np.zeros(shape, dtype=np.uint8)
    line = points if len(points) > 1 else np.repeat(points, 2, axis=0)  # a point: a dot
    cv2.polylines(canvas, [line.astype(np.int32).reshape(-1, 1, 2)], False, 1, 1, cv2.LINE_8)
    out = canvas.astype(bool)
    radius = width / 2
    h, w = shape
    for a, b in zip(line[:-1].astype(np.float64), line[1:].astype(np.float64), strict=True):
        lo = np.maximum(np.floor(np.minimum(a, b) - radius), 0).astype(int)
        hi = np.minimum(np.ceil(np.maximum(a, b) + radius) + 1, [w, h]).astype(int)
        if lo[0] >= hi[0] or lo[1] >= hi[1]:
            continue
        ys, xs = np.mgrid[lo[1] : hi[1], lo[0] : hi[0]]
        d = b - a
        length2 = float(d @ d)
        t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / length2, 0, 1) if length2 else 0.0
        dist2 = (xs - a[0] - t * d[0]) ** 2 + (ys - a[1] - t * d[1]) ** 2
        out[lo[1] : hi[1], lo[0] : hi[0]] |= dist2 <= radius * radius + 1e-9
    return out


def _distinct_vertices(points: np.ndarray) -> int:
    pts = points[:-1] if len(points) > 1 and np.array_equal(points[0], points[-1]) else points
    return len(np.unique(pts, axis=0))


# ------------------------------------------------------------------------ the import


def _image_index(images: Path) -> list[Path]:
    """Every image file under the folder, hidden files and folders left out."""
    return sorted(
        p
        for p in images.rglob("*")
        if p.is_file() and is_image_file(p) and not any(part.startswith(".") for part in p.relative_to(images).parts)
    )


_NOT_FOUND = "image not found in the images folder; skipped"


class _Resolver:
    """Find the file an annotation names: relative path, then file name, then case-insensitively."""

    def __init__(self, images: Path, files: list[Path]) -> None:
        self.by_rel = {p.relative_to(images).as_posix(): p for p in files}
        self.by_name: dict[str, list[Path]] = {}
        self.by_lower: dict[str, list[Path]] = {}
        self.by_stem: dict[str, list[Path]] = {}
        for p in files:
            self.by_name.setdefault(p.name, []).append(p)
            self.by_lower.setdefault(p.name.lower(), []).append(p)
            self.by_stem.setdefault(p.stem, []).append(p)

    def find(self, name: str, stem_hint: str | None = None) -> tuple[Path | None, str | None]:
        """The file, or None and why not."""
        clean = name.split("?")[0].replace("\\", "/")  # VIA may hold URLs; Windows paths
        clean = re.sub(r"^[a-z]+://[^/]*/", "", clean, flags=re.I).lstrip("./")
        if clean in self.by_rel:
            return self.by_rel[clean], None
        base = clean.rsplit("/", 1)[-1]
        for table, key in ((self.by_name, base), (self.by_lower, base.lower())):
            hits = table.get(key, [])
            if len(hits) == 1:
                return hits[0], None
            if len(hits) > 1:
                listed = ", ".join(str(h) for h in hits[:3])
                return None, f"several images are called {base!r} ({listed}); skipped"
        if stem_hint:
            hits = self.by_stem.get(stem_hint, [])
            if len(hits) == 1:
                return hits[0], None
        return None, _NOT_FOUND


def _resolve_classes(given: list[str] | None, parsed: _Parsed, problems: list[str]) -> tuple[list[str], dict[str, int]]:
    """Class names in index order, and the index of each label in the file."""
    labels = [s.label for e in parsed.entries for s in e.shapes]
    if given:
        classes = [c.strip() for c in given]
        if classes and classes[0].lower() == BACKGROUND:
            classes = classes[1:]  # "background" is always index 0; listing it is harmless
        if not classes or any(not c for c in classes):
            raise AnnotationError("--classes: class names must not be empty")
        dupes = [c for c, n in Counter(classes).items() if n > 1]
        if dupes:
            raise AnnotationError(f"--classes: {', '.join(dupes)} listed more than once")
    elif parsed.defined_classes is not None:
        # COCO categories / CVAT labels: the data set's own order; undeclared labels after.
        classes = list(parsed.defined_classes)
        classes += sorted({lb for lb in labels if lb is not None and lb not in classes})
        if any(lb is None for lb in labels):
            classes.append(DEFAULT_CLASS)
    else:
        # Sorted, so the same annotations give the same indices whatever the file order.
        classes = sorted({lb if lb is not None else DEFAULT_CLASS for lb in labels})
    if len(classes) > 255:
        raise AnnotationError(f"{len(classes)} classes do not fit an 8-bit index mask (at most 255)")
    index = {c: i + 1 for i, c in enumerate(classes)}
    if given:
        lower = {c.lower(): i for c, i in index.items()}
        unknown: Counter[str] = Counter()
        for lb in labels:
            if lb is None:
                continue
            if lb not in index and lb.lower() in lower:
                index[lb] = lower[lb.lower()]  # "Scratch" vs "scratch": the same class
            elif lb not in index:
                unknown[lb] += 1
        for lb, n in sorted(unknown.items()):
            problems.append(f"class {lb!r} is not in --classes: {n} shapes skipped")
    # One class: shapes without a class belong to it; otherwise to DEFAULT_CLASS if listed.
    index_none = 1 if len(classes) == 1 else index.get(DEFAULT_CLASS, 0)
    if index_none:
        index["\0none"] = index_none
    return classes, index


def _check_destination(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise AnnotationError(f"{out}: exists and is a file; --out must be a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise AnnotationError(f"{out}: folder exists and is not empty; choose a new --out folder")


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def import_annotations(
    annotations: str | Path,
    images: str | Path,
    out: str | Path,
    *,
    fmt: str,
    line_width: int = 3,
    classes: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ImportReport:
    """Rasterise an annotation file into ``out/images``, ``out/masks`` and ``out/classes.json``.

    ``fmt`` is one of :data:`FORMATS`; ``classes`` fixes the index order (default: COCO
    categories / CVAT labels in file order, otherwise the class names sorted). Images
    are copied byte for byte; the sources are never modified. ``progress`` is called
    with 1 after each annotated image; images over ``max_pixels`` are reported as
    unreadable. Raises :class:`AnnotationError` when nothing can
    be imported; everything else is listed in ``report.problems`` and ``out/REPORT.json``.
    """
    fmt_key = str(fmt).strip().lower()
    if fmt_key not in _PARSERS:
        raise AnnotationError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if line_width < 1:
        raise AnnotationError(f"line width must be at least 1 px, got {line_width}")
    ann_path, images_dir, out_dir = Path(annotations), Path(images), Path(out)
    if not ann_path.exists():
        raise AnnotationError(f"{ann_path}: annotation file not found")
    if ann_path.is_dir() and fmt_key != "labelme":
        raise AnnotationError(f"{ann_path}: is a folder; --from {fmt_key} expects a single file")
    if not images_dir.is_dir():
        what = "is not a folder" if images_dir.exists() else "folder not found"
        raise AnnotationError(f"{images_dir}: images {what}")
    _check_destination(out_dir)

    parsed = _PARSERS[fmt_key](ann_path)
    problems: list[str] = list(parsed.problems)
    class_list, class_index = _resolve_classes(classes, parsed, problems)
    binary = len(class_list) <= 1

    files = _image_index(images_dir)
    resolver = _Resolver(images_dir, files)
    # Merge entries that name the same image (VIA lists a file once per "name+size" key).
    merged: dict[str, _Entry] = {}
    repeats: Counter[str] = Counter()
    for entry in parsed.entries:
        if entry.name in merged:
            repeats[entry.name] += 1
            merged[entry.name].shapes += entry.shapes
            merged[entry.name].problems += entry.problems
        else:
            merged[entry.name] = _Entry(
                entry.name,
                list(entry.shapes),
                entry.size,
                list(entry.problems),
                entry.stem_hint,
                entry.file_size,
            )
    for name, n in repeats.items():
        problems.append(f"{name}: listed {n + 1} times in the annotations; shapes merged")

    report = ImportReport(
        n_written=0,
        classes=class_list,
        problems=problems,
        out=out_dir,
        binary=binary,
        format=fmt_key,
        source=str(ann_path),
    )
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    used: set[Path] = set()
    taken_stems: dict[str, str] = {}
    kinds: Counter[str] = Counter()

    def problem(kind: str, message: str) -> None:
        kinds[kind] += 1
        if kinds[kind] <= _MAX_PROBLEMS_PER_KIND:
            problems.append(message)

    resolved = [(entry, *resolver.find(entry.name, entry.stem_hint)) for entry in merged.values()]
    # VIA keys carry the file's byte size: an image renamed after annotating (a copy
    # that de-duplicated names, say) is still found when exactly one unclaimed file
    # has that size. Reported, so the user can check the pairing.
    claimed = {path for _, path, _ in resolved if path is not None}
    by_size: dict[int, list[Path]] = {}
    if any(e.file_size and p is None for e, p, _ in resolved):
        for f in files:
            if f not in claimed:
                by_size.setdefault(f.stat().st_size, []).append(f)
    for i, (entry, path, why) in enumerate(resolved):
        hits = by_size.get(entry.file_size or -1, [])
        if path is None and why == _NOT_FOUND and len(hits) == 1 and hits[0] not in claimed:
            claimed.add(hits[0])
            resolved[i] = (entry, hits[0], None)
            problems.append(
                f"{entry.name}: no file of that name; matched to {hits[0].name} by its file size "
                f"({entry.file_size} bytes)"
            )

    for entry, image_path, why in resolved:
        if progress is not None:
            progress(1)
        if image_path is None:
            report.missing_images.append(entry.name)
            problem("missing", f"{entry.name}: {why}")
            continue
        used.add(image_path)
        stem = image_path.stem
        if stem in taken_stems:
            problem(
                "collision",
                f"{entry.name}: mask name {stem}.png already used by {taken_stems[stem]}; skipped",
            )
            continue
        try:
            # Decoding (not just the header) proves the copy we ship is usable, and gives
            # the size after EXIF orientation — the picture the annotator saw.
            height, width = read_image(image_path, max_pixels=max_pixels).shape[:2]
        except ImageReadError as exc:
            report.unreadable_images.append(entry.name)
            problem("unreadable", f"{entry.name}: unreadable image ({exc.reason}); skipped")
            continue
        for msg in entry.problems:
            problem("shape", f"{entry.name}: {msg}")
        if entry.size is not None and entry.size != (width, height):
            problem(
                "size",
                f"{entry.name}: annotated as {entry.size[0]}×{entry.size[1]} but the image is "
                f"{width}×{height} (after EXIF orientation); coordinates used as they are",
            )
        labels = np.zeros((height, width), dtype=np.uint8)
        canvas = Image.new("L", (width, height), 0)
        for shape in entry.shapes:
            value = class_index.get(shape.label if shape.label is not None else "\0none", 0)
            if not value:
                if shape.label is None:
                    problem("shape", f"{entry.name}: {shape.ref} has no class; skipped")
                continue  # a class left out by --classes: counted once in _resolve_classes
            if shape.kind == "polygon" and shape.points is not None and _distinct_vertices(shape.points) < 3:
                problem("shape", f"{entry.name}: {shape.ref}: polygon with fewer than 3 points; skipped")
                continue
            if shape.kind == "polyline" and shape.points is not None and len(shape.points) == 0:
                problem("shape", f"{entry.name}: {shape.ref}: polyline without points; skipped")
                continue
            patch = _rasterise(shape, height, width, line_width, canvas)
            if patch is None:
                problem("outside", f"{entry.name}: {shape.ref} lies entirely outside the image; skipped")
                continue
            if patch.clipped:
                problem("outside", f"{entry.name}: {shape.ref} extends outside the image; clipped")
            ph, pw = patch.pixels.shape
            labels[patch.y0 : patch.y0 + ph, patch.x0 : patch.x0 + pw][patch.pixels] = value
            report.n_shapes += 1
        shutil.copy2(image_path, out_dir / "images" / image_path.name)
        write_mask(out_dir / "masks" / f"{stem}.png", labels, binary=binary)
        taken_stems[stem] = entry.name
        report.written.append(image_path.name)
        if not labels.any():
            report.empty_masks.append(image_path.name)
        report.n_written += 1

    for kind, n in kinds.items():
        if n > _MAX_PROBLEMS_PER_KIND:
            problems.append(f"… and {n - _MAX_PROBLEMS_PER_KIND} more problems of this kind ({kind})")
    report.unannotated_images = [p.relative_to(images_dir).as_posix() for p in files if p not in used]
    if report.unannotated_images:
        problems.append(
            f"{len(report.unannotated_images)} images in {images_dir} are not in the annotations; "
            "skipped (listed in REPORT.json)"
        )
    _write_json(
        out_dir / "classes.json",
        {"classes": [BACKGROUND, *class_list], "binary": binary, "source": str(ann_path), "format": fmt_key},
    )
    _write_json(out_dir / "REPORT.json", report.to_dict())
    log.info(
        "imported %d images (%d shapes, classes %s) into %s; %d problems",
        report.n_written,
        report.n_shapes,
        class_list,
        out_dir,
        len(problems),
    )
    return report
