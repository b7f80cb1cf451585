"""``wsi-engine synth``: write a labelled cohort of synthetic slides with ground truth."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from wsi_engine.commands.options import with_settings
from wsi_engine.errors import ConfigError

_SIZE = re.compile(r"^\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """``"8192x6144"`` → ``(8192, 6144)``; a single number means a square slide."""
    match = _SIZE.match(text)
    if match is None:
        raise ConfigError(
            f"--size {text!r} is not a slide size",
            hint="use WIDTHxHEIGHT in pixels, e.g. 8192x8192",
        )
    width = int(match.group(1))
    return width, int(match.group(2) or width)


def parse_classes(text: str) -> list[str]:
    """``"normal, tumor"`` → ``["normal", "tumor"]``."""
    classes = [name.strip() for name in text.split(",")]
    if not all(classes):
        raise ConfigError(
            f"--classes {text!r} has an empty name",
            hint="use comma-separated names, e.g. normal,tumor",
        )
    return classes


@with_settings
def synth_command(
    out_dir: Path = typer.Argument(
        ..., help="Output folder (slides/, truth/, labels.csv, cohort.json)."
    ),
    n_slides: int = typer.Option(6, "--n-slides", help="Number of slides; at least one per class."),
    classes: str = typer.Option(
        "normal,tumor", "--classes", help="Comma-separated classes: normal, tumor, necrosis, gland."
    ),
    size: str = typer.Option("8192x8192", "--size", help="Level-0 size WIDTHxHEIGHT in pixels."),
    mpp: float = typer.Option(0.5, "--mpp", help="Level-0 resolution in µm per pixel."),
    seed: int = typer.Option(
        0, "--seed", help="Random seed; the same seed gives byte-identical files."
    ),
    artefacts: bool = typer.Option(
        False, "--artefacts", help="Add pen marks, black edges and blur to some slides."
    ),
    flavor: str = typer.Option(
        "mixed", "--flavor", help="TIFF flavour: mixed, generic or aperio (.svs)."
    ),
    tile_size: int = typer.Option(
        256, "--tile-size", help="TIFF tile size in pixels (multiple of 16)."
    ),
    jpeg_quality: int = typer.Option(85, "--jpeg-quality", help="JPEG quality, 1-100."),
    workers: int = typer.Option(1, "--workers", help="Threads rendering tiles."),
) -> None:
    """Generate synthetic H&E-like whole-slide images with planted lesions and ground truth."""
    from rich import box
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from wsi_engine.synthetic import cohort_tile_count, generate_cohort, plan_cohort
    from wsi_engine.synthetic.slide import check_slide_options

    width, height = parse_size(size)
    class_list = parse_classes(classes)
    check_slide_options(
        width=width, height=height, mpp=mpp, tile_size=tile_size, jpeg_quality=jpeg_quality
    )
    plan_cohort(
        n_slides=n_slides, classes=class_list, seed=seed, artefacts=artefacts, flavors=flavor
    )
    total = cohort_tile_count(n_slides=n_slides, width=width, height=height, tile_size=tile_size)
    console = Console()
    with Progress(
        TextColumn("synthesising {task.fields[slides]} slides"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tiles"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("synth", total=total, slides=n_slides)
        manifest = generate_cohort(
            out_dir,
            n_slides=n_slides,
            classes=class_list,
            width=width,
            height=height,
            mpp=mpp,
            tile_size=tile_size,
            seed=seed,
            artefacts=artefacts,
            flavors=flavor,
            jpeg_quality=jpeg_quality,
            workers=workers,
            progress=lambda n: progress.advance(task, n),
        )
    table = Table(
        title=f"{len(manifest.slides)} slides written to {manifest.out_dir}", box=box.SIMPLE_HEAD
    )
    for column in ("slide file", "label", "size (px)", "levels", "µm/px", "lesions", "file size"):
        table.add_column(
            column, justify="left" if column in ("slide file", "label") else "right", no_wrap=True
        )
    for slide in manifest.slides:
        truth = slide.truth
        table.add_row(
            truth.path.name,
            slide.plan.label,
            f"{truth.width}×{truth.height}",
            str(len(truth.level_dimensions)),
            f"{truth.mpp:g}",
            str(len(truth.lesions)),
            f"{truth.path.stat().st_size / 2**20:.1f} MiB",
        )
    console.print(table)
    console.print(f"labels: {manifest.labels_csv}  provenance: {manifest.cohort_json}")
