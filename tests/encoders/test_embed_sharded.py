"""The multi-GPU code path (one Dask worker process per device), exercised with two CPU processes."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_engine.encoders.embed import embed_stores
from wsi_engine.encoders.multi_gpu import embed_sharded, shard_stores
from wsi_engine.store import PatchStore

from .conftest import n_patches


def test_shards_balance_patch_counts(stores):
    shards = shard_stores(stores, 2)
    assert sorted(map(len, shards)) == [1, 2]
    assert shards[0] == [stores[1]]  # the largest store alone


@pytest.mark.slow
def test_two_processes_give_the_single_process_features(
    stores, tiny_checkpoint, tiny_encoder, tmp_path
):
    report = embed_sharded(
        stores,
        "tiny-clip",
        n_processes=2,
        device_type="cpu",
        checkpoint=tiny_checkpoint,
        batch_size=16,
        workers=0,
        embed=embed_stores,
    )
    assert sorted(r.status for r in report.results) == [
        "done"
    ] * 3 and report.embedded == n_patches(stores)
    sharded = {p.name: PatchStore.open(p).read_features("tiny-clip") for p in stores}
    single = embed_stores(
        stores, tiny_encoder, device="cpu", batch_size=16, workers=0, overwrite=True
    )
    assert single.embedded == n_patches(stores)
    for path in stores:
        np.testing.assert_allclose(
            PatchStore.open(path).read_features("tiny-clip"), sharded[path.name], atol=1e-3
        )
