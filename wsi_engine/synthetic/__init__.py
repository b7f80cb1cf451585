"""Synthetic whole-slide images with ground truth: the project's own test and demo data.

Slides are pyramidal, tiled, JPEG-compressed TIFFs (levels 4× apart) that
OpenSlide and tiffslide open, in a ``generic`` flavour (µm/px in the TIFF
resolution tags) or an Aperio-SVS-like ``aperio`` flavour (MPP and AppMag in
the ImageDescription). Content is a procedural function of level-0
coordinates (H&E-like tissue fragments on glass, optional planted lesions
and artefacts), so any tile of any level renders on its own and memory does
not grow with the slide size.

Public API:

* :func:`generate_slide` writes one slide and returns its :class:`SlideTruth`.
* :func:`generate_cohort` writes a labelled cohort and returns a
  :class:`CohortManifest`.
"""

from wsi_engine.synthetic.artefacts import ARTEFACT_NAMES
from wsi_engine.synthetic.cohort import (
    CohortManifest,
    CohortSlide,
    SlidePlan,
    cohort_tile_count,
    generate_cohort,
    plan_cohort,
)
from wsi_engine.synthetic.lesions import NORMAL_LABEL, PATTERNS
from wsi_engine.synthetic.slide import generate_slide
from wsi_engine.synthetic.truth import SlideTruth
from wsi_engine.synthetic.writer import FLAVORS, LEVEL_DOWNSAMPLE, pyramid_dimensions, tile_count

__all__ = [
    "ARTEFACT_NAMES",
    "FLAVORS",
    "LEVEL_DOWNSAMPLE",
    "NORMAL_LABEL",
    "PATTERNS",
    "CohortManifest",
    "CohortSlide",
    "SlidePlan",
    "SlideTruth",
    "cohort_tile_count",
    "generate_cohort",
    "generate_slide",
    "plan_cohort",
    "pyramid_dimensions",
    "tile_count",
]
