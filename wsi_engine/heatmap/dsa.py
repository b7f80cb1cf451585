"""Digital Slide Archive (large_image / HistomicsUI) annotation JSON with one ``griddata`` heatmap per class.

The patch grid becomes a large_image ``griddata`` element (schema vendored in
``schemas/large_image_annotation.schema.json``): grid node (i, j) sits at
``origin + (i·dx, j·dy)`` in level-0 px, ``origin`` is the centre of the
top-left patch of the grid, ``dx = dy`` the patch stride (patch side minus
overlap, in level-0 px), ``gridWidth`` the number of grid columns, and
``values`` row-major, one per node. Every patch is one node and the grid is
the bounding box of the patches, so it covers the patch grid exactly. A
node's value is the class's displayed value mapped onto [0, 1] by the
heatmap's colour scale (the same fraction as the DICOM segmentation); nodes
without a patch hold 0, which the colour range draws transparent.
HistomicsUI draws the element as a heatmap of Gaussian points of
``radius`` = one stride (``scaleWithZoom``: radius in image px).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsi_engine.errors import StoreError
from wsi_engine.heatmap.files import atomic_output
from wsi_engine.heatmap.scales import ColourScale

SCHEMA_PATH = Path(__file__).with_name("schemas") / "large_image_annotation.schema.json"
_STOPS = (0.0, 0.25, 0.5, 0.75, 1.0)
_GRID_TOLERANCE_PX = 1.0  # level-0 px: coords are rounded to whole px by tiling


@dataclass(frozen=True)
class PatchGrid:
    """The regular grid the patches lie on (level-0 px): top-left patch corner, stride, columns, rows."""

    x0: float
    y0: float
    step: float
    columns: int
    rows: int
    cells: np.ndarray  # (N,) row-major node index of each patch

    def node_centres(self, patch_size_level0: float) -> np.ndarray:
        """(rows·columns, 2) level-0 x, y of each node (row-major): centres of grid-aligned patches."""
        j, i = np.divmod(np.arange(self.rows * self.columns), self.columns)
        half = patch_size_level0 / 2
        return np.stack([self.x0 + half + i * self.step, self.y0 + half + j * self.step], axis=1)


def patch_grid(coords: np.ndarray, step: float, *, store_path: Path | None = None) -> PatchGrid:
    """The grid of stride ``step`` through the patches; :class:`StoreError` when they are off-grid."""
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if not len(coords):
        return PatchGrid(0.0, 0.0, float(step), 1, 1, np.zeros(0, dtype=np.int64))
    x0, y0 = coords.min(axis=0)
    offsets = (coords - (x0, y0)) / step
    index = np.rint(offsets).astype(np.int64)
    if np.abs(offsets - index).max() * step > _GRID_TOLERANCE_PX:
        raise StoreError(
            f"the patches are not on a regular grid of stride {step:g} level-0 px",
            path=store_path,
            hint="DSA griddata needs gridded patches: re-tile the slide with `wsi-engine tile`",
        )
    columns, rows = int(index[:, 0].max()) + 1, int(index[:, 1].max()) + 1
    return PatchGrid(
        float(x0), float(y0), float(step), columns, rows, index[:, 1] * columns + index[:, 0]
    )


@dataclass(frozen=True)
class GridLayer:
    """One class's element: its name, per-patch fractions in [0, 1] and the scale they came from."""

    class_name: str
    fractions: np.ndarray
    scale: ColourScale
    description: str


def annotation_document(
    grid: PatchGrid,
    patch_size_level0: float,
    layers: Sequence[GridLayer],
    *,
    name: str,
    description: str,
    attributes: dict,
) -> dict:
    """The annotation as a dict in the large_image annotation schema."""
    elements = []
    for layer in layers:
        values = np.zeros(grid.rows * grid.columns)
        fractions = np.clip(np.nan_to_num(layer.fractions, nan=0.0), 0.0, 1.0)
        values[grid.cells] = fractions
        colours = layer.scale.colormap(np.asarray(_STOPS), bytes=True)
        colour_range = [
            f"rgba({r}, {g}, {b}, {0 if stop == 0 else 1})"
            for stop, (r, g, b, _) in zip(_STOPS, colours.tolist(), strict=True)
        ]
        elements.append(
            {
                "type": "griddata",
                "interpretation": "heatmap",
                "label": {"value": layer.class_name},
                "group": layer.class_name,
                "origin": [grid.x0 + patch_size_level0 / 2, grid.y0 + patch_size_level0 / 2, 0],
                "dx": grid.step,
                "dy": grid.step,
                "gridWidth": grid.columns,
                "values": [round(float(v), 4) for v in values],
                "radius": grid.step,
                "scaleWithZoom": True,
                "colorRange": colour_range,
                "rangeValues": list(_STOPS),
                "normalizeRange": False,
                "user": {"wsi_engine": {"class": layer.class_name, "value": layer.description}},
            }
        )
    return {
        "name": name,
        "description": description,
        "attributes": attributes,
        "elements": elements,
    }


def write_annotation(path: Path, document: dict) -> Path:
    """Write ``document`` as JSON (atomically)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")
    return path
