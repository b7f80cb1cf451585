"""A synthetic joint image-text space for CLIP-IT's mechanism checks (no real CLIP weights offline).

D-dimensional unit vectors; the first ``semantic`` coordinates carry meaning,
the rest are nuisance (stain, scanner, tissue texture):

* class c has a unit direction m_c in the semantic coordinates;
* an image of class c is x = normalize(m_c + σ_s ε_s + σ_n ε_n): semantic
  noise ε_s, and strong nuisance noise ε_n in the other coordinates;
* an *informative* report of class c is r = normalize(m_c + σ_r ε_s + 0.1 ε_n):
  reports describe the semantics and hardly the nuisance;
* an *unrelated* report is an isotropic random unit vector (text about
  something else: no class information; the negative control).

Images are grouped one per group (like an image folder), so every split
helper applies unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wsi_engine.patch.dataset import PatchSet
from wsi_engine.reports.corpus import EmbeddedReport, ReportCorpus


@dataclass(frozen=True)
class JointSpace:
    """Geometry of the synthetic space (module docstring)."""

    dim: int = 64
    semantic: int = 8
    n_classes: int = 3
    image_semantic_noise: float = 2.0
    image_nuisance_noise: float = 0.5
    report_noise: float = 0.3
    seed: int = 0

    def class_directions(self) -> np.ndarray:
        """(C, D) unit class directions m_c (zero outside the semantic coordinates)."""
        rng = np.random.default_rng(self.seed)
        m = np.zeros((self.n_classes, self.dim))
        m[:, : self.semantic] = rng.normal(size=(self.n_classes, self.semantic))
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    def _noise(self, rng: np.random.Generator, n: int, semantic: float, nuisance: float):
        noise = np.zeros((n, self.dim))
        # per-coordinate scale so that the expected norm of each part is about σ
        other = self.dim - self.semantic
        noise[:, : self.semantic] = (
            rng.normal(size=(n, self.semantic)) * semantic / np.sqrt(self.semantic)
        )
        noise[:, self.semantic :] = rng.normal(size=(n, other)) * nuisance / np.sqrt(other)
        return noise

    def images(self, per_class: int, seed: int) -> PatchSet:
        """``per_class`` labelled images of every class, one group each."""
        rng = np.random.default_rng([self.seed, seed, 1])
        labels = np.repeat(np.arange(self.n_classes), per_class)
        x = self.class_directions()[labels] + self._noise(
            rng, len(labels), self.image_semantic_noise, self.image_nuisance_noise
        )
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        n = len(labels)
        return PatchSet(
            x.astype(np.float32),
            labels.astype(np.int64),
            None,
            np.arange(n, dtype=np.int64),
            [f"image{i:04d}" for i in range(n)],
            labels.astype(np.int64),
        )

    def corpus(self, per_class: int, informative: bool, seed: int) -> ReportCorpus:
        """A corpus of ``per_class`` × C reports: class-informative, or unrelated (no class information)."""
        rng = np.random.default_rng([self.seed, seed, 2])
        n = per_class * self.n_classes
        labels = np.repeat(np.arange(self.n_classes), per_class)
        if informative:
            r = self.class_directions()[labels] + self._noise(rng, n, self.report_noise, 0.1)
        else:
            r = rng.normal(size=(n, self.dim))
        r /= np.linalg.norm(r, axis=1, keepdims=True)
        kind = "informative" if informative else "unrelated"
        reports = [
            EmbeddedReport(
                f"{kind}{i:04d}",
                f"synthetic {kind} report {i}",
                f"class{labels[i]}" if informative else None,
                1,
                1,
            )
            for i in range(n)
        ]
        meta = {
            "format": "wsi-engine-report-corpus",
            "corpus_id": f"synthetic-{kind}",
            "task": None,
            "encoder_id": "synthetic-joint",
            "checkpoint_sha256": None,
            "output_kind": "joint",
            "embed_dim": self.dim,
        }
        return ReportCorpus(reports, r.astype(np.float32), meta)

    @property
    def class_names(self) -> list[str]:
        return [f"class{c}" for c in range(self.n_classes)]
