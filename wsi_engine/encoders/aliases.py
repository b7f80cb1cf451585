"""Encoder names users already know, mapped to presets or built directly.

:func:`load_encoder_config` turns a preset name, a YAML path or any of these
names into a config; :func:`resolve_encoder_name` accepts, besides preset names (any case, ``-``
or ``_``):

* names other tools use (TRIDENT/CLAM ``conch_v1``, ``uni_v1``, ``quiltnet``, ``openai``...);
* a preset's hub id, with or without ``hf-hub:`` (``hf-hub:wisdomik/QuiltNet-B-32``);
* ``timm:NAME``: the timm preset of that architecture, else an image-only timm encoder built directly;
* an open_clip architecture name (``ViT-B-16``): a CLIP encoder built directly from open_clip's config.

Directly built encoders expect their weights under ``$WSI_ENGINE_WEIGHTS_DIR``
like presets (or ``--checkpoint``); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from wsi_engine.config import configs_dir, list_presets, load_config
from wsi_engine.config.loader import read_yaml
from wsi_engine.config.names import match_name, unknown_name_hint
from wsi_engine.encoders.config import EncoderConfig
from wsi_engine.errors import ConfigError

KNOWN_ALIASES = {
    "conch": "conch_ViT-B-16",
    "conch_v1": "conch_ViT-B-16",
    "uni": "uni_v1",
    "quiltnet": "quiltnet-b-32",
    "quilt": "quiltnet-b-32",
    "openai": "openai-vit-b-16",
    "openai_clip": "openai-vit-b-16",
    "clip": "openai-vit-b-16",
    "biomed_clip": "biomedclip",
}
"""Other tools' names → our preset names (matched case- and separator-insensitively)."""


def encoder_aliases() -> dict[str, str]:
    """Every alias → preset: :data:`KNOWN_ALIASES`, each preset's hub id, and ``timm:<architecture>``."""
    presets = list_presets("encoders")
    aliases = {k: v for k, v in KNOWN_ALIASES.items() if v in presets}
    for name in presets:
        data = read_yaml(configs_dir() / "encoders" / f"{name}.yaml")
        hub = (data.get("weights") or {}).get("hf_hub")
        if hub:
            aliases[hub] = name
        if data.get("family") == "timm" and data.get("architecture"):
            aliases.setdefault(f"timm:{data['architecture']}", name)
    return aliases


def resolve_encoder_name(name: str) -> str | EncoderConfig:
    """The preset name ``name`` means, or an :class:`EncoderConfig` built for it; ConfigError with suggestions."""
    presets, aliases = list_presets("encoders"), encoder_aliases()
    matched = match_name(name, presets, aliases)
    if matched is not None:
        return matched
    if name.lower().startswith("timm:"):
        return _timm_encoder(name[5:])
    architecture = _open_clip_architecture(name)
    if architecture is not None:
        return _open_clip_encoder(architecture)
    raise ConfigError(
        f"unknown encoder '{name}'",
        hint=unknown_name_hint(name, presets, aliases)
        + "; also accepted: timm:<model name>, an open_clip architecture (e.g. ViT-B-16) or a YAML path",
    )


def _timm_encoder(architecture: str) -> EncoderConfig:
    import timm

    if not timm.is_model(architecture):
        import difflib

        close = difflib.get_close_matches(architecture, timm.list_models(), n=3)
        raise ConfigError(
            f"timm has no model '{architecture}'",
            hint=f"similar timm names: {', '.join(close)}" if close else "see timm.list_models()",
        )
    safe = architecture.replace("/", "_")
    return EncoderConfig.model_validate(
        {
            "name": f"timm-{safe}",
            "description": f"timm {architecture} (image-only, built directly)",
            "family": "timm",
            "architecture": architecture,
            "timm_kwargs": {"num_classes": 0},
            "weights": {
                "file": f"timm/{safe}/model.safetensors",
                "hf_hub": f"timm/{architecture}",
                "hf_file": "model.safetensors",
                "source": f"the timm weights of {architecture} (e.g. hub repo timm/{architecture})",
            },
            "preprocess": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            "output": "image_only",
        }
    )


def _open_clip_architecture(name: str) -> str | None:
    import open_clip

    return match_name(name, open_clip.list_models())


def _open_clip_encoder(architecture: str) -> EncoderConfig:
    import open_clip

    cfg = open_clip.get_model_config(architecture) or {}
    text = cfg.get("text_cfg", {})
    if text.get("hf_tokenizer_name") or text.get("hf_model_name"):
        raise ConfigError(
            f"open_clip architecture '{architecture}' needs a Hugging Face text tower",
            hint="write a preset YAML for it (see configs/encoders/biomedclip.yaml)",
        )
    image_size = cfg.get("vision_cfg", {}).get("image_size", 224)
    return EncoderConfig.model_validate(
        {
            "name": architecture,
            "description": f"open_clip {architecture} (built directly)",
            "family": "open_clip",
            "architecture": architecture,
            "weights": {
                "file": f"{architecture}/open_clip_pytorch_model.bin",
                "source": f"an open_clip checkpoint of {architecture}",
            },
            "preprocess": {"image_size": image_size if isinstance(image_size, int) else 224},
            "text": {"tokenizer": "clip-bpe", "context_length": text.get("context_length", 77)},
            "output": "joint",
            "embed_dim": cfg.get("embed_dim"),
        }
    )


def load_encoder_config(name_or_path: str | Path | EncoderConfig) -> EncoderConfig:
    """An :class:`EncoderConfig` from a preset name, a YAML path, or an existing config (returned as is)."""
    if isinstance(name_or_path, EncoderConfig):
        return name_or_path
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return load_config(EncoderConfig, name_or_path, "encoders")
    resolved = resolve_encoder_name(str(name_or_path))
    if isinstance(resolved, EncoderConfig):
        return resolved
    return load_config(EncoderConfig, resolved, "encoders")


__all__ = ["KNOWN_ALIASES", "encoder_aliases", "load_encoder_config", "resolve_encoder_name"]
