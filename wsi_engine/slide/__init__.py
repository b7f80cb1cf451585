"""Reading whole-slide images: one small reader interface over OpenSlide and tiffslide.

``open_slide(path)`` returns a :class:`SlideReader` with level geometry,
level-0 µm/px (:class:`Mpp`, with its source), metadata and RGB reads; see
:mod:`wsi_engine.slide.open` for backend choice and :mod:`wsi_engine.slide.mpp`
for the µm/px rules, :mod:`wsi_engine.slide.discovery` for finding slides in folders.
"""

from wsi_engine.slide.discovery import SLIDE_EXTENSIONS, find_slide_by_id, find_slides
from wsi_engine.slide.mpp import load_mpp_table
from wsi_engine.slide.open import open_slide
from wsi_engine.slide.reader import Mpp, SlideReader

__all__ = [
    "SLIDE_EXTENSIONS",
    "Mpp",
    "SlideReader",
    "find_slide_by_id",
    "find_slides",
    "load_mpp_table",
    "open_slide",
]
