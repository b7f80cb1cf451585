"""``reports pair``: pair a cohort's slides (into their stores) or a labelled patch folder (beside it).

Slides: pooled joint features → ``reports/<corpus_id>`` in each store
(:mod:`wsi_engine.reports.slides`); with a fit run's ``splits.json`` only the
slides in some training part are paired. Patches of an image folder: each
image is encoded with the corpus's encoder and paired; with ``train_only``
only the images ``fit-patches`` would train on (same seed and validation
fraction) are. Either way ``pairs.csv`` and ``pairing_quality.json`` are
written: for slides to ``<corpus>/pairs-slides`` by default, for images
beside the folder, ``<folder>.reports-<corpus_id>/`` (also ``pairs.npz``:
item ids, indices (M, k), scores (M, k)). :func:`stored_slide_pairs` reads
the slide pairs back from the stores (``reports quality``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wsi_engine.reports.corpus import ReportCorpus
from wsi_engine.reports.pairing import Pairs
from wsi_engine.reports.quality import PairingQuality, pairing_quality, write_pairing


@dataclass
class PairOutcome:
    """What was paired (for the console), its quality, the output folder and the items left out."""

    what: str
    quality: PairingQuality
    folder: Path
    failures: dict[str, str] = field(default_factory=dict)


def training_slides(splits_path: Path) -> set[str]:
    """Slides in the training part of any split of a ``splits.json``."""
    from wsi_engine.mil.fewshot import load_splits_json

    return {slide for split in load_splits_json(splits_path) for slide in split.train}


def pair_store_slides(
    corpus_path: Path, store_dirs: list[Path], k: int, splits: Path | None, out: Path | None
) -> PairOutcome:
    """Pair the (training) slides of ``store_dirs``; write their stores' ``reports/<corpus_id>`` and ``out``."""
    from wsi_engine.reports.slides import pair_slides

    corpus = ReportCorpus.load(corpus_path)
    only = training_slides(splits) if splits is not None else None
    selection = f"training slides of {splits.resolve()}" if splits is not None else "all slides"
    pairs, failures = pair_slides(store_dirs, corpus, corpus_path, k, only, selection)
    quality = pairing_quality(pairs, corpus)
    folder = out or corpus_path / "pairs-slides"
    write_pairing(folder, pairs, corpus, quality)
    return PairOutcome(f"slides ({selection})", quality, folder, failures)


def pair_image_folder(
    corpus_path: Path,
    images: Path,
    encoder_name: str | None,
    checkpoint: Path | None,
    device: str,
    k: int,
    train_only: bool,
    seed: int,
    val_fraction: float,
    out: Path | None,
) -> PairOutcome:
    """Encode and pair the (training) images of a labelled folder; write the pairs beside it."""
    from wsi_engine.encoders import load_encoder
    from wsi_engine.patch.dataset import split_three_ways
    from wsi_engine.patch.images import encode_folder, encoder_embedder, scan_image_folder
    from wsi_engine.reports.pairing import check_compatible, pair

    corpus = ReportCorpus.load(corpus_path)
    folder = scan_image_folder(images)
    encoder = load_encoder(encoder_name or corpus.encoder_id, checkpoint=checkpoint)
    attrs = {
        "encoder_id": encoder.encoder_id,
        "checkpoint_sha256": encoder.checkpoint_sha256,
        "output_kind": encoder.output_kind,
    }
    check_compatible(corpus, attrs, encoder.embed_dim, str(images))
    patches, unreadable = encode_folder(folder, encoder_embedder(encoder, device))
    selection = "all images"
    if train_only:
        patches = split_three_ways(patches, None, val_fraction, seed)[0]
        selection = f"training images (seed {seed}, validation fraction {val_fraction})"
    ids = [patches.group_names[g] for g in patches.group]
    pairs = pair(patches.features, corpus, ids, k)
    labels = [folder.class_names[t] for t in patches.hard]
    quality = pairing_quality(pairs, corpus, labels)
    target = out or images.parent / f"{images.name}.reports-{corpus.corpus_id}"
    write_pairing(target, pairs, corpus, quality)
    np.savez(
        target / "pairs.npz",
        item_ids=np.array(ids),
        indices=pairs.indices,
        scores=pairs.scores,
    )
    failures = {s.item: s.reason for s in folder.skipped + unreadable}
    return PairOutcome(f"patches ({selection})", quality, target, failures)


def stored_slide_pairs(corpus_path: Path, store_dirs: list[Path]) -> tuple[Pairs, ReportCorpus]:
    """The pairs of ``corpus_path``'s corpus already in the stores (``reports/<corpus_id>``), k = the smallest stored."""
    from wsi_engine.errors import DataError
    from wsi_engine.store import iter_stores

    corpus = ReportCorpus.load(corpus_path)
    ids, indices, scores = [], [], []
    for store in iter_stores(list(store_dirs)):
        if corpus.corpus_id in store.report_pairs():
            arrays, _ = store.read_report_pairs(corpus.corpus_id)
            ids.append(store.slide_id)
            indices.append(arrays["indices"])
            scores.append(arrays["scores"])
    if not ids:
        raise DataError(
            f"no store holds report pairs of corpus '{corpus.corpus_id}'",
            path=", ".join(map(str, store_dirs)),
            hint="pair them first with `wsi-engine reports pair --corpus ... --stores ...`",
        )
    k = min(len(i) for i in indices)
    return Pairs(ids, np.stack([i[:k] for i in indices]), np.stack([s[:k] for s in scores])), corpus
