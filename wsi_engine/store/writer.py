"""Create a per-slide store atomically: write under ``<id>.zarr.partial``, rename when complete.

Used by tiling and by ``import-features``. Resume rules: a partial store is
reopened only when its ``slide`` fingerprint, ``tiling`` and ``tissue``
attributes and its coordinates all equal the new request's; any other partial
store (other parameters, another file under the same name, unreadable
leftovers of a killed run) is deleted and recreated. Within a reopened store,
a ``patches`` array whose shape or codecs differ from the request is
recreated and the shard markers are reset, so a resumed store is always
equal to one written in a single run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from wsi_engine import __version__
from wsi_engine.errors import StoreError
from wsi_engine.store import layout
from wsi_engine.store.attrs import checked_sections
from wsi_engine.store.codecs import JpegCodec, patch_array_options
from wsi_engine.store.integrity import seal, sealed_arrays
from wsi_engine.store.patch_store import utc_now
from wsi_engine.store.progress import BlockProgress

SHARD_PROGRESS = "shards"
"""Name of the tiling writer's markers in ``_progress``."""


class StoreWriter:
    """A store being written. Create with :meth:`open_or_create`, finish with :meth:`finalize`."""

    def __init__(self, out_dir: Path, slide_id: str, root: zarr.Group, resumed: bool):
        self.out_dir = out_dir
        self.slide_id = slide_id
        self.root = root
        self.resumed = resumed
        self.path = layout.partial_store_path(out_dir, slide_id)
        self.final_path = layout.store_path(out_dir, slide_id)

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.root.attrs[layout.ATTRS_KEY])

    @classmethod
    def open_or_create(
        cls,
        out_dir: str | Path,
        slide_id: str,
        attrs: dict[str, Any],
        coords: np.ndarray,
        tissue_fraction: np.ndarray,
        flags: tuple[str, ...] | list[str] = (),
    ) -> StoreWriter:
        """Start (or resume) the store of ``slide_id`` in ``out_dir``.

        ``attrs`` holds the ``slide``, ``tiling`` and ``tissue`` sections of
        docs/store.md; ``coords`` (N, 2) level-0 px and ``tissue_fraction`` (N,);
        ``flags`` extra store flags (``no-tissue`` is added when N = 0).
        """
        out_dir = Path(out_dir)
        attrs = checked_sections(_as_json(attrs))
        coords = np.ascontiguousarray(coords, dtype=np.int64).reshape(-1, 2)
        tissue_fraction = np.ascontiguousarray(tissue_fraction, dtype=np.float32).reshape(-1)
        partial = layout.partial_store_path(out_dir, slide_id)
        if partial.exists():
            resumed = cls._try_resume(out_dir, slide_id, partial, attrs, coords)
            if resumed is not None:
                return resumed
            shutil.rmtree(partial)
        root = zarr.open_group(str(partial), mode="w")
        n = len(coords)
        root.attrs[layout.ATTRS_KEY] = {
            "schema_version": layout.SCHEMA_VERSION,
            "engine_version": __version__,
            "created": utc_now(),
            **attrs,
            "n_patches": n,
            "flags": list(dict.fromkeys([*flags, *([] if n else ["no-tissue"])])),
        }
        if n:
            root.create_array(
                layout.COORDS, shape=coords.shape, chunks=coords.shape, dtype="int64"
            )[...] = coords
            root.create_array(layout.TISSUE_FRACTION, shape=(n,), chunks=(n,), dtype="float32")[
                ...
            ] = tissue_fraction
        return cls(out_dir, slide_id, root, resumed=False)

    @classmethod
    def reopen(cls, out_dir: str | Path, slide_id: str) -> StoreWriter:
        """The partial store of ``slide_id`` written by another process (e.g. to :meth:`finalize` it)."""
        out_dir = Path(out_dir)
        partial = layout.partial_store_path(out_dir, slide_id)
        try:
            root = zarr.open_group(str(partial), mode="r+")
        except Exception as error:
            raise StoreError(f"cannot reopen the partial store ({error})", path=partial) from error
        return cls(out_dir, slide_id, root, resumed=True)

    @classmethod
    def _try_resume(
        cls, out_dir: Path, slide_id: str, partial: Path, attrs: dict[str, Any], coords: np.ndarray
    ) -> StoreWriter | None:
        try:
            root = zarr.open_group(str(partial), mode="r+")
            old = root.attrs[layout.ATTRS_KEY]
            same = (
                old["slide"]["fingerprint"] == attrs["slide"]["fingerprint"]
                and all(old.get(key) == attrs.get(key) for key in ("tiling", "tissue"))
                and old["n_patches"] == len(coords)
                and (len(coords) == 0 or np.array_equal(root[layout.COORDS][:], coords))
            )
        except Exception:  # unreadable leftovers of a killed run: start again
            return None
        return cls(out_dir, slide_id, root, resumed=True) if same else None

    def write_image(
        self, name: str, image: np.ndarray, *, jpeg_quality: int | None = None, **image_attrs: Any
    ) -> None:
        """Write a small whole image (thumbnail, tissue mask) as one chunk with attributes.

        With ``jpeg_quality`` an (h, w, 3) uint8 image is stored as one JPEG
        (``wsi_engine.jpeg`` codec), else losslessly (zstd).
        """
        options: dict[str, Any] = {}
        if jpeg_quality is not None:
            options = {"serializer": JpegCodec(quality=jpeg_quality), "compressors": None}
        array = self.root.create_array(
            name,
            shape=image.shape,
            chunks=image.shape,
            dtype=image.dtype,
            overwrite=True,
            **options,
        )
        array[...] = image
        array.attrs.update(_as_json(image_attrs))

    def create_patches(
        self, patch_size: int, pixel_mode: str, jpeg_quality: int, shard_patches: int
    ) -> zarr.Array:
        """The (N, S, S, 3) uint8 patch array, sharded by ``shard_patches``.

        An existing array is reused when it has this shape, sharding and
        codec; otherwise it is recreated and the shard markers are reset.
        """
        n = self.attrs["n_patches"]
        options = patch_array_options(pixel_mode, jpeg_quality)
        shape = (n, patch_size, patch_size, 3)
        shards = (shard_patches, patch_size, patch_size, 3)
        if layout.PATCHES in self.root:
            try:
                existing = self.root[layout.PATCHES]
                wanted = zarr.create_array(
                    zarr.storage.MemoryStore(),
                    shape=shape,
                    chunks=(1, *shape[1:]),
                    shards=shards,
                    dtype="uint8",
                    fill_value=0,
                    **options,
                )
                if existing.metadata.to_dict()["codecs"] == wanted.metadata.to_dict()[
                    "codecs"
                ] and (existing.shape == shape):
                    return existing
            except Exception:  # metadata left half-written by a killed run
                pass
            self.reset_progress(SHARD_PROGRESS)
        return self.root.create_array(
            layout.PATCHES,
            shape=shape,
            chunks=(1, *shape[1:]),
            shards=shards,
            dtype="uint8",
            fill_value=0,
            overwrite=True,
            **options,
        )

    def shard_progress(self, n_shards: int) -> BlockProgress:
        """Markers of finished shards (``_progress/shards``)."""
        return BlockProgress(self.root, SHARD_PROGRESS, n_shards)

    def reset_progress(self, name: str) -> None:
        """Forget every marker of writer ``name`` (its blocks will all be rewritten)."""
        key = f"{layout.PROGRESS}/{name}"
        if key in self.root:
            del self.root[key]

    def finalize(self) -> Path:
        """Drop progress markers, seal every array, stamp completion and rename to ``<id>.zarr``.

        Returns the final path.

        A complete store of the same slide is replaced: it is moved aside,
        the new one is renamed into place, then the old one is deleted, so
        ``<id>.zarr`` is never a mixture of the two.
        """
        if layout.PROGRESS in self.root:
            del self.root[layout.PROGRESS]
        for array in sealed_arrays(self.root):
            seal(self.path, array)
        meta = self.attrs
        meta["completed"] = utc_now()
        self.root.attrs[layout.ATTRS_KEY] = meta
        old = self.final_path.with_name(f"{self.final_path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if self.final_path.exists():
            os.replace(self.final_path, old)
        os.replace(self.path, self.final_path)
        if old.exists():
            shutil.rmtree(old)
        return self.final_path


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON attributes (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value))
