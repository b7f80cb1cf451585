"""``wsi-engine info``: audit slides before tiling (format, backend, levels, µm/px, problems)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wsi_engine.commands.options import MPP, MPP_TABLE
from wsi_engine.errors import BatchFailures, ConfigError, SlideError

_STATUS_STYLE = {"ok": "green", "warning": "yellow", "failed": "bold red"}


def info_command(
    paths: list[Path] = typer.Argument(..., help="Slide files, or folders to search for slides."),
    recursive: bool = typer.Option(
        False, "--recursive", "-r", help="Search folders' sub-folders too."
    ),
    backend: str = typer.Option(
        "auto", "--backend", help="Slide reader: auto, openslide or tiffslide."
    ),
    mpp: float | None = MPP,
    mpp_table: Path | None = MPP_TABLE,
    out: Path = typer.Option(
        Path("slide_info"),
        "--out",
        help="Report stem: writes STEM.csv and STEM.json (a .csv or .json suffix is dropped).",
    ),
) -> None:
    """Print and save one audit row per slide; exit 1 if a slide cannot be opened or lacks µm/px."""
    from wsi_engine.slide import SLIDE_EXTENSIONS, find_slides, load_mpp_table
    from wsi_engine.slide.audit import audit_slide, write_report
    from wsi_engine.slide.mpp import user_mpp
    from wsi_engine.slide.open import BACKEND_CHOICES

    if backend not in BACKEND_CHOICES:
        raise ConfigError(
            f"unknown --backend {backend!r}", hint=f"use one of {', '.join(BACKEND_CHOICES)}"
        )
    if mpp is not None:
        user_mpp(mpp, "option")  # a bad value is one usage error, not one failure per slide
    table = load_mpp_table(mpp_table) if mpp_table is not None else None
    slides = find_slides(paths, recursive=recursive)
    if not slides:
        raise SlideError(
            "no slide files found",
            path=", ".join(map(str, paths)),
            hint=f"extensions {' '.join(SLIDE_EXTENSIONS)}; add --recursive to search sub-folders",
        )
    rows = [audit_slide(path, backend, mpp=mpp, mpp_table=table) for path in slides]
    if out.suffix.lower() in (".csv", ".json"):
        out = out.with_suffix("")
    csv_path, json_path = write_report(rows, out)

    console = Console()
    console.print(_table(rows))
    for line in _problems(rows):
        console.print(line, highlight=False)
    console.print(f"report: {csv_path}, {json_path}", highlight=False)
    failed = sum(row.failed for row in rows)
    if failed:
        raise BatchFailures(
            f"{failed} of {len(rows)} slides failed", hint=f"see the problems in {csv_path}"
        )


def _table(rows) -> Table:
    """One line per slide; problems are listed below it (see :func:`_problems`)."""
    table = Table(title="Slides", box=box.SIMPLE_HEAD)
    for column in (
        "slide",
        "status",
        "format (backend)",
        "level 0 px",
        "levels",
        "µm/px (source)",
        "mag",
    ):
        table.add_column(column, overflow="fold")
    for row in rows:
        mpp = None
        if row.mpp_x is not None:
            mpp = (
                f"{row.mpp_x:.4g}"
                if row.mpp_x == row.mpp_y
                else f"{row.mpp_x:.4g} x {row.mpp_y:.4g}"
            )
        table.add_row(
            escape(row.slide_id or row.path),
            f"[{_STATUS_STYLE[row.status]}]{row.status}[/]",
            escape(f"{row.format} ({row.backend})") if row.backend else "-",
            f"{row.width}x{row.height}" if row.width else "-",
            str(row.levels or "-"),
            escape(f"{mpp} ({row.mpp_source})") if mpp else "-",
            f"{row.objective_power:g}x" if row.objective_power else "-",
        )
    return table


def _problems(rows) -> list[str]:
    """``slide: problem`` lines, coloured by the slide's status."""
    return [
        f"[{_STATUS_STYLE[row.status]}]{escape(row.slide_id or row.path)}[/]: {escape(problem)}"
        for row in rows
        for problem in row.problems
    ]
