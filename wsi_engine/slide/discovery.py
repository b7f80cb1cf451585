"""Which files under the given paths are slides.

Rules of :func:`find_slides`:

* a path that is not a directory is returned as given (even with another
  extension, or missing: opening it then reports the problem);
* a directory contributes its files whose name ends with one of ``extensions``
  (case-insensitive), its sub-directories too with ``recursive``; names
  starting with ``.`` (hidden files, macOS ``._*`` resource forks) are skipped;
* MIRAX: the companion folder ``NAME/`` beside ``NAME.mrxs`` holds the slide's
  data files, not slides, and is not searched (the ``.mrxs`` file is the slide);
* DICOM: a slide is a series of ``.dcm`` files (one per level or image) in one
  folder, and OpenSlide opens the whole series from any of its files; one file
  per (folder, SeriesInstanceUID) is kept, the first by name. A ``.dcm`` whose
  header cannot be read is kept on its own, so opening it reports the problem;
* the result is sorted and free of duplicates.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

SLIDE_EXTENSIONS = (
    ".svs",  # Aperio
    ".tif",  # generic/OME TIFF, Philips TIFF, Aperio-style TIFF
    ".tiff",
    ".ndpi",  # Hamamatsu
    ".vms",
    ".vmu",
    ".scn",  # Leica
    ".mrxs",  # MIRAX (3DHISTECH), with its companion folder
    ".svslide",  # Sakura
    ".bif",  # Ventana
    ".dcm",  # DICOM WSI series
)
"""Extensions of the slide files OpenSlide or tiffslide read."""


def find_slides(
    paths: Iterable[str | Path],
    recursive: bool = False,
    extensions: Iterable[str] = SLIDE_EXTENSIONS,
) -> list[Path]:
    """Slide files named by ``paths`` (files, or folders searched by the module's rules), sorted."""
    suffixes = tuple(ext.lower() for ext in extensions)
    found: set[Path] = set()
    for path in map(Path, paths):
        if path.is_dir():
            found.update(_slides_in(path, recursive, suffixes))
        else:
            found.add(path)
    return sorted(found)


def _slides_in(folder: Path, recursive: bool, suffixes: tuple[str, ...]) -> list[Path]:
    slides: list[Path] = []
    for root, dirs, files in os.walk(folder):
        names = [
            name for name in files if not name.startswith(".") and name.lower().endswith(suffixes)
        ]
        mirax_stems = {name[: -len(".mrxs")] for name in names if name.lower().endswith(".mrxs")}
        dirs[:] = [d for d in dirs if recursive and not d.startswith(".") and d not in mirax_stems]
        dicom = [Path(root, name) for name in names if name.lower().endswith(".dcm")]
        slides.extend(Path(root, name) for name in names if not name.lower().endswith(".dcm"))
        slides.extend(_one_per_series(dicom))
    return slides


def _one_per_series(files: list[Path]) -> list[Path]:
    """The first file (by name) of each DICOM series among ``files`` of one folder."""
    first: dict[str, Path] = {}
    for path in sorted(files):
        first.setdefault(_series_uid(path) or str(path), path)
    return list(first.values())


def _series_uid(path: Path) -> str | None:
    """The DICOM SeriesInstanceUID of ``path``, or ``None`` when its header cannot be read."""
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
    except Exception:  # not DICOM, truncated, unreadable: opened alone, the slide reader says why
        return None
    return str(header.get("SeriesInstanceUID", "")) or None


def find_slide_by_id(folder: str | Path, slide_id: str) -> Path | None:
    """The slide under ``folder`` (searched recursively) whose store id is ``slide_id``, or ``None``."""
    from wsi_engine.slide.ids import slide_id_from_path

    return next(
        (p for p in find_slides([folder], recursive=True) if slide_id_from_path(p) == slide_id),
        None,
    )
