"""A loaded, frozen encoder: model, provenance (checkpoint sha256) and the image path used by ``embed``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wsi_engine.encoders.aliases import load_encoder_config
from wsi_engine.encoders.build import build_model, drop_image_projection, load_weights
from wsi_engine.encoders.config import EncoderConfig
from wsi_engine.encoders.weights import (
    read_state_dict,
    resolve_checkpoint,
    sha256_file,
    verify_sha256,
)
from wsi_engine.errors import EncoderError


class ImageEmbedder(nn.Module):
    """uint8 RGB patches (B, S, S, 3) on the model's device → (B, D) float32 features.

    Preprocessing runs on the device: resize to ``image_size`` (antialiased,
    ``interpolation``) when S differs, scale to 0..1, normalise with mean/std.
    Patches are square, so open_clip's resize-shortest-side + centre crop is
    this plain resize. ``joint`` outputs are L2-normalised in float32.
    """

    def __init__(self, model: nn.Module, config: EncoderConfig):
        super().__init__()
        self.model = model
        self.family = config.family
        self.output = config.output
        self.image_size = config.preprocess.image_size
        self.interpolation = config.preprocess.interpolation
        self.register_buffer(
            "mean", torch.tensor(config.preprocess.mean).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(config.preprocess.std).view(1, 3, 1, 1), persistent=False
        )

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) uint8 → (B, 3, size, size) float32 normalised."""
        x = pixels.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode=self.interpolation,
                antialias=True,
                align_corners=False,
            ).clamp_(0.0, 1.0)
        return (x - self.mean) / self.std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(pixels)
        if self.family == "timm":
            out = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        elif self.family == "conch":
            out = self.model.encode_image(x, normalize=False, project=self.output == "joint")
        else:
            out = self.model.encode_image(x, normalize=False)
        out = out.float()
        return F.normalize(out, dim=-1) if self.output == "joint" else out


@dataclass
class Encoder:
    """A frozen encoder ready to embed. Create with :func:`load_encoder`."""

    config: EncoderConfig
    model: nn.Module
    image: ImageEmbedder
    checkpoint_path: Path
    checkpoint_sha256: str
    embed_dim: int

    @property
    def encoder_id(self) -> str:
        return self.config.encoder_id

    @property
    def output_kind(self) -> str:
        return self.config.output

    @property
    def text_aligned(self) -> bool:
        return self.config.text_aligned

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> Encoder:
        """Move the model to ``device`` (in place); returns self."""
        self.image.to(device)
        return self

    def preprocessing(self) -> dict[str, Any]:
        """The preprocessing recorded with the features."""
        pre = self.config.preprocess
        return {
            "image_size": pre.image_size,
            "mean": list(pre.mean),
            "std": list(pre.std),
            "interpolation": pre.interpolation,
            "resize": "antialiased resize of the square patch on the device (no crop)",
        }

    def feature_attrs(self) -> dict[str, Any]:
        """Attributes of ``features/<encoder_id>`` (docs/store.md), without the store-side fields."""
        return {
            "encoder": self.config.model_dump(mode="json"),
            "checkpoint_sha256": self.checkpoint_sha256,
            "checkpoint_file": self.checkpoint_path.name,
            "preprocessing": self.preprocessing(),
            "output_kind": self.output_kind,
            "text_aligned": self.text_aligned,
            "embed_dim": self.embed_dim,
        }


def load_encoder(
    encoder: str | Path | EncoderConfig,
    *,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> Encoder:
    """Load a preset (name, YAML path or config) with its weights; ``checkpoint`` overrides the preset's file.

    The model is frozen (eval mode, no gradients) and moved to ``device``.
    Raises :class:`EncoderError` for missing, corrupt, unsafe or mismatched checkpoints.
    """
    config = load_encoder_config(encoder)
    path = resolve_checkpoint(config, checkpoint)
    digest = sha256_file(path)
    verify_sha256(config, path, digest)
    model = build_model(config, path)
    load_weights(model, read_state_dict(path), config, path)
    if config.output == "pre_projection" and config.family == "open_clip":
        drop_image_projection(model, config)
    model.eval().requires_grad_(False)
    image = ImageEmbedder(model, config).eval().to(device)
    embed_dim = _probe_dim(image, config, torch.device(device))
    if config.embed_dim is not None and config.embed_dim != embed_dim:
        raise EncoderError(
            f"encoder '{config.name}' produces {embed_dim}-d features, its preset says embed_dim {config.embed_dim}"
        )
    return Encoder(config, model, image, path, digest, embed_dim)


def _probe_dim(image: ImageEmbedder, config: EncoderConfig, device: torch.device) -> int:
    """D of the features: one forward pass of a black patch."""
    size = config.preprocess.image_size
    with torch.inference_mode():
        return int(
            image(torch.zeros((1, size, size, 3), dtype=torch.uint8, device=device)).shape[-1]
        )


def create_random_checkpoint(
    config_or_name: str | Path | EncoderConfig, path: str | Path, seed: int = 0
) -> Path:
    """Save a randomly initialised model of an encoder preset as a safetensors state dict at ``path``.

    Used by tests, the demo and benchmarks; the file then loads through
    :func:`load_encoder` exactly like released weights.
    """
    from safetensors.torch import save_file

    config = load_encoder_config(config_or_name)
    torch.manual_seed(seed)
    model = build_model(config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path
