"""Task prompt sets: the language priors of one classification task.

A task file (``configs/tasks/<name>.yaml``, or any YAML path) names the
classes in an explicit order (the order of the logits, the probability columns
and the ``attention`` columns written to stores) and gives, per class:

``label``
    the class name as a pathologist would say it (prompt level 1);
``basic``
    one plain sentence naming the class (prompt level 2);
``detailed``
    a morphological description (prompt level 3);
``bag_low`` / ``bag_high``
    a whole-slide description at low and at high resolution (the bag priors).

``entities`` lists the instance-level priors, one ``"Entity: description"``
string per pathological entity; their embeddings initialise Libra-MIL's text
prototypes. Class names must match the ``label`` column of ``labels.csv``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from wsi_engine.config.loader import StrictModel, list_presets, load_config

PROMPT_FIELDS = ("label", "basic", "detailed", "bag_low", "bag_high")
"""Per-class prompt fields, in the order used by :class:`~wsi_engine.prompts.embed.TaskEmbeddings`."""

_ENTITY = re.compile(r"^(?P<name>[^:]+?)\s*:\s*(?P<text>\S.*)$", re.DOTALL)


class ClassPrompts(StrictModel):
    """The prompts of one class."""

    name: str = Field(min_length=1, description="class name as written in labels.csv")
    label: str = Field(min_length=1)
    basic: str = Field(min_length=1)
    detailed: str = Field(min_length=1)
    bag_low: str = Field(min_length=1)
    bag_high: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value != value.strip() or "," in value:
            raise ValueError("class names must not have surrounding spaces or commas")
        return value


class TaskPrompts(StrictModel):
    """A task: ordered classes with their prompts, and the instance-level entities."""

    name: str = Field(min_length=1)
    description: str = ""
    classes: list[ClassPrompts] = Field(min_length=2)
    entities: list[str] = Field(min_length=1)

    @field_validator("entities")
    @classmethod
    def _entity_format(cls, values: list[str]) -> list[str]:
        seen: set[str] = set()
        for index, value in enumerate(values):
            match = _ENTITY.match(value.strip())
            if match is None:
                raise ValueError(
                    f"entity {index} {value!r} is not of the form 'Entity: description'"
                )
            key = match["name"].lower()
            if key in seen:
                raise ValueError(f"entity {match['name']!r} is listed twice")
            seen.add(key)
        return [v.strip() for v in values]

    @model_validator(mode="after")
    def _unique_classes(self) -> TaskPrompts:
        names = self.class_names
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"class names listed twice: {', '.join(duplicates)}")
        return self

    @property
    def class_names(self) -> list[str]:
        """Class names in logit order."""
        return [c.name for c in self.classes]

    @property
    def entity_names(self) -> list[str]:
        """The entity part of each ``"Entity: description"`` string."""
        return [_ENTITY.match(e)["name"] for e in self.entities]  # type: ignore[index]

    def prompts(self, field: str) -> list[str]:
        """The ``field`` prompt of every class, in class order (``field`` in :data:`PROMPT_FIELDS`)."""
        if field not in PROMPT_FIELDS:
            raise KeyError(field)
        return [getattr(c, field) for c in self.classes]


TASK_ALIASES = {"camelyon": "camelyon16", "lung": "nsclc", "kidney": "rcc", "breast": "brca"}
"""Other names of the shipped tasks (names also match case-insensitively)."""


def load_task(name_or_path: str | Path) -> TaskPrompts:
    """Load a task by preset name (``configs/tasks/<name>.yaml``, any case, or an alias) or YAML path."""
    return load_config(TaskPrompts, name_or_path, "tasks", TASK_ALIASES)


def list_tasks() -> list[str]:
    """Names of the shipped task presets."""
    return list_presets("tasks")


@dataclass(frozen=True)
class LongPrompt:
    """A prompt with more tokens than the text encoder's context (it would be truncated)."""

    where: str  # e.g. "class LUAD detailed" or "entity 3"
    tokens: int
    context_length: int

    def __str__(self) -> str:
        return f"{self.where}: {self.tokens} tokens > context {self.context_length}"


def validate_task(
    task: TaskPrompts, context_length: int, token_lengths: Callable[[list[str]], list[int]]
) -> list[LongPrompt]:
    """Prompts of ``task`` longer than ``context_length`` tokens (start/end tokens included).

    ``token_lengths`` maps texts to their token counts under the encoder's
    tokenizer (e.g. ``functools.partial(encoders.token_lengths, encoder)``).
    An empty list means every prompt fits.
    """
    places: list[str] = []
    texts: list[str] = []
    for cls in task.classes:
        for field in PROMPT_FIELDS:
            places.append(f"class {cls.name} {field}")
            texts.append(getattr(cls, field))
    for index, entity in enumerate(task.entities):
        places.append(f"entity {index}")
        texts.append(entity)
    lengths = token_lengths(texts)
    return [
        LongPrompt(where, int(n), context_length)
        for where, n in zip(places, lengths, strict=True)
        if n > context_length
    ]
