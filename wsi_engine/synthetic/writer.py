"""Write a :class:`~wsi_engine.synthetic.render.SlideModel` as a pyramidal tiled JPEG TIFF.

Levels shrink by :data:`LEVEL_DOWNSAMPLE` (4) per level; there are at least 3,
and levels are added until the smallest fits in one tile. Tiles are rendered
and JPEG-encoded one at a time and streamed to :class:`tifffile.TiffWriter`
as pre-compressed bytes, so memory does not grow with the slide size. Plain
glass tiles are encoded once and reused.

Two flavours:

* ``generic``: levels in the main IFD chain (reduced ones flagged
  NewSubfileType=1), µm/px in XResolution/YResolution with ResolutionUnit
  centimetre. OpenSlide reports vendor ``generic-tiff``.
* ``aperio``: SVS layout (level 0, a stripped thumbnail, then the other
  levels) whose ImageDescription starts with ``Aperio`` and carries ``MPP``
  and ``AppMag``. OpenSlide reports vendor ``aperio``.

Output is byte-for-byte reproducible: no dates, no software tag.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile

from wsi_engine.synthetic.render import SlideModel

FLAVORS = ("generic", "aperio")
"""TIFF flavours :func:`write_slide` can write."""

LEVEL_DOWNSAMPLE = 4
"""Each pyramid level is 4× smaller than the previous one along both axes."""

MIN_LEVELS = 3

THUMBNAIL_SIDE = 768
"""Longest side (pixels) of the Aperio thumbnail image."""

_SUBSAMPLING = (2, 2)


def pyramid_dimensions(width: int, height: int, tile_size: int) -> tuple[tuple[int, int], ...]:
    """``(width, height)`` of every level: level k is level 0 divided by 4**k, rounded up."""
    dims = [(width, height)]
    while len(dims) < MIN_LEVELS or max(dims[-1]) > tile_size:
        factor = LEVEL_DOWNSAMPLE ** len(dims)
        dims.append((math.ceil(width / factor), math.ceil(height / factor)))
    return tuple(dims)


def tile_count(width: int, height: int, tile_size: int) -> int:
    """Number of tiles in all pyramid levels of a slide."""
    return sum(
        math.ceil(w / tile_size) * math.ceil(h / tile_size)
        for w, h in pyramid_dimensions(width, height, tile_size)
    )


def _encode(tile: np.ndarray, quality: int) -> bytes:
    """JPEG stream of an RGB tile, stored as YCbCr 4:2:0 like tifffile's own JPEG tiles."""
    return imagecodecs.jpeg_encode(
        tile, level=quality, colorspace="RGB", outcolorspace="YCBCR", subsampling=_SUBSAMPLING
    )


def _ordered_map(
    func: Callable[[tuple[int, int]], bytes], items: Iterable[tuple[int, int]], workers: int
) -> Iterator[bytes]:
    """``map(func, items)`` on ``workers`` threads, in order, with a bounded look-ahead."""
    if workers <= 1:
        yield from map(func, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(func, item))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _level_tiles(
    model: SlideModel,
    level: int,
    size: tuple[int, int],
    quality: int,
    plain: bytes,
    workers: int,
    progress: Callable[[int], None] | None,
) -> Iterator[bytes]:
    """Encoded tiles of one level in row-major order."""
    tile = model.tile_size
    downsample = float(LEVEL_DOWNSAMPLE**level)
    origins = ((x, y) for y in range(0, size[1], tile) for x in range(0, size[0], tile))

    def encode(origin: tuple[int, int]) -> bytes:
        pixels = model.render(origin[0], origin[1], tile, tile, downsample)
        return plain if pixels is None else _encode(pixels, quality)

    for data in _ordered_map(encode, origins, workers):
        if progress is not None:
            progress(1)
        yield data


def _aperio_description(model: SlideModel, size: tuple[int, int], quality: int, level: int) -> str:
    """ImageDescription in the Aperio style: a header line, then ``|key = value`` pairs."""
    w0, h0 = model.width, model.height
    tile = model.tile_size
    if level == 0:
        header = f"{w0}x{h0} [0,0 {w0}x{h0}] ({tile}x{tile}) JPEG/RGB Q={quality}"
    else:
        header = (
            f"{w0}x{h0} [0,0 {w0}x{h0}] ({tile}x{tile}) -> {size[0]}x{size[1]} JPEG/RGB Q={quality}"
        )
    return (
        f"Aperio Image Library v12.0.15 \r\n{header}|AppMag = {10.0 / model.mpp:g}"
        f"|MPP = {model.mpp:g}|Generator = wsi-engine synthetic"
    )


def write_slide(
    path: str | Path,
    model: SlideModel,
    *,
    flavor: str,
    jpeg_quality: int,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[tuple[int, int], ...]:
    """Write ``model`` to ``path``; returns the level dimensions ``(width, height)``.

    ``workers`` threads render tiles (numpy and the JPEG codec release the GIL);
    ``progress(n)`` is called after every ``n`` tiles written.
    """
    dims = pyramid_dimensions(model.width, model.height, model.tile_size)
    plain = _encode(model.background, jpeg_quality)
    bigtiff = model.width * model.height * 3 > 2**31
    tile = (model.tile_size, model.tile_size)
    with tifffile.TiffWriter(path, bigtiff=bigtiff) as tif:
        for level, size in enumerate(dims):
            mpp = model.mpp * LEVEL_DOWNSAMPLE**level
            if flavor == "aperio":
                description = _aperio_description(model, size, jpeg_quality, level)
            else:
                description = "wsi-engine synthetic slide" if level == 0 else None
            tif.write(
                _level_tiles(model, level, size, jpeg_quality, plain, workers, progress),
                shape=(size[1], size[0], 3),
                dtype=np.uint8,
                photometric="rgb",
                compression="jpeg",
                subsampling=_SUBSAMPLING,
                tile=tile,
                resolution=(1e4 / mpp, 1e4 / mpp),
                resolutionunit="CENTIMETER",
                subfiletype=1 if level and flavor == "generic" else 0,
                description=description,
                metadata=None,
                software=False,
            )
            if flavor == "aperio" and level == 0:
                _write_thumbnail(tif, model, jpeg_quality)
    return dims


def _write_thumbnail(tif: tifffile.TiffWriter, model: SlideModel, quality: int) -> None:
    """The SVS thumbnail: a small stripped JPEG image of the whole slide (second IFD)."""
    downsample = max(1.0, max(model.width, model.height) / THUMBNAIL_SIDE)
    cols, rows = round(model.width / downsample), round(model.height / downsample)
    tif.write(
        model.render_image(downsample, cols, rows),
        photometric="rgb",
        compression="jpeg",
        compressionargs={"level": quality},
        subsampling=(1, 1),
        rowsperstrip=16,
        description=_aperio_description(model, (cols, rows), quality, 1),
        metadata=None,
        software=False,
    )
