"""``wsi-engine tile``: slides → one Zarr v3 patch store per slide, with progress and a report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wsi_engine.commands.options import MPP, MPP_TABLE, SCHEDULER, SET, command_settings
from wsi_engine.commands.progress import stage_progress
from wsi_engine.errors import batch_failures, exit_code_of_reason
from wsi_engine.stage import StageObserver

_STATUS_STYLE = {"ok": "green", "empty": "yellow", "skipped": "cyan", "failed": "bold red"}
_MAX_FAILURES_SHOWN = 20


def tile_command(
    ctx: typer.Context,
    inputs: list[Path] = typer.Argument(..., help="Slide files, or folders to search for slides."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: one <slide_id>.zarr per slide."
    ),
    config: str = typer.Option(
        "default",
        "--config",
        "-c",
        help="Tiling preset name (configs/tiling) or YAML file: the keys --set takes.",
    ),
    set_options: list[str] = SET,
    patch_size: int | None = typer.Option(
        None, "--patch-size", help="Patch side in px at --mpp-target."
    ),
    mpp_target: float | None = typer.Option(
        None, "--mpp-target", help="µm/px of the stored patches."
    ),
    overlap: int | None = typer.Option(
        None, "--overlap", help="Overlap of neighbouring patches in px."
    ),
    min_tissue: float | None = typer.Option(
        None, "--min-tissue", help="Keep patches with at least this tissue fraction (0..1)."
    ),
    pixels: str | None = typer.Option(
        None, "--pixels", help="Patch pixels: jpeg (lossy), lossless, or none (coordinates only)."
    ),
    jpeg_quality: int | None = typer.Option(
        None, "--jpeg-quality", help="JPEG quality 1-100 (--pixels jpeg)."
    ),
    shard_patches: int | None = typer.Option(
        None, "--shard-patches", help="Patches per shard file (one task each)."
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="Slide reader: auto, openslide or tiffslide."
    ),
    mpp: float | None = MPP,
    mpp_table: Path | None = MPP_TABLE,
    tissue_geojson: Path | None = typer.Option(
        None,
        "--tissue-geojson",
        help="Tissue polygons instead of detection: a file, or a folder of <slide_id>.geojson.",
    ),
    tissue_mask: Path | None = typer.Option(
        None,
        "--tissue-mask",
        help="Tissue mask images instead of detection: a file, or a folder of <slide_id>.png.",
    ),
    recursive: bool = typer.Option(
        False, "--recursive", "-r", help="Search folders' sub-folders too."
    ),
    ext: str | None = typer.Option(
        None, "--ext", help="Slide extensions to search, comma-separated: .svs,.tiff"
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        "-w",
        min=1,
        help="Worker processes of a local cluster (default: small jobs in this process, "
        "one thread per core; larger ones one process per core).",
    ),
    scheduler: str | None = SCHEDULER,
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Tile again slides whose store is complete."
    ),
) -> None:
    """Tile slides into patch stores; exit 1 if any slide failed (reasons in OUT/tiling_report.csv)."""
    from wsi_engine.config import resolve_preset
    from wsi_engine.locks import RunLock
    from wsi_engine.slide import SLIDE_EXTENSIONS
    from wsi_engine.tiling import TilingConfig, tile_slides
    from wsi_engine.tiling.pipeline import prepare_output_dir

    settings = command_settings(
        ctx,
        TilingConfig,
        {
            "patch_size": "patch_size",
            "mpp_target": "target_mpp",
            "overlap": "overlap",
            "min_tissue": "min_tissue_fraction",
            "pixels": "pixel_mode",
            "jpeg_quality": "jpeg_quality",
            "shard_patches": "shard_patches",
            "backend": "backend",
        },
        file=resolve_preset(config, "tiling"),
        sets=set_options,
    )
    from wsi_engine.pipeline.preflight import check_inputs_exist

    check_inputs_exist(list(inputs))
    extensions = _extensions(ext) if ext else SLIDE_EXTENSIONS
    out_dir = prepare_output_dir(out)
    console = Console(stderr=True)
    with RunLock(out_dir), _RichObserver(console) as observer:
        report = tile_slides(
            inputs,
            out_dir,
            settings,
            recursive=recursive,
            extensions=extensions,
            workers=workers,
            scheduler=scheduler,
            overwrite=overwrite,
            mpp=mpp,
            mpp_table=mpp_table,
            tissue_geojson=tissue_geojson,
            tissue_mask=tissue_mask,
            observer=observer,
        )
    Console().print(_summary(report))
    failed = report.failed
    for result in failed[:_MAX_FAILURES_SHOWN]:
        console.print(
            f"[red]failed[/] {escape(str(result.path))}: {escape(result.reason)}", soft_wrap=True
        )
    if len(failed) > _MAX_FAILURES_SHOWN:
        console.print(f"... and {len(failed) - _MAX_FAILURES_SHOWN} more")
    console.print(f"report: {out_dir / 'tiling_report.csv'}", highlight=False)
    if failed:
        raise batch_failures(
            f"{len(failed)} of {len(report.results)} slides failed",
            [exit_code_of_reason(r.reason) for r in failed],
            len(report.results),
            hint=f"reasons in {out_dir / 'tiling_report.csv'}; rerun to resume",
        )


def _extensions(text: str) -> tuple[str, ...]:
    """``svs, .tiff`` → (``.svs``, ``.tiff``)."""
    parts = [part.strip().lower() for part in text.split(",") if part.strip()]
    return tuple(part if part.startswith(".") else f".{part}" for part in parts)


def _summary(report) -> Table:
    table = Table(title="Tiling summary")
    for column in ("ok", "empty", "skipped", "failed", "patches written", "time", "patches/s"):
        table.add_column(column, justify="right")
    table.add_row(
        *(
            f"[{_STATUS_STYLE[status]}]{report.count(status)}[/]"
            for status in ("ok", "empty", "skipped", "failed")
        ),
        f"{report.new_patches:,}",
        f"{report.seconds:.1f} s",
        f"{report.patches_per_s:,.0f}",
    )
    return table


class _RichObserver(StageObserver):
    """Progress bars on stderr: slides overall, patches overall, and one bar per slide in flight.

    Implements the hooks of :class:`wsi_engine.stage.StageObserver` (its result statuses are
    shown as in ``tiling_report.csv``: ``ok`` for ``done``).
    """

    def __init__(self, console: Console):
        self.progress = stage_progress(console, label="{task.description}", transient=False)
        self.slides = self.progress.add_task("slides", total=None)
        self.patches = self.progress.add_task("patches", total=0)
        self.patch_total = 0
        self.per_slide: dict[str, list[int]] = {}  # slide id → [task id, to write, written]

    def __enter__(self) -> _RichObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def stage_started(self, stage: str, n_slides: int) -> None:
        self.progress.update(self.slides, total=n_slides)

    def work_planned(self, stage: str, slide_id: str, n_patches: int) -> None:
        self.patch_total += n_patches
        self.progress.update(self.patches, total=self.patch_total)
        if n_patches:
            task = self.progress.add_task(f"  {escape(slide_id)}", total=n_patches)
            self.per_slide[slide_id] = [task, n_patches, 0]

    def work_done(self, stage: str, slide_id: str, n_patches: int) -> None:
        self.progress.advance(self.patches, n_patches)
        if slide_id in self.per_slide:
            self.per_slide[slide_id][2] += n_patches
            self.progress.advance(self.per_slide[slide_id][0], n_patches)

    def slide_finished(self, result) -> None:
        self.progress.advance(self.slides)
        if result.slide_id in self.per_slide:
            task, to_write, written = self.per_slide.pop(result.slide_id)
            self.patch_total -= to_write - written  # a failed slide's unwritten patches
            self.progress.update(self.patches, total=self.patch_total)
            self.progress.remove_task(task)
        status = "ok" if result.status == "done" else result.status
        self.progress.console.print(
            f"[{_STATUS_STYLE[status]}]{status:>7}[/] {escape(result.slide_id)}: {result.patches:,} patches"
            + (f" ({escape(result.reason)})" if result.reason else ""),
            highlight=False,
            soft_wrap=True,
        )
