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
    console: Console,
    *,
    label: str = "{task.description:>8}",
    transient: bool = True,
    rate: bool = False,
) -> Progress:
    """Bars with ``label``, done of total, (``rate``: the task's ``rate`` field,) elapsed and
    remaining time (one per stage by default)."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        *([TextColumn("{task.fields[rate]}")] if rate else []),
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


class PatchRate(StageObserver):
    """One bar of patches (planned and done, any slide) with the patches/s so far."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = progress.add_task("patches", total=0, rate="")

    def work_planned(self, stage: str, slide_id: str, n_patches: int) -> None:
        total = self.progress.tasks[0].total or 0
        self.progress.update(self.task, total=total + n_patches)

    def work_done(self, stage: str, slide_id: str, n_patches: int) -> None:
        self.progress.advance(self.task, n_patches)
        elapsed = self.progress.tasks[0].elapsed or 0.0
        done = self.progress.tasks[0].completed
        if elapsed > 0:
            self.progress.update(self.task, rate=f"{done / elapsed:,.0f} patches/s")
