"""Heatmaps for pathologists, from the scores already in the patch stores.

:func:`make_heatmaps` writes, per slide, an overlay PNG (thumbnail + colour
map inside the tissue + labelled colour bar), QuPath tile objects (GeoJSON),
a pyramidal TIFF of the score map that OpenSlide and tiffslide open, a top-k /
bottom-k patch gallery, and one HTML report per cohort. Colour scales are
described in :mod:`wsi_engine.heatmap.scales`; the output layout in
:mod:`wsi_engine.heatmap.render`.

The names below are imported on first use (rendering needs matplotlib and scipy, which the
command line should not load before it is needed).
"""

from typing import TYPE_CHECKING

from wsi_engine.lazy import lazy_attributes

if TYPE_CHECKING:
    from wsi_engine.heatmap.render import FORMATS, HeatmapReport, SlideResult, make_heatmaps
    from wsi_engine.heatmap.scales import MODES, QUANTITIES, ColourScale, make_scale

_HOMES = {
    "FORMATS": "render",
    "HeatmapReport": "render",
    "SlideResult": "render",
    "make_heatmaps": "render",
    "MODES": "scales",
    "QUANTITIES": "scales",
    "ColourScale": "scales",
    "make_scale": "scales",
}

__all__ = [
    "ColourScale",
    "FORMATS",
    "HeatmapReport",
    "MODES",
    "QUANTITIES",
    "SlideResult",
    "make_heatmaps",
    "make_scale",
]

__getattr__ = lazy_attributes(__name__, _HOMES)
