"""The epoch loop of every trainer: early stopping on a validation key, the best epoch's weights kept.

Each epoch, with the model in training mode, ``train_epoch()`` trains and
returns its record entries (losses); ``validate()`` returns the validation
entries and the epoch's selection key (higher is better; ``None`` when there
is nothing to validate on, and then the latest epoch is kept). The kept
weights are those of the epoch with the highest key, the earliest among equal
keys; training stops after ``patience`` epochs without a better one, or after
``epochs``, and the kept weights are loaded back into the model. Every
epoch's record, ``{"epoch", **train, **validation, **model.diagnostics(),
"best_epoch", "seconds"}``, goes to the history and to ``on_epoch``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

Record = dict[str, Any]


@dataclass
class EpochsResult:
    """The kept epoch (1-based), every epoch's record, and the kept weights."""

    best_epoch: int
    history: list[Record]
    state_dict: dict[str, torch.Tensor]


def selection_key(metrics: dict[str, float], *ties: float) -> tuple[float, ...]:
    """(balanced accuracy, AUC, *ties): higher is better; a missing metric or undefined AUC counts −1."""
    auc = metrics.get("auc", float("nan"))
    return (metrics.get("balanced_accuracy", -1.0), -1.0 if math.isnan(auc) else auc, *ties)


def run_epochs(
    model: torch.nn.Module,
    epochs: int,
    patience: int,
    train_epoch: Callable[[], Record],
    validate: Callable[[], tuple[Record, tuple[float, ...] | None]],
    on_epoch: Callable[[Record], None] | None = None,
) -> EpochsResult:
    """Train ``model`` (a module with ``diagnostics()``) for at most ``epochs`` epochs (module docstring)."""
    history: list[Record] = []
    best_key: tuple[float, ...] | None = None
    best_epoch, best_state = 0, {}
    for epoch in range(1, epochs + 1):
        tick = time.perf_counter()
        model.train()
        record = {"epoch": epoch, **train_epoch()}
        validation, key = validate()
        record.update(validation)
        if key is None or best_key is None or key > best_key:
            best_key, best_epoch, best_state = key, epoch, copy.deepcopy(model.state_dict())
        record.update(
            {**model.diagnostics(), "best_epoch": best_epoch, "seconds": time.perf_counter() - tick}
        )
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    return EpochsResult(best_epoch, history, best_state)
