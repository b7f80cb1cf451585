"""Help that shows every default, with markup-safe text.

Typer renders help with rich markup, so a help text ending in ``[ce]`` lost
its default. :func:`prepare_help` escapes square brackets in every option's
help, gives repeatable options a plain metavar (``PATH`` rather than
``<list[Path]>``) and, when help is being shown, appends the default of
options whose value comes from a preset or config file (``tile``, ``run``) or
that are simply off when omitted.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args, get_origin

import typer
from typer.models import ParameterInfo

_UNESCAPED = re.compile(r"(?<!\\)\[")
_SHOWS_DEFAULT = re.compile(r"\\\[[^\]]+\]|\(default: ")

_NONE_MEANS = {
    "--checkpoint": "the preset's weights file",
    "--labels": "none: no true labels",
    "--scheduler": "a local cluster",
    "--workers": "by CPU cores",
    "--gpus": "all visible GPUs",
    "--config": "configs/pipeline.yaml",
    "--mpp": "the slide's metadata",
    "--mpp-table": "none",
    "--tissue-geojson": "tissue detection",
    "--tissue-mask": "tissue detection",
    "--ext": "every known slide extension",
    "--backend": "auto",
    "--run": "none: tile and embed only",
    "--recursive": "off",
    "--slides": "none",
    "--class": "every class of the run",
    "--out": "none",
    "--from-run": "none",
    "--images": "none",
    "--task": "none",
    "--encoder": "none",
    "--scores": "the heatmaps' run",
    "name": "list every task",
    "inputs": "none: use --stores",
    "--stores": "none: use the positional STORES",
}


def _config_defaults(command: str) -> dict[str, Any]:
    """Option → default for the options of ``tile`` and ``run`` whose default lives in a config file."""
    if command == "tile":
        from wsi_engine.config.loader import configs_dir, read_yaml

        tiling = read_yaml(configs_dir() / "tiling" / "default.yaml")
        return {
            "--patch-size": tiling.get("patch_size"),
            "--mpp-target": tiling.get("target_mpp"),
            "--overlap": tiling.get("overlap"),
            "--min-tissue": tiling.get("min_tissue_fraction"),
            "--pixels": tiling.get("pixel_mode"),
            "--jpeg-quality": tiling.get("jpeg_quality"),
            "--shard-patches": tiling.get("shard_patches"),
        }
    if command == "run":
        from wsi_engine.pipeline import load_pipeline_config

        config = load_pipeline_config(None, {})
        return {
            "--encoder": config.embed.encoder,
            "--device": config.embed.device,
            "--batch-size": config.embed.batch_size,
            "--patch-size": config.tiling.patch_size,
            "--mpp-target": config.tiling.target_mpp,
            "--pixels": config.tiling.pixel_mode,
        }
    return {}


def prepare_help(app: typer.Typer, *, with_defaults: bool) -> None:
    """Escape, relabel and (``with_defaults``) complete the help of every option of ``app``'s commands."""
    for info in app.registered_commands:
        name = info.name or ""
        defaults: dict[str, Any] = {}
        if with_defaults:
            try:
                defaults = _config_defaults(name)
            except Exception:  # a broken config file must not break --help
                defaults = {}
        _prepare(info.callback, defaults if with_defaults else None)


def _prepare(callback: Callable[..., Any] | None, defaults: dict[str, Any] | None) -> None:
    if callback is None:
        return
    for parameter in inspect.signature(callback).parameters.values():
        option = parameter.default
        if not isinstance(option, ParameterInfo):
            continue
        option.help = _UNESCAPED.sub(r"\\[", option.help or "")
        if get_origin(parameter.annotation) is list or "list[" in str(parameter.annotation):
            option.metavar = option.metavar or _item_metavar(parameter.annotation)
        if defaults is None or _SHOWS_DEFAULT.search(option.help):
            continue
        flag = _flag_name(option, parameter.name)
        if option.default is False:
            value = "off"
        elif option.default is None:
            value = defaults.get(flag, _NONE_MEANS.get(flag))
        elif isinstance(option.default, list | tuple) and not option.default:
            value = "none"
        else:
            continue
        if value is not None:
            option.help = f"{option.help.rstrip()} \\[default: {value}]"


def _flag_name(option: ParameterInfo, name: str) -> str:
    declared = [d for d in getattr(option, "param_decls", None) or () if d.startswith("--")]
    return declared[0].split("/")[0] if declared else name


def _item_metavar(annotation: Any) -> str:
    args = get_args(annotation)
    item = args[0] if args else str
    return "PATH" if item is Path or "Path" in str(annotation) else "TEXT"
