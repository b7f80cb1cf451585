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
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsi_engine.errors import DataError, OutputError
from wsi_engine.mil.base import MILModel
from wsi_engine.mil.registry import create_model, model_config
from wsi_engine.pipeline.lock import LOCK_NAME
from wsi_engine.prompts import PROMPT_FIELDS, TaskEmbeddings

RUN_FORMAT = "wsi-engine-run"
CHECKPOINT_FORMAT = "wsi-engine-mil-checkpoint"
RUN_FILE = "run.json"


def fold_dir(run_dir: Path, shots: int, fold: int) -> Path:
    return run_dir / "folds" / f"shots_{shots}" / f"fold_{fold}"


def check_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse a run directory that holds a run (unless ``overwrite``) or unrelated files."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise OutputError("the run directory is a file", path=run_dir)
    entries = [p for p in run_dir.iterdir() if p.name != LOCK_NAME]
    if not entries:
        return
    if not (run_dir / RUN_FILE).exists():
        raise OutputError(
            "the run directory is not empty and holds no wsi-engine run",
            path=run_dir,
            hint="choose a new --out",
        )
    if not overwrite:
        raise OutputError(
            "the run directory already holds a run",
            path=run_dir,
            hint="pass --overwrite to replace it",
        )


def clear_run_dir(run_dir: Path) -> None:
    """Remove an earlier run's files (keeps the lock of the current run)."""
    for entry in run_dir.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def read_run(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a finished fit run."""
    path = run_dir / RUN_FILE
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError("not a wsi-engine fit run (no readable run.json)", path=run_dir) from error
    if run.get("format") != RUN_FORMAT:
        raise DataError(f"not a wsi-engine fit run (format {run.get('format')!r})", path=path)
    if run.get("status") != "complete":
        raise DataError(
            "this fit run did not finish",
            path=run_dir,
            hint="rerun `wsi-engine fit ... --overwrite`",
        )
    return run


def save_checkpoint(
    path: Path, model: MILModel, meta: dict[str, Any], text: TaskEmbeddings | None
) -> None:
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
    payload = {
        "format": CHECKPOINT_FORMAT,
        "meta": meta,
        "text": {"meta": text_meta, "arrays": arrays},
        "state_dict": model.state_dict(),
    }
    torch.save(payload, path)


def load_checkpoint(path: Path) -> tuple[MILModel, dict[str, Any]]:
    """The model of a fold checkpoint, in eval mode, and its ``meta``."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise DataError(f"cannot read the checkpoint ({error})", path=path) from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise DataError("not a wsi-engine MIL checkpoint", path=path)
    meta = payload["meta"]
    text = None
    if payload["text"]["arrays"]:
        arrays = {k: v.numpy() for k, v in payload["text"]["arrays"].items()}
        text_meta = payload["text"]["meta"]
        text = TaskEmbeddings(text_meta["encoder_id"], tuple(text_meta["class_names"]), **arrays)
    config = model_config(meta["model"], meta["model_config"], source=str(path))
    model = create_model(meta["model"], config, meta["feature_dim"], len(meta["class_names"]), text)
    model.load_state_dict(payload["state_dict"])
    return model.eval(), meta
