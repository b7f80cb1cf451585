"""Regions of a slide: tissue (a low-resolution mask or level-0 polygons) and annotated ground truth per patch.

The names below are imported on first use (the GeoJSON module needs scikit-image,
which the command line should not load before it is needed).
"""

from typing import TYPE_CHECKING

from wsi_engine.lazy import lazy_attributes

if TYPE_CHECKING:
    from wsi_engine.tissue.config import TissueConfig
    from wsi_engine.tissue.detect import detect_tissue
    from wsi_engine.tissue.geojson import load_tissue_geojson, tissue_to_geojson
    from wsi_engine.tissue.mask import TissueMask, segmentation_size
    from wsi_engine.tissue.png import load_tissue_mask_png, save_mask_png
    from wsi_engine.tissue.truth import patch_truth_fraction

_HOMES = {
    "TissueConfig": "config",
    "TissueMask": "mask",
    "detect_tissue": "detect",
    "load_tissue_geojson": "geojson",
    "load_tissue_mask_png": "png",
    "patch_truth_fraction": "truth",
    "save_mask_png": "png",
    "segmentation_size": "mask",
    "tissue_to_geojson": "geojson",
}

__all__ = [
    "TissueConfig",
    "TissueMask",
    "detect_tissue",
    "load_tissue_geojson",
    "load_tissue_mask_png",
    "patch_truth_fraction",
    "save_mask_png",
    "segmentation_size",
    "tissue_to_geojson",
]


__getattr__ = lazy_attributes(__name__, _HOMES)
