"""The store sections of imported features: patch geometry and slide from the files, options or slide.

The patch geometry comes from the options ``patch_size``/``patch_level``
first, then the files' attributes (CLAM ``patch_level``/``patch_size``/
``downsample``, TRIDENT ``patch_size``/``level0_magnification``/
``target_magnification``), then, with the slide, the coordinate grid step.
The slide section comes from the slide when found, else from the files and
``mpp`` (level-0 µm/px).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine.errors import DataError
from wsi_engine.slide.open import open_slide
from wsi_engine.slide.provenance import slide_attrs

GEOMETRY_HINT = (
    "pass --patch-size (px at --patch-level, default 0), the patching run's patches/ folder with "
    "--coords, or the slides with --slides to derive it from the coordinate grid"
)


@dataclass(frozen=True)
class PatchGeometry:
    """Patch side ``patch_size`` px read at ``level`` (``downsample`` level-0 px per px); ``size0`` level-0 px."""

    patch_size: int
    level: int
    downsample: float
    size0: float
    note: str = ""


def _number(value: Any) -> float | None:
    """First element of a scalar or [x, y] attribute as float, or ``None``."""
    if value is None:
        return None
    first = np.atleast_1d(np.asarray(value, dtype=np.float64))
    return float(first[0]) if first.size and np.isfinite(first[0]) and first[0] > 0 else None


def patch_geometry(
    attrs: dict[str, Any],
    coords: np.ndarray,
    reader: Any,
    patch_size: int | None,
    patch_level: int | None,
    source: Path,
) -> PatchGeometry:
    """The patch geometry from options first, then the file's attributes, then the slide's grid step."""
    level = patch_level if patch_level is not None else int(_number(attrs.get("patch_level")) or 0)
    downsample = _number(attrs.get("downsample")) if patch_level is None else None
    if downsample is None and reader is not None:
        if level >= reader.level_count:
            raise DataError(
                f"patch level {level} but the slide has {reader.level_count} level(s)", path=source
            )
        downsample = float(reader.level_downsamples[level])
    if downsample is None and level == 0:
        downsample = 1.0
    if downsample is None:
        raise DataError(
            f"the downsample of patch level {level} is unknown", path=source, hint="pass --slides"
        )
    size = patch_size or _number(attrs.get("patch_size"))
    note = ""
    if size is None and reader is not None:
        step0 = _grid_step(coords)
        if step0 is None:
            raise DataError("no patch size recorded and too few patches to derive it", path=source,
                            hint=GEOMETRY_HINT)  # fmt: skip
        size = max(1, round(step0 / downsample))
        note = f"patch size {size} px at level {level} derived from the coordinate grid step (no overlap assumed)"
    if size is None:
        raise DataError(
            "no patch size recorded (CLAM's h5_files carry no attributes)",
            path=source,
            hint=GEOMETRY_HINT,
        )
    magnifications = (
        _number(attrs.get("level0_magnification")),
        _number(attrs.get("target_magnification")),
    )
    if patch_size is None and patch_level is None and all(magnifications):
        size0 = size * magnifications[0] / magnifications[1]  # TRIDENT: exact, unlike its int attr
    elif patch_size is None and patch_level is None and _number(attrs.get("patch_size_level0")):
        size0 = float(_number(attrs.get("patch_size_level0")))
    else:
        size0 = size * downsample
    return PatchGeometry(int(size), level, float(downsample), float(size0), note)


def _recorded_geometry(tiling: dict[str, Any]) -> PatchGeometry:
    """The geometry a wsi-engine export recorded of its store."""
    return PatchGeometry(
        int(tiling["patch_size"]),
        int(tiling.get("read_level") or 0),
        float(tiling.get("read_downsample") or 1.0),
        float(tiling["patch_size_level0"]),
    )


def _grid_step(coords: np.ndarray) -> float | None:
    """Smallest positive gap between distinct x (or y) coordinates, level-0 px."""
    gaps = [np.diff(np.unique(coords[:, axis])) for axis in (0, 1)]
    gaps = np.concatenate([g[g > 0] for g in gaps])
    return float(gaps.min()) if gaps.size else None


def store_attrs(
    source: Path,
    slide_id: str,
    coords: np.ndarray,
    attrs: dict[str, Any],
    slide: Path | None,
    mpp: float | None,
    shard_patches: int,
    patch_size: int | None = None,
    patch_level: int | None = None,
    engine: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """(the ``slide``, ``tiling`` and ``tissue`` sections of an imported store, a note on the geometry)."""
    reader = None
    if slide is not None:
        reader = open_slide(slide, mpp=mpp, require_mpp=False)
    engine = engine or {}
    try:
        if engine.get("tiling") and patch_size is None and patch_level is None:
            geometry = _recorded_geometry(engine["tiling"])
        else:
            geometry = patch_geometry(attrs, coords, reader, patch_size, patch_level, source)
        if reader is None and engine.get("slide") and mpp is None:
            slide_section = {**engine["slide"], "id": slide_id}
        else:
            slide_section = _slide_section(source, slide_id, coords, attrs, reader, mpp, geometry)
    finally:
        if reader is not None:
            reader.close()
    mpp0 = slide_section["mpp"][0]
    tiling = {
        "patch_size": geometry.patch_size,
        "target_mpp": mpp0 * geometry.size0 / geometry.patch_size,
        "patch_size_level0": geometry.size0,
        "overlap": int(_number(attrs.get("overlap")) or 0),
        "min_tissue_fraction": None,
        "read_level": geometry.level,
        "read_downsample": geometry.downsample,
        "read_window": int(round(geometry.size0 / geometry.downsample)),
        "pixel_mode": "none",
        "jpeg_quality": None,
        "shard_patches": shard_patches,
        "imported_from": str(source),
    }
    tissue = {
        "source": "imported",
        "file": str(source),
        "tissue_fraction": "unknown (recorded as 1)",
    }
    return {"slide": slide_section, "tiling": tiling, "tissue": tissue}, geometry.note


def _slide_section(
    source: Path,
    slide_id: str,
    coords: np.ndarray,
    attrs: dict[str, Any],
    reader: Any,
    mpp: float | None,
    geometry: PatchGeometry,
) -> dict[str, Any]:
    magnification = _number(attrs.get("level0_magnification"))
    mpp0 = (
        mpp
        or (reader.mpp.x if reader is not None and reader.mpp else None)
        or _number(attrs.get("mpp"))
    )
    if mpp0 is None and magnification:
        mpp0 = 10.0 / magnification  # the usual 10x ≈ 1 µm/px convention (TRIDENT's too)
    if mpp0 is None:
        raise DataError(
            "the level-0 µm/px is unknown",
            path=source,
            hint="pass --mpp, or --slides with the slide files",
        )
    if reader is not None:
        section = slide_attrs(reader, slide_id)
        if not section["mpp"]:
            section["mpp"], section["mpp_source"] = [mpp0, mpp0], "imported"
        return section
    level_dim = attrs.get("level_dim")
    if attrs.get("level0_width") and attrs.get("level0_height"):
        dims = [int(attrs["level0_width"]), int(attrs["level0_height"])]
    elif level_dim is not None and geometry.level == 0:
        dims = [int(d) for d in np.asarray(level_dim).reshape(-1)[:2]]
    elif level_dim is not None:
        dims = [
            int(round(float(d) * geometry.downsample))
            for d in np.asarray(level_dim).reshape(-1)[:2]
        ]
    else:  # a lower bound: the extent of the patches
        extent = coords.max(axis=0) + geometry.size0 if len(coords) else np.zeros(2)
        dims = [int(np.ceil(v)) for v in extent]
    return {
        "id": slide_id,
        "path": None,
        "size_bytes": None,
        "fingerprint": None,
        "vendor": "unknown",
        "format": "unknown",
        "backend": None,
        "dimensions": dims,
        "level_count": None,
        "mpp": [mpp0, mpp0],
        "mpp_source": "imported",
        "objective_power": magnification,
    }
