"""fit-patches --from-run --privileged-text, then predict-patches: the late-fusion head predicts image-only."""

from __future__ import annotations

import json

import numpy as np

from wsi_engine.cli import main
from wsi_engine.reports.corpus import EmbeddedReport, ReportCorpus
from wsi_engine.store import PatchStore


def test_bag_run_source_with_privileged_text_predicts_from_images_only(
    tmp_path, cohort, bag_run_writer
):
    stores, labels, _ = cohort
    bag = bag_run_writer(tmp_path / "bag", labels, 16)
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(6, 16)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    reports = [EmbeddedReport(f"r{i}", f"report {i}", None, 3, 1) for i in range(6)]
    meta = {
        "format": "wsi-engine-report-corpus",
        "corpus_id": "test",
        "encoder_id": "test-enc",
        "task": None,
        "checkpoint_sha256": None,
    }
    corpus = ReportCorpus(reports, embeddings, meta).save(tmp_path / "corpus")
    out = tmp_path / "patch-run"
    args = ["fit-patches", "--from-run", str(bag), "--stores", str(stores), "--out", str(out)]
    assert main([*args, "--epochs", "2", "--hidden", "8", "--privileged-text", str(corpus)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["privileged_text"]["pairing"]["n_items"] == run["n_train_patches"]
    assert run["metrics"][-1]["stage"] == "clip-it (image path)"
    assert main(["predict-patches", "--run", str(out), "--stores", str(stores)]) == 0
    store = PatchStore.open(next(stores.glob("*.zarr")))
    arrays, attrs = store.read_scores(run["run_id"])
    assert arrays["probs"].shape == (store.n_patches, 2)
    assert np.allclose(arrays["probs"].sum(1), 1, atol=1e-5)
