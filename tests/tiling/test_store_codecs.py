"""The patch codecs: the ``wsi_engine.jpeg`` Zarr v3 codec and the lossless Blosc array."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import zarr

from wsi_engine.store.codecs import JPEG_CODEC_NAME, JpegCodec, patch_array_options


def _smooth_patches(n: int, size: int = 64) -> np.ndarray:
    """RGB patches with smooth gradients and blobs (photograph-like, JPEG-friendly)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    patches = []
    for k in range(n):
        r = 150 + 80 * np.sin(3 * xx + k)
        g = 90 + 60 * np.cos(4 * yy - k)
        b = 170 + 50 * np.sin(5 * (xx + yy) + 0.5 * k)
        patches.append(np.stack([r, g, b], axis=-1))
    return np.clip(patches, 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def _array(path, pixel_mode: str, n: int, quality: int = 90):
    return zarr.create_array(
        str(path),
        shape=(n, 64, 64, 3),
        chunks=(1, 64, 64, 3),
        shards=(4, 64, 64, 3),
        dtype="uint8",
        fill_value=0,
        **patch_array_options(pixel_mode, quality),
    )


def test_jpeg_round_trip_is_close_and_deterministic(tmp_path):
    patches = _smooth_patches(10)
    array = _array(tmp_path / "a.zarr", "jpeg", 10)
    array[:] = patches
    decoded = zarr.open_array(str(tmp_path / "a.zarr"))[:]
    assert decoded.shape == patches.shape and decoded.dtype == np.uint8
    assert _psnr(decoded, patches) > 35
    again = _array(tmp_path / "b.zarr", "jpeg", 10)
    again[:] = patches
    shard = "c/0/0/0/0"
    assert (tmp_path / "a.zarr" / shard).read_bytes() == (tmp_path / "b.zarr" / shard).read_bytes()


def test_jpeg_quality_trades_size_for_error(tmp_path):
    patches = _smooth_patches(8)
    sizes, errors = {}, {}
    for quality in (50, 95):
        array = _array(tmp_path / f"q{quality}.zarr", "jpeg", 8, quality)
        array[:] = patches
        sizes[quality] = sum(
            f.stat().st_size
            for f in (tmp_path / f"q{quality}.zarr" / "c").rglob("*")
            if f.is_file()
        )
        errors[quality] = _psnr(array[:], patches)
    assert sizes[50] < sizes[95] and errors[50] < errors[95]


def test_lossless_is_exact(tmp_path):
    patches = np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    array = _array(tmp_path / "l.zarr", "lossless", 6)
    array[:] = patches
    assert np.array_equal(zarr.open_array(str(tmp_path / "l.zarr"))[:], patches)


def test_codec_metadata_and_validation(tmp_path):
    _array(tmp_path / "m.zarr", "jpeg", 2, quality=77)
    meta = json.loads((tmp_path / "m.zarr" / "zarr.json").read_text())
    inner = meta["codecs"][0]["configuration"]["codecs"]
    assert inner == [{"name": JPEG_CODEC_NAME, "configuration": {"quality": 77}}]
    assert JpegCodec.from_dict(inner[0]) == JpegCodec(quality=77)
    with pytest.raises(ValueError, match="quality"):
        JpegCodec(quality=0)
    with pytest.raises(ValueError, match="uint8"):
        zarr.create_array(
            zarr.storage.MemoryStore(),
            shape=(2, 8, 8, 3),
            chunks=(1, 8, 8, 3),
            dtype="uint16",
            serializer=JpegCodec(),
            compressors=None,
        )
    with pytest.raises(ValueError, match="no patch array"):
        patch_array_options("none", 90)


def test_a_fresh_process_reads_jpeg_stores_after_importing_wsi_engine_store(tmp_path):
    patches = _smooth_patches(4)
    _array(tmp_path / "f.zarr", "jpeg", 4)[:] = patches
    expected = zarr.open_array(str(tmp_path / "f.zarr"))[:]
    code = (
        "import sys, numpy as np, zarr, wsi_engine.store\n"
        f"a = zarr.open_array({str(tmp_path / 'f.zarr')!r})[:]\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, a)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)


@pytest.mark.parametrize("pixel_mode", ["jpeg", "lossless"])
def test_whole_shard_writes_give_the_bytes_zarr_writes(tmp_path, pixel_mode):
    from wsi_engine.store.shards import write_shard

    patches = _smooth_patches(10)  # 3 shards of 4, the last one short
    ours, theirs = (
        _array(tmp_path / "ours.zarr", pixel_mode, 10),
        _array(tmp_path / "zarr.zarr", pixel_mode, 10),
    )
    for shard in range(3):
        write_shard(ours, shard, patches[4 * shard : 4 * shard + 4])
    theirs[:] = patches
    for shard in range(3):
        key = f"c/{shard}/0/0/0"
        assert (tmp_path / "ours.zarr" / key).read_bytes() == (
            tmp_path / "zarr.zarr" / key
        ).read_bytes()
    assert np.array_equal(zarr.open_array(str(tmp_path / "ours.zarr"))[:], theirs[:])
    with pytest.raises(ValueError, match="whole"):
        write_shard(ours, 0, patches[:3])
