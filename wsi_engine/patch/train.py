"""Train a :class:`~wsi_engine.patch.head.PatchHead` on a :class:`~wsi_engine.patch.dataset.PatchSet`.

One epoch:

* labelled patches are drawn by the class-balanced adaptive resampler of
  :mod:`wsi_engine.mil.sampling` (reference §4.1; per-patch true-class
  probabilities recorded as they are trained on), or a seeded permutation
  with ``resample`` off; patches without a hard target but with a soft one
  are all added once, shuffled in;
* per mini-batch of ``batch_size`` patches the loss is

      L = L_cls(labelled rows) + λ_kd · L_kd(rows with soft targets) + λ_m · L_metric(rows with a second view)

  L_cls from :func:`wsi_engine.mil.losses.make_loss` (reinforced focal by
  default), L_kd :func:`~wsi_engine.patch.losses.distillation_l2`, L_metric
  :func:`~wsi_engine.patch.losses.multiscale_metric_loss`; AdamW.
* validation: metrics of :mod:`wsi_engine.mil.metrics` on the labelled
  validation patches. The kept epoch has the best validation balanced
  accuracy, ties broken by AUC (:mod:`wsi_engine.training.loop`, the bag
  trainer's loop); training stops after ``patience`` epochs without
  improvement. Without validation patches the last epoch is kept.

Determinism: torch is seeded by :func:`wsi_engine.training.seeding.seed_everything`,
the epoch order by numpy generators from the same seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import Field

from wsi_engine.config.loader import StrictModel
from wsi_engine.mil.losses import FocalGamma, LossName, ReinforceWeight, make_loss
from wsi_engine.mil.metrics import classification_metrics
from wsi_engine.mil.sampling import AdaptiveResampler, ResampleBeta
from wsi_engine.patch.dataset import PatchSet
from wsi_engine.patch.head import PatchHead
from wsi_engine.patch.losses import MetricName, distillation_l2, multiscale_metric_loss
from wsi_engine.training.loop import run_epochs, selection_key
from wsi_engine.training.seeding import seed_everything

Auxiliary = Callable[[torch.nn.Module, np.ndarray, torch.Tensor], torch.Tensor]


class PatchTrainConfig(StrictModel):
    """Optimisation settings of a patch classifier."""

    epochs: int = Field(30, ge=1)
    patience: int = Field(
        5, ge=1, description="epochs without a better validation score before stopping"
    )
    batch_size: int = Field(256, ge=2)
    lr: float = Field(1e-2, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    loss: LossName = "reinforced-focal"
    gamma: FocalGamma = 2.0
    reinforce: ReinforceWeight = 1.0
    resample: bool = True
    resample_beta: ResampleBeta = 1.0
    distill_weight: float = Field(
        1.0, ge=0, description="λ_kd of the L2 distillation to the bag model's distributions"
    )
    metric: MetricName = "none"
    metric_weight: float = Field(0.5, ge=0)
    metric_margin: float = Field(0.5, gt=0, le=2)
    val_fraction: float = Field(
        0.2, ge=0, lt=1, description="fraction of slides (images) per class held out"
    )


@dataclass
class TrainResult:
    """The selected epoch, per-epoch history and the selected head's validation outputs."""

    best_epoch: int
    history: list[dict[str, Any]]
    val_targets: np.ndarray
    val_probs: np.ndarray
    seconds: float


@torch.inference_mode()
def predict_probs(head: PatchHead, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """(M, C) float32 softmax probabilities of ``features`` (M, D)."""
    head.eval()
    device = head.bias.device
    out = [
        torch.softmax(
            head(
                torch.from_numpy(np.asarray(features[i : i + batch_size], dtype=np.float32)).to(
                    device
                )
            ),
            -1,
        ).cpu()
        for i in range(0, len(features), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, head.bias.shape[0]), dtype=np.float32)


def evaluate(head: PatchHead, patches: PatchSet) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """(targets, probs, metrics) of the labelled patches of ``patches``."""
    rows = patches.labelled()
    targets = patches.hard[rows]
    probs = predict_probs(head, patches.features[rows])
    return targets, probs, classification_metrics(targets, probs) if len(targets) else {}


class _EpochSampler:
    """Epoch orders of training rows: resampled labelled rows plus every soft-only row."""

    def __init__(self, patches: PatchSet, n_classes: int, config: PatchTrainConfig, seed: int):
        self.labelled = np.flatnonzero(patches.labelled())
        self.soft_only = (
            np.flatnonzero(~patches.labelled())
            if patches.soft is not None
            else np.zeros(0, dtype=np.int64)
        )
        self.position = np.full(len(patches), -1, dtype=np.int64)
        self.position[self.labelled] = np.arange(len(self.labelled))
        self.rng = np.random.default_rng(seed)
        self.resampler = None
        if config.resample and len(self.labelled):
            self.resampler = AdaptiveResampler(
                patches.hard[self.labelled], n_classes, seed, config.gamma, config.resample_beta
            )

    def epoch(self) -> np.ndarray:
        drawn = (
            self.resampler.epoch()
            if self.resampler is not None
            else self.rng.permutation(len(self.labelled))
        )
        return self.rng.permutation(np.concatenate([self.labelled[drawn], self.soft_only]))

    def record(self, rows: np.ndarray, p_true: np.ndarray) -> None:
        """Remember the true-class probability of labelled ``rows`` for the next epoch's draw."""
        if self.resampler is not None:
            for row, p in zip(rows, p_true, strict=True):
                self.resampler.update(int(self.position[row]), float(p))


def _batch_loss(
    head: PatchHead,
    patches: PatchSet,
    rows: np.ndarray,
    config: PatchTrainConfig,
    loss_fn: Callable,
    auxiliary: Auxiliary | None = None,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """(loss, its parts, logits (B, C)) of training rows ``rows`` (on the head's device)."""
    device = head.bias.device
    features = torch.from_numpy(patches.features[rows]).to(device)
    embedded = head.embed(features)
    logits = head.logits_from_embedding(embedded)
    hard = torch.from_numpy(patches.hard[rows]).to(device)
    labelled = hard >= 0
    parts: dict[str, torch.Tensor] = {}
    if labelled.any():
        parts["cls"] = loss_fn(logits[labelled], hard[labelled])
    if patches.soft is not None and config.distill_weight > 0:
        parts["kd"] = config.distill_weight * distillation_l2(
            torch.softmax(logits, -1), torch.from_numpy(patches.soft[rows]).to(device)
        )
    if patches.views is not None and config.metric != "none":
        views = patches.views[rows]
        view_rows = ~np.isnan(views).any(axis=1)
        has_view = torch.from_numpy(view_rows).to(device)
        if view_rows.sum() > 1:
            positive = head.embed(torch.from_numpy(views[view_rows]).to(device))
            metric = multiscale_metric_loss(
                embedded[has_view], positive, hard[has_view], config.metric, config.metric_margin
            )
            parts["metric"] = config.metric_weight * metric
    if auxiliary is not None:
        parts["text"] = auxiliary(head, rows, embedded)
    loss = sum(parts.values(), torch.zeros((), device=device))
    return loss, {k: float(v.detach()) for k, v in parts.items()}, logits


def train_head(
    head: PatchHead,
    train: PatchSet,
    val: PatchSet,
    n_classes: int,
    config: PatchTrainConfig,
    seed: int,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    auxiliary: Auxiliary | None = None,
) -> TrainResult:
    """Train ``head`` in place on ``train``, keep the best epoch on ``val`` (module docstring).

    ``auxiliary(head, rows, h)`` adds a loss term for training ``rows`` of embeddings ``h``.
    """
    start = time.perf_counter()
    seed_everything(seed)
    loss_fn = make_loss(config.loss, config.gamma, config.reinforce)
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sampler = _EpochSampler(train, n_classes, config, seed)
    has_val = bool(val.labelled().any())

    def train_epoch() -> dict[str, Any]:
        order = sampler.epoch()
        sums: dict[str, float] = {}
        batches = range(0, len(order), config.batch_size)
        for first in batches:
            rows = order[first : first + config.batch_size]
            loss, parts, logits = _batch_loss(head, train, rows, config, loss_fn, auxiliary)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            for key, value in {"loss": float(loss.detach()), **parts}.items():
                sums[key] = sums.get(key, 0.0) + value
            labelled = train.hard[rows] >= 0
            p = torch.softmax(logits.detach().cpu()[torch.from_numpy(labelled)], -1).numpy()
            sampler.record(rows[labelled], p[np.arange(len(p)), train.hard[rows][labelled]])
        return {f"train_{k}": v / max(1, len(batches)) for k, v in sums.items()}

    def validate() -> tuple[dict[str, Any], tuple[float, ...] | None]:
        if not has_val:
            return {}, None
        _, _, metrics = evaluate(head, val)
        return {f"val_{k}": v for k, v in metrics.items()}, selection_key(metrics)

    epochs = run_epochs(head, config.epochs, config.patience, train_epoch, validate, on_epoch)
    targets, probs, _ = evaluate(head, val)
    return TrainResult(
        epochs.best_epoch, epochs.history, targets, probs, time.perf_counter() - start
    )
