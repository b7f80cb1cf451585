"""The ``tiling`` and ``tissue`` attribute sections of a patch store (docs/store.md; ``slide``: :mod:`wsi_engine.slide.provenance`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wsi_engine.tiling.config import TilingConfig
from wsi_engine.tiling.grid import GridGeometry
from wsi_engine.tissue import TissueMask


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
