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

``model.pt`` is a plain dict: ``format``, ``meta`` (head config, level
names, feature dimension, class names, task, encoder id, run id) and
``state_dict``; it is all ``predict-patches`` needs.

Claiming, clearing and reading the directory: :mod:`wsi_engine.training.rundir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wsi_engine.patch.head import HeadConfig, PatchHead, empty_head
from wsi_engine.training import checkpoint, rundir

PATCH_RUN_FORMAT = "wsi-engine-patch-run"
PATCH_CHECKPOINT_FORMAT = "wsi-engine-patch-checkpoint"
CHECKPOINT_NAME = "model.pt"


def save_head(path: Path, head: PatchHead, meta: dict[str, Any]) -> None:
    """Write the checkpoint of ``head``; ``meta`` must hold ``feature_dim`` and ``class_names``.

    ``head`` may be a CLIP-IT late-fusion head (its image head gives the head config).
    """
    image = getattr(head, "image", head)
    meta = {
        **meta,
        "head_config": image.config.model_dump(mode="json"),
        "level_names": image.level_names,
    }
    checkpoint.save_checkpoint(path, PATCH_CHECKPOINT_FORMAT, meta, head.state_dict())


def load_head(path: Path) -> tuple[PatchHead, dict[str, Any]]:
    """The head of a checkpoint, in eval mode, and its ``meta``.

    A CLIP-IT run (``meta["late_fusion"]``) gives its late-fusion head, whose
    forward pass is image-only (:class:`wsi_engine.reports.distill.LateFusionHead`).
    """
    payload = checkpoint.load_checkpoint(
        path, PATCH_CHECKPOINT_FORMAT, "wsi-engine patch-classifier checkpoint"
    )
    meta = payload["meta"]
    config = HeadConfig.model_validate(meta["head_config"])
    n_classes = len(meta["class_names"])
    head = empty_head(config, int(meta["feature_dim"]), n_classes, list(meta["level_names"]))
    if "late_fusion" in meta:
        from wsi_engine.reports.distill import LateFusionHead, TextClassifier

        text_dim = int(meta["late_fusion"]["text_dim"])
        head = LateFusionHead(head, text_dim, TextClassifier(text_dim, n_classes))
    checkpoint.restore(head, payload, path)
    return head.eval(), meta


def read_patch_run(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a finished ``fit-patches`` run."""
    return rundir.read_run(
        run_dir,
        PATCH_RUN_FORMAT,
        "wsi-engine patch run",
        "fit-patches",
        hint="give the --out of `wsi-engine fit-patches` (bag runs of `fit` are read by `predict`)",
    )
