"""Configuration: strict typed models, YAML presets, overrides, provenance files."""

from wsi_engine.config.loader import (
    StrictModel,
    configs_dir,
    list_presets,
    load_config,
    read_yaml,
    resolve_preset,
    validate,
    write_effective_config,
)

__all__ = [
    "StrictModel",
    "configs_dir",
    "list_presets",
    "load_config",
    "read_yaml",
    "resolve_preset",
    "validate",
    "write_effective_config",
]
