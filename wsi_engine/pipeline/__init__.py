"""The batch pipeline: ``wsi-engine run`` and ``wsi-engine demo``; also the inputs of ``reports pair`` (:mod:`~wsi_engine.pipeline.pair_inputs`).

The names below are imported on first use, so ``import wsi_engine.pipeline.preflight``
(which ``wsi-engine tile`` uses) does not load torch, the encoders and the heatmaps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsi_engine.lazy import lazy_attributes

if TYPE_CHECKING:
    from wsi_engine.pipeline.config import PipelineConfig, load_pipeline_config, pipeline_file
    from wsi_engine.pipeline.run import PipelineReport, run_pipeline

_HOMES = {
    "PipelineConfig": "config",
    "load_pipeline_config": "config",
    "pipeline_file": "config",
    "PipelineReport": "run",
    "run_pipeline": "run",
}

__all__ = [
    "PipelineConfig",
    "PipelineReport",
    "load_pipeline_config",
    "pipeline_file",
    "run_pipeline",
]

__getattr__ = lazy_attributes(__name__, _HOMES)
