"""Model registry: names used on the command line → configuration class and constructor.

Every model is built as ``create_model(name, config, feature_dim, n_classes,
text)`` and implements :class:`~wsi_engine.mil.base.MILModel`; ``text`` (the
task's prompt embeddings, or ``None``) is used only by models with
``uses_text``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from wsi_engine.config.loader import StrictModel, validate
from wsi_engine.config.names import match_name, unknown_name_hint
from wsi_engine.errors import ConfigError
from wsi_engine.mil.base import MILModel
from wsi_engine.prompts import TaskEmbeddings

Builder = Callable[..., MILModel]
"""``build(config, feature_dim, n_classes)``, plus the task's ``text`` when ``uses_text``."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    config_type: type[StrictModel]
    build: Builder
    summary: str
    uses_text: bool = False


POOLING_SUMMARIES: dict[Literal["mean", "max"], str] = {
    "mean": "instance classifier, mean pooling",
    "max": "instance classifier, max pooling",
}
"""The instance-pooling baselines, one model name per pooling mode."""


def _specs() -> dict[str, ModelSpec]:
    from wsi_engine.mil.baselines import ABMILConfig, GatedABMIL, InstancePooling, PoolingConfig
    from wsi_engine.mil.libra import LibraConfig, LibraMIL

    specs = [
        ModelSpec(
            "libra",
            LibraConfig,
            LibraMIL,
            "Libra-MIL: dual prototypes, stereoscopic OT fusion, prompt-queried cross-attention",
            uses_text=True,
        ),
        ModelSpec(
            "abmil", ABMILConfig, GatedABMIL, "gated-attention MIL, one attention branch per class"
        ),
        *(
            ModelSpec(mode, PoolingConfig, partial(InstancePooling, mode=mode), summary)
            for mode, summary in POOLING_SUMMARIES.items()
        ),
    ]
    return {spec.name: spec for spec in specs}


def list_models() -> list[str]:
    """Registered model names."""
    return list(_specs())


def get_spec(name: str) -> ModelSpec:
    specs = _specs()
    matched = match_name(name, specs)
    if matched is None:
        raise ConfigError(f"unknown model '{name}'", hint=unknown_name_hint(name, specs))
    return specs[matched]


def model_config(
    name: str, values: dict[str, Any] | None = None, source: str = "model options"
) -> StrictModel:
    """The validated configuration of model ``name`` from ``values`` (defaults for missing keys)."""
    return validate(get_spec(name).config_type, dict(values or {}), source)


def create_model(
    name: str, config: StrictModel, feature_dim: int, n_classes: int, text: TaskEmbeddings | None
) -> MILModel:
    """Build model ``name``; ``text`` is ignored by models that use no language priors."""
    spec = get_spec(name)
    if spec.uses_text:
        return spec.build(config, feature_dim, n_classes, text)
    return spec.build(config, feature_dim, n_classes)
