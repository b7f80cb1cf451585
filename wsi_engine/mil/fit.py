"""``wsi-engine fit``: few-shot training of a MIL head over folds and shot counts, from stores and labels.

Steps: check the run directory → load the task → match labels to stores
(:func:`~wsi_engine.mil.data.build_cohort`) → decide whether language priors
are used and embed the prompts → make or load the splits → for every
(shots, fold): seed, build, train with early stopping, save the checkpoint
→ write the results table, ROC and training curves. See
:mod:`wsi_engine.mil.rundir` for the files written.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from wsi_engine.config.loader import StrictModel, write_effective_config
from wsi_engine.errors import ConfigError
from wsi_engine.mil import fewshot, report, rundir, seeds
from wsi_engine.mil.data import BagReader, Cohort, build_cohort, read_labels
from wsi_engine.mil.registry import create_model, get_spec, model_config
from wsi_engine.mil.train import FoldResult, Part, TrainConfig, prepare_model, train_fold
from wsi_engine.prompts import (
    LanguagePriors,
    TaskEmbeddings,
    TaskPrompts,
    embed_task_prompts,
    load_task,
    validate_task,
)
from wsi_engine.reports.quality import write_pairing
from wsi_engine.reports.slide_fit import SlideTextTargets, slide_text_targets
from wsi_engine.slide.ids import sanitize_name
from wsi_engine.store import utc_now
from wsi_engine.training.device import DeviceBags, resolve_device
from wsi_engine.training.records import (
    RUN_FILE,
    CheckpointEntry,
    FitRunRecord,
    MilCheckpointMeta,
    PrivilegedTextRecord,
    run_header,
    write_record,
)
from wsi_engine.training.rundir import check_run_dir, run_id_for, write_json, writing_run
from wsi_engine.training.seeding import seed_everything


class FitConfig(StrictModel):
    """Everything that defines a fit run besides its inputs (written to ``config.yaml``)."""

    task: str
    encoder: str = Field(
        description="encoder preset (name or YAML) whose features are used, or a features id"
    )
    model: str = "libra"
    model_options: dict[str, Any] = Field(default_factory=dict)
    shots: list[int] = Field(default_factory=lambda: [1, 4, 16])
    folds: int = Field(5, ge=1)
    seed: int = 0
    seeds: list[int] | None = Field(
        None,
        description="training seeds, each a full repeat on the same splits (made with seed); default [seed]",
    )
    text_free: bool = Field(
        False, description="do not use language priors even if the encoder has a text tower"
    )
    cache_mb: int = Field(2048, ge=0, description="memory for cached feature bags (MiB)")
    train: TrainConfig = Field(default_factory=TrainConfig)
    privileged_text: str | None = Field(
        None, description="imported report corpus: CLIP-IT text distillation (training only)"
    )
    privileged_weight: float = Field(1.0, ge=0, description="λ of the 1 − cos text term")

    @model_validator(mode="after")
    def _options_of_other_models(self) -> FitConfig:
        given = [k for k in LIBRA_ONLY_OPTIONS if k in self.model_options]
        if given and self.model != "libra":
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
            raise ValueError(f"{flags} apply to --model libra only")
        return self

    @model_validator(mode="after")
    def _weight_needs_corpus(self) -> FitConfig:
        if self.privileged_text is None and "privileged_weight" in self.model_fields_set:
            raise ValueError("--privileged-weight needs --privileged-text")
        return self


LIBRA_ONLY_OPTIONS = ("fusion", "kv", "proto_init")
CHECKPOINT_KEYS = {
    "run_id",
    "model",
    "model_options",
    "class_names",
    "task",
    "encoder_id",
    "feature_dim",
}
"""Keys of ``run.json`` that every fold checkpoint's meta repeats."""
"""Model options of Libra-MIL that ``fit`` also takes as options (``--fusion``, ``--kv``, ``--proto-init``)."""


class FitProgress:
    """Callbacks of a fit run (the command line shows them as progress bars); all optional."""

    def start(self, splits: list[fewshot.Split], epochs: int) -> None: ...

    def split_started(self, split: fewshot.Split) -> None: ...

    def epoch(self, split: fewshot.Split, record: dict[str, Any]) -> None: ...

    def split_finished(self, split: fewshot.Split, row: dict[str, Any]) -> None: ...


@dataclass
class FitResult:
    run_dir: Path
    run_id: str
    rows: list[dict[str, Any]]
    summary: dict[int, dict[str, dict[str, float]]]
    language: LanguagePriors


def resolve_encoder(name: str) -> tuple[str, Any]:
    """(features id, encoder preset or ``None``): a name without a preset is taken as a features id (imported features)."""
    from wsi_engine.encoders import load_encoder_config

    try:
        preset = load_encoder_config(name)
    except ConfigError:
        if name.endswith((".yaml", ".yml")) or Path(name).exists():
            raise
        return sanitize_name(name), None
    return preset.encoder_id, preset


def language_priors(
    config: FitConfig, task: TaskPrompts, preset: Any, cohort: Cohort, checkpoint: str | Path | None
) -> LanguagePriors:
    """Embed the task prompts when the model uses them and the features come from an encoder with a text tower."""
    if not get_spec(config.model).uses_text:
        return LanguagePriors(False, f"model '{config.model}' uses no language priors")
    if config.text_free:
        return LanguagePriors(False, "text-free form requested (--text-free)")
    if preset is None:
        return LanguagePriors(
            False,
            f"text-free form: no encoder preset '{config.encoder}' (imported features), no text tower to embed prompts",
        )
    if not preset.has_text or cohort.feature_attrs.get("output_kind") == "image_only":
        return LanguagePriors(
            False, f"text-free form: encoder '{preset.encoder_id}' is image-only (no text tower)"
        )
    from wsi_engine.encoders import load_encoder, prompt_token_limit, token_lengths

    encoder = load_encoder(preset, checkpoint=checkpoint)
    long = validate_task(task, prompt_token_limit(encoder), partial(token_lengths, encoder))
    embeddings = embed_task_prompts(task, encoder)
    return LanguagePriors(
        True,
        f"prompts embedded with the text tower of '{preset.encoder_id}'",
        embeddings,
        [str(p) for p in long],
    )


def _parts(cohort: Cohort, split: fewshot.Split) -> tuple[Part, Part, Part]:
    """(train, val, test) parts of ``split`` with their class indices."""

    def part(ids: tuple[str, ...]) -> Part:
        return Part(list(ids), cohort.targets(list(ids)))

    return part(split.train), part(split.val), part(split.test)


def fit(
    config: FitConfig,
    labels_path: str | Path,
    store_dirs: list[str | Path],
    run_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    splits_paths: list[str | Path] | None = None,
    overwrite: bool = False,
    run_id: str | None = None,
    progress: FitProgress | None = None,
    device: str = "auto",
) -> FitResult:
    """Run the few-shot protocol and write the run directory; returns per-fold rows and the summary."""
    progress = progress or FitProgress()
    training_device = resolve_device(device)  # a bad --device fails before any work
    run_dir = Path(run_dir)
    check_run_dir(run_dir, overwrite)
    spec = get_spec(config.model)
    options = model_config(config.model, config.model_options)
    task = load_task(config.task)
    encoder_id, preset = resolve_encoder(config.encoder)
    labels = read_labels(labels_path)
    cohort = build_cohort(labels, list(store_dirs), encoder_id, task.class_names, task.name)
    if splits_paths:
        splits = fewshot.load_splits(list(splits_paths), labels)
        source = ", ".join(map(str, splits_paths))
    else:
        ids = [s.slide_id for s in cohort.slides]
        splits = fewshot.make_splits(
            ids, cohort.targets(ids), task.class_names, config.shots, config.folds, config.seed
        )
        source = "generated"
    fewshot.check_splits(splits, labels, task.class_names)
    language = language_priors(config, task, preset, cohort, checkpoint)
    text_targets = _privileged_targets(config, cohort, task.name, splits, labels)

    training_seeds = config.seeds or [config.seed]
    run_id = run_id_for(run_dir, run_id)
    with writing_run(run_dir):
        write_effective_config(run_dir, "config", {"fit": config, "model_config": options})
        (run_dir / "task.yaml").write_text(_task_yaml(task), encoding="utf-8")
        if language.embeddings is not None:
            language.embeddings.save(run_dir / "text_embeddings.npz")
        fewshot.save_splits(
            run_dir / "splits.json",
            splits,
            seed=config.seed,
            folds=len({s.fold for s in splits}),
            source=source,
        )
        run = FitRunRecord(
            **run_header(rundir.RUN_FORMAT, run_id, "running"),
            task=task.name,
            class_names=list(task.class_names),
            encoder_id=encoder_id,
            encoder_preset=None if preset is None else preset.name,
            feature_dim=cohort.feature_dim,
            feature_output_kind=cohort.feature_attrs.get("output_kind"),
            model=spec.name,
            model_options=options.model_dump(mode="json"),
            train_config=config.train.model_dump(mode="json"),
            language_priors="text-embeddings" if language.used else "text-free",
            language_note=language.note,
            long_prompts=language.long_prompts,
            labels=str(Path(labels_path).resolve()),
            stores=[str(Path(p).resolve()) for p in store_dirs],
            splits_source=source,
            seed=config.seed,
            training_seeds=training_seeds,
            checkpoints=[],
        )
        write_record(run_dir / RUN_FILE, run)

        reader = DeviceBags(
            BagReader.for_cohort(cohort, cache_bytes=config.cache_mb << 20), training_device
        )
        if text_targets is not None:
            write_pairing(run_dir, text_targets.pairs, text_targets.corpus, text_targets.quality)
            run.privileged_text = PrivilegedTextRecord(
                corpus=str(Path(config.privileged_text).resolve()),
                corpus_id=text_targets.corpus.corpus_id,
                paired="slides of the training parts only",
                pairing=text_targets.quality.to_json(),
            )
            write_record(run_dir / RUN_FILE, run)
        progress.start([s for _ in training_seeds for s in splits], config.train.epochs)
        rows, curves, histories = [], {}, {}
        pooled: dict[tuple[int, int], list[tuple[list[str], np.ndarray]]] = {}
        for train_seed in training_seeds:
            for split in splits:
                progress.split_started(split)
                result = _fit_split(
                    config,
                    options,
                    cohort,
                    reader,
                    split,
                    language.embeddings,
                    progress,
                    train_seed,
                    text_targets,
                )
                out = rundir.fold_dir(run_dir, split.shots, split.fold)
                if len(training_seeds) > 1:
                    out = out / f"seed_{train_seed}"
                out.mkdir(parents=True, exist_ok=True)
                meta = MilCheckpointMeta(
                    **run.model_dump(include=CHECKPOINT_KEYS),
                    language_priors=language.used,
                    shots=split.shots,
                    fold=split.fold,
                    seed=train_seed,
                    best_epoch=result.fold.best_epoch,
                )
                rundir.save_checkpoint(out / "model.pt", result.model, meta, language.embeddings)
                write_json(out / "history.json", result.fold.history)
                _write_test_predictions(out / "test_predictions.csv", result.fold, cohort)
                run.checkpoints.append(
                    CheckpointEntry(
                        shots=split.shots,
                        fold=split.fold,
                        seed=train_seed,
                        path=str((out / "model.pt").relative_to(run_dir)),
                    )
                )
                row = {
                    "model": spec.name,
                    "shots": split.shots,
                    "fold": split.fold,
                    "seed": train_seed,
                    **result.fold.test_metrics,
                    "best_epoch": result.fold.best_epoch,
                    "epochs_run": len(result.fold.history),
                    "n_train": len(split.train),
                    "n_val": len(split.val),
                    "n_test": len(split.test),
                    "seconds": round(result.fold.seconds, 2),
                }
                if result.fusion:
                    row["fusion"] = result.fusion
                rows.append(row)
                pooled.setdefault((split.shots, train_seed), []).append(
                    (result.fold.test_ids, result.fold.test_probs)
                )
                if train_seed == training_seeds[0]:
                    curves.setdefault(split.shots, []).append(
                        (cohort.targets(result.fold.test_ids), result.fold.test_probs)
                    )
                    histories.setdefault(split.shots, []).append(result.fold.history)
                progress.split_finished(split, row)
        summary = _summary(rows, pooled, cohort, training_seeds)
        report.write_results(run_dir, rows, spec.name, summary)
        report.plot_roc(run_dir / "roc.png", curves, list(task.class_names))
        report.plot_curves(run_dir / "curves.png", histories)
        run.status, run.completed = "complete", utc_now()
        run.summary = {str(k): v for k, v in summary.items()}
        write_record(run_dir / RUN_FILE, run)
    return FitResult(run_dir, run_id, rows, summary, language)


@dataclass
class _SplitOutcome:
    model: Any
    fold: FoldResult
    fusion: dict[str, float]


def _fit_split(
    config: FitConfig,
    options: StrictModel,
    cohort: Cohort,
    reader: DeviceBags,
    split: fewshot.Split,
    text: TaskEmbeddings | None,
    progress: FitProgress,
    train_seed: int,
    text_targets: SlideTextTargets | None = None,
) -> _SplitOutcome:
    seed = seed_everything(train_seed, split.shots, split.fold)
    model = create_model(config.model, options, cohort.feature_dim, len(cohort.class_names), text)
    train, val, test = _parts(cohort, split)
    auxiliary = (
        None if text_targets is None else text_targets.distiller(options.dim, list(train.ids))
    )
    prepare_model(model, reader, train, config.train.kmeans_patches, seed)
    model.to(reader.device)
    result = train_fold(
        model,
        reader,
        train,
        val,
        test,
        len(cohort.class_names),
        config.train,
        seed,
        partial(progress.epoch, split),
        auxiliary,
    )
    fusion = fusion_summary(model, reader, test.ids, result)
    return _SplitOutcome(model.to("cpu"), result, fusion)  # checkpoints are saved from the CPU


def _privileged_targets(
    config: FitConfig,
    cohort: Cohort,
    task: str,
    splits: list[fewshot.Split],
    labels: dict[str, str],
) -> SlideTextTargets | None:
    """CLIP-IT targets of the slides in any training part, or None without ``privileged_text``."""
    if config.privileged_text is None:
        return None
    reader = BagReader.for_cohort(cohort, cache_bytes=0)
    return slide_text_targets(
        config.privileged_text,
        config.model,
        task,
        cohort.feature_attrs,
        cohort.feature_dim,
        sorted({s for split in splits for s in split.train}),
        lambda slide_id: reader.get(slide_id).numpy(),
        labels,
        config.privileged_weight,
    )


#: Entries of the kept epoch's training record that describe the fusion.
FUSION_RECORD_PREFIXES = ("grad_rms.", "displacement.", "tau_", "gate", "diagnostic_prototypes")


def fusion_summary(
    model: Any, reader: BagReader, test_ids: list[str], result: FoldResult
) -> dict[str, float]:
    """Fusion diagnostics of the kept model on the test bags (nothing is selected on them), with
    the kept epoch's learned temperatures, prototype displacements and gradient magnitudes, and
    the first epoch's gradient magnitudes (``first_epoch.grad_rms.*``)."""
    out = model.evaluation_diagnostics(reader.get(s) for s in test_ids)
    if not out:
        return {}
    kept = result.history[result.best_epoch - 1]
    out.update({k: v for k, v in kept.items() if k.startswith(FUSION_RECORD_PREFIXES)})
    first = result.history[0]  # gradients before the classification loss saturates
    out.update({f"first_epoch.{k}": v for k, v in first.items() if k.startswith("grad_rms.")})
    return out


def _summary(
    rows: list[dict[str, Any]],
    pooled: dict[tuple[int, int], list[tuple[list[str], np.ndarray]]],
    cohort: Cohort,
    training_seeds: list[int],
) -> dict[int, dict[str, dict[str, float]]]:
    """Per shots: mean ± std over folds (one seed) or over seeds, with a bootstrap 95 % CI over test slides."""
    summary = {}
    for shots in sorted({r["shots"] for r in rows}):
        predictions = []
        for train_seed in training_seeds:
            ids = [s for part_ids, _ in pooled[(shots, train_seed)] for s in part_ids]
            probs = np.concatenate([p for _, p in pooled[(shots, train_seed)]])
            predictions.append(
                seeds.SeedPredictions(train_seed, tuple(ids), cohort.targets(ids), probs)
            )
        shot_rows = [r for r in rows if r["shots"] == shots]
        if len(training_seeds) > 1:
            summary[shots] = seeds.seed_summary(shot_rows, predictions)
        else:
            summary[shots] = report.summary_by_shots(shot_rows)[shots]
            for metric, (low, high) in seeds.bootstrap_ci(predictions).items():
                summary[shots][metric].update(ci_low=low, ci_high=high)
    return summary


def _write_test_predictions(path: Path, result: FoldResult, cohort: Cohort) -> None:
    index = cohort.by_id()
    names = cohort.class_names
    lines = ["slide_id,label,predicted," + ",".join(f"prob_{c}" for c in names)]
    for slide_id, probs in zip(result.test_ids, result.test_probs, strict=True):
        lines.append(
            f"{slide_id},{index[slide_id].label},{names[int(np.argmax(probs))]},"
            + ",".join(f"{p:.6f}" for p in probs)
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _task_yaml(task: TaskPrompts) -> str:
    import yaml

    return yaml.safe_dump(
        task.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100
    )
