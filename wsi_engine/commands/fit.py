"""``wsi-engine fit``: few-shot training of a slide classifier from stores and labels."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from wsi_engine.commands.options import (
    CONFIG_FILE,
    ENCODER_CHECKPOINT,
    OVERWRITE_RUN,
    PRIVILEGED_WEIGHT,
    THREADS,
    TRAINING_DEVICE,
    command_settings,
    merged_stores,
    stores_argument,
    stores_option,
)
from wsi_engine.commands.tables import mean_std, metric_cells, result_table
from wsi_engine.errors import ConfigError, DataError


def _shots(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ConfigError(
            f"--shots {text!r} is not a comma-separated list of integers",
            hint="e.g. --shots 1,4,16",
        ) from None
    if not values or values[0] < 1:
        raise ConfigError(
            f"--shots {text!r} must list positive integers", hint="e.g. --shots 1,4,16"
        )
    return values


def _seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or len(set(values)) != len(values) or min(values) < 0:
        raise ConfigError(
            f"--seeds {text!r} must list distinct non-negative integers", hint="e.g. --seeds 0,1,2"
        )
    return values


def fit_command(
    ctx: typer.Context,
    inputs: list[Path] | None = stores_argument(),
    stores: list[Path] | None = stores_option("Folder(s) of <slide_id>.zarr stores."),
    labels: Path = typer.Option(..., "--labels", help="CSV with slide_id,label columns."),
    task: str = typer.Option(
        ..., "--task", help="Task prompt set: a name in configs/tasks/ or a YAML file."
    ),
    encoder: str = typer.Option(
        ...,
        "--encoder",
        help="Encoder preset whose features to use (or the features id of imported features).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create."),
    model: str = typer.Option("libra", "--model", help="libra, abmil, mean or max."),
    shots: str = typer.Option(
        "1,4,16", "--shots", help="Training slides per class, comma-separated."
    ),
    folds: int = typer.Option(5, "--folds", help="Folds of the cross-validation (at least 3)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the splits and the training."),
    seeds: str | None = typer.Option(
        None,
        "--seeds",
        help="Training seeds, e.g. 0,1,2,3,4: the protocol repeated per seed on the same splits "
        "(made with --seed); mean ± std over seeds \\[only --seed].",
    ),
    splits: list[Path] = typer.Option(
        [],
        "--splits",
        help="Use these splits: a splits.json, or FOCUS/CLAM-style CSVs (train,val,test columns; one per fold).",
    ),
    checkpoint: Path | None = ENCODER_CHECKPOINT,
    epochs: int | None = typer.Option(None, "--epochs", help="Maximum epochs per fold [40]."),
    patience: int | None = typer.Option(
        None,
        "--patience",
        help="Stop after this many epochs without a better validation score [10].",
    ),
    val_loss_tolerance: float | None = typer.Option(
        None,
        "--val-loss-tolerance",
        help="Validation losses closer than this tie in model selection; the earlier epoch is "
        "kept [1e-3; 0: any decrease counts].",
    ),
    lr: float | None = typer.Option(None, "--lr", help="AdamW learning rate [1e-4]."),
    loss: str | None = typer.Option(None, "--loss", help="ce, focal or reinforced-focal [ce]."),
    resample: bool | None = typer.Option(
        None,
        "--resample/--no-resample",
        help="Class-balanced adaptive resampling of training slides [off].",
    ),
    fusion: str | None = typer.Option(
        None,
        "--fusion",
        help="Libra-MIL fusion: contrast, sot, sot-instance, none or concat [contrast]; several, comma-separated, "
        "fit each on the same splits and seeds into --out/<mode> and print paired differences.",
    ),
    kv: int | None = typer.Option(
        None,
        "--kv",
        help="Libra-MIL visual prototypes K_v of sot, sot-instance, concat [10] (contrast: "
        "contrast.per_class x classes + contrast.background).",
    ),
    proto_init: str | None = typer.Option(
        None,
        "--proto-init",
        help="Libra-MIL visual prototypes of sot, sot-instance, concat: random, data or kmeans [random].",
    ),
    set_options: list[str] = typer.Option(
        [],
        "--set",
        help="Setting KEY=VALUE (dotted keys, YAML values; repeatable), e.g. --set train.lr=1e-3; "
        "a key fit does not have is a model option: --set dim=256 (model_options.dim). Beats "
        "--config, loses to an option given here.",
    ),
    config_file: Path | None = CONFIG_FILE,
    text_free: bool = typer.Option(False, "--text-free", help="Do not use language priors."),
    privileged_text: Path | None = typer.Option(
        None,
        "--privileged-text",
        help="Report corpus of `reports import`: CLIP-IT 1 − cos distillation into the bag representation (libra, abmil; training only) \\[off].",
    ),
    privileged_weight: float | None = PRIVILEGED_WEIGHT,
    cache_mb: int = typer.Option(2048, "--cache-mb", help="Memory for cached feature bags, MiB."),
    run_id: str | None = typer.Option(
        None, "--run-id", help="Run id used to name scores in stores [the --out folder name]."
    ),
    overwrite: bool = OVERWRITE_RUN,
    threads: int | None = THREADS,
    device: str = TRAINING_DEVICE,
) -> None:
    """Learn a slide classifier from a few labelled slides per class; write checkpoints and results to --out."""
    from wsi_engine.mil.fit import FitConfig, fit
    from wsi_engine.pipeline.preflight import check_inputs_exist, check_writable
    from wsi_engine.prompts import load_task
    from wsi_engine.training.seeding import set_threads

    stores = merged_stores(inputs, stores)
    check_inputs_exist(list(stores), "store")
    if not labels.is_file():
        raise DataError(
            "labels file not found", path=labels, hint="a CSV with slide_id,label columns"
        )
    load_task(task)  # unknown task: fails now, with suggestions
    check_writable(out)
    set_threads(threads)
    modes = _fusion_modes(fusion)
    config = command_settings(
        ctx,
        FitConfig,
        {**FIT_KEYS, **{name: f"train.{name}" for name in TRAIN_KEYS}},
        file=config_file,
        sets=set_options,
        convert={
            "shots": _shots,
            "seeds": _seeds,
            "fusion": lambda text: _fusion_modes(text)[0],
            "privileged_text": str,
        },
        catch_all="model_options",
    )
    console = Console()
    run_fit = partial(
        fit,
        labels_path=labels,
        store_dirs=list(stores),
        checkpoint=checkpoint,
        splits_paths=list(splits) or None,
        overwrite=overwrite,
        device=device,
    )
    if modes and len(modes) > 1:
        _fusion_ablation(run_fit, config, modes, out, run_id, console)
        return
    with _RichProgress(Console(stderr=True)) as progress:
        result = run_fit(config, run_dir=out, run_id=run_id, progress=progress)
    _print_fit(console, result, model)


def _print_fit(console: Console, result: Any, model: str) -> None:
    console.print(f"language priors: {result.language.note}", highlight=False)
    for prompt in result.language.long_prompts:
        console.print(
            f"[yellow]warning:[/] prompt truncated by the text encoder: {prompt}", highlight=False
        )
    console.print(results_table(result.summary, model))
    if any("fusion" in row for row in result.rows):
        console.print(fusion_table(result.rows))
    console.print(
        "test slides only (never used for training or checkpoint selection); "
        "\\[brackets]: bootstrap 95 % CI over the pooled test slides",
        highlight=False,
    )
    console.print(
        f"run: {result.run_dir} (results.csv, results.json, roc.png, curves.png)", highlight=False
    )


#: Options of ``fit`` → keys of :class:`~wsi_engine.mil.fit.FitConfig` (and the training options,
#: same name under ``train.``).
FIT_KEYS = {
    "task": "task",
    "encoder": "encoder",
    "model": "model",
    "shots": "shots",
    "folds": "folds",
    "seed": "seed",
    "seeds": "seeds",
    "text_free": "text_free",
    "cache_mb": "cache_mb",
    "privileged_text": "privileged_text",
    "privileged_weight": "privileged_weight",
    "fusion": "model_options.fusion",
    "kv": "model_options.kv",
    "proto_init": "model_options.proto_init",
}
TRAIN_KEYS = ("epochs", "patience", "val_loss_tolerance", "lr", "loss", "resample")


FUSION_MODES = ("contrast", "sot", "sot-instance", "none", "concat")


def _fusion_modes(text: str | None) -> list[str] | None:
    """``--fusion`` as a list of distinct modes (one mode, or several for an ablation)."""
    if text is None:
        return None
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in FUSION_MODES]
    if not modes or bad or len(set(modes)) != len(modes):
        raise ConfigError(
            f"--fusion {text!r} must list distinct modes among {', '.join(FUSION_MODES)}",
            hint="e.g. --fusion sot or --fusion contrast,sot,sot-instance,none,concat",
        )
    return modes


def _fusion_ablation(run_fit, config, modes: list[str], out: Path, run_id, console) -> None:
    """One fit per fusion mode into ``out/<mode>`` (same splits and seeds), then paired differences."""
    import json

    from wsi_engine.mil.ablation import paired_differences

    rows_by_mode = {}
    for mode in modes:
        options = {**config.model_options, "fusion": mode}
        mode_config = config.model_copy(update={"model_options": options})
        console.print(f"[bold]fusion {mode}[/]", highlight=False)
        with _RichProgress(Console(stderr=True)) as progress:
            result = run_fit(
                mode_config,
                run_dir=out / mode,
                run_id=f"{run_id or out.name}-{mode}",
                progress=progress,
            )
        _print_fit(console, result, f"libra fusion {mode}")
        rows_by_mode[mode] = result.rows
    differences = paired_differences(rows_by_mode, modes[0])
    (out / "ablation.json").write_text(
        json.dumps({"modes": modes, "reference": modes[0], "differences": differences}, indent=1),
        encoding="utf-8",
    )
    console.print(ablation_table(differences, modes[0]))
    console.print(f"ablation: {out / 'ablation.json'}", highlight=False)


def ablation_table(differences: list[dict[str, Any]], reference: str) -> Table:
    """Paired test-metric differences to the reference mode (mean and 95 % t-interval)."""

    def cell(d: dict[str, Any]) -> str:
        half = d["ci95_half_width"]
        text = f"{d['mean_difference']:+.3f}"
        return text + ("" if half != half else f" ± {half:.3f}") + f" (n={d['units']})"

    keys = sorted({(d["shots"], d["mode"]) for d in differences})
    by = {(d["shots"], d["mode"], d["metric"]): d for d in differences}
    return result_table(
        f"fusion ablation: paired test differences to {reference} over (seed, fold), mean ± 95 % t-CI",
        ("shots", "mode", "Δ balanced acc.", "Δ AUC"),
        (
            [str(s), m, cell(by[(s, m, "balanced_accuracy")]), cell(by[(s, m, "auc")])]
            for s, m in keys
        ),
        labels=2,
    )


def results_table(summary: dict[int, dict[str, dict[str, float]]], model: str) -> Table:
    """Test metrics (mean ± std over folds, or over seeds, and the bootstrap CI) per shot setting."""
    first = next(iter(next(iter(summary.values())).values()), {}) if summary else {}
    over = f"{first['seeds']} seeds" if first.get("seeds", 1) > 1 else "folds"
    return result_table(
        f"{model}: test metrics over {over} (mean ± std \\[95 % CI])",
        ("shots", "accuracy", "balanced acc.", "macro AUC", "macro F1"),
        (
            [str(shots), *metric_cells(metrics, mean_std)]
            for shots, metrics in sorted(summary.items())
        ),
        labels=0,
    )


#: (column header, key in a fold row's ``fusion`` entry, format) of the fusion table.
FUSION_COLUMNS = (
    ("diag. P_v", "diagnostic_prototypes", "{:.1f}"),
    ("H(μ_v)", "fusion.entropy_v", "{:.3f}"),
    ("H(ν_t)", "fusion.entropy_t", "{:.3f}"),
    ("KL(T‖μνᵀ)", "fusion.kl_plan", "{:.3f}"),
    ("Δp T→μνᵀ", "fusion.prob_change", "{:.2e}"),
    ("max Δp", "fusion.prob_change_max", "{:.2e}"),
    ("ESS/N", "fusion.ess", "{:.3f}"),
    ("max w", "fusion.max_weight", "{:.2f}"),
    ("moved P_v", "displacement.visual_prototypes", "{:.2%}"),
    ("moved P_t", "displacement.text_prototypes", "{:.2%}"),
    ("grad P_v", "first_epoch.grad_rms.visual_prototypes", "{:.1e}"),
    ("grad P_t", "first_epoch.grad_rms.text_prototypes", "{:.1e}"),
    ("grad φ_v", "first_epoch.grad_rms.phi_v", "{:.1e}"),
)


def fusion_table(rows: list[dict[str, Any]]) -> Table:
    """What the fusion did: test-bag diagnostics of the kept models, mean over folds per shots.

    diag. P_v: diagnostic prototypes the contrast fusion found (0: it found no class-specific
    tissue and left the weights uniform); entropies over log K (1 = uniform marginals); Δp: largest change of a class probability when
    every plan T is replaced by μνᵀ; ESS/N and max w: the instance weights (mean 1); moved:
    prototype displacement ‖P − P_0‖/‖P_0‖; grad: RMS gradient entry (mean over the first epoch).
    """
    import numpy as np

    table_rows = []
    for shots in sorted({r["shots"] for r in rows if "fusion" in r}):
        folds = [r["fusion"] for r in rows if r["shots"] == shots and "fusion" in r]
        cells = []
        for _, key, fmt in FUSION_COLUMNS:
            values = [f[key] for f in folds if key in f]
            cells.append(fmt.format(float(np.mean(values))) if values else "–")
        table_rows.append([str(shots), *cells])
    return result_table(
        "fusion diagnostics (test bags, kept models; mean over folds)",
        ("shots", *(c[0] for c in FUSION_COLUMNS)),
        table_rows,
        labels=0,
    )


class _RichProgress:
    """Progress bars: splits done overall, and epochs of the current split with its validation score.

    Implements the callbacks of :class:`wsi_engine.mil.fit.FitProgress` (not subclassed, so that
    importing the command line does not import torch).
    """

    def __init__(self, console: Console):
        from wsi_engine.commands.progress import stage_progress

        self._progress = stage_progress(console, label="{task.description}", transient=False)
        self._overall = None
        self._current = None
        self._epochs = 0

    def __enter__(self) -> _RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def start(self, splits, epochs: int) -> None:
        self._epochs = epochs
        self._overall = self._progress.add_task("folds", total=len(splits))

    def split_started(self, split) -> None:
        if self._current is not None:
            self._progress.remove_task(self._current)
        self._current = self._progress.add_task(
            f"{split.shots}-shot fold {split.fold}", total=self._epochs
        )

    def epoch(self, split, record: dict[str, Any]) -> None:
        self._progress.update(
            self._current,
            advance=1,
            description=(
                f"{split.shots}-shot fold {split.fold}: loss {record['train_loss']:.3f} "
                f"val bal.acc {record['val_balanced_accuracy']:.3f} auc {record['val_auc']:.3f} (best epoch {record['best_epoch']})"
            ),
        )

    def split_finished(self, split, row: dict[str, Any]) -> None:
        self._progress.update(self._current, completed=self._epochs)
        self._progress.update(self._overall, advance=1)
