"""The run directory of ``wsi-engine fit-patches`` and its checkpoint.

Layout::

    RUN2/
      run.json              format "wsi-engine-patch-run": run id, source (bag run or image folder),
                            task, class order, encoder id, head, language priors, counts, skipped, metrics
      config.yaml           effective configuration with provenance
      model.pt              the selected head (torch.load(weights_only=True))
      history.json          per-epoch losses, validation metrics, level weights, logit scale
      metrics.json, metrics.csv, confusion.png
      targets.csv           per slide: patches per hard target (bag-run source only)
      skipped.csv           inputs left out and why
      text_embeddings.npz   prompt embeddings the head started from (absent when text-free)

``model.pt`` is a plain dict: ``format``, ``meta``
(:class:`~wsi_engine.training.records.PatchCheckpointMeta`: head config, level
names, feature dimension, class names, task, encoder id, run id) and
``state_dict``; it is all ``predict-patches`` needs.

Claiming, clearing and reading the directory: :mod:`wsi_engine.training.rundir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wsi_engine.patch.head import HeadConfig, PatchHead, empty_head
from wsi_engine.training import checkpoint
from wsi_engine.training.records import (
    PATCH_RUN_FORMAT,
    PatchCheckpointMeta,
    PatchRunRecord,
    parse_record,
    read_run_record,
)

__all__ = ["CHECKPOINT_NAME", "PATCH_RUN_FORMAT", "load_head", "read_patch_run", "save_head"]
PATCH_CHECKPOINT_FORMAT = "wsi-engine-patch-checkpoint"
CHECKPOINT_NAME = "model.pt"


def save_head(
    path: Path, head: PatchHead, meta: PatchCheckpointMeta | dict[str, Any]
) -> PatchCheckpointMeta:
    """Write the checkpoint of ``head`` with ``meta`` completed by the head config and level names;
    returns that meta.

    ``head`` may be a CLIP-IT late-fusion head (its image head gives the head config).
    """
    image = getattr(head, "image", head)
    meta = PatchCheckpointMeta.model_validate(meta).model_copy()
    meta.head_config = image.config.model_dump(mode="json")
    meta.level_names = list(image.level_names)
    checkpoint.save_checkpoint(path, PATCH_CHECKPOINT_FORMAT, meta.to_json(), head.state_dict())
    return meta


def load_head(path: Path) -> tuple[PatchHead, PatchCheckpointMeta]:
    """The head of a checkpoint, in eval mode, and its ``meta``.

    A CLIP-IT run (``meta.late_fusion``) gives its late-fusion head, whose
    forward pass is image-only (:class:`wsi_engine.reports.distill.LateFusionHead`).
    """
    payload = checkpoint.load_checkpoint(
        path, PATCH_CHECKPOINT_FORMAT, "wsi-engine patch-classifier checkpoint"
    )
    what = "wsi-engine patch-classifier checkpoint's meta"
    meta = parse_record(PatchCheckpointMeta, payload.get("meta"), path, what)
    config = HeadConfig.model_validate(meta.head_config)
    n_classes = len(meta.class_names)
    head = empty_head(config, meta.feature_dim, n_classes, meta.level_names)
    if meta.late_fusion is not None:
        from wsi_engine.reports.distill import LateFusionHead, TextClassifier

        text_dim = meta.late_fusion.text_dim
        head = LateFusionHead(head, text_dim, TextClassifier(text_dim, n_classes))
    checkpoint.restore(head, payload, path)
    return head.eval(), meta


def read_patch_run(run_dir: Path) -> PatchRunRecord:
    """``run.json`` of a finished ``fit-patches`` run."""
    return read_run_record(
        run_dir,
        PatchRunRecord,
        "wsi-engine patch run",
        "fit-patches",
        hint="give the --out of `wsi-engine fit-patches` (bag runs of `fit` are read by `predict`)",
    )
