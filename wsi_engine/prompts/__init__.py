"""Task prompt sets (language priors) and their text embeddings."""

from wsi_engine.prompts.embed import TaskEmbeddings, embed_task_prompts
from wsi_engine.prompts.priors import LanguagePriors
from wsi_engine.prompts.task import (
    PROMPT_FIELDS,
    ClassPrompts,
    LongPrompt,
    TaskPrompts,
    list_tasks,
    load_task,
    validate_task,
)

__all__ = [
    "PROMPT_FIELDS",
    "ClassPrompts",
    "LanguagePriors",
    "LongPrompt",
    "TaskEmbeddings",
    "TaskPrompts",
    "embed_task_prompts",
    "list_tasks",
    "load_task",
    "validate_task",
]
