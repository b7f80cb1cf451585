"""Output files of the heatmap stage: safe names; atomic writes from :mod:`wsi_engine.atomic`."""

from __future__ import annotations

from wsi_engine.atomic import atomic_output, ensure_dir
from wsi_engine.slide.ids import sanitize_name

__all__ = ["atomic_output", "class_file_name", "ensure_dir"]


def class_file_name(prefix: str, class_name: str, suffix: str) -> str:
    """``<prefix>_<sanitised class><suffix>``, e.g. ``overlay_tumor.png``."""
    return f"{prefix}_{sanitize_name(class_name)}{suffix}"
