"""``embed_stores``: features in the store, determinism, skipping, failures, pixels read from the slide."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from wsi_engine.encoders import create_random_checkpoint, load_encoder
from wsi_engine.encoders.embed import embed_stores
from wsi_engine.errors import ConfigError
from wsi_engine.stage import StageObserver
from wsi_engine.store import PatchStore

from .conftest import n_patches


def _features(path, encoder_id="tiny-clip"):
    return PatchStore.open(path).read_features(encoder_id, dtype=np.float16)


def test_features_shape_dtype_attrs_and_values(stores, tiny_encoder):
    report = embed_stores(stores, tiny_encoder, device="cpu", batch_size=20, workers=0)
    assert [r.status for r in report.results] == ["done", "done", "done"]
    assert report.embedded == n_patches(stores) and report.model_seconds > 0
    store = PatchStore.open(stores[0])
    n = store.n_patches
    features = store.feature_array("tiny-clip")
    assert features.shape == (n, 32) and str(features.dtype) == "float16"
    attrs = store.feature_attrs("tiny-clip")
    assert attrs["complete"] and attrs["encoder_id"] == "tiny-clip"
    assert attrs["checkpoint_sha256"] == tiny_encoder.checkpoint_sha256
    assert attrs["output_kind"] == "joint" and attrs["text_aligned"] is True
    assert attrs["preprocessing"]["image_size"] == 64 and attrs["encoder"]["name"] == "tiny-clip"
    assert "_progress" not in store.root
    with torch.inference_mode():
        direct = tiny_encoder.image(torch.from_numpy(store.read_patches(0, n))).numpy()
    np.testing.assert_allclose(np.asarray(features[:], np.float32), direct, atol=1e-3)
    assert PatchStore.open(stores[2]).read_features("tiny-clip").shape == (0, 32)


def test_deterministic_rerun_skip_and_overwrite(stores, tiny_encoder):
    embed_stores(stores[:2], tiny_encoder, device="cpu", batch_size=16, workers=1)
    first = _features(stores[1])
    again = embed_stores(stores[:2], tiny_encoder, device="cpu", batch_size=16, workers=0)
    assert [r.status for r in again.results] == ["skipped", "skipped"] and again.embedded == 0
    redone = embed_stores(
        stores[:2], tiny_encoder, device="cpu", batch_size=16, workers=0, overwrite=True
    )
    assert redone.embedded == n_patches(stores[:2])
    assert np.array_equal(
        first, _features(stores[1])
    )  # background workers and in-process reads agree bitwise


def test_other_checkpoint_does_not_mix_into_complete_features(stores, tiny_encoder, tmp_path):
    embed_stores(stores[:1], tiny_encoder, device="cpu", workers=0)
    other = load_encoder(
        "tiny-clip",
        checkpoint=create_random_checkpoint("tiny-clip", tmp_path / "o.safetensors", seed=5),
    )
    report = embed_stores(stores[:1], other, device="cpu", workers=0)
    assert report.results[0].status == "failed" and "--overwrite" in report.results[0].reason
    report = embed_stores(stores[:1], other, device="cpu", workers=0, overwrite=True)
    assert (
        PatchStore.open(stores[0]).feature_attrs("tiny-clip")["checkpoint_sha256"]
        == other.checkpoint_sha256
    )


def test_a_broken_store_fails_alone(stores, tiny_encoder):
    shard = sorted(
        p for p in (stores[0] / "patches").rglob("*") if p.is_file() and p.name != "zarr.json"
    )[1]
    shard.write_bytes(b"not a shard" * 100)
    report = embed_stores(stores, tiny_encoder, device="cpu", batch_size=16, workers=0)
    assert [r.status for r in report.results] == ["failed", "done", "done"]
    assert report.results[0].reason
    assert not PatchStore.open(stores[0]).has_features("tiny-clip")


class _StopAfter(StageObserver):
    """Interrupts the run after ``n`` batches, like a kill between writes."""

    def __init__(self, n):
        self.n = n

    def work_done(self, stage, slide_id, n_patches):
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_only_missing_blocks(stores, tiny_encoder, tmp_path):
    reference = tmp_path / "reference"
    shutil.copytree(stores[0].parent, reference)
    embed_stores([reference / "a.zarr"], tiny_encoder, device="cpu", batch_size=8, workers=0)
    with pytest.raises(KeyboardInterrupt):
        embed_stores(
            stores[:1], tiny_encoder, device="cpu", batch_size=8, workers=0, observer=_StopAfter(5)
        )
    assert not PatchStore.open(stores[0]).has_features("tiny-clip")
    resumed = embed_stores(stores[:1], tiny_encoder, device="cpu", batch_size=8, workers=0)
    assert (
        0 < resumed.embedded < n_patches(stores[:1])
    )  # blocks written before the interruption are kept
    np.testing.assert_allclose(
        _features(stores[0]), _features(reference / "a.zarr"), atol=1e-3, rtol=0
    )


def test_cpu_runs_in_fp32_only(stores, tiny_encoder):
    with pytest.raises(ConfigError, match="needs a GPU"):
        embed_stores(stores, tiny_encoder, device="cpu", precision="fp16")


def test_coordinate_only_store_reads_pixels_from_the_slide(tiled, tiny_encoder, tmp_path):
    from wsi_engine.tiling import PatchSource

    coords_store = shutil.copytree(tiled["none"] / "a.zarr", tmp_path / "a.zarr")
    lossless = PatchStore.open(tiled["lossless"] / "a.zarr")
    n = lossless.n_patches
    assert not PatchStore.open(coords_store).has_pixels
    expected = lossless.read_patches(0, n)
    assert np.array_equal(
        PatchSource(coords_store).read(0, n), expected
    )  # the tiling stage's own pixels
    report = embed_stores([coords_store], tiny_encoder, device="cpu", batch_size=10, workers=1)
    assert report.results[0].status == "done"
    assert PatchStore.open(coords_store).feature_attrs("tiny-clip")["source"]["pixels"] == "slide"
    with torch.inference_mode():
        direct = tiny_encoder.image(torch.from_numpy(expected)).numpy()
    np.testing.assert_allclose(_features(coords_store).astype(np.float32), direct, atol=1e-3)


def test_several_encoders_share_a_store(stores, tiny_encoder, tmp_path):
    from wsi_engine.encoders import load_encoder_config

    second = load_encoder_config("tiny-clip").model_copy(
        update={"name": "tiny-clip-2", "output": "pre_projection", "embed_dim": None}
    )
    other = load_encoder(
        second, checkpoint=create_random_checkpoint(second, tmp_path / "t2.safetensors", seed=2)
    )
    embed_stores(stores[:1], tiny_encoder, device="cpu", workers=0)
    embed_stores(stores[:1], other, device="cpu", workers=0)
    store = PatchStore.open(stores[0])
    assert store.feature_ids() == ["tiny-clip", "tiny-clip-2"]
    attrs = store.feature_attrs("tiny-clip-2")
    assert attrs["output_kind"] == "pre_projection" and attrs["text_aligned"] is False
    assert store.read_features("tiny-clip-2").shape == (
        store.n_patches,
        64,
    )  # the ViT width, before projection
