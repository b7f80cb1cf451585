"""Progress bars of the commands, all drawn from :class:`wsi_engine.stage.StageObserver` hooks."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from wsi_engine.stage import StageObserver, StageResult


def stage_progress(
    console: Console, *, label: str = "{task.description:>8}", transient: bool = True
) -> Progress:
    """Bars with ``label``, done of total, elapsed and remaining time (one per stage by default)."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


class StageBars(StageObserver):
    """A bar per stage that advances by one slide per result; ``name_slides`` shows the latest slide."""

    def __init__(self, progress: Progress, *, name_slides: bool = False):
        self.progress = progress
        self.name_slides = name_slides
        self.tasks: dict[str, int] = {}

    def stage_started(self, stage: str, n_slides: int) -> None:
        self.tasks[stage] = self.progress.add_task(
            stage, total=max(n_slides, 1), completed=0 if n_slides else 1
        )

    def slide_finished(self, result: StageResult) -> None:
        task = self.tasks.get(result.stage)
        if task is None:
            return
        if self.name_slides:
            self.progress.update(task, advance=1, description=escape(result.slide_id))
        else:
            self.progress.advance(task)
