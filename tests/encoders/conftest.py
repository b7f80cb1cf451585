"""Fixtures of the encoder tests: the tiny random-weight CLIP and small patch stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from wsi_engine.encoders import EncoderConfig, load_encoder_config
from wsi_engine.store.attrs import SlideSection, TilingSection
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
def tiny_encoder(tiny_checkpoint):
    from wsi_engine.encoders import load_encoder

    return load_encoder("tiny-clip", checkpoint=tiny_checkpoint)


def tiny_conch_config(folder: Path) -> EncoderConfig:
    """The CONCH preset on a one-layer, 32-px, 16-d architecture written into ``folder``."""
    spec = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "patch_size": 16,
            "width": 32,
            "layers": 1,
            "heads": 2,
            "attn_pooler_heads": 2,
        },
        "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1},
    }
    (folder / "tiny-conch.json").write_text(json.dumps(spec))
    config = load_encoder_config("conch_ViT-B-16")
    return config.model_copy(
        update={
            "architecture": str(folder / "tiny-conch.json"),
            "embed_dim": 16,
            "preprocess": config.preprocess.model_copy(update={"image_size": 32}),
            "text": config.text.model_copy(update={"context_length": 16}),
        }
    )


def make_store(
    out_dir: Path,
    slide_id: str,
    n: int,
    *,
    size: int = 64,
    shard: int = 16,
    seed: int = 0,
    pixels: bool = True,
) -> Path:
    """A complete store of ``n`` random lossless ``size``-px patches in shards of ``shard``."""
    rng = np.random.default_rng(seed)
    coords = np.stack([np.arange(n) % 40 * size, np.arange(n) // 40 * size], axis=1)
    slide = SlideSection(
        id=slide_id,
        path=str(out_dir / f"{slide_id}.tif"),
        fingerprint="test",
        backend="tiffslide",
        dimensions=(40 * size, (n // 40 + 1) * size),
        mpp=(0.5, 0.5),
    )
    tiling = TilingSection(
        patch_size=size,
        target_mpp=0.5,
        patch_size_level0=size,
        read_window=size,
        pixel_mode="lossless" if pixels else "none",
        shard_patches=shard,
    )
    attrs = {
        "slide": slide.model_dump(mode="json"),
        "tiling": tiling.model_dump(mode="json"),
        "tissue": {"source": "test"},
    }
    writer = StoreWriter.open_or_create(out_dir, slide_id, attrs, coords, np.ones(n, np.float32))
    if pixels and n:
        writer.create_patches(size, "lossless", 90, shard)[...] = rng.integers(
            0, 256, (n, size, size, 3), np.uint8
        )
    return writer.finalize()


@pytest.fixture(scope="session")
def tiled(tmp_path_factory) -> dict[str, Path]:
    """Three synthetic slides tiled by the real tiling stage (64 px at 0.5 µm/px, shards of 16), per pixel mode.

    ``a``: 1536×1024 px at 0.25 µm/px (windows resized), ``b``: 1024² at 0.5 µm/px
    (copied as is), ``empty``: no tissue. Returns {pixel mode: folder of stores}.
    """
    from distributed import Client

    from wsi_engine.synthetic import generate_slide
    from wsi_engine.tiling import TilingConfig, tile_slides

    root = tmp_path_factory.mktemp("tiled")
    slides = root / "slides"
    slides.mkdir()
    generate_slide(slides / "a.tif", width=1536, height=1024, mpp=0.25, seed=1)
    generate_slide(slides / "b.tif", width=1024, height=1024, mpp=0.5, seed=4)
    generate_slide(slides / "empty.tif", width=1024, height=1024, mpp=0.25, seed=2)
    folders = {}
    with Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
    ) as client:
        for mode in ("jpeg", "lossless", "none"):
            config = TilingConfig(patch_size=64, target_mpp=0.5, shard_patches=16, pixel_mode=mode)
            report = tile_slides([slides], root / mode, config, scheduler=client)
            assert [r.status for r in report.results] == ["ok", "ok", "empty"]
            folders[mode] = root / mode
    return folders


@pytest.fixture
def stores(tiled, tmp_path) -> list[Path]:
    """Copies of the JPEG stores ``a``, ``b`` and ``empty`` (see :func:`tiled`)."""
    out = tmp_path / "stores"
    return [
        Path(shutil.copytree(tiled["jpeg"] / f"{name}.zarr", out / f"{name}.zarr"))
        for name in ("a", "b", "empty")
    ]


def n_patches(paths: list[Path]) -> int:
    from wsi_engine.store import PatchStore

    return sum(PatchStore.open(p).n_patches for p in paths)
