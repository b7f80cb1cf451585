"""Settings from layers: defaults < a YAML file < ``--set key=value`` < options given on the command line.

Every layer names keys of one typed model (dotted for nested sections: ``train.lr``). An unknown
key is a :class:`~wsi_engine.errors.ConfigError` (exit 3) naming the key, where it came from and
the closest known key; values are validated by the model (its validators hold the cross-option
rules). :func:`layered_settings` is the one place this happens; the command line reaches it
through :func:`wsi_engine.commands.options.command_settings`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from wsi_engine.config.loader import (
    describe_validation_error,
    parse_yaml,
    read_yaml,
    short_repr,
)
from wsi_engine.config.names import did_you_mean
from wsi_engine.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def parse_sets(pairs: Iterable[str]) -> dict[str, Any]:
    """``["train.lr=1e-3", "formats=[png]"]`` → {dotted key: value parsed as YAML}, in order."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--set {short_repr(pair)} is not KEY=VALUE", hint="e.g. --set train.lr=0.001"
            )
        try:
            parsed[key.strip()] = parse_yaml(value)
        except yaml.YAMLError as error:
            raise ConfigError(
                f"--set {short_repr(pair)}: not a YAML value ({getattr(error, 'problem', None)})"
            ) from None
    return parsed


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a nested section (``X``, ``X | None``), or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [m for m in map(_section_model, typing.get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def _is_mapping(annotation: Any) -> bool:
    """A ``dict[...]`` field takes any sub-key (checked by whoever reads it)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_mapping(a) for a in typing.get_args(annotation))
    return origin in (dict, Mapping) or annotation is dict


def _field_names(model: type[BaseModel]) -> dict[str, str]:
    """{key as written (alias or name): field name}."""
    return {(f.alias or n): n for n, f in model.model_fields.items()}


def check_key(model: type[BaseModel], dotted: str, source: str | Path | None) -> None:
    """ConfigError naming ``dotted`` (and the closest key) unless it is a key of ``model``."""
    parts = dotted.split(".")
    current = model
    for depth, part in enumerate(parts):
        names = _field_names(current)
        if part not in names:
            where = ".".join(parts[:depth])
            known = sorted(names)
            suggestion = did_you_mean(part, known)
            listing = f"keys{' of ' + where if where else ''}: {', '.join(known)}"
            raise ConfigError(
                f"unknown key '{dotted}'",
                path=source,
                hint=f"{suggestion} {listing}" if suggestion else listing,
            )
        annotation = current.model_fields[names[part]].annotation
        if _is_mapping(annotation):
            return
        section = _section_model(annotation)
        if section is None:
            if depth < len(parts) - 1:
                raise ConfigError(
                    f"unknown key '{dotted}': '{'.'.join(parts[: depth + 1])}' takes a value, "
                    "not sub-keys",
                    path=source,
                )
            return
        current = section


def flatten(data: Mapping[str, Any], model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """{dotted key: value} of a nested mapping, down to ``model``'s plain values and mappings."""
    flat: dict[str, Any] = {}
    names = _field_names(model)
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        field = model.model_fields.get(names.get(str(key), ""), None)
        section = None if field is None else _section_model(field.annotation)
        if isinstance(value, Mapping) and section is not None:
            flat.update(flatten(value, section, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def assign(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``a.b.c``, creating (or replacing non-mapping) sections."""
    *parents, leaf = dotted.split(".")
    for key in parents:
        if not isinstance(data.get(key), dict):
            data[key] = {}
        data = data[key]
    data[leaf] = value


def _overlaps(key: str, given: Iterable[str]) -> bool:
    return any(key == g or key.startswith(f"{g}.") or g.startswith(f"{key}.") for g in given)


def layered_settings(
    model: type[M],
    *,
    base: Mapping[str, Any] | None = None,
    file: str | Path | None = None,
    sets: Mapping[str, Any] | None = None,
    explicit: Mapping[str, Any] | None = None,
    fallback: Mapping[str, Any] | None = None,
    catch_all: str | None = None,
) -> M:
    """``model`` from, lowest first: ``base`` (e.g. a preset), ``fallback`` (option defaults, only
    for keys no later layer gives), the YAML ``file``, ``sets`` (``--set``), ``explicit`` (options
    given on the command line). Keys are dotted; ``None`` values are skipped.

    ``catch_all``: a mapping field that takes the ``--set`` keys ``model`` does not know
    (``fit``: model options such as ``--set dim=256``).
    """
    data: dict[str, Any] = {}
    for key, value in flatten(base or {}, model).items():
        assign(data, key, value)
    layers: list[tuple[dict[str, Any], str | Path]] = []
    if file is not None:
        layers.append((flatten(read_yaml(Path(file)), model), file))
    routed = {}
    for key, value in (sets or {}).items():
        first = key.split(".")[0]
        if catch_all and first not in _field_names(model) and first != catch_all:
            key = f"{catch_all}.{key}"
        routed[key] = value
    layers.append((routed, "--set"))
    given = [key for layer, _ in layers for key in layer]
    for key, value in (fallback or {}).items():
        if value is not None and not _overlaps(key, given) and not _overlaps(key, explicit or {}):
            assign(data, key, value)
    layers.append(({k: v for k, v in (explicit or {}).items() if v is not None}, "command line"))
    origins: dict[str, str | Path] = {}
    for layer, source in layers:
        for key, value in layer.items():
            check_key(model, key, source)
            assign(data, key, value)
            origins[key] = source
    try:
        return model.model_validate(data)
    except ValidationError as error:
        locs = [".".join(str(p) for p in item["loc"]) for item in error.errors()]
        where = {
            str(origin)
            for loc in locs
            for key, origin in origins.items()
            if loc == key or loc.startswith(f"{key}.")
        }
        raise ConfigError(
            describe_validation_error(error), path=", ".join(sorted(where)) or None
        ) from None
