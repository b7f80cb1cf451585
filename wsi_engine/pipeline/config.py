"""Configuration of ``wsi-engine run``: which tiling, encoder and heatmap settings each slide goes through."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from wsi_engine.config import StrictModel
from wsi_engine.tiling.config import TilingConfig


class EmbedSettings(StrictModel):
    """The embedding stage: encoder preset and how it runs."""

    encoder: str = Field("conch_ViT-B-16", description="encoder preset name or YAML path")
    checkpoint: str | None = Field(None, description="weights file overriding the preset's")
    device: Literal["auto", "cuda", "cpu"] = "auto"
    batch_size: int = Field(64, ge=1)
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    workers: int | None = Field(
        None, ge=0, description="background decode workers (default: by cores)"
    )


class HeatmapSettings(StrictModel):
    """The heatmap stage (runs when a fitted run is given)."""

    formats: list[Literal["png", "geojson", "tiff", "html", "dicom", "dsa"]] = Field(
        default_factory=lambda: ["png", "geojson", "tiff", "html"]
    )
    scale: Literal["fixed", "percentile"] = "fixed"
    top_k: int = Field(8, ge=1)
    smooth_um: float = Field(0.0, ge=0)


class PipelineConfig(StrictModel):
    """``configs/pipeline.yaml``: every stage's parameters; flags of ``wsi-engine run`` override them."""

    tiling: TilingConfig = Field(default_factory=TilingConfig)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    heatmap: HeatmapSettings = Field(default_factory=HeatmapSettings)
    workers: int | None = Field(
        None, ge=1, description="tiling worker processes (default: by cores)"
    )
    recursive: bool = False
