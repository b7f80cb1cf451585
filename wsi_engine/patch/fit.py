"""``wsi-engine fit-patches``: a patch classifier from a bag run's evidence, or from labelled image folders.

Both sources end in a :class:`~wsi_engine.patch.dataset.PatchSet` and share
the rest: split by slide (image) → head built from the prompt embeddings
(zero-shot start) → zero-shot metrics → training → metrics, confusion matrix,
checkpoint and run files (:mod:`wsi_engine.patch.rundir`).

Language priors: the head starts from the task's ``label``/``basic``/
``detailed`` prompt embeddings only when they live in the features' space,
i.e. the features are the encoder's joint image-text output (``output_kind``
``joint``) of the same width; otherwise it is text-free and the run says why.
A bag run provides its saved ``text_embeddings.npz``; an image folder needs
``--task`` and an encoder with a text tower.

Out of sample: the slides (images) are split three ways, *training*
(targets the head learns from), *validation* (early stopping, checkpoint
selection) and *test* (the reported metrics), so no reported metric is
computed on data that trained or selected the head. From a bag run with a
``splits.json`` the split is the bag fold's own (``--fold``, default
``auto``: the first fold): targets only from the fold's training slides,
validation on its validation slides, metrics on its test slides, all with
that fold's model, which never trained on the validation or test slides.
``--fold all`` is refused there (every slide is a validation or test slide
of one of the fold models). Without splits (image folders, runs of other
tools) the groups are split at random by slide (image): test, then
validation, ``val_fraction`` each. For a bag-run source the metrics use the
confident targets of the test slides, not ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from wsi_engine.config.loader import StrictModel, write_effective_config
from wsi_engine.errors import DataError
from wsi_engine.mil.data import read_labels
from wsi_engine.mil.metrics import classification_metrics
from wsi_engine.mil.predict import select_checkpoints
from wsi_engine.mil.rundir import read_run
from wsi_engine.patch import report
from wsi_engine.patch.dataset import PatchSet, split_three_ways
from wsi_engine.patch.evidence import (
    BagRun,
    Skipped,
    collect_evidence,
    fold_roles,
    load_bag_run,
    resolve_evidence,
)
from wsi_engine.patch.head import HeadConfig, build_head
from wsi_engine.patch.images import encode_folder, encoder_embedder, scan_image_folder
from wsi_engine.patch.privileged import distill_patch_head, load_privileged_corpus
from wsi_engine.patch.rundir import CHECKPOINT_NAME, PATCH_RUN_FORMAT, save_head
from wsi_engine.patch.targets import TargetConfig
from wsi_engine.patch.train import PatchTrainConfig, evaluate, train_head
from wsi_engine.prompts import LanguagePriors, TaskEmbeddings
from wsi_engine.reports.quality import write_pairing
from wsi_engine.reports.settings import PrivilegedTextConfig
from wsi_engine.training.device import resolve_device
from wsi_engine.training.records import (
    RUN_FILE,
    LateFusionRecord,
    PatchCheckpointMeta,
    PatchRunRecord,
    PrivilegedTextRecord,
    run_header,
    write_record,
)
from wsi_engine.training.rundir import (
    check_run_dir,
    run_id_for,
    write_json,
    write_rows,
    writing_run,
)


class BagEvidenceConfig(StrictModel):
    """Which bag models give the evidence, and how many patches per slide are kept for training."""

    shots: int | None = Field(
        None, ge=1, description="shot setting of the bag models [the largest]"
    )
    fold: str = Field(
        "auto",
        description="fold model, 'all' to average every fold (runs without splits only), or "
        "'auto': the first fold when the run has splits.json, else all",
    )
    max_patches_per_slide: int = Field(
        4000, ge=1, description="random patches per slide kept for training (targets use all)"
    )


class FitPatchesConfig(StrictModel):
    """Everything that defines a fit-patches run besides its inputs (written to ``config.yaml``)."""

    head: HeadConfig = Field(default_factory=HeadConfig)
    train: PatchTrainConfig = Field(default_factory=PatchTrainConfig)
    targets: TargetConfig = Field(default_factory=TargetConfig)
    bag: BagEvidenceConfig = Field(default_factory=BagEvidenceConfig)
    seed: int = 0
    text_free: bool = Field(
        False, description="start from random class weights even when prompt embeddings fit"
    )
    privileged_text: PrivilegedTextConfig = Field(default_factory=PrivilegedTextConfig)

    @model_validator(mode="after")
    def _metric_needs_mlp(self) -> FitPatchesConfig:
        if self.train.metric != "none" and not self.head.hidden:
            raise ValueError(
                "a metric loss needs an MLP head (head.hidden > 0): a linear head has no embedding to train"
            )
        return self


class PatchSources(StrictModel):
    """Where ``fit-patches`` takes its patches: a bag run's evidence on stores, or an image folder."""

    from_run: str | None = Field(None, description="bag run directory of `wsi-engine fit`")
    images: str | None = Field(None, description="labelled patch folder, one sub-folder per class")
    stores: list[str] = Field(default_factory=list, description="stores of the labelled slides")
    stores_2: list[str] = Field(
        default_factory=list, description="the same slides' stores at another µm/px"
    )
    labels: str | None = Field(None, description="labels CSV [the bag run's]")
    task: str | None = None
    encoder: str | None = Field(None, description="encoder preset that encodes --images")
    checkpoint: str | None = Field(None, description="encoder weights file (with --images)")


class FitPatchesSettings(FitPatchesConfig):
    """``fit-patches``' settings: the run's configuration and its source, with the rules across them."""

    source: PatchSources = Field(default_factory=PatchSources)

    @model_validator(mode="after")
    def _one_source(self) -> FitPatchesSettings:
        source = self.source
        if (source.from_run is None) == (source.images is None):
            raise ValueError("give exactly one of --from-run and --images")
        if source.from_run is not None and (
            not source.stores or source.encoder or source.checkpoint
        ):
            raise ValueError(
                "--from-run needs --stores and takes no --encoder/--checkpoint (the run's encoder is used)"
            )
        if source.images is not None and (
            source.encoder is None or source.stores or source.stores_2 or source.labels
        ):
            raise ValueError(
                "--images needs --encoder and takes no --stores, --stores-2 or --labels"
            )
        if self.train.metric != "none" and not source.stores_2:
            raise ValueError(
                f"--metric {self.train.metric} needs --stores-2 (the same slides at another µm/px)"
            )
        return self

    def run_config(self) -> FitPatchesConfig:
        """The configuration written with the run (everything but the source)."""
        return FitPatchesConfig.model_validate(
            self.model_dump(exclude={"source"}, exclude_unset=True)
        )


@dataclass
class PatchFitResult:
    run_dir: Path
    run_id: str
    metrics: list[dict[str, Any]]
    language: LanguagePriors
    counts: dict[str, int]
    best_epoch: int
    skipped: list[Skipped] = field(default_factory=list)
    privileged: dict[str, Any] | None = None


@dataclass
class _Source:
    """What a source hands to the shared training: patches, classes, text and provenance."""

    patches: PatchSet
    class_names: list[str]
    task: str | None
    encoder_id: str
    language: LanguagePriors
    provenance: dict[str, Any]
    skipped: list[Skipped]
    slide_rows: list[dict[str, Any]] = field(default_factory=list)
    roles: list[str] | None = None
    feature_attrs: dict[str, Any] = field(default_factory=dict)


def head_language(
    text: TaskEmbeddings | None,
    output_kind: str | None,
    feature_dim: int,
    text_free: bool,
    why_none: str,
) -> LanguagePriors:
    """Whether the head may start from ``text`` (module docstring)."""
    if text_free:
        return LanguagePriors(False, "text-free head requested (--text-free)")
    if text is None:
        return LanguagePriors(False, f"text-free head: {why_none}")
    if output_kind != "joint":
        return LanguagePriors(
            False, f"text-free head: features are '{output_kind}', not in the image-text space"
        )
    if text.dim != feature_dim:
        return LanguagePriors(
            False, f"text-free head: prompt embeddings are {text.dim}-d, features {feature_dim}-d"
        )
    return LanguagePriors(
        True,
        f"head starts from the prompt embeddings of '{text.encoder_id}' (zero-shot start)",
        text,
    )


def _bag_source(
    config: FitPatchesConfig,
    bag: BagRun,
    store_dirs: list[Path],
    labels_path: Path | None,
    second_dirs: list[Path] | None,
) -> _Source:
    labels_path = Path(labels_path or bag.run.labels)
    evidence = collect_evidence(
        bag,
        read_labels(labels_path),
        list(store_dirs),
        config.targets,
        max_patches_per_slide=config.bag.max_patches_per_slide,
        seed=config.seed,
        second_store_dirs=second_dirs,
        roles=fold_roles(bag),
    )
    text_path = bag.run_dir / "text_embeddings.npz"
    text = TaskEmbeddings.load(text_path) if text_path.exists() else None
    language = head_language(
        text,
        bag.run.feature_output_kind,
        bag.run.feature_dim,
        config.text_free,
        f"the bag run has no prompt embeddings ({bag.run.language_note})",
    )
    provenance = {
        "source": "bag-run",
        "bag_run": str(bag.run_dir.resolve()),
        "bag_run_id": bag.run.run_id,
        "bag_model": bag.run.model,
        "bag_shots": bag.shots,
        "bag_folds": bag.folds,
        "evidence": config.targets.evidence,
        "labels": str(labels_path.resolve()),
        "stores": [str(Path(p).resolve()) for p in store_dirs],
        "stores_2": [str(Path(p).resolve()) for p in second_dirs or []],
        "bag_fold_roles": evidence.roles is not None,
        "slides_outside_fold": evidence.outside_fold,
        "metrics_note": (
            f"metrics use the confident targets (from bag fold {bag.folds[0]}'s model) of that "
            "fold's test slides, not ground truth"
            if evidence.roles is not None
            else "metrics use the confident targets of held-out slides, not ground truth; the bag "
            "run has no splits.json, so its models may have trained on them"
        ),
    }
    return _Source(
        evidence.patches,
        bag.class_names,
        bag.task,
        bag.encoder_id,
        language,
        provenance,
        evidence.skipped,
        evidence.slide_rows,
        evidence.roles,
        {"encoder_id": bag.encoder_id, "output_kind": bag.run.feature_output_kind},
    )


def image_source(
    config: FitPatchesConfig,
    images: Path,
    encoder_name: str,
    task_name: str | None,
    checkpoint: Path | None,
    device: str,
    batch_size: int,
) -> _Source:
    from wsi_engine.encoders import load_encoder
    from wsi_engine.prompts import embed_task_prompts, load_task

    task = load_task(task_name) if task_name else None
    folder = scan_image_folder(images, task.class_names if task else None)
    encoder = load_encoder(encoder_name, checkpoint=checkpoint)
    patches, unreadable = encode_folder(folder, encoder_embedder(encoder, device), batch_size)
    text = (
        embed_task_prompts(task, encoder) if task is not None and encoder.config.has_text else None
    )
    why = "no --task given" if task is None else f"encoder '{encoder.encoder_id}' has no text tower"
    language = head_language(text, encoder.output_kind, encoder.embed_dim, config.text_free, why)
    provenance = {
        "source": "images",
        "images": str(Path(images).resolve()),
        "encoder_checkpoint_sha256": encoder.checkpoint_sha256,
    }
    return _Source(
        patches,
        folder.class_names,
        task.name if task else None,
        encoder.encoder_id,
        language,
        provenance,
        folder.skipped + unreadable,
        feature_attrs={
            "encoder_id": encoder.encoder_id,
            "checkpoint_sha256": encoder.checkpoint_sha256,
            "output_kind": encoder.output_kind,
        },
    )


def fit_patches_from_run(
    config: FitPatchesConfig,
    bag_run_dir: str | Path,
    store_dirs: list[str | Path],
    out: str | Path,
    *,
    labels_path: str | Path | None = None,
    second_store_dirs: list[str | Path] | None = None,
    task: str | None = None,
    overwrite: bool = False,
    run_id: str | None = None,
    device: str = "auto",
) -> PatchFitResult:
    """Train a patch classifier on the targets a bag run's evidence gives on ``store_dirs``; write ``out``.

    ``device`` (auto, cuda, cuda:N, cpu) is where the head trains."""
    out = Path(out)
    check_run_dir(out, overwrite)
    fold = resolve_bag_fold(Path(bag_run_dir), config.bag.shots, config.bag.fold)
    bag = load_bag_run(bag_run_dir, config.bag.shots, fold, task)
    config = config.model_copy(update={"targets": resolve_evidence(config.targets, bag)})
    source = _bag_source(
        config,
        bag,
        [Path(p) for p in store_dirs],
        labels_path,
        [Path(p) for p in second_store_dirs or []] or None,
    )
    return _train_and_write(config, source, out, run_id, device)


def resolve_bag_fold(run_dir: Path, shots: int | None, fold: str) -> str:
    """``fold`` with ``auto`` resolved (module docstring); ``all`` over several folds of a run with
    splits is a :class:`DataError`."""
    if not (run_dir / "splits.json").is_file():
        return "all" if fold == "auto" else fold
    folds = sorted({e.fold for e in select_checkpoints(read_run(run_dir), shots, "all")[1]})
    if fold == "auto":
        return str(folds[0])
    if fold == "all" and len(folds) > 1:
        raise DataError(
            f"--fold all would train on slides that a fold model validated or tested on "
            f"(folds {', '.join(map(str, folds))})",
            path=run_dir,
            hint="give --fold N (or leave --fold auto: the first fold), one patch run per fold",
        )
    return fold


def fit_patches_from_images(
    config: FitPatchesConfig,
    images: str | Path,
    encoder: str,
    out: str | Path,
    *,
    task: str | None = None,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    overwrite: bool = False,
    run_id: str | None = None,
) -> PatchFitResult:
    """Encode a labelled image folder with a frozen encoder and train a patch classifier; write ``out``."""
    out = Path(out)
    check_run_dir(out, overwrite)
    source = image_source(
        config,
        Path(images),
        encoder,
        task,
        None if checkpoint is None else Path(checkpoint),
        device,
        batch_size,
    )
    return _train_and_write(config, source, out, run_id, device)


def _metrics_row(stage: str, where: str, targets: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    metrics = classification_metrics(targets, probs) if len(targets) else {}
    return {"stage": stage, "evaluated_on": where, "n_patches": int(len(targets)), **metrics}


def _train_and_write(
    config: FitPatchesConfig, source: _Source, out: Path, run_id: str | None, device: str
) -> PatchFitResult:
    patches, class_names = source.patches, source.class_names
    n_classes, feature_dim = len(class_names), patches.features.shape[1]
    privileged = config.privileged_text
    corpus = (
        load_privileged_corpus(privileged, source.feature_attrs, feature_dim, source.task)
        if privileged.corpus
        else None
    )
    train, val, test = split_three_ways(
        patches, source.roles, config.train.val_fraction, config.seed
    )
    held_out = bool(test.labelled().any())
    check = test if held_out else train
    where = (
        ("test slides of the bag fold" if source.roles is not None else "test slides (images)")
        if held_out
        else "training (no test slides: in-sample)"
    )
    head = build_head(config.head, feature_dim, n_classes, source.language.embeddings, config.seed)
    head.to(resolve_device(device))
    stage = "zero-shot" if source.language.used else "untrained"
    before = _metrics_row(stage, where, *evaluate(head, check)[:2])
    result = train_head(head, train, val, n_classes, config.train, config.seed)
    targets, probs = evaluate(head, check)[:2]
    head.to("cpu")  # checkpoints are saved from the CPU
    rows = [before, _metrics_row("trained", where, targets, probs)]
    model, clip = head, None
    if corpus is not None:
        clip = distill_patch_head(
            head, train, val, n_classes, class_names, corpus, config.train, privileged, config.seed
        )
        model, result = clip.model, clip.train
        rows[-1]["stage"] = "trained (image only)"
        targets, probs = evaluate(model, check)[:2]
        rows.append(_metrics_row("clip-it (image path)", where, targets, probs))
    counts = {c: int(n) for c, n in zip(class_names, patches.counts(n_classes), strict=True)}
    run_id = run_id_for(out, run_id)
    with writing_run(out):
        write_effective_config(out, "config", {"fit_patches": config})
        if source.language.embeddings is not None:
            source.language.embeddings.save(out / "text_embeddings.npz")
        meta = PatchCheckpointMeta(
            run_id=run_id,
            model=f"patch-{config.head.kind}",
            class_names=class_names,
            task=source.task,
            encoder_id=source.encoder_id,
            feature_dim=feature_dim,
            language_priors=source.language.used,
            best_epoch=result.best_epoch,
        )
        if clip is not None:
            meta.late_fusion = LateFusionRecord(text_dim=corpus.dim, corpus=corpus.corpus_id)
            write_pairing(out, clip.pairs, corpus, clip.quality)
        meta = save_head(out / CHECKPOINT_NAME, model, meta)
        write_json(out / "history.json", result.history)
        report.write_metrics(out, rows)
        matrix = report.confusion_matrix(targets, probs.argmax(1), n_classes)
        report.plot_confusion(
            out / "confusion.png", matrix, class_names, f"patch classifier, {where} patches"
        )
        write_rows(out / "skipped.csv", [vars(s) for s in source.skipped], ("item", "reason"))
        if source.slide_rows:
            write_rows(out / "targets.csv", source.slide_rows, list(source.slide_rows[0]))
        run = PatchRunRecord(
            **run_header(PATCH_RUN_FORMAT, run_id, "complete"),
            **meta.model_dump(
                exclude={"version", "run_id", "head_config", "level_names"}, exclude_unset=True
            ),
            head=config.head.kind,
            language_note=source.language.note,
            **source.provenance,
            n_groups=len(patches.group_names),
            n_patches=len(patches),
            hard_targets=counts,
            n_train_patches=len(train),
            n_val_patches=len(val),
            n_test_patches=len(test),
            seconds=round(result.seconds, 2),
            skipped=[vars(s) for s in source.skipped],
            metrics=rows,
            confusion=matrix.tolist(),
            checkpoint=CHECKPOINT_NAME,
        )
        if clip is not None:
            run.privileged_text = PrivilegedTextRecord(
                corpus=str(Path(privileged.corpus).resolve()),
                corpus_id=corpus.corpus_id,
                paired="training patches only",
                lora_targets=clip.lora_targets,
                text_classifier_losses=clip.text_losses,
                pairing=clip.quality.to_json(),
            )
        write_record(out / RUN_FILE, run)
    return PatchFitResult(
        out,
        run_id,
        rows,
        source.language,
        counts,
        result.best_epoch,
        source.skipped,
        None if run.privileged_text is None else run.privileged_text.to_json(),
    )
