"""Fixtures of the patch-classifier tests: planted-lesion slides with noisy bag evidence, feature stores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from wsi_engine.store import PatchStore
from wsi_engine.store.writer import StoreWriter

from ..torch_threads import one_torch_thread  # noqa: F401  (autouse fixture)

CLASSES = ["normal", "tumor"]
ENCODER = "test-enc"
SMALL_MODELS = {"abmil": {"dim": 16, "attention_dim": 8}, "libra": {"dim": 16, "heads": 2, "kv": 3}}


@dataclass
class PlantedSlide:
    """``features`` (N, D) unit rows; ``lesion`` (N,) bool truth; ``attention`` (N, 2) noisy bag evidence."""

    slide_id: str
    label: int
    features: np.ndarray
    lesion: np.ndarray
    attention: np.ndarray
    slide_probs: np.ndarray


def planted_slides(
    n_per_class: int, dim: int = 16, seed: int = 0, noise: float = 1.5, n: int = 80
) -> list[PlantedSlide]:
    """Normal slides of Gaussian patches; tumour slides also hold 15-35 % lesion patches shifted along one
    direction. The bag 'attention' of class c is softmax over the slide of (lesion score + ``noise`` · N(0,1)),
    so its within-slide ranking of lesion patches is only moderately right. The lesion direction is the
    same for every ``seed``, so cohorts of different seeds are training and test slides of one task."""
    direction = np.random.default_rng(12345).normal(size=dim)
    direction /= np.linalg.norm(direction)
    rng = np.random.default_rng(seed)
    slides = []
    for label in (0, 1):
        for i in range(n_per_class):
            x = rng.normal(size=(n, dim))
            lesion = np.zeros(n, dtype=bool)
            if label == 1:
                lesion[rng.choice(n, size=int(n * rng.uniform(0.15, 0.35)), replace=False)] = True
                x[lesion] += 1.2 * direction * np.sqrt(dim) / 2
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            logits = np.stack(
                [rng.normal(size=n), 2.0 * lesion + noise * rng.normal(size=n)], axis=1
            )
            attention = np.exp(logits) / np.exp(logits).sum(axis=0, keepdims=True)
            probs = np.array([0.2, 0.8]) if label else np.array([0.8, 0.2])
            slides.append(
                PlantedSlide(
                    f"{CLASSES[label]}-{i:02d}",
                    label,
                    x.astype(np.float32),
                    lesion,
                    attention,
                    probs,
                )
            )
    return slides


def grid_coords(n: int, step: float) -> np.ndarray:
    """(n, 2) int64 top-left corners of a square grid with spacing ``step`` level-0 px."""
    side = int(np.ceil(np.sqrt(max(n, 1))))
    return np.array(
        [((i % side) * step, (i // side) * step) for i in range(n)], dtype=np.int64
    ).reshape(-1, 2)


def write_feature_store(
    out_dir: Path,
    slide_id: str,
    features: np.ndarray | None,
    *,
    coords: np.ndarray | None = None,
    mpp: float = 0.5,
    patch_level0: float = 224.0,
    encoder_id: str = ENCODER,
    output_kind: str = "joint",
) -> Path:
    """A complete coordinate-only store of ``len(features)`` patches, with ``features/<encoder_id>`` unless None."""
    n = len(features) if features is not None else len(coords)
    coords = grid_coords(n, patch_level0) if coords is None else coords
    extent = int(coords.max() + patch_level0) if n else 1
    slide = {
        "id": slide_id,
        "path": f"/synthetic/{slide_id}.tif",
        "fingerprint": f"sha256:{slide_id}",
        "dimensions": [extent, extent],
    }
    size = round(patch_level0 * 0.25 / mpp)
    tiling = {
        "patch_size": size,
        "target_mpp": mpp,
        "patch_size_level0": patch_level0,
        "pixel_mode": "none",
        "shard_patches": 512,
    }
    writer = StoreWriter.open_or_create(
        out_dir, slide_id, {"slide": slide, "tiling": tiling, "tissue": {}}, coords, np.ones(n)
    )
    path = writer.finalize()
    if features is not None:
        store = PatchStore.open(path, mode="r+")
        array, progress = store.create_features(
            encoder_id,
            features.shape[1],
            {"output_kind": output_kind, "text_aligned": output_kind == "joint"},
            block_rows=max(n, 1),
        )
        array[...] = features.astype(np.float16)
        progress.mark_done(0)
        store.complete_features(encoder_id, progress)
    return path


def write_bag_run(
    run_dir: Path,
    labels: Path,
    feature_dim: int,
    *,
    encoder_id: str = ENCODER,
    task: str = "synthetic-demo",
    text=None,
    seed: int = 0,
    model: str = "abmil",
    options: dict | None = None,
) -> Path:
    """A finished bag run as ``wsi-engine fit`` leaves it: one (untrained, seeded) fold model of ``model``
    (small ``options`` by default), run.json, and ``text_embeddings.npz`` when ``text`` (TaskEmbeddings) is
    given. Written with the MIL run-dir helpers."""
    import torch

    from wsi_engine.mil import rundir
    from wsi_engine.mil.registry import create_model, model_config
    from wsi_engine.training.rundir import RUN_FILE, write_json

    torch.manual_seed(seed)
    options = model_config(model, SMALL_MODELS[model] if options is None else options)
    network = create_model(model, options, feature_dim, len(CLASSES), None)
    fold = rundir.fold_dir(run_dir, 2, 0)
    fold.mkdir(parents=True)
    meta = {
        "model": model,
        "model_config": options.model_dump(mode="json"),
        "class_names": CLASSES,
        "task": task,
        "encoder_id": encoder_id,
        "feature_dim": feature_dim,
    }
    rundir.save_checkpoint(fold / "model.pt", network, meta, None)
    if text is not None:
        text.save(run_dir / "text_embeddings.npz")
    run = {
        "format": rundir.RUN_FORMAT,
        "run_id": run_dir.name,
        "status": "complete",
        "task": task,
        "class_names": CLASSES,
        "encoder_id": encoder_id,
        "feature_dim": feature_dim,
        "feature_output_kind": "joint",
        "model": model,
        "model_config": options.model_dump(mode="json"),
        "labels": str(labels),
        "language_note": f"model '{model}' run without prompt embeddings",
        "checkpoints": [
            {"shots": 2, "fold": 0, "path": str((fold / "model.pt").relative_to(run_dir))}
        ],
    }
    write_json(run_dir / RUN_FILE, run)
    return run_dir


@pytest.fixture
def slide_factory():
    return planted_slides


@pytest.fixture
def feature_store():
    return write_feature_store


@pytest.fixture
def cohort(tmp_path: Path):
    """(stores dir, labels.csv, slides): 4 planted slides per class written as stores of ``ENCODER`` features."""
    slides = planted_slides(4, seed=3, n=40)
    stores = tmp_path / "stores"
    stores.mkdir()
    for slide in slides:
        write_feature_store(stores, slide.slide_id, slide.features)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "slide_id,label\n" + "".join(f"{s.slide_id},{CLASSES[s.label]}\n" for s in slides),
        encoding="utf-8",
    )
    return stores, labels, slides


@pytest.fixture
def bag_run_writer():
    return write_bag_run
