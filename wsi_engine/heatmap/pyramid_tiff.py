"""The score map as a tiled, multi-resolution TIFF that OpenSlide and tiffslide open.

Level 0 of the TIFF is the score canvas at ``downsample`` level-0 slide px per
TIFF px (a power of two, so it lines up with the usual slide pyramid levels),
with resolution tags in pixels per centimetre (µm/px = slide mpp × downsample)
so viewers scale it onto the slide. Layout (what OpenSlide's generic-tiff
driver and tiffslide both read): one tiled page per level in the main IFD
chain, each half the size of the one before, 256-px tiles, deflate
compression, RGBA with unassociated alpha (transparent where there is no
score; colour channels zeroed there so every reader returns the same pixels).
The ImageDescription of level 0 holds a JSON record (slide id, class,
downsample, µm/px, colour scale) that is also written to a sidecar ``.json``.

A second file holds the displayed values themselves: one float32 tiled page
(NaN where there is no score) with the same geometry, for quantitative use.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from wsi_engine.heatmap.files import atomic_output

TILE = 256
MIN_LEVELS = 3
_TIFF_OPTIONS = {"tile": (TILE, TILE), "compression": "adobe_deflate", "metadata": None}


def tiff_downsample(patch_size_level0: float, pixels_per_patch: int = 8) -> int:
    """Level-0 slide px per TIFF px: the largest power of two giving >= ``pixels_per_patch`` px per patch side."""
    return 2 ** max(0, math.floor(math.log2(max(patch_size_level0 / pixels_per_patch, 1.0))))


def write_pyramid_tiff(
    out_path: Path,
    rgba: np.ndarray,
    *,
    downsample: float,
    mpp: float | None,
    record: dict[str, Any],
) -> list[tuple[int, int]]:
    """Write the (H, W, 4) uint8 ``rgba`` map as a pyramidal TIFF; returns the (w, h) of each level.

    ``mpp`` is µm per level-0 slide px (resolution tags are omitted when ``None``);
    ``record`` is stored as JSON in the ImageDescription and in ``<out_path>.json``.
    """
    levels = pyramid_levels(rgba)
    rgba = levels[0]
    description = json.dumps(record, sort_keys=True)
    with (
        atomic_output(out_path) as tmp,
        tifffile.TiffWriter(tmp, bigtiff=rgba.nbytes > 2**31) as tiff,
    ):
        for index, level in enumerate(levels):
            tiff.write(
                level,
                photometric="rgb",
                extrasamples=["unassalpha"],
                subfiletype=1 if index else 0,
                description=description if index == 0 else None,
                **_resolution(mpp, downsample * 2**index),
                **_TIFF_OPTIONS,
            )
    with atomic_output(Path(f"{out_path}.json")) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [(level.shape[1], level.shape[0]) for level in levels]


def write_values_tiff(
    out_path: Path,
    values: np.ndarray,
    *,
    downsample: float,
    mpp: float | None,
    record: dict[str, Any],
) -> None:
    """Write the (H, W) displayed values as one float32 tiled page (NaN = no score)."""
    with atomic_output(out_path) as tmp:
        tifffile.imwrite(
            tmp,
            np.asarray(values, dtype=np.float32),
            photometric="minisblack",
            description=json.dumps(record, sort_keys=True),
            **_resolution(mpp, downsample),
            **_TIFF_OPTIONS,
        )


def _resolution(mpp: float | None, downsample: float) -> dict[str, Any]:
    """tifffile resolution arguments: pixels per centimetre of a px covering ``downsample`` slide px."""
    if not mpp:
        return {}
    per_cm = 1e4 / (mpp * downsample)
    return {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}


def pyramid_levels(rgba: np.ndarray) -> list[np.ndarray]:
    """(H, W, 4) uint8 ``rgba`` (transparent px zeroed) and its halvings: at least
    :data:`MIN_LEVELS` levels, until the smallest fits one :data:`TILE` (or is 1 px)."""
    rgba = np.array(rgba, dtype=np.uint8, copy=True)
    rgba[rgba[..., 3] == 0] = 0
    levels = [rgba]
    while len(levels) < MIN_LEVELS or max(levels[-1].shape[:2]) > TILE:
        if max(levels[-1].shape[:2]) == 1:
            break
        levels.append(_halve(levels[-1]))
    return levels


def _halve(rgba: np.ndarray) -> np.ndarray:
    """Half-size RGBA by averaging 2×2 blocks with alpha weighting (odd edges padded transparent)."""
    height, width = rgba.shape[:2]
    padded = np.zeros((height + height % 2, width + width % 2, 4), dtype=np.float64)
    padded[:height, :width] = rgba
    blocks = padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2, 4)
    alpha = blocks[..., 3:4]
    alpha_sum = alpha.sum(axis=(1, 3))
    colour = (blocks[..., :3] * alpha).sum(axis=(1, 3)) / np.maximum(alpha_sum, 1e-9)
    out = np.concatenate([colour, alpha_sum / 4], axis=-1)
    return np.rint(out).astype(np.uint8)
