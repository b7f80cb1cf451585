"""Fixtures of the fault-injection suite: one small real world (slide, store with patches, features
and scores, a fit run) made once, private copies to damage, and small or read-only file systems."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from wsi_engine.cli import main

from ..torch_threads import one_torch_thread  # noqa: F401  (autouse fixture)

SLIDE_ID = "victim"
ENCODER = "tiny-clip"


@dataclass(frozen=True)
class World:
    slide: Path
    out: Path
    """``wsi-engine run`` output: ``stores/victim.zarr`` with patches, features and scores"""
    run: Path
    """a small ABMIL fit run on 32-d tiny-clip features"""
    score_id: str

    @property
    def store(self) -> Path:
        return self.out / "stores" / f"{SLIDE_ID}.zarr"


def fit_cohort(root: Path) -> tuple[Path, Path]:
    """Stores of 16 synthetic 32-d ``tiny-clip`` bags (two classes) and their labels."""
    from wsi_engine.store import PatchStore
    from wsi_engine.store.writer import StoreWriter

    rng = np.random.default_rng(0)
    stores = root / "stores"
    lines = ["slide_id,label"]
    for i in range(16):
        label = ("normal", "tumor")[i % 2]
        n = int(rng.integers(12, 24))
        features = rng.normal(size=(n, 32)) + (1.5 if label == "tumor" else 0.0)
        coords = np.stack([np.arange(n) * 128, np.zeros(n, int)], axis=1)
        attrs = {
            "slide": {"id": f"b{i}", "path": f"/synthetic/b{i}.tif", "fingerprint": f"b{i}",
                      "dimensions": [n * 128, 128], "mpp": [1.0, 1.0]},
            "tiling": {"patch_size": 128, "target_mpp": 1.0, "patch_size_level0": 128.0,
                       "pixel_mode": "none", "shard_patches": 64},
            "tissue": {"source": "synthetic"},
        }  # fmt: skip
        writer = StoreWriter.open_or_create(stores, f"b{i}", attrs, coords, np.ones(n))
        store = PatchStore.open(writer.finalize(), mode="r+")
        array, progress = store.create_features(ENCODER, 32, {"output_kind": "joint"}, block_rows=n)
        array[...] = features.astype(np.float16)
        progress.mark_done(0)
        store.complete_features(ENCODER, progress)
        lines.append(f"b{i},{label}")
    labels = root / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    return stores, labels


def fit_args(stores: Path, labels: Path, out: Path) -> list[str]:
    return [
        "fit", "--stores", str(stores), "--labels", str(labels), "--task", "synthetic-demo",
        "--encoder", ENCODER, "--out", str(out), "--model", "abmil", "--text-free",
        "--shots", "4", "--folds", "3", "--epochs", "2", "--patience", "2",
        "--set", "dim=16", "--set", "attention_dim=8",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def world(tmp_path_factory, tiny_checkpoint, dask_cluster) -> World:
    """A 1024 × 768 px synthetic slide run through tile + embed, a fit run, and predict on the store."""
    from wsi_engine.pipeline import load_pipeline_config
    from wsi_engine.pipeline.run import run_pipeline
    from wsi_engine.synthetic import generate_slide

    root = tmp_path_factory.mktemp("faults-world")
    slide = root / "slides" / f"{SLIDE_ID}.tiff"
    slide.parent.mkdir()
    generate_slide(slide, width=1024, height=768, mpp=0.5, seed=5)
    config = load_pipeline_config(None, pipeline_overrides(tiny_checkpoint))
    report = run_pipeline([slide.parent], root / "out", config, scheduler=dask_cluster)
    assert not report.failed, report.errors
    stores, labels = fit_cohort(root / "fit")
    assert main(fit_args(stores, labels, root / "run")) == 0
    world = World(slide, root / "out", root / "run", "faults")
    args = ["predict", "--run", str(world.run), "--stores", str(world.store)]
    assert main([*args, "--out", str(root / "p.csv"), "--score-id", world.score_id]) == 0
    return world


def pipeline_overrides(checkpoint: Path) -> dict:
    """Tiny encoder on the CPU, 128-px patches at 1 µm/px in shards of 8 (a few shards per slide)."""
    return {
        "embed.encoder": ENCODER,
        "embed.checkpoint": str(checkpoint),
        "embed.device": "cpu",
        "embed.workers": 0,
        "tiling.patch_size": 128,
        "tiling.target_mpp": 1.0,
        "tiling.shard_patches": 8,
        "tiling.min_tissue_fraction": 0.1,
        "workers": 1,
    }


@pytest.fixture
def store_copy(world, tmp_path) -> Path:
    """A private copy of the world's store (``tmp/stores/victim.zarr``) to damage."""
    target = tmp_path / "stores" / world.store.name
    shutil.copytree(world.store, target)
    return target


def chunk_files(array_dir: Path) -> list[Path]:
    """The chunk (or shard) files of an array, sorted."""
    return sorted(p for p in array_dir.rglob("*") if p.is_file() and p.name != "zarr.json")


@contextmanager
def mounted_tmpfs(path: Path, size: str, read_only: bool = False):
    """A tmpfs of ``size`` at ``path`` (root only; the test is skipped elsewhere)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a 2 MiB tmpfs already filled to the last byte."""
    with mounted_tmpfs(tmp_path / "full", "2m") as path:
        filler = path / "filler"
        with open(filler, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        yield path


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder that cannot be written: a read-only tmpfs as root, else a chmod 555 folder."""
    if os.geteuid() == 0:
        with mounted_tmpfs(tmp_path / "ro", "1m", read_only=True) as path:
            yield path
    else:
        path = tmp_path / "ro"
        path.mkdir()
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
