"""A small synthetic cohort, a tiny random-weight encoder and one uninterrupted reference run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from wsi_engine.pipeline import load_pipeline_config
from wsi_engine.pipeline.run import run_pipeline
from wsi_engine.store import PatchStore, find_stores

SLIDE_SIZE = 1024


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    """Four slides (two normal, two tumour) of 1024² px at 0.5 µm/px, with ground truth."""
    from wsi_engine.synthetic import generate_cohort

    out = tmp_path_factory.mktemp("pipeline-cohort")
    generate_cohort(
        out, n_slides=4, classes=("normal", "tumor"), width=SLIDE_SIZE, height=SLIDE_SIZE, seed=3
    )
    return out


@pytest.fixture(scope="session")
def pipeline_config(tiny_checkpoint):
    """Tiny encoder on the CPU; 128-px patches at 1 µm/px so the slides give about ten patches each."""
    return load_pipeline_config(
        None,
        {
            "embed.encoder": "tiny-clip",
            "embed.checkpoint": str(tiny_checkpoint),
            "embed.device": "cpu",
            "embed.workers": 0,
            "tiling.patch_size": 128,
            "tiling.target_mpp": 1.0,
            "tiling.shard_patches": 16,
            "workers": 1,
        },
    )


@pytest.fixture(scope="session")
def reference_run(small_cohort, pipeline_config, tmp_path_factory) -> Path:
    """OUT of one uninterrupted run over the cohort's slides (tile + embed)."""
    out = tmp_path_factory.mktemp("reference") / "out"
    report = run_pipeline([small_cohort / "slides"], out, pipeline_config)
    assert not report.failed
    return out


@pytest.fixture
def slide_dir(small_cohort, tmp_path) -> Path:
    """A private copy of the cohort's slides (tests add bad files to it)."""
    target = tmp_path / "slides"
    shutil.copytree(small_cohort / "slides", target)
    return target


def _assert_same_stores(
    left: Path, right: Path, encoder_id: str = "tiny-clip", exact_features: bool = True
) -> None:
    """Same slide ids, coordinates, patch bytes and features (exactly, or to float16 rounding)."""
    left_stores = {p.name: p for p in find_stores([left / "stores"])}
    right_stores = {p.name: p for p in find_stores([right / "stores"])}
    assert left_stores.keys() == right_stores.keys() and left_stores
    for name, path in left_stores.items():
        a, b = PatchStore.open(path), PatchStore.open(right_stores[name])
        assert np.array_equal(a.coords(), b.coords()), name
        assert a.n_patches == b.n_patches
        if a.n_patches:
            assert np.array_equal(a.read_patches(0, a.n_patches), b.read_patches(0, b.n_patches)), (
                name
            )
            fa, fb = a.read_features(encoder_id), b.read_features(encoder_id)
            if exact_features:
                assert np.array_equal(fa, fb), name
            else:
                np.testing.assert_allclose(fa, fb, atol=2e-3, err_msg=name)


@pytest.fixture(scope="session")
def assert_same_stores():
    """``assert_same_stores(left_out, right_out, exact_features=True)``."""
    return _assert_same_stores


@pytest.fixture(scope="session")
def run_args(tiny_clip_args):
    """``run_args(slides, out)``: arguments of ``wsi-engine run`` with the tiny encoder on the CPU."""

    def build(slides: Path, out: Path) -> list[str]:
        return [
            "run",
            str(slides),
            "--out",
            str(out),
            *tiny_clip_args,
            "--patch-size",
            "128",
            "--mpp-target",
            "1.0",
            "--workers",
            "1",
        ]

    return build
