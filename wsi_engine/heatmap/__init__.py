"""Heatmaps for pathologists, from the scores already in the patch stores.

:func:`make_heatmaps` writes, per slide, an overlay PNG (thumbnail + colour
map inside the tissue + labelled colour bar), QuPath tile objects (GeoJSON),
a pyramidal TIFF of the score map that OpenSlide and tiffslide open, a top-k /
bottom-k patch gallery, and one HTML report per cohort. Colour scales are
described in :mod:`wsi_engine.heatmap.scales`; the output layout in
:mod:`wsi_engine.heatmap.render`.
"""

from wsi_engine.heatmap.render import FORMATS, HeatmapReport, SlideResult, make_heatmaps
from wsi_engine.heatmap.scales import MODES, QUANTITIES, ColourScale, make_scale

__all__ = [
    "FORMATS",
    "MODES",
    "QUANTITIES",
    "ColourScale",
    "HeatmapReport",
    "SlideResult",
    "make_heatmaps",
    "make_scale",
]
