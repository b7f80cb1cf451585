"""Settings of the heatmap stage: ``heatmap:`` in the pipeline YAML, and ``wsi-engine heatmap``'s options."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from wsi_engine.config import StrictModel

Format = Literal["png", "geojson", "tiff", "html", "dicom", "dsa"]


class HeatmapSettings(StrictModel):
    """The heatmap stage (runs when a fitted run is given)."""

    formats: list[Format] = Field(default_factory=lambda: ["png", "geojson", "tiff", "html"])
    scale: Literal["fixed", "percentile"] = "fixed"
    top_k: int = Field(8, ge=1)
    smooth_um: float = Field(0.0, ge=0)


class HeatmapOptions(HeatmapSettings):
    """What :func:`wsi_engine.heatmap.make_heatmaps` draws and how: the stage's settings, the run
    whose scores are drawn, one class or all, the quantity, and a folder of slides."""

    run_id: str
    class_name: str | None = Field(None, description="one class [every class of the run]")
    quantity: Literal["auto", "probs", "attention"] = Field(
        "auto", description="probs, attention, or auto (probs when the run has them)"
    )
    slides: str | None = Field(
        None, description="folder of the slides of stores without pixels or thumbnail"
    )

    @field_validator("formats", mode="before")
    @classmethod
    def _clean(cls, value: object) -> object:
        """Names trimmed, lower-cased and once each; at least one."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            value = list(dict.fromkeys(str(f).strip().lower() for f in value if str(f).strip()))
            if not value:
                raise ValueError("no output format given")
        return value

    @field_validator("formats")
    @classmethod
    def _html_needs_png(cls, value: list[str]) -> list[str]:
        """The HTML report shows the PNG overlays: html implies png."""
        return ["png", *value] if "html" in value and "png" not in value else value
