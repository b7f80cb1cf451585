"""``wsi-engine tasks``: list task prompt sets, or show and validate one."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from wsi_engine.errors import ConfigError


def tasks_command(
    name: str | None = typer.Argument(
        None, help="Task name (configs/tasks/) or YAML file to show and validate."
    ),
    encoder: str | None = typer.Option(
        None, "--encoder", help="Check prompt lengths against this encoder's text context."
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Encoder weights file (for its tokenizer)."
    ),
) -> None:
    """Without NAME: list the shipped tasks. With NAME: show its classes and prompts; with --encoder, fail if a prompt is too long."""
    from wsi_engine.prompts import PROMPT_FIELDS, list_tasks, load_task, validate_task

    console = Console()
    if name is None:
        table = Table(title="Task prompt sets (configs/tasks/)")
        for column in ("task", "classes", "entities", "description"):
            table.add_column(column, overflow="fold")
        for task_name in list_tasks():
            task = load_task(task_name)
            table.add_row(
                task.name, ", ".join(task.class_names), str(len(task.entities)), task.description
            )
        console.print(table)
        return
    task = load_task(name)
    table = Table(title=f"task {task.name}: {task.description}", show_lines=True)
    table.add_column("class")
    for field in PROMPT_FIELDS:
        table.add_column(field, overflow="fold")
    for cls in task.classes:
        table.add_row(cls.name, *(getattr(cls, f) for f in PROMPT_FIELDS))
    console.print(table)
    console.print(
        f"{len(task.entities)} instance entities: {', '.join(task.entity_names)}", highlight=False
    )
    if encoder is None:
        return
    from functools import partial

    from wsi_engine.encoders import load_encoder
    from wsi_engine.encoders.text import prompt_token_limit, token_lengths

    model = load_encoder(encoder, checkpoint=checkpoint)
    limit = prompt_token_limit(model)
    long = validate_task(task, limit, partial(token_lengths, model))
    if long:
        raise ConfigError(
            f"{len(long)} prompt(s) longer than the {limit}-token text context of '{model.encoder_id}': "
            + "; ".join(str(p) for p in long[:5]),
            hint="shorten them; the text encoder would truncate them",
        )
    console.print(
        f"every prompt fits the {limit}-token text context of '{model.encoder_id}'", highlight=False
    )
