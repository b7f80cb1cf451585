"""Where a heatmap finds a store's slide pixels when the store has none (imported features).

The slide is the file recorded in the store (``slide.path``) when it still
exists, else the one named like the store in the ``--slides`` folder. Without
either, only the outputs that need no pixels are written (GeoJSON, TIFF).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsi_engine.slide.discovery import find_slide_by_id
from wsi_engine.store.patch_store import PatchStore

THUMBNAIL_SIDE = 1024  # px, as tiling stores it
PIXEL_FORMATS = ("png", "html")


def locate_slide(store: PatchStore, slides: Path | None) -> Path | None:
    """The store's slide file: the recorded path if it exists, else a match in ``slides``, else ``None``."""
    recorded = store.attrs["slide"].get("path")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    return find_slide_by_id(slides, store.slide_id) if slides is not None else None


def slide_thumbnail(path: Path) -> tuple[np.ndarray, float]:
    """(RGB thumbnail, longest side ≤ 1024 px; level-0 px per thumbnail px) read from the slide."""
    from wsi_engine.slide import open_slide

    with open_slide(path, require_mpp=False) as reader:
        thumbnail = reader.get_thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        return thumbnail, reader.dimensions[0] / thumbnail.shape[1]


def skipped_note(formats: tuple[str, ...]) -> str:
    """The note of a slide whose pixel outputs were skipped."""
    skipped = ", ".join(f for f in formats if f in PIXEL_FORMATS)
    return (
        f"skipped {skipped}: the store has no thumbnail (imported features) and its slide was "
        "not found; pass --slides DIR to draw them (GeoJSON and TIFF need no pixels)"
    )
