"""``wsi-engine run --scheduler ADDRESS``: an existing Dask cluster gives the same outputs, and every
heavy stage spreads over its workers."""

from __future__ import annotations

import pytest

from wsi_engine.pipeline.run import run_pipeline


@pytest.mark.slow
def test_an_existing_cluster_gives_the_same_outputs_spread_over_both_workers(
    small_cohort, pipeline_config, reference_run, tmp_path, assert_same_stores, dask_cluster
):
    from distributed import Client, get_task_stream

    with Client(dask_cluster) as client, get_task_stream(client) as stream:
        report = run_pipeline(
            [small_cohort / "slides"], tmp_path / "out", pipeline_config, scheduler=dask_cluster
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
