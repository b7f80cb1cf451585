"""OpenSlide backend: NDPI, MRXS, SCN, DICOM, Philips, Ventana and the other formats OpenSlide reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
from PIL import Image

from wsi_engine.slide.reader import SlideReader, reader_fields


class OpenSlideReader(SlideReader):
    """A slide opened with OpenSlide; reads come back RGBA and are composited on white."""

    backend = "openslide"

    def __init__(self, path: Path, format: str):
        self._slide = openslide.OpenSlide(path)
        super().__init__(path, format, **reader_fields(self._slide))

    def _read(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        return np.asarray(self._slide.read_region(location, level, size))

    def _associated(self, name: str) -> Image.Image:
        return self._slide.associated_images[name]

    def _close(self) -> None:
        self._slide.close()
