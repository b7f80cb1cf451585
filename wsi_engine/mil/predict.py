"""``wsi-engine predict``: apply a fit run's fold checkpoints to stores.

For every store: slide-level class probabilities (the mean over the chosen
fold models of their softmax outputs) and per-patch evidence written to
``scores/<score_id>`` (docs/store.md): ``attention`` (N, C), the fold mean of
each model's per-class attention (columns still sum to 1), and, for models
that have one, ``instance_score`` (N,), the fold mean of the fused transport
score (Libra-MIL) or attention logit (ABMIL). The default score id is
``<run_id>-<M>shot-all`` (or ``-fold<k>``).

With labels, a slide that any used fold model trained on or was selected
on (its fold's training or validation slides, from the run's
``splits.json``) is *in-sample*: the CSV marks it (``in_sample``), and the
metrics are computed over the out-of-sample slides only; the in-sample ones
get their own, labelled, metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch

from wsi_engine.errors import DataError
from wsi_engine.mil import fewshot
from wsi_engine.mil.base import MILModel
from wsi_engine.mil.metrics import classification_metrics
from wsi_engine.mil.rundir import load_checkpoint, read_run
from wsi_engine.slide.ids import sanitize_name
from wsi_engine.stage import StageObserver
from wsi_engine.store import PatchStore
from wsi_engine.training.device import resolve_device
from wsi_engine.training.records import CheckpointEntry, FitRunRecord
from wsi_engine.training.rundir import write_rows
from wsi_engine.training.stores import predict_stores


@dataclass
class PredictResult:
    """Rows of the predicted stores, {slide_id: reason} of the others, and metrics when labels were given.

    ``metrics``: over labelled slides no used fold model trained or was
    selected on; ``metrics_in_sample``: over the others (optimistic);
    ``n_out_of_sample`` / ``n_in_sample``: how many labelled slides each holds.
    """

    score_id: str
    rows: list[dict[str, Any]]
    failures: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] | None = None
    metrics_in_sample: dict[str, float] | None = None
    n_out_of_sample: int = 0
    n_in_sample: int = 0


def select_checkpoints(
    run: FitRunRecord, shots: int | None, fold: str
) -> tuple[int, list[CheckpointEntry]]:
    """(shots, checkpoint entries of run.json) for ``shots`` (default: the largest) and ``fold`` (``all`` or an index)."""
    entries = run.checkpoints
    if not entries:
        raise DataError("the run has no fold models (run.json lists no checkpoints)")
    available = sorted({e.shots for e in entries})
    shots = available[-1] if shots is None else shots
    chosen = [e for e in entries if e.shots == shots]
    if not chosen:
        raise DataError(
            f"the run has no {shots}-shot models (available: {', '.join(map(str, available))})"
        )
    if fold != "all":
        if not fold.isdigit() or not any(e.fold == int(fold) for e in chosen):
            folds = ", ".join(str(e.fold) for e in chosen)
            raise DataError(
                f"--fold {fold!r} is not a fold of this run", hint=f"use all or one of {folds}"
            )
        chosen = [e for e in chosen if e.fold == int(fold)]
    return shots, chosen


def seen_slides(run_dir: Path, shots: int, folds: list[int]) -> set[str]:
    """Training and validation slides of the run's (``shots``, fold) splits in ``folds``."""
    path = run_dir / "splits.json"
    if not path.is_file():
        raise DataError(
            "the run has no splits.json: cannot tell which slides its models saw", path=run_dir
        )
    return {
        slide
        for split in fewshot.load_splits_json(path)
        if split.shots == shots and split.fold in folds
        for slide in (*split.train, *split.val)
    }


def _labelled_metrics(
    rows: list[dict[str, Any]], class_names: list[str]
) -> dict[str, float] | None:
    """Metrics of ``rows`` with a known label, or None when they hold fewer than two classes."""
    known = [r for r in rows if r["label"] in class_names]
    if len({r["label"] for r in known}) < 2:
        return None
    targets = np.array([class_names.index(r["label"]) for r in known])
    probs = np.array([[r[f"prob_{c}"] for c in class_names] for r in known])
    return classification_metrics(targets, probs)


@torch.inference_mode()
def predict_bag(models: list[MILModel], features: torch.Tensor) -> dict[str, np.ndarray]:
    """Fold-averaged ``probs`` (C,), ``attention`` (N, C) and, when every model has one, ``instance_score`` (N,)."""
    outputs = [m(features) for m in models]
    result = {
        "probs": torch.stack([torch.softmax(o.logits, -1) for o in outputs]).mean(0).cpu().numpy(),
        "attention": torch.stack([o.attention for o in outputs]).mean(0).cpu().numpy(),
    }
    if all(o.instance_score is not None for o in outputs):
        scores = torch.stack([o.instance_score for o in outputs]).mean(0)
        result["instance_score"] = scores.cpu().numpy()
    return result


class Predictor:
    """A fit run's chosen fold models, loaded once, scoring one store at a time.

    ``score(store, features)`` returns the store's row (``slide_id``, ``predicted``,
    ``prob_<class>``, ``n_patches``) and writes ``scores/<score_id>`` unless
    ``write_scores`` is false.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        shots: int | None = None,
        fold: str = "all",
        score_id: str | None = None,
        write_scores: bool = True,
        device: str = "auto",
    ):
        self.run_dir = Path(run_dir)
        run = read_run(self.run_dir)
        self.shots, self.entries = select_checkpoints(run, shots, fold)
        self.device = resolve_device(device)
        loaded = [load_checkpoint(self.run_dir / e.path) for e in self.entries]
        self.models = [m.to(self.device) for m, _ in loaded]
        self.meta = loaded[0][1]
        self.run_id = run.run_id
        self.class_names: list[str] = list(self.meta.class_names)
        self.encoder_id: str = self.meta.encoder_id
        self.feature_dim = self.meta.feature_dim
        self.write_scores = write_scores
        self.score_id = sanitize_name(
            score_id
            or f"{self.run_id}-{self.shots}shot-{'all' if fold == 'all' else 'fold' + fold}"
        )

    def score(self, store: PatchStore, features: np.ndarray) -> dict[str, Any]:
        """The store's prediction row; ``scores/<score_id>`` written into it when asked."""
        out = predict_bag(self.models, torch.from_numpy(features).to(self.device))
        probs = out["probs"]
        predicted = self.class_names[int(np.argmax(probs))]
        if self.write_scores:
            arrays = {k: v.astype(np.float32) for k, v in out.items() if k != "probs"}
            attrs = {
                "kind": "bag",
                "model": self.meta.model,
                "task": self.meta.task,
                "class_names": list(self.class_names),
                "encoder_id": self.encoder_id,
                "slide_probs": [float(p) for p in probs],
                "predicted_class": predicted,
                "fit_run": str(self.run_dir.resolve()),
                "fit_run_id": self.run_id,
                "shots": self.shots,
                "folds": [e.fold for e in self.entries],
            }
            PatchStore.open(store.path, mode="r+").write_scores(self.score_id, arrays, attrs)
        return {
            "slide_id": store.slide_id,
            "predicted": predicted,
            **{f"prob_{c}": float(p) for c, p in zip(self.class_names, probs, strict=True)},
            "n_patches": store.n_patches,
        }


def predict(
    run_dir: str | Path,
    store_dirs: list[str | Path],
    out_csv: str | Path,
    *,
    shots: int | None = None,
    fold: str = "all",
    score_id: str | None = None,
    write_scores: bool = True,
    labels: dict[str, str] | None = None,
    observer: StageObserver | None = None,
    device: str = "auto",
) -> PredictResult:
    """Predict every store in ``store_dirs``; write ``out_csv`` and (optionally) ``scores/<score_id>``.

    The fold models are loaded once. Stores that cannot be predicted (no
    features for the run's encoder, no patches, NaN features, unreadable) are
    skipped and returned in ``failures`` by slide id; ``observer`` hears of
    every store, predicted or not (stage ``predict``).
    """
    predictor = Predictor(
        run_dir,
        shots=shots,
        fold=fold,
        score_id=score_id,
        write_scores=write_scores,
        device=device,
    )
    folds = [e.fold for e in predictor.entries]
    seen = seen_slides(predictor.run_dir, predictor.shots, folds) if labels else set()
    class_names = predictor.class_names

    def predict_one(store: PatchStore, features: np.ndarray) -> dict[str, Any]:
        row = predictor.score(store, features)
        if labels is not None:
            row["label"] = labels.get(store.slide_id, "")
            row["in_sample"] = store.slide_id in seen
        return row

    rows, failures = predict_stores(
        store_dirs, predictor.encoder_id, predictor.feature_dim, predict_one, observer
    )
    return finish_predictions(
        predictor.score_id, rows, failures, class_names, out_csv, labelled=labels is not None
    )


def finish_predictions(
    score_id: str,
    rows: list[dict[str, Any]],
    failures: dict[str, str],
    class_names: list[str],
    out_csv: str | Path,
    *,
    labelled: bool,
) -> PredictResult:
    """Write the predicted ``rows`` to ``out_csv``; with labels, metrics out of and in sample.

    Shared by the local and the cluster driver, so both write the same CSV and
    never mix in-sample slides into ``metrics``.
    """
    columns = [
        "slide_id",
        "predicted",
        *(f"prob_{c}" for c in class_names),
        *(["label", "in_sample"] if labelled else []),
        "n_patches",
    ]
    write_rows(Path(out_csv), rows, columns)
    result = PredictResult(score_id, rows, failures)
    if labelled:
        inside = [r for r in rows if r["in_sample"]]
        outside = [r for r in rows if not r["in_sample"]]
        result.metrics = _labelled_metrics(outside, class_names)
        result.metrics_in_sample = _labelled_metrics(inside, class_names)
        result.n_in_sample = sum(r["label"] in class_names for r in inside)
        result.n_out_of_sample = sum(r["label"] in class_names for r in outside)
    return result


class PredictOptions(TypedDict, total=False):
    """The keyword options of :func:`predict` that a driver passes through unchanged."""

    shots: int | None
    fold: str
    score_id: str | None
    write_scores: bool
    labels: dict[str, str] | None
    device: str
