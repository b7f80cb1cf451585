"""import-features / export-features: CLAM and TRIDENT files ↔ coordinate-only stores."""

from __future__ import annotations

import h5py
import numpy as np
import torch

from wsi_engine.encoders.embed import embed_stores
from wsi_engine.store import PatchStore
from wsi_engine.store.interop import export_features, import_features


def _clam_h5(path, n=30, d=24, seed=0, with_features=True):
    """A file in CLAM's layout: patches at level 1 (downsample 4) of a 0.25 µm/px slide, 256 px."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, d)).astype(np.float32)
    coords = np.stack([np.arange(n) * 1024, np.zeros(n)], axis=1).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        if with_features:
            handle.create_dataset("features", data=features)
        data = handle.create_dataset("coords", data=coords)
        data.attrs.update(
            {
                "patch_level": 1,
                "patch_size": 256,
                "downsample": np.array([4.0, 4.0]),
                "level_dim": np.array([8000, 500]),
                "name": path.stem,
            }
        )
    return features, coords


def test_clam_h5_imports_into_a_store_fit_can_use(tmp_path):
    features, coords = _clam_h5(tmp_path / "feat" / "h5_files" / "slide-1.h5")
    _clam_h5(tmp_path / "feat" / "h5_files" / "slide-2.h5", seed=1)
    results = import_features([tmp_path / "feat"], tmp_path / "stores", "conch_ViT-B-16", mpp=0.25)
    assert [r.status for r in results] == ["done", "done"]
    store = PatchStore.open(tmp_path / "stores" / "slide-1.zarr")
    assert store.n_patches == 30 and np.array_equal(store.coords(), coords)
    assert store.patch_size == 256 and store.patch_size_level0 == 1024.0 and store.target_mpp == 1.0
    assert store.slide_dimensions == (32000, 2000) and not store.has_pixels
    np.testing.assert_allclose(store.read_features("conch_ViT-B-16"), features, atol=2e-3)
    attrs = store.feature_attrs("conch_ViT-B-16")
    assert (
        attrs["output_kind"] == "pre_projection"
        and attrs["text_aligned"] is False
        and attrs["complete"]
    )

    from wsi_engine.mil.data import build_cohort
    from wsi_engine.training.stores import read_bag

    cohort = build_cohort(
        {"slide-1": "tumor", "slide-2": "normal"},
        [tmp_path / "stores"],
        "conch_ViT-B-16",
        ["normal", "tumor"],
        "test",
    )
    assert cohort.feature_dim == 24 and len(cohort.slides) == 2
    assert read_bag(store.path, "conch_ViT-B-16").shape == (30, 24)


def test_pt_features_take_coordinates_from_the_patches_file(tmp_path):
    _, coords = _clam_h5(tmp_path / "clam" / "patches" / "s3.h5", with_features=False)
    values = torch.randn(30, 16)
    (tmp_path / "clam" / "pt_files").mkdir()
    torch.save(values, tmp_path / "clam" / "pt_files" / "s3.pt")
    torch.save(torch.randn(5, 16), tmp_path / "clam" / "pt_files" / "lonely.pt")
    results = {
        r.slide_id: r
        for r in import_features(
            [tmp_path / "clam" / "pt_files"], tmp_path / "out", "uni", mpp=0.25
        )
    }
    assert results["s3"].status == "done"
    assert np.array_equal(PatchStore.open(tmp_path / "out" / "s3.zarr").coords(), coords)
    assert (
        results["lonely"].status == "failed"
        and "coordinates file was not found" in results["lonely"].reason
    )


def test_missing_mpp_is_a_clear_per_file_failure(tmp_path):
    _clam_h5(tmp_path / "a.h5")
    (result,) = import_features([tmp_path / "a.h5"], tmp_path / "out", "x")
    assert result.status == "failed" and "µm/px is unknown" in result.reason


def test_export_then_import_round_trip(tmp_path, tiny_encoder):
    from .conftest import make_store

    store = make_store(tmp_path / "stores", "r1", 20)
    embed_stores([store], tiny_encoder, device="cpu", workers=0)
    (exported,) = export_features([store], "tiny-clip", tmp_path / "h5")
    with h5py.File(exported, "r") as handle:
        assert handle["features"].shape == (20, 32) and handle["coords"].attrs["patch_size"] == 64
    (result,) = import_features([exported], tmp_path / "back", "tiny-clip", output_kind="joint")
    back = PatchStore.open(result.store)
    original = PatchStore.open(store)
    assert np.array_equal(back.coords(), original.coords())
    assert np.array_equal(back.read_features("tiny-clip"), original.read_features("tiny-clip"))
    assert (
        back.target_mpp == original.target_mpp and back.feature_attrs("tiny-clip")["text_aligned"]
    )
