"""Baseline heads, the registry, the losses and the adaptive resampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsi_engine.errors import ConfigError
from wsi_engine.mil.losses import LOSSES, make_loss
from wsi_engine.mil.registry import create_model, list_models, model_config
from wsi_engine.mil.sampling import AdaptiveResampler


@pytest.mark.parametrize("name", ["abmil", "mean", "max"])
def test_baselines_share_the_output_contract(name):
    torch.manual_seed(0)
    model = create_model(name, model_config(name, {"dim": 16}), 24, 3, None)
    out = model(torch.randn(30, 24))
    assert out.logits.shape == (3,)
    assert out.attention.shape == (30, 3)
    torch.testing.assert_close(out.attention.sum(0), torch.ones(3))
    assert (out.instance_score is not None) == (name == "abmil")


def test_registry_lists_models_and_rejects_unknown_names_and_options():
    assert {"libra", "abmil", "mean", "max"} <= set(list_models())
    with pytest.raises(ConfigError, match="unknown model 'transformer'"):
        model_config("transformer")
    with pytest.raises(ConfigError, match="unknown key 'dmi'"):
        model_config("abmil", {"dmi": 3})


def test_losses_agree_where_they_should():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]], requires_grad=True)
    targets = torch.tensor([0, 0, 1])
    ce = make_loss("ce")(logits, targets)
    focal0 = make_loss("focal", gamma=0.0)(logits, targets)
    torch.testing.assert_close(ce, focal0)
    focal = make_loss("focal", gamma=2.0)(logits, targets)
    reinforced = make_loss("reinforced-focal", gamma=2.0, reinforce=1.0)(logits, targets)
    assert focal < ce  # easy examples are down-weighted
    assert reinforced > focal  # the two misclassified bags count double
    no_boost = make_loss("reinforced-focal", gamma=2.0, reinforce=0.0)(logits, targets)
    torch.testing.assert_close(no_boost, focal)
    reinforced.backward()
    assert logits.grad.abs().sum() > 0
    assert set(LOSSES) == {"ce", "focal", "reinforced-focal"}


def test_resampler_balances_classes_then_follows_difficulty():
    targets = np.array([0] * 8 + [1] * 2)
    sampler = AdaptiveResampler(targets, 2, seed=0)
    np.testing.assert_allclose(sampler.class_probabilities(), [0.5, 0.5])
    draws = np.concatenate([sampler.epoch() for _ in range(200)])
    share = np.mean(targets[draws] == 1)
    assert 0.45 < share < 0.55  # rare class drawn half the time (β = 1)
    for i in range(8):
        sampler.update(i, 0.95)  # class 0 learned
    for i in range(8, 10):
        sampler.update(i, 0.2)  # class 1 hard
    probs = sampler.class_probabilities()
    assert probs[1] > 0.9
    natural = AdaptiveResampler(targets, 2, seed=0, beta=0.0)
    np.testing.assert_allclose(natural.class_probabilities(), [0.8, 0.2])
