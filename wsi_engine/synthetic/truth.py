"""Ground truth of a synthetic slide: tissue and lesion masks, lesion polygons, a summary.

Masks are evaluated from the same functions that render the pixels, at the
centres of mask pixels (each covering ``mask_downsample`` level-0 pixels per
side), strip by strip. A mask pixel is lesion where the lesion's analytic
outline contains its centre; lesion pixels always count as tissue.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from wsi_engine.synthetic.artefacts import Artefacts
from wsi_engine.synthetic.lesions import LesionShape, lesions_geojson
from wsi_engine.synthetic.noise import pixel_centres
from wsi_engine.synthetic.render import SlideModel
from wsi_engine.synthetic.styles import LesionPattern

MASK_MAX_SIDE = 4096
"""Automatic mask downsamples keep the masks' longest side at most this many pixels."""

_STRIP_ROWS = 256


def default_mask_downsample(width: int, height: int) -> int:
    """Smallest power of two ≥ 16 that keeps the masks within :data:`MASK_MAX_SIDE` pixels."""
    downsample = 16
    while max(width, height) / downsample > MASK_MAX_SIDE:
        downsample *= 2
    return downsample


def compute_masks(model: SlideModel, downsample: int) -> tuple[np.ndarray, np.ndarray]:
    """(tissue, lesion) boolean masks of shape ``(ceil(height / ds), ceil(width / ds))``."""
    cols, rows = math.ceil(model.width / downsample), math.ceil(model.height / downsample)
    xs = pixel_centres(0, cols, downsample)
    tissue = np.zeros((rows, cols), dtype=bool)
    lesion = np.zeros((rows, cols), dtype=bool)
    for top in range(0, rows, _STRIP_ROWS):
        ys = pixel_centres(top, min(_STRIP_ROWS, rows - top), downsample)
        strip = slice(top, top + ys.size)
        tissue[strip] = model.layout.field(xs, ys) > model.layout.threshold
        for shape in model.lesions:
            lesion[strip] |= shape.weight(xs, ys, 1.0) >= 0.5
        tissue[strip] |= lesion[strip]
    return tissue, lesion


def _mask_png(mask: np.ndarray, path: Path, downsample: int, mpp: float) -> None:
    """Save a boolean mask as an 8-bit PNG (255 = inside) with its scale in text chunks."""
    info = PngImagePlugin.PngInfo()
    info.add_text("downsample", str(downsample))
    info.add_text("mpp", f"{mpp * downsample:g}")
    Image.fromarray(mask.astype(np.uint8) * 255).save(path, pnginfo=info)


def _rounded(value: float) -> float:
    return round(float(value), 6)


@dataclass(frozen=True)
class SlideTruth:
    """What was written and where its ground truth lies.

    Sizes and coordinates in level-0 pixels, ``mpp`` in µm per level-0 pixel;
    masks are ``(rows, cols)`` booleans, one pixel per ``mask_downsample``
    level-0 pixels along each axis.
    """

    path: Path
    """The slide file."""
    width: int
    height: int
    mpp: float
    flavor: str
    """``generic`` (OpenSlide vendor ``generic-tiff``) or ``aperio``."""
    tile_size: int
    level_dimensions: tuple[tuple[int, int], ...]
    """``(width, height)`` of every pyramid level."""
    level_downsamples: tuple[float, ...]
    """Level-0 pixels per level pixel: 1, 4, 16, ..."""
    seed: int
    jpeg_quality: int
    pattern: LesionPattern | None = field(repr=False)
    """The planted lesion pattern, None for a normal slide."""
    lesions: tuple[LesionShape, ...]
    artefacts: Artefacts = field(repr=False)
    mask_downsample: int
    tissue_mask: np.ndarray = field(repr=False)
    lesion_mask: np.ndarray = field(repr=False)

    @property
    def lesion_class(self) -> str | None:
        """Class name of the planted lesions, None for a normal slide."""
        return None if self.pattern is None else self.pattern.name

    @property
    def tissue_fraction(self) -> float:
        """Fraction of the slide area covered by tissue."""
        return float(self.tissue_mask.mean())

    @property
    def lesion_fraction(self) -> float:
        """Fraction of the tissue area covered by lesions."""
        return float(self.lesion_mask.sum() / max(int(self.tissue_mask.sum()), 1))

    def geojson(self) -> dict:
        """Lesion polygons as a QuPath-importable GeoJSON FeatureCollection (level-0 px)."""
        if self.pattern is None:
            return {"type": "FeatureCollection", "features": []}
        return lesions_geojson(self.lesions, self.pattern)

    def summary(self) -> dict:
        """JSON-ready description (no masks); paths are file names only, so it is relocatable."""
        return {
            "slide": self.path.name,
            "flavor": self.flavor,
            "width": self.width,
            "height": self.height,
            "mpp": self.mpp,
            "tile_size": self.tile_size,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": list(self.level_downsamples),
            "jpeg_quality": self.jpeg_quality,
            "seed": self.seed,
            "mask_downsample": self.mask_downsample,
            "mask_mpp": _rounded(self.mpp * self.mask_downsample),
            "tissue_fraction": _rounded(self.tissue_fraction),
            "lesion_class": self.lesion_class,
            "lesion_count": len(self.lesions),
            "lesion_fraction_of_tissue": _rounded(self.lesion_fraction),
            "lesions": [
                {
                    "id": f"lesion_{index}",
                    "centre": [_rounded(shape.cx), _rounded(shape.cy)],
                    "mean_radius": _rounded(shape.radius),
                    "bbox": [_rounded(v) for v in shape.bbox],
                }
                for index, shape in enumerate(self.lesions)
            ],
            "artefacts": list(self.artefacts.names),
            "artefact_geometry": self.artefacts.as_dict(),
        }

    def save(self, truth_dir: str | Path, slide_id: str, label: str) -> dict[str, Path]:
        """Write ``<id>.lesions.geojson``, ``<id>.lesions.png``, ``<id>.tissue.png`` and ``<id>.json``."""
        truth_dir = Path(truth_dir)
        truth_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "geojson": truth_dir / f"{slide_id}.lesions.geojson",
            "lesion_mask": truth_dir / f"{slide_id}.lesions.png",
            "tissue_mask": truth_dir / f"{slide_id}.tissue.png",
            "summary": truth_dir / f"{slide_id}.json",
        }
        paths["geojson"].write_text(json.dumps(self.geojson(), indent=1) + "\n")
        _mask_png(self.lesion_mask, paths["lesion_mask"], self.mask_downsample, self.mpp)
        _mask_png(self.tissue_mask, paths["tissue_mask"], self.mask_downsample, self.mpp)
        summary = {"slide_id": slide_id, "label": label, **self.summary()}
        summary["truth_files"] = {key: path.name for key, path in paths.items() if key != "summary"}
        paths["summary"].write_text(json.dumps(summary, indent=2) + "\n")
        return paths
