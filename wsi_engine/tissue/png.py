"""Tissue masks as PNG files: 0 = background, 255 = tissue, spanning the whole slide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsi_engine.errors import ConfigError, OutputError
from wsi_engine.tissue.mask import TissueMask

ASPECT_TOLERANCE = 0.02
"""Largest relative difference between the mask's and the slide's aspect ratio (beyond 1 px rounding)."""

NUMERIC_MODES = ("1", "L", "I", "I;16", "F")


def save_mask_png(mask: TissueMask, path: str | Path) -> None:
    """Write the mask as an 8-bit greyscale PNG (0 background, 255 tissue) at its own resolution."""
    try:
        Image.fromarray(mask.mask.astype(np.uint8) * 255).save(path, format="PNG")
    except OSError as error:
        raise OutputError(f"cannot write the tissue mask ({error})", path=path) from None


def load_tissue_mask_png(
    path: str | Path, level0_size: tuple[int, int], mpp_level0: float
) -> TissueMask:
    """Read a binary mask image of any size, assumed to span the slide of ``level0_size`` (w, h) px.

    Pixels above half the image's maximum are tissue (0/1, 0/255 or resampled
    masks all work); colour images are converted to grey first.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("tissue mask file not found", path=path)
    try:
        with Image.open(path) as image:
            image.load()
            values = np.asarray(image if image.mode in NUMERIC_MODES else image.convert("L"))
    except (UnidentifiedImageError, OSError) as error:
        raise ConfigError(f"cannot read the tissue mask as an image ({error})", path=path) from None
    h, w = values.shape
    expected_h = level0_size[1] * w / level0_size[0]
    if abs(h - expected_h) > max(1.0, ASPECT_TOLERANCE * expected_h):
        raise ConfigError(
            f"the mask is {w}×{h} px but the slide is {level0_size[0]}×{level0_size[1]} px (another aspect ratio)",
            path=path,
            hint="the mask must span the whole slide",
        )
    peak = float(values.max())
    tissue = values > (peak / 2 if peak > 1 else 0)
    return TissueMask.spanning(tissue, level0_size, mpp_level0, f"mask:{path.name}")
