"""QuPath tile objects: one GeoJSON Feature per patch with its scores as measurements.

QuPath (0.4+) imports the file with *File › Import objects* (or drag and
drop) and colours the tiles with *Measure › Show measurement maps*. Each patch
becomes a square Polygon in level-0 pixel coordinates, clipped to the slide,
with ``properties = {"objectType": "tile", "measurements": {name: value}}``.
The FeatureCollection is streamed to disk one feature per line, so memory does
not grow with the number of patches.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wsi_engine.heatmap.files import atomic_output


def patch_measurements(
    arrays: dict[str, np.ndarray], class_names: list[str]
) -> dict[str, np.ndarray]:
    """Measurement name → (N,) values, from a ``scores/<run_id>`` group's arrays.

    Per class: ``<class> attention`` (raw, sums to 1 over the slide),
    ``<class> attention x uniform`` (attention × N: 1 = an average patch, comparable
    between slides) and ``<class> probability``; plus ``instance score`` when present.
    """
    out: dict[str, np.ndarray] = {}
    for index, name in enumerate(class_names):
        if "attention" in arrays:
            attention = arrays["attention"][:, index].astype(np.float64)
            out[f"{name} attention"] = attention
            out[f"{name} attention x uniform"] = attention * len(attention)
        if "probs" in arrays:
            out[f"{name} probability"] = arrays["probs"][:, index].astype(np.float64)
    if "instance_score" in arrays:
        out["instance score"] = arrays["instance_score"].reshape(-1).astype(np.float64)
    return out


def write_tiles_geojson(
    out_path: Path,
    coords: np.ndarray,
    patch_size_level0: float,
    dimensions: tuple[int, int],
    measurements: dict[str, np.ndarray],
) -> int:
    """Write the FeatureCollection of patch squares; returns the number of features written.

    ``coords`` (N, 2) level-0 top-left x, y; ``dimensions`` (w, h) of level 0.
    Squares are clipped to the slide; a patch entirely outside it is skipped.
    Non-finite measurement values are left out (JSON has no NaN).
    """
    width, height = dimensions
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    x0 = np.clip(coords[:, 0], 0, width)
    y0 = np.clip(coords[:, 1], 0, height)
    x1 = np.clip(coords[:, 0] + patch_size_level0, 0, width)
    y1 = np.clip(coords[:, 1] + patch_size_level0, 0, height)
    names = list(measurements)
    table = (
        np.stack([measurements[n] for n in names], axis=1) if names else np.zeros((len(coords), 0))
    )
    written = 0
    with atomic_output(out_path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write('{"type": "FeatureCollection", "features": [')
        for i in range(len(coords)):
            if x1[i] <= x0[i] or y1[i] <= y0[i]:
                continue
            a, b, c, d = (_number(v) for v in (x0[i], y0[i], x1[i], y1[i]))
            ring = f"[[{a}, {b}], [{c}, {b}], [{c}, {d}], [{a}, {d}], [{a}, {b}]]"
            values = {
                n: float(f"{v:.6g}") for n, v in zip(names, table[i], strict=True) if np.isfinite(v)
            }
            handle.write(",\n" if written else "\n")
            handle.write(
                f'{{"type": "Feature", "geometry": {{"type": "Polygon", "coordinates": [{ring}]}}, '
                f'"properties": {{"objectType": "tile", "name": "patch {i}", '
                f'"measurements": {json.dumps(values)}}}}}'
            )
            written += 1
        handle.write("\n]}\n")
    return written


def _number(value: float) -> str:
    """Level-0 coordinate as JSON: an integer when whole, else two decimals."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
