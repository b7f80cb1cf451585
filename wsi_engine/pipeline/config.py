"""Configuration of ``wsi-engine run``: which tiling, encoder and heatmap settings each slide goes through.

Each stage's settings model lives with its stage; this module composes them.
"""

from __future__ import annotations

from pydantic import Field

from wsi_engine.config import StrictModel
from wsi_engine.encoders.settings import EmbedSettings
from wsi_engine.heatmap.settings import HeatmapSettings
from wsi_engine.tiling.config import TilingConfig


class PipelineConfig(StrictModel):
    """``configs/pipeline.yaml``: every stage's parameters; flags of ``wsi-engine run`` override them."""

    tiling: TilingConfig = Field(default_factory=TilingConfig)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    heatmap: HeatmapSettings = Field(default_factory=HeatmapSettings)
    workers: int | None = Field(
        None, ge=1, description="tiling worker processes (default: by cores)"
    )
    recursive: bool = False


__all__ = ["EmbedSettings", "HeatmapSettings", "PipelineConfig"]
