"""The score map as a pyramidal OME-TIFF that covers exactly the slide as viewers show it.

For QuPath (Bio-Formats) and other OME readers: one image whose reduced
levels are SubIFDs (the OME-TIFF pyramid layout; tiffslide and tifffile read
them as levels, OpenSlide opens the full-resolution level only), 256-px
tiles, deflate, RGBA with unassociated alpha (transparent where there is no
score). Its largest level is the score canvas, ``downsample`` slide level-0
px per TIFF px, cropped to the viewer frame (OpenSlide bounds,
:mod:`wsi_engine.slide.bounds`). The OME ``PhysicalSizeX/Y`` (µm) are set so
that the image's physical extent equals the frame's exactly (width × size =
frame width × slide µm/px); they differ from ``mpp · downsample`` by less
than one TIFF px over the whole width, because the canvas rounds the slide
size up. The OME ``Description`` states the downsample, the slide's level-0
geometry and the colour scale (JSON record after the first line).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from wsi_engine.heatmap.files import atomic_output
from wsi_engine.heatmap.pyramid_tiff import TILE, pyramid_levels
from wsi_engine.slide.bounds import ViewerFrame

_OPTIONS = {"tile": (TILE, TILE), "compression": "adobe_deflate"}


def crop_to_frame(canvas: np.ndarray, frame: ViewerFrame, downsample: float) -> np.ndarray:
    """The canvas pixels (``downsample`` level-0 px each, origin at level-0 (0, 0)) covering ``frame``."""
    col0, row0 = round(frame.x / downsample), round(frame.y / downsample)
    cols = max(1, math.ceil(frame.width / downsample))
    rows = max(1, math.ceil(frame.height / downsample))
    return canvas[row0 : row0 + rows, col0 : col0 + cols]


def write_ome_tiff(
    out_path: Path,
    rgba: np.ndarray,
    *,
    frame: ViewerFrame,
    mpp: tuple[float, float] | None,
    downsample: float,
    record: dict[str, Any],
) -> tuple[float, float] | None:
    """Write the (H, W, 4) uint8 ``rgba`` (cropped to ``frame``: :func:`crop_to_frame`); returns its µm per px (x, y).

    ``mpp``: µm per slide level-0 px (x, y); without it no physical size is written.
    """
    levels = pyramid_levels(rgba)
    rgba = levels[0]
    height, width = rgba.shape[:2]
    size = (frame.width * mpp[0] / width, frame.height * mpp[1] / height) if mpp else None
    metadata: dict[str, Any] = {
        "axes": "YXS",
        "Name": f"{record.get('slide_id')} score map {record.get('class')}",
        "Description": _description(frame, mpp, downsample, size, record),
    }
    resolution: dict[str, Any] = {}
    if size is not None:
        metadata.update(PhysicalSizeX=size[0], PhysicalSizeXUnit="µm",
                        PhysicalSizeY=size[1], PhysicalSizeYUnit="µm")  # fmt: skip
        resolution = {"resolution": (1e4 / size[0], 1e4 / size[1]), "resolutionunit": "CENTIMETER"}
    with (
        atomic_output(out_path) as tmp,
        tifffile.TiffWriter(tmp, ome=True, bigtiff=rgba.nbytes > 2**31) as tiff,
    ):
        tiff.write(rgba, subifds=len(levels) - 1, photometric="rgb", extrasamples=["unassalpha"],
                   metadata=metadata, **resolution, **_OPTIONS)  # fmt: skip
        for index, level in enumerate(levels[1:], start=1):
            scaled = {}
            if size is not None:
                scaled = {"resolution": (1e4 / (size[0] * 2**index), 1e4 / (size[1] * 2**index)),
                          "resolutionunit": "CENTIMETER"}  # fmt: skip
            tiff.write(level, subfiletype=1, photometric="rgb", extrasamples=["unassalpha"],
                       metadata=None, **scaled, **_OPTIONS)  # fmt: skip
    return size


def _description(
    frame: ViewerFrame,
    mpp: tuple[float, float] | None,
    downsample: float,
    size: tuple[float, float] | None,
    record: dict[str, Any],
) -> str:
    if size is None:
        scale = "no physical pixel size (the slide's µm/px is unknown)"
    else:
        scale = (f"pixel size {size[0]:.6g} x {size[1]:.6g} µm so that its physical extent equals the "
                 f"slide's ({frame.width * mpp[0]:.6g} x {frame.height * mpp[1]:.6g} µm)")  # fmt: skip
    sentence = (
        f"wsi-engine score map. Largest level downsampled {downsample:g}x from the slide's level 0 "
        f"({frame.width} x {frame.height} px from level-0 origin ({frame.x}, {frame.y}), "
        f"{mpp[0] if mpp else 'unknown'} µm/px); {scale}."
    )
    return (
        sentence
        + "\n"
        + json.dumps(
            {**record, "frame": [frame.x, frame.y, frame.width, frame.height]}, sort_keys=True
        )
    )
