"""Settings of ``wsi-engine predict`` (kept apart from :mod:`wsi_engine.mil.predict`, which imports torch)."""

from __future__ import annotations

from pydantic import Field

from wsi_engine.config.loader import StrictModel


class PredictSettings(StrictModel):
    """Which fold models of a fit run predict, where they run, and what is written to the stores."""

    shots: int | None = Field(
        None, ge=1, description="shot setting whose models to use [the largest]"
    )
    fold: str = Field("all", description="fold model index, or 'all' to average every fold's model")
    score_id: str | None = Field(
        None, description="scores group written in each store [<run_id>-<shots>shot-<fold>]"
    )
    write_scores: bool = Field(True, description="write per-patch scores into the stores")
    device: str = Field("auto", description="auto, cuda, cuda:N or cpu")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch [all cores]")
