"""The batch pipeline: ``wsi-engine run`` and ``wsi-engine demo``.

The names below are imported on first use, so ``import wsi_engine.pipeline.preflight``
(which ``wsi-engine tile`` uses) does not load torch, the encoders and the heatmaps.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsi_engine.pipeline.config import PipelineConfig
    from wsi_engine.pipeline.run import PipelineReport, run_pipeline

_HOMES = {"PipelineConfig": "config", "PipelineReport": "run", "run_pipeline": "run"}


def load_pipeline_config(path: str | Path | None, overrides: dict[str, Any]) -> PipelineConfig:
    """``path`` (default ``configs/pipeline.yaml``, else built-in defaults) with command-line ``overrides``."""
    from wsi_engine.config import configs_dir, read_yaml, validate, with_overrides
    from wsi_engine.pipeline.config import PipelineConfig

    source = Path(path) if path is not None else configs_dir() / "pipeline.yaml"
    if path is None and not source.is_file():
        config = PipelineConfig()
    else:
        config = validate(PipelineConfig, read_yaml(source), source)
    return with_overrides(config, overrides)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'wsi_engine.pipeline' has no attribute {name!r}")
    return getattr(import_module(f"wsi_engine.pipeline.{_HOMES[name]}"), name)


__all__ = ["PipelineConfig", "PipelineReport", "load_pipeline_config", "run_pipeline"]
