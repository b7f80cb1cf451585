"""The ``slide`` attribute section of a patch store (docs/store.md) and the slide file's fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from wsi_engine.slide.bounds import slide_bounds
from wsi_engine.slide.reader import SlideReader

FINGERPRINT_BYTES = 1 << 20
"""Bytes hashed at each end of a slide file."""


def file_fingerprint(path: str | Path) -> str:
    """``sha256:<hex>`` of the file's size and its first and last MiB.

    Cheap on gigabyte files and changes when a file is replaced, truncated
    or re-scanned; used to decide whether a partial store may be resumed.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            handle.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(handle.read(FINGERPRINT_BYTES))
    return f"sha256:{digest.hexdigest()}"


def slide_attrs(reader: SlideReader, slide_id: str) -> dict[str, Any]:
    """The ``slide`` section: identity, fingerprint, format and level-0 geometry of the source."""
    path = Path(reader.path).resolve()
    mpp = reader.mpp
    return {
        "id": slide_id,
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "fingerprint": file_fingerprint(path),
        "vendor": reader.vendor or reader.format,
        "format": reader.format,
        "backend": reader.backend,
        "dimensions": list(reader.dimensions),
        "level_count": reader.level_count,
        "mpp": [mpp.x, mpp.y] if mpp else None,
        "mpp_source": mpp.source if mpp else None,
        "objective_power": reader.objective_power,
        "bounds": slide_bounds(reader.properties),
    }
