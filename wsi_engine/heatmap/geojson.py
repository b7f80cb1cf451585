"""QuPath tile objects: one GeoJSON Feature per patch with its scores as measurements.

QuPath (0.4+) imports the file with *File › Import objects* (or drag and
drop) and colours the tiles with *Measure › Show measurement maps*. Each patch
becomes a square Polygon in level-0 pixel coordinates of the viewer frame
(clipped to the slide, OpenSlide bounds origin subtracted:
:mod:`wsi_engine.slide.bounds`), with a stable ``id`` (a UUID derived from
the slide and the patch index, the same in every run) and
``properties = {"objectType": "tile", "classification": {"name", "color"},
"measurements": {name: value}}``; the classification is the patch's argmax
class (of ``probs``, else of ``attention``), so *Classify › Object
classification* tools and class colours work directly.
The FeatureCollection is streamed to disk one feature per line, so memory does
not grow with the number of patches.
"""

from __future__ import annotations

import json
import uuid
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


# QuPath-style class colours (RGB), cycled when a task has more classes
PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # fmt: skip
ID_NAMESPACE = uuid.UUID("5b0e6a52-2f0c-4a53-9c1d-0c3b8f7d2a11")


def tile_classes(arrays: dict[str, np.ndarray], class_names: list[str]) -> list[str] | None:
    """Per-patch class name: argmax of ``probs``, else of ``attention`` columns; ``None`` without either."""
    for name in ("probs", "attention"):
        values = arrays.get(name)
        if values is not None and values.ndim == 2 and values.shape[1] == len(class_names):
            return [class_names[i] for i in np.argmax(np.nan_to_num(values, nan=-np.inf), axis=1)]
    return None


def tile_id(slide_key: str, index: int) -> str:
    """The stable UUID of patch ``index`` of the slide identified by ``slide_key`` (fingerprint or id)."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{slide_key}/patch/{index}"))


def write_tiles_geojson(
    out_path: Path,
    coords: np.ndarray,
    patch_size_level0: float,
    dimensions: tuple[int, int],
    measurements: dict[str, np.ndarray],
    *,
    classes: list[str] | None = None,
    class_names: list[str] | None = None,
    slide_key: str | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
) -> int:
    """Write the FeatureCollection of patch squares; returns the number of features written.

    ``coords`` (N, 2) level-0 top-left x, y; ``dimensions`` (w, h) of level 0.
    Squares are clipped to the slide; a patch entirely outside it is skipped.
    Non-finite measurement values are left out (JSON has no NaN). ``classes``:
    per-patch class name (colours by position in ``class_names``);
    ``slide_key``: gives each tile a stable ``id``; ``offset``: level-0 origin
    of the viewer frame, subtracted from every coordinate.
    """
    width, height = dimensions
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    x0 = np.clip(coords[:, 0], 0, width)
    y0 = np.clip(coords[:, 1], 0, height)
    x1 = np.clip(coords[:, 0] + patch_size_level0, 0, width)
    y1 = np.clip(coords[:, 1] + patch_size_level0, 0, height)
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(class_names or [])}
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
            a, c = (_number(v - offset[0]) for v in (x0[i], x1[i]))
            b, d = (_number(v - offset[1]) for v in (y0[i], y1[i]))
            ring = f"[[{a}, {b}], [{c}, {b}], [{c}, {d}], [{a}, {d}], [{a}, {b}]]"
            values = {
                n: float(f"{v:.6g}") for n, v in zip(names, table[i], strict=True) if np.isfinite(v)
            }
            identity = f'"id": "{tile_id(slide_key, i)}", ' if slide_key else ""
            classification = ""
            if classes is not None:
                colour = list(colours.get(classes[i], PALETTE[-1]))
                label = json.dumps({"name": classes[i], "color": colour})
                classification = f'"classification": {label}, '
            handle.write(",\n" if written else "\n")
            handle.write(
                f'{{"type": "Feature", {identity}"geometry": {{"type": "Polygon", '
                f'"coordinates": [{ring}]}}, "properties": {{"objectType": "tile", '
                f'"name": "patch {i}", {classification}"measurements": {json.dumps(values)}}}}}'
            )
            written += 1
        handle.write("\n]}\n")
    return written


def _number(value: float) -> str:
    """Level-0 coordinate as JSON: an integer when whole, else two decimals."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
