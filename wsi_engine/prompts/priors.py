"""Whether a classifier starts from the task's prompt embeddings (language priors), and why."""

from __future__ import annotations

from dataclasses import dataclass, field

from wsi_engine.prompts.embed import TaskEmbeddings


@dataclass
class LanguagePriors:
    """Whether the prompts were embedded, why, and prompts the encoder would truncate."""

    used: bool
    note: str
    embeddings: TaskEmbeddings | None = None
    long_prompts: list[str] = field(default_factory=list)
