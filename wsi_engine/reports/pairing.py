"""Pair images (patches or slides) with their most similar reports by CLIP similarity (reference §4.2).

For image embeddings x (M, D) and the corpus's report embeddings r (R, D),
both L2-normalised in the same joint space, pair(x) = the k reports of
largest x̂ · r (cosine similarity, −1..1), best first. Pairs are pseudo-pairs:
they share semantics but were never written about that image.

The image embeddings must come from the corpus's encoder: same encoder id,
same checkpoint (sha256) when both are recorded, the joint (image-text)
output, and the same width; :func:`check_compatible` raises an EncoderError
saying which requirement fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wsi_engine.errors import DataError, EncoderError
from wsi_engine.reports.corpus import ReportCorpus


@dataclass
class Pairs:
    """Top-k reports of M items: ``indices`` (M, k) int64 rows of the corpus, ``scores`` (M, k) float32 cosine."""

    item_ids: list[str]
    indices: np.ndarray
    scores: np.ndarray

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def top1(self, corpus: ReportCorpus) -> np.ndarray:
        """(M, D) embeddings of each item's best report (the h_t of the distillation)."""
        return corpus.embeddings[self.indices[:, 0]]


def check_compatible(
    corpus: ReportCorpus, feature_attrs: dict[str, Any], feature_dim: int, where: str
) -> None:
    """Raise when features (``feature_attrs`` as in docs/store.md) are not in the corpus's joint space."""
    hint = (
        f"re-import the corpus with the features' encoder: "
        f"`wsi-engine reports import ... --encoder {feature_attrs.get('encoder_id', 'ENCODER')}`"
    )
    kind = feature_attrs.get("output_kind")
    if kind == "image_only":
        raise EncoderError(
            f"{where}: features of '{feature_attrs.get('encoder_id')}' are image-only; "
            "pairing with reports needs an encoder with a text tower (joint image-text features)"
        )
    encoder_id = feature_attrs.get("encoder_id")
    if encoder_id is not None and encoder_id != corpus.encoder_id:
        raise EncoderError(
            f"{where}: reports were embedded with encoder '{corpus.encoder_id}', features are of '{encoder_id}'",
            hint=hint,
        )
    sha = feature_attrs.get("checkpoint_sha256")
    if sha and corpus.checkpoint_sha256 and sha != corpus.checkpoint_sha256:
        raise EncoderError(
            f"{where}: reports were embedded with checkpoint sha256 {corpus.checkpoint_sha256[:12]}…, "
            f"features with {sha[:12]}… (other weights of '{corpus.encoder_id}')",
            hint=hint,
        )
    if kind not in (None, "joint"):
        raise EncoderError(
            f"{where}: features are '{kind}', not in the image-text space the reports live in",
            hint="embed the slides with the encoder's joint output (output: joint)",
        )
    if feature_dim != corpus.dim:
        raise EncoderError(
            f"{where}: features are {feature_dim}-d, report embeddings {corpus.dim}-d", hint=hint
        )


def pair(features: np.ndarray, corpus: ReportCorpus, item_ids: list[str], k: int = 1) -> Pairs:
    """The ``k`` most similar reports of every row of ``features`` (M, D) (module docstring)."""
    if k < 1:
        raise DataError(f"top-k must be at least 1 (got {k})")
    k = min(k, len(corpus.reports))
    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    similarity = x @ corpus.embeddings.T  # (M, R)
    top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(similarity, top, axis=1), axis=1, kind="stable")
    indices = np.take_along_axis(top, order, axis=1).astype(np.int64)
    scores = np.take_along_axis(similarity, indices, axis=1).astype(np.float32)
    return Pairs(list(item_ids), indices, scores)
