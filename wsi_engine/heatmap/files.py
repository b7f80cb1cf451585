"""Output files of the heatmap stage: atomic writes and safe names."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wsi_engine.errors import OutputError
from wsi_engine.store.layout import sanitize_name


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    A killed or failed run never leaves a truncated file under the final name.
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


def class_file_name(prefix: str, class_name: str, suffix: str) -> str:
    """``<prefix>_<sanitised class><suffix>``, e.g. ``overlay_tumor.png``."""
    return f"{prefix}_{sanitize_name(class_name)}{suffix}"
