"""Every encoder preset and every encoder family, without naming them.

Presets come from ``list_presets("encoders")`` and families from the ``Family`` type, so a newly
shipped preset or a new family gets these tests unasked. Presets are checked on torch's ``meta``
device (the real architecture, no memory, no weights): each gives the dimension it declares.
Each family is then loaded for real with random weights, through the same path as released
weights, on its smallest preset (or a shrunk one, see ``SHRUNK``) and embeds a small batch.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import get_args

import pytest
import torch

from wsi_engine.config import list_presets
from wsi_engine.encoders import (
    EncoderConfig,
    create_random_checkpoint,
    load_encoder,
    load_encoder_config,
)
from wsi_engine.encoders.build import build_model, drop_image_projection
from wsi_engine.encoders.config import Family
from wsi_engine.encoders.encoder import ImageEmbedder
from wsi_engine.errors import EncoderError

from .conftest import tiny_conch_config

PRESETS = list_presets("encoders")
FAMILIES = get_args(Family)
LARGEST_REAL_BUILD = 20_000_000
"""Parameters above which a family's smallest preset is too slow to build for real in a test."""
SHRUNK = {"conch": tiny_conch_config}
"""Families whose every preset is large: a small architecture of the same family."""


@functools.cache
def meta_embedder(name: str) -> ImageEmbedder:
    """The preset's image path on the ``meta`` device (shapes only), built once per session."""
    config = load_encoder_config(name)
    with torch.device("meta"):
        model = build_model(config)
        if config.output == "pre_projection" and config.family == "open_clip":
            drop_image_projection(model, config)
        return ImageEmbedder(model.eval(), config)


def test_every_family_has_a_preset():
    assert {load_encoder_config(name).family for name in PRESETS} == set(FAMILIES)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_declares_what_reproduces_its_features(name):
    config = load_encoder_config(name)
    assert config.family in FAMILIES and config.embed_dim
    pre = config.preprocess
    assert pre.image_size >= 8 and len(pre.mean) == len(pre.std) == 3
    assert all(0 <= m <= 1 for m in pre.mean) and all(0 < s <= 1 for s in pre.std)
    weights = config.weights
    assert weights.file or weights.hf_hub or weights.pretrained or weights.checkpoint
    assert config.has_text == (config.family != "timm")


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_architecture_gives_its_declared_dimension(name):
    config = load_encoder_config(name)
    if config.architecture is None:  # defined by the hub's config file beside the weights
        with pytest.raises(EncoderError, match=str(config.model_config_file)):
            build_model(config)
        return
    size = config.preprocess.image_size
    with torch.device("meta"):
        out = meta_embedder(name)(torch.zeros((2, size, size, 3), dtype=torch.uint8))
    assert tuple(out.shape) == (2, config.embed_dim)


def small_config(family: str, folder: Path) -> EncoderConfig:
    """The family's preset with the fewest parameters (no checksum: the weights will be random),
    or its ``SHRUNK`` architecture."""
    if family in SHRUNK:
        return SHRUNK[family](folder)
    configs = [load_encoder_config(n) for n in PRESETS]
    buildable = [c for c in configs if c.family == family and c.architecture]
    sizes = {c.name: sum(p.numel() for p in meta_embedder(c.name).parameters()) for c in buildable}
    smallest = min(buildable, key=lambda c: sizes[c.name])
    assert sizes[smallest.name] <= LARGEST_REAL_BUILD, (
        f"family {family}: smallest preset {smallest.name} has {sizes[smallest.name]} parameters; "
        "add a small architecture of the family to SHRUNK"
    )
    return smallest.model_copy(
        update={"weights": smallest.weights.model_copy(update={"sha256": None})}
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_loads_random_weights_and_embeds_a_batch(family, tmp_path):
    config = small_config(family, tmp_path)
    checkpoint = create_random_checkpoint(config, tmp_path / "random.safetensors")
    encoder = load_encoder(config, checkpoint=checkpoint)
    assert encoder.embed_dim == config.embed_dim
    pixels = torch.randint(0, 256, (3, 48, 48, 3), dtype=torch.uint8)  # resized to image_size
    with torch.inference_mode():
        features = encoder.image(pixels)
    assert features.shape == (3, config.embed_dim) and features.dtype == torch.float32
    assert torch.isfinite(features).all() and not torch.allclose(features[0], features[1])
    if config.output == "joint":
        torch.testing.assert_close(features.norm(dim=1), torch.ones(3))
    attrs = encoder.feature_attrs()
    assert attrs["preprocessing"]["image_size"] == config.preprocess.image_size
    assert attrs["preprocessing"]["mean"] == list(config.preprocess.mean)
    assert attrs["embed_dim"] == config.embed_dim and attrs["output_kind"] == config.output
