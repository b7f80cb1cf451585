"""``open_slide``: check the file, pick a backend, fall back, probe one read, resolve µm/px.

Backend choice with ``backend="auto"``: tiffslide first for Aperio SVS and
generic TIFF (faster there, see docs), OpenSlide first for every other format
(NDPI, MRXS, SCN, DICOM, Philips, Ventana...). If the first backend cannot open
the file the other one is tried; if both fail, one :class:`SlideError` reports
what each said. After opening, one pixel at the bottom-right of the coarsest
level is read: writers put that data near the end of the file, so truncated
copies and unsupported compressions fail here (and trigger the fallback)
rather than mid-run. Damage elsewhere surfaces as a :class:`SlideError` from
:meth:`~wsi_engine.slide.SlideReader.read_region`.

Not a slide: a plain single-image TIFF that OpenSlide rejects is opened by
tiffslide as a one-level slide (format ``"tiff"``); having no µm/px it needs
``mpp=`` / ``--mpp``. JPEG, PNG and other non-TIFF images are refused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import openslide

from wsi_engine.errors import ConfigError, SlideError
from wsi_engine.slide.mpp import missing_mpp_error, resolve_mpp
from wsi_engine.slide.openslide_backend import OpenSlideReader
from wsi_engine.slide.reader import SlideReader
from wsi_engine.slide.tiffslide_backend import TiffSlideReader

BACKENDS: dict[str, type[SlideReader]] = {
    "openslide": OpenSlideReader,
    "tiffslide": TiffSlideReader,
}
BACKEND_CHOICES = ("auto", *BACKENDS)

TIFFSLIDE_FORMATS = ("aperio", "generic-tiff")
"""OpenSlide format names that ``auto`` reads with tiffslide first."""

_TIFF_SUFFIXES = (".svs", ".tif", ".tiff")
_FORMATS_HINT = (
    "not a format OpenSlide or tiffslide reads (SVS, TIFF, NDPI, MRXS, SCN, DICOM, BIF, VMS), "
    "or a truncated or corrupt file"
)

log = logging.getLogger(__name__)


def open_slide(
    path: str | Path,
    backend: str = "auto",
    *,
    mpp: float | tuple[float, float] | None = None,
    mpp_table: Mapping[str, tuple[float, float]] | None = None,
    require_mpp: bool = True,
) -> SlideReader:
    """Open the slide at ``path`` and resolve its level-0 µm/px.

    ``backend`` is ``"auto"``, ``"openslide"`` or ``"tiffslide"`` (no fallback
    when named). ``mpp`` (µm/px, one value or (x, y)) overrides everything;
    ``mpp_table`` maps slide ids to (x, y) µm/px. With ``require_mpp=False`` a
    slide without µm/px opens with ``reader.mpp = None``. Every problem with the
    file raises :class:`SlideError`.
    """
    path = Path(path)
    if backend not in BACKEND_CHOICES:
        raise ConfigError(
            f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKEND_CHOICES)}"
        )
    _check_file(path)
    detected = _detect_format(path)
    reader = _open_with(path, detected or "tiff", _backend_order(path, detected, backend))
    try:
        found, notes = resolve_mpp(
            path, reader.properties, reader.objective_power, option=mpp, table=mpp_table
        )
        if found is None and require_mpp:
            raise missing_mpp_error(path, notes)
    except BaseException:
        reader.close()
        raise
    reader.mpp, reader.mpp_notes = found, notes
    if found is not None and found.source == "objective-power":
        log.info("%s: %s", path, notes[-1])
    return reader


def _check_file(path: Path) -> None:
    if not path.exists():
        raise SlideError(
            "file not found", path=path, hint="check the path, and that its drive is mounted"
        )
    if path.is_dir():
        raise SlideError(
            "is a directory, not a slide file",
            path=path,
            hint="pass the slide file (MRXS: the .mrxs file; DICOM: one .dcm file of the series), "
            "or list a folder's slides with `wsi-engine info FOLDER`",
        )
    if not os.access(path, os.R_OK):
        raise SlideError(
            "file is not readable (permission denied)", path=path, hint="check its permissions"
        )
    if path.stat().st_size == 0:
        raise SlideError(
            "file is empty (0 bytes)", path=path, hint="the copy is incomplete: copy it again"
        )


def _detect_format(path: Path) -> str | None:
    """OpenSlide's name for the file's format (``aperio``, ``hamamatsu``...), ``None`` if unknown."""
    try:
        return openslide.OpenSlide.detect_format(path)
    except Exception:  # unreadable or corrupt headers: the backends will say what is wrong
        return None


def _backend_order(path: Path, detected: str | None, backend: str) -> tuple[str, ...]:
    if backend != "auto":
        return (backend,)
    tiff_like = detected in TIFFSLIDE_FORMATS or (
        detected is None and path.suffix.lower() in _TIFF_SUFFIXES
    )
    return ("tiffslide", "openslide") if tiff_like else ("openslide", "tiffslide")


def _open_with(path: Path, format: str, order: tuple[str, ...]) -> SlideReader:
    """The first backend of ``order`` that opens ``path`` and reads a probe pixel."""
    failures: list[str] = []
    for name in order:
        try:
            reader = BACKENDS[name](path, format)
        except Exception as error:  # each library has its own exception types
            failures.append(f"{name}: {str(error) or type(error).__name__}")
            continue
        try:
            _probe(reader)
        except SlideError as error:
            reader.close()
            failures.append(f"{name}: {error.message}")
            continue
        return reader
    if len(order) == 1:
        raise SlideError(f"cannot open with {failures[0]}", path=path, hint="try --backend auto")
    raise SlideError(
        f"cannot open as a slide ({'; '.join(failures)})", path=path, hint=_FORMATS_HINT
    )


def _probe(reader: SlideReader) -> None:
    """Read the bottom-right pixel of the coarsest level (near the end of most files)."""
    if reader.level_count == 0 or min(min(size) for size in reader.level_dimensions) <= 0:
        raise SlideError(f"no image data (levels {reader.level_dimensions})", path=reader.path)
    level = reader.level_count - 1
    width, height = reader.level_dimensions[level]
    downsample = reader.level_downsamples[level]
    corner = (int((width - 1) * downsample), int((height - 1) * downsample))
    reader.read_region(corner, level, (1, 1))
