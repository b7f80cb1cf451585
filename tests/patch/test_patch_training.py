"""Training from noisy bag evidence beats the evidence itself; losses; determinism."""

from __future__ import annotations

import numpy as np
import torch

from wsi_engine.patch.dataset import PatchSet, split_patch_set
from wsi_engine.patch.evaluate import SlidePatchScores, compare_patch_auc
from wsi_engine.patch.head import HeadConfig, build_head
from wsi_engine.patch.losses import distillation_l2, multiscale_metric_loss
from wsi_engine.patch.targets import SlideEvidence, TargetConfig, slide_targets
from wsi_engine.patch.train import PatchTrainConfig, predict_probs, train_head


def patch_set(slides, config: TargetConfig) -> PatchSet:
    parts = [
        slide_targets(SlideEvidence(s.attention, None, s.slide_probs), s.label, 0, config)
        for s in slides
    ]
    return PatchSet(
        np.concatenate([s.features for s in slides]),
        np.concatenate([t.hard for t in parts]),
        np.concatenate([t.soft for t in parts]),
        np.concatenate([np.full(len(s.features), g) for g, s in enumerate(slides)]),
        [s.slide_id for s in slides],
        np.array([s.label for s in slides]),
    )


def test_patch_classifier_beats_the_noisy_bag_attention(slide_factory):
    slides = slide_factory(n_per_class=12, seed=1)
    train, val = split_patch_set(
        patch_set(slides, TargetConfig(evidence="attention")), 0.25, seed=0
    )
    dim = train.features.shape[1]
    head = build_head(HeadConfig(), dim, 2, None, seed=0)
    result = train_head(
        head,
        train,
        val,
        2,
        PatchTrainConfig(epochs=12, patience=12, batch_size=128),
        seed=0,
    )
    assert result.best_epoch >= 1 and len(result.val_probs) == len(result.val_targets) > 0
    test_slides = slide_factory(n_per_class=6, seed=2)
    scored = [
        SlidePatchScores(
            s.slide_id, s.lesion.astype(float), s.attention, predict_probs(head, s.features)
        )
        for s in test_slides
    ]
    report = compare_patch_auc(scored, class_index=1)
    assert report.n_positive > 0 and report.n_slides == 12
    assert report.patch_classifier >= report.bag_attention + 0.05, report
    assert report.patch_classifier >= 0.9, report


def test_training_is_deterministic(slide_factory):
    patches = patch_set(
        slide_factory(n_per_class=3, seed=4, n=40), TargetConfig(evidence="attention")
    )
    train, val = split_patch_set(patches, 0.34, seed=0)
    config = PatchTrainConfig(epochs=2, batch_size=32)
    states = []
    for _ in range(2):
        head = build_head(HeadConfig(hidden=8), train.features.shape[1], 2, None, seed=0)
        train_head(head, train, val, 2, config, seed=5)
        states.append(head.state_dict())
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key])


def test_distillation_and_metric_losses():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    q = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    np.testing.assert_allclose(float(distillation_l2(p, q)), np.sqrt(2) / 2, rtol=1e-6)
    anchor = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=-1
    )
    labels = torch.tensor([0, 1, -1])  # the unlabelled third patch is neither anchor nor negative
    same = multiscale_metric_loss(anchor, anchor.clone(), labels, "triplet", margin=0.5)
    assert float(same) == 0.0  # d(a,p) = 0, d(a,n) = √2 > margin
    far = multiscale_metric_loss(anchor, -anchor, labels, "triplet", margin=0.5)
    np.testing.assert_allclose(float(far), 2.0 - np.sqrt(2) + 0.5, rtol=1e-6)
    pair = multiscale_metric_loss(anchor, -anchor, labels, "pair", margin=0.5)
    np.testing.assert_allclose(float(pair), 4.0, rtol=1e-6)
