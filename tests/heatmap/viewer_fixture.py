"""A real pyramidal TIFF slide with a dark square and a store whose scores mark exactly that square.

The slide (the geometry of :mod:`conftest`: 2048 × 1536 level-0 px, 128-px
patches) is pink tissue with one dark square covering patches (8..9, 4..5),
i.e. level-0 x 1024..1280, y 512..768. Class ``tumor`` scores 1 on those four
patches and 0 elsewhere, so the viewer's score map must be yellow exactly where
the slide is dark.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile

from wsi_engine.store.patch_store import PatchStore
from wsi_engine.viewer import load_catalog, make_server, serve_in_thread

from .conftest import CLASSES, HEIGHT, MPP, PATCH0, WIDTH, build_store

SQUARE = (1024, 512, 1280, 768)  # x0, y0, x1, y1 level-0 px
PINK, DARK = (232, 182, 212), (30, 20, 60)


def write_square_slide(path: Path) -> Path:
    """A 3-level tiled TIFF pyramid (JPEG-free, so colours stay exact) with µm/px in its resolution tags."""
    level0 = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    level0[...] = PINK
    x0, y0, x1, y1 = SQUARE
    level0[y0:y1, x0:x1] = DARK
    resolution = (1e4 / MPP, 1e4 / MPP)
    with tifffile.TiffWriter(path) as tif:
        for level in range(3):
            pixels = level0[:: 2**level, :: 2**level]
            tif.write(
                pixels,
                tile=(256, 256),
                photometric="rgb",
                compression="zlib",
                resolution=(resolution[0] / 2**level, resolution[1] / 2**level),
                resolutionunit="CENTIMETER",
                subfiletype=1 if level else 0,
            )
    return path


def square_store(root: Path, slide_id: str = "square") -> Path:
    """A complete store of the square slide with run ``run1`` scoring the square's patches 1."""
    stores = root / "stores"
    stores.mkdir(parents=True, exist_ok=True)
    write_square_slide(stores / f"{slide_id}.tiff")
    path = build_store(stores, slide_id, pixels=False)
    store = PatchStore.open(path, mode="r+")
    centre = store.coords() + PATCH0 / 2
    x0, y0, x1, y1 = SQUARE
    inside = (centre[:, 0] > x0) & (centre[:, 0] < x1) & (centre[:, 1] > y0) & (centre[:, 1] < y1)
    tumour = inside.astype(np.float64)
    store.write_scores(
        "run1",
        {"probs": np.stack([1 - tumour, tumour], axis=1)},
        {"kind": "patch", "predicted_class": "tumor", "slide_probs": [0.3, 0.7],
         "class_names": CLASSES, "model": "test", "task": "demo", "encoder_id": "enc"},
    )  # fmt: skip
    return path


@contextmanager
def square_viewer(root: Path) -> Iterator:
    """The viewer's server (127.0.0.1, a free port) over the square store in ``root``, serving
    in a thread until the block ends."""
    square_store(root)
    server = make_server(load_catalog(root / "stores"), port=0)
    serve_in_thread(server)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
