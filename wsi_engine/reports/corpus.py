"""An embedded report corpus: reports, their joint-space text embeddings and the encoder that made them.

Written by ``wsi-engine reports import`` as a folder::

    CORPUS/
      corpus.json        format "wsi-engine-report-corpus": corpus id, task, encoder id and
                         checkpoint sha256, embed_dim, token limit, source file (path, format,
                         column, sha256), filters, counts, reports split into windows
      reports.jsonl      one line per report: id, text, label (or null), tokens, windows
      embeddings.npy     (R, D) float32 L2-normalised report embeddings

Embedding (:func:`embed_reports`): each report is split into windows that fit
the text tower's context (:mod:`wsi_engine.reports.windows`; recorded per
report, never truncated), every window is embedded with the encoder's text
tower (:func:`wsi_engine.encoders.text.encode_text`, strict, so nothing is
cut; its disk cache is keyed by the checkpoint's sha256, the tokenizer and the
window's text), and a report's embedding is the mean of its windows'
unit embeddings, re-normalised.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine.errors import DataError, EncoderError
from wsi_engine.reports.source import Report
from wsi_engine.reports.windows import split_windows

CORPUS_FORMAT = "wsi-engine-report-corpus"
CORPUS_FILE = "corpus.json"
REPORTS_FILE = "reports.jsonl"
EMBEDDINGS_FILE = "embeddings.npy"
POOLING = "mean of the L2-normalised window embeddings, re-normalised"


@dataclass(frozen=True)
class EmbeddedReport:
    """A report with its token count (special tokens included) and the number of windows it was split into."""

    report_id: str
    text: str
    label: str | None
    tokens: int
    windows: int


@dataclass
class ReportCorpus:
    """R reports and their (R, D) float32 unit embeddings in the joint space of ``meta['encoder_id']``."""

    reports: list[EmbeddedReport]
    embeddings: np.ndarray
    meta: dict[str, Any]

    @property
    def encoder_id(self) -> str:
        return str(self.meta["encoder_id"])

    @property
    def checkpoint_sha256(self) -> str | None:
        return self.meta.get("checkpoint_sha256")

    @property
    def corpus_id(self) -> str:
        return str(self.meta["corpus_id"])

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def labels(self) -> list[str | None]:
        return [r.label for r in self.reports]

    def save(self, folder: str | Path) -> Path:
        """Write the corpus folder (each file atomically); returns it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in self.reports)
        _atomic(folder / REPORTS_FILE, lines.encode("utf-8"))
        tmp = folder / (EMBEDDINGS_FILE + ".tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, self.embeddings.astype(np.float32))
        os.replace(tmp, folder / EMBEDDINGS_FILE)
        _atomic(folder / CORPUS_FILE, json.dumps(self.meta, indent=1).encode("utf-8"))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ReportCorpus:
        """Read a corpus folder written by ``reports import``; DataError naming what is wrong."""
        folder = Path(folder)
        hint = "create it with `wsi-engine reports import CORPUS_FILE --task TASK --encoder ENCODER --out FOLDER`"
        try:
            meta = json.loads((folder / CORPUS_FILE).read_text(encoding="utf-8"))
            lines = (folder / REPORTS_FILE).read_text(encoding="utf-8").splitlines()
            embeddings = np.load(folder / EMBEDDINGS_FILE, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DataError(
                f"not an imported report corpus ({type(error).__name__}: {error})",
                path=folder,
                hint=hint,
            ) from error
        if meta.get("format") != CORPUS_FORMAT:
            raise DataError(
                f"not an imported report corpus (format {meta.get('format')!r})",
                path=folder,
                hint=hint,
            )
        reports = [EmbeddedReport(**json.loads(line)) for line in lines if line.strip()]
        if embeddings.ndim != 2 or len(embeddings) != len(reports) or not len(reports):
            raise DataError(
                f"corpus files disagree: {len(reports)} reports, embeddings of shape {embeddings.shape}",
                path=folder,
                hint="re-import the corpus",
            )
        return cls(reports, np.asarray(embeddings, dtype=np.float32), meta)


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def require_text_tower(encoder: Any, what: str) -> None:
    """EncoderError naming the requirement when ``encoder`` has no text tower."""
    if not encoder.config.has_text:
        raise EncoderError(
            f"{what} needs an encoder with a text tower; '{encoder.encoder_id}' is image-only",
            hint="use a CLIP-style encoder (e.g. conch_ViT-B-16, biomedclip, tiny-clip for tests)",
        )


def embed_reports(encoder: Any, reports: list[Report]) -> tuple[list[EmbeddedReport], np.ndarray]:
    """(reports with token and window counts, (R, D) unit embeddings) with ``encoder``'s text tower."""
    from wsi_engine.encoders.text import encode_text, prompt_token_limit, token_lengths

    require_text_tower(encoder, "embedding reports")
    limit = prompt_token_limit(encoder)

    def count(texts: list[str]) -> list[int]:
        return token_lengths(encoder, texts)

    tokens = count([r.text for r in reports])
    windows = [
        split_windows(r.text, limit, count) if n > limit else [r.text]
        for r, n in zip(reports, tokens, strict=True)
    ]
    flat = [w for group in windows for w in group]
    vectors = encode_text(encoder, flat, strict=True)
    pooled, start = [], 0
    for group in windows:
        mean = vectors[start : start + len(group)].mean(0)
        pooled.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        start += len(group)
    embedded = [
        EmbeddedReport(r.report_id, r.text, r.label, int(n), len(w))
        for r, n, w in zip(reports, tokens, windows, strict=True)
    ]
    return embedded, np.stack(pooled).astype(np.float32)


def text_sha256(reports: list[Report] | list[EmbeddedReport]) -> str:
    """sha256 of the reports' texts (in order), the corpus id's content part."""
    digest = hashlib.sha256()
    for report in reports:
        digest.update(report.text.encode("utf-8") + b"\0")
    return digest.hexdigest()


def build_corpus(
    encoder: Any,
    reports: list[Report],
    *,
    task: str,
    source: dict[str, Any],
    filters: dict[str, Any],
    corpus_id: str | None = None,
) -> ReportCorpus:
    """Embed ``reports`` and describe them (module docstring); ``corpus_id`` defaults to ``<task>-<text hash[:8]>``."""
    from wsi_engine.encoders.text import prompt_token_limit
    from wsi_engine.slide.ids import sanitize_name
    from wsi_engine.store import utc_now

    embedded, vectors = embed_reports(encoder, reports)
    digest = text_sha256(reports)
    split = [r for r in embedded if r.windows > 1]
    meta = {
        "format": CORPUS_FORMAT,
        "version": 1,
        "corpus_id": sanitize_name(corpus_id or f"{task}-{digest[:8]}"),
        "task": task,
        "encoder_id": encoder.encoder_id,
        "checkpoint_sha256": encoder.checkpoint_sha256,
        "output_kind": encoder.output_kind,
        "embed_dim": int(vectors.shape[1]),
        "token_limit": prompt_token_limit(encoder),
        "text_sha256": digest,
        "source": source,
        "filters": filters,
        "n_reports": len(embedded),
        "n_labelled": sum(r.label is not None for r in embedded),
        "n_split": len(split),
        "max_windows": max(r.windows for r in embedded),
        "split_reports": [r.report_id for r in split],
        "pooling": POOLING,
        "created": utc_now(),
    }
    return ReportCorpus(embedded, vectors, meta)
