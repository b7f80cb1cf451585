"""Features made by other tools: CLAM / TRIDENT files in, coordinate-only stores out, and back.

Import reads HDF5 files with ``features`` (N, D) or (1, N, D) and ``coords``
(N, 2) level-0 x, y, with the attributes CLAM (``patch_level``,
``patch_size``, ``downsample``, ``level_dim``) or TRIDENT
(``patch_size_level0``, ``level0_magnification``, ``level0_width``...) write,
using what is present; or ``.pt`` tensors (N, D) whose coordinates come from
a sibling HDF5 file (same stem, beside it or in ``../h5_files`` / ``../patches``).
Each becomes ``<out>/<slide_id>.zarr`` (``pixel_mode: none``) holding
``features/<encoder_id>``. The slide, when found in ``slides`` (same stem),
supplies geometry and µm/px; otherwise ``mpp`` (level-0 µm/px) must be
given or recorded in the file. Imported features are recorded as
``pre_projection`` (not text-aligned) unless the caller says otherwise.

Export writes the same HDF5 layout back: ``features`` (float32), ``coords``
(int64) with CLAM/TRIDENT attributes plus ours (``mpp``, ``target_mpp``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine import __version__
from wsi_engine.errors import DataError
from wsi_engine.store import (
    PatchStore,
    find_stores,
    sanitize_name,
    slide_id_from_path,
    store_path,
    utc_now,
)
from wsi_engine.store.writer import StoreWriter

H5_SUFFIXES = (".h5", ".hdf5")
PT_SUFFIXES = (".pt", ".pth")
OUTPUT_KINDS = ("joint", "pre_projection", "image_only")


@dataclass
class ImportResult:
    """One imported file: the store written, or ``status`` failed with a reason."""

    source: str
    slide_id: str
    store: str = ""
    n_patches: int = 0
    status: str = "done"
    reason: str = ""


def find_feature_files(paths: list[str | Path]) -> list[Path]:
    """Feature files named by ``paths`` (files, or folders searched recursively); HDF5 preferred per stem."""
    found: dict[str, Path] = {}
    for path in map(Path, paths):
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            suffix = file.suffix.lower()
            if suffix in H5_SUFFIXES or (suffix in PT_SUFFIXES and file.stem not in found):
                if suffix in H5_SUFFIXES and _h5_has_features(file) is False:
                    continue  # a coordinates-only file (CLAM patches/): used as a .pt sibling
                found[file.stem] = file
    return sorted(found.values())


def _h5_has_features(path: Path) -> bool | None:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return "features" in handle
    except OSError:
        return None


def read_feature_file(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(features (N, D) float32, coords (N, 2) int64, attributes) of a CLAM/TRIDENT file."""
    path = Path(path)
    if path.suffix.lower() in PT_SUFFIXES:
        features = _read_pt(path)
        coords, attrs = _read_coords(_sibling_h5(path))
    else:
        coords, attrs = _read_coords(path)
        import h5py

        with h5py.File(path, "r") as handle:
            features = np.asarray(handle["features"][:])
            attrs = {**_attrs(handle["features"].attrs), **attrs}
    if features.ndim == 3 and features.shape[0] == 1:
        features = features[0]
    if features.ndim != 2:
        raise DataError(
            f"features must be (N, D) or (1, N, D), got shape {features.shape}", path=path
        )
    if len(features) != len(coords):
        raise DataError(f"{len(features)} feature rows but {len(coords)} coordinates", path=path)
    return features.astype(np.float32, copy=False), coords, attrs


def _read_pt(path: Path) -> np.ndarray:
    import torch

    try:
        value = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise DataError(f"cannot read the .pt file ({type(error).__name__})", path=path) from error
    if not isinstance(value, torch.Tensor):
        raise DataError(f"expected a tensor of features, found {type(value).__name__}", path=path)
    return value.float().numpy()


def _sibling_h5(path: Path) -> Path:
    candidates = [path.with_suffix(s) for s in H5_SUFFIXES]
    for folder in ("h5_files", "patches"):
        candidates += [path.parent.parent / folder / f"{path.stem}{s}" for s in H5_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(
        "a .pt file holds features only; its coordinates file was not found",
        path=path,
        hint=f"put {path.stem}.h5 (with a 'coords' dataset) beside it or in ../h5_files or ../patches",
    )


def _read_coords(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "coords" not in handle:
                raise DataError("no 'coords' dataset (N, 2 level-0 x, y)", path=path)
            coords = np.asarray(handle["coords"][:], dtype=np.int64).reshape(-1, 2)
            return coords, {**_attrs(handle.attrs), **_attrs(handle["coords"].attrs)}
    except OSError as error:
        raise DataError(f"not a readable HDF5 file ({error})", path=path) from error


def _attrs(attrs: Any) -> dict[str, Any]:
    out = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[key] = value.tolist() if isinstance(value, np.ndarray | np.generic) else value
    return out


def _number(value: Any) -> float | None:
    """First element of a scalar or [x, y] attribute as float, or ``None``."""
    if value is None:
        return None
    first = np.atleast_1d(np.asarray(value, dtype=np.float64))
    return float(first[0]) if first.size and np.isfinite(first[0]) and first[0] > 0 else None


def _find_slide(slides: Path | None, slide_id: str) -> Path | None:
    if slides is None:
        return None
    from wsi_engine.slide import find_slides

    return next(
        (p for p in find_slides([slides], recursive=True) if slide_id_from_path(p) == slide_id),
        None,
    )


def store_attrs(
    source: Path,
    slide_id: str,
    coords: np.ndarray,
    attrs: dict[str, Any],
    slide: Path | None,
    mpp: float | None,
    shard_patches: int,
) -> dict[str, Any]:
    """The ``slide``, ``tiling`` and ``tissue`` sections of an imported store (unknowns as ``None``)."""
    reader = None
    if slide is not None:
        from wsi_engine.slide import open_slide

        reader = open_slide(slide, mpp=mpp, require_mpp=False)
    patch_size = _number(attrs.get("patch_size"))
    if patch_size is None:
        raise DataError("no 'patch_size' attribute (patch side in px)", path=source)
    level = int(_number(attrs.get("patch_level")) or 0)
    downsample = _number(attrs.get("downsample"))
    if downsample is None and reader is not None and level < reader.level_count:
        downsample = reader.level_downsamples[level]
    size0 = _number(attrs.get("patch_size_level0")) or patch_size * (downsample or 1.0)
    mpp0 = (
        mpp
        or (reader.mpp.x if reader is not None and reader.mpp else None)
        or _number(attrs.get("mpp"))
    )
    magnification = _number(attrs.get("level0_magnification"))
    if mpp0 is None and magnification:
        mpp0 = 10.0 / magnification  # the usual 10x ≈ 1 µm/px convention
    if mpp0 is None:
        raise DataError(
            "the level-0 µm/px is unknown",
            path=source,
            hint="pass --mpp, or --slides with the slide files",
        )
    if reader is not None:
        from wsi_engine.tiling import slide_attrs

        slide_section = slide_attrs(reader, slide_id)
        reader.close()
    else:
        level_dim = attrs.get("level_dim")
        if attrs.get("level0_width") and attrs.get("level0_height"):
            dims = [int(attrs["level0_width"]), int(attrs["level0_height"])]
        elif level_dim is not None and downsample:
            dims = [
                int(round(float(d) * downsample)) for d in np.asarray(level_dim).reshape(-1)[:2]
            ]
        else:  # a lower bound: the extent of the patches
            extent = coords.max(axis=0) + size0 if len(coords) else np.zeros(2)
            dims = [int(np.ceil(v)) for v in extent]
        slide_section = {
            "id": slide_id,
            "path": None,
            "size_bytes": None,
            "fingerprint": None,
            "vendor": "unknown",
            "format": "unknown",
            "backend": None,
            "dimensions": dims,
            "level_count": None,
            "mpp": [mpp0, mpp0],
            "mpp_source": "imported",
            "objective_power": magnification,
        }
    read_downsample = downsample or 1.0
    tiling = {
        "patch_size": int(patch_size),
        "target_mpp": mpp0 * size0 / patch_size,
        "patch_size_level0": size0,
        "overlap": int(_number(attrs.get("overlap")) or 0),
        "min_tissue_fraction": None,
        "read_level": level,
        "read_downsample": read_downsample,
        "read_window": int(round(size0 / read_downsample)),
        "pixel_mode": "none",
        "jpeg_quality": None,
        "shard_patches": shard_patches,
        "imported_from": str(source),
    }
    tissue = {
        "source": "imported",
        "file": str(source),
        "tissue_fraction": "unknown (recorded as 1)",
    }
    return {"slide": slide_section, "tiling": tiling, "tissue": tissue}


def import_features(
    paths: list[str | Path],
    out_dir: str | Path,
    encoder_id: str,
    *,
    slides: str | Path | None = None,
    mpp: float | None = None,
    output_kind: str = "pre_projection",
    dtype: str = "float16",
    shard_patches: int = 128,
    overwrite: bool = False,
) -> list[ImportResult]:
    """Import every feature file of ``paths`` into ``out_dir`` as stores with ``features/<encoder_id>``.

    An existing store with the same coordinates receives the features (kept
    if complete, unless ``overwrite``); one with other coordinates is an error
    for that file. Per-file failures are returned, not raised.
    """
    if output_kind not in OUTPUT_KINDS:
        raise DataError(
            f"unknown output kind {output_kind!r}", hint=f"use one of {', '.join(OUTPUT_KINDS)}"
        )
    encoder_id = sanitize_name(encoder_id)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = find_feature_files(list(paths))
    if not files:
        raise DataError(f"no .h5 or .pt feature files in {', '.join(map(str, paths))}")
    results = []
    for file in files:
        result = ImportResult(str(file), slide_id_from_path(file))
        try:
            _import_one(
                file,
                out_dir,
                encoder_id,
                Path(slides) if slides else None,
                mpp,
                output_kind,
                dtype,
                shard_patches,
                overwrite,
                result,
            )
        except Exception as error:
            from wsi_engine.tiling.tasks import describe

            result.status, result.reason = "failed", describe(error)
        results.append(result)
    return results


def _import_one(
    file: Path,
    out_dir: Path,
    encoder_id: str,
    slides: Path | None,
    mpp: float | None,
    output_kind: str,
    dtype: str,
    shard_patches: int,
    overwrite: bool,
    result: ImportResult,
) -> None:
    features, coords, attrs = read_feature_file(file)
    target = store_path(out_dir, result.slide_id)
    if target.exists():
        store = PatchStore.open(target, mode="r+")
        if not np.array_equal(store.coords(), coords):
            raise DataError(
                f"store {target.name} exists with other patch coordinates",
                path=file,
                hint="import into another --out folder",
            )
        if store.has_features(encoder_id) and not overwrite:
            result.store, result.n_patches, result.status = str(target), store.n_patches, "skipped"
            return
    else:
        sections = store_attrs(
            file,
            result.slide_id,
            coords,
            attrs,
            _find_slide(slides, result.slide_id),
            mpp,
            shard_patches,
        )
        writer = StoreWriter.open_or_create(
            out_dir, result.slide_id, sections, coords, np.ones(len(coords))
        )
        store = PatchStore.open(writer.finalize(), mode="r+")
    meta = {
        "encoder": {"imported_from": str(file), "source_attributes": _jsonable(attrs)},
        "checkpoint_sha256": None,
        "preprocessing": None,
        "output_kind": output_kind,
        "text_aligned": output_kind == "joint",
        "embed_dim": int(features.shape[1]),
        "dtype": dtype,
        "created": utc_now(),
        "engine_version": __version__,
    }
    store.delete_features(encoder_id)
    array, progress = store.create_features(
        encoder_id, features.shape[1], meta, block_rows=max(1, len(features)), dtype=dtype
    )
    if len(features):
        array[...] = features.astype(dtype)
    store.complete_features(encoder_id, progress)
    result.store, result.n_patches = str(store.path), store.n_patches


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(attrs, default=str))


def export_features(
    store_paths: list[str | Path], encoder_id: str, out_dir: str | Path
) -> list[Path]:
    """Write ``<out_dir>/<slide_id>.h5`` (``features``, ``coords`` + attributes) for every store; returns the files."""
    import h5py

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in find_stores(list(store_paths)):
        store = PatchStore.open(path)
        features = store.read_features(encoder_id)
        meta = store.feature_attrs(encoder_id)
        tiling, slide = store.attrs["tiling"], store.attrs["slide"]
        downsample = float(tiling.get("read_downsample") or 1.0)
        mpp = (slide.get("mpp") or [None])[0]
        target = out_dir / f"{store.slide_id}.h5"
        tmp = target.with_suffix(".h5.tmp")
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset("features", data=features.astype(np.float32))
            coords = handle.create_dataset("coords", data=store.coords())
            coords.attrs.update(
                {
                    "patch_size": int(tiling["patch_size"]),
                    "patch_level": int(tiling.get("read_level") or 0),
                    "downsample": np.array([downsample, downsample]),
                    "patch_size_level0": float(tiling["patch_size_level0"]),
                    "level0_width": int(slide["dimensions"][0]),
                    "level0_height": int(slide["dimensions"][1]),
                    "overlap": int(tiling.get("overlap") or 0),
                    "target_mpp": float(tiling["target_mpp"]),
                    "name": store.slide_id,
                }
            )
            if mpp:
                coords.attrs["mpp"] = float(mpp)
            handle.attrs.update(
                {
                    "encoder": encoder_id,
                    "output_kind": str(meta.get("output_kind")),
                    "text_aligned": bool(meta.get("text_aligned")),
                    "checkpoint_sha256": str(meta.get("checkpoint_sha256")),
                    "engine_version": __version__,
                }
            )
        tmp.replace(target)
        written.append(target)
    return written
