"""One shape for every stage: a per-slide result, one observer, the :class:`Stage` protocol.

Tiling, embedding, prediction and heatmaps each turn one slide's input in
the patch store into more of the store (or files beside it). Whatever a
stage does inside, what it says about a slide is one :class:`StageResult`
(``done | skipped | empty | failed``, why, how long, counts) and its progress
goes through one :class:`StageObserver`; the commands draw their bars from
those, and :mod:`wsi_engine.pipeline.run` only orders stages, consults the
manifest and records what the stages report (docs/adr/0002-stage-protocol.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, Self, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from wsi_engine.errors import describe


def stage_key(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable ``parts`` (parameters, fingerprints, upstream keys)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def per_second(count: float, seconds: float) -> float:
    """The rate ``count / seconds`` of a stage's report; 0 when no time was measured."""
    return count / seconds if seconds > 0 else 0.0


StageStatus = Literal["done", "skipped", "empty", "failed"]
STATUSES: tuple[StageStatus, ...] = ("done", "skipped", "empty", "failed")


class StagePayload(BaseModel):
    """What a stage records for one slide, for the manifest and the later stages.

    Each stage has its own model below; :meth:`to_json` is the manifest's layout (the keys
    a stage set, ``None`` included, and no others).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)

    @classmethod
    def from_manifest(cls, entry: BaseModel) -> Self:
        """This stage's payload out of its manifest record (``StageRecord``: a stage skipped as
        up to date)."""
        kept = entry.model_dump(include=set(cls.model_fields), exclude_unset=True)
        return cls.model_validate(kept)


class TileRecord(StagePayload):
    """``tile``: patches in the store, written by this run, their rate (patches/s), the slide file."""

    n_patches: int | None = None
    new_patches: int | None = None
    patches_per_s: float | None = None
    fingerprint: str | None = None
    path: str | None = None


class EmbedRecord(StagePayload):
    """``embed``: the features' encoder id, patches/s, the device and precision they ran on."""

    encoder_id: str | None = None
    patches_per_s: float | None = None
    device: str | None = None
    precision: str | None = None


class PredictRecord(StagePayload):
    """``predict``: the score id, class names, slide probabilities (in class order), predicted class."""

    score_id: str | None = None
    class_names: list[str] | None = None
    probs: list[float] | None = None
    predicted: str | None = None


class HeatmapRecord(StagePayload):
    """``heatmap``: the files written for the slide."""

    files: list[str] | None = None


P = TypeVar("P")
"""A stage's record type (a :class:`StagePayload`; a command's own row for the predict helpers)"""
Q = TypeVar("Q", bound=StagePayload)


@dataclass
class StageResult(Generic[P]):
    """What one stage did to one slide (the one result type every stage reports)."""

    stage: str
    """``tile``, ``embed``, ``predict``, ``heatmap`` (or a command's own stage name)"""
    slide_id: str
    status: StageStatus
    """``done`` (output written), ``skipped`` (already complete), ``empty`` (complete, no
    patch) or ``failed``"""
    reason: str = ""
    """why it failed, was skipped or is empty (one line)"""
    category: str = ""
    """class name of the error of a failure (``StoreError``...), '' when unknown"""
    seconds: float = 0.0
    """the slide's wall time in the stage (s)"""
    counts: dict[str, int] = field(default_factory=dict)
    """``patches`` in the store, ``processed`` by this run"""
    record: P | None = None
    """stage-specific facts the manifest keeps (:class:`TileRecord`...); ``None`` when failed"""

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def patches(self) -> int:
        """Patches in the slide's store (0 when unknown)."""
        return int(self.counts.get("patches", 0))

    @property
    def processed(self) -> int:
        """Patches this run processed for the slide (tiled, encoded, scored)."""
        return int(self.counts.get("processed", 0))

    @classmethod
    def failure(
        cls, stage: str, slide_id: str, error: BaseException | str, seconds: float = 0.0
    ) -> StageResult[Any]:
        """A ``failed`` result: ``error``'s one-line description (:func:`~wsi_engine.errors.describe`,
        its category first) and class name."""
        if isinstance(error, str):
            return cls(stage, slide_id, "failed", error, "", seconds)
        return cls(stage, slide_id, "failed", describe(error), type(error).__name__, seconds)


class StageObserver:
    """Progress of any stage; every hook is called in the caller's thread and does nothing here.

    A command subclasses it to draw bars; the pipeline forwards its stages' hooks.
    """

    def stage_started(self, stage: str, n_slides: int) -> None:
        """``n_slides`` slides enter ``stage`` (0: nothing to do)."""

    def work_planned(self, stage: str, slide_id: str, n_patches: int) -> None:
        """``n_patches`` more patches of ``slide_id`` are to be processed by ``stage``."""

    def work_done(self, stage: str, slide_id: str, n_patches: int) -> None:
        """``n_patches`` more patches of ``slide_id`` were processed (``slide_id`` may be ``""``)."""

    def slide_finished(self, result: StageResult) -> None:
        """One slide left ``result.stage`` (any status)."""


@dataclass
class SlideJob:
    """A slide as the orchestrator hands it to a stage.

    ``keys``: the stage keys computed so far (``fingerprint`` of the file, then
    one per stage). ``overwrite``: the stage ran before with another key, its
    output must be replaced. ``needed``: the slide's own output is out of date
    (a cohort stage may still be given slides that are not).
    """

    slide_id: str
    path: Path
    store: Path
    keys: dict[str, str] = field(default_factory=dict)
    records: dict[type[StagePayload], StagePayload] = field(default_factory=dict)
    """what each earlier stage recorded for this slide, by record type (:meth:`recorded`)"""
    n_patches: int = 0
    order: int = 0
    """position in the run's input (results are kept in this order)"""
    overwrite: bool = False
    needed: bool = True

    def recorded(self, kind: type[Q]) -> Q:
        """What the earlier stage of record type ``kind`` recorded (KeyError: it did not run)."""
        return cast(Q, self.records[kind])


class Stage(Protocol):
    """A step of the pipeline: its key, how to tell its output is complete, and its run."""

    name: str
    details: dict[str, float]
    """stage-wide timings of the last :meth:`run` (s), e.g. model and read time"""

    @property
    def record_type(self) -> type[StagePayload]:
        """The model of what the stage records per slide (a class attribute of each stage)."""
        ...

    def key(self, job: SlideJob) -> str:
        """What invalidates the slide's output: parameters, inputs and the previous stage's key."""
        ...

    def complete(self, job: SlideJob, record: StagePayload) -> bool:
        """Whether the output recorded as done (``record``: the manifest's, as :attr:`record_type`)
        is still there."""
        ...

    def select(self, todo: list[SlideJob], ready: list[SlideJob]) -> list[SlideJob]:
        """The slides to run, given those out of date (``todo``) and those up to date (``ready``)."""
        ...

    def run(self, jobs: list[SlideJob], observer: StageObserver) -> Iterator[StageResult[Any]]:
        """Process ``jobs``: one result per job; one bad slide never stops the others."""
        ...


class ProgressOnly(StageObserver):
    """Forwards the per-patch hooks to ``observer``; the orchestrator reports starts and results itself."""

    def __init__(self, observer: StageObserver):
        self.observer = observer

    def work_planned(self, stage: str, slide_id: str, n_patches: int) -> None:
        self.observer.work_planned(stage, slide_id, n_patches)

    def work_done(self, stage: str, slide_id: str, n_patches: int) -> None:
        self.observer.work_done(stage, slide_id, n_patches)


class HasOutcome(Protocol):
    """A stage's own per-slide report item that converts to a :class:`StageResult`."""

    slide_id: str

    def outcome(self) -> StageResult[Any]: ...


class SlideStage:
    """Defaults of a :class:`Stage`: run the out-of-date slides only, no stage-wide timings yet."""

    name: str

    def __init__(self) -> None:
        self.details: dict[str, float] = {}

    def select(self, todo: list[SlideJob], ready: list[SlideJob]) -> list[SlideJob]:
        return todo


def matched(
    stage: str, jobs: list[SlideJob], items: Iterable[HasOutcome]
) -> Iterator[tuple[SlideJob, StageResult[Any]]]:
    """Each job with its item's result (a failure when the stage's report has no item for it)."""
    by_id = {item.slide_id: item for item in items}
    for job in jobs:
        item = by_id.get(job.slide_id)
        if item is None:
            yield job, StageResult.failure(stage, job.slide_id, "no result from the stage")
        else:
            yield job, item.outcome()


def by_overwrite(jobs: list[SlideJob]) -> Iterator[tuple[bool, list[SlideJob]]]:
    """``jobs`` in two groups: (False, new or resumable outputs), then (True, outputs to replace)."""
    for overwrite in (False, True):
        group = [job for job in jobs if job.overwrite == overwrite]
        if group:
            yield overwrite, group
