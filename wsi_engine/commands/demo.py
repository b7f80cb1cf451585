"""``wsi-engine demo``: generate a cohort and run the whole engine on it with a tiny encoder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from wsi_engine.commands.options import with_settings
from wsi_engine.commands.tables import mean_std, result_table


@with_settings
def demo_command(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Output folder."),
    n_slides: int = typer.Option(
        16, "--n-slides", help="Slides in the synthetic cohort (half normal, half tumour)."
    ),
    size: int = typer.Option(3072, "--size", help="Slide side in level-0 px (0.5 µm/px)."),
    shots: int = typer.Option(4, "--shots", help="Training slides per class."),
    folds: int = typer.Option(3, "--folds", help="Cross-validation folds."),
    epochs: int = typer.Option(30, "--epochs", help="Maximum epochs per fold."),
    seed: int = typer.Option(0, "--seed", help="Seed of the cohort, weights and splits."),
) -> None:
    """Synthetic cohort → tile → embed (tiny random encoder) → few-shot fit → predict → heatmaps + HTML report."""
    from wsi_engine.commands.progress import StageBars, stage_progress
    from wsi_engine.commands.run import print_summary
    from wsi_engine.pipeline.demo import DemoSize, run_demo

    console = Console()
    with stage_progress(console) as progress:
        result = run_demo(
            out,
            DemoSize(n_slides, size, shots, folds, epochs),
            seed=seed,
            say=lambda text: progress.console.print(text, style="bold", soft_wrap=True),
            observer=StageBars(progress),
        )
    print_summary(console, result.report)
    rows = [
        (name, mean_std(stats))
        for shot_summary in result.fit_summary.values()
        for name, stats in shot_summary.items()
    ]
    rows.append(
        (
            "lesion-patch AUC (tumour attention vs ground truth; all slides, in-sample)",
            f"{result.lesion_auc:.3f}",
        )
    )
    title = (
        f"few-shot Libra-MIL on held-out test slides ({shots} shots/class, {folds} folds, "
        "mean ± std \\[bootstrap 95 % CI])"
    )
    console.print(result_table(title, ("metric", "value"), rows))
    heatmaps = result.pipeline_dir / "heatmaps"
    where = Table(title="where everything is", show_header=False)
    for label, path in [
        ("synthetic slides + ground truth", result.cohort_dir),
        ("patch stores (Zarr v3)", result.pipeline_dir / "stores"),
        ("fit run (splits, checkpoints, ROC)", result.fit_dir),
        ("slide predictions", result.pipeline_dir / "predictions.csv"),
        ("heatmaps, GeoJSON, TIFF overlays", heatmaps),
        ("HTML report", heatmaps / "report.html"),
        ("manifest and telemetry", result.pipeline_dir / "manifest.json"),
    ]:
        where.add_row(label, str(path))
    console.print(where)
