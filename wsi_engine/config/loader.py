"""Typed, validated configuration loaded from YAML presets, with command-line overrides.

A preset is named by a path to a YAML file or by a bare name looked up in
``configs/<kind>/<name>.yaml``. Unknown keys and wrong types raise
:class:`~wsi_engine.errors.ConfigError` naming the key and the file. The
effective configuration is written next to every output for provenance.
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from wsi_engine.config.names import match_name, unknown_name_hint
from wsi_engine.errors import ConfigError

CONFIGS_ENV = "WSI_ENGINE_CONFIGS"


class StrictModel(BaseModel):
    """Base of every configuration object: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


M = TypeVar("M", bound=StrictModel)


def configs_dir() -> Path:
    """Folder of the presets: ``$WSI_ENGINE_CONFIGS``, else the ``configs/`` shipped inside the package.

    The shipped folder is package data (found through :mod:`importlib.resources`), so a wheel
    install finds the same presets as a source checkout.
    """
    env = os.environ.get(CONFIGS_ENV)
    return Path(env) if env else Path(str(resources.files("wsi_engine") / "configs"))


def list_presets(kind: str) -> list[str]:
    """Names of the presets of ``kind`` (a sub-folder of ``configs/``)."""
    folder = configs_dir() / kind
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve_preset(
    name_or_path: str | Path, kind: str, aliases: Mapping[str, str] | None = None
) -> Path:
    """Path of a preset given as a YAML path or a preset name of ``kind``.

    Names match case-insensitively and ignoring ``-``/``_``/``.``; ``aliases``
    maps other names (e.g. ``conch_v1``) to preset names. An unknown name's
    error suggests the closest presets.
    """
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise ConfigError("configuration file not found", path=candidate)
        return candidate
    known = list_presets(kind)
    matched = match_name(str(name_or_path), known, aliases)
    if matched is None:
        hint = unknown_name_hint(str(name_or_path), known, aliases, "known presets")
        raise ConfigError(
            f"unknown {kind} preset '{name_or_path}'",
            hint=f"{hint}; or give the path of a YAML file",
        )
    return configs_dir() / kind / f"{matched}.yaml"


MAX_YAML_BYTES = 1 << 20
"""Largest configuration file read (1 MiB): a configuration is a few kB."""

MAX_VALUE_CHARS = 80
"""Longest rendering of a value quoted in an error message."""


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases (``*name``): a few lines of nested aliases
    (a "billion laughs" document) expand to gigabytes, and configurations never need them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def parse_yaml(text: str) -> Any:
    """Parse YAML text safely: plain data only, no aliases (:class:`_NoAliasLoader`)."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)


def short_repr(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (error messages quote values, never whole documents)."""
    text = reprlib.repr(value) if not isinstance(value, str | int | float | bool) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping (at most 1 MiB, no aliases); syntax errors name the file and line."""
    try:
        if Path(path).stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(
                f"configuration file is larger than {MAX_YAML_BYTES // 1024} KiB", path=path
            )
        with open(path, encoding="utf-8") as handle:
            data = parse_yaml(handle.read())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"invalid YAML{where}: {problem}", path=path) from error
    except OSError as error:
        raise ConfigError(f"cannot read configuration ({error.strerror})", path=path) from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of keys to values, got {type(data).__name__}", path=path
        )
    return data


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: ``key.sub: message (got value)``."""
    parts = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown key '{key}'")
        elif item["type"] == "missing":
            parts.append(f"missing key '{key}'")
        elif item["type"] == "value_error" and isinstance(item.get("input"), dict):
            # a model's rule across its keys: its message says which
            parts.append(str(item.get("ctx", {}).get("error", item["msg"])))
        else:
            message = item["msg"][:200]
            parts.append(f"key '{key}': {message} (got {short_repr(item.get('input'))})")
    return "; ".join(parts)


def validate(model: type[M], data: dict[str, Any], source: str | Path | None = None) -> M:
    """Build ``model`` from ``data``; raise ConfigError naming keys and ``source``."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error), path=source) from error


def load_config(
    model: type[M], name_or_path: str | Path, kind: str, aliases: Mapping[str, str] | None = None
) -> M:
    """Load preset ``name_or_path`` of ``kind`` (or an alias of one) into ``model``."""
    path = resolve_preset(name_or_path, kind, aliases)
    return validate(model, read_yaml(path), path)


def write_effective_config(out_dir: str | Path, name: str, sections: dict[str, Any]) -> Path:
    """Write ``<out_dir>/<name>.yaml`` with the effective configuration and provenance.

    ``sections`` maps section names to config objects or plain data; the engine
    version, command line and a UTC timestamp are added. Written atomically.
    """
    import sys
    from datetime import UTC, datetime

    from wsi_engine import __version__

    payload: dict[str, Any] = {
        "engine_version": __version__,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "command": " ".join(["wsi-engine", *sys.argv[1:]]),
    }
    for key, value in sections.items():
        payload[key] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    out = Path(out_dir) / f"{name}.yaml"
    tmp = out.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(payload, sort_keys=False), encoding="utf-8")
    os.replace(tmp, out)
    return out
