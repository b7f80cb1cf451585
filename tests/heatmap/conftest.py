"""Small hand-built patch stores with planted scores for the heatmap tests.

A slide of 2048 × 1536 level-0 px at 0.5 µm/px, patches of 128 level-0 px on a
grid inside an elliptical tissue region, and a circular "lesion" whose
patches get high scores. Every patch is filled with a colour that encodes its
index, so a test can tell which patches a gallery shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsi_engine.store.patch_store import PatchStore
from wsi_engine.store.writer import StoreWriter

WIDTH, HEIGHT, MPP = 2048, 1536, 0.5
PATCH0 = 128  # level-0 px per patch side
PATCH = 32  # stored patch side
THUMB_DS, MASK_DS = 8.0, 16.0
LESION = (1300.0, 700.0, 300.0)  # centre x, y and radius in level-0 px
CLASSES = ["normal", "tumor"]


def tissue_mask(downsample: float) -> np.ndarray:
    """(h, w) bool ellipse of tissue at ``downsample`` level-0 px per px."""
    h, w = int(np.ceil(HEIGHT / downsample)), int(np.ceil(WIDTH / downsample))
    y, x = (np.mgrid[0:h, 0:w] + 0.5) * downsample
    return ((x - WIDTH / 2) / 900) ** 2 + ((y - HEIGHT / 2) / 650) ** 2 <= 1


def patch_colour(index: int) -> np.ndarray:
    """RGB colour that encodes a patch index (unique below 2**16)."""
    return np.array([index % 256, index // 256, 200], dtype=np.uint8)


def lesion_geojson(path: Path) -> Path:
    """The lesion circle as a GeoJSON polygon in level-0 px."""
    import json

    cx, cy, r = LESION
    angles = np.linspace(0, 2 * np.pi, 65)
    ring = [[float(cx + r * np.cos(a)), float(cy + r * np.sin(a))] for a in angles]
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {},
    }
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


def build_store(out_dir: Path, slide_id: str, *, pixels: bool = True, stride: int = PATCH0) -> Path:
    """Write a complete store; patches every ``stride`` level-0 px where the patch centre is in tissue."""
    mask = tissue_mask(MASK_DS)
    xs, ys = np.meshgrid(
        np.arange(0, WIDTH - PATCH0 + 1, stride), np.arange(0, HEIGHT - PATCH0 + 1, stride)
    )
    coords = np.stack([xs.ravel(), ys.ravel()], axis=1)
    centre = ((coords + PATCH0 / 2) / MASK_DS).astype(int)
    coords = coords[mask[centre[:, 1], centre[:, 0]]]
    attrs = {
        "slide": {
            "id": slide_id,
            "path": str(out_dir / f"{slide_id}.tiff"),
            "fingerprint": slide_id,
            "dimensions": [WIDTH, HEIGHT],
            "mpp": [MPP, MPP],
        },
        "tiling": {
            "patch_size": PATCH,
            "target_mpp": MPP * PATCH0 / PATCH,
            "patch_size_level0": float(PATCH0),
            "overlap": 0,
            "pixel_mode": "lossless" if pixels else "none",
            "shard_patches": 16,
        },
        "tissue": {},
    }
    writer = StoreWriter.open_or_create(out_dir, slide_id, attrs, coords, np.ones(len(coords)))
    thumb_mask = tissue_mask(THUMB_DS)
    thumbnail = np.full(thumb_mask.shape + (3,), 245, np.uint8)
    thumbnail[thumb_mask] = (215, 150, 190)
    writer.write_image("thumbnail", thumbnail, downsample=THUMB_DS)
    writer.write_image(
        "tissue_mask", tissue_mask(MASK_DS).astype(np.uint8), downsample=MASK_DS, mpp=MPP * MASK_DS
    )
    if pixels:
        array = writer.create_patches(PATCH, "lossless", 0, 16)
        array[...] = np.stack(
            [np.broadcast_to(patch_colour(i), (PATCH, PATCH, 3)) for i in range(len(coords))]
        )
    return writer.finalize()


def lesion_scores(coords: np.ndarray) -> np.ndarray:
    """(N,) tumour probability: high inside the lesion circle, low elsewhere, deterministic jitter."""
    cx, cy, r = LESION
    centre = coords + PATCH0 / 2
    inside = np.hypot(centre[:, 0] - cx, centre[:, 1] - cy) < r
    jitter = (np.arange(len(coords)) % 7) / 70
    return np.where(inside, 0.85, 0.1) + jitter


def plant_scores(
    store_path: Path, run_id: str = "run1", *, kind: str = "patch"
) -> dict[str, np.ndarray]:
    """Write ``scores/<run_id>``: patch ``probs`` or bag ``attention`` + ``instance_score``."""
    store = PatchStore.open(store_path, mode="r+")
    tumour = lesion_scores(store.coords())
    if kind == "patch":
        arrays = {"probs": np.stack([1 - tumour, tumour], axis=1)}
        attrs = {"kind": "patch", "predicted_class": "tumor", "slide_probs": [0.2, 0.8]}
    else:
        weights = np.stack([1 - tumour, tumour], axis=1)
        arrays = {"attention": weights / weights.sum(axis=0), "instance_score": tumour}
        attrs = {"kind": "bag", "predicted_class": "tumor", "slide_probs": [0.1, 0.9]}
    attrs.update(model="test", task="demo", class_names=CLASSES, encoder_id="enc")
    store.write_scores(run_id, arrays, attrs)
    return arrays


@pytest.fixture
def scored_store(tmp_path: Path) -> Path:
    """One complete store with patch-classifier scores under run ``run1``."""
    path = build_store(tmp_path / "stores", "slide-a")
    plant_scores(path)
    return path


@pytest.fixture(scope="session")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(store, lesion GeoJSON) of a generated 2048 × 1536 tumour slide tiled into 128-level-0-px patches."""
    from distributed import Client

    from wsi_engine.synthetic import generate_slide
    from wsi_engine.tiling import TilingConfig, tile_slides

    root = tmp_path_factory.mktemp("real")
    (root / "slides").mkdir()
    truth = generate_slide(
        root / "slides" / "tum-1.tiff",
        width=2048,
        height=1536,
        mpp=0.5,
        lesion_class="tumor",
        seed=3,
    )
    paths = truth.save(root / "truth", "tum-1", "tumor")
    config = TilingConfig(patch_size=32, target_mpp=2.0, pixel_mode="lossless")
    with Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
    ) as client:
        report = tile_slides([root / "slides"], root / "stores", config, scheduler=client)
    assert not report.failed
    return root / "stores" / "tum-1.zarr", paths["geojson"]
