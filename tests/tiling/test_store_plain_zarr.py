"""Stores opened with plain ``zarr`` in processes that never import wsi_engine.

The JPEG codec reaches zarr through the ``zarr.codecs`` entry point declared
in pyproject.toml. The test installs that declaration as a distribution's
metadata in a temporary folder (what ``pip install`` writes), so it checks
the declaration itself, whatever version of the package the venv holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from wsi_engine.store import PatchStore
from wsi_engine.store.writer import StoreWriter

REPO = Path(__file__).resolve().parents[2]
ZARR_V3_CORE_CODECS = {"bytes", "blosc", "zstd", "gzip", "crc32c", "transpose", "sharding_indexed"}
BLOCK_WSI_ENGINE = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'wsi_engine':\n"
    "            raise ModuleNotFoundError(f'No module named {name!r} (blocked)')\n"
    "sys.meta_path.insert(0, _Block())\n"
)


def _store(out_dir: Path, pixel_mode: str) -> Path:
    n, size = 6, 32
    yy, xx = np.mgrid[0:size, 0:size] / size
    patches = np.stack(
        [
            np.stack([150 + 80 * np.sin(3 * xx + k), 90 + 60 * yy, 170 + 0 * xx], -1)
            for k in range(n)
        ]
    ).astype(np.uint8)
    attrs = {
        "slide": {"id": "p", "path": None, "dimensions": [192, 32], "mpp": [0.5, 0.5]},
        "tiling": {"patch_size": size, "target_mpp": 0.5, "patch_size_level0": 32.0,
                   "pixel_mode": pixel_mode, "shard_patches": 4},
        "tissue": {},
    }  # fmt: skip
    coords = np.stack([np.arange(n) * size, np.zeros(n)], axis=1).astype(np.int64)
    writer = StoreWriter.open_or_create(out_dir, "p", attrs, coords, np.ones(n, np.float32))
    writer.create_patches(size, pixel_mode, 90, 4)[...] = patches
    writer.write_image("thumbnail", patches[0], jpeg_quality=90, downsample=6.0)
    return writer.finalize()


def _entry_point_dist(folder: Path) -> Path:
    """A dist-info holding pyproject.toml's ``zarr.codecs`` entry points, as an install writes it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    codecs = project["entry-points"]["zarr.codecs"]
    dist = folder / "wsi_engine_codec_metadata-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wsi-engine-codec-metadata\nVersion: 0.0\n"
    )
    lines = [f"{name} = {target}" for name, target in codecs.items()]
    (dist / "entry_points.txt").write_text("[zarr.codecs]\n" + "\n".join(lines) + "\n")
    return folder


def _run(code: str, tmp_path: Path, pythonpath: list[Path]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, pythonpath))}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_plain_zarr_decodes_jpeg_patches_through_the_entry_point(tmp_path):
    path = _store(tmp_path / "stores", "jpeg")
    store = PatchStore.open(path)
    site = _entry_point_dist(tmp_path / "site")
    code = (
        "import sys, numpy as np, zarr\n"
        f"group = zarr.open_group({str(path)!r}, mode='r')\n"
        "before = any(m.split('.')[0] == 'wsi_engine' for m in sys.modules)\n"
        f"np.save({str(tmp_path / 'patches.npy')!r}, group['patches'][:])\n"
        f"np.save({str(tmp_path / 'thumb.npy')!r}, group['thumbnail'][:])\n"
        "print('imported before reading:', before)\n"
    )
    done = _run(code, tmp_path, [site, REPO])
    assert done.returncode == 0, done.stderr
    assert "imported before reading: False" in done.stdout
    assert np.array_equal(np.load(tmp_path / "patches.npy"), store.read_patches(0, 6))
    assert np.array_equal(np.load(tmp_path / "thumb.npy"), store.thumbnail()[0])


def test_declared_entry_point_names_the_codec_class():
    from wsi_engine.store.codecs import JPEG_CODEC_NAME, JpegCodec

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    module, name = project["entry-points"]["zarr.codecs"][JPEG_CODEC_NAME].split(":")
    assert getattr(__import__(module, fromlist=[name]), name) is JpegCodec


def test_lossless_patches_use_core_codecs_and_decode_without_wsi_engine(tmp_path):
    path = _store(tmp_path / "stores", "lossless")
    meta = json.loads((path / "patches" / "zarr.json").read_text())
    names = _codec_names(meta["codecs"])
    assert names <= ZARR_V3_CORE_CODECS, names
    code = BLOCK_WSI_ENGINE + (
        "import numpy as np, zarr\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, zarr.open_group({str(path)!r}, mode='r')['patches'][:])\n"
    )
    done = _run(code, tmp_path, [])
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.load(tmp_path / "p.npy"), PatchStore.open(path).read_patches(0, 6))


def test_jpeg_patches_without_wsi_engine_fail_with_the_codec_name(tmp_path):
    """What docs/store.md tells users of processes without wsi-engine."""
    path = _store(tmp_path / "stores", "jpeg")
    code = BLOCK_WSI_ENGINE + (
        f"import zarr\nzarr.open_group({str(path)!r}, mode='r')['patches'][:1]\n"
    )
    done = _run(code, tmp_path, [])
    assert done.returncode != 0 and "wsi_engine" in done.stderr


def _codec_names(codecs: list) -> set[str]:
    names = set()
    for codec in codecs:
        names.add(codec["name"])
        inner = codec.get("configuration", {})
        for key in ("codecs", "index_codecs"):
            names |= _codec_names(inner.get(key, []))
    return names


@pytest.fixture(autouse=True)
def _no_user_site(monkeypatch):
    monkeypatch.setenv("PYTHONNOUSERSITE", "1")
