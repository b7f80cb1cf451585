"""Direct region reads of tiled TIFF levels: tile bytes from the file, decoded into the region.

tiffslide reads a region through zarr: one asynchronous chunk request per
tile, a fresh array per decoded tile, then a gather into the result, which
costs more than the decoding itself. :class:`TiledLevel` does the same work
directly for one tiled TIFF page (one pyramid level): it reads the bytes of
the tiles a region touches with tifffile's ``read_segments`` (on the slide's
own file handle, under its lock) and decodes each with the page's own
tifffile decoder (:meth:`tifffile.TiffPage.decode`: the codec, colour space,
JPEG tables and edge-tile handling tiffslide uses), so the pixels are
identical. JPEG tiles (TIFF compression 7) that lie wholly inside the level
go through the same ``imagecodecs.jpeg_decode`` call with the same arguments,
but into one tile buffer reused within the region: a fresh array per tile
made decoding about 30 % slower. Missing tiles (offset or byte count 0) hold
the page's nodata value, as in tiffslide. Reads are thread-safe.

:func:`tiled_level` says which pages qualify (tiled, 2-D, 8-bit, samples
interleaved, no NDPI JPEG header); others are read through tiffslide.
"""

from __future__ import annotations

from typing import Any

import imagecodecs
import numpy as np
import tifffile
from tifffile.tifffile import jpeg_decode_colorspace

JPEG = 7
"""TIFF Compression tag value of (new-style) JPEG."""

OUTSIDE = 255
"""Value of every sample outside the level (white, opaque)."""


def tiled_level(page: tifffile.TiffPage) -> TiledLevel | None:
    """A :class:`TiledLevel` of ``page``, or ``None`` if its layout needs tiffslide's general reader."""
    supported = (
        page.is_tiled
        and page.imagedepth == 1
        and page.tiledepth == 1
        and page.dtype == np.uint8
        and (page.planarconfig == 1 or page.samplesperpixel == 1)
        and page.jpegheader is None
    )
    return TiledLevel(page) if supported else None


class TiledLevel:
    """Region reads of one tiled, 8-bit, sample-interleaved TIFF page; coordinates in level px."""

    def __init__(self, page: tifffile.TiffPage):
        self._page = page
        page.parent.filehandle.set_lock(True)  # the lock tiffslide's reads take too
        self.size = (int(page.imagewidth), int(page.imagelength))
        """(w, h) of the level in px"""
        self.tile = (int(page.tilewidth), int(page.tilelength))
        """(w, h) of the page's tiles in px"""
        self._columns = -(-self.size[0] // self.tile[0])
        self._samples = int(page.samplesperpixel)
        self._jpeg = jpeg_decode_arguments(page) if page.compression == JPEG else None

    def read(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        """(height, width, samples) uint8 pixels of the box at level px (x, y); white outside the level."""
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, self.size[0]), min(y + height, self.size[1])
        shape = (height, width, self._samples)
        if (x0, y0, x1, y1) == (x, y, x + width, y + height):
            region = np.empty(shape, dtype=np.uint8)
        else:
            region = np.full(shape, OUTSIDE, dtype=np.uint8)
        if x1 <= x0 or y1 <= y0:
            return region
        tile_w, tile_h = self.tile
        buffer = np.empty((tile_h, tile_w, self._samples), dtype=np.uint8)
        for index, tile in self._tiles(x0 // tile_w, y0 // tile_h, x1, y1, buffer):
            row, column = divmod(index, self._columns)
            left, top = column * tile_w, row * tile_h
            ax0, ay0 = max(left, x0), max(top, y0)
            ax1, ay1 = min(left + tile_w, x1), min(top + tile_h, y1)
            region[ay0 - y : ay1 - y, ax0 - x : ax1 - x] = tile[
                ay0 - top : ay1 - top, ax0 - left : ax1 - left
            ]
        return region

    def _tiles(self, column0: int, row0: int, x1: int, y1: int, buffer: np.ndarray):
        """(index, (h, w, samples) pixels) of each tile from (column0, row0) to the one holding
        level px (x1 - 1, y1 - 1), in file order. The pixels may be ``buffer`` (a tile's
        shape), overwritten by the next tile: copy them before taking it."""
        page = self._page
        columns = range(column0, -(-x1 // self.tile[0]))
        rows = range(row0, -(-y1 // self.tile[1]))
        indices = [row * self._columns + column for row in rows for column in columns]
        offsets = [page.dataoffsets[index] for index in indices]
        counts = [page.databytecounts[index] for index in indices]
        handle = page.parent.filehandle
        for data, index in handle.read_segments(offsets, counts, indices, lock=handle.lock):
            yield index, self._decode(data, index, buffer)

    def _decode(self, data: bytes | None, index: int, buffer: np.ndarray) -> np.ndarray:
        """Pixels (h, w, samples) of tile ``index`` from its bytes (``None``: a missing tile),
        decoded into ``buffer`` where the codec allows."""
        if data is None:
            return np.full(buffer.shape, self._page.nodata, dtype=np.uint8)
        if self._jpeg is not None and self._inside(index):
            imagecodecs.jpeg_decode(data, out=buffer, **self._jpeg)
            return buffer
        pixels = self._page.decode(data, index, jpegtables=self._page.jpegtables)[0]
        return pixels.reshape(pixels.shape[1:])  # (depth 1, h, w, samples)

    def _inside(self, index: int) -> bool:
        """Whether tile ``index`` lies wholly inside the level (edge tiles may be stored cropped)."""
        row, column = divmod(index, self._columns)
        (tile_w, tile_h), (width, height) = self.tile, self.size
        return (column + 1) * tile_w <= width and (row + 1) * tile_h <= height


def jpeg_decode_arguments(page: tifffile.TiffPage) -> dict[str, Any]:
    """Keyword arguments of ``imagecodecs.jpeg_decode`` for ``page``'s tiles, as tifffile passes them."""
    colorspace, outcolorspace = jpeg_decode_colorspace(
        page.photometric, page.planarconfig, page.extrasamples, page.is_jfif
    )
    return {
        "tables": page.jpegtables,
        "colorspace": colorspace,
        "outcolorspace": outcolorspace,
        "shape": (page.tilelength, page.tilewidth),
        "bitspersample": page.bitspersample,
    }
