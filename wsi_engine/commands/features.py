"""``wsi-engine import-features`` / ``export-features``: CLAM / TRIDENT feature files ↔ patch stores."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wsi_engine.commands.options import with_settings
from wsi_engine.errors import BatchFailures


@with_settings
def import_features_command(
    sources: list[Path] = typer.Argument(
        ..., help="Feature files (.h5, .pt) or folders of them (CLAM / TRIDENT)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder of the patch stores to write."),
    encoder_id: str = typer.Option(
        ...,
        "--encoder",
        "--encoder-id",
        help="Name of the features group, e.g. conch_ViT-B-16.",
    ),
    slides: Path | None = typer.Option(
        None, "--slides", help="Folder of the slides (matched by file stem)."
    ),
    mpp: float | None = typer.Option(
        None, "--mpp", help="Level-0 µm/px when neither the file nor a slide gives it."
    ),
    output_kind: str | None = typer.Option(
        None,
        "--output-kind",
        help="joint (L2-normalised, text-aligned), pre_projection or image_only. Default: what a "
        "wsi-engine export recorded, else pre_projection (TRIDENT's CONCH features are pre_projection) \\[recorded, else pre_projection].",
    ),
    dtype: str = typer.Option(
        "auto",
        "--dtype",
        help="Stored feature dtype: float16, float32, or auto (what a wsi-engine export recorded, else float16).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace features already in an existing store."
    ),
    coords: list[Path] = typer.Option(
        [],
        "--coords",
        help="Folder of coordinate files (CLAM patches/<id>.h5, TRIDENT <id>_patches.h5); repeatable.",
    ),
    patch_size: int | None = typer.Option(
        None,
        "--patch-size",
        help="Patch side in px at --patch-level, for files that do not record it \\[recorded in the files].",
    ),
    patch_level: int | None = typer.Option(
        None,
        "--patch-level",
        help="Pyramid level the patches were read at (default: recorded, else 0).",
    ),
    source_encoder: str | None = typer.Option(
        None,
        "--source-encoder",
        help="Encoder to take from folders of several (the files' `encoder` attribute or TRIDENT's "
        "features_<name> folder); \\[--encoder-id].",
    ),
) -> None:
    """Turn features computed by other tools into coordinate-only stores that `fit` can use."""
    from wsi_engine.store.interop import import_features

    results = import_features(
        sources,
        out,
        encoder_id,
        slides=slides,
        mpp=mpp,
        output_kind=output_kind,
        dtype=dtype,
        overwrite=overwrite,
        coords=coords,
        patch_size=patch_size,
        patch_level=patch_level,
        source_encoder=source_encoder,
    )
    table = Table(title=f"Imported features {encoder_id}")
    for name in ("source", "store", "patches", "status"):
        table.add_column(name, overflow="fold")
    for r in results:
        status = r.status + (f": {escape(r.reason)}" if r.reason else "")
        status += "".join(f"\n{escape(note)}" for note in r.notes)
        table.add_row(
            escape(Path(r.source).name), escape(Path(r.store).name), f"{r.n_patches:,}", status
        )
    Console().print(table)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise BatchFailures(
            f"{len(failed)} of {len(results)} files failed", hint=f"the first: {failed[0].reason}"
        )


@with_settings
def export_features_command(
    stores: list[Path] = typer.Argument(
        ..., help="Patch stores (<slide_id>.zarr) or folders of stores."
    ),
    encoder: str = typer.Option(..., "--encoder", help="Encoder id of the features to export."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    layout: str = typer.Option(
        "flat",
        "--layout",
        help="clam (h5_files/, pt_files/, patches/), trident (<mag>x_<ps>px_<ov>px_overlap/"
        "{patches,features_<encoder>}/) or flat (<slide_id>.h5 with both tools' attributes).",
    ),
) -> None:
    """Write features and coordinates as CLAM / TRIDENT read them."""
    from wsi_engine.store.interop import export_features

    written = export_features(stores, encoder, out, layout=layout)
    Console().print(f"wrote {len(written)} file(s) to {out}", highlight=False)
