"""Prompt embeddings: normalised, cached on disk, too-long prompts reported."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_engine.encoders import load_encoder
from wsi_engine.encoders import text as text_module
from wsi_engine.encoders.text import (
    PromptTooLongWarning,
    cache_root,
    encode_text,
    prompt_token_limit,
    token_lengths,
    too_long_prompts,
)
from wsi_engine.errors import ConfigError, EncoderError

PROMPTS = ["an H&E image of tumor tissue", "an H&E image of normal lung", "stroma"]


def test_embeddings_are_normalised_distinct_and_cached(tiny_encoder, monkeypatch):
    vectors = encode_text(tiny_encoder, PROMPTS)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert len(list((cache_root() / "text" / "tiny-clip").glob("*.npy"))) == 3

    def no_model(*args):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(text_module, "_encode", no_model)
    assert np.array_equal(encode_text(tiny_encoder, PROMPTS[::-1]), vectors[::-1])


def test_embedding_matches_a_direct_forward(tiny_encoder):
    import open_clip
    import torch

    tokens = open_clip.tokenizer.SimpleTokenizer()(PROMPTS[:1], context_length=64)
    with torch.inference_mode():
        direct = torch.nn.functional.normalize(
            tiny_encoder.model.encode_text(tokens), dim=-1
        ).numpy()
    np.testing.assert_allclose(
        encode_text(tiny_encoder, PROMPTS[:1], cache=False), direct, atol=1e-6
    )


def test_long_prompts_are_reported_not_silently_cut(tiny_encoder):
    long = "tumor " * 80
    assert prompt_token_limit(tiny_encoder) == 64
    short, too_long = token_lengths(tiny_encoder, ["stroma", long])
    assert short < 64 and too_long == 82  # start + 80 words + end
    assert [p.index for p in too_long_prompts(tiny_encoder, ["stroma", long])] == [1]
    with pytest.warns(PromptTooLongWarning, match=r"#1 \(82 tokens\)"):
        vectors = encode_text(tiny_encoder, ["stroma", long])
    assert vectors.shape == (2, 32)
    with pytest.raises(ConfigError, match="longer than the 64-token context"):
        encode_text(tiny_encoder, [long], strict=True)


def test_image_only_encoder_has_no_text(tmp_path):
    from wsi_engine.encoders import create_random_checkpoint, load_encoder_config

    config = load_encoder_config("efficientnet-lite0")
    config = config.model_copy(
        update={"weights": config.weights.model_copy(update={"sha256": None})}
    )
    encoder = load_encoder(
        config, checkpoint=create_random_checkpoint(config, tmp_path / "e.safetensors")
    )
    assert encoder.output_kind == "image_only" and not encoder.text_aligned
    with pytest.raises(EncoderError, match="no text tower.*text-free form"):
        encode_text(encoder, PROMPTS)
