"""Fixtures of the tiling tests: one synthetic slide, small odd files, a shared 2-process Dask cluster."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

SLIDE_SIZE = (3072, 2048)  # level-0 px; 0.5 µm/px, 256-px JPEG tiles, levels 1, 4, 16


@pytest.fixture(scope="session")
def synthetic_slide(tmp_path_factory):
    """(path, SlideTruth) of a generic-TIFF synthetic slide with about 45 % tissue."""
    from wsi_engine.synthetic import generate_slide

    folder = tmp_path_factory.mktemp("tiling-slides")
    path = folder / "synthetic-a.tiff"
    truth = generate_slide(path, width=SLIDE_SIZE[0], height=SLIDE_SIZE[1], mpp=0.5, seed=3)
    return path, truth


def copy_slide(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def write_plain_tiff(
    path: Path, image: np.ndarray, mpp: float | None = None, tile: int | None = None
) -> Path:
    """A one-page RGB TIFF (striped unless ``tile``), with µm/px resolution tags when ``mpp`` is given."""
    options = {"photometric": "rgb"}
    if tile:
        options.update(tile=(tile, tile), compression="jpeg")
    if mpp is not None:
        options.update(resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit="CENTIMETER")
    tifffile.imwrite(path, image, **options)
    return path


def corrupt_level0_tile(path: Path, tile_xy: tuple[int, int]) -> None:
    """Overwrite the compressed bytes of level-0 tile (column, row) ``tile_xy`` with garbage."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        per_row = -(-page.imagewidth // page.tilewidth)
        index = tile_xy[1] * per_row + tile_xy[0]
        offset, count = page.dataoffsets[index], page.databytecounts[index]
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(bytes(np.random.default_rng(0).integers(0, 256, count, dtype=np.uint8)))


def truth_fraction(truth, coords: np.ndarray, size_level0: float) -> np.ndarray:
    """Fraction of each level-0 box covered by the synthetic slide's ground-truth tissue mask."""
    from wsi_engine.tissue import TissueMask

    mask = TissueMask(
        truth.tissue_mask, (truth.mask_downsample,) * 2, truth.mpp * truth.mask_downsample, "truth"
    )
    return mask.fraction_in_boxes(coords, size_level0)


@pytest.fixture(scope="session")
def tools():
    """The helper functions above, for test modules (conftest modules cannot be imported by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        copy_slide=copy_slide,
        write_plain_tiff=write_plain_tiff,
        corrupt_level0_tile=corrupt_level0_tile,
        truth_fraction=truth_fraction,
    )
