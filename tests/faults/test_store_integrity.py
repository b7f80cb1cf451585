"""Attack 1: a missing or corrupt chunk is an error (exit 5) naming slide, array and chunk, never fill values."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from wsi_engine.cli import main
from wsi_engine.errors import StoreError
from wsi_engine.store import PatchStore

from .conftest import ENCODER, chunk_files


def _flip_byte(path, at: int = 40) -> None:
    data = bytearray(path.read_bytes())
    data[min(at, len(data) - 1)] ^= 0xFF
    path.write_bytes(bytes(data))


def test_every_array_of_a_complete_store_is_sealed(world):
    from wsi_engine.store.integrity import INTEGRITY_KEY
    from wsi_engine.store.verify import verify_store

    store = PatchStore.open(world.store)
    for name in ("coords", "tissue_fraction", "patches", "thumbnail", "tissue_mask",
                 f"features/{ENCODER}", f"scores/{world.score_id}/attention"):  # fmt: skip
        record = store.root[name].attrs[INTEGRITY_KEY]
        assert record["algorithm"] == "crc32c" and record["chunks"], name
    assert verify_store(world.store) == []


def test_verify_names_a_deleted_shard_a_deleted_feature_chunk_and_a_corrupted_chunk(
    store_copy, capsys
):
    shard = chunk_files(store_copy / "patches")[1]
    feature_chunk = chunk_files(store_copy / "features" / ENCODER)[0]
    coords_chunk = chunk_files(store_copy / "coords")[0]
    shard.unlink()
    feature_chunk.unlink()
    _flip_byte(coords_chunk)
    assert main(["verify", str(store_copy.parent)]) == 5
    out = capsys.readouterr().out
    for array, chunk, what, command in (
        ("patches", shard, "missing", "wsi-engine tile"),
        (f"features/{ENCODER}", feature_chunk, "missing", "wsi-engine embed"),
        ("coords", coords_chunk, "corrupt", "wsi-engine tile"),
    ):
        key = chunk.relative_to(store_copy / array).as_posix()
        line = next(line for line in out.splitlines() if f"array {array}, chunk {key}" in line)
        assert "slide victim" in line and what in line and command in line, line


def test_embed_predict_and_heatmap_exit_5_naming_the_missing_chunk(
    world, store_copy, tiny_clip_args, tmp_path, capsys
):
    shard = chunk_files(store_copy / "patches")[1]
    feature_chunk = chunk_files(store_copy / "features" / ENCODER)[0]
    attention = chunk_files(store_copy / "scores" / world.score_id / "attention")[0]
    for path in (shard, feature_chunk, attention):
        path.unlink()
    embed = ["embed", str(store_copy), *tiny_clip_args, "--workers", "0", "--overwrite"]
    assert main(embed) == 5
    assert "array patches, chunk c/1/0/0/0 is missing" in capsys.readouterr().err
    assert not PatchStore.open(store_copy).has_features(ENCODER)  # nothing marked complete

    damaged = tmp_path / "again" / store_copy.name  # features deleted, embed not rerun
    shutil.copytree(world.store, damaged)
    chunk_files(damaged / "features" / ENCODER)[0].unlink()
    predict = ["predict", "--run", str(world.run), "--stores", str(damaged)]
    assert main([*predict, "--out", str(tmp_path / "p.csv")]) == 5
    assert f"array features/{ENCODER}, chunk c/0/0 is missing" in capsys.readouterr().err
    # embed without --overwrite: complete features with a missing chunk are not "skipped"
    assert main(["embed", str(damaged), *tiny_clip_args, "--workers", "0"]) == 5
    assert f"features/{ENCODER}, chunk c/0/0 is missing" in capsys.readouterr().err

    heatmap = ["heatmap", "--stores", str(store_copy), "--scores", world.score_id]
    assert main([*heatmap, "--out", str(tmp_path / "h"), "--formats", "geojson"]) == 5
    err = capsys.readouterr().err
    assert f"array scores/{world.score_id}/attention, chunk c/0/0 is missing" in err


def test_a_deleted_coords_chunk_stops_the_heatmap_instead_of_tiles_at_0_0(
    world, store_copy, tmp_path, capsys
):
    chunk_files(store_copy / "coords")[0].unlink()
    heatmap = ["heatmap", "--stores", str(store_copy), "--scores", world.score_id]
    assert main([*heatmap, "--out", str(tmp_path / "h"), "--formats", "geojson"]) == 5
    assert "array coords, chunk c/0/0 is missing" in capsys.readouterr().err
    assert not (tmp_path / "h" / "victim" / "tiles.geojson").exists()


def test_a_corrupted_shard_that_still_decodes_is_caught_by_its_checksum(store_copy):
    shard = chunk_files(store_copy / "patches")[0]
    data = bytearray(shard.read_bytes())
    data[600] ^= 0x01  # inside the first JPEG's entropy-coded data: decodes to other pixels
    shard.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="array patches, chunk c/0/0/0/0 is corrupt"):
        PatchStore.open(store_copy).read_patches(0, 1)


def test_reads_of_intact_chunks_still_work_beside_a_damaged_one(store_copy):
    store = PatchStore.open(store_copy)
    before = store.read_patches(0, 8)
    chunk_files(store_copy / "patches")[-1].unlink()
    with pytest.raises(StoreError, match="is missing"):
        PatchStore.open(store_copy).read_patches(0, 8)  # presence is checked on first use
    assert np.array_equal(before, store.read_patches(0, 8))  # an open reader checked it before
