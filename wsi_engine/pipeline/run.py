"""``wsi-engine run``: slides → stores → features → predictions → heatmaps, resumable and fault-isolated.

Each slide goes through the stages ``tile``, ``embed`` and, when a fitted run
is given, ``predict`` and ``heatmap``. ``OUT/manifest.json``
(:mod:`.manifest`) records per slide and stage a key built from the stage's
parameters, its input's fingerprint and the previous stage's key; a stage
whose record is ``done`` with the same key is skipped, so changing a
parameter re-runs that stage and the ones after it, nothing else.

Outputs (every write atomic, see docs/store.md):

* ``OUT/stores/<slide_id>.zarr`` and ``OUT/stores/tiling_report.csv``;
* ``OUT/predictions.csv`` (slide-level probabilities, with a fitted run);
* ``OUT/heatmaps/`` (overlays, GeoJSON, pyramidal TIFFs, galleries, ``report.html``);
* ``OUT/manifest.json``, ``OUT/pipeline_config.yaml`` and ``OUT/summary.json``.

A failing slide is recorded with its reason and the others go on; a plain
rerun does not retry it (unless its file changed), ``retry_failed`` retries
only the failed ones. ``OUT/.wsi-engine.lock`` keeps a second run out.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wsi_engine.atomic import atomic_output, write_json
from wsi_engine.config import write_effective_config
from wsi_engine.errors import SlideError
from wsi_engine.locks import RunLock
from wsi_engine.pipeline.config import PipelineConfig
from wsi_engine.pipeline.manifest import Manifest
from wsi_engine.slide.ids import slide_id_from_path
from wsi_engine.stage import (
    PredictRecord,
    SlideJob,
    Stage,
    StageObserver,
    StagePayload,
    StageResult,
    per_second,
)
from wsi_engine.store import store_path
from wsi_engine.training.records import StageRecord

STAGES = ("tile", "embed", "predict", "heatmap")
STORES_DIR = "stores"
HEATMAPS_DIR = "heatmaps"
PREDICTIONS_CSV = "predictions.csv"
SUMMARY_JSON = "summary.json"


@dataclass
class StageTelemetry:
    """Wall time of one stage over the run, patches it processed, and stage-specific timings (s)."""

    seconds: float = 0.0
    patches: int = 0
    details: dict[str, float] = field(default_factory=dict)

    @property
    def patches_per_s(self) -> float:
        return per_second(self.patches, self.seconds)


@dataclass
class PipelineReport:
    """Per slide and stage: ``done``, ``skipped`` (already done), ``empty``, ``failed`` or ``not-run``."""

    out_dir: Path
    status: dict[str, dict[str, str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    telemetry: dict[str, StageTelemetry] = field(default_factory=dict)
    score_id: str | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> list[str]:
        return sorted(self.errors)

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "seconds": round(self.seconds, 3),
            "score_id": self.score_id,
            "failed": self.failed,
            "errors": self.errors,
            "status": self.status,
            "telemetry": {
                stage: {**asdict(t), "patches_per_s": round(t.patches_per_s, 2)}
                for stage, t in self.telemetry.items()
            },
        }


def run_pipeline(
    inputs: list[str | Path],
    out_dir: str | Path,
    config: PipelineConfig,
    *,
    fitted_run: str | Path | None = None,
    scheduler: str | None = None,
    retry_failed: bool = False,
    observer: StageObserver | None = None,
) -> PipelineReport:
    """Take the slides named by ``inputs`` (files or folders) through every stage into ``out_dir``."""
    from wsi_engine.slide import find_slides

    began = time.perf_counter()
    out_dir = Path(out_dir)
    observer = observer or StageObserver()
    with RunLock(out_dir):
        manifest = Manifest(out_dir)
        report = PipelineReport(out_dir)
        paths = find_slides(inputs, config.recursive)
        if not paths:
            raise SlideError(
                f"no slide files found in {', '.join(map(str, inputs))}",
                hint="check the paths or use --recursive",
            )
        jobs = _select(paths, manifest, report, retry_failed)
        write_effective_config(
            out_dir,
            "pipeline_config",
            {
                "pipeline": config,
                "inputs": [str(p) for p in inputs],
                "fitted_run": str(fitted_run or ""),
            },
        )
        active = jobs
        for stage in _stages(out_dir, config, fitted_run, scheduler):
            active = run_stage(stage, active, manifest, report, observer)
        if fitted_run is not None:
            predicted = [
                j for j in jobs if report.status[j.slide_id]["predict"] in ("done", "skipped")
            ]
            report.score_id = _score_id(predicted)
            _write_predictions(out_dir / PREDICTIONS_CSV, predicted)
        report.seconds = time.perf_counter() - began
        write_json(out_dir / SUMMARY_JSON, report.to_json(), sort_keys=True)
    return report


def _stages(
    out_dir: Path, config: PipelineConfig, fitted_run: str | Path | None, scheduler: str | None
) -> list[Stage]:
    """The stages of this run, in order (predict and heatmap only with a fitted run)."""
    from wsi_engine.cluster.stages import ClusterEmbedStage, ClusterPredictStage
    from wsi_engine.encoders.stage import EmbedStage
    from wsi_engine.heatmap.stage import HeatmapStage
    from wsi_engine.mil.stage import PredictStage
    from wsi_engine.tiling.stage import TileStage

    stages: list[Stage] = [
        TileStage(out_dir / STORES_DIR, config.tiling, workers=config.workers, scheduler=scheduler),
        ClusterEmbedStage(config.embed, scheduler) if scheduler else EmbedStage(config.embed),
    ]
    if fitted_run is not None:
        predict = (
            ClusterPredictStage(fitted_run, scheduler) if scheduler else PredictStage(fitted_run)
        )
        stages += [predict, HeatmapStage(out_dir / HEATMAPS_DIR, config.heatmap)]
    return stages


def run_stage(
    stage: Stage,
    jobs: list[SlideJob],
    manifest: Manifest,
    report: PipelineReport,
    observer: StageObserver,
) -> list[SlideJob]:
    """Run ``stage`` on the ``jobs`` whose output is out of date; returns the jobs that go on.

    A job goes on when the stage is done (or was already) and its store has
    patches; an empty store ends the slide (``empty`` for the later stages).
    """
    todo, ready = [], []
    for job in jobs:
        job.keys[stage.name] = stage.key(job)
        entry = manifest.record(job.slide_id, stage.name)
        if (
            entry is not None
            and manifest.is_done(job.slide_id, stage.name, job.keys[stage.name])
            and stage.complete(job, stage.record_type.from_manifest(entry))
        ):
            job.needed = False
            _accept(job, stage, entry)
            report.status[job.slide_id][stage.name] = "skipped"
            ready.append(job)
        else:
            job.needed = True
            job.overwrite = (
                entry is not None and entry.status == "done" and entry.key != job.keys[stage.name]
            )
            todo.append(job)
    selected = stage.select(todo, ready)
    observer.stage_started(stage.name, len(selected))
    telemetry = report.telemetry.setdefault(stage.name, StageTelemetry())
    if not selected:
        return _going_on(ready, report)
    chosen = {job.slide_id for job in selected}
    going = [job for job in ready if job.slide_id not in chosen]
    by_id = {job.slide_id: job for job in selected}
    began = time.perf_counter()
    for result in stage.run(selected, observer):
        job = by_id.pop(result.slide_id)
        if result.failed:
            _fail(report, manifest, job.slide_id, stage.name, result.reason, job.path)
        else:
            done = manifest.update(
                job.slide_id,
                stage.name,
                status="done",
                key=job.keys[stage.name],
                **{"seconds": round(result.seconds, 3), **_fields(result.record)},
            )
            _accept(job, stage, done)
            report.status[job.slide_id][stage.name] = result.status
            telemetry.patches += result.processed
            going.append(job)
        observer.slide_finished(result)
    for job in by_id.values():  # a stage that forgot a slide: a bug, but never a silent pass
        _fail(report, manifest, job.slide_id, stage.name, "no result from the stage", job.path)
        observer.slide_finished(StageResult.failure(stage.name, job.slide_id, "no result"))
    telemetry.seconds += time.perf_counter() - began
    for name, value in stage.details.items():
        telemetry.details[name] = round(telemetry.details.get(name, 0.0) + value, 3)
    return _going_on(going, report)


def _fields(record: StagePayload | None) -> dict[str, Any]:
    """A stage's record as manifest fields (none when it recorded nothing)."""
    return {} if record is None else record.to_json()


def _accept(job: SlideJob, stage: Stage, record: StageRecord) -> None:
    """Keep what ``stage`` recorded for the later stages (the patch count, the score id...)."""
    job.records[stage.record_type] = stage.record_type.from_manifest(record)
    if record.n_patches is not None:
        job.n_patches = record.n_patches


def _going_on(jobs: list[SlideJob], report: PipelineReport) -> list[SlideJob]:
    """``jobs`` with patches, in input order; the others are ``empty`` for every later stage."""
    live = []
    for job in jobs:
        if job.n_patches:
            live.append(job)
            continue
        statuses = report.status[job.slide_id]
        for stage in STAGES[STAGES.index(_last_stage(statuses)) + 1 :]:
            statuses[stage] = "empty"
    return sorted(live, key=lambda job: job.order)


def _last_stage(statuses: dict[str, str]) -> str:
    return [stage for stage in STAGES if statuses[stage] != "not-run"][-1]


def _select(
    paths: list[Path], manifest: Manifest, report: PipelineReport, retry_failed: bool
) -> list[SlideJob]:
    """The slides this run works on; duplicates and (without ``retry_failed``) earlier failures are set aside."""
    from wsi_engine.slide.provenance import file_fingerprint

    previously_failed = set(manifest.failed_slides())
    chosen: dict[str, SlideJob] = {}
    stores = report.out_dir / STORES_DIR
    for path in paths:
        slide_id = slide_id_from_path(path)
        report.status[slide_id] = report.status.get(
            slide_id, {stage: "not-run" for stage in STAGES}
        )
        if slide_id in chosen:
            _fail(
                report,
                manifest,
                slide_id,
                "tile",
                f"slide id also used by {chosen[slide_id].path}; rename one of them",
                path,
            )
            continue
        try:
            fingerprint = file_fingerprint(path)
        except OSError as error:
            _fail(
                report, manifest, slide_id, "tile", f"cannot read the file ({error.strerror})", path
            )
            continue
        job = SlideJob(slide_id, Path(path), store_path(stores, slide_id), order=len(chosen))
        job.keys["fingerprint"] = fingerprint
        old = manifest.record(slide_id, "tile")
        changed = old is not None and old.fingerprint not in (None, fingerprint)
        if retry_failed and slide_id not in previously_failed:
            report.status[slide_id] = {stage: "skipped" for stage in STAGES}
            continue
        if not retry_failed and slide_id in previously_failed and not changed:
            report.errors[slide_id] = (
                f"failed in an earlier run: {_first_error(manifest, slide_id)} (rerun with --retry-failed)"
            )
            report.status[slide_id] = {stage: "failed" for stage in STAGES}
            continue
        if slide_id in previously_failed:
            manifest.forget_from(slide_id, list(STAGES))
        chosen[slide_id] = job
    return list(chosen.values())


def _first_error(manifest: Manifest, slide_id: str) -> str:
    for stage in STAGES:
        entry = manifest.record(slide_id, stage)
        if entry is not None and entry.status == "failed":
            return entry.error or "unknown error"
    return "unknown error"


def _fail(
    report: PipelineReport,
    manifest: Manifest,
    slide_id: str,
    stage: str,
    reason: str,
    path: Path | None = None,
) -> None:
    report.errors[slide_id] = f"{stage}: {reason}"
    report.status.setdefault(slide_id, {s: "not-run" for s in STAGES})[stage] = "failed"
    manifest.update(
        slide_id, stage, status="failed", error=reason, path=str(path) if path else None
    )


# ------------------------------------------------------------------ outputs
def _score_id(jobs: list[SlideJob]) -> str | None:
    """The score id the predict stage recorded (the first in sorted order if several)."""
    ids = sorted({str(_predicted(job).score_id) for job in jobs})
    return ids[0] if ids else None


def _predicted(job: SlideJob) -> PredictRecord:
    """What the predict stage recorded for ``job`` (score id, class names, probabilities)."""
    return job.recorded(PredictRecord)


def _write_predictions(path: Path, jobs: list[SlideJob]) -> None:
    """``OUT/predictions.csv``: one row per predicted slide, from the predict stage's records."""
    records = [(job.slide_id, _predicted(job)) for job in sorted(jobs, key=lambda j: j.slide_id)]
    class_names = list(records[0][1].class_names or []) if records else []
    rows = [
        {"slide_id": slide_id, "predicted": record.predicted}
        | {
            f"prob_{c}": f"{p:.6f}"
            for c, p in zip(record.class_names or [], record.probs or [], strict=True)
        }
        for slide_id, record in records
    ]
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["slide_id", "predicted", *[f"prob_{c}" for c in class_names]]
        )
        writer.writeheader()
        writer.writerows(rows)
