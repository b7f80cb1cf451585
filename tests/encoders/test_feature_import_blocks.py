"""import-features copies features in row blocks: block edges, (1, N, D) files and .pt files give the file's rows."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from wsi_engine.errors import DataError
from wsi_engine.store import PatchStore
from wsi_engine.store.interop import export, importer
from wsi_engine.store.interop.files import FeatureRows, read_pt_features

N, D = 23, 5


def _grid(n: int, step: int = 256) -> np.ndarray:
    return np.stack([np.arange(n) % 5 * step, np.arange(n) // 5 * step], axis=1)


def _write_h5(path, features: np.ndarray, coords: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("features", data=features)
        handle.create_dataset("coords", data=coords).attrs["patch_size"] = 256


@pytest.mark.parametrize("leading", [False, True], ids=["N-D", "1-N-D"])
def test_rows_across_block_edges_are_the_file_s(tmp_path, monkeypatch, leading):
    monkeypatch.setattr(importer, "READ_ROWS", 8)  # blocks of 8 rows: 0-8, 8-16, 16-23
    features = np.random.default_rng(0).normal(size=(N, D)).astype(np.float32)
    _write_h5(tmp_path / "feat" / "s1.h5", features[None] if leading else features, _grid(N))
    (result,) = importer.import_features(
        [tmp_path / "feat"], tmp_path / "out", "enc", mpp=0.5, dtype="float32", shard_patches=4
    )
    assert result.status == "done", result.reason
    store = PatchStore.open(result.store)
    np.testing.assert_array_equal(store.read_features("enc"), features)
    assert store.feature_array("enc").chunks == (4, D)  # chunked like embedded features


def test_blocks_of_a_pt_file_and_of_a_bad_file(tmp_path):
    features = np.arange(N * D, dtype=np.int64).reshape(N, D)
    torch.save(torch.from_numpy(features), tmp_path / "s.pt")
    array = read_pt_features(tmp_path / "s.pt")
    rows = FeatureRows(tmp_path / "s.pt", array.shape, array.dtype, array)
    blocks = list(rows.blocks(10))
    assert [start for start, _ in blocks] == [0, 10, 20]
    assert all(block.dtype == np.float32 for _, block in blocks)
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), features)
    with pytest.raises(DataError, match="must be numbers"):
        FeatureRows(tmp_path / "x.h5", (N, D), np.dtype("S4")).check()
    with pytest.raises(DataError, match="no patches"):
        FeatureRows(tmp_path / "x.h5", (0, D), np.dtype("float32")).check()


def test_export_in_blocks_reads_back_the_same_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "READ_ROWS", 8)
    monkeypatch.setattr(export, "READ_ROWS", 5)  # 23 rows: blocks 0-5, ..., 20-23
    features = np.random.default_rng(1).normal(size=(N, D)).astype(np.float32)
    _write_h5(tmp_path / "feat" / "s1.h5", features, _grid(N))
    (result,) = importer.import_features(
        [tmp_path / "feat"], tmp_path / "a", "enc", mpp=0.5, dtype="float32", shard_patches=4
    )
    for layout in ("flat", "clam"):
        (written,) = export.export_features([result.store], "enc", tmp_path / layout, layout)
        with h5py.File(written, "r") as handle:
            np.testing.assert_array_equal(handle["features"][:], features)
    np.testing.assert_array_equal(torch.load(tmp_path / "clam" / "pt_files" / "s1.pt"), features)
