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

Passthrough: :meth:`TiledLevel.jpeg_files` gives a JPEG tile of an RGB level
as a complete JPEG file (the page's JPEG tables merged in; an Adobe marker
saying "RGB, no colour transform" added for tiles coded in RGB, as Aperio
writes them), so a store can keep the source's compressed bytes. Any JPEG
decoder reads these files without TIFF context; libjpeg-turbo gives pixels
identical to :meth:`TiledLevel.read` (checked on the level's first file
before any is handed out, and tested).

Scaled reads: :meth:`TiledLevel.read_scaled` gives a region reduced 2, 4 or 8
times, decoding each JPEG tile of such a level straight at that scale
(libjpeg-turbo's DCT scaling through ``simplejpeg``, on the same complete
files; Pillow's ``draft`` gives the same pixels): each output pixel is then
the mean of its block up to a few levels, without computing the full-size
pixels (inverse DCT, chroma upsampling, colour conversion) or averaging them. Checked on
the level's first tile (within :data:`SCALED_MAX_SHIFT` levels of the block
means' colour) before it is used; other tiles (edge, missing) are decoded and
averaged. On real tissue (CMU-1, Aperio 40x-like JPEG) the scaled decode is within
54 dB PSNR of exact block means; on content with strong pixel-level noise the two
differ more (the reduced inverse DCT keeps more of the finest detail than a box).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import imagecodecs
import numpy as np
import simplejpeg
import tifffile
from tifffile.tifffile import jpeg_decode_colorspace

from wsi_engine.slide.reader import JPEG_SCALES, reduce_area

JPEG = 7
"""TIFF Compression tag value of (new-style) JPEG."""

OUTSIDE = 255
"""Value of every sample outside the level (white, opaque)."""

SOI = b"\xff\xd8"
"""JPEG start-of-image marker."""

ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"
"""APP14 Adobe marker with transform 0: the three components are R, G, B (no YCbCr)."""

SCALED_MAX_SHIFT = 4.0
"""Largest difference (levels) between the per-channel means of the level's first tile
decoded at a scale and decoded whole for scaled decoding to be used: a colour-space mistake
shifts them by tens of levels, block detail does not move them."""


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
        self._passthrough: bool | None = None  # unknown until the first file is checked
        self._scaled: dict[int, bool] = {}  # per reduction, once checked

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

    def read_scaled(self, x: int, y: int, width: int, height: int, factor: int) -> np.ndarray:
        """(height / factor, width / factor, 3) uint8: the box at level px (x, y) reduced
        ``factor`` times, each pixel the mean of a block of :meth:`read`'s pixels (white outside
        the level); JPEG tiles inside the level decoded at 1/``factor`` scale. Needs
        :meth:`scaled_decoding` and ``x``, ``y``, ``width``, ``height`` multiples of ``factor``."""
        if not self.scaled_decoding(factor) or any(v % factor for v in (x, y, width, height)):
            raise ValueError(f"no scaled read of {width}x{height} px at ({x}, {y}) / {factor}")
        out = np.full((height // factor, width // factor, 3), OUTSIDE, dtype=np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, self.size[0]), min(y + height, self.size[1])
        if x1 <= x0 or y1 <= y0:
            return out
        tile_w, tile_h = self.tile
        buffer = np.empty((tile_h // factor, tile_w // factor, 3), dtype=np.uint8)
        for data, index in self._segments(x0 // tile_w, y0 // tile_h, x1, y1):
            row, column = divmod(index, self._columns)
            left, top = column * tile_w, row * tile_h
            # the tile's part of the box, level px: multiples of factor (tiles are too)
            ax0, ay0 = max(left, x), max(top, y)
            ax1, ay1 = min(left + tile_w, x + width), min(top + tile_h, y + height)
            if data is not None and self._inside(index):
                small = self._decode_scaled(data, factor, buffer)
                block = small[
                    (ay0 - top) // factor : (ay1 - top) // factor,
                    (ax0 - left) // factor : (ax1 - left) // factor,
                ]
            else:  # an edge or missing tile: its pixels (white outside the level), averaged
                block = reduce_area(self.read(ax0, ay0, ax1 - ax0, ay1 - ay0), factor)
            out[
                (ay0 - y) // factor : (ay1 - y) // factor, (ax0 - x) // factor : (ax1 - x) // factor
            ] = block
        return out

    def scaled_decoding(self, factor: int) -> bool:
        """Whether :meth:`read_scaled` can reduce this level ``factor`` times: JPEG tiles of RGB
        a plain decoder reads (as for passthrough), tile sides multiples of ``factor`` (one of
        :data:`JPEG_SCALES`), and the level's first tile decoded at that scale of the same
        colour as decoded whole (:data:`SCALED_MAX_SHIFT`)."""
        if factor not in self._scaled:
            self._scaled[factor] = (
                factor in JPEG_SCALES
                and self.tile[0] % factor == 0
                and self.tile[1] % factor == 0
                and self._plain_rgb_jpeg()
                and self._scales_closely(factor)
            )
        return self._scaled[factor]

    def _scales_closely(self, factor: int) -> bool:
        """Whether the level's first stored tile inside the level decodes at 1/``factor`` scale
        to per-channel means within :data:`SCALED_MAX_SHIFT` of those of its full decode."""
        page = self._page
        index = next((i for i, n in enumerate(page.databytecounts) if n and self._inside(i)), None)
        if index is None:
            return False
        row, column = divmod(index, self._columns)
        left, top = column * self.tile[0], row * self.tile[1]
        expected = self.read(left, top, *self.tile).mean(axis=(0, 1))
        handle = page.parent.filehandle
        ((data, _),) = handle.read_segments(
            [page.dataoffsets[index]], [page.databytecounts[index]], [index], lock=handle.lock
        )
        try:
            scaled = self._decode_scaled(data, factor, None)
        except Exception:  # any decoder complaint: average decoded pixels instead
            return False
        shift = np.abs(scaled.mean(axis=(0, 1)) - expected)
        return bool((shift <= SCALED_MAX_SHIFT).all())

    def _decode_scaled(self, data: bytes, factor: int, buffer: np.ndarray | None) -> np.ndarray:
        """(tile_h / factor, tile_w / factor, 3) pixels of a JPEG tile decoded at that scale,
        into ``buffer`` (that shape) when given."""
        width, height = self.tile[0] // factor, self.tile[1] // factor
        pixels = simplejpeg.decode_jpeg(
            self._jpeg_file(data),
            "RGB",
            min_height=height,
            min_width=width,
            min_factor=factor,
            buffer=buffer,
        )
        if pixels.shape != (height, width, 3):  # a frame of another size than the tile's
            raise ValueError(f"a JPEG tile decoded at 1/{factor} is {pixels.shape[1::-1]} px")
        return pixels

    def jpeg_files(self, indices: Sequence[int]) -> list[bytes | None]:
        """Complete JPEG files of tiles ``indices`` (row-major), each decoding to exactly the
        tile's pixels; ``None`` for every tile when the level's tiles cannot be passed through
        (not JPEG, not RGB, a colour conversion a plain decoder would not make), and for
        missing tiles, edge tiles (which may be stored cropped) and tiles whose JPEG
        structure is broken or of another size (:func:`jpeg_frame`): those go through the
        decoder, which reports the damage."""
        if not indices or not self._passthrough_possible():
            return [None] * len(indices)
        page = self._page
        inside = [index for index in indices if self._inside(index)]
        offsets = [page.dataoffsets[index] for index in inside]
        counts = [page.databytecounts[index] for index in inside]
        handle = page.parent.filehandle
        files: dict[int, bytes | None] = {}
        expected = (self.tile[1], self.tile[0], 3)
        for data, index in handle.read_segments(offsets, counts, inside, lock=handle.lock):
            file = None if data is None else self._jpeg_file(data)
            files[index] = file if file and jpeg_frame(file) == expected else None
        if self._passthrough is None:
            first = next((index for index, data in files.items() if data is not None), None)
            if first is None:
                return [None] * len(indices)
            self._passthrough = self._decodes_identically(first, files[first])
            if not self._passthrough:
                return [None] * len(indices)
        return [files.get(index) for index in indices]

    def _passthrough_possible(self) -> bool:
        return self._passthrough is not False and self._plain_rgb_jpeg()

    def _plain_rgb_jpeg(self) -> bool:
        """Whether the tiles are JPEG of 3 samples that a plain decoder turns into RGB (YCbCr
        or RGB coded) when given as complete files (:meth:`_jpeg_file`)."""
        page, arguments = self._page, self._jpeg
        return (
            arguments is not None
            and self._samples == 3
            and not page.extrasamples
            and arguments["colorspace"] in (None, 2)
            and arguments["outcolorspace"] in (None, 2)
        )

    def _jpeg_file(self, data: bytes) -> bytes:
        """A stored JPEG tile as a complete file: the page's tables, then the tile's segments."""
        tables = self._page.jpegtables
        head = ADOBE_RGB if self._jpeg and self._jpeg["colorspace"] == 2 else b""
        body = data[2:] if data[:2] == SOI else data
        return SOI + head + (tables[2:-2] if tables else b"") + body

    def _decodes_identically(self, index: int, file: bytes | None) -> bool:
        """Whether a plain JPEG decode of ``file`` (tile ``index``) equals the level's own decode."""
        row, column = divmod(index, self._columns)
        expected = self.read(column * self.tile[0], row * self.tile[1], *self.tile)
        try:
            decoded = imagecodecs.jpeg8_decode(file)
        except Exception:  # any decoder complaint: keep decoding and re-encoding this level
            return False
        return decoded.shape == expected.shape and np.array_equal(decoded, expected)

    def _tiles(self, column0: int, row0: int, x1: int, y1: int, buffer: np.ndarray):
        """(index, (h, w, samples) pixels) of each tile from (column0, row0) to the one holding
        level px (x1 - 1, y1 - 1), in file order. The pixels may be ``buffer`` (a tile's
        shape), overwritten by the next tile: copy them before taking it."""
        for data, index in self._segments(column0, row0, x1, y1):
            yield index, self._decode(data, index, buffer)

    def _segments(self, column0: int, row0: int, x1: int, y1: int):
        """(bytes or ``None`` for a missing tile, index) of each tile from (column0, row0) to
        the one holding level px (x1 - 1, y1 - 1), in file order."""
        page = self._page
        columns = range(column0, -(-x1 // self.tile[0]))
        rows = range(row0, -(-y1 // self.tile[1]))
        indices = [row * self._columns + column for row in rows for column in columns]
        offsets = [page.dataoffsets[index] for index in indices]
        counts = [page.databytecounts[index] for index in indices]
        handle = page.parent.filehandle
        yield from handle.read_segments(offsets, counts, indices, lock=handle.lock)

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


EOI = b"\xff\xd9"
"""JPEG end-of-image marker."""

_NOT_FRAMES = (0xC4, 0xC8, 0xCC)
"""Markers in SOF0..SOF15's range that are not frame headers (DHT, JPG, DAC)."""


def jpeg_frame(file: bytes) -> tuple[int, int, int] | None:
    """(height, width, components) of a JPEG file whose structure is intact, else ``None``.

    Intact: it starts with SOI and ends with EOI, and its marker segments up to
    the start of scan have consistent lengths and include a frame header. The
    entropy-coded data is not checked (that would mean decoding it): a tile
    damaged only there is passed through as the file holds it.
    """
    if file[:2] != SOI or file[-2:] != EOI:
        return None
    position, frame = 2, None
    while position + 4 <= len(file):
        if file[position] != 0xFF:
            return None
        marker = file[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        length = int.from_bytes(file[position + 2 : position + 4], "big")
        if length < 2 or position + 2 + length > len(file):
            return None
        if 0xC0 <= marker <= 0xCF and marker not in _NOT_FRAMES and length >= 8:
            segment = file[position + 4 : position + 2 + length]
            frame = (
                int.from_bytes(segment[1:3], "big"),
                int.from_bytes(segment[3:5], "big"),
                segment[5],
            )
        if marker == 0xDA:  # start of scan: the entropy-coded data follows
            return frame
        position += 2 + length
    return None


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
