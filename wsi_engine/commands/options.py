"""Command-line options shared by several commands."""

from __future__ import annotations

import typer

THREADS = typer.Option(
    None,
    "--threads",
    help="CPU threads for torch \\[all cores; 1 is fastest for small bags on a busy machine].",
)
