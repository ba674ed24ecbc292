"""Sample photos for demos: large synthetic walls with cracks of known geometry.

``make demo`` inspects these with the bundled models; the true crack lengths and
widths are written next to them (``walls.json``) so the demo can show how close the
measurement came. This module imports no torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from crackscan.data.synth import synth_wall
from crackscan.imageio import write_image


def make_demo_walls(
    out_dir: str | os.PathLike[str],
    n: int = 3,
    size: tuple[int, int] = (3000, 4000),
    seed: int = 0,
    *,
    n_cracks: int = 3,
    quality: int = 92,
) -> list[Path]:
    """Write ``n`` synthetic wall photos ``wall_<i>.jpg`` of ``size`` = (height, width) px into ``out_dir``.

    Photo ``i`` is :func:`crackscan.data.synth.synth_wall` with seed ``seed + i`` (so
    the same arguments give the same files) and ``n_cracks`` cracks. ``walls.json``
    lists each photo's cracks with their true length and maximum full width (px).
    Returns the photo paths. A 3000×4000 wall takes a few seconds and a few hundred MB.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    height, width = (int(v) for v in size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    truth: dict[str, list[dict[str, float]]] = {}
    for i in range(n):
        image, _mask, geometries = synth_wall(seed + i, height, width, n_cracks)
        path = out / f"wall_{i}.jpg"
        write_image(path, image, quality=quality)
        truth[path.name] = [g.to_truth() for g in geometries]
        paths.append(path)
        del image, _mask
    doc = {"size": {"height": height, "width": width}, "seed": seed, "walls": truth}
    (out / "walls.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return paths
