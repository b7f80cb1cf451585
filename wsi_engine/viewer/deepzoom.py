"""Deep Zoom pyramids read on demand: the slide from its file, the score map from the store.

Deep Zoom (the ``.dzi`` layout OpenSeadragon reads) halves the image from the
full level-0 size down to 1 × 1 px; level ``L`` of ``max_level`` shows the
slide at ``2 ** (max_level - L)`` level-0 px per px and is cut into square
tiles of ``tile_size`` px that overlap their neighbours by ``overlap`` px.
Both pyramids of one slide share this geometry, so OpenSeadragon draws the
score map exactly over the slide. Tiles are computed when asked for:

* :class:`SlideSource` reads the region from the best slide level (OpenSlide or
  tiffslide through :class:`~wsi_engine.slide.SlideReader`) and resizes it;
* :class:`ImageSource` samples an image covering the slide at a known
  downsample (the store's thumbnail when the slide file is gone, or the RGBA
  score canvas, sampled by nearest neighbour so patch edges stay sharp).
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from wsi_engine.slide import SlideReader

TILE_SIZE = 254
OVERLAP = 1


@dataclass(frozen=True)
class DeepZoomGeometry:
    """Levels and tile bounds of a ``width`` × ``height`` level-0 px image."""

    width: int
    height: int
    tile_size: int = TILE_SIZE
    overlap: int = OVERLAP

    @property
    def max_level(self) -> int:
        return max(0, math.ceil(math.log2(max(self.width, self.height, 1))))

    def scale(self, level: int) -> int:
        """Level-0 px per px at ``level``."""
        return 2 ** (self.max_level - level)

    def level_size(self, level: int) -> tuple[int, int]:
        scale = self.scale(level)
        return max(1, math.ceil(self.width / scale)), max(1, math.ceil(self.height / scale))

    def tile_bounds(self, level: int, col: int, row: int) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) in px of ``level`` of tile (``col``, ``row``), overlap included; ``None`` outside."""
        if not 0 <= level <= self.max_level:
            return None
        width, height = self.level_size(level)
        x0, y0 = col * self.tile_size, row * self.tile_size
        if col < 0 or row < 0 or x0 >= width or y0 >= height:
            return None
        return (
            max(0, x0 - self.overlap),
            max(0, y0 - self.overlap),
            min(width, x0 + self.tile_size + self.overlap),
            min(height, y0 + self.tile_size + self.overlap),
        )

    def dzi(self, image_format: str) -> str:
        """The ``.dzi`` XML descriptor."""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" '
            f'Format="{image_format}" Overlap="{self.overlap}" TileSize="{self.tile_size}">'
            f'<Size Width="{self.width}" Height="{self.height}"/></Image>'
        )


class TileSource:
    """Pixels of a region given in level-0 px, at a requested output size."""

    image_format = "jpeg"

    def __init__(self, geometry: DeepZoomGeometry):
        self.geometry = geometry

    def region(self, box: tuple[float, float, float, float], size: tuple[int, int]) -> Image.Image:
        """The level-0 ``box`` (x0, y0, x1, y1) resized to ``size`` (w, h) px."""
        raise NotImplementedError

    def tile(self, level: int, col: int, row: int) -> bytes | None:
        """Encoded tile (JPEG or PNG per ``image_format``), ``None`` when it does not exist."""
        bounds = self.geometry.tile_bounds(level, col, row)
        if bounds is None:
            return None
        scale = self.geometry.scale(level)
        x0, y0, x1, y1 = bounds
        box = (
            x0 * scale,
            y0 * scale,
            min(x1 * scale, self.geometry.width),
            min(y1 * scale, self.geometry.height),
        )
        image = self.region(box, (x1 - x0, y1 - y0))
        buffer = io.BytesIO()
        if self.image_format == "png":
            image.save(buffer, format="PNG", compress_level=1)
        else:
            image.convert("RGB").save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()


class SlideSource(TileSource):
    """Tiles read from the slide file through a :class:`SlideReader` (one read at a time)."""

    def __init__(self, reader: SlideReader):
        super().__init__(DeepZoomGeometry(*reader.dimensions))
        self.reader = reader
        self._lock = threading.Lock()

    def region(self, box: tuple[float, float, float, float], size: tuple[int, int]) -> Image.Image:
        x0, y0, x1, y1 = box
        downsample = max((x1 - x0) / size[0], (y1 - y0) / size[1], 1.0)
        level = self.reader.best_level_for_downsample(downsample)
        level_ds = self.reader.level_downsamples[level]
        read = (max(1, round((x1 - x0) / level_ds)), max(1, round((y1 - y0) / level_ds)))
        with self._lock:
            pixels = self.reader.read_region((int(x0), int(y0)), level, read)
        image = Image.fromarray(pixels)
        return image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)


class ImageSource(TileSource):
    """Tiles sampled from an (H, W, 3|4) uint8 image of the slide at ``downsample`` level-0 px per px."""

    def __init__(
        self,
        pixels: np.ndarray,
        downsample: float,
        dimensions: tuple[int, int],
        *,
        image_format: str = "jpeg",
    ):
        super().__init__(DeepZoomGeometry(*dimensions))
        self.pixels, self.downsample = pixels, float(downsample)
        self.image_format = image_format

    def region(self, box: tuple[float, float, float, float], size: tuple[int, int]) -> Image.Image:
        x0, y0, x1, y1 = box
        cols = self._sample(x0, x1, size[0], self.pixels.shape[1])
        rows = self._sample(y0, y1, size[1], self.pixels.shape[0])
        return Image.fromarray(np.ascontiguousarray(self.pixels[np.ix_(rows, cols)]))

    def _sample(self, start: float, stop: float, n: int, limit: int) -> np.ndarray:
        """Source indices of the centres of ``n`` output px spanning level-0 [start, stop)."""
        centres = start + (np.arange(n) + 0.5) * ((stop - start) / n)
        return np.clip((centres / self.downsample).astype(np.int64), 0, limit - 1)
