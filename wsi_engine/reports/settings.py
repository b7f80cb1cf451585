"""The CLIP-IT settings of a patch classifier (part of ``fit-patches``' configuration).

Kept apart from :mod:`wsi_engine.patch.privileged` so that the patch trainer's
configuration can name it without importing the training code.
"""

from __future__ import annotations

from pydantic import Field

from wsi_engine.config.loader import StrictModel
from wsi_engine.reports.lora import LoraSettings


class PrivilegedTextConfig(StrictModel):
    """CLIP-IT settings of a patch classifier; off unless ``corpus`` is set."""

    corpus: str | None = Field(None, description="imported report corpus folder")
    weight: float = Field(1.0, ge=0, description="λ of mean(1 − cos(h_t, W h_v))")
    top_k: int = Field(
        1, ge=1, description="reports kept per patch in pairs.csv (h_t uses the best)"
    )
    text_epochs: int = Field(50, ge=1, description="epochs of the stage-1 text classifier")
    text_lr: float = Field(1e-3, gt=0, description="Adam learning rate of stage 1")
    lora: LoraSettings = Field(default_factory=LoraSettings)
