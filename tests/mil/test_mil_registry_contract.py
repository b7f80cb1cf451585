"""Every registered MIL model, without naming it: the output contract, probabilities, seeding, a checkpoint round trip.

The models come from :func:`list_models`, so a newly registered model gets these tests unasked.
"""

from __future__ import annotations

import pytest
import torch

from wsi_engine.mil.predict import predict_bag
from wsi_engine.mil.registry import create_model, get_spec, list_models, model_config
from wsi_engine.mil.rundir import load_checkpoint, save_checkpoint

from .test_mil_libra_model import C, D, random_text

SMALL = {"libra": {"dim": 32, "heads": 4, "kv": 5}}
"""Options that keep a model small; the others take their defaults."""


def build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    spec = get_spec(name)
    text = random_text() if spec.uses_text else None
    config = model_config(name, SMALL.get(name, {}))
    return create_model(name, config, D, C, text), config, text


@pytest.mark.parametrize("name", list_models())
def test_every_model_keeps_the_output_contract(name):
    model, _, _ = build(name)
    features = torch.nn.functional.normalize(torch.randn(40, D), dim=-1)
    out = model.eval()(features)
    assert out.logits.shape == (C,)
    assert torch.isfinite(out.logits).all()
    if out.attention is not None:
        assert out.attention.shape == (40, C)
        torch.testing.assert_close(out.attention.sum(0), torch.ones(C))
    if out.instance_score is not None:
        assert out.instance_score.shape == (40,)
    model.train()
    model(features).logits.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def bag(n: int, seed: int = 0) -> torch.Tensor:
    """(n, D) unit-norm features, drawn from their own generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, D, generator=generator), dim=-1)


@pytest.mark.parametrize("name", list_models())
def test_every_model_gives_class_probabilities(name):
    model, _, _ = build(name)
    out = predict_bag([model.eval()], bag(30))
    probs = out["probs"]
    assert probs.shape == (C,) and (probs >= 0).all()
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert out["attention"].shape == (30, C)


@pytest.mark.parametrize("name", list_models())
def test_every_model_is_determined_by_its_seed(name):
    features = bag(30, seed=1)
    (a, _, _), (b, _, _), (c, _, _) = build(name, 0), build(name, 0), build(name, 1)
    state_a, state_c = a.state_dict(), c.state_dict()
    assert all(torch.equal(state_a[k], v) for k, v in b.state_dict().items())
    assert any(not torch.equal(state_a[k], v) for k, v in state_c.items())
    with torch.inference_mode():
        torch.testing.assert_close(a.eval()(features).logits, b.eval()(features).logits)


@pytest.mark.parametrize("name", list_models())
def test_every_model_survives_its_checkpoint(name, tmp_path):
    model, config, text = build(name)
    meta = {
        "model": name,
        "model_config": config.model_dump(mode="json"),
        "feature_dim": D,
        "class_names": [f"k{i}" for i in range(C)],
        "encoder_id": "test-enc",
        "task": "test",
    }
    save_checkpoint(tmp_path / "model.pt", model.eval(), meta, text)
    loaded, loaded_meta = load_checkpoint(tmp_path / "model.pt")
    assert loaded_meta.model == name
    features = torch.nn.functional.normalize(torch.randn(25, D), dim=-1)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(features).logits, model(features).logits)
