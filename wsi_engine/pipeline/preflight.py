"""Checks before long work, and the plan ``run --dry-run`` prints.

Everything that would stop a run for all slides is checked first, in seconds:
inputs exist, the output folder is writable, the encoder name resolves and its
weights are on disk (when some slide still needs embedding), and a fitted run
is complete and matches the encoder. Per-slide problems (unreadable file, no
µm/px) are listed in the plan: the run records them as failures of those
slides and goes on with the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from wsi_engine.errors import (
    ConfigError,
    DataError,
    OutputError,
    SlideError,
    StoreError,
    WsiEngineError,
)


def check_inputs_exist(paths: list[Path], what: str = "slide") -> None:
    """Every path exists; else a one-line error naming it (SlideError for slides, StoreError for stores)."""
    error = SlideError if what == "slide" else StoreError
    for path in paths:
        if not Path(path).exists():
            raise error(
                f"{what} input not found", path=path, hint="check the path (typo, unmounted drive?)"
            )


def check_writable(out_dir: Path) -> None:
    """``out_dir`` (or, when it does not exist yet, its nearest existing parent) accepts new files."""
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("output path exists and is not a folder", path=out_dir,
                          hint="choose another --out")  # fmt: skip
    existing = next(p for p in (out_dir, *out_dir.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError("output folder is not writable", path=existing,
                          hint="check its permissions, or choose another --out")  # fmt: skip


def check_encoder(encoder: str, checkpoint: str | Path | None) -> tuple[str, Path]:
    """(encoder id, weights file) of ``encoder``; ConfigError for an unknown name, EncoderError for missing weights."""
    from wsi_engine.encoders import load_encoder_config
    from wsi_engine.encoders.weights import resolve_checkpoint

    config = load_encoder_config(encoder)
    return config.encoder_id, resolve_checkpoint(config, checkpoint)


def check_fitted_run(run_dir: Path, encoder_id: str) -> str:
    """The run id of the fitted run ``run_dir``; errors when it is incomplete or used other features."""
    from wsi_engine.training.records import FitRunRecord, read_run_record

    try:
        run = read_run_record(Path(run_dir), FitRunRecord, "wsi-engine fit run", "fit")
    except DataError as error:
        raise ConfigError(
            f"not a finished `wsi-engine fit` run ({error.message})",
            path=error.path or run_dir,
            hint="pass the --out folder of a completed `wsi-engine fit`",
        ) from error
    trained_on = run.encoder_id
    if trained_on != encoder_id:
        raise ConfigError(
            f"the fitted run was trained on features of '{trained_on}', this run embeds with '{encoder_id}'",
            path=run_dir,
            hint=f"pass --encoder {trained_on}, or fit a model on {encoder_id} features",
        )
    return run.run_id


@dataclass
class PlannedSlide:
    """One slide: what each stage will do (``run``, ``skip (done)``, ...) and a problem seen now."""

    slide_id: str
    path: Path
    stages: dict[str, str] = field(default_factory=dict)
    problem: str | None = None


@dataclass
class RunPlan:
    """What ``wsi-engine run`` will do; :meth:`lines` is the ``--dry-run`` text."""

    out_dir: Path
    encoder_id: str
    weights: Path | None
    fitted_run: str | None
    slides: list[PlannedSlide]

    def lines(self) -> list[str]:
        from wsi_engine.pipeline.run import HEATMAPS_DIR, PREDICTIONS_CSV, STORES_DIR

        counts: dict[str, dict[str, int]] = {}
        for slide in self.slides:
            for stage, action in slide.stages.items():
                counts.setdefault(stage, {}).setdefault(action, 0)
                counts[stage][action] += 1
        lines = [
            f"plan for {len(self.slides)} slide(s) into {self.out_dir}",
            f"encoder: {self.encoder_id}"
            + (f" (weights {self.weights})" if self.weights else " (no embedding needed)"),
            f"fitted run: {self.fitted_run or 'none (tile and embed only; pass --run to predict and draw heatmaps)'}",
            "stages: "
            + "; ".join(
                f"{stage}: " + ", ".join(f"{n} {action}" for action, n in actions.items())
                for stage, actions in counts.items()
            ),
        ]
        for slide in self.slides:
            stages = ", ".join(f"{stage} {action}" for stage, action in slide.stages.items())
            problem = f"  PROBLEM: {slide.problem}" if slide.problem else ""
            lines.append(f"  {slide.slide_id}: {stages}{problem}")
        outputs = [f"{self.out_dir / STORES_DIR}/<slide_id>.zarr", f"{self.out_dir}/manifest.json"]
        if self.fitted_run:
            outputs += [f"{self.out_dir / PREDICTIONS_CSV}", f"{self.out_dir / HEATMAPS_DIR}/"]
        lines.append("outputs: " + ", ".join(outputs))
        return lines


def plan_run(
    inputs: list[Path],
    out_dir: Path,
    config,
    *,
    fitted_run: Path | None = None,
    retry_failed: bool = False,
) -> RunPlan:
    """Check what would stop the whole run (see the module docstring) and plan each slide's stages."""
    from wsi_engine.encoders import load_encoder_config
    from wsi_engine.pipeline.manifest import Manifest
    from wsi_engine.pipeline.run import STAGES, STORES_DIR
    from wsi_engine.slide import find_slides, open_slide
    from wsi_engine.slide.ids import slide_id_from_path
    from wsi_engine.store import PatchStore, store_path

    check_inputs_exist(list(inputs))
    paths = find_slides(list(inputs), config.recursive)
    if not paths:
        raise SlideError(
            f"no slide files found in {', '.join(map(str, inputs))}",
            hint="check the paths or use --recursive",
        )
    check_writable(out_dir)
    encoder_id = load_encoder_config(config.embed.encoder).encoder_id
    run_id = check_fitted_run(fitted_run, encoder_id) if fitted_run is not None else None
    manifest = Manifest(out_dir)
    failed_before = set(manifest.failed_slides())
    stores = Path(out_dir) / STORES_DIR
    planned = []
    for path in paths:
        slide = PlannedSlide(slide_id_from_path(path), Path(path))
        planned.append(slide)
        if slide.slide_id in failed_before and not retry_failed:
            slide.stages = {s: "skip (failed before; --retry-failed)" for s in STAGES}
            continue
        store = store_path(stores, slide.slide_id)
        entry = manifest.record(slide.slide_id, "tile")
        tiled = store.is_dir() and entry is not None and entry.status == "done"
        slide.stages["tile"] = "skip (done)" if tiled else "run"
        embedded = tiled and PatchStore.open(store).has_features(encoder_id)
        slide.stages["embed"] = "skip (done)" if embedded else "run"
        if run_id is not None:
            slide.stages["predict"] = slide.stages["heatmap"] = "run"
        if not tiled:
            try:
                open_slide(path).close()
            except WsiEngineError as error:
                slide.problem = str(error)
    needs_weights = any(s.stages.get("embed") == "run" and not s.problem for s in planned)
    weights = None
    if needs_weights:
        _, weights = check_encoder(config.embed.encoder, config.embed.checkpoint)
    return RunPlan(Path(out_dir), encoder_id, weights, run_id, planned)
