"""Inspection outputs: masks, width-coloured overlays, per-image JSON, ``summary.csv``, ``report.html``.

``report.html`` is one self-contained file: thumbnails and overlays are embedded as
base64 JPEG, styles are inline, nothing is fetched from anywhere, so it can be mailed
or archived as is. Every file name shown in it is HTML-escaped.

Overlays colour each crack pixel by the local full crack width (the width measured on
the nearest centreline pixel, :func:`crackscan.analysis.measure.width_map`) with the
turbo colormap, and carry a legend; photos larger than ``max_side`` are downscaled
first (cracks thinner than a downscaled pixel stay visible: their opacity is boosted).

This module imports no torch.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image

from crackscan.analysis.measure import width_map
from crackscan.analysis.severity import SEVERITY_NONE, SEVERITY_UNKNOWN
from crackscan.imageio import write_mask

if TYPE_CHECKING:
    from crackscan.analysis.inspect import InspectionResult, InspectionSettings
    from crackscan.runtime.tiling import PatchGrid

THUMBNAIL_SIDE = 240  # px: table thumbnails in report.html
PREVIEW_SIDE = 720  # px: overlays embedded in report.html (the full overlay PNG is next to it)
_MAX_DILATION_PX = 101  # cap on the kernel that spreads centreline widths over the crack
# Per-photo mean absolute difference between the bundled segmenters' mean crack width and the annotated one on
# DeepCrack, CRACK500 and crackmix test photos: 1.0-3.9 px (benchmarks/width_curve.py, docs/benchmarks.md).
WIDTH_DIFF_PX = (1, 4)
_SEVERITY_COLOURS = ("#2e7d32", "#f9a825", "#ef6c00", "#c62828", "#6a1b9a")  # mild … severe


# --------------------------------------------------------------------------- pictures


def colormap(values: np.ndarray) -> np.ndarray:
    """Turbo colours (RGB uint8, shape ``values.shape + (3,)``) for values in ``[0, 1]``."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0.0, 1.0)
    idx = (v * 255.0 + 0.5).astype(np.uint8)
    bgr = cv2.applyColorMap(idx.reshape(-1, 1), cv2.COLORMAP_TURBO)
    return bgr.reshape(*v.shape, 3)[..., ::-1]


def _target_size(h: int, w: int, max_side: int) -> tuple[int, int, float]:
    scale = min(1.0, max_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale)), scale


def _shrink(arr: np.ndarray, oh: int, ow: int) -> np.ndarray:
    if arr.shape[:2] == (oh, ow):
        return arr
    return cv2.resize(arr, (ow, oh), interpolation=cv2.INTER_AREA)


def _legend(canvas: np.ndarray, low: str, high: str, title: str) -> None:
    """Draw a colour bar with its range in the bottom-left corner (in place)."""
    h, w = canvas.shape[:2]
    if h < 80 or w < 160:
        return  # no room: the HTML report carries the legend text too
    bar_w, bar_h, pad = min(256, w // 3), max(8, h // 60), 8
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, min(0.8, h / 1200))
    (_, th), _ = cv2.getTextSize("0", font, scale, 1)
    x0, y1 = pad, h - pad
    y0 = y1 - (bar_h + 2 * th + 4 * pad)
    canvas[max(0, y0) : y1, x0 : x0 + bar_w + 2 * pad] //= 3  # dark box behind the legend
    bar = np.repeat(colormap(np.linspace(0, 1, bar_w))[None], bar_h, axis=0)
    by = y1 - pad - bar_h
    canvas[by : by + bar_h, x0 + pad : x0 + pad + bar_w] = bar
    white = (255, 255, 255)
    cv2.putText(canvas, title, (x0 + pad, max(th, y0 + pad + th)), font, scale, white, 1, cv2.LINE_AA)
    cv2.putText(canvas, low, (x0 + pad, by - pad // 2), font, scale, white, 1, cv2.LINE_AA)
    (tw, _), _ = cv2.getTextSize(high, font, scale, 1)
    cv2.putText(canvas, high, (x0 + pad + bar_w - tw, by - pad // 2), font, scale, white, 1, cv2.LINE_AA)


def spread_widths(width: np.ndarray, mask: np.ndarray, kernel: int, *, block: int = 256) -> np.ndarray:
    """``cv2.dilate(width, ellipse(kernel))`` kept on ``mask`` (0 elsewhere), computed per block.

    Dilation is local, so only ``block``-px squares that hold mask pixels are dilated, each
    from its neighbourhood ``kernel // 2`` px wider: the same values as one dilation of the
    whole photo, at a cost that follows the cracked area instead of the photo's size.
    """
    h, w = mask.shape
    out = np.zeros_like(width)
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    r = kernel // 2
    rows, cols = np.arange(0, h, block), np.arange(0, w, block)
    occupied = np.logical_or.reduceat(np.logical_or.reduceat(mask, rows, axis=0), cols, axis=1)
    for i, j in zip(*np.nonzero(occupied), strict=True):
        y0, x0 = int(rows[i]), int(cols[j])
        y1, x1 = min(h, y0 + block), min(w, x0 + block)
        sy0, sx0, sy1, sx1 = max(0, y0 - r), max(0, x0 - r), min(h, y1 + r), min(w, x1 + r)
        spread = cv2.dilate(width[sy0:sy1, sx0:sx1], se)[y0 - sy0 : y1 - sy0, x0 - sx0 : x1 - sx0]
        keep = mask[y0:y1, x0:x1]
        out[y0:y1, x0:x1][keep] = spread[keep]
    return out


def render_width_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    max_side: int = 2048,
    min_area_px: int = 0,
    join_gap_px: int = 3,
    mm_per_px: float | None = None,
    legend: bool = True,
    centreline: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The photo (dimmed) with crack pixels coloured by local full width: RGB uint8.

    Colour runs from 0 px (blue) to the photo's largest width (red); mask pixels that
    are not part of a measured crack (specks below ``min_area_px``) are light grey. The
    result's long side is at most ``max_side`` px. ``mm_per_px`` labels the legend in mm.
    ``centreline``: the ``(ys, xs, widths)`` that ``measure_mask(..., keep_centreline=True)``
    kept for this mask with the same ``min_area_px``/``join_gap_px`` (saves skeletonising again).
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    if centreline is not None:
        width = np.zeros((h, w), dtype=np.float32)
        width[centreline[0], centreline[1]] = centreline[2]
    else:
        _, width = width_map(mask, min_area_px=min_area_px, join_gap_px=join_gap_px)
    wmax = float(width.max()) if width.size else 0.0
    if wmax > 0:
        # Spread each centreline width over its crack: a max filter as wide as the widest crack.
        k = min(_MAX_DILATION_PX, 2 * math.ceil(wmax / 2 + 1) + 1)
        width = spread_widths(width, mask, k)
    oh, ow, scale = _target_size(h, w, max_side)
    # Area averages: coverage of each output pixel by crack, and crack-weighted mean width.
    coverage = _shrink(mask.view(np.uint8) * np.uint8(255), oh, ow).astype(np.float32) / 255.0
    width_sum = _shrink(width, oh, ow)
    del width
    # Most of a photo is crack-free: dim it in one pass, then blend colour only where cracks are.
    small = _shrink(image, oh, ow)
    out = (small.astype(np.float32) * 0.6 + 0.5).astype(np.uint8)
    ys, xs = np.nonzero(coverage > 0)
    cov = coverage[ys, xs]
    mean_width = width_sum[ys, xs] / cov
    colour = colormap(mean_width / wmax if wmax > 0 else mean_width).astype(np.float32)
    colour[mean_width <= 0] = 210.0  # unmeasured specks
    boost = 1.0 if scale >= 1.0 else min(4.0, 1.0 / scale)  # thin cracks must survive downscaling
    alpha = np.clip(cov * boost, 0.0, 1.0)[:, None]
    base = small[ys, xs].astype(np.float32) * 0.6
    out[ys, xs] = (base * (1.0 - alpha) + colour * alpha + 0.5).astype(np.uint8)
    if legend and wmax > 0:
        high = f"{wmax * mm_per_px:.2f} mm" if mm_per_px else f"{wmax:.1f} px"
        _legend(out, "0", high, "crack width")
    return out


def render_heatmap_overlay(
    image: np.ndarray, grid: PatchGrid, threshold: float, *, max_side: int = 2048, legend: bool = True
) -> np.ndarray:
    """The photo with each classifier patch tinted by its crack probability: RGB uint8.

    Patches at or above ``threshold`` get a yellow frame. Long side at most ``max_side`` px.
    """
    h, w = image.shape[:2]
    oh, ow, scale = _target_size(h, w, max_side)
    base = _shrink(image, oh, ow).astype(np.float32)
    heat = np.zeros((oh, ow), dtype=np.float32)
    boxes = np.round(grid.boxes.astype(np.float64) * scale).astype(int)
    for (r, c), p in np.ndenumerate(grid.probabilities):
        y0, x0, y1, x1 = boxes[r, c]
        cell = heat[y0:y1, x0:x1]
        np.maximum(cell, p, out=cell)  # the last row/column overlaps its neighbour: keep the larger
    alpha = (0.6 * heat)[..., None]  # a clean patch shows the photo untouched
    out = (base * (1.0 - alpha) + colormap(heat).astype(np.float32) * alpha + 0.5).astype(np.uint8)
    for r, c in zip(*np.nonzero(grid.probabilities >= threshold), strict=True):
        y0, x0, y1, x1 = boxes[r, c]
        cv2.rectangle(out, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), (255, 235, 0), max(1, round(2 * scale)))
    if legend:
        _legend(out, "0", "1", "crack probability")
    return out


def _encode(array: np.ndarray, fmt: str = "JPEG", quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(np.asarray(array, dtype=np.uint8))
    if fmt == "JPEG":
        img.save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format=fmt)
    return buf.getvalue()


def _fit(array: np.ndarray, side: int) -> np.ndarray:
    h, w = array.shape[:2]
    oh, ow, _ = _target_size(h, w, side)
    return _shrink(array, oh, ow)


# --------------------------------------------------------------------------- per-image files


def write_image_outputs(
    result: InspectionResult,
    out_dir: str | Path,
    *,
    model: dict[str, Any] | None = None,
    settings: InspectionSettings | None = None,
) -> list[str]:
    """Write ``masks/<name>.png``, ``overlays/<name>.png`` and ``results/<name>.json`` for one result.

    Needs the result's arrays (before :meth:`InspectionResult.release`). Fills
    ``result.outputs`` (paths relative to ``out_dir``) and ``result.previews`` (JPEG bytes
    for the HTML report) and returns the relative paths written.
    """
    from crackscan.analysis.output_folder import safe_name

    out = Path(out_dir)
    written: list[str] = []
    name = safe_name(result.name)  # never a path: "../x" must not leave the report folder
    if result.image is None:
        raise ValueError(f"{result.source}: no image held; write outputs before release()")
    max_side = settings.overlay_max_side if settings is not None else 2048
    if result.mask is not None:
        rel = f"masks/{name}.png"
        write_mask(out / rel, result.mask)
        result.outputs["mask"] = rel
        written.append(rel)
        overlay = render_width_overlay(
            result.image,
            result.mask,
            max_side=max_side,
            min_area_px=settings.min_area_px if settings is not None else 0,
            join_gap_px=settings.join_gap_px if settings is not None else 3,
            mm_per_px=settings.mm_per_px if settings is not None else None,
            centreline=result.measurement.centreline if result.measurement is not None else None,
        )
    elif result.patch_grid is not None:
        overlay = render_heatmap_overlay(result.image, result.patch_grid, result.threshold or 0.5, max_side=max_side)
    else:
        overlay = None
    if overlay is not None:
        rel = f"overlays/{name}.png"
        (out / "overlays").mkdir(parents=True, exist_ok=True)
        # Photo-like PNGs take seconds at zlib level 6 for ~10 % smaller files: level 1 is plenty. OpenCV's
        # encoder is ~1.5× faster than Pillow's on a 2048-px overlay; encoding to bytes keeps any path working.
        ok, png = cv2.imencode(".png", np.ascontiguousarray(overlay[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise OSError(f"{out / rel}: could not encode the overlay as PNG")
        (out / rel).write_bytes(png.tobytes())
        result.outputs["overlay"] = rel
        written.append(rel)
        result.previews["overlay"] = _encode(_fit(overlay, PREVIEW_SIDE))
    result.previews["thumbnail"] = _encode(_fit(result.image, THUMBNAIL_SIDE))
    rel = f"results/{name}.json"
    result.outputs["json"] = rel
    doc = {
        **result.to_dict(),
        "model": model or {},
        "settings": settings.to_dict() if settings is not None else {},
    }
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / rel).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    written.append(rel)
    return written


# --------------------------------------------------------------------------- summary and report


def severity_rank(severity: str, names: Sequence[str]) -> int:
    """Sort key, most severe first: the last band … the first band, unknown, none, failed."""
    if severity in names:
        return len(names) - 1 - list(names).index(severity)
    return {SEVERITY_UNKNOWN: len(names), SEVERITY_NONE: len(names) + 1}.get(severity, len(names) + 2)


def sort_results(results: Sequence[InspectionResult], band_names: Sequence[str]) -> list[InspectionResult]:
    """Most severe first; within a band the widest, then the most probable crack first."""

    def key(r: InspectionResult) -> tuple[int, float, float, str]:
        width = r.measurement.max_width_px if r.measurement is not None else 0.0
        return (
            severity_rank(r.severity, band_names) if r.ok else 10**6,
            -width,
            -(r.crack_probability or 0.0),
            r.source,
        )

    return sorted(results, key=key)


def write_summary_csv(results: Sequence[InspectionResult], path: str | Path) -> None:
    """One row per photo (failed ones too) with :data:`crackscan.analysis.inspect.SUMMARY_COLUMNS`."""
    from crackscan.analysis.inspect import SUMMARY_COLUMNS
    from crackscan.analysis.measure import write_rows_csv

    write_rows_csv((r.to_row() for r in results), SUMMARY_COLUMNS, path)


def _data_uri(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{margin:0 0 4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;background:#fff}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:middle}th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:90%}
.note{background:#fff8e1;border:1px solid #ffe082;padding:8px 12px;margin:12px 0}
.detail{background:#fff;border:1px solid #ddd;padding:12px;margin:16px 0}.detail img{max-width:100%}
.kv td:first-child{color:#555}.fail{color:#b71c1c}.muted{color:#777}
"""


def _badge(severity: str, names: Sequence[str]) -> str:
    if severity in names:
        i = list(names).index(severity)
        colour = _SEVERITY_COLOURS[min(len(_SEVERITY_COLOURS) - 1, round(i * 3 / max(1, len(names) - 1)))]
    elif severity == SEVERITY_UNKNOWN:
        colour = "#546e7a"
    else:
        colour = "#9e9e9e"
    return f'<span class="badge" style="background:{colour}">{html.escape(severity or "–")}</span>'


def render_html(
    results: Sequence[InspectionResult],
    *,
    model: dict[str, Any] | None = None,
    settings: InspectionSettings | None = None,
) -> str:
    """The self-contained HTML report (a string): totals, model and settings, a table by severity, details."""
    e = html.escape
    model = model or {}
    names = list(settings.bands.names) if settings is not None else ["hairline", "fine", "medium", "wide"]
    unit = settings.bands.unit if settings is not None else "mm"
    mm = settings.mm_per_px if settings is not None else None
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    with_crack = [r for r in ok if r.has_crack]
    classifier = any(r.task == "classify" for r in ok) or model.get("task") == "classify"
    total_len = sum(r.measurement.total_length_px for r in ok if r.measurement is not None)
    widest = max((r.measurement.max_width_px for r in ok if r.measurement is not None), default=0.0)
    counts: dict[str, int] = {}
    for r in ok:
        counts[r.severity] = counts.get(r.severity, 0) + 1

    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>crackscan inspection report — {len(results)} photos</title><style>{_CSS}</style></head><body>",
        "<h1>crackscan inspection report</h1>",
        f"<p class='muted'>{e(dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'))} · model "
        f"<b>{e(str(model.get('name', '?')))}</b> "
        f"({e(str(model.get('arch', '?')))}, {e(str(model.get('task', '?')))})</p>",
    ]
    if classifier:
        parts.append(
            "<div class='note'>This model is a <b>patch classifier</b>: it says which 227-px patches of a photo "
            "show a crack (heatmap), but it cannot outline cracks, so <b>no length or width is measured</b> and "
            "severity is “unknown” for photos with cracks. Use a segmentation model for measurements.</div>"
        )
    if not classifier and with_crack:
        at_scale = f" ({WIDTH_DIFF_PX[0] * mm:.2g}–{WIDTH_DIFF_PX[1] * mm:.2g} mm at this scale)" if mm else ""
        parts.append(
            "<div class='note'>Widths are measured on the model's crack mask, not with a gauge. For the bundled "
            "crack segmenters, on the public crack sets' test photos, a photo's mean width differs from the "
            f"hand-annotated one by {WIDTH_DIFF_PX[0]}–{WIDTH_DIFF_PX[1]} px on average{e(at_scale)}: a crack near "
            "a severity band's edge may belong to the next band. Check such cracks on site.</div>"
        )
    if mm is None and not classifier and unit == "mm":
        parts.append(
            "<div class='note'>No scale given (<code>--mm-per-px</code>): lengths and widths are in pixels and "
            "cracks are rated “unknown” instead of a width band.</div>"
        )

    # Totals
    parts.append("<h2>Totals</h2><table class='kv'>")
    rows = [
        ("photos", f"{len(results)} ({len(ok)} inspected, {len(failed)} failed)"),
        ("photos with cracks", str(len(with_crack))),
    ]
    if not classifier:
        length = f"{total_len:,.0f} px" + (f" = {total_len * mm / 1000:,.3f} m" if mm else "")
        rows += [
            ("total crack length", length),
            ("widest crack", f"{widest:.1f} px" + (f" = {widest * mm:.2f} mm" if mm else "")),
        ]
    sev = ", ".join(f"{e(k)}: {v}" for k, v in sorted(counts.items(), key=lambda kv: severity_rank(kv[0], names)))
    rows.append(("by severity", sev or "–"))
    parts += [f"<tr><td>{e(k)}</td><td>{v if k == 'by severity' else e(v)}</td></tr>" for k, v in rows]
    parts.append("</table>")

    # Model and settings
    parts.append("<h2>Model and settings</h2><table class='kv'>")
    for k, v in model.items():
        parts.append(f"<tr><td>model {e(str(k))}</td><td>{e(str(v))}</td></tr>")
    if settings is not None:
        for k, v in settings.to_dict().items():
            shown = json.dumps(v) if isinstance(v, (dict, list)) else str(v)
            parts.append(f"<tr><td>{e(k)}</td><td>{e(shown)}</td></tr>")
    parts.append("</table>")

    # Table by severity
    parts.append("<h2>Photos, most severe first</h2><table><tr><th>photo</th><th>image</th>")
    if classifier:
        parts.append("<th>crack patches</th>")
    else:
        parts.append("<th>cracks</th><th>length px</th><th>max width px</th><th>mean width px</th>")
        if mm:
            parts.append("<th>length mm</th><th>max width mm</th>")
    parts.append("<th>severity</th><th>crack probability</th></tr>")
    for i, r in enumerate(sort_results(ok, names)):
        thumb = r.previews.get("thumbnail")
        img = f"<img src='{_data_uri(thumb)}' alt='' width='120'>" if thumb else ""
        parts.append(f"<tr><td>{img}</td><td><a href='#img{i}'>{e(r.source)}</a></td>")
        m = r.measurement
        if classifier:
            parts.append(f"<td class='n'>{len(r.patches)} / {r.n_patches}</td>")
        elif m is not None:
            parts.append(
                f"<td class='n'>{m.n_cracks}</td><td class='n'>{_fmt(m.total_length_px, 0)}</td>"
                f"<td class='n'>{_fmt(m.max_width_px)}</td><td class='n'>{_fmt(m.mean_width_px)}</td>"
            )
            if mm:
                parts.append(f"<td class='n'>{_fmt(m.length_mm)}</td><td class='n'>{_fmt(m.max_width_mm, 2)}</td>")
        else:
            parts.append("<td colspan='4'>–</td>" + ("<td colspan='2'></td>" if mm else ""))
        parts.append(f"<td>{_badge(r.severity, names)}</td><td class='n'>{_fmt(r.crack_probability, 3)}</td></tr>")
    parts.append("</table>")

    if failed:
        parts.append(f"<h2 class='fail'>Not inspected ({len(failed)})</h2><table><tr><th>file</th><th>reason</th></tr>")
        parts += [f"<tr><td>{e(r.source)}</td><td>{e(r.error or '')}</td></tr>" for r in failed]
        parts.append("</table>")

    # Details
    parts.append("<h2>Overlays</h2>")
    for i, r in enumerate(sort_results(ok, names)):
        parts.append(f"<div class='detail' id='img{i}'><h3>{e(r.source)}</h3>")
        parts.append(
            f"<p class='muted'>{r.width}×{r.height} px · {r.seconds:.1f} s · threshold {_fmt(r.threshold, 2)}"
            + "".join(f" · <span>{e(k)}: {e(v)}</span>" for k, v in r.outputs.items())
            + "</p>"
        )
        if "overlay" in r.previews:
            what = "patch crack probability" if r.task == "classify" else "cracks coloured by local width"
            parts.append(f"<img src='{_data_uri(r.previews['overlay'])}' alt='{e(what)}' title='{e(what)}'>")
        if r.task == "classify" and r.patches:
            parts.append("<p>patches at or above the threshold (most probable first):</p><table>")
            parts.append("<tr><th>row</th><th>col</th><th>x0–x1 px</th><th>y0–y1 px</th><th>probability</th></tr>")
            for p in r.patches[:50]:
                parts.append(
                    f"<tr><td>{p['row']}</td><td>{p['col']}</td><td>{p['x0']}–{p['x1']}</td>"
                    f"<td>{p['y0']}–{p['y1']}</td><td class='n'>{p['probability']:.3f}</td></tr>"
                )
            parts.append("</table>")
            if len(r.patches) > 50:
                parts.append(f"<p class='muted'>… {len(r.patches) - 50} more in the JSON file</p>")
        elif r.measurement is not None and r.measurement.cracks:
            parts.append("<table><tr><th>crack</th><th>length px</th><th>max width px</th><th>mean width px</th>")
            parts.append("<th>orientation °</th><th>severity</th></tr>")
            for c in sorted(r.measurement.cracks, key=lambda c: -c.max_width_px)[:50]:
                parts.append(
                    f"<tr><td>{c.id}</td><td class='n'>{_fmt(c.length_px, 0)}</td><td class='n'>"
                    f"{_fmt(c.max_width_px)}</td><td class='n'>{_fmt(c.mean_width_px)}</td><td class='n'>"
                    f"{_fmt(c.orientation_deg, 0)}</td><td>{_badge(c.severity, names)}</td></tr>"
                )
            parts.append("</table>")
        parts.append("</div>")
    parts.append("<p class='muted'>Written by crackscan. Full-size masks and overlays are in the report folder.</p>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(
    results: Sequence[InspectionResult],
    out_dir: str | Path,
    *,
    model: dict[str, Any] | None = None,
    settings: InspectionSettings | None = None,
) -> list[str]:
    """Write ``summary.csv`` and the self-contained ``report.html`` into ``out_dir``; return their names."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_summary_csv(results, out / "summary.csv")
    (out / "report.html").write_text(render_html(results, model=model, settings=settings), encoding="utf-8")
    return ["summary.csv", "report.html"]
