"""Settings of the heatmap stage as ``wsi-engine run`` takes them (``heatmap:`` in the pipeline YAML)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from wsi_engine.config import StrictModel


class HeatmapSettings(StrictModel):
    """The heatmap stage (runs when a fitted run is given)."""

    formats: list[Literal["png", "geojson", "tiff", "html", "dicom", "dsa"]] = Field(
        default_factory=lambda: ["png", "geojson", "tiff", "html"]
    )
    scale: Literal["fixed", "percentile"] = "fixed"
    top_k: int = Field(8, ge=1)
    smooth_um: float = Field(0.0, ge=0)
