"""``wsi-engine predict``: slide probabilities and per-patch evidence from a fit run."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from wsi_engine.commands.options import (
    CONFIG_FILE,
    SCHEDULER,
    SET,
    THREADS,
    TRAINING_DEVICE,
    command_settings,
    merged_stores,
    output_file,
    stores_argument,
    stores_option,
)


def predict_command(
    ctx: typer.Context,
    inputs: list[Path] | None = stores_argument(),
    run: Path = typer.Option(..., "--run", help="Run directory written by `wsi-engine fit`."),
    stores: list[Path] | None = stores_option("Store folder(s) or <slide_id>.zarr paths."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Output folder for predictions.csv (a path ending in .csv is used as the file).",
    ),
    fold: str = typer.Option(
        "all", "--fold", help="Fold model to use, or 'all' to average every fold's model."
    ),
    shots: int | None = typer.Option(
        None, "--shots", help="Shot setting whose models to use [the largest]."
    ),
    score_id: str | None = typer.Option(
        None,
        "--score-id",
        help="Name of the scores group written in each store [<run_id>-<shots>shot-<fold>].",
    ),
    no_scores: bool = typer.Option(
        False, "--no-scores", help="Do not write per-patch scores into the stores."
    ),
    labels: Path | None = typer.Option(
        None, "--labels", help="Optional labels CSV: adds a label column and prints metrics."
    ),
    threads: int | None = THREADS,
    device: str = TRAINING_DEVICE,
    scheduler: str | None = SCHEDULER,
    config: Path | None = CONFIG_FILE,
    set_options: list[str] = SET,
) -> None:
    """Predict every store; write OUT and, per store, scores/<score_id> (attention, instance_score) for heatmaps."""
    from wsi_engine.commands.progress import StageBars, stage_progress
    from wsi_engine.mil.data import read_labels
    from wsi_engine.mil.predict import predict
    from wsi_engine.mil.settings import PredictSettings
    from wsi_engine.training.seeding import set_threads
    from wsi_engine.training.stores import failures_error

    keys = {k: k for k in ("shots", "fold", "score_id", "device", "threads")}
    settings = command_settings(
        ctx,
        PredictSettings,
        {**keys, "no_scores": "write_scores"},
        file=config,
        sets=set_options,
        convert={"no_scores": lambda no: not no},
    )
    stores = merged_stores(inputs, stores)
    out = output_file(out, "predictions.csv")
    set_threads(settings.threads)
    console = Console()
    known = read_labels(labels) if labels is not None else None
    with stage_progress(Console(stderr=True)) as progress:
        result = (_on_cluster(scheduler) if scheduler else predict)(
            run,
            list(stores),
            out,
            **settings.model_dump(exclude={"threads"}),
            labels=known,
            observer=StageBars(progress, name_slides=True),
        )
    if result.failures:
        raise failures_error(result.failures, len(result.rows), f"the others are in {out}")
    console.print(f"{len(result.rows)} slide(s) → {out}", highlight=False)
    if settings.write_scores:
        console.print(
            f"per-patch scores written to scores/{result.score_id} in each store", highlight=False
        )
    if labels is not None:
        _print_metrics(console, result)


def _print_metrics(console: Console, result) -> None:
    """Metrics over slides no used fold model saw; in-sample ones separately and marked."""

    def text(metrics: dict[str, float] | None) -> str:
        if metrics is None:
            return "not computed (fewer than two classes)"
        return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())

    console.print(
        f"metrics on {result.n_out_of_sample} out-of-sample labelled slide(s) "
        f"(no used fold model trained or was selected on them): {text(result.metrics)}",
        highlight=False,
    )
    if result.n_in_sample:
        console.print(
            f"[yellow]in-sample:[/] {result.n_in_sample} labelled slide(s) were training or "
            f"validation slides of a used fold model (in_sample column); their metrics are "
            f"optimistic: {text(result.metrics_in_sample)}",
            highlight=False,
        )


def _on_cluster(scheduler: str):
    """``predict`` as one task per store on the cluster at ``scheduler``."""
    from wsi_engine.cluster.predict import predict_on_cluster
    from wsi_engine.tiling import dask_client

    def run(*args, **kwargs):
        with dask_client(None, scheduler) as client:
            return predict_on_cluster(client, *args, **kwargs)

    return run
