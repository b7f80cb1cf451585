"""``wsi-engine run``: a slide directory through tiling, embedding and (with a fitted run) prediction and heatmaps."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from wsi_engine.commands.options import (
    ENCODER_CHECKPOINT,
    MPP,
    MPP_TABLE,
    SCHEDULER,
    SET,
    command_settings,
)
from wsi_engine.commands.progress import StageBars, stage_progress
from wsi_engine.errors import batch_failures, exit_code_of_reason


def run_command(
    ctx: typer.Context,
    inputs: list[Path] = typer.Argument(..., help="Slide files or folders of slides."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder (stores, predictions, heatmaps, manifest)."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Pipeline YAML: the keys --set takes (default: configs/pipeline.yaml).",
    ),
    set_options: list[str] = SET,
    encoder: str | None = typer.Option(None, "--encoder", help="Encoder preset name or YAML."),
    checkpoint: Path | None = ENCODER_CHECKPOINT,
    fitted_run: Path | None = typer.Option(
        None, "--run", help="A `wsi-engine fit` run: adds predict + heatmap."
    ),
    scheduler: str | None = SCHEDULER,
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Re-attempt only the slides that failed before."
    ),
    workers: int | None = typer.Option(None, "--workers", help="Local tiling worker processes."),
    device: str | None = typer.Option(None, "--device", help="auto, cuda or cpu for embedding."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Embedding batch size."),
    patch_size: int | None = typer.Option(
        None, "--patch-size", help="Patch side in px at the target µm/px."
    ),
    mpp_target: float | None = typer.Option(
        None, "--mpp-target", help="Target µm/px of the patches."
    ),
    pixels: str | None = typer.Option(
        None, "--pixels", help="jpeg, lossless or none (coordinates only)."
    ),
    recursive: bool | None = typer.Option(
        None, "--recursive/--no-recursive", help="Search folders recursively."
    ),
    heatmap_formats: str | None = typer.Option(
        None,
        "--heatmap-formats",
        help="Comma-separated heatmap formats (png, geojson, tiff, html, dicom, dsa) \\[png,geojson,tiff,html].",
    ),
    mpp: float | None = MPP,
    mpp_table: Path | None = MPP_TABLE,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check inputs, weights and output, print the plan, and exit."
    ),
) -> None:
    """Run every stage for each slide; resumable (manifest in OUT), a failing slide never stops the batch.

    Exit code 0 when every slide completed, 1 when some failed (listed in the summary and OUT/summary.json).
    """
    from wsi_engine.pipeline import run_pipeline
    from wsi_engine.pipeline.config import PipelineConfig, pipeline_file

    settings = command_settings(
        ctx,
        PipelineConfig,
        {
            "encoder": "embed.encoder",
            "checkpoint": "embed.checkpoint",
            "device": "embed.device",
            "batch_size": "embed.batch_size",
            "patch_size": "tiling.patch_size",
            "mpp_target": "tiling.target_mpp",
            "pixels": "tiling.pixel_mode",
            "workers": "workers",
            "recursive": "recursive",
            "heatmap_formats": "heatmap.formats",
            "mpp": "tiling.mpp",
            "mpp_table": "tiling.mpp_table",
        },
        file=pipeline_file(config),
        sets=set_options,
        convert={"heatmap_formats": lambda text: text.split(",")},
    )
    from wsi_engine.pipeline.preflight import plan_run

    # everything that would stop the whole run fails here, before any slide is tiled
    plan = plan_run(inputs, out, settings, fitted_run=fitted_run, retry_failed=retry_failed)
    console = Console()
    if dry_run:
        for line in plan.lines():
            console.print(line, highlight=False, markup=False)
        return
    with stage_progress(console) as progress:
        report = run_pipeline(
            inputs,
            out,
            settings,
            fitted_run=fitted_run,
            scheduler=scheduler,
            retry_failed=retry_failed,
            observer=StageBars(progress),
        )
    print_summary(console, report)
    if report.failed:
        raise batch_failures(
            f"{len(report.failed)} of {len(report.status)} slide(s) failed",
            [exit_code_of_reason(report.errors.get(s, "")) for s in report.failed],
            len(report.status),
            path=out / "summary.json",
            hint="reasons above and in manifest.json; fix them and rerun with --retry-failed",
        )


def print_summary(console: Console, report) -> None:
    """Per-slide stage statuses, then per-stage telemetry (where the time went)."""
    from wsi_engine.pipeline.run import STAGES

    slides = Table(title=f"wsi-engine run → {report.out_dir}")
    slides.add_column("slide")
    for stage in STAGES:
        slides.add_column(stage)
    slides.add_column("problem", overflow="fold")
    colours = {"done": "green", "skipped": "cyan", "failed": "red", "empty": "yellow"}
    for slide_id in sorted(report.status):
        cells = [
            f"[{colours.get(s, 'dim')}]{s}[/]"
            for s in (report.status[slide_id][st] for st in STAGES)
        ]
        slides.add_row(slide_id, *cells, report.errors.get(slide_id, ""))
    console.print(slides)
    timing = Table(title="where the time went")
    for column in ("stage", "seconds", "patches", "patches/s", "details"):
        timing.add_column(column, justify="right" if column != "details" else "left")
    for stage, t in report.telemetry.items():
        details = ", ".join(f"{k.replace('_seconds', '')} {v:.1f}s" for k, v in t.details.items())
        timing.add_row(stage, f"{t.seconds:.1f}", str(t.patches), f"{t.patches_per_s:.1f}", details)
    console.print(timing)
    done = sum(1 for s in report.status.values() if "failed" not in s.values())
    console.print(
        f"{done} slide(s) complete, {len(report.failed)} failed, {report.seconds:.1f} s in all."
    )
