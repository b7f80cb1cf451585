"""The batch pipeline: ``wsi-engine run`` and ``wsi-engine demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wsi_engine.config import configs_dir
from wsi_engine.config.overrides import layered_settings
from wsi_engine.pipeline.config import PipelineConfig
from wsi_engine.pipeline.run import PipelineReport, run_pipeline


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
    "PipelineConfig",
    "PipelineReport",
    "load_pipeline_config",
    "pipeline_file",
    "run_pipeline",
]
