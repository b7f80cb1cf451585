"""The batch pipeline: ``wsi-engine run`` and ``wsi-engine demo``; also the inputs of ``reports pair`` (:mod:`~wsi_engine.pipeline.pair_inputs`)."""

from __future__ import annotations

from wsi_engine.pipeline.config import PipelineConfig, load_pipeline_config, pipeline_file
from wsi_engine.pipeline.run import PipelineReport, run_pipeline

__all__ = [
    "PipelineConfig",
    "PipelineReport",
    "load_pipeline_config",
    "pipeline_file",
    "run_pipeline",
]
