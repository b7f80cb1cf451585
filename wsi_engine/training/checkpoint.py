"""Checkpoint files: a plain dict saved with ``torch.save`` and read back with ``weights_only=True``.

Layout: ``{"format": <kind>, "meta": {...}, "state_dict": {...}, **extra}``;
``format`` names what wrote it, so a file of another kind is refused.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wsi_engine.errors import DataError, output_error


def save_checkpoint(
    path: Path,
    kind: str,
    meta: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    **extra: Any,
) -> None:
    """Write a checkpoint of format ``kind``; ``extra`` adds top-level entries (tensors, plain data).

    Written to a temporary file, then renamed; a full disk or an unwritable
    folder is an :class:`~wsi_engine.errors.OutputError` naming ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        torch.save({"format": kind, "meta": meta, **extra, "state_dict": state_dict}, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:  # torch's zip writer reports ENOSPC as RuntimeError
        tmp.unlink(missing_ok=True)
        raise output_error(error, path) from error


def load_checkpoint(path: Path, kind: str, what: str) -> dict[str, Any]:
    """The payload of a checkpoint of format ``kind``; DataError naming ``what`` it should be otherwise."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # torch's message advises weights_only=False: unsafe
        raise DataError(
            f"not a safe {what}: it holds objects other than tensors and plain data",
            path=path,
            hint="only checkpoints written by wsi-engine can be loaded; refit the run",
        ) from error
    except (OSError, RuntimeError, ValueError, EOFError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise DataError(
            f"cannot read the checkpoint ({reason})", path=path, hint="refit the run"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != kind:
        raise DataError(f"not a {what}", path=path)
    return payload


def restore(module: nn.Module, payload: dict[str, Any], path: Path) -> nn.Module:
    """Load ``payload["state_dict"]`` into ``module``; DataError naming ``path`` when it does not fit."""
    try:
        module.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError) as error:
        reason = str(error).splitlines()[0][:200]
        raise DataError(
            f"the checkpoint does not fit its model ({type(error).__name__}: {reason})",
            path=path,
            hint="the file is damaged or was edited; refit the run",
        ) from error
    return module
