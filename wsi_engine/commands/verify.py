"""``wsi-engine verify``: check stores against their integrity records (every chunk present and intact)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from wsi_engine.errors import StoreError


def verify_command(
    stores: list[Path] = typer.Argument(
        ..., help="Patch stores (<slide_id>.zarr) or folders of stores."
    ),
) -> None:
    """Read every chunk of every store and compare it with the checksum recorded when it was written."""
    from wsi_engine.errors import WsiEngineError
    from wsi_engine.store.layout import require_stores
    from wsi_engine.store.verify import verify_store

    console = Console()
    paths = require_stores(list(stores))
    lines: list[str] = []
    for path in paths:
        try:
            problems = [str(p) for p in verify_store(path)]
        except WsiEngineError as error:
            problems = [str(error)]
        lines.extend(problems)
        if not problems:
            console.print(f"{escape(str(path))}: ok", highlight=False)
        for line in problems:
            console.print(escape(line), highlight=False, soft_wrap=True)
    if lines:
        raise StoreError(
            f"{len(lines)} problem(s) in {len(paths)} store(s); the first: {lines[0]}",
            hint="rebuild each named array with the command given on its line",
        )
