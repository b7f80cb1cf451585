"""``wsi-engine embed``: patch stores → ``features/<encoder_id>`` with a frozen encoder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wsi_engine.commands.options import (
    CONFIG_FILE,
    ENCODER_CHECKPOINT,
    SCHEDULER,
    SET,
    command_settings,
)
from wsi_engine.commands.progress import PatchRate, stage_progress
from wsi_engine.errors import batch_failures


def embed_command(
    ctx: typer.Context,
    stores: list[Path] = typer.Argument(
        ..., help="Patch stores (<slide_id>.zarr) or folders of stores."
    ),
    encoder: str = typer.Option(
        ..., "--encoder", "-e", help="Encoder preset name or YAML file (configs/encoders/)."
    ),
    checkpoint: Path | None = ENCODER_CHECKPOINT,
    device: str = typer.Option("auto", "--device", help="auto, cuda, cuda:N or cpu."),
    gpus: int | None = typer.Option(
        None, "--gpus", help="GPUs to use (default: all visible); one process each."
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Patches per forward pass."),
    precision: str = typer.Option(
        "auto", "--precision", help="auto (bf16/fp16 on GPU, fp32 on CPU), fp32, fp16, bf16."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Decode worker processes (default: cores - 1, max 8)."
    ),
    dtype: str = typer.Option(
        "float16", "--dtype", help="Stored feature dtype: float16 or float32."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Recompute features that are already complete."
    ),
    scheduler: str | None = SCHEDULER,
    config: Path | None = CONFIG_FILE,
    set_options: list[str] = SET,
) -> None:
    """Encode every patch of the stores; resumable, skips complete features unless --overwrite."""
    from wsi_engine.encoders.embed import embed_stores
    from wsi_engine.encoders.settings import EmbedJobSettings
    from wsi_engine.pipeline.preflight import check_encoder, check_inputs_exist

    keys = {name: name for name in EmbedJobSettings.model_fields}  # options of the same names
    settings = command_settings(ctx, EmbedJobSettings, keys, file=config, sets=set_options)
    check_inputs_exist(list(stores), "store")
    # unknown name or missing weights: fail before any store is read
    check_encoder(settings.encoder, settings.checkpoint)
    options = {**settings.model_dump(exclude={"encoder", "gpus"}), "overwrite": overwrite}
    console = Console()
    if scheduler:
        report = _embed_on_cluster(scheduler, stores, settings.encoder, console, **options)
    else:
        with stage_progress(console, label="[bold]embed[/]", rate=True) as progress:
            report = embed_stores(
                stores,
                settings.encoder,
                gpus=settings.gpus,
                observer=PatchRate(progress),
                **options,
            )
    console.print(summary_table(report))
    console.print(
        f"{report.embedded:,} patches in {report.wall_seconds:.1f} s ({report.patches_per_second:,.1f} patches/s; "
        f"encoder loaded in {report.load_seconds:.1f} s) "
        f"on {report.device_name}, {report.precision}, batch {report.batch_size}, {report.workers} workers; "
        f"model {report.model_seconds:.1f} s, waiting for data {report.wait_seconds:.1f} s, "
        f"reading (workers) {report.read_seconds:.1f} s, writing {report.write_seconds:.1f} s",
        highlight=False,
    )
    failed = report.failed
    if failed:
        raise batch_failures(
            f"{len(failed)} of {len(report.results)} stores failed",
            [r.exit_code for r in failed],
            len(report.results),
            hint=f"the first: {failed[0].reason}",
        )


def _embed_on_cluster(
    scheduler: str, stores: list[Path], encoder: str, console: Console, **options
):
    """``embed_stores`` as one task per store on the cluster at ``scheduler``, with a store bar."""
    from wsi_engine.cluster.embed import embed_on_cluster
    from wsi_engine.commands.progress import StageBars
    from wsi_engine.tiling import dask_client

    with dask_client(None, scheduler) as client, stage_progress(console) as progress:
        return embed_on_cluster(
            client, stores, encoder, observer=StageBars(progress, name_slides=True), **options
        )


def summary_table(report) -> Table:
    """One row per store: patches, seconds, patches/s, status."""
    table = Table(title=f"Features {report.encoder_id}")
    for name, justify in (
        ("store", "left"),
        ("patches", "right"),
        ("embedded", "right"),
        ("s", "right"),
        ("patches/s", "right"),
        ("status", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")
    for r in report.results:
        rate = f"{r.embedded / r.seconds:,.1f}" if r.seconds > 0 and r.embedded else ""
        status = {
            "done": "[green]done[/]",
            "skipped": "skipped",
            "failed": "[bold red]failed[/]",
        }.get(r.status, r.status)
        if r.reason:
            status += f": {escape(r.reason)}"
        table.add_row(
            escape(r.slide_id),
            f"{r.n_patches:,}",
            f"{r.embedded:,}",
            f"{r.seconds:.1f}",
            rate,
            status,
        )
    return table
