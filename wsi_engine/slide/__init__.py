"""Reading whole-slide images: one small reader interface over OpenSlide and tiffslide.

``open_slide(path)`` returns a :class:`SlideReader` with level geometry,
level-0 µm/px (:class:`Mpp`, with its source), metadata and RGB reads; see
:mod:`wsi_engine.slide.open` for backend choice and :mod:`wsi_engine.slide.mpp`
for the µm/px rules, :mod:`wsi_engine.slide.discovery` for finding slides in folders,
:mod:`wsi_engine.slide.ids` for slide ids. The names below are imported on first use
(``import wsi_engine.slide.ids`` loads no slide reader).
"""

from typing import TYPE_CHECKING

from wsi_engine.lazy import lazy_attributes

if TYPE_CHECKING:
    from wsi_engine.slide.discovery import SLIDE_EXTENSIONS, find_slide_by_id, find_slides
    from wsi_engine.slide.mpp import load_mpp_table
    from wsi_engine.slide.open import open_slide
    from wsi_engine.slide.reader import Mpp, SlideReader

_HOMES = {
    "SLIDE_EXTENSIONS": "discovery",
    "Mpp": "reader",
    "SlideReader": "reader",
    "find_slide_by_id": "discovery",
    "find_slides": "discovery",
    "load_mpp_table": "mpp",
    "open_slide": "open",
}

__all__ = [
    "SLIDE_EXTENSIONS",
    "Mpp",
    "SlideReader",
    "find_slide_by_id",
    "find_slides",
    "load_mpp_table",
    "open_slide",
]

__getattr__ = lazy_attributes(__name__, _HOMES)
