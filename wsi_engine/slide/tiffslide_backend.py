"""tiffslide backend: Aperio SVS and generic (pyramidal or plain) TIFF, decoded straight to numpy.

Levels stored as one tiled, 8-bit TIFF page are read by decoding their tiles
directly (:mod:`wsi_engine.slide.tiles`: the same decoder and pixels, without
tiffslide's per-tile overhead); other levels, and slides tiffslide assembles
from several image series, go through tiffslide's ``read_region``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile
import tiffslide
from PIL import Image

from wsi_engine.slide.reader import SlideReader, reader_fields
from wsi_engine.slide.tiles import TiledLevel, tiled_level


class TiffSlideReader(SlideReader):
    """A slide opened with tiffslide; the part of a region outside the level is filled with white.

    Like tiffslide, a region at level > 0 starts at level px
    ``int(location / downsample)`` (truncated toward zero).
    """

    backend = "tiffslide"

    def __init__(self, path: Path, format: str):
        self._slide = tiffslide.TiffSlide(path)
        try:
            _check_not_truncated(self._slide.ts_tifffile)
            super().__init__(path, format, **reader_fields(self._slide))
            self._tiled = _tiled_levels(self._slide)
        except Exception:
            self._slide.close()
            raise

    def _read(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        downsample = self.level_downsamples[level]
        x, y = int(location[0] / downsample), int(location[1] / downsample)  # level px
        width, height = size
        tiled = self._tiled[level]
        if tiled is not None:
            return tiled.read(x, y, width, height)
        inside = self._slide.read_region(location, level, size, as_array=True, padding=False)
        if inside.shape[:2] == (height, width):
            return inside
        left, top = max(0, -x), max(0, -y)
        canvas = np.full((height, width, *inside.shape[2:]), 255, dtype=inside.dtype)
        canvas[top : top + inside.shape[0], left : left + inside.shape[1]] = inside
        return canvas

    def source_jpeg_tiles(self, level: int, tiles: Sequence[tuple[int, int]]) -> list[bytes | None]:
        self._check_level(level)
        tiled = self._tiled[level]
        if tiled is None:
            return [None] * len(tiles)
        columns = -(-tiled.size[0] // tiled.tile[0])
        return tiled.jpeg_files([row * columns + column for column, row in tiles])

    def _associated(self, name: str) -> Image.Image:
        return self._slide.associated_images[name]

    def _close(self) -> None:
        self._slide.close()


def _tiled_levels(slide: tiffslide.TiffSlide) -> tuple[TiledLevel | None, ...]:
    """Per level, its direct tile reader, or ``None`` where tiffslide's ``read_region`` must read it.

    A level qualifies when tiffslide reads it from one image series without
    compositing, as exactly one TIFF page of the level's size that
    :func:`~wsi_engine.slide.tiles.tiled_level` accepts.
    """
    properties, sizes = slide.properties, slide.level_dimensions
    levels = slide.ts_tifffile.series[properties["tiffslide.series-index"]].levels
    if (
        properties.get("tiffslide.series-composition")
        or properties.get("tiffslide.series-axes") not in ("YXS", "YX")
        or len(levels) != len(sizes)
    ):
        return (None,) * len(sizes)
    return tuple(_level_reader(level, size) for level, size in zip(levels, sizes, strict=True))


def _level_reader(level: tifffile.TiffPageSeries, size: tuple[int, int]) -> TiledLevel | None:
    """The direct reader of pyramid ``level`` of (w, h) ``size`` px, if it is one qualifying page."""
    pages = level.pages
    if len(pages) != 1 or not isinstance(pages[0], tifffile.TiffPage):
        return None
    page = pages[0]
    return tiled_level(page) if (page.imagewidth, page.imagelength) == tuple(size) else None


def _check_not_truncated(tif: tifffile.TiffFile) -> None:
    """Raise ``ValueError`` if the TIFF's image chain or image data runs past the end of the file.

    tifffile only logs a broken chain and opens the images before the break, so
    a truncated pyramid would otherwise open as fewer levels. NDPI files (their
    own offset scheme) are left to the read-time checks.
    """
    if tif.is_ndpi:
        return
    size, header, handle = tif.filehandle.size, tif.tiff, tif.filehandle
    pages = list(tif.pages)
    if not pages:
        raise ValueError("truncated or corrupt file: the TIFF holds no readable image")
    end = max(
        (
            o + n
            for page in pages
            for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)
        ),
        default=0,
    )
    if end > size:
        raise ValueError(f"truncated file: image data needs {end} bytes, the file has {size}")
    last = pages[-1].offset
    handle.seek(last)
    try:
        (tag_count,) = struct.unpack(header.tagnoformat, handle.read(header.tagnosize))
        handle.seek(last + header.tagnosize + tag_count * header.tagsize)
        (next_offset,) = struct.unpack(header.offsetformat, handle.read(header.offsetsize))
    except struct.error:
        next_offset = None
    if next_offset != 0:
        raise ValueError(
            f"truncated or corrupt file: the TIFF's image chain breaks after {len(pages)} "
            f"images ({size} bytes)"
        )
