"""The CONCH architecture and its official checkpoint layout, on a tiny configuration."""

from __future__ import annotations

import pytest
import torch

from wsi_engine.encoders import create_random_checkpoint, load_encoder
from wsi_engine.encoders.text import encode_text
from wsi_engine.encoders.weights import read_state_dict
from wsi_engine.errors import EncoderError

from .conftest import tiny_conch_config

OFFICIAL_KEYS = {
    "visual.trunk.cls_token": (1, 1, 32),
    "visual.trunk.pos_embed": (1, 5, 32),
    "visual.trunk.patch_embed.proj.weight": (32, 3, 16, 16),
    "visual.trunk.blocks.0.attn.qkv.weight": (96, 32),
    "visual.trunk.norm.weight": (32,),
    "visual.attn_pool_contrast.query": (1, 16),
    "visual.attn_pool_contrast.attn.k_proj_weight": (16, 32),
    "visual.attn_pool_contrast.ln_k.weight": (32,),
    "visual.ln_contrast.weight": (16,),
    "visual.proj_contrast": (16, 16),
    "text.cls_emb": (32,),
    "text.positional_embedding": (16, 32),
    "text.transformer.resblocks.0.attn.in_proj_weight": (96, 32),
    "text.text_projection": (32, 16),
    "logit_scale": (),
}


@pytest.fixture
def tiny_conch(tmp_path):
    return tiny_conch_config(tmp_path)


def _official_file(config, tmp_path):
    """A checkpoint laid out like the official pytorch_model.bin: captioning parts included."""
    state = read_state_dict(create_random_checkpoint(config, tmp_path / "r.safetensors"))
    state["visual.attn_pool_caption.query"] = torch.zeros(256, 32)
    state["visual.ln_caption.weight"] = torch.ones(32)
    state["text_decoder.resblocks.0.ln_1.weight"] = torch.ones(32)
    torch.save(state, tmp_path / "pytorch_model.bin")
    return tmp_path / "pytorch_model.bin", state


def test_official_layout_loads_by_name(tiny_conch, tmp_path):
    path, state = _official_file(tiny_conch, tmp_path)
    for key, shape in OFFICIAL_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    encoder = load_encoder(tiny_conch, checkpoint=path)
    pixels = torch.randint(0, 256, (3, 48, 48, 3), dtype=torch.uint8)
    with torch.inference_mode():
        joint = encoder.image(pixels)
        tokens = torch.randint(1, 100, (2, 15))
        text = encoder.model.encode_text(tokens)
    assert joint.shape == (3, 16) and torch.allclose(joint.norm(dim=1), torch.ones(3))
    assert text.shape == (2, 16)
    pre = load_encoder(tiny_conch.model_copy(update={"output": "pre_projection"}), checkpoint=path)
    with torch.inference_mode():
        assert not torch.allclose(pre.image(pixels), joint)


def test_missing_official_keys_are_listed(tiny_conch, tmp_path):
    path, state = _official_file(tiny_conch, tmp_path)
    del state["visual.proj_contrast"]
    torch.save(state, path)
    with pytest.raises(EncoderError, match=r"1 missing \(visual.proj_contrast\)"):
        load_encoder(tiny_conch, checkpoint=path)


def test_text_needs_conch_tokenizer_file(tiny_conch, tmp_path):
    path, _ = _official_file(tiny_conch, tmp_path)
    encoder = load_encoder(tiny_conch, checkpoint=path)
    with pytest.raises(EncoderError, match="conch_byte_level_bpe_uncased.json"):
        encode_text(encoder, ["an image of tumor"])
