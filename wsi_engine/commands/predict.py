"""``wsi-engine predict``: slide probabilities and per-patch evidence from a fit run."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from wsi_engine.commands.options import THREADS


def predict_command(
    run: Path = typer.Option(..., "--run", help="Run directory written by `wsi-engine fit`."),
    stores: list[Path] = typer.Option(
        ..., "--stores", help="Store folder(s) or <slide_id>.zarr paths (repeatable)."
    ),
    out: Path = typer.Option(..., "--out", help="CSV of slide-level predictions to write."),
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
) -> None:
    """Predict every store; write OUT and, per store, scores/<score_id> (attention, instance_score) for heatmaps."""
    from rich.progress import Progress

    from wsi_engine.mil.data import read_labels
    from wsi_engine.mil.predict import predict
    from wsi_engine.store import find_stores
    from wsi_engine.training.seeding import set_threads
    from wsi_engine.training.stores import failures_error

    set_threads(threads)
    console = Console()
    known = read_labels(labels) if labels is not None else None
    with Progress(console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task("predicting", total=len(find_stores(list(stores))))
        result = predict(
            run,
            list(stores),
            out,
            shots=shots,
            fold=fold,
            score_id=score_id,
            write_scores=not no_scores,
            labels=known,
            on_slide=lambda slide_id: progress.update(bar, advance=1, description=slide_id),
        )
    if result.failures:
        raise failures_error(result.failures, len(result.rows), f"the others are in {out}")
    console.print(f"{len(result.rows)} slide(s) → {out}", highlight=False)
    if not no_scores:
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
