"""Atomic file writes: a temporary file beside the target, renamed over it when complete.

A killed or failed run never leaves a truncated file under the final name. Every
output file of the engine that is not inside a Zarr store is written through here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wsi_engine.errors import OutputError


def ensure_dir(folder: Path) -> Path:
    """Create ``folder`` (and parents) if needed; :class:`OutputError` when that fails."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(
            f"cannot create the output folder ({error.strerror})",
            path=folder,
            hint="check its permissions and free space, or choose another --out",
        ) from error
    return folder


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    An :class:`OSError` (permissions, a full disk) becomes an :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    ensure_dir(path.parent)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        raise OutputError(
            f"cannot write this file ({error.strerror or error})",
            path=path,
            hint="check the output folder's permissions and free space, or choose another --out",
        ) from error
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, payload: Any, *, sort_keys: bool = False) -> None:
    """Write ``payload`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(payload, indent=1, sort_keys=sort_keys))
