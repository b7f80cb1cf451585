"""Build an encoder's model with random weights, then fill it from a state dict by name or position.

Model construction never downloads: open_clip models are instantiated from
their config (built-in name or JSON) with every "pretrained" switch off, and
a Hugging Face text tower is built only when its config is already in the
local Hugging Face cache.
"""

from __future__ import annotations

import json
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wsi_engine.encoders.config import EncoderConfig, model_json_path
from wsi_engine.errors import EncoderError


def build_model(config: EncoderConfig, checkpoint_path: Path | None = None) -> nn.Module:
    """The model of ``config`` with random weights (``checkpoint_path`` may carry a hub model config beside it)."""
    _check_requirements(config)
    if config.family == "timm":
        import timm

        try:
            return timm.create_model(config.architecture, pretrained=False, **config.timm_kwargs)
        except Exception as error:
            raise EncoderError(
                f"cannot build timm model '{config.architecture}': {error}"
            ) from error
    if config.family == "conch":
        path = _model_json(config)
        from wsi_engine.encoders.conch import ConchModel

        return ConchModel.from_json(path)
    return _build_open_clip(_open_clip_model_cfg(config, checkpoint_path))


def _check_requirements(config: EncoderConfig) -> None:
    import importlib.util

    missing = [name for name in config.requires if importlib.util.find_spec(name) is None]
    if missing:
        raise EncoderError(
            f"encoder '{config.name}' needs the Python package(s) {', '.join(missing)}",
            hint=f"pip install {' '.join(missing)}",
        )


def _model_json(config: EncoderConfig) -> Path:
    path = model_json_path(config.architecture or "")
    if path is None or not path.is_file():
        raise EncoderError(
            f"model config '{config.architecture}' of encoder '{config.name}' not found", path=path
        )
    return path


def _open_clip_model_cfg(config: EncoderConfig, checkpoint_path: Path | None) -> dict[str, Any]:
    """open_clip model config: the hub's own file beside the weights, else ``architecture``."""
    if config.model_config_file and checkpoint_path is not None:
        beside = checkpoint_path.parent / config.model_config_file
        if beside.is_file():
            data = json.loads(beside.read_text(encoding="utf-8"))
            return data.get("model_cfg", data)
    if not config.architecture:
        raise EncoderError(
            f"encoder '{config.name}' is defined by the hub's {config.model_config_file}, "
            "which must lie beside the checkpoint file",
            path=checkpoint_path,
            hint="download the whole hub repo folder, not only the weights",
        )
    json_path = model_json_path(config.architecture)
    if json_path is not None:
        if not json_path.is_file():
            raise EncoderError(f"model config of encoder '{config.name}' not found", path=json_path)
        data = json.loads(json_path.read_text(encoding="utf-8"))
        return data.get("model_cfg", data)
    import open_clip

    cfg = open_clip.get_model_config(config.architecture)
    if cfg is None:
        raise EncoderError(
            f"unknown open_clip architecture '{config.architecture}'",
            hint="use a name from open_clip.list_models() or a model-config JSON",
        )
    return cfg


def _build_open_clip(model_cfg: dict[str, Any]) -> nn.Module:
    """Instantiate open_clip's CLIP, CustomTextCLIP or CoCa from a model config, with no pretrained towers."""
    from open_clip import CLIP, CoCa, CustomTextCLIP

    cfg = deepcopy(model_cfg)
    hf_text = cfg.get("text_cfg", {}).get("hf_model_name")
    custom_text = cfg.pop("custom_text", False) or bool(hf_text)
    if "timm_model_name" in cfg.get("vision_cfg", {}):
        cfg["vision_cfg"]["timm_model_pretrained"] = False
    if hf_text:
        _require_cached_hf_config(hf_text)
        cfg["text_cfg"]["hf_model_pretrained"] = False
    model_class = CoCa if "multimodal_cfg" in cfg else CustomTextCLIP if custom_text else CLIP
    try:
        return model_class(**cfg)
    except (OSError, ValueError) as error:  # e.g. a Hugging Face file missing from the local cache
        raise EncoderError(
            f"cannot build the model offline ({type(error).__name__}: {str(error).splitlines()[0][:200]})",
            hint="its Hugging Face text model must already be in the local HF cache (HF_HOME)",
        ) from error


def _require_cached_hf_config(model_id: str) -> None:
    """Fail fast (no network) when a Hugging Face text tower's config is not in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model_id, "config.json")
    if not isinstance(found, str):
        raise EncoderError(
            f"the text tower needs the Hugging Face model {model_id}, which is not in the local HF cache",
            hint="download it once with network access (nothing is downloaded at run time)",
        )


def drop_image_projection(model: nn.Module, config: EncoderConfig) -> None:
    """Remove the image projection of an open_clip model so it returns pre-projection features."""
    from open_clip.timm_model import TimmModel
    from open_clip.transformer import VisionTransformer

    visual = model.visual
    if isinstance(visual, VisionTransformer):
        visual.proj = None
    elif isinstance(visual, TimmModel) and hasattr(visual.head, "proj"):
        visual.head.proj = nn.Identity()
    else:
        raise EncoderError(
            f"output 'pre_projection' is not supported for the image tower of '{config.name}' "
            f"({type(visual).__name__})",
            hint="use output: joint",
        )


def load_weights(
    model: nn.Module, state_dict: dict[str, torch.Tensor], config: EncoderConfig, path: Path
) -> None:
    """Fill ``model`` from ``state_dict`` (format per ``config.weights``); EncoderError when they do not fit."""
    weights = config.weights
    state_dict = {
        k: v
        for k, v in state_dict.items()
        if not any(k.startswith(p) for p in weights.ignore_prefixes)
    }
    if weights.format == "by_position":
        state_dict = _rename_by_position(model, state_dict, config, path)
    elif config.family == "open_clip":
        state_dict = _adapt_open_clip(model, state_dict)
    _check_fit(model, state_dict, config, path)
    model.load_state_dict(state_dict, strict=True)


def _adapt_open_clip(
    model: nn.Module, state_dict: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The layout fixes open_clip applies to its own releases (old text layout, scalar logit scale...)."""
    from open_clip.model import convert_to_custom_text_state_dict

    if "positional_embedding" in state_dict and not hasattr(model, "positional_embedding"):
        state_dict = convert_to_custom_text_state_dict(state_dict)
    for key in ("logit_scale", "logit_bias"):
        target = getattr(model, key, None)
        if key in state_dict and target is not None and state_dict[key].ndim != target.ndim:
            state_dict[key] = state_dict[key].reshape(target.shape)
    state_dict.pop("text.transformer.embeddings.position_ids", None)
    return state_dict


def _rename_by_position(
    model: nn.Module, state_dict: dict[str, torch.Tensor], config: EncoderConfig, path: Path
) -> dict[str, torch.Tensor]:
    names = list(model.state_dict().keys())
    if set(names) == set(
        state_dict
    ):  # already in the model's own names (e.g. made by create_random_checkpoint)
        return state_dict
    if path.suffix == ".safetensors":
        raise EncoderError(
            "weights mapped by position need the original torch file: safetensors does not keep tensor order",
            path=path,
        )
    if len(names) != len(state_dict):
        raise EncoderError(
            f"checkpoint holds {len(state_dict)} tensors, architecture '{config.architecture}' has {len(names)}",
            path=path,
            hint="is this checkpoint for this --encoder?",
        )
    return dict(zip(names, state_dict.values(), strict=True))


def _check_fit(
    model: nn.Module, state_dict: dict[str, torch.Tensor], config: EncoderConfig, path: Path
) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    for label, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("shape mismatch", mismatched),
    ):
        if keys:
            shown = ", ".join(keys[:3]) + (", …" if len(keys) > 3 else "")
            parts.append(f"{len(keys)} {label} ({shown})")
    raise EncoderError(
        f"checkpoint does not fit encoder '{config.name}' ({config.architecture}): "
        + "; ".join(parts),
        path=path,
        hint="is this checkpoint for this --encoder?",
    )
