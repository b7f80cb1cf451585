"""LoRA through the ``peft`` library: on a head's Linear layers, or on the last blocks of an image tower.

CLIP-IT puts LoRA (r = 16, α = 8, dropout 0: reference §4.2) on the layers of
both models in its second stage. Here it goes on the trainable image-side
Linear layers that exist: the patch head's MLP adapter and the text
classifier's MLP (:func:`with_lora`), or, when an image tower is fine-tuned,
the Linear layers of its last blocks (:func:`lora_on_tower`). The wrapped
layers' own weights are frozen; every other parameter named in ``trainable``
keeps training. :func:`merged` folds the low-rank updates back into plain
Linear layers, so checkpoints hold an ordinary model.
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from wsi_engine.config.loader import StrictModel
from wsi_engine.errors import ConfigError


class LoraSettings(StrictModel):
    """Rank and scale of the LoRA updates (the paper's defaults)."""

    enabled: bool = True
    r: int = Field(16, ge=1, description="rank of the low-rank update")
    alpha: float = Field(8.0, gt=0, description="LoRA α; the update is scaled by α / r")
    dropout: float = Field(0.0, ge=0, lt=1)


def linear_names(module: nn.Module, prefixes: list[str]) -> list[str]:
    """Names of the nn.Linear sub-modules of ``module`` under any of ``prefixes``."""
    return [
        name
        for name, child in module.named_modules()
        if isinstance(child, nn.Linear) and any(name.startswith(p) for p in prefixes)
    ]


def with_lora(model: nn.Module, targets: list[str], settings: LoraSettings) -> nn.Module:
    """``model`` wrapped by peft with LoRA on the Linear layers ``targets``; other parameters stay trainable.

    Returns the model itself when ``targets`` is empty (nothing to adapt).
    """
    if not targets:
        return model
    wrapped = _peft_lora(model, targets, settings)
    frozen = {f"{t}.base_layer.{p}" for t in targets for p in ("weight", "bias")}
    for name, parameter in wrapped.base_model.model.named_parameters():
        if "lora_" not in name and name not in frozen:
            parameter.requires_grad_(True)
    return wrapped


def merged(model: nn.Module) -> nn.Module:
    """The plain model with LoRA updates folded in (``model`` itself when it has no LoRA)."""
    from peft import PeftModel

    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def tower_blocks(tower: nn.Module) -> list[str]:
    """Prefixes of the transformer blocks of a timm ViT or an open_clip visual tower, in order."""
    for path in ("transformer.resblocks", "trunk.blocks", "blocks"):
        module = tower
        try:
            for part in path.split("."):
                module = getattr(module, part)
        except AttributeError:
            continue
        return [f"{path}.{i}" for i in range(len(module))]
    raise ConfigError(
        f"no transformer blocks found in {type(tower).__name__}",
        hint="LoRA fine-tuning of the tower supports timm ViTs and open_clip visual towers",
    )


def lora_on_tower(tower: nn.Module, last_blocks: int, settings: LoraSettings) -> nn.Module:
    """``tower`` with LoRA on the Linear layers of its last ``last_blocks`` blocks; everything else frozen."""
    blocks = tower_blocks(tower)
    if not 1 <= last_blocks <= len(blocks):
        raise ConfigError(f"--lora-blocks {last_blocks}: the tower has {len(blocks)} blocks")
    return _peft_lora(
        tower, linear_names(tower, [b + "." for b in blocks[-last_blocks:]]), settings
    )


def _peft_lora(model: nn.Module, targets: list[str], settings: LoraSettings) -> nn.Module:
    """peft's LoRA wrapper of ``model`` on the Linear layers ``targets`` (their own weights frozen)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
    )
    return get_peft_model(model, config)
