"""Names and paths of the per-slide patch store (schema documented in docs/store.md)."""

from __future__ import annotations

from pathlib import Path

from wsi_engine.errors import StoreError
from wsi_engine.slide.ids import sanitize_name

SCHEMA_VERSION = 1
ATTRS_KEY = "wsi_engine"

STORE_SUFFIX = ".zarr"
PARTIAL_SUFFIX = ".zarr.partial"

COORDS = "coords"
TISSUE_FRACTION = "tissue_fraction"
PATCHES = "patches"
THUMBNAIL = "thumbnail"
TISSUE_MASK = "tissue_mask"
FEATURES = "features"
SCORES = "scores"
REPORTS = "reports"
PROGRESS = "_progress"
TMP_PREFIX = ".tmp-"

PIXEL_MODES = ("jpeg", "lossless", "none")


def store_slide_id(path: str | Path) -> str:
    """Slide id of a store path: its folder name without ``.zarr`` (the inverse of :func:`store_path`)."""
    return Path(path).name.removesuffix(STORE_SUFFIX)


def store_path(out_dir: str | Path, slide_id: str) -> Path:
    """Path of the complete store of ``slide_id`` in ``out_dir``."""
    return Path(out_dir) / f"{sanitize_name(slide_id)}{STORE_SUFFIX}"


def partial_store_path(out_dir: str | Path, slide_id: str) -> Path:
    """Path of the store of ``slide_id`` while it is being written."""
    return Path(out_dir) / f"{sanitize_name(slide_id)}{PARTIAL_SUFFIX}"


def find_stores(paths: list[str | Path]) -> list[Path]:
    """Complete stores named by ``paths`` (store directories, or folders holding stores), sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.name.endswith(STORE_SUFFIX):
            found.append(path)
        elif path.is_dir():
            found.extend(p for p in path.iterdir() if p.is_dir() and p.name.endswith(STORE_SUFFIX))
    return sorted(set(found))


def require_stores(
    paths: list[str | Path], hint: str = "give store folders or <id>.zarr paths"
) -> list[Path]:
    """:func:`find_stores` of ``paths``; a StoreError naming them (with ``hint``) when there is none."""
    found = find_stores(paths)
    if not found:
        raise StoreError(
            "no patch stores found", path=", ".join(map(str, paths)) or None, hint=hint
        )
    return found
