"""OpenSlide's non-empty region (``openslide.bounds-x/y/width/height``) and the viewer frame it implies.

MIRAX, Hamamatsu VMS and some other formats hold a level-0 plane larger than
the scanned area; OpenSlide reports the scanned rectangle as bounds, and
viewers built on it (QuPath) show only that rectangle, with its top-left
corner as their (0, 0). Level-0 coordinates written for viewers are
therefore shifted by ``-(bounds-x, bounds-y)``. Slides without bounds (SVS,
generic TIFF, tiffslide) have the frame (0, 0, width, height).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_KEYS = ("bounds-x", "bounds-y", "bounds-width", "bounds-height")


def slide_bounds(properties: Mapping[str, str]) -> list[int] | None:
    """[x, y, width, height] level-0 px of OpenSlide's bounds, or ``None`` when not all four are given."""
    for prefix in ("openslide", "tiffslide"):
        values = [properties.get(f"{prefix}.{key}") for key in _KEYS]
        if all(v not in (None, "") for v in values):
            try:
                return [int(float(v)) for v in values]  # type: ignore[arg-type]
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class ViewerFrame:
    """The level-0 rectangle a viewer shows: origin (x, y) and size (width, height), level-0 px."""

    x: int
    y: int
    width: int
    height: int

    @classmethod
    def of(cls, slide_section: Mapping[str, Any]) -> ViewerFrame:
        """The frame of a store's ``slide`` section: its ``bounds`` when recorded, else the whole level 0."""
        bounds = slide_section.get("bounds")
        if bounds:
            return cls(*(int(v) for v in bounds))
        width, height = slide_section["dimensions"]
        return cls(0, 0, int(width), int(height))

    @property
    def offset(self) -> tuple[int, int]:
        return self.x, self.y
