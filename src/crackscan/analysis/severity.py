"""Severity bands: crack classes by maximum width.

The default bands are the usual ones for concrete inspection, in mm of full crack
width: hairline < 0.1 mm, fine 0.1–0.3 mm, medium 0.3–1.0 mm, wide ≥ 1.0 mm. Bands can
also be given in px (``unit="px"``) for masks without a known scale.

This module imports no torch.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from typing import Any

SEVERITY_NONE = "none"  # no crack at all
SEVERITY_UNKNOWN = "unknown"  # cracks, but no scale to put them in mm bands
UNITS = ("mm", "px")


class SeverityError(ValueError):
    """Bad severity band definition (edges not increasing, wrong number of names …)."""


@dataclass(frozen=True)
class SeverityBands:
    """Severity classes by maximum full crack width.

    ``edges`` are the band limits in ``unit`` (mm or px), strictly increasing and > 0;
    ``names`` has one more entry than ``edges``. A width ``w`` is in band ``i`` when
    ``edges[i-1] <= w < edges[i]`` (band 0 below the first edge, the last band at or
    above the last edge).
    """

    edges: tuple[float, ...] = (0.1, 0.3, 1.0)
    names: tuple[str, ...] = ("hairline", "fine", "medium", "wide")
    unit: str = "mm"

    def __post_init__(self) -> None:
        edges = tuple(float(e) for e in self.edges)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        if self.unit not in UNITS:
            raise SeverityError(f"band unit must be mm or px, got {self.unit!r}")
        if not edges:
            raise SeverityError("give at least one band edge")
        if not all(math.isfinite(e) and e > 0 for e in edges):
            raise SeverityError(f"band edges must be positive numbers, got {list(edges)}")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise SeverityError(f"band edges must increase strictly, got {list(edges)}")
        if len(self.names) != len(edges) + 1:
            raise SeverityError(f"{len(edges)} edges need {len(edges) + 1} band names, got {len(self.names)}")

    @classmethod
    def parse(cls, text: str, *, unit: str = "mm", names: tuple[str, ...] | None = None) -> SeverityBands:
        """Bands from a comma-separated list of edges, e.g. ``"0.1,0.3,1.0"``.

        With three edges the default names are kept; otherwise bands are named
        ``band0`` … ``bandN``, unless ``names`` is given.
        """
        try:
            edges = tuple(float(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise SeverityError(f"band edges must be comma-separated numbers, got {text!r}") from None
        if names is None:
            default = cls.__dataclass_fields__["names"].default
            names = default if len(edges) == len(default) - 1 else tuple(f"band{i}" for i in range(len(edges) + 1))
        return cls(edges=edges, names=names, unit=unit)

    def classify(self, width: float | None) -> str:
        """The band name of a maximum width given in this band's ``unit``.

        ``None`` (no scale) gives ``"unknown"``; a width <= 0 (no crack) gives ``"none"``.
        """
        if width is None or not math.isfinite(width):
            return SEVERITY_UNKNOWN
        if width <= 0:
            return SEVERITY_NONE
        return self.names[bisect.bisect_right(self.edges, width)]

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "names": list(self.names), "unit": self.unit}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeverityBands:
        return cls(edges=tuple(data["edges"]), names=tuple(data["names"]), unit=data.get("unit", "mm"))
