"""tiffslide backend: Aperio SVS and generic (pyramidal or plain) TIFF, decoded straight to numpy."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import tifffile
import tiffslide
from PIL import Image

from wsi_engine.slide.reader import SlideReader


class TiffSlideReader(SlideReader):
    """A slide opened with tiffslide; the part of a region outside the level is filled with white."""

    backend = "tiffslide"

    def __init__(self, path: Path, format: str):
        self._slide = tiffslide.TiffSlide(path)
        try:
            _check_not_truncated(self._slide.ts_tifffile)
            super().__init__(
                path,
                format,
                properties=self._slide.properties,
                level_dimensions=self._slide.level_dimensions,
                level_downsamples=self._slide.level_downsamples,
                associated_image_names=tuple(self._slide.associated_images),
            )
        except Exception:
            self._slide.close()
            raise

    def _read(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        inside = self._slide.read_region(location, level, size, as_array=True, padding=False)
        width, height = size
        if inside.shape[:2] == (height, width):
            return inside
        # tiffslide starts the region at level px int(x / downsample), int(y / downsample)
        downsample = self.level_downsamples[level]
        left = max(0, -int(location[0] / downsample))
        top = max(0, -int(location[1] / downsample))
        canvas = np.full((height, width, *inside.shape[2:]), 255, dtype=inside.dtype)
        canvas[top : top + inside.shape[0], left : left + inside.shape[1]] = inside
        return canvas

    def _associated(self, name: str) -> Image.Image:
        return self._slide.associated_images[name]

    def _close(self) -> None:
        self._slide.close()


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
