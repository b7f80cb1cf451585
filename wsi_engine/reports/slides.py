"""Slide-level pairing: one joint-space embedding per slide, paired with reports, kept in the store.

A slide's embedding is the mean of its patches' unit features, re-normalised
(mean pooling in the joint space). Libra-MIL's bag representation H lives in
the head's hidden space, not in the image-text space, so it cannot be
compared with report embeddings; retrieval always uses the mean-pooled
features, and the distillation (``fit --privileged-text``) maps H into the
text space through a learned W instead.

Pairs are written to ``reports/<corpus_id>`` of each store (docs/store.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine.errors import DataError, StoreError
from wsi_engine.reports.corpus import ReportCorpus
from wsi_engine.reports.pairing import Pairs, check_compatible, pair
from wsi_engine.store import PatchStore, require_stores, store_slide_id
from wsi_engine.training.stores import read_bag

SLIDE_POOLING = "mean of the patches' L2-normalised joint features, re-normalised"


def pooled_embedding(features: np.ndarray) -> np.ndarray:
    """(D,) float32 unit mean of the unit rows of ``features`` (N, D)."""
    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    mean = x.mean(0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def slide_embeddings(
    store_dirs: list[str | Path], corpus: ReportCorpus, only: set[str] | None = None
) -> tuple[list[Path], np.ndarray, dict[str, str]]:
    """(store paths, (S, D) pooled embeddings, {slide_id: reason} of stores left out).

    Only stores whose slide id is in ``only`` are read when it is given.
    Features of another encoder than the corpus's are an EncoderError (not a skip).
    """
    paths = require_stores(list(store_dirs))
    kept, rows, failures = [], [], {}
    for path in paths:
        slide_id = store_slide_id(path)
        if only is not None and slide_id not in only:
            continue
        try:
            store = PatchStore.open(path)
            others = store.feature_ids()
            if others and corpus.encoder_id not in others:
                attrs = store.feature_attrs(others[0])
                check_compatible(corpus, attrs, corpus.dim, str(path))
            attrs = store.feature_attrs(corpus.encoder_id)
            features = read_bag(path, corpus.encoder_id)
            check_compatible(corpus, attrs, int(features.shape[1]), str(path))
            if not len(features):
                raise DataError("the store has no patches (no tissue)", path=path)
        except (StoreError, DataError) as error:  # encoder mismatches (EncoderError) stop the batch
            failures[slide_id] = str(error)
            continue
        kept.append(path)
        rows.append(pooled_embedding(features))
    if not rows:
        first = next(iter(failures.values()), "no store selected")
        raise DataError(f"no slide could be paired; first: {first}")
    return kept, np.stack(rows), failures


def pair_slides(
    store_dirs: list[str | Path],
    corpus: ReportCorpus,
    corpus_path: Path,
    k: int,
    only: set[str] | None = None,
    selection: str = "all slides",
) -> tuple[Pairs, dict[str, str]]:
    """Pair every (selected) slide and write ``reports/<corpus_id>`` into its store; returns the pairs and failures."""
    paths, embeddings, failures = slide_embeddings(store_dirs, corpus, only)
    pairs = pair(embeddings, corpus, [store_slide_id(p) for p in paths], k)
    for row, path in enumerate(paths):
        attrs: dict[str, Any] = {
            "corpus": str(corpus_path.resolve()),
            "corpus_text_sha256": corpus.meta.get("text_sha256"),
            "encoder_id": corpus.encoder_id,
            "checkpoint_sha256": corpus.checkpoint_sha256,
            "k": pairs.k,
            "pooling": SLIDE_POOLING,
            "report_ids": [corpus.reports[int(i)].report_id for i in pairs.indices[row]],
            "selection": selection,
        }
        PatchStore.open(path, mode="r+").write_report_pairs(
            corpus.corpus_id,
            {"indices": pairs.indices[row], "scores": pairs.scores[row]},
            attrs,
        )
    return pairs, failures
