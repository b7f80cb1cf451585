"""Features made by other tools: CLAM / TRIDENT files in, coordinate-only stores out, and back.

Import (:func:`import_features`) finds the files of every slide as the tools
lay them out (:mod:`wsi_engine.encoders.foreign`), chooses the requested
encoder's by the files' own ``encoder`` attribute, and writes
``<out>/<slide_id>.zarr`` (``pixel_mode: none``) holding
``features/<encoder_id>``. The patch geometry comes from the files'
attributes (CLAM ``patch_level``/``patch_size``/``downsample``, TRIDENT
``patch_size``/``level0_magnification``/``target_magnification``), from the
options ``patch_size``/``patch_level``, or, with the slide, from the
coordinate grid step. The slide, when found in ``slides`` (same stem),
supplies geometry and µm/px and is recorded so heatmaps can read it;
otherwise ``mpp`` (level-0 µm/px) must be given or recorded. Features are
``pre_projection`` (not text-aligned) unless the caller says otherwise or the
file was exported by wsi-engine (its recorded output kind and dtype are kept).

Export lives in :mod:`wsi_engine.encoders.feature_export`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine import __version__
from wsi_engine.encoders import foreign
from wsi_engine.encoders.feature_export import ENGINE_META_ATTR, export_features
from wsi_engine.errors import DataError
from wsi_engine.store import PatchStore, sanitize_name, store_path, utc_now
from wsi_engine.store.writer import StoreWriter

__all__ = ["ImportResult", "export_features", "import_features"]

OUTPUT_KINDS = ("joint", "pre_projection", "image_only")
DTYPES = ("float16", "float32")
GEOMETRY_HINT = (
    "pass --patch-size (px at --patch-level, default 0), the patching run's patches/ folder with "
    "--coords, or the slides with --slides to derive it from the coordinate grid"
)


@dataclass
class ImportResult:
    """One imported slide: the store written, or ``status`` failed with a reason."""

    source: str
    slide_id: str
    store: str = ""
    n_patches: int = 0
    status: str = "done"
    reason: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PatchGeometry:
    """Patch side ``patch_size`` px read at ``level`` (``downsample`` level-0 px per px); ``size0`` level-0 px."""

    patch_size: int
    level: int
    downsample: float
    size0: float
    note: str = ""


def _number(value: Any) -> float | None:
    """First element of a scalar or [x, y] attribute as float, or ``None``."""
    if value is None:
        return None
    first = np.atleast_1d(np.asarray(value, dtype=np.float64))
    return float(first[0]) if first.size and np.isfinite(first[0]) and first[0] > 0 else None


def _find_slide(slides: Path | None, slide_id: str) -> Path | None:
    from wsi_engine.slide import find_slide_by_id

    return find_slide_by_id(slides, slide_id) if slides is not None else None


def patch_geometry(
    attrs: dict[str, Any],
    coords: np.ndarray,
    reader: Any,
    patch_size: int | None,
    patch_level: int | None,
    source: Path,
) -> PatchGeometry:
    """The patch geometry from options first, then the file's attributes, then the slide's grid step."""
    level = patch_level if patch_level is not None else int(_number(attrs.get("patch_level")) or 0)
    downsample = _number(attrs.get("downsample")) if patch_level is None else None
    if downsample is None and reader is not None:
        if level >= reader.level_count:
            raise DataError(
                f"patch level {level} but the slide has {reader.level_count} level(s)", path=source
            )
        downsample = float(reader.level_downsamples[level])
    if downsample is None and level == 0:
        downsample = 1.0
    if downsample is None:
        raise DataError(
            f"the downsample of patch level {level} is unknown", path=source, hint="pass --slides"
        )
    size = patch_size or _number(attrs.get("patch_size"))
    note = ""
    if size is None and reader is not None:
        step0 = _grid_step(coords)
        if step0 is None:
            raise DataError("no patch size recorded and too few patches to derive it", path=source,
                            hint=GEOMETRY_HINT)  # fmt: skip
        size = max(1, round(step0 / downsample))
        note = f"patch size {size} px at level {level} derived from the coordinate grid step (no overlap assumed)"
    if size is None:
        raise DataError(
            "no patch size recorded (CLAM's h5_files carry no attributes)",
            path=source,
            hint=GEOMETRY_HINT,
        )
    magnifications = (
        _number(attrs.get("level0_magnification")),
        _number(attrs.get("target_magnification")),
    )
    if patch_size is None and patch_level is None and all(magnifications):
        size0 = size * magnifications[0] / magnifications[1]  # TRIDENT: exact, unlike its int attr
    elif patch_size is None and patch_level is None and _number(attrs.get("patch_size_level0")):
        size0 = float(_number(attrs.get("patch_size_level0")))
    else:
        size0 = size * downsample
    return PatchGeometry(int(size), level, float(downsample), float(size0), note)


def _recorded_geometry(tiling: dict[str, Any]) -> PatchGeometry:
    """The geometry a wsi-engine export recorded of its store."""
    return PatchGeometry(
        int(tiling["patch_size"]),
        int(tiling.get("read_level") or 0),
        float(tiling.get("read_downsample") or 1.0),
        float(tiling["patch_size_level0"]),
    )


def _grid_step(coords: np.ndarray) -> float | None:
    """Smallest positive gap between distinct x (or y) coordinates, level-0 px."""
    gaps = [np.diff(np.unique(coords[:, axis])) for axis in (0, 1)]
    gaps = np.concatenate([g[g > 0] for g in gaps])
    return float(gaps.min()) if gaps.size else None


def store_attrs(
    source: Path,
    slide_id: str,
    coords: np.ndarray,
    attrs: dict[str, Any],
    slide: Path | None,
    mpp: float | None,
    shard_patches: int,
    patch_size: int | None = None,
    patch_level: int | None = None,
    engine: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """(the ``slide``, ``tiling`` and ``tissue`` sections of an imported store, a note on the geometry)."""
    reader = None
    if slide is not None:
        from wsi_engine.slide import open_slide

        reader = open_slide(slide, mpp=mpp, require_mpp=False)
    engine = engine or {}
    try:
        if engine.get("tiling") and patch_size is None and patch_level is None:
            geometry = _recorded_geometry(engine["tiling"])
        else:
            geometry = patch_geometry(attrs, coords, reader, patch_size, patch_level, source)
        if reader is None and engine.get("slide") and mpp is None:
            slide_section = {**engine["slide"], "id": slide_id}
        else:
            slide_section = _slide_section(source, slide_id, coords, attrs, reader, mpp, geometry)
    finally:
        if reader is not None:
            reader.close()
    mpp0 = slide_section["mpp"][0]
    tiling = {
        "patch_size": geometry.patch_size,
        "target_mpp": mpp0 * geometry.size0 / geometry.patch_size,
        "patch_size_level0": geometry.size0,
        "overlap": int(_number(attrs.get("overlap")) or 0),
        "min_tissue_fraction": None,
        "read_level": geometry.level,
        "read_downsample": geometry.downsample,
        "read_window": int(round(geometry.size0 / geometry.downsample)),
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
    return {"slide": slide_section, "tiling": tiling, "tissue": tissue}, geometry.note


def _slide_section(
    source: Path,
    slide_id: str,
    coords: np.ndarray,
    attrs: dict[str, Any],
    reader: Any,
    mpp: float | None,
    geometry: PatchGeometry,
) -> dict[str, Any]:
    magnification = _number(attrs.get("level0_magnification"))
    mpp0 = (
        mpp
        or (reader.mpp.x if reader is not None and reader.mpp else None)
        or _number(attrs.get("mpp"))
    )
    if mpp0 is None and magnification:
        mpp0 = 10.0 / magnification  # the usual 10x ≈ 1 µm/px convention (TRIDENT's too)
    if mpp0 is None:
        raise DataError(
            "the level-0 µm/px is unknown",
            path=source,
            hint="pass --mpp, or --slides with the slide files",
        )
    if reader is not None:
        from wsi_engine.tiling import slide_attrs

        section = slide_attrs(reader, slide_id)
        if not section["mpp"]:
            section["mpp"], section["mpp_source"] = [mpp0, mpp0], "imported"
        return section
    level_dim = attrs.get("level_dim")
    if attrs.get("level0_width") and attrs.get("level0_height"):
        dims = [int(attrs["level0_width"]), int(attrs["level0_height"])]
    elif level_dim is not None and geometry.level == 0:
        dims = [int(d) for d in np.asarray(level_dim).reshape(-1)[:2]]
    elif level_dim is not None:
        dims = [
            int(round(float(d) * geometry.downsample))
            for d in np.asarray(level_dim).reshape(-1)[:2]
        ]
    else:  # a lower bound: the extent of the patches
        extent = coords.max(axis=0) + geometry.size0 if len(coords) else np.zeros(2)
        dims = [int(np.ceil(v)) for v in extent]
    return {
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


def import_features(
    paths: list[str | Path],
    out_dir: str | Path,
    encoder_id: str,
    *,
    slides: str | Path | None = None,
    mpp: float | None = None,
    output_kind: str | None = None,
    dtype: str = "auto",
    shard_patches: int = 128,
    overwrite: bool = False,
    coords: list[str | Path] | None = None,
    patch_size: int | None = None,
    patch_level: int | None = None,
    source_encoder: str | None = None,
) -> list[ImportResult]:
    """Import every slide's features under ``paths`` into ``out_dir`` as stores with ``features/<encoder_id>``.

    ``source_encoder``: the encoder to take from files of several encoders
    (default ``encoder_id``); ``coords``: folders of coordinate files;
    ``output_kind``/``dtype`` ``None``/``auto``: what a wsi-engine export
    recorded, else ``pre_projection``/``float16``. An existing store with the
    same coordinates receives the features (kept if complete, unless
    ``overwrite``); one with other coordinates is an error for that slide.
    Per-slide failures are returned, not raised.
    """
    if output_kind is not None and output_kind not in OUTPUT_KINDS:
        raise DataError(
            f"unknown output kind {output_kind!r}", hint=f"use one of {', '.join(OUTPUT_KINDS)}"
        )
    if dtype != "auto" and dtype not in DTYPES:
        raise DataError(f"unknown dtype {dtype!r}", hint="use auto, float16 or float32")
    encoder_id = sanitize_name(encoder_id)
    wanted = sanitize_name(source_encoder) if source_encoder else encoder_id
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found = foreign.discover(list(paths))
    if not found:
        raise DataError(f"no .h5 or .pt feature files in {', '.join(map(str, paths))}")
    options = _ImportOptions(
        out_dir, encoder_id, Path(slides) if slides else None, mpp, output_kind, dtype,
        shard_patches, overwrite, [Path(c) for c in coords or []], patch_size, patch_level,
    )  # fmt: skip
    results = []
    for slide_id, candidates in found.items():
        result = ImportResult(str(candidates[0].path), slide_id)
        try:
            chosen = foreign.choose(slide_id, candidates, wanted, strict=source_encoder is not None)
            result.source = str(chosen.path)
            if chosen.encoder and sanitize_name(chosen.encoder) != encoder_id:
                result.notes.append(f"source encoder '{chosen.encoder}' stored as '{encoder_id}'")
            _import_one(chosen, options, result)
        except Exception as error:
            from wsi_engine.errors import describe

            result.status, result.reason = "failed", describe(error)
        results.append(result)
    return results


@dataclass(frozen=True)
class _ImportOptions:
    out_dir: Path
    encoder_id: str
    slides: Path | None
    mpp: float | None
    output_kind: str | None
    dtype: str
    shard_patches: int
    overwrite: bool
    coord_dirs: list[Path]
    patch_size: int | None
    patch_level: int | None


def _import_one(file: foreign.FeatureFile, options: _ImportOptions, result: ImportResult) -> None:
    found = foreign.read(file, options.coord_dirs)
    result.notes += [f"not used (other coordinates): {p}" for p in found.ignored_files]
    features, coords, attrs = found.features, found.coords, found.attrs
    engine = _engine_meta(attrs)
    engine_meta = engine.get("features") or {}
    target = store_path(options.out_dir, result.slide_id)
    if target.exists():
        store = PatchStore.open(target, mode="r+")
        if not np.array_equal(store.coords(), coords):
            raise DataError(
                f"store {target.name} exists with other patch coordinates",
                path=file.path,
                hint="import into another --out folder",
            )
        if store.has_features(options.encoder_id) and not options.overwrite:
            result.store, result.n_patches, result.status = str(target), store.n_patches, "skipped"
            return
    else:
        sections, note = store_attrs(
            file.path,
            result.slide_id,
            coords,
            attrs,
            _find_slide(options.slides, result.slide_id),
            options.mpp,
            options.shard_patches,
            options.patch_size,
            options.patch_level,
            engine,
        )
        if note:
            result.notes.append(note)
        sections["tiling"]["coordinate_files"] = [str(p) for p in found.coordinate_files]
        writer = StoreWriter.open_or_create(
            options.out_dir, result.slide_id, sections, coords, np.ones(len(coords))
        )
        store = PatchStore.open(writer.finalize(), mode="r+")
    output_kind = options.output_kind or engine_meta.get("output_kind") or "pre_projection"
    dtype = options.dtype if options.dtype != "auto" else engine_meta.get("dtype", "float16")
    dtype = dtype if dtype in DTYPES else "float16"
    meta = {
        "checkpoint_sha256": None,
        "preprocessing": None,
        **{k: v for k, v in engine_meta.items() if k not in ("complete", "encoder_id")},
        "encoder": {
            **(engine_meta.get("encoder") or {}),
            "imported_from": str(file.path),
            "source_encoder": file.encoder,
            "source_attributes": _jsonable(attrs),
        },
        "output_kind": output_kind,
        "text_aligned": output_kind == "joint",
        "embed_dim": int(features.shape[1]),
        "dtype": dtype,
        "created": utc_now(),
        "engine_version": __version__,
    }
    store.delete_features(options.encoder_id)
    array, progress = store.create_features(
        options.encoder_id, features.shape[1], meta, block_rows=max(1, len(features)), dtype=dtype
    )
    if len(features):
        array[...] = features.astype(dtype)
    store.complete_features(options.encoder_id, progress)
    result.store, result.n_patches = str(store.path), store.n_patches


def _engine_meta(attrs: dict[str, Any]) -> dict[str, Any]:
    """What a wsi-engine export recorded: ``features``, ``tiling`` and ``slide`` sections (``{}`` otherwise)."""
    raw = attrs.pop(ENGINE_META_ATTR, None)
    try:
        meta = json.loads(raw) if isinstance(raw, str) else {}
    except json.JSONDecodeError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(attrs, default=str))
