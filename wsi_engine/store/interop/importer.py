"""CLAM / TRIDENT feature files in: coordinate-only stores with ``features/<encoder_id>``.

:func:`import_features` finds the files of every slide as the tools lay them
out (:mod:`wsi_engine.store.interop.files`), chooses the requested encoder's
by the files' own ``encoder`` attribute, and writes ``<out>/<slide_id>.zarr``
(``pixel_mode: none``) whose sections come from
:mod:`wsi_engine.store.interop.geometry`. The slide, when found in ``slides``
(same stem), supplies geometry and µm/px and is recorded so heatmaps can read
it; otherwise ``mpp`` (level-0 µm/px) must be given or recorded. Features are
``pre_projection`` (not text-aligned) unless the caller says otherwise or the
file was exported by wsi-engine (its recorded output kind and dtype are kept).
They are copied in blocks of :data:`READ_ROWS` rows (HDF5 datasets are read
slice by slice; a ``.pt`` file is loaded whole, the format cannot be sliced).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine import __version__
from wsi_engine.errors import DataError, describe
from wsi_engine.slide.ids import sanitize_name
from wsi_engine.store.interop import files
from wsi_engine.store.interop.export import ENGINE_META_ATTR
from wsi_engine.store.interop.geometry import store_attrs
from wsi_engine.store.layout import store_path
from wsi_engine.store.patch_store import PatchStore, utc_now
from wsi_engine.store.writer import StoreWriter

OUTPUT_KINDS = ("joint", "pre_projection", "image_only")
DTYPES = ("float16", "float32")
READ_ROWS = 8192
"""Feature rows read and written at a time (8192 × 1536 float32 ≈ 48 MiB)."""


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


def _find_slide(slides: Path | None, slide_id: str) -> Path | None:
    from wsi_engine.slide import find_slide_by_id

    return find_slide_by_id(slides, slide_id) if slides is not None else None


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
    found = files.discover(list(paths))
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
            chosen = files.choose(slide_id, candidates, wanted, strict=source_encoder is not None)
            result.source = str(chosen.path)
            if chosen.encoder and sanitize_name(chosen.encoder) != encoder_id:
                result.notes.append(f"source encoder '{chosen.encoder}' stored as '{encoder_id}'")
            _import_one(chosen, options, result)
        except Exception as error:
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


def _import_one(file: files.FeatureFile, options: _ImportOptions, result: ImportResult) -> None:
    found = files.read(file, options.coord_dirs)
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
        "embed_dim": features.dim,
        "dtype": dtype,
        "created": utc_now(),
        "engine_version": __version__,
    }
    store.delete_features(options.encoder_id)
    chunk = store.sections.tiling.shard_patches  # rows per chunk, as embedding writes them
    array, progress = store.create_features(
        options.encoder_id, features.dim, meta, block_rows=chunk, dtype=dtype
    )
    rows = chunk * max(1, READ_ROWS // chunk)  # whole chunks
    for start, block in features.blocks(rows):
        array[start : start + len(block)] = block.astype(dtype)
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
