"""``wsi-engine view``: serve a zoomable viewer of the slides and score maps of an output folder."""

from __future__ import annotations

from pathlib import Path

import typer

from wsi_engine.commands.options import SLIDE_LABELS, with_settings


@with_settings
def view_command(
    folder: Path = typer.Argument(
        ...,
        metavar="FOLDER",
        help="The --out folder of `run` or of `heatmap` (or a folder of stores).",
    ),
    port: int = typer.Option(8765, "--port", help="TCP port (0: any free port)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (keep 127.0.0.1: the page has no login)."
    ),
    scores: str | None = typer.Option(
        None, "--scores", help="Run id of the scores to show [default: the heatmaps' run]."
    ),
    labels: Path | None = SLIDE_LABELS,
) -> None:
    """Zoom into each slide with its heatmap over it (Ctrl-C stops the server)."""
    from wsi_engine.viewer import load_catalog, make_server

    truth = None
    if labels is not None:
        from wsi_engine.mil.data import read_labels

        truth = read_labels(labels)
    catalog = load_catalog(folder, run_id=scores, labels=truth)
    server = make_server(catalog, host, port)
    typer.echo(f"viewer of run {catalog.run_id} ({len(catalog.stores)} slides): {server.url}")
    typer.echo("press Ctrl-C to stop")
    try:
        server.serve_forever()
    finally:
        server.server_close()
