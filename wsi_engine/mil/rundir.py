"""The run directory of ``wsi-engine fit`` and its per-fold checkpoints.

Layout::

    RUN_DIR/
      run.json                  run id, task, class order, encoder id, model and training config,
                                language priors used or "text-free", checkpoints, status
      config.yaml               effective configuration with provenance
      task.yaml                 the task prompt set used
      text_embeddings.npz       prompt embeddings (absent for text-free runs)
      splits.json               the splits (reload with --splits)
      folds/shots_<M>/fold_<k>/ model.pt (checkpoint), history.json, test_predictions.csv
      results.csv, results.json, roc.png, curves.png

``model.pt`` is a plain dict (loadable with ``torch.load(weights_only=True)``):
``meta`` (:class:`~wsi_engine.training.records.MilCheckpointMeta`: model name
and config, class names, task, encoder id, feature dimension, shots, fold,
selected epoch), ``text`` (the prompt embeddings the
model was built from, or empty) and ``state_dict``. It is all ``predict`` needs.
Claiming, clearing and reading the directory: :mod:`wsi_engine.training.rundir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsi_engine.errors import DataError
from wsi_engine.mil.base import MILModel
from wsi_engine.mil.registry import create_model, model_config
from wsi_engine.prompts import PROMPT_FIELDS, TaskEmbeddings
from wsi_engine.training import checkpoint
from wsi_engine.training.records import (
    FIT_RUN_FORMAT,
    FitRunRecord,
    MilCheckpointMeta,
    PromptRecord,
    parse_record,
    read_run_record,
)

RUN_FORMAT = FIT_RUN_FORMAT
CHECKPOINT_FORMAT = "wsi-engine-mil-checkpoint"


def fold_dir(run_dir: Path, shots: int, fold: int) -> Path:
    return run_dir / "folds" / f"shots_{shots}" / f"fold_{fold}"


def read_run(run_dir: Path) -> FitRunRecord:
    """``run.json`` of a finished fit run."""
    return read_run_record(run_dir, FitRunRecord, "wsi-engine fit run", "fit")


def save_checkpoint(
    path: Path,
    model: MILModel,
    meta: MilCheckpointMeta | dict[str, Any],
    text: TaskEmbeddings | None,
) -> None:
    """Write ``model`` with ``meta`` (checked against :class:`MilCheckpointMeta`) and the prompt
    embeddings ``text`` it was built from (or none)."""
    meta = MilCheckpointMeta.model_validate(meta)
    arrays = (
        {}
        if text is None
        else {
            f: torch.from_numpy(np.asarray(getattr(text, f))) for f in ("entities", *PROMPT_FIELDS)
        }
    )
    text_meta = (
        {}
        if text is None
        else PromptRecord(encoder_id=text.encoder_id, class_names=list(text.class_names)).to_json()
    )
    checkpoint.save_checkpoint(
        path,
        CHECKPOINT_FORMAT,
        meta.to_json(),
        model.state_dict(),
        text={"meta": text_meta, "arrays": arrays},
    )


def load_checkpoint(path: Path) -> tuple[MILModel, MilCheckpointMeta]:
    """The model of a fold checkpoint, in eval mode, and its ``meta``."""
    payload = checkpoint.load_checkpoint(path, CHECKPOINT_FORMAT, "wsi-engine MIL checkpoint")
    meta = parse_record(
        MilCheckpointMeta, payload.get("meta"), path, "wsi-engine MIL checkpoint's meta"
    )
    try:
        text = None
        if payload["text"]["arrays"]:
            arrays = {k: v.numpy() for k, v in payload["text"]["arrays"].items()}
            what = "wsi-engine MIL checkpoint's prompt record"
            prompts = parse_record(PromptRecord, payload["text"]["meta"], path, what)
            text = TaskEmbeddings(prompts.encoder_id, tuple(prompts.class_names), **arrays)
        config = model_config(meta.model, meta.model_options, source=str(path))
        model = create_model(meta.model, config, meta.feature_dim, len(meta.class_names), text)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DataError(
            f"not a usable wsi-engine MIL checkpoint ({type(error).__name__}: {str(error)[:200]})",
            path=path,
            hint="the file is damaged or was edited; refit the run",
        ) from error
    checkpoint.restore(model, payload, path)
    return model.eval(), meta
