"""Atomic, resumable stores: kill -9 mid-slide then rerun; the writer's resume rules."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from wsi_engine.cli import main
from wsi_engine.errors import StoreError
from wsi_engine.store import PatchStore
from wsi_engine.store.layout import partial_store_path, store_path
from wsi_engine.store.writer import StoreWriter

from ..cli_args import cli_args

OPTIONS = ["--pixels", "lossless", "--overlap", "128", "--shard-patches", "2"]


def _marked(partial) -> int:
    markers = partial / "_progress" / "shards" / "c"
    return sum(1 for f in markers.rglob("*") if f.is_file()) if markers.is_dir() else 0


def _report_row(out) -> dict[str, str]:
    (row,) = csv.DictReader(open(out / "tiling_report.csv"))
    return row


def test_a_killed_run_resumes_into_the_same_store(synthetic_slide, dask_cluster, tmp_path):
    slide = synthetic_slide[0]
    killed = tmp_path / "killed"
    partial = partial_store_path(killed, "synthetic-a")
    command = [sys.executable, "-m", "wsi_engine", *cli_args("tile", slide, out=killed, workers=1)]
    process = subprocess.Popen(
        [*command, *OPTIONS],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while _marked(partial) < 1:  # kill as soon as one shard is done: the widest window
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no shard was written in time"
            time.sleep(0.002)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the run and its Dask worker processes
        process.wait()
    done_before = _marked(partial)
    assert not store_path(killed, "synthetic-a").exists()

    args = ["tile", str(slide), "--scheduler", dask_cluster, *OPTIONS]
    assert main([*args, "--out", str(killed)]) == 0  # also takes over the dead run's lock
    resumed = _report_row(killed)
    assert resumed["status"] == "ok"
    n_patches, new_patches = int(resumed["n_patches"]), int(resumed["new_patches"])
    # the marked shards (2 patches each, the last maybe 1) are not written again
    assert new_patches <= n_patches - 2 * done_before + 1
    assert new_patches < n_patches

    reference = tmp_path / "reference"
    assert main([*args, "--out", str(reference)]) == 0
    a = PatchStore.open(store_path(killed, "synthetic-a"))
    b = PatchStore.open(store_path(reference, "synthetic-a"))
    assert np.array_equal(a.coords(), b.coords())
    assert np.array_equal(a.read_patches(0, a.n_patches), b.read_patches(0, b.n_patches))
    shards = sorted(
        p.relative_to(a.path) for p in (a.path / "patches" / "c").rglob("*") if p.is_file()
    )
    assert len(shards) == -(-n_patches // 2)
    assert all((a.path / s).read_bytes() == (b.path / s).read_bytes() for s in shards)
    assert "_progress" not in a.root and not partial.exists()


def _attrs(fingerprint="sha256:1", patch_size=64):
    return {
        "slide": {"id": "s", "fingerprint": fingerprint, "dimensions": [128, 128]},
        "tiling": {
            "patch_size": patch_size,
            "target_mpp": 0.5,
            "patch_size_level0": float(patch_size),
            "pixel_mode": "lossless",
            "shard_patches": 2,
        },
        "tissue": {"source": "detected"},
    }


COORDS = np.array([[0, 0], [64, 0], [0, 64]])


def _start(out, attrs=None, coords=COORDS) -> StoreWriter:
    writer = StoreWriter.open_or_create(out, "s", attrs or _attrs(), coords, np.ones(len(coords)))
    writer.create_patches(64, "lossless", 90, 2)
    return writer


def test_resume_only_with_the_same_slide_parameters_and_coordinates(tmp_path):
    first = _start(tmp_path)
    first.shard_progress(2).mark_done(0)
    assert not first.resumed
    same = _start(tmp_path)
    assert same.resumed and same.shard_progress(2).remaining() == [1]
    for changed in (
        {"attrs": _attrs(fingerprint="sha256:2")},
        {"attrs": _attrs(patch_size=32)},
        {"coords": COORDS + 1},
    ):
        _start(tmp_path).shard_progress(2).mark_done(0)
        other = _start(tmp_path, **changed)
        assert not other.resumed and other.shard_progress(2).remaining() == [0, 1], changed


def test_a_patch_array_with_other_codecs_is_recreated_and_its_markers_reset(tmp_path):
    writer = _start(tmp_path)
    writer.shard_progress(2).mark_done(0)
    again = StoreWriter.open_or_create(tmp_path, "s", _attrs(), COORDS, np.ones(3))
    array = again.create_patches(64, "jpeg", 80, 2)
    assert (
        array.metadata.to_dict()["codecs"][0]["configuration"]["codecs"][0]["name"]
        == "wsi_engine.jpeg"
    )
    assert again.shard_progress(2).remaining() == [0, 1]


def test_a_partial_store_with_broken_metadata_is_started_again(tmp_path):
    _start(tmp_path).shard_progress(2).mark_done(1)
    (partial_store_path(tmp_path, "s") / "zarr.json").write_text("{ truncated")
    writer = _start(tmp_path)
    assert not writer.resumed and writer.shard_progress(2).remaining() == [0, 1]


def test_finalize_replaces_a_complete_store_in_one_rename(tmp_path):
    old = _start(tmp_path)
    old.root["patches"][:] = 1
    old.finalize()
    new = _start(tmp_path)
    new.root["patches"][:] = 2
    final = new.finalize()
    assert final == store_path(tmp_path, "s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]
    assert (zarr.open_array(str(final / "patches"))[:] == 2).all()
    with pytest.raises(StoreError, match="cannot reopen"):
        StoreWriter.reopen(tmp_path, "s")
