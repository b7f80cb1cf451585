"""Tiling parameters: the patch grid at a target µm/px, how pixels are stored, tissue detection."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from wsi_engine.config import StrictModel
from wsi_engine.tissue.config import TissueConfig


class TilingConfig(StrictModel):
    """A tiling preset (``configs/tiling/*.yaml``); command-line flags override its values."""

    patch_size: int = Field(256, ge=16, le=4096, description="patch side in px at target_mpp")
    target_mpp: float = Field(0.5, gt=0, description="µm/px of the stored patches")
    mpp_tolerance: float = Field(
        0.01,
        ge=0,
        le=0.1,
        description="a pyramid level within this relative µm/px of target_mpp is cut without resampling",
    )
    overlap: int = Field(0, ge=0, description="overlap of neighbouring patches in px at target_mpp")
    min_tissue_fraction: float = Field(
        0.25, ge=0, le=1, description="keep patches with at least this tissue"
    )
    pixel_mode: Literal["jpeg", "lossless", "none"] = Field(
        "jpeg", description="how patch pixels are stored"
    )
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality for pixel_mode 'jpeg'")
    jpeg_passthrough: bool = Field(
        True,
        description="pixel_mode 'jpeg': store a source JPEG tile unchanged where a patch is exactly one",
    )
    resample: Literal["jpeg-scaled", "area", "lanczos"] = Field(
        "jpeg-scaled",
        description="how a read window larger than patch_size is brought to it: area averaging, "
        "done by libjpeg's DCT scaling for JPEG tiles at 2, 4 or 8 to 1 (jpeg-scaled), "
        "area averaging of decoded pixels (area), or Pillow's Lanczos filter (lanczos)",
    )
    shard_patches: int = Field(128, ge=1, description="patches per shard file (one Dask task each)")
    region_size: int = Field(
        2048, ge=256, description="side in read-level px of the regions read at once"
    )
    backend: Literal["auto", "openslide", "tiffslide"] = "auto"
    tissue: TissueConfig = Field(default_factory=TissueConfig)
    mpp: float | None = Field(
        None, gt=0, description="µm/px of level 0 for every slide, overriding metadata"
    )
    mpp_table: str | None = Field(
        None, description="CSV of per-slide µm/px (slide_id,mpp or slide_id,mpp_x,mpp_y)"
    )
    max_slide_pixels: float = Field(
        1e11, gt=0, description="slides with more level-0 px (width × height) are refused"
    )
    geojson_max_vertices: int = Field(
        1_000_000, ge=3, description="tissue GeoJSON files with more polygon vertices are refused"
    )
    geojson_max_depth: int = Field(
        32, ge=2, description="tissue GeoJSON files nested deeper than this are refused"
    )

    @model_validator(mode="after")
    def _overlap_below_patch(self) -> TilingConfig:
        if self.overlap >= self.patch_size:
            raise ValueError(
                f"overlap ({self.overlap}) must be smaller than patch_size ({self.patch_size})"
            )
        return self
