"""Per-slide audit for ``wsi-engine info``: what a slide is, its µm/px and its problems.

A row's ``status`` is ``ok``; ``warning`` when it opens with problems a user
should check (µm/px from objective power, no pyramid, implausible metadata
ignored); or ``failed`` when it cannot be opened or has no µm/px (it could not
be tiled either).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from wsi_engine.errors import OutputError, SlideError
from wsi_engine.slide.ids import slide_id_from_path
from wsi_engine.slide.open import open_slide

NO_MPP = "no µm/px: pass --mpp X or --mpp-table CSV"
SINGLE_LEVEL = "single-level image (no pyramid): reading at low magnification is slow"


@dataclass
class SlideInfo:
    """One report row; sizes in level-0 px, ``mpp_x``/``mpp_y`` in µm/px."""

    path: str
    slide_id: str
    status: str
    format: str | None = None
    vendor: str | None = None
    backend: str | None = None
    width: int | None = None
    height: int | None = None
    levels: int | None = None
    downsamples: list[float] = field(default_factory=list)
    mpp_x: float | None = None
    mpp_y: float | None = None
    mpp_source: str | None = None
    objective_power: float | None = None
    associated_images: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def audit_slide(
    path: str | Path,
    backend: str = "auto",
    *,
    mpp: float | tuple[float, float] | None = None,
    mpp_table: Mapping[str, tuple[float, float]] | None = None,
) -> SlideInfo:
    """Open ``path`` like the pipeline would and describe it; a slide that fails is a ``failed`` row."""
    path = Path(path)
    info = SlideInfo(path=os.path.abspath(path), slide_id=_slide_id(path), status="failed")
    try:
        reader = open_slide(path, backend, mpp=mpp, mpp_table=mpp_table, require_mpp=False)
    except SlideError as error:
        hint = f" ({error.hint})" if error.hint else ""
        info.problems.append(f"could not open: {error.message}{hint}")
        return info
    with reader:
        info.format, info.vendor, info.backend = reader.format, reader.vendor, reader.backend
        info.width, info.height = reader.dimensions
        info.levels = reader.level_count
        info.downsamples = [round(d, 4) for d in reader.level_downsamples]
        info.objective_power = reader.objective_power
        info.associated_images = list(reader.associated_image_names)
        if reader.mpp is None:
            info.problems.append(NO_MPP)
        else:
            info.mpp_x, info.mpp_y, info.mpp_source = reader.mpp.x, reader.mpp.y, reader.mpp.source
        info.problems.extend(reader.mpp_notes)
        if reader.level_count == 1:
            info.problems.append(SINGLE_LEVEL)
    info.status = "failed" if reader.mpp is None else "warning" if info.problems else "ok"
    return info


def write_report(rows: list[SlideInfo], stem: Path) -> tuple[Path, Path]:
    """Write ``STEM.csv`` (lists joined by ``;``) and ``STEM.json`` (a list of row objects)."""
    csv_path, json_path = stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".json")
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        with csv_path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(SlideInfo)])
            writer.writeheader()
            writer.writerows(_csv_row(row) for row in rows)
        json_path.write_text(
            json.dumps([asdict(row) for row in rows], indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    except OSError as error:
        raise OutputError(f"cannot write the report: {error}", path=stem.parent) from error
    return csv_path, json_path


def _csv_row(row: SlideInfo) -> dict[str, object]:
    return {
        key: "; ".join(map(str, value))
        if isinstance(value, list)
        else ""
        if value is None
        else value
        for key, value in asdict(row).items()
    }


def _slide_id(path: Path) -> str:
    try:
        return slide_id_from_path(path)
    except ValueError:  # a name with no usable characters: the row still reports the path
        return ""
