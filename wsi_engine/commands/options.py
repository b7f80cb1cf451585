"""Command-line options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from wsi_engine.errors import ConfigError

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


def stores_argument() -> Any:
    """The positional STORES of commands that read patch stores (``--stores`` stays as an alias)."""
    return typer.Argument(
        None,
        metavar="STORES",
        help="Patch stores (<slide_id>.zarr) or folders of stores.",
        show_default=False,
    )


def stores_option(help: str) -> Any:
    """``--stores``: the older spelling of the positional STORES, still accepted (repeatable)."""
    return typer.Option(None, "--stores", help=f"{help} Same as the positional STORES.")


def merged_stores(positional: list[Path] | None, option: list[Path] | None) -> list[Path]:
    """Stores given positionally and with ``--stores``; a usage error when there are none."""
    stores = [*(positional or []), *(option or [])]
    if not stores:
        raise ConfigError(
            "no patch stores given",
            hint="pass store folders as arguments, e.g. `... OUT/stores` (or with --stores)",
        )
    return stores


def output_file(out: Path, default_name: str) -> Path:
    """``--out`` as a folder (then ``default_name`` inside it) or, for compatibility, a file with a suffix."""
    if out.suffix and not out.is_dir():
        return out
    out.mkdir(parents=True, exist_ok=True)
    return out / default_name
