"""Tissue detection: which parts of a slide hold tissue, as a low-resolution mask or level-0 polygons.

Names load lazily (PEP 562), so importing :mod:`wsi_engine.tissue.config` (as
every configuration does) does not pull in scipy and scikit-image.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from wsi_engine.tissue.config import TissueConfig

_MODULE_OF = {
    "TissueMask": "mask",
    "segmentation_size": "mask",
    "detect_tissue": "detect",
    "tissue_to_geojson": "geojson",
    "load_tissue_geojson": "geojson",
    "load_tissue_mask_png": "png",
    "save_mask_png": "png",
}

__all__ = ["TissueConfig", *sorted(_MODULE_OF)]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))
