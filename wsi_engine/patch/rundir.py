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

Creating, clearing and locking the directory reuse :mod:`wsi_engine.mil.rundir`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from wsi_engine.errors import DataError
from wsi_engine.patch.head import HeadConfig, PatchHead, empty_head

PATCH_RUN_FORMAT = "wsi-engine-patch-run"
PATCH_CHECKPOINT_FORMAT = "wsi-engine-patch-checkpoint"
CHECKPOINT_NAME = "model.pt"


def save_head(path: Path, head: PatchHead, meta: dict[str, Any]) -> None:
    """Write the checkpoint of ``head``; ``meta`` must hold ``feature_dim`` and ``class_names``."""
    payload = {
        "format": PATCH_CHECKPOINT_FORMAT,
        "meta": {
            **meta,
            "head_config": head.config.model_dump(mode="json"),
            "level_names": head.level_names,
        },
        "state_dict": head.state_dict(),
    }
    torch.save(payload, path)


def load_head(path: Path) -> tuple[PatchHead, dict[str, Any]]:
    """The head of a checkpoint, in eval mode, and its ``meta``."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise DataError(f"cannot read the checkpoint ({error})", path=path) from error
    if not isinstance(payload, dict) or payload.get("format") != PATCH_CHECKPOINT_FORMAT:
        raise DataError("not a wsi-engine patch-classifier checkpoint", path=path)
    meta = payload["meta"]
    config = HeadConfig.model_validate(meta["head_config"])
    head = empty_head(
        config, int(meta["feature_dim"]), len(meta["class_names"]), list(meta["level_names"])
    )
    head.load_state_dict(payload["state_dict"])
    return head.eval(), meta


def read_patch_run(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a finished ``fit-patches`` run."""
    path = run_dir / "run.json"
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(
            "not a wsi-engine patch run (no readable run.json)", path=run_dir
        ) from error
    if run.get("format") != PATCH_RUN_FORMAT:
        raise DataError(
            f"not a wsi-engine patch run (format {run.get('format')!r})",
            path=path,
            hint="give the --out of `wsi-engine fit-patches` (bag runs of `fit` are read by `predict`)",
        )
    if run.get("status") != "complete":
        raise DataError(
            "this fit-patches run did not finish",
            path=run_dir,
            hint="rerun `wsi-engine fit-patches ... --overwrite`",
        )
    return run
