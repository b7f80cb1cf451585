"""Train one MIL head on one split: whole bags, one bag per step, early stopping on validation.

* Optimiser: AdamW (``lr``, ``weight_decay``), constant learning rate, one
  optimiser step per bag (bag batch size 1, as in the Libra-MIL code).
* Epoch order: a seeded permutation of the training slides, or, with
  ``resample``, the class-balanced adaptive draw of :mod:`wsi_engine.mil.sampling`.
* Model selection: after every epoch the validation slides are scored; the
  checkpoint kept is the epoch with the best validation balanced accuracy,
  ties broken by higher validation AUC, then by lower validation
  cross-entropy. Training stops after ``patience`` epochs without a better
  checkpoint, or after ``epochs``.
* Determinism: the caller seeds torch (:func:`seed_everything`); the epoch
  order uses its own numpy generator, so equal seeds give equal runs on the
  same machine and thread count.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from wsi_engine.config.loader import StrictModel
from wsi_engine.errors import ConfigError
from wsi_engine.mil.base import MILModel
from wsi_engine.mil.data import BagReader
from wsi_engine.mil.losses import LossName, make_loss
from wsi_engine.mil.metrics import classification_metrics
from wsi_engine.mil.sampling import AdaptiveResampler


class TrainConfig(StrictModel):
    """Optimisation settings of one fold."""

    epochs: int = Field(40, ge=1)
    patience: int = Field(
        10, ge=1, description="epochs without a better validation checkpoint before stopping"
    )
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    loss: LossName = "ce"
    gamma: float = Field(
        2.0, ge=0, description="focusing exponent of the focal losses and of the resampler"
    )
    reinforce: float = Field(1.0, ge=0, description="λ of the reinforced focal loss")
    resample: bool = False
    resample_beta: float = Field(1.0, ge=0, le=1)
    kmeans_patches: int = Field(
        20000, ge=1, description="training patches pooled for k-means prototype initialisation"
    )


def set_threads(threads: int | None) -> None:
    """Use ``threads`` intra-op CPU threads in torch (``None``: leave torch's default)."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"--threads {threads} must be at least 1")
    torch.set_num_threads(threads)


def seed_everything(*keys: int) -> int:
    """Seed torch from ``keys`` (e.g. seed, shots, fold); returns the derived seed."""
    derived = int(np.random.SeedSequence(list(keys)).generate_state(1)[0])
    torch.manual_seed(derived)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return derived


@dataclass
class FoldResult:
    """Outcome of :func:`train_fold`; ``state_dict`` is the selected checkpoint."""

    best_epoch: int
    history: list[dict[str, Any]]
    state_dict: dict[str, torch.Tensor]
    val_metrics: dict[str, float]
    test_ids: list[str]
    test_probs: np.ndarray
    test_metrics: dict[str, float]
    seconds: float = field(default=0.0)


@torch.inference_mode()
def predict_probs(model: MILModel, reader: BagReader, slide_ids: list[str]) -> np.ndarray:
    """(n, C) softmax probabilities of ``slide_ids``."""
    model.eval()
    return np.stack([torch.softmax(model(reader.get(s)).logits, -1).numpy() for s in slide_ids])


def _selection_key(metrics: dict[str, float], loss: float) -> tuple[float, float, float]:
    auc = metrics["auc"]
    return (metrics["balanced_accuracy"], -1.0 if math.isnan(auc) else auc, -loss)


@dataclass(frozen=True)
class Part:
    """Slides of one split part and their class indices (n,)."""

    ids: list[str]
    targets: np.ndarray


def train_fold(
    model: MILModel,
    reader: BagReader,
    train: Part,
    val: Part,
    test: Part,
    n_classes: int,
    config: TrainConfig,
    seed: int,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> FoldResult:
    """Train ``model`` on ``train``, select the checkpoint on ``val``, evaluate it on ``test``."""
    start = time.perf_counter()
    train_ids, train_y = train.ids, train.targets
    val_ids, val_y = val.ids, val.targets
    loss_fn = make_loss(config.loss, config.gamma, config.reinforce)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True
    )
    rng = np.random.default_rng(seed)
    resampler = (
        AdaptiveResampler(train_y, n_classes, seed, config.gamma, config.resample_beta)
        if config.resample
        else None
    )
    history: list[dict[str, Any]] = []
    best_key: tuple[float, float, float] | None = None
    best_state: dict[str, torch.Tensor] = {}
    best_epoch, best_val = 0, {}
    targets = torch.as_tensor(train_y, dtype=torch.long)
    for epoch in range(1, config.epochs + 1):
        tick = time.perf_counter()
        model.train()
        order = resampler.epoch() if resampler is not None else rng.permutation(len(train_ids))
        losses = []
        for index in order:
            logits = model(reader.get(train_ids[index])).logits
            loss = loss_fn(logits[None], targets[index : index + 1])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            if resampler is not None:
                resampler.update(
                    int(index), float(torch.softmax(logits.detach(), -1)[targets[index]])
                )
        val_probs = predict_probs(model, reader, val_ids)
        val_loss = float(
            F.nll_loss(
                torch.log(torch.from_numpy(val_probs).clamp_min(1e-12)), torch.as_tensor(val_y)
            )
        )
        val_metrics = classification_metrics(val_y, val_probs)
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "val_loss": val_loss,
            **{f"val_{k}": v for k, v in val_metrics.items()},
            **model.diagnostics(),
            "seconds": time.perf_counter() - tick,
        }
        key = _selection_key(val_metrics, val_loss)
        improved = best_key is None or key > best_key
        if improved:
            best_key, best_epoch, best_val = key, epoch, val_metrics
            best_state = copy.deepcopy(model.state_dict())
        record["best_epoch"] = best_epoch
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    test_probs = predict_probs(model, reader, test.ids)
    return FoldResult(
        best_epoch=best_epoch,
        history=history,
        state_dict=best_state,
        val_metrics=best_val,
        test_ids=list(test.ids),
        test_probs=test_probs,
        test_metrics=classification_metrics(test.targets, test_probs),
        seconds=time.perf_counter() - start,
    )
