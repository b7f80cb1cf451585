"""Crash safety (kill -9 at several points, then rerun) and the Dask-cluster path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from wsi_engine.pipeline.run import run_pipeline


def _kill_after(args: list[str], seconds: float) -> None:
    """Start the run in its own process group and kill -9 the whole group after ``seconds``."""
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_result(
    small_cohort, run_args, reference_run, tmp_path, assert_same_stores
):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "wsi_engine", *run_args(small_cohort / "slides", out)]
    for delay in (4.0, 9.0, 14.0):  # during start-up/tiling, tiling/embedding, embedding
        _kill_after(args, delay)
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list((out / "stores").glob("*.partial"))
    assert_same_stores(reference_run, out)


@pytest.mark.slow
def test_an_existing_dask_cluster_gives_the_same_outputs(
    small_cohort, pipeline_config, reference_run, tmp_path, assert_same_stores
):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        report = run_pipeline(
            [small_cohort / "slides"],
            tmp_path / "out",
            pipeline_config,
            scheduler=cluster.scheduler_address,
        )
    assert not report.failed
    # Features are computed in a worker process with its own thread count: equal up to float16 rounding.
    assert_same_stores(reference_run, tmp_path / "out", exact_features=False)
