"""export-features --layout clam|trident, read back as each tool's loader reads it, and imported back.

The loaders below re-implement the tools' documented reading logic (no code
of theirs): CLAM reads ``patch_size`` px at pyramid level ``patch_level`` of
the slide from the patching file's ``coords`` attributes; TRIDENT reads
``patch_size · level0_magnification / target_magnification`` level-0 px and
resizes them to ``patch_size``.
"""

from __future__ import annotations

import h5py
import numpy as np
import openslide
import pytest
import torch
from PIL import Image

from wsi_engine.encoders.embed import embed_stores
from wsi_engine.store import PatchStore
from wsi_engine.store.interop import export_features, import_features

SLIDE_MPP = 0.25  # the stores are resampled: 64-px patches at 0.5 µm/px read from level 0 (128 px)


@pytest.fixture(scope="module")
def resampled_store(tmp_path_factory, tiny_encoder):
    """A real tiled store (lossless pixels) of a synthetic 0.25 µm/px slide at 0.5 µm/px, tiny-CLIP features."""
    from distributed import Client

    from wsi_engine.synthetic import generate_slide
    from wsi_engine.tiling import TilingConfig, tile_slides

    root = tmp_path_factory.mktemp("export")
    slide = root / "slide-r.tiff"
    generate_slide(slide, width=1536, height=1024, mpp=SLIDE_MPP, seed=2)
    config = TilingConfig(patch_size=64, target_mpp=0.5, pixel_mode="lossless", shard_patches=64)
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
        (result,) = tile_slides([slide], root / "stores", config, scheduler=c).results
    assert result.status == "ok", result.reason
    embed_stores([result.store], tiny_encoder, device="cpu", workers=0, dtype="float32")
    return PatchStore.open(result.store), slide


def _resized(region: Image.Image, size: int) -> np.ndarray:
    return np.asarray(region.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))


def clam_loader(feat_dir, patches_h5, slide, slide_id, rows):
    """CLAM: features from pt_files (weights-only torch.load) and h5_files; patches from the patching file."""
    features = torch.load(feat_dir / "pt_files" / f"{slide_id}.pt", weights_only=True).numpy()
    with h5py.File(feat_dir / "h5_files" / f"{slide_id}.h5", "r") as handle:
        h5_features, h5_coords = handle["features"][:], handle["coords"][:]
    with h5py.File(patches_h5, "r") as handle:
        coords = handle["coords"][:]
        level = int(handle["coords"].attrs["patch_level"])
        size = int(handle["coords"].attrs["patch_size"])
    with openslide.OpenSlide(str(slide)) as wsi:
        regions = [
            wsi.read_region(tuple(int(v) for v in coords[i]), level, (size, size)) for i in rows
        ]
        field0 = size * wsi.level_downsamples[level]
    return features, h5_features, h5_coords, regions, field0


def trident_loader(features_h5, slide, rows):
    """TRIDENT: coords attributes give the level-0 read size; regions are resized to patch_size."""
    with h5py.File(features_h5, "r") as handle:
        features, coords = handle["features"][:], handle["coords"][:]
        attrs = dict(handle["coords"].attrs)
        encoder = handle["features"].attrs["encoder"]
    size = int(attrs["patch_size"])
    field0 = size * float(attrs["level0_magnification"]) / float(attrs["target_magnification"])
    with openslide.OpenSlide(str(slide)) as wsi:
        side = int(round(field0))
        regions = [wsi.read_region(tuple(int(v) for v in coords[i]), 0, (side, side)) for i in rows]
    return features, coords, attrs, encoder, regions, field0, size


def _pixel_error(regions, store: PatchStore, rows) -> float:
    stored = store.read_patches(0, store.n_patches)[rows].astype(np.float64)
    read = np.stack([_resized(r, store.patch_size) for r in regions]).astype(np.float64)
    return float(np.abs(read - stored).mean())


def test_clam_layout_is_read_by_clams_loader_with_the_true_field_of_view(resampled_store, tmp_path):
    store, slide = resampled_store
    rows = list(range(0, store.n_patches, max(1, store.n_patches // 6)))
    (h5_file,) = export_features([store.path], "tiny-clip", tmp_path, layout="clam")
    assert h5_file == tmp_path / "h5_files" / f"{store.slide_id}.h5"
    features, h5_features, h5_coords, regions, field0 = clam_loader(
        tmp_path, tmp_path / "patches" / f"{store.slide_id}.h5", slide, store.slide_id, rows
    )
    original = store.read_features("tiny-clip")
    assert features.dtype == np.float32 and np.array_equal(features, original)
    assert np.array_equal(h5_features, original) and np.array_equal(h5_coords, store.coords())
    assert store.patch_size_level0 == 128.0 and field0 == 128.0  # 32 µm, not the 16 µm of 64 px
    assert _pixel_error(regions, store, rows) < 2.0
    # what the old export told CLAM (patch_size 64 at level 0) reads other pixels
    with openslide.OpenSlide(str(slide)) as wsi:
        wrong = [
            wsi.read_region(tuple(int(v) for v in store.coords()[i]), 0, (64, 64)) for i in rows
        ]
    assert _pixel_error(wrong, store, rows) > 10.0


def test_trident_layout_is_read_by_tridents_loader_with_the_true_field_of_view(
    resampled_store, tmp_path
):
    store, slide = resampled_store
    rows = list(range(0, store.n_patches, max(1, store.n_patches // 6)))
    (h5_file,) = export_features([store.path], "tiny-clip", tmp_path, layout="trident")
    job = tmp_path / "20x_64px_0px_overlap"
    assert h5_file == job / "features_tiny-clip" / f"{store.slide_id}.h5"
    assert (job / "patches" / f"{store.slide_id}_patches.h5").is_file()
    features, coords, attrs, encoder, regions, field0, size = trident_loader(h5_file, slide, rows)
    assert encoder == "tiny-clip" and np.array_equal(coords, store.coords())
    assert np.array_equal(features, store.read_features("tiny-clip"))
    assert attrs["level0_magnification"] == pytest.approx(40.0)
    assert attrs["target_magnification"] == pytest.approx(20.0)
    assert size == 64 and field0 == pytest.approx(128.0) and attrs["patch_size_level0"] == 128
    assert (attrs["level0_width"], attrs["level0_height"]) == store.slide_dimensions
    assert _pixel_error(regions, store, rows) < 2.0


@pytest.mark.parametrize("layout", ["clam", "trident", "flat"])
def test_export_then_import_is_bit_exact_and_keeps_text_alignment(
    resampled_store, tmp_path, layout
):
    store, _ = resampled_store
    export_features([store.path], "tiny-clip", tmp_path / "files", layout=layout)
    (result,) = import_features([tmp_path / "files"], tmp_path / "back", "tiny-clip")
    assert result.status == "done", result.reason
    back = PatchStore.open(result.store)
    original = store.feature_attrs("tiny-clip")
    assert back.feature_array("tiny-clip").dtype == np.float32
    assert np.array_equal(back.read_features("tiny-clip"), store.read_features("tiny-clip"))
    attrs = back.feature_attrs("tiny-clip")
    assert attrs["output_kind"] == original["output_kind"] == "joint" and attrs["text_aligned"]
    assert attrs["checkpoint_sha256"] == original["checkpoint_sha256"]
    assert attrs["preprocessing"] == original["preprocessing"]
    assert np.array_equal(back.coords(), store.coords())
    assert (back.patch_size, back.patch_size_level0, back.target_mpp) == (
        store.patch_size, store.patch_size_level0, store.target_mpp,
    )  # fmt: skip
    assert back.slide_path == store.slide_path and back.slide_dimensions == store.slide_dimensions


def test_export_command_layouts_and_a_bad_layout(resampled_store, tmp_path, capsys):
    from wsi_engine.cli import main

    store, _ = resampled_store
    common = ["export-features", str(store.path), "--encoder", "tiny-clip"]
    assert main([*common, "--out", str(tmp_path / "c"), "--layout", "clam"]) == 0
    assert (tmp_path / "c" / "pt_files" / f"{store.slide_id}.pt").is_file()
    assert main([*common, "--out", str(tmp_path / "x"), "--layout", "stamp"]) == 3
    assert "unknown layout 'stamp'" in capsys.readouterr().err
