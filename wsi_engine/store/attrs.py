"""Typed, versioned attributes of a patch store: one model per section (docs/store.md).

A store's root attributes under ``wsi_engine`` are read into :class:`StoreAttrs`
(when the store is opened) and validated against it before they are written
(when tiling or an import creates the store), so every stage reads the same
typed fields instead of string keys. Sections keep unknown keys (``extra``):
an imported store records where it came from, later versions may add fields.
``schema_version`` changes when a field changes meaning or becomes required.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from wsi_engine.errors import StoreError
from wsi_engine.store import layout


class Section(BaseModel):
    """A section of the store attributes: typed known fields, unknown ones kept."""

    model_config = ConfigDict(extra="allow", frozen=True)


class SlideSection(Section):
    """``slide``: the source slide (level-0 px, µm/px); ``path`` and ``fingerprint`` unknown for imports."""

    id: str
    path: str | None = None
    """absolute path of the slide file when it was tiled"""
    size_bytes: int | None = None
    fingerprint: str | None = None
    """``sha256:<hex>`` of the file's size and first and last MiB"""
    vendor: str | None = None
    format: str | None = None
    backend: str | None = None
    """``openslide`` or ``tiffslide``: the reader that tiled it"""
    dimensions: tuple[int, int]
    """level-0 (width, height) in px"""
    level_count: int | None = None
    mpp: tuple[float, float] | None = None
    """level-0 µm/px (x, y)"""
    mpp_source: str | None = None
    """where the µm/px came from (metadata key, ``option``, ``table``, ``imported``)"""
    objective_power: float | None = None


class TilingSection(Section):
    """``tiling``: the patch grid (sizes in px at ``target_mpp`` unless ``_level0``) and pixel storage."""

    patch_size: int
    """side of a stored patch (px at ``target_mpp``)"""
    target_mpp: float
    """µm/px of the stored patches"""
    effective_mpp: float | None = None
    patch_size_level0: float
    """side of a patch in level-0 px"""
    overlap: int = 0
    """px at ``target_mpp`` shared by neighbouring patches"""
    read_level: int = 0
    read_downsample: float = 1.0
    """level-0 px per px of ``read_level``"""
    read_window: int | None = None
    """side of the region read at ``read_level`` for one patch (px)"""
    mpp_tolerance: float | None = None
    min_tissue_fraction: float | None = None
    pixel_mode: Literal["jpeg", "lossless", "none"]
    """``none``: coordinates only (pixels are cut from the slide when needed)"""
    jpeg_quality: int | None = None
    shard_patches: int
    """patches per pixel shard (and per feature block)"""


class TissueSection(Section):
    """``tissue``: how tissue was found (detection parameters, a user file, or imported)."""

    source: str | None = None


class StoreAttrs(Section):
    """The root attributes of a complete store."""

    schema_version: int
    n_patches: int
    slide: SlideSection
    tiling: TilingSection
    tissue: TissueSection = TissueSection()
    flags: list[str] = []


def read_attrs(raw: Any, path: Any) -> StoreAttrs:
    """The typed attributes of the store at ``path``; :class:`StoreError` when missing, of another version or invalid."""
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise StoreError("not a wsi-engine patch store (no schema attributes)", path=path)
    if raw["schema_version"] != layout.SCHEMA_VERSION:
        raise StoreError(
            f"store schema version {raw['schema_version']} is not supported "
            f"(this engine reads version {layout.SCHEMA_VERSION})",
            path=path,
            hint="re-tile the slide with this engine version",
        )
    try:
        return StoreAttrs.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise StoreError(
            f"invalid store attributes: {where}: {first['msg']}",
            path=path,
            hint="re-tile the slide with `wsi-engine tile --overwrite`",
        ) from error


def checked_sections(sections: dict[str, Any]) -> dict[str, Any]:
    """``sections`` (``slide``, ``tiling``, ``tissue``) after validation, as JSON-ready dicts.

    Raises ``ValueError`` for a section that does not match its model (a bug of the writer).
    """
    models: dict[str, type[BaseModel]] = {
        "slide": SlideSection,
        "tiling": TilingSection,
        "tissue": TissueSection,
    }
    for name, model in models.items():
        if name in sections:
            model.model_validate(sections[name])
    return sections
