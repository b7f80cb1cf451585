"""Read a complete per-slide patch store and add later stages' groups to it.

The layout is specified in docs/store.md. Tiling creates stores
(:mod:`wsi_engine.tiling`); this class opens complete ones, reads coordinates,
patches and features, and writes ``features/<encoder_id>`` and
``scores/<run_id>`` without touching what earlier stages wrote.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from wsi_engine.errors import StoreError
from wsi_engine.locks import StoreLock
from wsi_engine.store import layout
from wsi_engine.store.attrs import StoreAttrs, read_attrs
from wsi_engine.store.integrity import ArrayGuard, seal, unseal
from wsi_engine.store.progress import BlockProgress


def utc_now() -> str:
    """Current time as an ISO-8601 UTC string (seconds)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class PatchStore:
    """One slide's complete store. Use :meth:`open`; ``mode="r+"`` to add features or scores."""

    def __init__(self, path: Path, root: zarr.Group):
        self.path = path
        self.root = root
        self.attrs: dict[str, Any] = dict(root.attrs.get(layout.ATTRS_KEY, {}))
        self.sections: StoreAttrs = read_attrs(self.attrs, path)
        self._guards: dict[str, ArrayGuard] = {}

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> PatchStore:
        """Open the complete store at ``path``; raise :class:`StoreError` if it is not one."""
        path = Path(path)
        if path.name.endswith(layout.PARTIAL_SUFFIX):
            raise StoreError(
                "this store is incomplete (tiling was interrupted)",
                path=path,
                hint="rerun `wsi-engine tile` on its slide to finish it",
            )
        if not path.is_dir():
            raise StoreError(
                "no patch store here", path=path, hint="create it with `wsi-engine tile`"
            )
        try:
            root = zarr.open_group(str(path), mode=mode)
        except Exception as error:
            raise StoreError(
                f"not a readable Zarr v3 store ({type(error).__name__}: {error})",
                path=path,
                hint="re-tile the slide with `wsi-engine tile --overwrite`",
            ) from error
        return cls(path, root)

    # --------------------------------------------------------------- geometry
    @property
    def slide_id(self) -> str:
        return self.sections.slide.id

    @property
    def slide_path(self) -> Path:
        """Absolute path of the source slide as recorded at tiling time (empty for imported stores)."""
        return Path(self.sections.slide.path or "")

    @property
    def slide_dimensions(self) -> tuple[int, int]:
        """(width, height) of level 0 in pixels."""
        return self.sections.slide.dimensions

    @property
    def n_patches(self) -> int:
        return self.sections.n_patches

    @property
    def patch_size(self) -> int:
        """Side of a stored patch in pixels at ``target_mpp``."""
        return self.sections.tiling.patch_size

    @property
    def patch_size_level0(self) -> float:
        """Side of a patch in level-0 pixels."""
        return self.sections.tiling.patch_size_level0

    @property
    def target_mpp(self) -> float:
        """µm/px of the stored patches."""
        return self.sections.tiling.target_mpp

    @property
    def pixel_mode(self) -> str:
        return self.sections.tiling.pixel_mode

    @property
    def has_pixels(self) -> bool:
        return self.pixel_mode != "none" and layout.PATCHES in self.root

    def coords(self) -> np.ndarray:
        """(N, 2) int64 level-0 x, y of each patch's top-left corner."""
        if self.n_patches == 0:
            return np.zeros((0, 2), dtype=np.int64)
        return np.asarray(self._read(layout.COORDS), dtype=np.int64)

    def tissue_fraction(self) -> np.ndarray:
        """(N,) float32 fraction of each patch inside the tissue mask."""
        if self.n_patches == 0:
            return np.zeros((0,), dtype=np.float32)
        return np.asarray(self._read(layout.TISSUE_FRACTION), dtype=np.float32)

    def shard_ranges(self) -> list[tuple[int, int]]:
        """[(start, stop), ...] patch index ranges of the pixel shards (or of equal blocks without pixels)."""
        size = int(self.attrs["tiling"]["shard_patches"])
        return [(s, min(s + size, self.n_patches)) for s in range(0, self.n_patches, size)]

    def read_patches(self, start: int, stop: int) -> np.ndarray:
        """(stop-start, S, S, 3) uint8 RGB patches; needs a store with pixels."""
        if not self.has_pixels:
            raise StoreError(
                "this store holds coordinates only (pixel_mode 'none')",
                path=self.path,
                hint="read patches from the slide instead, or re-tile with --pixels jpeg",
            )
        return np.asarray(self._read(layout.PATCHES, start, stop))

    def thumbnail(self) -> tuple[np.ndarray, float]:
        """(thumbnail (h, w, 3) uint8, level-0 px per thumbnail px)."""
        image = self._read(layout.THUMBNAIL)
        return np.asarray(image), float(self.root[layout.THUMBNAIL].attrs["downsample"])

    def tissue_mask(self) -> tuple[np.ndarray, float]:
        """(mask (h, w) bool, level-0 px per mask px)."""
        mask = self._read(layout.TISSUE_MASK)
        return np.asarray(mask).astype(bool), float(
            self.root[layout.TISSUE_MASK].attrs["downsample"]
        )

    # -------------------------------------------------------------- integrity
    def guard(self, name: str) -> ArrayGuard:
        """The integrity checks of array ``name``; its recorded chunks are checked present on first use."""
        if name not in self._guards:
            guard = ArrayGuard(self.path, self.attrs, self.root[name])
            guard.check_present()
            self._guards[name] = guard
        return self._guards[name]

    def _read(self, name: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Rows ``[start, stop)`` of array ``name``, its chunks checked present and intact."""
        return np.asarray(self.guard(name).read(start, stop))

    # --------------------------------------------------------------- features
    def feature_ids(self) -> list[str]:
        """Encoder ids with complete features in this store."""
        if layout.FEATURES not in self.root:
            return []
        group = self.root[layout.FEATURES]
        return sorted(name for name in group.array_keys() if self.has_features(name))

    def has_features(self, encoder_id: str) -> bool:
        key = f"{layout.FEATURES}/{encoder_id}"
        if key not in self.root:
            return False
        return bool(self.root[key].attrs.get(layout.ATTRS_KEY, {}).get("complete", False))

    def feature_attrs(self, encoder_id: str) -> dict[str, Any]:
        return dict(self._feature_array(encoder_id).attrs.get(layout.ATTRS_KEY, {}))

    def feature_array(self, encoder_id: str) -> zarr.Array:
        """The lazy (N, D) feature array of a complete encoder run (its chunks checked present)."""
        array = self._feature_array(encoder_id)
        if not self.has_features(encoder_id):
            raise StoreError(
                f"features for encoder '{encoder_id}' are incomplete (embedding was interrupted)",
                path=self.path,
                hint=f"rerun `wsi-engine embed` with --encoder {encoder_id}",
            )
        self.guard(f"{layout.FEATURES}/{encoder_id}")
        return array

    def read_features(
        self,
        encoder_id: str,
        dtype: np.dtype | type | None = np.float32,
        start: int | None = None,
        stop: int | None = None,
    ) -> np.ndarray:
        """Rows ``[start, stop)`` (all by default) of the (N, D) features of ``encoder_id`` as ``dtype``.

        float32 by default; ``None``: as stored.
        """
        self.feature_array(encoder_id)
        return np.asarray(self._read(f"{layout.FEATURES}/{encoder_id}", start, stop), dtype=dtype)

    def _feature_array(self, encoder_id: str) -> zarr.Array:
        key = f"{layout.FEATURES}/{encoder_id}"
        if key not in self.root:
            available = ", ".join(self.feature_ids()) or "none"
            raise StoreError(
                f"no features for encoder '{encoder_id}' (available: {available})",
                path=self.path,
                hint=f"run `wsi-engine embed {self.path} --encoder {encoder_id}` first",
            )
        return self.root[key]

    def create_features(
        self,
        encoder_id: str,
        dim: int,
        attrs: dict[str, Any],
        *,
        block_rows: int,
        dtype: str = "float16",
    ) -> tuple[zarr.Array, BlockProgress]:
        """Create (or reopen, to resume) ``features/<encoder_id>`` of shape (N, dim).

        Returns the array and its row-block progress markers (block k = rows
        ``[k*block_rows, (k+1)*block_rows)``). An existing array of another shape
        or dtype is replaced. Call :meth:`complete_features` when all blocks are written.
        """
        key = f"{layout.FEATURES}/{encoder_id}"
        progress_key = f"{layout.PROGRESS}/{layout.FEATURES}/{encoder_id}"
        self.root.require_group(layout.FEATURES)
        n_blocks = max(1, -(-self.n_patches // block_rows))
        existing = self.root[key] if key in self.root else None
        reusable = (
            existing is not None
            and existing.shape == (self.n_patches, dim)
            and str(existing.dtype) == dtype
        )
        if not reusable:
            if progress_key in self.root:
                del self.root[progress_key]
            array = self.root.create_array(
                key,
                shape=(self.n_patches, dim),
                chunks=(max(1, min(block_rows, self.n_patches)), dim),
                dtype=dtype,
                fill_value=0,
                overwrite=True,
            )
        else:
            array = existing
            unseal(array)
        progress = BlockProgress(self.root, f"{layout.FEATURES}/{encoder_id}", n_blocks)
        array.attrs[layout.ATTRS_KEY] = {**attrs, "encoder_id": encoder_id, "complete": False}
        return array, progress

    def complete_features(self, encoder_id: str, progress: BlockProgress) -> None:
        """Mark ``features/<encoder_id>`` complete and drop its progress markers."""
        array = self._feature_array(encoder_id)
        meta = dict(array.attrs.get(layout.ATTRS_KEY, {}))
        seal(self.path, array)
        array.attrs[layout.ATTRS_KEY] = {**meta, "complete": True, "completed": utc_now()}
        progress.clear()

    def delete_features(self, encoder_id: str) -> None:
        key = f"{layout.FEATURES}/{encoder_id}"
        if key in self.root:
            del self.root[key]

    # ----------------------------------------------------------------- scores
    def score_runs(self) -> list[str]:
        """Run ids with complete scores in this store."""
        return self._complete_groups(layout.SCORES)

    def has_scores(self, run_id: str) -> bool:
        return run_id in self.score_runs()

    def read_scores(self, run_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """({array name: array}, attributes) of ``scores/<run_id>``."""
        if not self.has_scores(run_id):
            available = ", ".join(self.score_runs()) or "none"
            raise StoreError(
                f"no scores for run '{run_id}' (available: {available})",
                path=self.path,
                hint="run `wsi-engine predict --run RUN_DIR` (or `predict-patches`) on this store first",
            )
        return self._read_group(layout.SCORES, run_id)

    def write_scores(
        self, run_id: str, arrays: dict[str, np.ndarray], attrs: dict[str, Any]
    ) -> None:
        """Write ``scores/<run_id>`` atomically (temporary group, then rename); replaces an old one.

        Holds the store's lock meanwhile (:class:`~wsi_engine.locks.StoreLock`):
        a store another run is writing is an OutputError.
        """
        n = self.n_patches
        for name, values in arrays.items():
            if values.shape[0] != n:
                raise ValueError(
                    f"scores '{name}' has {values.shape[0]} rows, store has {n} patches"
                )
        with StoreLock(self.path):
            self._replace_group(
                layout.SCORES, run_id, arrays, {**attrs, "run_id": run_id}, "float32"
            )

    # ----------------------------------------------------------------- report pairs
    def report_pairs(self) -> list[str]:
        """Corpus ids with report pairs in this store (``reports/<corpus_id>``)."""
        return self._complete_groups(layout.REPORTS)

    def read_report_pairs(self, corpus_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """({"indices", "scores"}, attributes) of ``reports/<corpus_id>``."""
        if corpus_id not in self.report_pairs():
            available = ", ".join(self.report_pairs()) or "none"
            raise StoreError(
                f"no report pairs for corpus '{corpus_id}' (available: {available})",
                path=self.path,
                hint="run `wsi-engine reports pair --corpus CORPUS --stores ...` first",
            )
        return self._read_group(layout.REPORTS, corpus_id)

    def _complete_groups(self, parent: str) -> list[str]:
        """Names of the complete groups under ``parent`` (``.tmp-`` names are writes in progress)."""
        if parent not in self.root:
            return []
        return sorted(
            n for n in self.root[parent].group_keys() if not n.startswith(layout.TMP_PREFIX)
        )

    def _read_group(self, parent: str, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """({array name: checked array}, attributes) of the group ``<parent>/<name>``."""
        group = self.root[f"{parent}/{name}"]
        arrays = {key: self._read(f"{parent}/{name}/{key}") for key in group.array_keys()}
        return arrays, dict(group.attrs.get(layout.ATTRS_KEY, {}))

    def write_report_pairs(
        self, corpus_id: str, arrays: dict[str, np.ndarray], attrs: dict[str, Any]
    ) -> None:
        """Write ``reports/<corpus_id>`` atomically (docs/store.md); replaces an old one."""
        self._replace_group(layout.REPORTS, corpus_id, arrays, {**attrs, "corpus_id": corpus_id})

    def _replace_group(
        self,
        parent: str,
        name: str,
        arrays: dict[str, np.ndarray],
        attrs: dict[str, Any],
        dtype: str | None = None,
    ) -> None:
        """Write ``<parent>/<name>`` under a temporary name, then rename it over any old one."""
        self.root.require_group(parent)
        tmp = self.root.create_group(f"{parent}/{layout.TMP_PREFIX}{name}", overwrite=True)
        for key, values in arrays.items():
            values = np.ascontiguousarray(values, dtype=dtype or values.dtype)
            array = tmp.create_array(
                key, shape=values.shape, chunks=values.shape or (1,), dtype=values.dtype
            )
            array[...] = values
            seal(self.path, array)
        tmp.attrs[layout.ATTRS_KEY] = {**attrs, "created": utc_now()}
        folder = self.path / parent
        final_dir = folder / name
        if final_dir.exists():
            old = folder / f"{layout.TMP_PREFIX}old-{name}"
            os.replace(final_dir, old)
            os.replace(folder / f"{layout.TMP_PREFIX}{name}", final_dir)
            shutil.rmtree(old)
        else:
            os.replace(folder / f"{layout.TMP_PREFIX}{name}", final_dir)


def iter_stores(paths: list[str | Path]) -> Iterator[PatchStore]:
    """Open every complete store named by ``paths`` (stores or folders of stores)."""
    for path in layout.find_stores(paths):
        yield PatchStore.open(path)
