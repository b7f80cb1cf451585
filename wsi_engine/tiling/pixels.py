"""The one pixel reader of later stages: a store's ``patches`` array, or patches cut from the slide.

A store tiled with ``pixel_mode: none`` holds coordinates only; its patches
are then read from the source slide with tiling's own geometry
(:meth:`GridGeometry.from_attrs`) and extraction code
(:mod:`wsi_engine.tiling.extract`: same read level, same window, same
``resample``), so features match those of a store with pixels. Embedding,
galleries and any later stage read patches through :class:`PatchSource`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsi_engine.errors import StoreError
from wsi_engine.store import PatchStore
from wsi_engine.tiling.config import TilingConfig
from wsi_engine.tiling.extract import extract_patches
from wsi_engine.tiling.grid import GridGeometry
from wsi_engine.tiling.tasks import cached_reader


class PatchSource:
    """Reads row ranges of one store as (n, S, S, 3) uint8 RGB patches. Opened lazily, one per process."""

    def __init__(self, store: str | Path | PatchStore, slide_path: Path | None = None):
        """``slide_path``: the slide to cut patches from (default: the path recorded at tiling)."""
        self.store = store if isinstance(store, PatchStore) else PatchStore.open(store)
        self.slide_path = slide_path
        self._coords: np.ndarray | None = None
        self._geometry: GridGeometry | None = None

    def read(self, start: int, stop: int) -> np.ndarray:
        """Patches ``[start, stop)`` of the store, in store order."""
        if self.store.has_pixels:
            return self.store.read_patches(start, stop)
        return self._read_from_slide(start, stop)

    def _read_from_slide(self, start: int, stop: int) -> np.ndarray:
        slide = self.store.sections.slide
        path = self.slide_path or (Path(slide.path) if slide.path else None)
        if path is None or not path.is_file():
            raise StoreError(
                f"this store holds no pixels and its slide is missing ({path})",
                path=self.store.path,
                hint="restore the slide at that path, or re-tile with --pixels jpeg",
            )
        if self._coords is None:
            self._coords = self.store.coords()
            mpp = slide.mpp[0] if slide.mpp else None
            self._geometry = GridGeometry.from_attrs(self.store.sections.tiling, mpp)
        reader = cached_reader(path, slide.backend or "auto")
        return extract_patches(
            reader, self._geometry, self._coords[start:stop], TilingConfig().region_size
        )
