"""Libra-MIL: shapes, evidence, and that the OT fusion is not an identity (method reference §1.8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsi_engine.mil.base import InstanceSample
from wsi_engine.mil.libra import LibraConfig, LibraMIL
from wsi_engine.prompts import PROMPT_FIELDS, TaskEmbeddings

D, C, KT = 32, 3, 7


def random_text(seed: int = 0, classes: int = C) -> TaskEmbeddings:
    rng = np.random.default_rng(seed)

    def unit(n: int) -> np.ndarray:
        x = rng.normal(size=(n, D)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return TaskEmbeddings(
        "test-enc",
        tuple(f"k{i}" for i in range(classes)),
        unit(KT),
        *(unit(classes) for _ in PROMPT_FIELDS),
    )


def make(fusion: str = "sot", text: TaskEmbeddings | None = None, **options) -> LibraMIL:
    torch.manual_seed(0)
    config = LibraConfig(dim=32, heads=4, kv=5, fusion=fusion, **options)
    return LibraMIL(config, D, C, random_text() if text is None else text)


def bag(n: int = 50, seed: int = 1) -> torch.Tensor:
    return torch.nn.functional.normalize(
        torch.randn(n, D, generator=torch.Generator().manual_seed(seed)), dim=-1
    )


@pytest.mark.parametrize("fusion", ["sot", "none", "concat"])
def test_output_shapes_and_attention_columns_sum_to_one(fusion):
    out = make(fusion)(bag(40))
    assert out.logits.shape == (C,)
    assert out.attention.shape == (40, C)
    torch.testing.assert_close(out.attention.sum(0), torch.ones(C))
    assert (out.instance_score is None) == (fusion == "none")
    if out.instance_score is not None:
        assert out.instance_score.shape == (40,)


def test_sot_fusion_is_not_an_identity_prototypes_change_logits():
    model = make("sot")
    x = bag()
    before = model(x).logits.detach().clone()
    with torch.no_grad():
        model.visual_prototypes.add_(torch.randn_like(model.visual_prototypes))
    after_visual = model(x).logits.detach().clone()
    assert not torch.allclose(before, after_visual, atol=1e-5)
    with torch.no_grad():
        model.text_prototypes.add_(torch.randn_like(model.text_prototypes))
    assert not torch.allclose(after_visual, model(x).logits, atol=1e-5)


def test_sot_both_prototype_sets_receive_gradient():
    model = make("sot")
    out = model(bag())
    torch.nn.functional.cross_entropy(out.logits[None], torch.tensor([1])).backward()
    for param in (model.visual_prototypes, model.text_prototypes):
        assert param.grad is not None
        assert (
            param.grad.abs().mean() > 1e-6
        )  # far above rounding noise (the released code: ~1e-7 noise or exactly 0)
    assert model.tau_v.grad is not None and model.tau_t.grad is not None


def test_none_fusion_gives_prototypes_no_gradient_and_ignores_them():
    model = make("none")
    x = bag()
    out = model(x)
    torch.nn.functional.cross_entropy(out.logits[None], torch.tensor([0])).backward()
    assert model.visual_prototypes.grad is None and model.text_prototypes.grad is None
    with torch.no_grad():
        model.visual_prototypes.add_(1.0)
        model.text_prototypes.add_(1.0)
    torch.testing.assert_close(model(x).logits, out.logits.detach())


def test_concat_fusion_uses_both_prototype_sets():
    model = make("concat")
    torch.nn.functional.cross_entropy(model(bag()).logits[None], torch.tensor([2])).backward()
    assert (
        model.visual_prototypes.grad.abs().sum() > 0 and model.text_prototypes.grad.abs().sum() > 0
    )


def test_text_prototypes_start_from_entity_embeddings_and_levels_are_logged():
    text = random_text(3)
    model = make("sot", text=text)
    np.testing.assert_allclose(model.text_prototypes.detach().numpy(), text.entities)
    diag = model.diagnostics()
    weights = [diag[f"query_weight.{n}"] for n in PROMPT_FIELDS]
    assert np.isclose(sum(weights), 1.0) and np.allclose(weights, 0.2)
    assert {"tau_f", "tau_v", "tau_t"} <= diag.keys()


def test_query_levels_option_selects_prompt_levels():
    model = make("none", query_levels=["bag_high"])
    assert model.level_logits is None
    assert model.query_embeddings.shape == (1, C, D)


def test_text_free_form_uses_learned_prototypes_and_queries():
    torch.manual_seed(0)
    model = LibraMIL(LibraConfig(dim=32, heads=4, kv=5, kt_text_free=6, fusion="sot"), D, C, None)
    assert model.text_free and model.text_prototypes.shape == (6, D)
    out = model(bag())
    torch.nn.functional.cross_entropy(out.logits[None], torch.tensor([1])).backward()
    assert (
        model.text_prototypes.grad.abs().sum() > 0 and model.visual_prototypes.grad.abs().sum() > 0
    )
    assert not any(k.startswith("query_weight") for k in model.diagnostics())


def test_kmeans_prototype_initialisation_is_seeded():
    model = make("sot", proto_init="kmeans")
    assert model.wants_instance_sample
    sample = bag(200, seed=5).numpy()
    model.prepare(InstanceSample.from_bags([sample], [0]), seed=0)
    first = model.visual_prototypes.detach().clone()
    model.prepare(InstanceSample.from_bags([sample], [0]), seed=0)
    torch.testing.assert_close(model.visual_prototypes.detach(), first)
    assert first.shape == (5, D)


def test_single_instance_bag():
    out = make("sot")(bag(1))
    assert torch.isfinite(out.logits).all() and out.attention.shape == (1, C)
