"""Crash safety: kill -9 at several points, then rerun (the Dask-cluster path: test_pipeline_cluster_spread)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

KILL_POINTS = (  # (what the run is doing, a path under OUT that appears when it has begun)
    ("tiling a slide", "stores/*.zarr.partial"),
    ("a slide's store just complete", "stores/*.zarr"),
    ("embedding a store", "stores/*.zarr/features/tiny-clip"),
)


def _kill_when_new(args: list[str], out: Path, pattern: str, timeout: float = 300.0) -> bool:
    """Start the run in its own process group and kill -9 the whole group as soon as a path
    matching ``pattern`` appears under ``out`` that was not there before; False when the run
    ended (or ``timeout`` s passed) first."""
    before = set(out.glob(pattern))
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if set(out.glob(pattern)) - before:
                return True
            time.sleep(0.02)
        return False
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_result(
    small_cohort, run_args, reference_run, tmp_path, assert_same_stores
):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "wsi_engine", *run_args(small_cohort / "slides", out)]
    for point, pattern in KILL_POINTS:
        assert _kill_when_new(args, out, pattern), f"the run ended before {point}"
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list((out / "stores").glob("*.partial"))
    assert_same_stores(reference_run, out)
