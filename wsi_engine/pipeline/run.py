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
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wsi_engine.config import write_effective_config
from wsi_engine.errors import SlideError, WsiEngineError
from wsi_engine.pipeline.config import PipelineConfig
from wsi_engine.pipeline.lock import RunLock
from wsi_engine.pipeline.manifest import Manifest, stage_key
from wsi_engine.store import PatchStore, slide_id_from_path, store_path

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
        return self.patches / self.seconds if self.seconds > 0 else 0.0


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


class PipelineObserver:
    """Progress hooks (the CLI draws bars); no-ops here."""

    def stage_started(self, stage: str, n_slides: int) -> None:
        """``n_slides`` slides enter ``stage`` (0: all skipped)."""

    def slide_advanced(self, stage: str, slide_id: str) -> None:
        """One slide finished ``stage`` (any status)."""


@dataclass
class _Slide:
    slide_id: str
    path: Path
    keys: dict[str, str] = field(default_factory=dict)
    n_patches: int = 0


def run_pipeline(
    inputs: list[str | Path],
    out_dir: str | Path,
    config: PipelineConfig,
    *,
    fitted_run: str | Path | None = None,
    scheduler: str | None = None,
    retry_failed: bool = False,
    observer: PipelineObserver | None = None,
) -> PipelineReport:
    """Take the slides named by ``inputs`` (files or folders) through every stage into ``out_dir``."""
    from wsi_engine.slide import find_slides

    began = time.perf_counter()
    out_dir = Path(out_dir)
    observer = observer or PipelineObserver()
    with RunLock(out_dir):
        manifest = Manifest(out_dir)
        report = PipelineReport(out_dir)
        paths = find_slides(inputs, config.recursive)
        if not paths:
            raise SlideError(
                f"no slide files found in {', '.join(map(str, inputs))}",
                hint="check the paths or use --recursive",
            )
        slides = _select(paths, manifest, report, retry_failed)
        write_effective_config(
            out_dir,
            "pipeline_config",
            {
                "pipeline": config,
                "inputs": [str(p) for p in inputs],
                "fitted_run": str(fitted_run or ""),
            },
        )
        stages: list[Callable[..., list[_Slide]]] = [_tile, _embed]
        if fitted_run is not None:
            stages += [_predict, _heatmap]
        active = slides
        for function in stages:
            active = function(
                active, config, manifest, report, observer, scheduler=scheduler, run_dir=fitted_run
            )
        if fitted_run is not None:
            _write_predictions(
                out_dir,
                [
                    s
                    for s in slides
                    if report.status[s.slide_id].get("predict") in ("done", "skipped")
                ],
                report,
            )
        report.seconds = time.perf_counter() - began
        _write_json(out_dir / SUMMARY_JSON, report.to_json())
    return report


def _select(
    paths: list[Path], manifest: Manifest, report: PipelineReport, retry_failed: bool
) -> list[_Slide]:
    """The slides this run works on; duplicates and (without ``retry_failed``) earlier failures are set aside."""
    from wsi_engine.tiling.provenance import file_fingerprint

    previously_failed = set(manifest.failed_slides())
    chosen: dict[str, _Slide] = {}
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
        slide = _Slide(slide_id, Path(path))
        slide.keys["fingerprint"] = fingerprint
        old = manifest.record(slide_id, "tile") or {}
        changed = old.get("fingerprint") not in (None, fingerprint)
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
        chosen[slide_id] = slide
    return list(chosen.values())


def _first_error(manifest: Manifest, slide_id: str) -> str:
    for stage in STAGES:
        record = manifest.record(slide_id, stage) or {}
        if record.get("status") == "failed":
            return str(record.get("error", "unknown error"))
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


def _todo(
    slides: list[_Slide],
    stage: str,
    manifest: Manifest,
    report: PipelineReport,
    output_ok: Callable[[_Slide], bool],
) -> tuple[list[_Slide], list[_Slide]]:
    """Split ``slides`` into (to run, with ``overwrite`` flag set for changed keys) and already done."""
    run, done = [], []
    for slide in slides:
        if manifest.is_done(slide.slide_id, stage, slide.keys[stage]) and output_ok(slide):
            report.status[slide.slide_id][stage] = "skipped"
            done.append(slide)
        else:
            run.append(slide)
    return run, done


def _changed(slide: _Slide, stage: str, manifest: Manifest) -> bool:
    """True when the stage ran before with other parameters or inputs (its output must be replaced)."""
    record = manifest.record(slide.slide_id, stage) or {}
    return record.get("status") == "done" and record.get("key") != slide.keys[stage]


# ------------------------------------------------------------------ stages
def _tile(
    slides, config: PipelineConfig, manifest, report, observer, *, scheduler, run_dir
) -> list[_Slide]:
    from wsi_engine.tiling import tile_slides

    stores = report.out_dir / STORES_DIR
    for slide in slides:
        slide.keys["tile"] = stage_key(
            "tile", config.tiling.model_dump(mode="json"), slide.keys["fingerprint"]
        )
    todo, ready = _todo(
        slides, "tile", manifest, report, lambda s: store_path(stores, s.slide_id).is_dir()
    )
    observer.stage_started("tile", len(todo))
    telemetry = report.telemetry.setdefault("tile", StageTelemetry())
    began = time.perf_counter()
    for overwrite in (False, True):
        group = [s for s in todo if _changed(s, "tile", manifest) == overwrite]
        if not group:
            continue
        tiled = tile_slides(
            [s.path for s in group],
            stores,
            config.tiling,
            workers=config.workers,
            scheduler=scheduler,
            overwrite=overwrite,
        )
        by_path = {Path(r.path).resolve(): r for r in tiled.results}
        for slide in group:
            result = by_path.get(slide.path.resolve())
            if result is None or result.status == "failed":
                _fail(
                    report,
                    manifest,
                    slide.slide_id,
                    "tile",
                    result.reason if result else "not tiled",
                    slide.path,
                )
            else:
                n_patches = PatchStore.open(store_path(stores, slide.slide_id)).n_patches
                report.status[slide.slide_id]["tile"] = "done" if n_patches else "empty"
                telemetry.patches += result.new_patches
                manifest.update(
                    slide.slide_id,
                    "tile",
                    status="done",
                    key=slide.keys["tile"],
                    fingerprint=slide.keys["fingerprint"],
                    path=str(slide.path),
                    seconds=round(result.seconds, 3),
                    patches_per_s=round(result.patches_per_s, 2),
                    n_patches=n_patches,
                    new_patches=result.new_patches,
                )
                ready.append(slide)
            observer.slide_advanced("tile", slide.slide_id)
    telemetry.seconds += time.perf_counter() - began
    live = []
    for slide in ready:
        slide.n_patches = int((manifest.record(slide.slide_id, "tile") or {}).get("n_patches", 0))
        if slide.n_patches == 0:
            for stage in STAGES[1:]:
                report.status[slide.slide_id][stage] = "empty"
        else:
            live.append(slide)
    return live


def _embed(
    slides, config: PipelineConfig, manifest, report, observer, *, scheduler, run_dir
) -> list[_Slide]:
    from wsi_engine.encoders.config import load_encoder_config
    from wsi_engine.encoders.embed import embed_stores

    settings = config.embed
    encoder_config = load_encoder_config(settings.encoder)
    encoder_id = encoder_config.encoder_id
    weights = _weights_identity(settings.checkpoint)
    stores = report.out_dir / STORES_DIR
    for slide in slides:
        slide.keys["embed"] = stage_key(
            "embed", encoder_config.model_dump(mode="json"), weights, slide.keys["tile"]
        )
    todo, ready = _todo(
        slides,
        "embed",
        manifest,
        report,
        lambda s: PatchStore.open(store_path(stores, s.slide_id)).has_features(encoder_id),
    )
    observer.stage_started("embed", len(todo))
    telemetry = report.telemetry.setdefault("embed", StageTelemetry())
    for overwrite in (False, True):
        group = [s for s in todo if _changed(s, "embed", manifest) == overwrite]
        if not group:
            continue
        arguments = dict(
            checkpoint=settings.checkpoint,
            device=settings.device,
            batch_size=settings.batch_size,
            precision=settings.precision,
            workers=settings.workers,
            overwrite=overwrite,
        )
        paths = [str(store_path(stores, s.slide_id)) for s in group]
        if scheduler:  # an existing cluster: one task per store, on GPU workers if any
            from wsi_engine.cluster.embed import embed_on_cluster
            from wsi_engine.tiling import dask_client

            with dask_client(None, scheduler) as client:
                embedded = embed_on_cluster(client, paths, settings.encoder, **arguments)
        else:
            embedded = embed_stores(paths, settings.encoder, **arguments)
        telemetry.seconds += embedded.wall_seconds
        telemetry.patches += embedded.embedded
        for name in (
            "load_seconds",
            "read_seconds",
            "wait_seconds",
            "model_seconds",
            "write_seconds",
        ):
            telemetry.details[name] = round(
                telemetry.details.get(name, 0.0) + getattr(embedded, name), 3
            )
        by_id = {r.slide_id: r for r in embedded.results}
        for slide in group:
            result = by_id.get(slide.slide_id)
            if result is None or result.status == "failed":
                _fail(
                    report,
                    manifest,
                    slide.slide_id,
                    "embed",
                    result.reason if result else "not embedded",
                    slide.path,
                )
            else:
                report.status[slide.slide_id]["embed"] = "done"
                manifest.update(
                    slide.slide_id,
                    "embed",
                    status="done",
                    key=slide.keys["embed"],
                    encoder_id=encoder_id,
                    seconds=round(result.seconds, 3),
                    patches_per_s=round(result.embedded / result.seconds, 2)
                    if result.seconds > 0
                    else None,
                    device=embedded.device_name,
                    precision=embedded.precision,
                )
                ready.append(slide)
            observer.slide_advanced("embed", slide.slide_id)
    return ready


def _weights_identity(checkpoint: str | None) -> list[Any]:
    if not checkpoint:
        return []
    stat = os.stat(checkpoint) if os.path.exists(checkpoint) else None
    return [
        str(Path(checkpoint).resolve()),
        stat.st_size if stat else None,
        stat.st_mtime_ns if stat else None,
    ]


def _predict(
    slides, config: PipelineConfig, manifest, report, observer, *, scheduler, run_dir
) -> list[_Slide]:
    from wsi_engine.mil.rundir import read_run

    run_dir = Path(run_dir)
    run = read_run(run_dir)
    run_key = stage_key(run)
    stores = report.out_dir / STORES_DIR
    for slide in slides:
        slide.keys["predict"] = stage_key("predict", run_key, slide.keys["embed"])
    score_ids: set[str] = set()
    todo, ready = _todo(
        slides,
        "predict",
        manifest,
        report,
        lambda s: bool(PatchStore.open(store_path(stores, s.slide_id)).score_runs()),
    )
    for slide in ready:
        score_ids.add(str((manifest.record(slide.slide_id, "predict") or {}).get("score_id")))
    observer.stage_started("predict", len(todo))
    telemetry = report.telemetry.setdefault("predict", StageTelemetry())
    began = time.perf_counter()
    score_id, failures = _predict_stores(run_dir, todo, report.out_dir, observer, scheduler)
    for slide in todo:
        if slide.slide_id in failures:
            _fail(report, manifest, slide.slide_id, "predict", failures[slide.slide_id], slide.path)
            continue
        score_ids.add(str(score_id))
        report.status[slide.slide_id]["predict"] = "done"
        telemetry.patches += slide.n_patches
        manifest.update(
            slide.slide_id, "predict", status="done", key=slide.keys["predict"], score_id=score_id
        )
        ready.append(slide)
    telemetry.seconds += time.perf_counter() - began
    report.score_id = sorted(score_ids - {"None"})[0] if score_ids - {"None"} else None
    return ready


def _predict_stores(
    run_dir: Path,
    slides: list[_Slide],
    out_dir: Path,
    observer: PipelineObserver,
    scheduler: str | None = None,
) -> tuple[str | None, dict[str, str]]:
    """(score id, {slide_id: reason}) of one prediction over the stores of ``slides``.

    The run's models are loaded once (once per store on a cluster: one task
    each); a store that cannot be predicted fails only its slide, an unusable
    run fails them all.
    """
    from wsi_engine.mil.predict import predict

    if not slides:
        return None, {}
    scratch = out_dir / ".predict-scratch.csv"
    try:
        if scheduler:
            from wsi_engine.cluster.predict import predict_on_cluster
            from wsi_engine.tiling import dask_client

            with dask_client(None, scheduler) as client:
                result = predict_on_cluster(
                    client,
                    run_dir,
                    [store_path(out_dir / STORES_DIR, s.slide_id) for s in slides],
                    scratch,
                    on_slide=lambda slide_id: observer.slide_advanced("predict", slide_id),
                )
        else:
            result = predict(
                run_dir,
                [store_path(out_dir / STORES_DIR, s.slide_id) for s in slides],
                scratch,
                on_slide=lambda slide_id: observer.slide_advanced("predict", slide_id),
            )
    except WsiEngineError as error:
        for slide in slides:
            observer.slide_advanced("predict", slide.slide_id)
        return None, {s.slide_id: str(error) for s in slides}
    finally:
        scratch.unlink(missing_ok=True)
    return result.score_id, result.failures


def _heatmap(
    slides, config: PipelineConfig, manifest, report, observer, *, scheduler, run_dir
) -> list[_Slide]:
    from wsi_engine.heatmap import make_heatmaps

    settings = config.heatmap
    heatmaps = report.out_dir / HEATMAPS_DIR
    for slide in slides:
        slide.keys["heatmap"] = stage_key(
            "heatmap", settings.model_dump(mode="json"), slide.keys["predict"]
        )
    todo, ready = _todo(
        slides, "heatmap", manifest, report, lambda s: (heatmaps / s.slide_id).is_dir()
    )
    report_missing = "html" in settings.formats and not (heatmaps / "report.html").is_file()
    if not todo and not report_missing:
        observer.stage_started("heatmap", 0)
        return ready
    # The cohort report lists every slide, so a change to any slide re-renders the cohort.
    observer.stage_started("heatmap", len(slides))
    telemetry = report.telemetry.setdefault("heatmap", StageTelemetry())
    began = time.perf_counter()
    stores = report.out_dir / STORES_DIR
    rendered = make_heatmaps(
        [store_path(stores, s.slide_id) for s in slides],
        report.score_id,
        heatmaps,
        formats=settings.formats,
        scale=settings.scale,
        top_k=settings.top_k,
        smooth_um=settings.smooth_um,
        on_slide=lambda r: observer.slide_advanced("heatmap", r.slide_id),
    )
    by_id = {r.slide_id: r for r in rendered.slides}
    ready = []
    for slide in slides:
        result = by_id.get(slide.slide_id)
        if result is None or result.error is not None:
            _fail(
                report,
                manifest,
                slide.slide_id,
                "heatmap",
                str(result.error) if result else "not rendered",
                slide.path,
            )
            continue
        report.status[slide.slide_id]["heatmap"] = "done" if slide in todo else "skipped"
        telemetry.patches += slide.n_patches
        manifest.update(
            slide.slide_id,
            "heatmap",
            status="done",
            key=slide.keys["heatmap"],
            files=[str(f) for f in result.files],
        )
        ready.append(slide)
    telemetry.seconds += time.perf_counter() - began
    return ready


# ------------------------------------------------------------------ outputs
def _write_predictions(out_dir: Path, slides: list[_Slide], report: PipelineReport) -> None:
    """``OUT/predictions.csv`` from the scores attributes in the stores (one row per predicted slide)."""
    rows, class_names = [], []
    for slide in sorted(slides, key=lambda s: s.slide_id):
        store = PatchStore.open(store_path(out_dir / STORES_DIR, slide.slide_id))
        if report.score_id is None or not store.has_scores(report.score_id):
            continue
        _, attrs = store.read_scores(report.score_id)
        class_names = class_names or list(attrs["class_names"])
        rows.append(
            {"slide_id": slide.slide_id, "predicted": attrs["predicted_class"]}
            | {
                f"prob_{c}": f"{p:.6f}"
                for c, p in zip(attrs["class_names"], attrs["slide_probs"], strict=True)
            }
        )
    path = out_dir / PREDICTIONS_CSV
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["slide_id", "predicted", *[f"prob_{c}" for c in class_names]]
        )
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True))
    os.replace(tmp, path)
