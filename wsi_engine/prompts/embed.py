"""Text embeddings of a task's prompts, computed once with the encoder's text tower.

The fit command embeds the prompts, saves them as ``text_embeddings.npz`` in
the run directory, and the MIL head copies them into its parameters, so
prediction never needs the encoder again.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine.errors import DataError
from wsi_engine.prompts.task import PROMPT_FIELDS, TaskPrompts


@dataclass(frozen=True)
class TaskEmbeddings:
    """L2-normalised float32 prompt embeddings of one task (D = text embedding width).

    ``entities`` (K_t, D); ``label``, ``basic``, ``detailed``, ``bag_low``,
    ``bag_high`` (C, D) each, rows in the task's class order.
    """

    encoder_id: str
    class_names: tuple[str, ...]
    entities: np.ndarray
    label: np.ndarray
    basic: np.ndarray
    detailed: np.ndarray
    bag_low: np.ndarray
    bag_high: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.entities.shape[1])

    def levels(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """(L, C, D) stack of the per-class prompt levels ``names`` (from :data:`PROMPT_FIELDS`)."""
        return np.stack([getattr(self, n) for n in names])

    def save(self, path: str | Path) -> None:
        arrays: dict[str, Any] = {f: getattr(self, f) for f in ("entities", *PROMPT_FIELDS)}
        np.savez(
            path,
            encoder_id=np.array(self.encoder_id),
            class_names=np.array(self.class_names),
            **arrays,
        )

    @classmethod
    def load(cls, path: str | Path) -> TaskEmbeddings:
        try:
            with np.load(path, allow_pickle=False) as data:
                values = {f.name: data[f.name] for f in fields(cls)}
        except (OSError, KeyError, ValueError) as error:
            raise DataError(f"cannot read prompt embeddings ({error})", path=path) from error
        values["encoder_id"] = str(values["encoder_id"])
        values["class_names"] = tuple(str(c) for c in values["class_names"])
        return cls(**values)


def embed_task_prompts(task: TaskPrompts, encoder: Any) -> TaskEmbeddings:
    """Embed every prompt of ``task`` with ``encoder``'s text tower (one batched, cached call)."""
    from wsi_engine.encoders.text import encode_text

    per_class = [text for field in PROMPT_FIELDS for text in task.prompts(field)]
    vectors = np.asarray(encode_text(encoder, [*task.entities, *per_class]), dtype=np.float32)
    k, c = len(task.entities), len(task.classes)
    blocks = {field: vectors[k + i * c : k + (i + 1) * c] for i, field in enumerate(PROMPT_FIELDS)}
    return TaskEmbeddings(
        encoder_id=str(encoder.encoder_id),
        class_names=tuple(task.class_names),
        entities=vectors[:k],
        **blocks,
    )
