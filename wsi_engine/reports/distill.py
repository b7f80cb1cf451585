"""CLIP-IT's distillation of privileged text into image-only classifiers (reference §4.2).

Patch classifiers (late fusion; h_t = the unit embedding of an image's
paired report, frozen text tower; D_t its width)::

    h_v = head.embed(x)                    (D,)   the patch head's image embedding
    z_v = head.logits_from_embedding(h_v)  (C,)
    u   = W h_v                            (D_t,) W: Linear(D → D_t)
    z_t = g(û)                             (C,)   g = text classifier, Linear-LeakyReLU(0.1)-Linear
    out = F [log σ(z_v) ; log σ(z_t)]      (C,)   F: Linear(2C → C), starts as the sum
    L   = L_cls(out, y) + λ · mean_b (1 − cos(h_t, u))

L_cls acts on logits (the released code's cross-entropy on probabilities is a
double softmax; reference §4.2 [I]). g reads û = u / ‖u‖ (our choice; the
paper feeds u): g is trained in stage 1 on unit report embeddings and the
1 − cos term fixes only u's direction, so without it g's logits on u had an
arbitrary scale and the text branch vanished beside the image logits. For
the same reason F fuses the branches' log-probabilities (log-softmax), not
their raw logits (the paper's choice): it starts as a product of the two
experts, so neither branch's logit scale drowns the other. g is first trained alone on the paired
reports' embeddings (stage 1, :func:`train_text_classifier`). At inference
only the image path runs: the text branch's logits come from u = W h_v.

Slide classifiers: the same term on the bag representation b of a MIL head
(:attr:`~wsi_engine.mil.base.MILOutput.bag_embedding`),
λ · (1 − cos(h_t, W b)) with a W learned during training and dropped after
(:class:`BagDistiller`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ImageHead(Protocol):
    """What the late fusion needs of an image head (:class:`wsi_engine.patch.head.PatchHead`).

    Named here so this package stays below ``patch`` (which imports it).
    """

    bias: torch.Tensor
    """(C,) logit bias"""
    class_embeddings: torch.Tensor
    """(L, C, D) class embeddings; D is the width of the head's embedding"""

    def embed(self, features: torch.Tensor) -> torch.Tensor: ...

    def logits_from_embedding(self, embedded: torch.Tensor) -> torch.Tensor: ...

    def diagnostics(self) -> dict[str, float]: ...


def cosine_distance(target: torch.Tensor, mapped: torch.Tensor) -> torch.Tensor:
    """mean over rows of 1 − cos(target, mapped); both (B, D_t) (or (D_t,))."""
    return (1.0 - F.cosine_similarity(target, mapped, dim=-1)).mean()


class TextClassifier(nn.Sequential):
    """g: Linear(D_t, D_t) → LeakyReLU(0.1) → Linear(D_t, C) on text-space vectors (B, D_t)."""

    def __init__(self, text_dim: int, n_classes: int):
        super().__init__(
            nn.Linear(text_dim, text_dim), nn.LeakyReLU(0.1), nn.Linear(text_dim, n_classes)
        )


class LateFusionHead(nn.Module):
    """A patch head with CLIP-IT's text branch (module docstring); ``forward(x (B, D)) -> logits (B, C)``.

    Exposes the :class:`ImageHead` interface the patch trainer and predictor
    use (``embed``, ``logits_from_embedding``, ``diagnostics``, ``bias``).
    """

    def __init__(self, image: ImageHead, text_dim: int, text: TextClassifier):
        super().__init__()
        n_classes = image.bias.shape[0]
        feature_dim = image.class_embeddings.shape[-1]
        self.image = image
        self.to_text = nn.Linear(feature_dim, text_dim)
        self.text = text
        self.fuse = nn.Linear(2 * n_classes, n_classes)
        with torch.no_grad():
            if feature_dim == text_dim:  # joint features: start from the identity, u = h_v
                self.to_text.weight.copy_(torch.eye(text_dim))
                self.to_text.bias.zero_()
            eye = torch.eye(n_classes)
            self.fuse.weight.copy_(torch.cat([eye, eye], dim=1))
            self.fuse.bias.zero_()

    @property
    def bias(self) -> torch.Tensor:
        """(C,) bias of the fused logits."""
        return self.fuse.bias

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.image.embed(features)

    def text_space(self, embedded: torch.Tensor) -> torch.Tensor:
        """u = W h_v (B, D_t) of image embeddings h_v (B, D)."""
        return self.to_text(embedded)

    def logits_from_embedding(self, embedded: torch.Tensor) -> torch.Tensor:
        z_v = self.image.logits_from_embedding(embedded)
        z_t = self.text(F.normalize(self.text_space(embedded), dim=-1))
        return self.fuse(torch.cat([F.log_softmax(z_v, -1), F.log_softmax(z_t, -1)], dim=-1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.logits_from_embedding(self.embed(features))

    def diagnostics(self) -> dict[str, float]:
        return self.image.diagnostics()


class PatchTextTargets:
    """The auxiliary loss of the patch trainer: λ · mean(1 − cos(h_t, W h_v)) of the batch's paired reports.

    ``targets`` (M, D_t) holds h_t for every training row (the trainer's row indices).
    """

    def __init__(self, targets: np.ndarray, weight: float):
        self.targets = torch.from_numpy(np.asarray(targets, dtype=np.float32))
        self.weight = weight

    def __call__(self, head: nn.Module, rows: np.ndarray, embedded: torch.Tensor) -> torch.Tensor:
        u = head.text_space(embedded)
        return self.weight * cosine_distance(self.targets[torch.from_numpy(rows)], u)


def train_text_classifier(
    classifier: TextClassifier,
    text: np.ndarray,
    targets: np.ndarray,
    epochs: int,
    lr: float,
    weight_decay: float,
    seed: int,
    batch_size: int = 64,
) -> list[float]:
    """Stage 1: fit g on the paired reports' embeddings ``text`` (M, D_t) and labels (M,); returns epoch losses.

    Adam (the paper's optimiser), cross-entropy on logits, seeded order.
    """
    x = torch.from_numpy(np.asarray(text, dtype=np.float32))
    y = torch.from_numpy(np.asarray(targets, dtype=np.int64))
    optimiser = torch.optim.Adam(classifier.parameters(), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    losses = []
    classifier.train()
    for _ in range(epochs):
        total = 0.0
        order = rng.permutation(len(x))
        for start in range(0, len(order), batch_size):
            rows = torch.from_numpy(order[start : start + batch_size])
            loss = F.cross_entropy(classifier(x[rows]), y[rows])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(rows)
        losses.append(total / max(1, len(x)))
    return losses


class BagDistiller(nn.Module):
    """λ · (1 − cos(h_t, W b)) for a bag representation b (H,) and its slide's paired report h_t (D_t,).

    ``targets`` maps slide ids to h_t; slides without one add nothing. W is
    trained with the MIL head and not kept in its checkpoint.
    """

    def __init__(self, bag_dim: int, targets: dict[str, np.ndarray], weight: float):
        super().__init__()
        text_dim = len(next(iter(targets.values())))
        self.to_text = nn.Linear(bag_dim, text_dim)
        self.targets = {
            k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in targets.items()
        }
        self.weight = weight

    def forward(self, bag_embedding: torch.Tensor | None, slide_id: str) -> torch.Tensor:
        target = self.targets.get(slide_id)
        if target is None or bag_embedding is None:
            return torch.zeros(())
        return self.weight * cosine_distance(target, self.to_text(bag_embedding))
