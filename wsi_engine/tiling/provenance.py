"""The ``slide``, ``tiling`` and ``tissue`` attribute sections of a patch store (docs/store.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from wsi_engine.slide import SlideReader
from wsi_engine.slide.bounds import slide_bounds
from wsi_engine.tiling.config import TilingConfig
from wsi_engine.tiling.grid import GridGeometry
from wsi_engine.tissue import TissueMask

FINGERPRINT_BYTES = 1 << 20
"""Bytes hashed at each end of a slide file."""


def file_fingerprint(path: str | Path) -> str:
    """``sha256:<hex>`` of the file's size and its first and last MiB.

    Cheap on gigabyte files and changes when a file is replaced, truncated
    or re-scanned; used to decide whether a partial store may be resumed.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            handle.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(handle.read(FINGERPRINT_BYTES))
    return f"sha256:{digest.hexdigest()}"


def slide_attrs(reader: SlideReader, slide_id: str) -> dict[str, Any]:
    """The ``slide`` section: identity, fingerprint, format and level-0 geometry of the source."""
    path = Path(reader.path).resolve()
    mpp = reader.mpp
    return {
        "id": slide_id,
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "fingerprint": file_fingerprint(path),
        "vendor": reader.vendor or reader.format,
        "format": reader.format,
        "backend": reader.backend,
        "dimensions": list(reader.dimensions),
        "level_count": reader.level_count,
        "mpp": [mpp.x, mpp.y] if mpp else None,
        "mpp_source": mpp.source if mpp else None,
        "objective_power": reader.objective_power,
        "bounds": slide_bounds(reader.properties),
    }


def tiling_attrs(geometry: GridGeometry, config: TilingConfig) -> dict[str, Any]:
    """The ``tiling`` section: grid geometry and how pixels are stored."""
    return {
        **geometry.attrs(),
        "mpp_tolerance": config.mpp_tolerance,
        "min_tissue_fraction": config.min_tissue_fraction,
        "pixel_mode": config.pixel_mode,
        "jpeg_quality": config.jpeg_quality if config.pixel_mode == "jpeg" else None,
        "jpeg_passthrough": config.pixel_mode == "jpeg" and config.jpeg_passthrough,
        "shard_patches": config.shard_patches,
    }


def tissue_attrs(mask: TissueMask, config: TilingConfig, user_file: Path | None) -> dict[str, Any]:
    """The ``tissue`` section: detection parameters, or the user's mask file."""
    if user_file is not None:
        return {"source": mask.source, "file": str(Path(user_file).resolve()), "mask_mpp": mask.mpp}
    return {"source": mask.source, **config.tissue.model_dump(mode="json")}
