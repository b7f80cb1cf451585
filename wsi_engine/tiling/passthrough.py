"""Lossless JPEG passthrough: a patch that is exactly one JPEG tile of the source is stored as
that tile's compressed bytes, neither decoded nor re-encoded.

A patch qualifies when it is cut without resampling (``window == patch_size``),
the read level's tiles are ``patch_size`` px square, and the patch's read-level
position is a multiple of the tile size; the reader must then hand over the
tile as a complete JPEG file
(:meth:`~wsi_engine.slide.SlideReader.source_jpeg_tiles`, the tiffslide
backend's direct tile path). Those chunks decode to exactly the source pixels
(the store stays a normal store, read by the same ``wsi_engine.jpeg`` codec);
the others are JPEG-encoded at the store's quality as usual. For a 20x scan
read at 0.5 µm/px with 256-px tiles this skips the two costs that dominate
tiling (decoding and encoding, about 0.3 ms per patch).
"""

from __future__ import annotations

import numpy as np

from wsi_engine.slide import SlideReader
from wsi_engine.store.codecs import encode_jpeg
from wsi_engine.tiling.extract import extract_patches
from wsi_engine.tiling.grid import GridGeometry


def source_tiles(
    reader: SlideReader, geometry: GridGeometry, coords: np.ndarray
) -> list[bytes | None]:
    """Per patch at level-0 ``coords`` (N, 2), the source JPEG file it equals, or ``None``."""
    none: list[bytes | None] = [None] * len(coords)
    size, level = geometry.patch_size, geometry.read_level
    if geometry.resized or reader.tile_size(level) != (size, size) or not len(coords):
        return none
    level_xy = geometry.to_level(coords)
    aligned = np.flatnonzero((level_xy % size == 0).all(axis=1))
    tiles = [(int(x) // size, int(y) // size) for x, y in level_xy[aligned]]
    for index, file in zip(aligned, reader.source_jpeg_tiles(level, tiles), strict=True):
        none[index] = file
    return none


def jpeg_chunks(
    reader: SlideReader,
    geometry: GridGeometry,
    coords: np.ndarray,
    region_size: int,
    quality: int,
    passthrough: bool,
) -> list[bytes]:
    """One JPEG file per patch: the source's tile where it passes through, else the patch
    read, cut and encoded at ``quality``."""
    chunks = source_tiles(reader, geometry, coords) if passthrough else [None] * len(coords)
    missing = [index for index, chunk in enumerate(chunks) if chunk is None]
    if missing:
        patches = extract_patches(reader, geometry, coords[missing], region_size)
        for index, patch in zip(missing, patches, strict=True):
            chunks[index] = encode_jpeg(patch, quality)
    return chunks  # type: ignore[return-value]  # every None was replaced
