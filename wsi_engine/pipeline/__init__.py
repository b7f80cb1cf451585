"""The batch pipeline: ``wsi-engine run`` and ``wsi-engine demo``; also the inputs of ``reports pair`` (:mod:`~wsi_engine.pipeline.pair_inputs`).

The names below are imported on first use, so ``import wsi_engine.pipeline.preflight``
(which ``wsi-engine tile`` uses) does not load torch, the encoders and the heatmaps.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsi_engine.lazy import lazy_attributes

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


__all__ = ["PipelineConfig", "PipelineReport", "load_pipeline_config", "run_pipeline"]

__getattr__ = lazy_attributes(__name__, _HOMES)
