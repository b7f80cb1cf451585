"""Fixtures of the encoder tests: the tiny random-weight CLIP and small patch stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsi_engine.store.writer import StoreWriter

SHARED_MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """No test sees the user's weights, caches or the Hugging Face cache."""
    root = tmp_path_factory.mktemp("env")
    monkeypatch.setenv("WSI_ENGINE_CACHE", str(root / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("WSI_ENGINE_WEIGHTS_DIR", raising=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random tiny-clip checkpoint (safetensors), made through the public helper."""
    from wsi_engine.encoders import create_random_checkpoint

    return create_random_checkpoint("tiny-clip", tmp_path_factory.mktemp("weights") / "tiny-clip.safetensors")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_checkpoint):
    from wsi_engine.encoders import load_encoder

    return load_encoder("tiny-clip", checkpoint=tiny_checkpoint)


def make_store(
    out_dir: Path, slide_id: str, n: int, *, size: int = 64, shard: int = 16, seed: int = 0, pixels: bool = True
) -> Path:
    """A complete store of ``n`` random lossless ``size``-px patches in shards of ``shard``."""
    rng = np.random.default_rng(seed)
    coords = np.stack([np.arange(n) % 40 * size, np.arange(n) // 40 * size], axis=1)
    attrs = {
        "slide": {
            "id": slide_id, "path": str(out_dir / f"{slide_id}.tif"), "size_bytes": 0, "fingerprint": "test",
            "vendor": "synthetic", "backend": "tiffslide", "dimensions": [40 * size, (n // 40 + 1) * size],
            "level_count": 1, "mpp": [0.5, 0.5], "mpp_source": "test", "objective_power": None,
        },
        "tiling": {
            "patch_size": size, "target_mpp": 0.5, "patch_size_level0": float(size), "overlap": 0,
            "min_tissue_fraction": 0.0, "read_level": 0, "read_downsample": 1.0, "read_window": size,
            "pixel_mode": "lossless" if pixels else "none", "jpeg_quality": None, "shard_patches": shard,
        },
        "tissue": {"source": "test"},
    }
    writer = StoreWriter.open_or_create(out_dir, slide_id, attrs, coords, np.ones(n, np.float32))
    if pixels and n:
        writer.create_patches(size, "lossless", 90, shard)[...] = rng.integers(0, 256, (n, size, size, 3), np.uint8)
    return writer.finalize()


@pytest.fixture
def stores(tmp_path) -> list[Path]:
    """Two stores (50 and 37 patches, shards of 16) and an empty one."""
    out = tmp_path / "stores"
    return [make_store(out, "a", 50), make_store(out, "b", 37, seed=1), make_store(out, "c", 0)]
