"""``wsi-engine run --scheduler``: every heavy stage spreads over the cluster's workers."""

from __future__ import annotations

import pytest

from wsi_engine.pipeline.run import run_pipeline


@pytest.mark.slow
def test_run_spreads_tiling_and_embedding_over_both_workers(
    small_cohort, pipeline_config, reference_run, tmp_path, assert_same_stores
):
    from distributed import Client, LocalCluster, get_task_stream

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
        get_task_stream(client) as stream,
    ):
        report = run_pipeline(
            [small_cohort / "slides"], tmp_path / "out", pipeline_config, scheduler=client
        )
    assert not report.failed
    for prefix in ("tile-shard-", "embed-"):
        workers = {t["worker"] for t in stream.data if t["key"].startswith(prefix)}
        assert len(workers) == 2, f"{prefix} tasks ran on {workers}"
    assert (
        len({t["key"] for t in stream.data if t["key"].startswith("embed-")}) == 4
    )  # one per store
    # features come from worker processes with their own thread counts: equal to float16 rounding
    assert_same_stores(reference_run, tmp_path / "out", exact_features=False)
