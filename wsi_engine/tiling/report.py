"""The outcome of a tiling run: one :class:`SlideResult` per slide, totals, ``tiling_report.csv``.

Statuses:

* ``ok``: a complete store with at least one patch;
* ``empty``: a complete, valid store with no patch (flag ``no-tissue``; e.g. a
  blank slide, or one smaller than a patch);
* ``skipped``: a complete store already existed (rerun with ``overwrite``);
* ``failed``: no complete store; ``reason`` says why (a partial store of a
  slide that failed mid-way is kept, and a rerun resumes it).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from wsi_engine.atomic import atomic_output
from wsi_engine.stage import StageResult, TileRecord, per_second

REPORT_NAME = "tiling_report.csv"

CSV_COLUMNS = (
    "slide_id",
    "path",
    "status",
    "n_patches",
    "new_patches",
    "seconds",
    "patches_per_s",
    "mpp",
    "mpp_source",
    "flags",
    "store",
    "reason",
)


@dataclass
class SlideResult:
    """One slide's row of the report; ``new_patches`` were written by this run (resumed shards excluded)."""

    slide_id: str
    path: Path
    status: str
    n_patches: int = 0
    new_patches: int = 0
    seconds: float = 0.0
    mpp: float | None = None
    mpp_source: str | None = None
    flags: tuple[str, ...] = ()
    store: Path | None = None
    reason: str = ""

    @property
    def patches_per_s(self) -> float:
        """Patches written by this run per second of the slide's wall time."""
        return per_second(self.new_patches, self.seconds)

    def outcome(self) -> StageResult:
        """The slide's result in the shape every stage shares (``ok`` is ``done`` there)."""
        return StageResult(
            "tile",
            self.slide_id,
            "done" if self.status == "ok" else self.status,  # type: ignore[arg-type]
            self.reason,
            seconds=self.seconds,
            counts={"patches": self.n_patches, "processed": self.new_patches},
            record=TileRecord(
                n_patches=self.n_patches,
                new_patches=self.new_patches,
                patches_per_s=round(self.patches_per_s, 2),
            ),
        )

    def row(self) -> dict[str, str]:
        return {
            "slide_id": self.slide_id,
            "path": str(self.path),
            "status": self.status,
            "n_patches": str(self.n_patches),
            "new_patches": str(self.new_patches),
            "seconds": f"{self.seconds:.2f}",
            "patches_per_s": f"{self.patches_per_s:.1f}",
            "mpp": "" if self.mpp is None else f"{self.mpp:g}",
            "mpp_source": self.mpp_source or "",
            "flags": ";".join(self.flags),
            "store": "" if self.store is None else str(self.store),
            "reason": self.reason,
        }


@dataclass
class TilingReport:
    """All slides of a run, in input order, and the run's wall time in seconds."""

    out_dir: Path
    results: list[SlideResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(result.status == status for result in self.results)

    @property
    def failed(self) -> list[SlideResult]:
        return [result for result in self.results if result.status == "failed"]

    @property
    def new_patches(self) -> int:
        return sum(result.new_patches for result in self.results)

    @property
    def patches_per_s(self) -> float:
        """Patches written by the run per second of its wall time (all slides together)."""
        return per_second(self.new_patches, self.seconds)

    def write_csv(self, path: str | Path | None = None) -> Path:
        """Write the report (default ``<out_dir>/tiling_report.csv``) atomically; returns its path."""
        path = Path(path) if path is not None else self.out_dir / REPORT_NAME
        with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(result.row() for result in self.results)
        return path
