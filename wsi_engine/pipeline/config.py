"""Configuration of ``wsi-engine run``: which tiling, encoder and heatmap settings each slide goes through.

Each stage's settings model lives with its stage; this module composes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from wsi_engine.config import StrictModel, configs_dir
from wsi_engine.config.overrides import layered_settings
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


def pipeline_file(path: str | Path | None) -> Path | None:
    """``path``, else ``configs/pipeline.yaml`` when there is one (else built-in defaults: None)."""
    if path is not None:
        return Path(path)
    default = configs_dir() / "pipeline.yaml"
    return default if default.is_file() else None


def load_pipeline_config(path: str | Path | None, overrides: dict[str, Any]) -> PipelineConfig:
    """The settings of :func:`pipeline_file` with ``overrides`` ({dotted key: value}, ``None``: not given)."""
    return layered_settings(PipelineConfig, file=pipeline_file(path), explicit=overrides)


__all__ = [
    "EmbedSettings",
    "HeatmapSettings",
    "PipelineConfig",
    "load_pipeline_config",
    "pipeline_file",
]
