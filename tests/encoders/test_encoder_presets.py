"""Encoder presets, the tiny test encoder, offline weight resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsi_engine.config import list_presets
from wsi_engine.encoders import create_random_checkpoint, load_encoder, load_encoder_config
from wsi_engine.errors import EncoderError

PRESETS = (
    "conch_ViT-B-16",
    "quiltnet-b-32",
    "biomedclip",
    "openai-vit-b-16",
    "efficientnet-lite0",
    "tiny-clip",
)


def test_every_shipped_preset_validates():
    names = list_presets("encoders")
    assert set(PRESETS) <= set(names)
    for name in names:
        config = load_encoder_config(name)
        assert config.encoder_id == name
        assert config.text_aligned == (config.family != "timm" and config.output == "joint")
    conch = load_encoder_config("conch_ViT-B-16")
    assert (conch.preprocess.image_size, conch.embed_dim, conch.text.context_length) == (
        448,
        512,
        128,
    )


def test_tiny_encoder_features_shape_dtype_and_norm(tiny_encoder):
    pixels = torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, (5, 96, 96, 3), dtype=np.uint8)
    )
    with torch.inference_mode():
        features = tiny_encoder.image(pixels)
    assert features.shape == (5, 32) and features.dtype == torch.float32
    torch.testing.assert_close(features.norm(dim=1), torch.ones(5))
    assert tiny_encoder.output_kind == "joint" and tiny_encoder.text_aligned
    assert len(tiny_encoder.checkpoint_sha256) == 64


def test_save_then_load_gives_identical_features(tiny_encoder, tiny_checkpoint, tmp_path):
    again = load_encoder("tiny-clip", checkpoint=tiny_checkpoint)
    other = load_encoder(
        "tiny-clip",
        checkpoint=create_random_checkpoint("tiny-clip", tmp_path / "s1.safetensors", seed=1),
    )
    pixels = torch.from_numpy(
        np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    )
    with torch.inference_mode():
        a, b, c = tiny_encoder.image(pixels), again.image(pixels), other.image(pixels)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert again.checkpoint_sha256 == tiny_encoder.checkpoint_sha256 != other.checkpoint_sha256


def test_weights_dir_environment_variable_finds_the_file(tiny_checkpoint, tmp_path, monkeypatch):
    folder = tmp_path / "weights" / "tiny-clip"
    folder.mkdir(parents=True)
    (folder / "tiny-clip.safetensors").write_bytes(tiny_checkpoint.read_bytes())
    monkeypatch.setenv("WSI_ENGINE_WEIGHTS_DIR", str(tmp_path / "weights"))
    assert load_encoder("tiny-clip").checkpoint_path == folder / "tiny-clip.safetensors"


@pytest.mark.parametrize(
    "name", ["tiny-clip", "conch_ViT-B-16", "quiltnet-b-32", "openai-vit-b-16", "biomedclip"]
)
def test_missing_weights_error_names_file_flag_and_variable(name, tmp_path, monkeypatch):
    monkeypatch.setenv("WSI_ENGINE_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(EncoderError) as caught:
        load_encoder(name)
    text = str(caught.value)
    expected_file = load_encoder_config(name).weights.file
    assert (
        expected_file in text and "--checkpoint PATH" in text and "WSI_ENGINE_WEIGHTS_DIR" in text
    )
    assert caught.value.exit_code == 6


def test_missing_explicit_checkpoint_is_named(tmp_path):
    with pytest.raises(EncoderError, match="checkpoint file not found"):
        load_encoder("tiny-clip", checkpoint=tmp_path / "nope.safetensors")
