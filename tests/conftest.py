"""Fixtures shared by every test area: the real-slide folder, the tiny random-weight encoder, one Dask cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_SLIDES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "slides"


@pytest.fixture(scope="session")
def shared_slides() -> Path:
    """``../shared/data/slides`` beside the checkout; the test is skipped when it is absent."""
    if not SHARED_SLIDES.is_dir():
        pytest.skip("real test slides not present (../shared/data/slides)")
    return SHARED_SLIDES


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random tiny-clip checkpoint (safetensors, seed 0), made through the public helper."""
    from wsi_engine.encoders import create_random_checkpoint

    return create_random_checkpoint(
        "tiny-clip", tmp_path_factory.mktemp("weights") / "tiny-clip.safetensors"
    )


@pytest.fixture(scope="session")
def tiny_clip_args(tiny_checkpoint) -> list[str]:
    """Command-line options that select the tiny random-weight CLIP on the CPU."""
    return ["--encoder", "tiny-clip", "--checkpoint", str(tiny_checkpoint), "--device", "cpu"]


@pytest.fixture(scope="session")
def dask_cluster():
    """Address of a LocalCluster of 2 single-thread worker processes, started once for the suite.

    Tests that kill or restart workers start their own cluster instead.
    """
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address
