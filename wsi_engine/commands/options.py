"""Command-line options shared by several commands."""

from __future__ import annotations

import typer

THREADS = typer.Option(
    None,
    "--threads",
    help="CPU threads for torch \\[all cores; 1 is fastest for small bags on a busy machine].",
)

TRAINING_DEVICE = typer.Option(
    "auto",
    "--device",
    help="Where MIL models run: auto (a CUDA GPU if there is one), cuda, cuda:N or cpu "
    "\\[float32 throughout, Sinkhorn included].",
)
