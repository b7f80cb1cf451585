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
``meta`` (model name and config, class names, task, encoder id, feature
dimension, shots, fold, selected epoch), ``text`` (the prompt embeddings the
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
from wsi_engine.training import checkpoint, rundir

RUN_FORMAT = "wsi-engine-run"
CHECKPOINT_FORMAT = "wsi-engine-mil-checkpoint"


def fold_dir(run_dir: Path, shots: int, fold: int) -> Path:
    return run_dir / "folds" / f"shots_{shots}" / f"fold_{fold}"


def read_run(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a finished fit run."""
    return rundir.read_run(run_dir, RUN_FORMAT, "wsi-engine fit run", "fit")


def save_checkpoint(
    path: Path, model: MILModel, meta: dict[str, Any], text: TaskEmbeddings | None
) -> None:
    """Write ``model`` with ``meta`` and the prompt embeddings ``text`` it was built from (or none)."""
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
        else {"encoder_id": text.encoder_id, "class_names": list(text.class_names)}
    )
    checkpoint.save_checkpoint(
        path,
        CHECKPOINT_FORMAT,
        meta,
        model.state_dict(),
        text={"meta": text_meta, "arrays": arrays},
    )


def load_checkpoint(path: Path) -> tuple[MILModel, dict[str, Any]]:
    """The model of a fold checkpoint, in eval mode, and its ``meta``."""
    payload = checkpoint.load_checkpoint(path, CHECKPOINT_FORMAT, "wsi-engine MIL checkpoint")
    try:
        meta = payload["meta"]
        text = None
        if payload["text"]["arrays"]:
            arrays = {k: v.numpy() for k, v in payload["text"]["arrays"].items()}
            text_meta = payload["text"]["meta"]
            text = TaskEmbeddings(
                text_meta["encoder_id"], tuple(text_meta["class_names"]), **arrays
            )
        config = model_config(meta["model"], meta["model_config"], source=str(path))
        model = create_model(
            meta["model"], config, meta["feature_dim"], len(meta["class_names"]), text
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DataError(
            f"not a usable wsi-engine MIL checkpoint ({type(error).__name__}: {str(error)[:200]})",
            path=path,
            hint="the file is damaged or was edited; refit the run",
        ) from error
    checkpoint.restore(model, payload, path)
    return model.eval(), meta
