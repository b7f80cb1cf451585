"""``wsi-engine heatmap``: overlays, QuPath GeoJSON, pyramidal TIFFs, patch galleries and an HTML report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wsi_engine.commands.options import (
    CONFIG_FILE,
    SET,
    SLIDE_LABELS,
    command_settings,
    merged_stores,
    stores_argument,
    stores_option,
)
from wsi_engine.errors import BatchFailures


def heatmap_command(
    ctx: typer.Context,
    inputs: list[Path] | None = stores_argument(),
    stores: list[Path] | None = stores_option(
        "A patch store (<slide_id>.zarr) or a folder of stores; repeatable."
    ),
    scores: str = typer.Option(
        ...,
        "--scores",
        help="Run id whose scores/<run_id> to draw (written by `wsi-engine predict`).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    class_name: str | None = typer.Option(
        None, "--class", help="Draw only this class (default: every class of the run)."
    ),
    formats: str = typer.Option(
        "png,geojson,tiff,html",
        "--formats",
        help="Comma-separated: png, geojson, tiff, html, dicom (DICOM SEG + bulk annotations), dsa (DSA JSON).",
    ),
    scale: str = typer.Option(
        "fixed",
        "--scale",
        help="fixed: one colour scale for the cohort (comparable); percentile: per slide (CLAM style).",
    ),
    quantity: str = typer.Option(
        "auto", "--quantity", help="probs, attention, or auto (probs when the run has them)."
    ),
    smooth_um: float = typer.Option(
        0.0, "--smooth-um", help="Gaussian smoothing sigma in µm (0: none)."
    ),
    top_k: int = typer.Option(8, "--top-k", help="Patches per row of the top/bottom gallery."),
    labels: Path | None = SLIDE_LABELS,
    slides: Path | None = typer.Option(
        None,
        "--slides",
        help="Folder of the slides, for stores without thumbnail (imported features) whose recorded "
        "slide is gone; without a slide they get GeoJSON and TIFF only.",
    ),
    config: Path | None = CONFIG_FILE,
    set_options: list[str] = SET,
) -> None:
    """Draw heatmaps from scores already in the stores (nothing is recomputed)."""
    from wsi_engine.commands.progress import StageBars, stage_progress
    from wsi_engine.heatmap import make_heatmaps
    from wsi_engine.heatmap.settings import HeatmapOptions

    keys = ("class_name", "formats", "scale", "quantity", "smooth_um", "top_k", "slides")
    options = command_settings(
        ctx,
        HeatmapOptions,
        {"scores": "run_id", **{k: k for k in keys}},
        file=config,
        sets=set_options,
    )
    stores = merged_stores(inputs, stores)
    truth = None
    if labels is not None:
        from wsi_engine.mil.data import read_labels

        truth = read_labels(labels)
    console = Console()
    with stage_progress(console) as progress:
        report = make_heatmaps(
            stores,
            options.run_id,
            out,
            **options.model_dump(exclude={"run_id"}),
            labels=truth,
            observer=StageBars(progress),
        )
    console.print(_table(report))
    if report.report_path is not None:
        console.print(f"report: {report.report_path}", highlight=False)
    failed = report.failed
    if failed and len(failed) == len(report.slides) and len({type(s.error) for s in failed}) == 1:
        raise failed[0].error  # every store failed the same way: its own message and exit code
    if failed:
        raise BatchFailures(
            f"{len(failed)} of {len(report.slides)} stores failed",
            hint="see the table above; the first: " + str(failed[0].error),
        )


def _table(report) -> Table:
    table = Table(title=f"Heatmaps of run {report.options.run_id}", show_lines=False)
    table.add_column("slide", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("files", justify="right")
    table.add_column("notes", overflow="fold", min_width=30)
    for slide in report.slides:
        status = "[bold red]failed[/]" if slide.error else "[green]ok[/]"
        notes = [str(slide.error)] if slide.error else slide.notes
        table.add_row(
            escape(slide.slide_id), status, str(len(slide.files)), escape("\n".join(notes))
        )
    return table
