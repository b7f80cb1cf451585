"""Settings of the embedding stage as ``wsi-engine run`` takes them (``embed:`` in the pipeline YAML)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from wsi_engine.config import StrictModel


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


class EmbedJobSettings(EmbedSettings):
    """``wsi-engine embed``: the stage's settings and the command's own (any CUDA device, the stored
    dtype, GPU count)."""

    device: str = Field("auto", description="auto, cuda, cuda:N or cpu")
    dtype: Literal["float16", "float32"] = "float16"
    gpus: int | None = Field(None, ge=1, description="GPUs to use (default: all visible)")
