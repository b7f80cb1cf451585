"""The CLIP-IT settings of a patch classifier (part of ``fit-patches``' configuration).

Kept apart from :mod:`wsi_engine.patch.privileged` so that the patch trainer's
configuration can name it without importing the training code.
"""

from __future__ import annotations

from pydantic import Field, model_validator

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

    @model_validator(mode="after")
    def _settings_need_corpus(self) -> PrivilegedTextConfig:
        if self.corpus is None and {"weight", "lora"} & self.model_fields_set:
            raise ValueError("--privileged-weight and the --lora options need --privileged-text")
        return self
