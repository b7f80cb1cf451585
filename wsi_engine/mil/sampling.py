"""Class-balanced adaptive resampling of training slides (method reference §4.1, engine form).

Each epoch draws ``n`` training slides with replacement. Class c (n_c slides,
frequency r_c = n_c / n) is drawn with probability

    π_c ∝ r_c^(1−β) · max(q_c, q_min),      q_c = mean_{i ∈ c} (1 − p_t,i)^γ

where p_t,i is the true-class probability the model gave slide i the last
time it was trained on (1/C before that); slides within a class are equally
likely. β = 1 (default) removes the class frequency entirely (balanced
classes, modulated by difficulty); β = 0 keeps natural frequencies, as the
released AMLPF-CLIP code effectively does. ``q_min`` keeps a learned class
from vanishing from the epochs.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

ResampleBeta = Annotated[float, Field(ge=0, le=1)]
"""β in [0, 1], a training-config field shared by the bag and patch trainers."""


class AdaptiveResampler:
    """Draws epoch orders of slide indices 0..n-1 for ``targets`` (n,) class indices."""

    def __init__(
        self,
        targets: np.ndarray,
        n_classes: int,
        seed: int,
        gamma: float = 2.0,
        beta: float = 1.0,
        q_min: float = 0.01,
    ):
        self.targets = np.asarray(targets, dtype=np.int64)
        self.n_classes = n_classes
        self.gamma = gamma
        self.beta = beta
        self.q_min = q_min
        self.p_true = np.full(len(self.targets), 1.0 / n_classes)
        self.rng = np.random.default_rng(seed)

    def class_probabilities(self) -> np.ndarray:
        """(C,) probability of drawing each class next epoch (0 for classes without slides)."""
        counts = np.bincount(self.targets, minlength=self.n_classes).astype(float)
        present = counts > 0
        hardness = np.zeros(self.n_classes)
        for c in np.flatnonzero(present):
            hardness[c] = np.mean((1.0 - self.p_true[self.targets == c]) ** self.gamma)
        weights = np.zeros(self.n_classes)
        weights[present] = (counts[present] / counts.sum()) ** (1.0 - self.beta) * np.maximum(
            hardness[present], self.q_min
        )
        return weights / weights.sum()

    def epoch(self) -> np.ndarray:
        """Indices of the slides to train on this epoch, in order (length n, with replacement)."""
        counts = np.bincount(self.targets, minlength=self.n_classes)
        per_slide = self.class_probabilities()[self.targets] / counts[self.targets]
        return self.rng.choice(
            len(self.targets), size=len(self.targets), replace=True, p=per_slide / per_slide.sum()
        )

    def update(self, index: int, p_true: float) -> None:
        """Record the true-class probability of slide ``index`` seen in training."""
        self.p_true[index] = p_true
