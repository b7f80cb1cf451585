"""The backend-neutral slide reader: geometry, metadata and RGB pixel reads.

A :class:`SlideReader` is one open slide file. The two backends
(:mod:`~wsi_engine.slide.openslide_backend`, :mod:`~wsi_engine.slide.tiffslide_backend`)
only open the file and hand over raw pixel arrays; everything users rely on
(RGB on white, argument checks, error messages, level choice, thumbnails) lives
here once. Readers hold an open file handle: open one per worker process with
:func:`~wsi_engine.slide.open_slide` instead of sending it between processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, NoReturn, Protocol

import numpy as np
from PIL import Image

from wsi_engine.errors import SlideError

LEVEL_TOLERANCE = 0.01
"""Relative slack of :meth:`SlideReader.best_level_for_downsample` (pyramids round level sizes)."""


@dataclass(frozen=True)
class Mpp:
    """µm/px of level 0 along x and y, and where the value came from.

    ``source`` is ``"option"`` (``--mpp``), ``"table"`` (``--mpp-table``),
    ``"metadata:<property key>"`` or ``"objective-power"`` (10 / magnification).
    """

    x: float
    y: float
    source: str


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """Return a contiguous (h, w, 3) uint8 RGB copy of gray, RGB or RGBA ``pixels``.

    Alpha is composited on white (straight, not premultiplied, alpha), so
    transparent and out-of-slide pixels become 255.
    """
    if pixels.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {pixels.dtype} (only 8-bit images are supported)")
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    channels = pixels.shape[2] if pixels.ndim == 3 else 0
    if channels == 1:
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
    if channels == 3:
        return np.ascontiguousarray(pixels)
    if channels == 4:
        alpha = pixels[..., 3:]
        if alpha.min(initial=255) == 255:
            return np.ascontiguousarray(pixels[..., :3])
        alpha = alpha.astype(np.uint16)
        blended: np.ndarray = (pixels[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
        return blended.astype(np.uint8)
    raise ValueError(f"unsupported pixel layout {pixels.shape} (expected gray, RGB or RGBA)")


class SlideReader:
    """One open slide: level geometry, µm/px, metadata and RGB reads.

    Coordinates: ``location`` is (x, y) in level-0 px; ``size`` is (w, h) in px
    of the level read. Returned arrays are (h, w, 3) uint8 RGB.
    ``mpp`` is set by :func:`~wsi_engine.slide.open_slide` (``None`` only when
    it was opened with ``require_mpp=False`` and no µm/px could be found);
    ``mpp_notes`` lists what µm/px resolution noticed (ignored implausible
    metadata, objective-power rule, a user value overriding metadata), for reports.
    """

    backend: ClassVar[str]

    def __init__(
        self,
        path: Path,
        format: str,
        properties: Mapping[str, object],
        level_dimensions: tuple[tuple[int, int], ...],
        level_downsamples: tuple[float, ...],
        associated_image_names: tuple[str, ...],
    ):
        self.path = path
        self.format = format
        self.properties: Mapping[str, str] = MappingProxyType(
            {key: str(value) for key, value in properties.items() if value is not None}
        )
        self.level_dimensions = tuple((int(w), int(h)) for w, h in level_dimensions)
        self.level_downsamples = tuple(float(d) for d in level_downsamples)
        self.associated_image_names = tuple(sorted(associated_image_names))
        self.vendor: str | None = self.properties.get(f"{self.backend}.vendor")
        self.objective_power = _positive_float(
            self.properties.get(f"{self.backend}.objective-power")
        )
        self.mpp: Mpp | None = None
        self.mpp_notes: tuple[str, ...] = ()
        self._closed = False

    # -- backend hooks -------------------------------------------------------------------

    def _read(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """Raw (h, w[, c]) uint8 pixels of the region; outside the level: white or transparent."""
        raise NotImplementedError

    def _associated(self, name: str) -> Image.Image:
        """The associated image ``name`` as a PIL image of any mode."""
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    # -- geometry ------------------------------------------------------------------------

    @property
    def dimensions(self) -> tuple[int, int]:
        """(width, height) of level 0 in px."""
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    def tile_size(self, level: int) -> tuple[int, int] | None:
        """(w, h) in px of the file's tiles at ``level``; ``None`` for untiled (striped) images."""
        self._check_level(level)
        width = int(self.properties.get(f"{self.backend}.level[{level}].tile-width", 0))
        height = int(self.properties.get(f"{self.backend}.level[{level}].tile-height", 0))
        return (width, height) if width > 0 and height > 0 else None

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample is <= ``downsample`` (1% tolerance); 0 if none."""
        if not downsample > 0:
            raise ValueError(f"downsample must be positive, got {downsample}")
        limit = downsample * (1 + LEVEL_TOLERANCE)
        return max((i for i, d in enumerate(self.level_downsamples) if d <= limit), default=0)

    # -- pixels --------------------------------------------------------------------------

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """RGB pixels of ``size`` (w, h) px at ``level``, top-left at level-0 ``location`` (x, y).

        Returns a contiguous (h, w, 3) uint8 array; pixels outside the slide or
        transparent are white. A failed read raises :class:`SlideError`.
        At level > 0 the region starts at level px ``location / downsample``:
        tiffslide truncates it to whole px, OpenSlide interpolates the sub-pixel
        remainder, so the backends agree exactly only where it is whole.
        """
        self._check_level(level)
        width, height = int(size[0]), int(size[1])
        if width <= 0 or height <= 0:
            raise ValueError(f"region size must be positive, got {size}")
        x, y = int(location[0]), int(location[1])
        where = f"level {level}, region x={x} y={y} (level-0 px), size {width}x{height} px"
        try:
            pixels = to_rgb(self._read((x, y), level, (width, height)))
        except Exception as error:
            raise self._error(f"cannot read {where}", error) from error
        if pixels.shape[:2] != (height, width):
            raise SlideError(
                f"read {pixels.shape[1]}x{pixels.shape[0]} px instead of {where}", path=self.path
            )
        return pixels

    def source_jpeg_tiles(self, level: int, tiles: Sequence[tuple[int, int]]) -> list[bytes | None]:
        """The file's own JPEG tiles (column, row) of ``level`` as complete JPEG files, each
        decoding to exactly what :meth:`read_region` returns for that tile; ``None`` for a
        tile this backend cannot pass through unchanged (by default, every tile)."""
        self._check_level(level)
        return [None] * len(tiles)

    def read_associated_image(self, name: str) -> np.ndarray:
        """The associated image ``name`` (e.g. ``label``, ``macro``) as (h, w, 3) uint8 RGB."""
        if name not in self.associated_image_names:
            raise SlideError(
                f"no associated image {name!r}",
                path=self.path,
                hint=f"available: {', '.join(self.associated_image_names) or 'none'}",
            )
        try:
            return to_rgb(np.asarray(self._associated(name).convert("RGBA")))
        except Exception as error:
            raise self._error(f"cannot read associated image {name!r}", error) from error

    def get_thumbnail(self, max_size: tuple[int, int]) -> np.ndarray:
        """RGB thumbnail fitting in ``max_size`` (w, h) px, aspect preserved, never enlarged.

        Reads the best pyramid level whole and shrinks it by area averaging.
        """
        if min(max_size) <= 0:
            raise ValueError(f"thumbnail size must be positive, got {max_size}")
        width, height = self.dimensions
        downsample = max(width / max_size[0], height / max_size[1], 1.0)
        level = self.best_level_for_downsample(downsample)
        pixels = self.read_region((0, 0), level, self.level_dimensions[level])
        target = (max(1, round(width / downsample)), max(1, round(height / downsample)))
        if (pixels.shape[1], pixels.shape[0]) == target:
            return pixels
        return np.asarray(Image.fromarray(pixels).resize(target, Image.Resampling.BOX))

    # -- life cycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Release the file handle (idempotent)."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> SlideReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} holds an open file and cannot be pickled: "
            "send the path and open it in each worker with open_slide()"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, format={self.format!r}, "
            f"dimensions={self.dimensions}, levels={self.level_count}, mpp={self.mpp})"
        )

    # -- helpers -------------------------------------------------------------------------

    def _check_level(self, level: int) -> None:
        if not 0 <= level < self.level_count:
            raise ValueError(
                f"level {level} out of range: the slide has levels 0..{self.level_count - 1}"
            )

    def _error(self, what: str, error: Exception) -> SlideError:
        detail = str(error) or type(error).__name__
        return SlideError(
            f"{what}: {detail}",
            path=self.path,
            hint=f"the file may be truncated or corrupt ({self.backend} backend; try --backend "
            f"{'openslide' if self.backend == 'tiffslide' else 'tiffslide'})",
        )


def _positive_float(value: str | None) -> float | None:
    """``value`` as a float if it is a positive number, else ``None``."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number > 0 and np.isfinite(number) else None


class OpenSlideLike(Protocol):
    """The part of OpenSlide's API that tiffslide shares: what a reader is initialised from."""

    @property
    def properties(self) -> Mapping[str, object]: ...

    @property
    def level_dimensions(self) -> Sequence[tuple[int, int]]: ...

    @property
    def level_downsamples(self) -> Sequence[float]: ...

    @property
    def associated_images(self) -> Mapping[str, Image.Image]: ...


def reader_fields(slide: OpenSlideLike) -> dict[str, Any]:
    """The keyword arguments of :class:`SlideReader` read from an OpenSlide or tiffslide object."""
    return {
        "properties": slide.properties,
        "level_dimensions": tuple(slide.level_dimensions),
        "level_downsamples": tuple(slide.level_downsamples),
        "associated_image_names": tuple(slide.associated_images),
    }
