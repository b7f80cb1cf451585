"""``wsi-engine fit-patches`` and ``predict-patches``: patch-level classifiers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from wsi_engine.commands.options import (
    CONFIG_FILE,
    ENCODER_CHECKPOINT,
    LORA,
    OVERWRITE_RUN,
    PRIVILEGED_WEIGHT,
    SET,
    command_settings,
    merged_stores,
    stores_argument,
    stores_option,
    with_settings,
)
from wsi_engine.commands.tables import metric_cells, result_table

PATCH_SOURCE_OPTIONS = (
    "from_run",
    "images",
    "stores",
    "stores_2",
    "labels",
    "task",
    "encoder",
    "checkpoint",
)
PATCH_TRAIN_OPTIONS = ("epochs", "lr", "batch_size", "loss", "resample", "distill_weight", "metric")
#: The CLIP-IT options (``fit-patches``, ``reports ablation``) → keys of ``privileged_text``.
PRIVILEGED_KEYS = {
    "privileged_text": "privileged_text.corpus",
    "privileged_weight": "privileged_text.weight",
    "lora": "privileged_text.lora.enabled",
    "lora_r": "privileged_text.lora.r",
    "lora_alpha": "privileged_text.lora.alpha",
}


def fit_patches_command(
    ctx: typer.Context,
    from_run: Path | None = typer.Option(
        None,
        "--from-run",
        help="Bag run directory of `wsi-engine fit` whose evidence gives the targets.",
    ),
    images: Path | None = typer.Option(
        None, "--images", help="Labelled patch folder: one sub-folder of images per class."
    ),
    stores: list[Path] = typer.Option(
        [],
        "--stores",
        help="Store folder(s) or <slide_id>.zarr paths of the labelled slides (with --from-run).",
    ),
    stores_2: list[Path] = typer.Option(
        [],
        "--stores-2",
        help="The same slides' stores at another µm/px: second views for --metric (with --from-run).",
    ),
    out: Path = typer.Option(..., "--out", help="Run directory to create."),
    labels: Path | None = typer.Option(
        None, "--labels", help="Labels CSV (slide_id,label) \\[the bag run's]."
    ),
    task: str | None = typer.Option(
        None,
        "--task",
        help="Task prompt set: with --images its prompts start the head; with --from-run it must be the run's task.",
    ),
    encoder: str | None = typer.Option(
        None, "--encoder", help="Encoder preset that encodes --images."
    ),
    checkpoint: Path | None = ENCODER_CHECKPOINT,
    device: str = typer.Option(
        "auto",
        "--device",
        help="Device that trains the head (and encodes --images): auto, cpu, cuda, cuda:N.",
    ),
    shots: int | None = typer.Option(
        None, "--shots", help="Bag models of this shot setting \\[the largest]."
    ),
    fold: str = typer.Option(
        "auto",
        "--fold",
        help="Bag fold whose model gives the targets and whose training/validation/test slides "
        "train, select and test the head \\[auto: the first fold; 'all' only for runs without splits].",
    ),
    evidence: str | None = typer.Option(
        None,
        "--evidence",
        help="Per-patch evidence: auto, attention or instance_score "
        "\\[auto: instance_score for Libra-MIL runs, attention for the others].",
    ),
    positive_quantile: float | None = typer.Option(
        None, "--pos-quantile", help="Top fraction of a slide labelled with its class [0.2]."
    ),
    negative_quantile: float | None = typer.Option(
        None, "--neg-quantile", help="Bottom fraction of a lesion slide labelled background [0.2]."
    ),
    background_class: str | None = typer.Option(
        None, "--background-class", help="auto, none or a class name \\[auto]."
    ),
    hidden: int | None = typer.Option(
        None, "--hidden", help="0: linear head; N: residual MLP adapter of width N [0]."
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Maximum epochs [30]."),
    lr: float | None = typer.Option(None, "--lr", help="AdamW learning rate [1e-2]."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Patches per step [256]."),
    loss: str | None = typer.Option(
        None, "--loss", help="ce, focal or reinforced-focal \\[reinforced-focal]."
    ),
    resample: bool | None = typer.Option(
        None, "--resample/--no-resample", help="Class-balanced adaptive resampling \\[on]."
    ),
    distill_weight: float | None = typer.Option(
        None, "--distill-weight", help="Weight of the L2 distillation [1.0]."
    ),
    metric: str | None = typer.Option(
        None, "--metric", help="Multi-scale metric loss: none, pair or triplet \\[none]."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, sampling and training."),
    text_free: bool = typer.Option(
        False, "--text-free", help="Start from random class weights, not the prompts."
    ),
    run_id: str | None = typer.Option(
        None, "--run-id", help="Run id, also the default score id \\[the --out folder name]."
    ),
    overwrite: bool = OVERWRITE_RUN,
    privileged_text: Path | None = typer.Option(
        None,
        "--privileged-text",
        help="Report corpus of `reports import`: CLIP-IT late fusion + 1 − cos distillation (training only) \\[off].",
    ),
    privileged_weight: float | None = PRIVILEGED_WEIGHT,
    lora: bool | None = LORA,
    lora_r: int | None = typer.Option(None, "--lora-r", help="LoRA rank [16]."),
    lora_alpha: float | None = typer.Option(None, "--lora-alpha", help="LoRA alpha [8]."),
    config_file: Path | None = CONFIG_FILE,
    set_options: list[str] = SET,
) -> None:
    """Train a patch classifier from a bag run's evidence (--from-run) or a labelled image folder (--images)."""
    from wsi_engine.patch.fit import (
        FitPatchesSettings,
        fit_patches_from_images,
        fit_patches_from_run,
    )

    settings = command_settings(
        ctx, FitPatchesSettings, FIT_PATCHES_KEYS, file=config_file, sets=set_options
    )
    config, source = settings.run_config(), settings.source
    with Console(stderr=True).status("training the patch classifier"):
        if source.from_run is not None:
            result = fit_patches_from_run(
                config,
                source.from_run,
                source.stores,
                out,
                labels_path=source.labels,
                second_store_dirs=source.stores_2 or None,
                task=source.task,
                overwrite=overwrite,
                run_id=run_id,
                device=device,
            )
        else:
            result = fit_patches_from_images(
                config,
                source.images,
                source.encoder,
                out,
                task=source.task,
                checkpoint=source.checkpoint,
                device=device,
                overwrite=overwrite,
                run_id=run_id,
            )
    console = Console()
    console.print(f"language priors: {result.language.note}", highlight=False)
    console.print(
        "hard targets: " + ", ".join(f"{c} {n}" for c, n in result.counts.items()), highlight=False
    )
    if result.skipped:
        console.print(
            f"[yellow]skipped {len(result.skipped)} input(s)[/] (see skipped.csv); first: {result.skipped[0].item}: {result.skipped[0].reason}",
            highlight=False,
        )
    if result.privileged is not None:
        pairing = result.privileged["pairing"]
        agreement = (
            f"; top-1 report of the patch's class {pairing['class_agreement']:.1%} (chance {pairing['chance_agreement']:.1%})"
            if pairing["class_agreement"] is not None
            else ""
        )
        console.print(
            f"privileged text: {pairing['n_items']} training patches paired with corpus "
            f"'{result.privileged['corpus_id']}' (top-1 cosine mean {pairing['score_stats']['mean']:.3f}, "
            f"{pairing['distinct_top1']} distinct reports){agreement}; inference is image-only",
            highlight=False,
        )
    console.print(metrics_table(result.metrics))
    console.print(
        f"run: {result.run_dir} (model.pt, metrics.csv, metrics.json, confusion.png); best epoch {result.best_epoch}",
        highlight=False,
    )


#: Options of ``fit-patches`` → keys of :class:`~wsi_engine.patch.fit.FitPatchesSettings`.
FIT_PATCHES_KEYS = {
    **{name: f"source.{name}" for name in PATCH_SOURCE_OPTIONS},
    "shots": "bag.shots",
    "fold": "bag.fold",
    "evidence": "targets.evidence",
    "positive_quantile": "targets.positive_quantile",
    "negative_quantile": "targets.negative_quantile",
    "background_class": "targets.background_class",
    "hidden": "head.hidden",
    **{name: f"train.{name}" for name in PATCH_TRAIN_OPTIONS},
    "seed": "seed",
    "text_free": "text_free",
    **PRIVILEGED_KEYS,
}


def metrics_table(rows: list[dict[str, Any]]) -> Table:
    """Patch-classifier metrics per stage (before and after training)."""
    return result_table(
        "patch classifier metrics (AUC, F1: macro)",
        ("stage", "on", "patches", "acc.", "bal. acc.", "AUC", "F1"),
        (
            [r["stage"], r["evaluated_on"], str(r["n_patches"]), *metric_cells(r, "{:.3f}".format)]
            for r in rows
        ),
        labels=2,
    )


@with_settings
def predict_patches_command(
    run: Path = typer.Option(
        ..., "--run", help="Run directory written by `wsi-engine fit-patches`."
    ),
    inputs: list[Path] | None = stores_argument(),
    stores: list[Path] | None = stores_option("Store folder(s) or <slide_id>.zarr paths."),
    score_id: str | None = typer.Option(
        None, "--score-id", help="Name of the scores group written in each store \\[the run id]."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Optional CSV of per-slide class fractions."
    ),
) -> None:
    """Write per-patch class probabilities (scores/<score_id>/probs) into every store."""
    from wsi_engine.commands.progress import StageBars, stage_progress
    from wsi_engine.patch.predict import predict_patches
    from wsi_engine.training.stores import failures_error

    stores = merged_stores(inputs, stores)
    console = Console()
    with stage_progress(Console(stderr=True)) as progress:
        result = predict_patches(
            run,
            list(stores),
            score_id=score_id,
            out_csv=out,
            observer=StageBars(progress, name_slides=True),
        )
    if result.failures:
        hint = "the others were written" + (f"; see {out}" if out else "")
        raise failures_error(result.failures, len(result.rows), hint)
    names = result.class_names
    fractions = (
        [r["slide_id"], *(f"{r[f'fraction_{c}']:.1%}" for c in names)] for r in result.rows
    )
    title = f"share of patches per predicted class (scores/{result.score_id})"
    console.print(result_table(title, ("slide", *names), fractions))
    console.print(
        f"{len(result.rows)} store(s): per-patch probabilities written to scores/{result.score_id}",
        highlight=False,
    )
