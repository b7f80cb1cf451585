"""Train one MIL head on one split: whole bags, one bag per step, early stopping on validation.

* Optimiser: AdamW (``lr``, ``weight_decay``), constant learning rate, one
  optimiser step per bag (bag batch size 1, as in the Libra-MIL code).
* Epoch order: a seeded permutation of the training slides, or, with
  ``resample``, the class-balanced adaptive draw of :mod:`wsi_engine.mil.sampling`.
* Model selection (:mod:`wsi_engine.training.loop`): after every epoch the
  validation slides are scored; the checkpoint kept is the epoch with the
  best validation balanced accuracy, ties broken by higher validation AUC,
  then by lower validation cross-entropy in steps of ``val_loss_tolerance``
  (1e-3): once the validation slides are separated and their loss is within
  the tolerance of 0, later epochs (which only grow more confident) tie, the
  earliest is kept and training stops ``patience`` epochs later. Without the
  tolerance the kept checkpoint was the last epoch whenever validation
  saturated (docs/mil.md, real-feature benchmark). Training stops after
  ``patience`` epochs without a better checkpoint, or after ``epochs``.
* Determinism: the caller seeds torch
  (:func:`wsi_engine.training.seeding.seed_everything`); the epoch order uses
  its own numpy generator, so equal seeds give equal runs on the same machine
  and thread count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from wsi_engine.config.loader import StrictModel
from wsi_engine.mil.base import InstanceSample, MILModel
from wsi_engine.mil.data import BagReader
from wsi_engine.mil.losses import FocalGamma, LossName, ReinforceWeight, make_loss
from wsi_engine.mil.metrics import classification_metrics
from wsi_engine.mil.sampling import AdaptiveResampler, ResampleBeta
from wsi_engine.training.loop import run_epochs, selection_key


class TrainConfig(StrictModel):
    """Optimisation settings of one fold."""

    epochs: int = Field(40, ge=1)
    patience: int = Field(
        10, ge=1, description="epochs without a better validation checkpoint before stopping"
    )
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    loss: LossName = "ce"
    gamma: FocalGamma = 2.0
    reinforce: ReinforceWeight = 1.0
    resample: bool = False
    resample_beta: ResampleBeta = 1.0
    val_loss_tolerance: float = Field(
        1e-3,
        ge=0,
        description="validation cross-entropies closer than this tie in model selection "
        "(the earlier epoch is kept); 0: any decrease counts",
    )
    kmeans_patches: int = Field(
        20000,
        ge=1,
        description="training patches pooled for data-dependent prototype initialisation "
        "(k-means, the contrast fusion's diagnostic and background prototypes)",
    )


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
    return np.stack(
        [torch.softmax(model(reader.get(s)).logits, -1).cpu().numpy() for s in slide_ids]
    )


@dataclass(frozen=True)
class Part:
    """Slides of one split part and their class indices (n,)."""

    ids: list[str]
    targets: np.ndarray


class Bags(Protocol):
    """Where training reads bags: ``get(slide_id)`` → (N, D) float32 tensor (:class:`BagReader`)."""

    def get(self, slide_id: str) -> torch.Tensor: ...


def sample_instances(bags: Bags, part: Part, max_total: int, seed: int) -> InstanceSample:
    """At most ``max_total`` patches pooled evenly over ``part``'s slides (seeded), each labelled
    with its slide's class and index."""
    rng = np.random.default_rng(seed)
    per_slide = max(1, max_total // max(1, len(part.ids)))
    chosen = []
    for slide_id in part.ids:
        bag = bags.get(slide_id).cpu().numpy()
        take = rng.choice(len(bag), size=min(per_slide, len(bag)), replace=False)
        chosen.append(bag[np.sort(take)])
    sample = InstanceSample.from_bags(chosen, [int(t) for t in part.targets])
    keep = slice(0, max_total)
    return InstanceSample(sample.features[keep], sample.targets[keep], sample.bags[keep])


def prepare_model(model: MILModel, bags: Bags, train: Part, max_patches: int, seed: int) -> None:
    """The model's data-dependent initialisation (:meth:`MILModel.prepare`) from a sample of the
    training slides' patches, when it wants one (k-means prototypes, the contrast fusion)."""
    if model.wants_instance_sample:
        model.prepare(sample_instances(bags, train, max_patches, seed), seed)


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
    auxiliary: torch.nn.Module | None = None,
) -> FoldResult:
    """Train ``model`` on ``train``, select the checkpoint on ``val``, evaluate it on ``test``.

    ``auxiliary(output.bag_embedding, slide_id)``, optional, adds a loss term per
    training bag; its own parameters train with the model and are not kept.
    """
    start = time.perf_counter()
    loss_fn = make_loss(config.loss, config.gamma, config.reinforce)
    groups = model.param_groups(config.lr)
    if auxiliary is not None:
        groups.append({"params": list(auxiliary.parameters()), "lr": config.lr})
    optimiser = torch.optim.AdamW(
        groups,
        lr=config.lr,
        weight_decay=config.weight_decay,
        foreach=True,
    )
    rng = np.random.default_rng(seed)
    resampler = (
        AdaptiveResampler(train.targets, n_classes, seed, config.gamma, config.resample_beta)
        if config.resample
        else None
    )
    targets = torch.as_tensor(train.targets, dtype=torch.long)
    val_metrics: list[dict[str, float]] = []

    def train_epoch() -> dict[str, Any]:
        order = resampler.epoch() if resampler is not None else rng.permutation(len(train.ids))
        losses, grad_norms = [], []
        for index in order:
            out = model(reader.get(train.ids[index]))
            logits = out.logits
            loss = loss_fn(logits[None], targets[index : index + 1].to(logits.device))
            if auxiliary is not None:
                loss = loss + auxiliary(out.bag_embedding, train.ids[index])
            optimiser.zero_grad(set_to_none=True)
            (loss if out.aux_loss is None else loss + out.aux_loss).backward()
            grad_norms.append(model.gradient_norms())
            optimiser.step()
            losses.append(float(loss.detach()))
            if resampler is not None:
                resampler.update(
                    int(index), float(torch.softmax(logits.detach(), -1)[targets[index]])
                )
        means = {k: float(np.mean([g[k] for g in grad_norms])) for k in grad_norms[0]}
        return {"train_loss": float(np.mean(losses)), **means}

    def validate() -> tuple[dict[str, Any], tuple[float, ...]]:
        probs = predict_probs(model, reader, val.ids)
        loss = float(
            F.nll_loss(
                torch.log(torch.from_numpy(probs).clamp_min(1e-12)), torch.as_tensor(val.targets)
            )
        )
        val_metrics.append(classification_metrics(val.targets, probs))
        record = {"val_loss": loss, **{f"val_{k}": v for k, v in val_metrics[-1].items()}}
        record.update(model.evaluation_diagnostics(reader.get(s) for s in val.ids))
        tied = -round(loss / config.val_loss_tolerance) if config.val_loss_tolerance else -loss
        return record, selection_key(val_metrics[-1], tied)

    epochs = run_epochs(model, config.epochs, config.patience, train_epoch, validate, on_epoch)
    test_probs = predict_probs(model, reader, test.ids)
    return FoldResult(
        best_epoch=epochs.best_epoch,
        history=epochs.history,
        state_dict=epochs.state_dict,
        val_metrics=val_metrics[epochs.best_epoch - 1],
        test_ids=list(test.ids),
        test_probs=test_probs,
        test_metrics=classification_metrics(test.targets, test_probs),
        seconds=time.perf_counter() - start,
    )
