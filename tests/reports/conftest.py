"""Fixtures of the CLIP-IT tests: a per-test text cache, image folders, joint-feature stores, saved corpora."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsi_engine.cli import main
from wsi_engine.reports.corpus import ReportCorpus
from wsi_engine.store import PatchStore
from wsi_engine.store.writer import StoreWriter
from wsi_engine.synthetic.joint_space import JointSpace

from ..cli_args import cli_args
from ..torch_threads import one_torch_thread  # noqa: F401  (autouse fixture)

JOINT_ENCODER = "test-joint"


@pytest.fixture(autouse=True)
def text_cache(tmp_path, monkeypatch) -> Path:
    """A fresh text-embedding cache per test (``$WSI_ENGINE_CACHE``)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("WSI_ENGINE_CACHE", str(cache))
    return cache


def write_images(folder: Path, colour: tuple[int, int, int], n: int, side: int = 64) -> None:
    """``n`` noisy PNG images of one colour in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(colour))
    for i in range(n):
        pixels = np.clip(np.array(colour) + rng.normal(0, 25, size=(side, side, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"img{i}.png")


def import_args(corpus_file: Path, out: Path, encoder_args: list[str], *extra: str) -> list[str]:
    """``wsi-engine reports import CORPUS_FILE`` for the synthetic-demo task into ``out``."""
    command = cli_args(("reports", "import"), corpus_file, task="synthetic-demo", out=out)
    return [*command, *encoder_args, *extra]


def imported_corpus(folder: Path, lines: list[str], encoder_args: list[str]) -> Path:
    """``folder/corpus``: ``lines`` (one report each) written to a file and imported by the CLI."""
    corpus_file = folder / "reports.txt"
    corpus_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(import_args(corpus_file, folder / "corpus", encoder_args)) == 0
    return folder / "corpus"


def fit_args(stores: Path, labels: Path, out: Path, model: str, **options: object) -> list[str]:
    """``wsi-engine fit`` of ``model`` on ``test-joint`` features, 2 shots, 3 folds, plus ``options``."""
    return cli_args(
        "fit",
        stores=stores,
        labels=labels,
        task="synthetic-demo",
        encoder=JOINT_ENCODER,
        model=model,
        shots=2,
        folds=3,
        out=out,
        **options,
    )


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Two classes of the synthetic-demo task, 8 images each."""
    images = tmp_path / "images"
    write_images(images / "normal", (230, 180, 200), 8)
    write_images(images / "tumor", (90, 40, 140), 8)
    return images


def write_joint_store(
    out_dir: Path,
    slide_id: str,
    features: np.ndarray,
    encoder_id: str = JOINT_ENCODER,
    output_kind: str = "joint",
) -> Path:
    """A complete coordinate-only store with ``features/<encoder_id>`` (N, D) of ``output_kind``."""
    n, patch = len(features), 256
    side = int(np.ceil(np.sqrt(n)))
    coords = np.array([((i % side) * patch, (i // side) * patch) for i in range(n)], np.int64)
    attrs = {
        "slide": {
            "id": slide_id,
            "path": f"/synthetic/{slide_id}.tif",
            "dimensions": [side * patch] * 2,
        },
        "tiling": {
            "patch_size": patch,
            "target_mpp": 0.5,
            "patch_size_level0": float(patch),
            "pixel_mode": "none",
            "shard_patches": 256,
        },
        "tissue": {"source": "synthetic"},
    }
    path = StoreWriter.open_or_create(out_dir, slide_id, attrs, coords, np.ones(n)).finalize()
    store = PatchStore.open(path, mode="r+")
    array, progress = store.create_features(
        encoder_id, features.shape[1], {"output_kind": output_kind}, block_rows=n
    )
    array[...] = features.astype(np.float16)
    progress.mark_done(0)
    store.complete_features(encoder_id, progress)
    return path


def slide_cohort(root: Path, space: JointSpace, per_class: int, seed: int = 0, **store_options):
    """Stores of 2-class slides whose patches are images of the joint space, and labels.csv (normal, tumor)."""
    stores = root / "stores"
    names = ["normal", "tumor"]
    rows = []
    for c in range(2):
        for i in range(per_class):
            images = space.images(30, seed=seed * 1000 + c * 100 + i)
            features = images.features[images.hard == c]
            slide_id = f"{names[c]}-{i:02d}"
            write_joint_store(stores, slide_id, features, **store_options)
            rows.append(f"{slide_id},{names[c]}\n")
    labels = root / "labels.csv"
    labels.write_text("slide_id,label\n" + "".join(rows), encoding="utf-8")
    return stores, labels


def saved_corpus(
    folder: Path, space: JointSpace, informative: bool, task: str | None = "synthetic-demo"
) -> Path:
    """A synthetic corpus in the space of ``test-joint`` features, saved like ``reports import`` does."""
    corpus = space.corpus(6, informative, seed=3)
    labels = ["normal", "tumor"]
    reports = [
        type(r)(
            r.report_id, r.text, labels[int(r.label[-1])] if r.label else None, r.tokens, r.windows
        )
        for r in corpus.reports
    ]
    meta = {
        **corpus.meta,
        "encoder_id": JOINT_ENCODER,
        "task": task,
        "corpus_id": f"joint-{informative}",
    }
    ReportCorpus(reports, corpus.embeddings, meta).save(folder)
    return folder
