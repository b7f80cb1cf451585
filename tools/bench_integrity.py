"""Overhead of store integrity: sealing vs writing a JPEG patch store, checked vs raw reads (ratios).

Usage: python tools/bench_integrity.py SCRATCH_DIR (deleted and recreated). Random-noise patches.
"""

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import zarr

from wsi_engine.store import PatchStore
from wsi_engine.store.integrity import seal, sealed_arrays
from wsi_engine.store.shards import write_shard
from wsi_engine.store.writer import StoreWriter

root = Path(sys.argv[1])
shutil.rmtree(root, ignore_errors=True)
n, size, shard = 2048, 224, 128
rng = np.random.default_rng(0)
base = rng.integers(0, 256, (64, size, size, 3), np.uint8)
coords = np.stack([np.arange(n) * size, np.zeros(n, int)], 1)
attrs = {
    "slide": {"id": "b", "fingerprint": "b", "path": "/x"},
    "tiling": {"patch_size": size, "pixel_mode": "jpeg", "shard_patches": shard},
    "tissue": {},
}
w = StoreWriter.open_or_create(root, "b", attrs, coords, np.ones(n))
arr = w.create_patches(size, "jpeg", 90, shard)
t = time.perf_counter()
for k in range(n // shard):
    write_shard(arr, k, base[np.arange(shard) % 64])
t_write = time.perf_counter() - t
t = time.perf_counter()
for a in sealed_arrays(w.root):
    seal(w.path, a)
t_seal = time.perf_counter() - t
path = w.finalize()
raw = zarr.open_array(str(path / "patches"), mode="r")
t = time.perf_counter()
for s in range(0, n, shard):
    raw[s : s + shard]
t_raw = time.perf_counter() - t
store = PatchStore.open(path)
t = time.perf_counter()
for s in range(0, n, shard):
    store.read_patches(s, s + shard)
t_checked = time.perf_counter() - t
mb = sum(p.stat().st_size for p in (path / "patches").rglob("*")) / 1e6
print(f"{n} JPEG patches {size}px, {mb:.0f} MB in {n // shard} shards")
print(f"write {t_write:.2f}s, seal {t_seal:.3f}s -> seal/write {t_seal / t_write:.3f}")
print(
    f"raw read {t_raw:.2f}s, checked read {t_checked:.2f}s -> checked/raw {t_checked / t_raw:.3f}"
)
