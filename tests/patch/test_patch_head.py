"""The text-initialised head: zero-shot start, MLP adapter identity at start, checkpoint round trip."""

from __future__ import annotations

import numpy as np
import torch

from wsi_engine.patch.head import HeadConfig, build_head
from wsi_engine.patch.rundir import load_head, save_head
from wsi_engine.prompts import PROMPT_FIELDS, TaskEmbeddings

DIM = 24


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.normal(size=(*shape, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def task_text(rng: np.random.Generator, n_classes: int = 3) -> TaskEmbeddings:
    names = tuple(f"c{i}" for i in range(n_classes))
    return TaskEmbeddings(
        "enc", names, unit(rng, 4), *(unit(rng, n_classes) for _ in PROMPT_FIELDS)
    )


def test_untrained_head_is_the_zero_shot_text_classifier():
    rng = np.random.default_rng(0)
    text = task_text(rng)
    head = build_head(HeadConfig(), DIM, 3, text, seed=0)
    x = rng.normal(size=(50, DIM)).astype(np.float32) * 3.0  # unnormalised features
    with torch.no_grad():
        logits = head(torch.from_numpy(x)).numpy()
    fused = (text.label + text.basic + text.detailed) / 3  # equal level weights at the start
    cosine = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ fused.T
    np.testing.assert_allclose(logits, cosine / 0.07, rtol=1e-4, atol=1e-4)
    # features equal to a class's fused text embedding are predicted as that class
    with torch.no_grad():
        predicted = head(torch.from_numpy(fused)).argmax(1).numpy()
    assert predicted.tolist() == [0, 1, 2]


def test_mlp_head_starts_equal_to_the_linear_head():
    rng = np.random.default_rng(1)
    text = task_text(rng)
    x = torch.from_numpy(rng.normal(size=(20, DIM)).astype(np.float32))
    linear = build_head(HeadConfig(), DIM, 3, text, seed=0)
    mlp = build_head(HeadConfig(hidden=32), DIM, 3, text, seed=0)
    with torch.no_grad():
        torch.testing.assert_close(mlp(x), linear(x))


def test_text_free_head_and_checkpoint_round_trip(tmp_path):
    head = build_head(HeadConfig(hidden=8, levels=["label"]), DIM, 2, None, seed=3)
    assert head.level_names == ["learned"]
    with torch.no_grad():
        head.bias.add_(0.5)
    save_head(tmp_path / "model.pt", head, {"feature_dim": DIM, "class_names": ["a", "b"]})
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    assert payload["meta"]["head_config"]["hidden"] == 8
    loaded, meta = load_head(tmp_path / "model.pt")
    x = torch.randn(5, DIM)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), head.eval()(x))
    assert meta.class_names == ["a", "b"]
