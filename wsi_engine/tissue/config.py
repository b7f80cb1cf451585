"""Tissue-detection parameters; lengths in µm and areas in µm² so presets work at any scan resolution."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from wsi_engine.config import StrictModel


class TissueConfig(StrictModel):
    """How tissue is separated from background on a low-resolution image of the slide."""

    seg_mpp: float = Field(8.0, gt=0, description="µm/px of the image segmented (about 8 µm/px)")
    method: Literal["otsu", "fixed"] = Field("otsu", description="threshold on HSV saturation")
    threshold: int | None = Field(
        None,
        ge=0,
        le=255,
        description="saturation threshold (0..255) for method 'fixed'; tissue is above it",
    )
    median_blur_um: float = Field(48.0, ge=0, description="median-filter width in µm (0 = off)")
    closing_um: float = Field(
        64.0, ge=0, description="morphological closing radius in µm (0 = off)"
    )
    min_tissue_area_um2: float = Field(
        40_000.0, ge=0, description="tissue pieces smaller than this are dropped"
    )
    min_hole_area_um2: float = Field(
        20_000.0, ge=0, description="holes smaller than this are filled"
    )
    keep_holes: bool = Field(
        True, description="keep holes of at least min_hole_area_um2 (False fills all)"
    )
    exclude_pen: bool = Field(
        True, description="remove blue/green/black pen-mark pixels (off for IHC: blue counterstain)"
    )
    exclude_dark: bool = Field(True, description="remove near-black pixels (scanner borders, dust)")

    @model_validator(mode="after")
    def _fixed_needs_threshold(self) -> TissueConfig:
        if self.method == "fixed" and self.threshold is None:
            raise ValueError("method 'fixed' needs a threshold (0..255)")
        return self
