"""Features of patch stores written as CLAM and TRIDENT read them (``wsi-engine export-features``).

Layouts (``layout``):

* ``clam``: ``<out>/h5_files/<id>.h5`` (``features`` float32, ``coords``
  int64), ``<out>/pt_files/<id>.pt`` (a float32 tensor) and
  ``<out>/patches/<id>.h5`` (``coords`` with ``patch_level``, ``patch_size``,
  ``downsample``, ``level_dim``, ``downsampled_level_dim``, ``name``), the
  patching output CLAM's feature extraction and heatmap scripts read.
* ``trident``: ``<out>/<mag>x_<ps>px_<ov>px_overlap/patches/<id>_patches.h5``
  and ``.../features_<encoder>/<id>.h5`` with TRIDENT's ``coords`` attributes
  (``patch_size`` at ``target_magnification``, ``level0_magnification``,
  ``patch_size_level0``, ``overlap``, ``level0_width``, ``level0_height``)
  and ``encoder`` on ``features``.
* ``flat``: ``<out>/<id>.h5`` with both tools' attributes.

Field of view: every layout describes the true level-0 square of each
stored patch. CLAM reads ``patch_size`` px at pyramid level ``patch_level``:
we write the level the tiler read and its window (a store resampled to
0.5 µm/px from level 0 of a 0.25 µm/px slide gets ``patch_level 0,
patch_size 512`` for 256-px patches). TRIDENT reads ``patch_size ·
level0_magnification / target_magnification`` level-0 px: magnifications are
written as ``10 / mpp`` (its 10x = 1 µm/px convention) with their ratio exact.
The root attribute ``wsi_engine`` holds JSON of the store's feature
attributes (output kind, text alignment, dtype), tiling and slide sections,
so importing the files back restores them. HDF5 features are written in blocks of
:data:`READ_ROWS` rows; a ``.pt`` file (one tensor) needs the whole bag in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine import __version__
from wsi_engine.errors import ConfigError
from wsi_engine.store import PatchStore, find_stores

LAYOUTS = ("flat", "clam", "trident")
ENGINE_META_ATTR = "wsi_engine"
READ_ROWS = 8192
"""Feature rows read from the store and written to an HDF5 file at a time."""


@dataclass(frozen=True)
class ToolGeometry:
    """How CLAM and TRIDENT must be told a store's patches (see the module docstring)."""

    clam_level: int
    clam_patch_size: int  # px at clam_level
    clam_downsample: float  # level-0 px per clam_level px
    level_dim: tuple[int, int]  # (w, h) of clam_level
    patch_size: int  # px at target_magnification
    patch_size_level0: float
    level0_magnification: float
    target_magnification: float
    mpp: float  # µm per level-0 px

    @classmethod
    def of(cls, store: PatchStore) -> ToolGeometry:
        tiling, slide = store.attrs["tiling"], store.attrs["slide"]
        downsample = float(tiling.get("read_downsample") or 1.0)
        size0 = float(tiling["patch_size_level0"])
        window = int(tiling.get("read_window") or round(size0 / downsample))
        mpp0 = float((slide.get("mpp") or [tiling["target_mpp"] * tiling["patch_size"] / size0])[0])
        level0_mag = round(10.0 / mpp0, 6)
        width, height = slide["dimensions"]
        return cls(
            clam_level=int(tiling.get("read_level") or 0),
            clam_patch_size=window,
            clam_downsample=downsample,
            level_dim=(int(np.ceil(width / downsample)), int(np.ceil(height / downsample))),
            patch_size=int(tiling["patch_size"]),
            patch_size_level0=size0,
            level0_magnification=level0_mag,
            target_magnification=level0_mag * int(tiling["patch_size"]) / size0,
            mpp=mpp0,
        )

    def clam_attrs(self, slide_id: str) -> dict[str, Any]:
        return {
            "patch_level": self.clam_level,
            "patch_size": self.clam_patch_size,
            "downsample": np.array([self.clam_downsample, self.clam_downsample]),
            "level_dim": np.array(self.level_dim),
            "downsampled_level_dim": np.array(self.level_dim),
            "name": slide_id,
        }

    def trident_attrs(self, store: PatchStore, patch_size: int) -> dict[str, Any]:
        """TRIDENT's ``coords`` attributes for ``patch_size`` px patches (magnifications keep the field of view)."""
        width, height = store.slide_dimensions
        return {
            "patch_size": patch_size,
            "patch_size_level0": int(round(self.patch_size_level0)),
            "level0_magnification": self.level0_magnification,
            "target_magnification": self.level0_magnification * patch_size / self.patch_size_level0,
            "overlap": int(store.attrs["tiling"].get("overlap") or 0),
            "level0_width": int(width),
            "level0_height": int(height),
            "name": store.slide_id,
        }

    def trident_folder(self, overlap: int) -> str:
        return f"{round(self.target_magnification, 3):g}x_{self.patch_size}px_{overlap}px_overlap"


def export_features(
    store_paths: list[str | Path], encoder_id: str, out_dir: str | Path, layout: str = "flat"
) -> list[Path]:
    """Write every store's ``features/<encoder_id>`` in ``layout``; returns the feature files written."""
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}", hint=f"use one of {', '.join(LAYOUTS)}")
    out_dir = Path(out_dir)
    written = []
    for path in find_stores(list(store_paths)):
        store = PatchStore.open(path)
        features = _FeatureBlocks(store, encoder_id)
        geometry = ToolGeometry.of(store)
        root = _root_attrs(store, encoder_id)
        coords = store.coords()
        slide_id = store.slide_id
        if layout == "trident":
            attrs = geometry.trident_attrs(store, geometry.patch_size)
            job = out_dir / geometry.trident_folder(attrs["overlap"])
            _write_h5(job / "patches" / f"{slide_id}_patches.h5", None, coords, attrs, {})
            target = job / f"features_{encoder_id}" / f"{slide_id}.h5"
            _write_h5(target, features, coords, attrs, root, encoder=encoder_id)
        else:
            attrs = {
                **geometry.trident_attrs(store, geometry.clam_patch_size),
                **geometry.clam_attrs(slide_id),
                "mpp": geometry.mpp,
                "target_mpp": float(store.target_mpp),
            }
            if layout == "flat":
                target = out_dir / f"{slide_id}.h5"
            else:
                target = out_dir / "h5_files" / f"{slide_id}.h5"
                _write_h5(out_dir / "patches" / f"{slide_id}.h5", None, coords, attrs, {})
                _write_pt(out_dir / "pt_files" / f"{slide_id}.pt", features.all())
            _write_h5(target, features, coords, attrs, root, encoder=encoder_id)
        written.append(target)
    return written


def _root_attrs(store: PatchStore, encoder_id: str) -> dict[str, Any]:
    meta = store.feature_attrs(encoder_id)
    tiling = store.attrs["tiling"]
    record = {
        "features": {**meta, "encoder_id": encoder_id},
        "tiling": {k: tiling.get(k) for k in ("patch_size", "patch_size_level0", "target_mpp",
                                              "read_level", "read_downsample", "read_window", "overlap")},
        "slide": store.attrs["slide"],
    }  # fmt: skip
    return {
        "encoder": encoder_id,
        "output_kind": str(meta.get("output_kind")),
        "text_aligned": bool(meta.get("text_aligned")),
        "checkpoint_sha256": str(meta.get("checkpoint_sha256")),
        "engine_version": __version__,
        ENGINE_META_ATTR: json.dumps(record, default=str),
    }


@dataclass(frozen=True)
class _FeatureBlocks:
    """A store's features of ``encoder_id`` read :data:`READ_ROWS` rows at a time, as float32."""

    store: PatchStore
    encoder_id: str

    def __post_init__(self) -> None:
        self.store.feature_array(
            self.encoder_id
        )  # StoreError (missing, incomplete) before any write

    @property
    def shape(self) -> tuple[int, int]:
        rows, dim = self.store.feature_array(self.encoder_id).shape
        return int(rows), int(dim)

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows (≤ READ_ROWS, D)) in order."""
        for start in range(0, self.shape[0], READ_ROWS):
            stop = min(start + READ_ROWS, self.shape[0])
            yield start, self.store.read_features(self.encoder_id, start=start, stop=stop)

    def all(self) -> np.ndarray:
        """Every row at once (a ``.pt`` file holds one tensor)."""
        return self.store.read_features(self.encoder_id)


def _write_h5(
    target: Path,
    features: _FeatureBlocks | None,
    coords: np.ndarray,
    coord_attrs: dict[str, Any],
    root_attrs: dict[str, Any],
    encoder: str | None = None,
) -> None:
    """One HDF5 file, written to ``<target>.tmp`` and renamed."""
    import h5py

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with h5py.File(tmp, "w") as handle:
        if features is not None:
            data = handle.create_dataset("features", shape=features.shape, dtype=np.float32)
            for start, block in features.blocks():
                data[start : start + len(block)] = block
            data.attrs.update({"name": target.stem, "encoder": encoder or "None"})
        handle.create_dataset("coords", data=np.asarray(coords, dtype=np.int64)).attrs.update(
            coord_attrs
        )
        handle.attrs.update(root_attrs)
    tmp.replace(target)


def _write_pt(target: Path, features: np.ndarray) -> None:
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    torch.save(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)), tmp)
    tmp.replace(target)
