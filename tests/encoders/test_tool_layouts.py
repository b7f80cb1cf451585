"""import-features on files laid out exactly as CLAM and TRIDENT write them.

The fixtures follow the tools' documented layouts (dataset names, dtypes and
attributes, docs/interop.md); none of their code is used.
"""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch

from wsi_engine.store import PatchStore
from wsi_engine.store.interop import import_features

N, D = 12, 24


def _grid(n: int, step: int) -> np.ndarray:
    """Level-0 top-left corners of a 4-column patch grid with ``step`` px between patches."""
    return np.stack([np.arange(n) % 4 * step, np.arange(n) // 4 * step], axis=1)


def _features(seed: int, d: int = D, n: int = N) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def clam_h5_files(feat_dir, slide_id: str, coords: np.ndarray, seed: int = 0) -> np.ndarray:
    """CLAM's extract_features_fp output: h5_files/<id>.h5 with float32 features, int32 coords, no attributes."""
    features = _features(seed, n=len(coords))
    (feat_dir / "h5_files").mkdir(parents=True, exist_ok=True)
    with h5py.File(feat_dir / "h5_files" / f"{slide_id}.h5", "w") as handle:
        handle.create_dataset("features", data=features)
        handle.create_dataset("coords", data=coords.astype(np.int32))
    return features


def clam_patches(save_dir, slide_id: str, coords: np.ndarray, level: int, size: int, ds: float):
    """CLAM's create_patches_fp output: patches/<id>.h5, coords with patch_level, patch_size, downsample..."""
    (save_dir / "patches").mkdir(parents=True, exist_ok=True)
    with h5py.File(save_dir / "patches" / f"{slide_id}.h5", "w") as handle:
        data = handle.create_dataset("coords", data=coords.astype(np.int64))
        data.attrs.update(
            {
                "patch_size": size,
                "patch_level": level,
                "downsample": np.array([ds, ds]),
                "downsampled_level_dim": np.array([4000, 3000]),
                "level_dim": np.array([4000, 3000]),
                "name": slide_id,
                "save_path": str(save_dir / "patches"),
            }
        )


TRIDENT_ATTRS = {  # 256 px at 20x from a 40x (0.25 µm/px) slide: 512 level-0 px
    "patch_size": 256,
    "patch_size_level0": 512,
    "level0_magnification": 40,
    "target_magnification": 20,
    "overlap": 0,
    "level0_width": 4096,
    "level0_height": 2048,
}


def trident_patches(job_dir, slide_id: str, coords: np.ndarray):
    """TRIDENT's coords task: <job>/20x_256px_0px_overlap/patches/<id>_patches.h5."""
    folder = job_dir / "20x_256px_0px_overlap" / "patches"
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / f"{slide_id}_patches.h5", "w") as handle:
        data = handle.create_dataset("coords", data=coords.astype(np.int64))
        data.attrs.update({**TRIDENT_ATTRS, "name": slide_id, "savetodir": str(job_dir)})


def trident_h5(job_dir, folder: str, slide_id: str, coords, encoder: str | None, seed: int, d=D):
    """TRIDENT's feat task (saveas h5): features with name/savetodir/encoder, coords with the patch attributes."""
    features = _features(seed, d, len(coords))
    target = job_dir / "20x_256px_0px_overlap" / folder
    target.mkdir(parents=True, exist_ok=True)
    with h5py.File(target / f"{slide_id}.h5", "w") as handle:
        data = handle.create_dataset("features", data=features)
        data.attrs.update(
            {"name": slide_id, "savetodir": str(target), "encoder": encoder or "None"}
        )
        handle.create_dataset("coords", data=coords.astype(np.int64)).attrs.update(
            {**TRIDENT_ATTRS, "name": slide_id, "savetodir": str(job_dir)}
        )
    return features


# ----------------------------------------------------------------------------------------- CLAM
def test_clam_h5_without_attributes_needs_geometry_and_names_the_options(tmp_path):
    coords = _grid(N, 256)
    clam_h5_files(tmp_path / "feat", "s1", coords)
    (failed,) = import_features([tmp_path / "feat"], tmp_path / "a", "uni", mpp=0.5)
    assert failed.status == "failed"
    for option in ("--patch-size", "--patch-level", "--slides"):
        assert option in failed.reason
    (level1,) = import_features(
        [tmp_path / "feat"], tmp_path / "b", "uni", mpp=0.5, patch_size=256, patch_level=1
    )
    assert level1.status == "failed" and "--slides" in level1.reason  # level 1's downsample

    clam_patches(tmp_path / "other", "s1", _grid(N, 512), level=0, size=512, ds=1.0)  # another run
    (mismatch,) = import_features(
        [tmp_path / "feat"], tmp_path / "d", "uni", mpp=0.5, coords=[tmp_path / "other" / "patches"]
    )
    assert mismatch.status == "failed" and "--patch-size" in mismatch.reason
    assert any("not used (other coordinates)" in note for note in mismatch.notes)

    (done,) = import_features([tmp_path / "feat"], tmp_path / "c", "uni", mpp=0.5, patch_size=256)
    store = PatchStore.open(done.store)
    assert done.status == "done" and np.array_equal(store.coords(), coords)
    assert store.patch_size == 256 and store.patch_size_level0 == 256.0 and store.target_mpp == 0.5


def test_clam_h5_geometry_derived_from_the_slide(tmp_path):
    from wsi_engine.synthetic import generate_slide

    slides = tmp_path / "slides"
    slides.mkdir()
    generate_slide(slides / "s2.tiff", width=1024, height=768, mpp=0.5, seed=1)
    coords = _grid(8, 128)  # CLAM patch_size 32 at level 1 (downsample 4): a 128 level-0 px step
    features = clam_h5_files(tmp_path / "feat", "s2", coords)
    (result,) = import_features(
        [tmp_path / "feat"], tmp_path / "out", "uni", slides=slides, patch_level=1
    )
    assert result.status == "done", result.reason
    assert any("derived from the coordinate grid" in note for note in result.notes)
    store = PatchStore.open(result.store)
    assert store.patch_size == 32 and store.patch_size_level0 == 128.0
    assert store.target_mpp == pytest.approx(2.0) and store.slide_dimensions == (1024, 768)
    assert store.slide_path == (slides / "s2.tiff").resolve()
    np.testing.assert_allclose(store.read_features("uni"), features, atol=2e-3)


def test_clam_pt_files_take_coordinates_and_attributes_from_patches(tmp_path):
    """RESULTS/patches (attributes) and FEATURES/{h5_files (no attributes), pt_files}, as CLAM's README runs it."""
    coords = _grid(N, 1024)
    clam_patches(tmp_path / "results", "s3", coords, level=1, size=256, ds=4.0)
    feat = tmp_path / "features"
    h5_features = clam_h5_files(feat, "s3", coords)
    (feat / "pt_files").mkdir()
    values = torch.from_numpy(h5_features)
    torch.save(values, feat / "pt_files" / "s3.pt")

    # the pt files alone: coordinates from ../h5_files, patch attributes from --coords (RESULTS/patches)
    (result,) = import_features(
        [feat / "pt_files"], tmp_path / "out", "uni", mpp=0.25, coords=[tmp_path / "results" / "patches"]
    )  # fmt: skip
    assert result.status == "done", result.reason
    store = PatchStore.open(result.store)
    assert np.array_equal(store.coords(), coords)
    assert store.patch_size == 256 and store.patch_size_level0 == 1024.0
    assert store.target_mpp == pytest.approx(1.0) and store.slide_dimensions == (16000, 12000)
    np.testing.assert_allclose(store.read_features("uni"), values.numpy(), atol=2e-3)
    # the whole feature folder: the h5 is preferred to its .pt twin, and the same attributes are found
    (both,) = import_features(
        [feat], tmp_path / "out2", "uni", mpp=0.25, coords=[tmp_path / "results" / "patches"]
    )
    assert both.status == "done" and both.source.endswith("h5_files/s3.h5")
    assert PatchStore.open(both.store).patch_size_level0 == 1024.0


def test_clam_pt_beside_patches_in_one_results_folder(tmp_path):
    """feat_dir = save_dir: pt_files/ next to patches/ (no h5_files): found without options."""
    coords = _grid(N, 512)
    clam_patches(tmp_path / "run", "s4", coords, level=0, size=512, ds=1.0)
    (tmp_path / "run" / "pt_files").mkdir()
    torch.save(torch.randn(N, 8), tmp_path / "run" / "pt_files" / "s4.pt")
    (result,) = import_features([tmp_path / "run" / "pt_files"], tmp_path / "out", "r50", mpp=0.5)
    assert result.status == "done", result.reason
    assert PatchStore.open(result.store).patch_size_level0 == 512.0


# -------------------------------------------------------------------------------------- TRIDENT
def test_trident_h5_imports_with_its_field_of_view(tmp_path):
    coords = _grid(N, 512)
    features = trident_h5(tmp_path / "job", "features_uni_v1", "s5", coords, "uni_v1", 0)
    (result,) = import_features([tmp_path / "job"], tmp_path / "out", "uni_v1")
    assert result.status == "done", result.reason
    store = PatchStore.open(result.store)
    assert store.patch_size == 256 and store.patch_size_level0 == 512.0
    assert store.target_mpp == pytest.approx(0.5)  # 20x in TRIDENT's 10x = 1 µm/px convention
    assert store.slide_dimensions == (4096, 2048)
    np.testing.assert_allclose(store.read_features("uni_v1"), features, atol=2e-3)
    assert store.feature_attrs("uni_v1")["encoder"]["source_encoder"] == "uni_v1"


def test_trident_pt_numpy_payload_is_read_without_unrestricted_unpickling(tmp_path):
    job = tmp_path / "job"
    coords = _grid(N, 512)
    trident_patches(job, "s6", coords)
    folder = job / "20x_256px_0px_overlap" / "features_conch_v15"
    folder.mkdir(parents=True)
    features = _features(3, 16)
    torch.save(features, folder / "s6.pt")  # TRIDENT saves the numpy array as it is
    (result,) = import_features([folder], tmp_path / "out", "conch_v15", dtype="float32")
    assert result.status == "done", result.reason
    store = PatchStore.open(result.store)
    assert np.array_equal(store.read_features("conch_v15"), features)
    assert store.patch_size_level0 == 512.0 and np.array_equal(store.coords(), coords)


class _Payload:
    def __reduce__(self):
        import os

        return (os.mkdir, (self.path,))


def test_a_pt_file_carrying_code_is_refused_and_never_run(tmp_path):
    job = tmp_path / "job"
    trident_patches(job, "s7", _grid(N, 512))
    folder = job / "20x_256px_0px_overlap" / "features_x"
    folder.mkdir(parents=True)
    payload = _Payload()
    payload.path = str(tmp_path / "pwned")
    with open(folder / "s7.pt", "wb") as handle:
        # a plain pickle: torch.load would run it if unrestricted
        pickle.dump(payload, handle, protocol=2)
    torch.save({"features": payload}, folder / "s8.pt")
    results = import_features([folder], tmp_path / "out", "x")
    assert [r.status for r in results] == ["failed", "failed"]
    assert all("cannot read the .pt file safely" in r.reason for r in results)
    assert not (tmp_path / "pwned").exists()


def test_two_encoder_job_is_chosen_by_the_files_encoder_attribute(tmp_path):
    job = tmp_path / "job"
    coords = _grid(N, 512)
    # folder names that do not tell: the encoder attribute decides
    uni = trident_h5(job, "features_a", "s9", coords, "uni_v1", 0, d=32)
    conch = trident_h5(job, "features_b", "s9", coords, "conch_v15", 1, d=16)
    (result,) = import_features([job], tmp_path / "out", "conch_v15", dtype="float32")
    assert result.status == "done", result.reason
    assert np.array_equal(PatchStore.open(result.store).read_features("conch_v15"), conch)

    (refused,) = import_features([job], tmp_path / "out2", "conch_ViT-B-16")
    assert refused.status == "failed"
    assert "2 encoders" in refused.reason and "uni_v1" in refused.reason
    assert "conch_v15" in refused.reason and "--source-encoder" in refused.reason
    assert not (tmp_path / "out2" / "s9.zarr").exists()

    (renamed,) = import_features(
        [job], tmp_path / "out3", "uni", source_encoder="uni_v1", dtype="float32"
    )
    assert renamed.status == "done" and any("'uni_v1' stored as 'uni'" in n for n in renamed.notes)
    assert np.array_equal(PatchStore.open(renamed.store).read_features("uni"), uni)
    (missing,) = import_features([job], tmp_path / "out4", "x", source_encoder="virchow")
    assert missing.status == "failed" and "no features of encoder 'virchow'" in missing.reason


def test_trident_empty_slide_is_a_clear_failure(tmp_path):
    """TRIDENT saves (0,) features and (0, 2) coords for a slide without tissue."""
    job = tmp_path / "job"
    trident_patches(job, "empty", np.empty((0, 2), np.int64))
    folder = job / "20x_256px_0px_overlap" / "features_uni_v1"
    folder.mkdir(parents=True)
    torch.save(np.empty((0,), np.float32), folder / "empty.pt")
    (result,) = import_features([folder], tmp_path / "out", "uni_v1")
    assert result.status == "failed" and "holds no patches" in result.reason


def test_two_runs_of_one_encoder_are_refused_as_ambiguous(tmp_path):
    coords = _grid(N, 512)
    trident_h5(tmp_path / "job1", "features_uni_v1", "s10", coords, "uni_v1", 0)
    trident_h5(tmp_path / "job2", "features_uni_v1", "s10", coords, "uni_v1", 1)
    (result,) = import_features([tmp_path], tmp_path / "out", "uni_v1")
    assert result.status == "failed" and "2 feature files for slide s10" in result.reason
    assert "job1" in result.reason and "job2" in result.reason


def test_cli_imports_clam_h5_with_patch_size(tmp_path, capsys):
    from wsi_engine.cli import main

    clam_h5_files(tmp_path / "feat", "s11", _grid(N, 256))
    common = ["import-features", str(tmp_path / "feat"), "--encoder-id", "uni", "--mpp", "0.5"]
    assert main([*common, "--out", str(tmp_path / "out"), "--patch-size", "256"]) == 0
    assert PatchStore.open(tmp_path / "out" / "s11.zarr").patch_size == 256
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "out2")]) == 1
    assert "--patch-size" in capsys.readouterr().err
