"""Checkpoint files: a plain dict saved with ``torch.save`` and read back with ``weights_only=True``.

Layout: ``{"format": <kind>, "meta": {...}, "state_dict": {...}, **extra}``;
``format`` names what wrote it, so a file of another kind is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from wsi_engine.errors import DataError


def save_checkpoint(
    path: Path,
    kind: str,
    meta: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    **extra: Any,
) -> None:
    """Write a checkpoint of format ``kind``; ``extra`` adds top-level entries (tensors, plain data)."""
    torch.save({"format": kind, "meta": meta, **extra, "state_dict": state_dict}, path)


def load_checkpoint(path: Path, kind: str, what: str) -> dict[str, Any]:
    """The payload of a checkpoint of format ``kind``; DataError naming ``what`` it should be otherwise."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise DataError(f"cannot read the checkpoint ({error})", path=path) from error
    if not isinstance(payload, dict) or payload.get("format") != kind:
        raise DataError(f"not a {what}", path=path)
    return payload
