"""``fit-patches --privileged-text CORPUS``: CLIP-IT's two stages on top of the trained image-only head.

1. Pairing: every training patch gets its most similar report
   (:func:`wsi_engine.reports.pairing.pair`); only the training split is
   paired, since the text is used in training only.
2. Stage 1: the text classifier g learns the patches' classes from their
   paired reports' embeddings (:func:`~wsi_engine.reports.distill.train_text_classifier`).
   The image head has already been trained alone (the unimodal baseline).
3. Stage 2: the late-fusion model (:class:`~wsi_engine.reports.distill.LateFusionHead`)
   starts from both, LoRA (peft) on the image head's MLP adapter and on g,
   W and the fusion layer trained fully, with the patch trainer's loss plus
   λ · mean(1 − cos(h_t, W h_v)); the epoch is selected on the validation
   patches as for the baseline. LoRA updates are merged before saving.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wsi_engine.errors import DataError
from wsi_engine.patch.dataset import PatchSet
from wsi_engine.patch.head import PatchHead
from wsi_engine.patch.train import PatchTrainConfig, TrainResult, train_head
from wsi_engine.reports.corpus import ReportCorpus
from wsi_engine.reports.distill import (
    LateFusionHead,
    PatchTextTargets,
    TextClassifier,
    train_text_classifier,
)
from wsi_engine.reports.lora import linear_names, merged, with_lora
from wsi_engine.reports.pairing import Pairs, check_compatible, pair
from wsi_engine.reports.quality import PairingQuality, pairing_quality
from wsi_engine.reports.settings import PrivilegedTextConfig


@dataclass
class ClipItResult:
    """The merged late-fusion head, its training, the training patches' pairs and their quality."""

    model: LateFusionHead
    train: TrainResult
    pairs: Pairs
    quality: PairingQuality
    text_losses: list[float]
    lora_targets: list[str]


def load_privileged_corpus(
    settings: PrivilegedTextConfig,
    feature_attrs: dict[str, Any],
    feature_dim: int,
    task: str | None,
) -> ReportCorpus:
    """The configured corpus, checked against the features' encoder and the run's task."""
    corpus = ReportCorpus.load(Path(settings.corpus))
    check_compatible(corpus, feature_attrs, feature_dim, f"--privileged-text {settings.corpus}")
    if task is not None and corpus.meta.get("task") not in (None, task):
        raise DataError(
            f"the report corpus was imported for task '{corpus.meta['task']}', this run is task '{task}'",
            path=settings.corpus,
            hint=f"re-import it with --task {task}",
        )
    return corpus


def patch_item_ids(patches: PatchSet) -> list[str]:
    """``<group>#<row>`` of every patch (its slide or image, and its row)."""
    return [f"{patches.group_names[g]}#{i}" for i, g in enumerate(patches.group)]


def distill_patch_head(
    head: PatchHead,
    train: PatchSet,
    val: PatchSet,
    n_classes: int,
    class_names: list[str],
    corpus: ReportCorpus,
    train_config: PatchTrainConfig,
    settings: PrivilegedTextConfig,
    seed: int,
) -> ClipItResult:
    """CLIP-IT on top of the trained image-only ``head`` (left unchanged; module docstring)."""
    pairs = pair(train.features, corpus, patch_item_ids(train), settings.top_k)
    labels = [class_names[t] if t >= 0 else None for t in train.hard]
    quality = pairing_quality(pairs, corpus, labels)
    h_t = pairs.top1(corpus)
    labelled = train.labelled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text = TextClassifier(corpus.dim, n_classes)
        model = LateFusionHead(copy.deepcopy(head), corpus.dim, text)
    losses = train_text_classifier(
        text,
        h_t[labelled],
        train.hard[labelled],
        settings.text_epochs,
        settings.text_lr,
        train_config.weight_decay,
        seed,
    )
    targets = linear_names(model, ["image.adapter.", "text."]) if settings.lora.enabled else []
    wrapped = with_lora(model, targets, settings.lora)
    result = train_head(
        wrapped,
        train,
        val,
        n_classes,
        train_config,
        seed,
        auxiliary=PatchTextTargets(h_t, settings.weight),
    )
    final = merged(wrapped)
    final.eval()
    return ClipItResult(final, result, pairs, quality, losses, targets)


def text_dim_of(model: LateFusionHead) -> int:
    return int(model.to_text.out_features)
