"""Encoder definitions: YAML presets in ``configs/encoders/`` validated into :class:`EncoderConfig`.

An encoder is a frozen image model, with or without a text tower, plus
everything needed to reproduce its features: architecture, where its weights
come from, preprocessing, tokenizer and which image output is stored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from wsi_engine.config import StrictModel, configs_dir
from wsi_engine.slide.ids import sanitize_name

WEIGHTS_DIR_ENV = "WSI_ENGINE_WEIGHTS_DIR"
"""Folder holding checkpoint files at the relative paths named by presets (``weights.file``)."""

Family = Literal["open_clip", "conch", "timm"]
OutputKind = Literal["joint", "pre_projection", "image_only"]


class WeightsConfig(StrictModel):
    """Where an encoder's weights come from. Nothing is ever downloaded: see :mod:`.weights`."""

    checkpoint: str | None = Field(None, description="local checkpoint path (~ and $VARS expanded)")
    file: str | None = Field(
        None, description=f"path relative to ${WEIGHTS_DIR_ENV} where the preset expects its file"
    )
    hf_hub: str | None = Field(
        None, description="Hugging Face hub repo id; found only if already in the local HF cache"
    )
    hf_file: str = Field(
        "open_clip_pytorch_model.bin", description="file name of the weights inside the hub repo"
    )
    pretrained: str | None = Field(
        None, description="open_clip pretrained tag, resolved to its hub repo and file"
    )
    source: str | None = Field(
        None, description="where a user gets the file (shown in errors): URL, licence notes"
    )
    sha256: str | None = Field(None, description="expected sha256 of the file; verified when given")
    format: Literal["state_dict", "by_position"] = Field(
        "state_dict",
        description="state_dict: names match the model; by_position: same tensors in the same order, other names",
    )
    ignore_prefixes: list[str] = Field(
        default_factory=list,
        description="checkpoint keys not used to embed (e.g. a captioning decoder)",
    )


class PreprocessConfig(StrictModel):
    """How a uint8 RGB patch becomes the model input: resize to ``image_size``, scale to 0..1, normalise."""

    image_size: int = Field(224, ge=8, description="model input side in px")
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"


class TextConfig(StrictModel):
    """The text tower's tokenizer and context length (tokens, special tokens included)."""

    tokenizer: Literal["clip-bpe", "hf-file", "hf"] = Field(
        "clip-bpe",
        description="clip-bpe: open_clip's bundled BPE; hf-file: a tokenizers JSON file; hf: a transformers tokenizer",
    )
    tokenizer_file: str | None = Field(
        None, description="hf-file: JSON file, beside the checkpoint or under the weights dir"
    )
    hf_tokenizer: str | None = Field(
        None, description="hf: tokenizer id, read from the local HF cache only"
    )
    context_length: int = Field(
        77, ge=4, description="tokens the text tower reads, special tokens included"
    )

    @model_validator(mode="after")
    def _source_given(self) -> TextConfig:
        if self.tokenizer == "hf-file" and not self.tokenizer_file:
            raise ValueError("tokenizer 'hf-file' needs tokenizer_file")
        if self.tokenizer == "hf" and not self.hf_tokenizer:
            raise ValueError("tokenizer 'hf' needs hf_tokenizer")
        return self


class EncoderConfig(StrictModel):
    """One encoder preset (``configs/encoders/<name>.yaml``).

    ``family`` picks the model builder: ``open_clip`` (open_clip's CLIP classes,
    from a built-in architecture name or a model-config JSON), ``conch`` (the
    CoCa-style CONCH model, :mod:`.conch`) or ``timm`` (image-only backbones).
    ``name`` is the encoder id: it names ``features/<name>`` in every store.
    """

    name: str
    description: str = ""
    family: Family
    architecture: str | None = Field(
        None,
        description="open_clip model name, a model-config JSON (configs/encoders/models/ or a path), or a timm model name",
    )
    model_config_file: str | None = Field(
        None,
        description="open_clip_config.json of a hub snapshot: when it lies beside the weights it defines the model",
    )
    timm_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra timm.create_model arguments"
    )
    weights: WeightsConfig = Field(default_factory=WeightsConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    text: TextConfig | None = None
    output: OutputKind = Field(
        "joint", description="joint (L2-normalised image-text embedding) or pre_projection"
    )
    embed_dim: int | None = Field(
        None, ge=1, description="dimension D of the stored features (checked at load)"
    )
    requires: list[str] = Field(
        default_factory=list, description="extra Python modules the preset needs"
    )

    @model_validator(mode="after")
    def _consistent(self) -> EncoderConfig:
        sanitize_name(self.name)
        if self.family == "timm":
            if self.text is not None:
                raise ValueError("timm encoders are image-only: remove the 'text' section")
            if self.output != "image_only":
                raise ValueError("timm encoders store output 'image_only'")
            if not self.architecture:
                raise ValueError("timm encoders need 'architecture' (a timm model name)")
        else:
            if self.output == "image_only":
                raise ValueError(f"{self.family} encoders store 'joint' or 'pre_projection'")
            if self.text is None:
                raise ValueError(f"{self.family} encoders need a 'text' section")
            if not self.architecture and not self.model_config_file:
                raise ValueError("give 'architecture' or 'model_config_file'")
        return self

    @property
    def encoder_id(self) -> str:
        """Name of the features group, ``features/<encoder_id>``: the sanitised preset name."""
        return sanitize_name(self.name)

    @property
    def has_text(self) -> bool:
        return self.text is not None

    @property
    def text_aligned(self) -> bool:
        """True when stored image features live in the text tower's embedding space."""
        return self.has_text and self.output == "joint"


def weights_dir() -> Path | None:
    """``$WSI_ENGINE_WEIGHTS_DIR`` as a path, or ``None`` when unset."""
    value = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(value).expanduser() if value else None


def model_json_path(architecture: str) -> Path | None:
    """Path of a model-config JSON named by ``architecture`` (a path, or a file of configs/encoders/models/)."""
    if not architecture.endswith(".json"):
        return None
    candidate = Path(architecture).expanduser()
    if candidate.is_file():
        return candidate
    return configs_dir() / "encoders" / "models" / architecture
