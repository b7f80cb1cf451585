"""Frozen image / vision-language encoders: presets, safe offline weights, embedding, text.

* :func:`load_encoder` / :func:`load_encoder_config`: presets in ``configs/encoders/``;
* :func:`embed_stores`: patch stores → ``features/<encoder_id>`` (the ``embed`` command);
* :func:`encode_text`, :func:`token_lengths`: prompt embeddings and token counts;
* :func:`create_random_checkpoint`: random weights for tests, demos and benchmarks.

The names below are imported on first use (most need torch, which the command line should not
load before it is needed).
"""

from typing import TYPE_CHECKING

from wsi_engine.lazy import lazy_attributes

if TYPE_CHECKING:
    from wsi_engine.encoders.aliases import load_encoder_config
    from wsi_engine.encoders.config import EncoderConfig
    from wsi_engine.encoders.embed import (
        EmbedReport,
        autocast,
        embed_stores,
        resolve_device,
        resolve_precision,
    )
    from wsi_engine.encoders.encoder import Encoder, create_random_checkpoint, load_encoder
    from wsi_engine.encoders.text import encode_text, prompt_token_limit, token_lengths

_HOMES = {
    "EmbedReport": "embed",
    "Encoder": "encoder",
    "EncoderConfig": "config",
    "autocast": "embed",
    "create_random_checkpoint": "encoder",
    "embed_stores": "embed",
    "encode_text": "text",
    "load_encoder": "encoder",
    "load_encoder_config": "aliases",
    "prompt_token_limit": "text",
    "resolve_device": "embed",
    "resolve_precision": "embed",
    "token_lengths": "text",
}

__all__ = [
    "EmbedReport",
    "Encoder",
    "EncoderConfig",
    "autocast",
    "create_random_checkpoint",
    "embed_stores",
    "encode_text",
    "load_encoder",
    "load_encoder_config",
    "prompt_token_limit",
    "resolve_device",
    "resolve_precision",
    "token_lengths",
]

__getattr__ = lazy_attributes(__name__, _HOMES)
