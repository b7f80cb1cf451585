"""``embed`` on a Dask cluster: one task per store over every worker, relative paths, worker checks,
a worker killed mid-embedding."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import numpy as np
import pytest

from wsi_engine.cli import main
from wsi_engine.cluster.embed import embed_on_cluster
from wsi_engine.dask_workers import check_paths, gpu_resources, warn_small_trim_threshold
from wsi_engine.encoders.embed import embed_stores
from wsi_engine.errors import OutputError
from wsi_engine.store import PatchStore

from .conftest import make_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 single-thread worker processes (Dask's default worker environment)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as local,
        Client(local) as client,
    ):
        yield client


def _stores(folder, n_stores=4, n=48):
    return [make_store(folder, f"s{i}", n + 8 * i, seed=i) for i in range(n_stores)]


def _local_features(stores, tiny_encoder):
    report = embed_stores(
        stores, tiny_encoder, device="cpu", batch_size=16, workers=0, overwrite=True
    )
    assert not report.failed
    return {p.name: PatchStore.open(p).read_features("tiny-clip") for p in stores}


def test_embed_spreads_stores_over_both_workers_and_equals_a_local_run(
    cluster, tiny_checkpoint, tiny_encoder, tmp_path
):
    from distributed import get_task_stream

    stores = _stores(tmp_path / "stores")
    command = ["embed", str(tmp_path / "stores"), "--encoder", "tiny-clip"]
    command += ["--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--batch-size", "16"]
    with get_task_stream(cluster) as stream:
        assert main([*command, "--scheduler", cluster.scheduler.address]) == 0
    workers = {t["worker"] for t in stream.data if t["key"].startswith("embed-")}
    assert len(workers) == 2  # both workers ran embedding tasks
    assert len([t for t in stream.data if t["key"].startswith("embed-")]) == len(stores)
    on_cluster = {p.name: PatchStore.open(p).read_features("tiny-clip") for p in stores}
    expected = _local_features(stores, tiny_encoder)
    for name, features in on_cluster.items():
        np.testing.assert_allclose(features, expected[name], atol=1e-3)


def test_relative_paths_work_from_another_folder(cluster, tiny_checkpoint, tmp_path, monkeypatch):
    stores = _stores(tmp_path / "data" / "stores", n_stores=2, n=20)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the workers were started in another folder
    report = embed_on_cluster(
        cluster,
        ["../data/stores"],
        "tiny-clip",
        checkpoint=os.path.relpath(tiny_checkpoint),
        device="cpu",
        batch_size=16,
    )
    assert [r.status for r in report.results] == ["done", "done"]
    assert all(PatchStore.open(p).has_features("tiny-clip") for p in stores)


def test_a_worker_that_cannot_see_a_path_is_named(cluster, tmp_path):
    missing = tmp_path / "not-mounted" / "x.svs"
    with pytest.raises(OutputError, match=r"worker tcp://\S+ cannot read .*not-mounted/x\.svs"):
        check_paths(cluster, [missing])
    check_paths(cluster, [tmp_path], [tmp_path])  # visible and writable: no error


def test_small_malloc_trim_threshold_is_warned_about(cluster, caplog):
    with caplog.at_level(logging.WARNING, logger="wsi_engine.dask_workers"):
        small = warn_small_trim_threshold(cluster)  # Dask's worker default: 65536
    assert len(small) == 2 and "65536" in small[0]
    assert "MALLOC_TRIM_THRESHOLD_" in caplog.text


def test_gpu_workers_are_recognised_by_their_resource():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, processes=False, resources={"GPU": 1}, dashboard_address=":0"
        ) as local,
        Client(local) as client,
    ):
        assert gpu_resources(client) == 1


def test_a_worker_killed_mid_embedding_is_survived(
    cluster, tiny_checkpoint, tiny_encoder, tmp_path
):
    stores = _stores(tmp_path / "stores", n_stores=3, n=160)
    pids = cluster.run(os.getpid)
    outcome: dict = {}

    def embed() -> None:
        outcome["report"] = embed_on_cluster(
            cluster, stores, "tiny-clip", checkpoint=tiny_checkpoint, device="cpu", batch_size=8
        )

    thread = threading.Thread(target=embed)
    thread.start()
    victim, deadline = None, time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        busy = {w: keys for w, keys in cluster.processing().items() if keys}
        victim = next((w for w, keys in busy.items() if any("embed-" in k for k in keys)), None)
        time.sleep(0.01)
    assert victim is not None, "no embedding task was seen running"
    os.kill(pids[victim], signal.SIGKILL)  # the worker process, mid-task
    thread.join(timeout=300)
    report = outcome["report"]
    assert [r.status for r in report.results] == ["done"] * 3
    on_cluster = {p.name: PatchStore.open(p).read_features("tiny-clip") for p in stores}
    expected = _local_features(stores, tiny_encoder)
    for name, features in on_cluster.items():
        np.testing.assert_allclose(features, expected[name], atol=1e-3)
