"""Fixtures of the MIL tests: synthetic bags with planted positive instances, written as real stores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wsi_engine.store import PatchStore
from wsi_engine.store.writer import StoreWriter

from ..torch_threads import one_torch_thread  # noqa: F401  (autouse fixture)

TEST_ENCODER = "test-enc"


@dataclass
class Bag:
    slide_id: str
    features: np.ndarray  # (N, D) float32, L2-normalised
    target: int
    planted: np.ndarray  # (N,) bool: the planted positive instances


def synthetic_bags(
    n_per_class: int,
    n_classes: int = 2,
    dim: int = 32,
    size: tuple[int, int] = (100, 300),
    witness: tuple[float, float] = (0.05, 0.2),
    strength: float = 2.5,
    seed: int = 0,
) -> list[Bag]:
    """Bags of Gaussian background instances; a bag of class c ≥ 1 also holds a fraction of instances
    shifted by ``strength`` along the class's own direction. Class 0 bags hold no planted instance."""
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.normal(size=(dim, dim)))[0][:, :n_classes].T  # orthonormal rows
    bags = []
    for c in range(n_classes):
        for i in range(n_per_class):
            n = int(rng.integers(*size))
            x = rng.normal(size=(n, dim))
            planted = np.zeros(n, dtype=bool)
            if c > 0:
                k = max(1, int(round(n * rng.uniform(*witness))))
                planted[rng.choice(n, size=k, replace=False)] = True
                x[planted] += strength * directions[c]
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            bags.append(Bag(f"c{c}-s{i:03d}", x.astype(np.float32), c, planted))
    return bags


class InMemoryBags:
    """Stands in for :class:`~wsi_engine.mil.data.BagReader` (``get(slide_id)``) in model tests."""

    def __init__(self, bags: list[Bag]):
        self.bags = {b.slide_id: b for b in bags}

    def get(self, slide_id: str) -> torch.Tensor:
        return torch.from_numpy(self.bags[slide_id].features)


def write_store(
    out_dir: Path,
    slide_id: str,
    features: np.ndarray | None,
    *,
    encoder_id: str = TEST_ENCODER,
    text_aligned: bool = False,
    output_kind: str = "image_only",
    patch: int = 256,
) -> Path:
    """A complete coordinate-only store; with ``features`` (N, D), also ``features/<encoder_id>`` (float16)."""
    n = 0 if features is None else len(features)
    side = max(1, int(np.ceil(np.sqrt(max(n, 1)))))
    coords = np.array(
        [((i % side) * patch, (i // side) * patch) for i in range(n)], dtype=np.int64
    ).reshape(-1, 2)
    attrs = {
        "slide": {
            "id": slide_id,
            "path": f"/synthetic/{slide_id}.tif",
            "size_bytes": 0,
            "fingerprint": slide_id,
            "vendor": "synthetic",
            "backend": "none",
            "dimensions": [side * patch, side * patch],
            "level_count": 1,
            "mpp": [0.5, 0.5],
            "mpp_source": "option",
            "objective_power": 20,
        },
        "tiling": {
            "patch_size": patch,
            "target_mpp": 0.5,
            "patch_size_level0": float(patch),
            "overlap": 0,
            "min_tissue_fraction": 0.5,
            "read_level": 0,
            "read_downsample": 1.0,
            "pixel_mode": "none",
            "jpeg_quality": 90,
            "shard_patches": 256,
        },
        "tissue": {"source": "synthetic"},
    }
    writer = StoreWriter.open_or_create(
        out_dir, slide_id, attrs, coords, np.ones(n, dtype=np.float32)
    )
    path = writer.finalize()
    if features is not None and n:
        store = PatchStore.open(path, mode="r+")
        array, progress = store.create_features(
            encoder_id,
            features.shape[1],
            {"output_kind": output_kind, "text_aligned": text_aligned},
            block_rows=n,
        )
        array[...] = features.astype(np.float16)
        progress.mark_done(0)
        store.complete_features(encoder_id, progress)
    return path


def write_cohort(
    root: Path, bags: list[Bag], class_names: list[str], **store_options
) -> tuple[Path, Path]:
    """Stores of ``bags`` in ``root/stores`` and ``root/labels.csv``; returns (stores dir, labels path)."""
    stores = root / "stores"
    stores.mkdir(parents=True, exist_ok=True)
    for bag in bags:
        write_store(stores, bag.slide_id, bag.features, **store_options)
    labels = root / "labels.csv"
    labels.write_text(
        "slide_id,label\n" + "".join(f"{b.slide_id},{class_names[b.target]}\n" for b in bags),
        encoding="utf-8",
    )
    return stores, labels


def bag_cohort(root: Path, class_names: list[str], **bag_options) -> tuple[list[Bag], Path, Path]:
    """(bags, stores dir, labels path): :func:`synthetic_bags` of ``bag_options`` written by
    :func:`write_cohort` into ``root``."""
    bags = synthetic_bags(**bag_options)
    return (bags, *write_cohort(root, bags, class_names))
