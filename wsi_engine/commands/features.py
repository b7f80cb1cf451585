"""``wsi-engine import-features`` / ``export-features``: CLAM / TRIDENT feature files ↔ patch stores."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wsi_engine.errors import BatchFailures


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
    output_kind: str = typer.Option(
        "pre_projection",
        "--output-kind",
        help="joint (L2-normalised, text-aligned), pre_projection or image_only. TRIDENT's CONCH features "
        "are pre_projection.",
    ),
    dtype: str = typer.Option(
        "float16", "--dtype", help="Stored feature dtype: float16 or float32."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace features already in an existing store."
    ),
) -> None:
    """Turn features computed by other tools into coordinate-only stores that `fit` can use."""
    from wsi_engine.encoders.interop import import_features

    results = import_features(
        sources,
        out,
        encoder_id,
        slides=slides,
        mpp=mpp,
        output_kind=output_kind,
        dtype=dtype,
        overwrite=overwrite,
    )
    table = Table(title=f"Imported features {encoder_id}")
    for name in ("source", "store", "patches", "status"):
        table.add_column(name, overflow="fold")
    for r in results:
        status = r.status + (f": {escape(r.reason)}" if r.reason else "")
        table.add_row(
            escape(Path(r.source).name), escape(Path(r.store).name), f"{r.n_patches:,}", status
        )
    Console().print(table)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise BatchFailures(
            f"{len(failed)} of {len(results)} files failed", hint=f"the first: {failed[0].reason}"
        )


def export_features_command(
    stores: list[Path] = typer.Argument(
        ..., help="Patch stores (<slide_id>.zarr) or folders of stores."
    ),
    encoder: str = typer.Option(..., "--encoder", help="Encoder id of the features to export."),
    out: Path = typer.Option(
        ..., "--out", help="Folder for <slide_id>.h5 files (CLAM / TRIDENT layout)."
    ),
) -> None:
    """Write features and coordinates as CLAM / TRIDENT-style HDF5 files."""
    from wsi_engine.encoders.interop import export_features

    written = export_features(stores, encoder, out)
    Console().print(f"wrote {len(written)} file(s) to {out}", highlight=False)
