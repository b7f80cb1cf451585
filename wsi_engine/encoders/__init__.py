"""Frozen image / vision-language encoders: presets, safe offline weights, embedding, text, interop."""

from wsi_engine.encoders.config import EncoderConfig, load_encoder_config
from wsi_engine.encoders.encoder import Encoder, create_random_checkpoint, load_encoder

__all__ = [
    "Encoder",
    "EncoderConfig",
    "create_random_checkpoint",
    "load_encoder",
    "load_encoder_config",
]
