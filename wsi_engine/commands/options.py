"""Command-line options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from wsi_engine.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")

THREADS = typer.Option(
    None,
    "--threads",
    help="CPU threads for torch \\[all cores; 1 is fastest for small bags on a busy machine].",
)

TRAINING_DEVICE = typer.Option(
    "auto",
    "--device",
    help="Where MIL models run: auto (a CUDA GPU if there is one), cuda, cuda:N or cpu "
    "\\[float32 throughout, Sinkhorn included].",
)


def stores_argument() -> Any:
    """The positional STORES of commands that read patch stores (``--stores`` stays as an alias)."""
    return typer.Argument(
        None,
        metavar="STORES",
        help="Patch stores (<slide_id>.zarr) or folders of stores.",
        show_default=False,
    )


def stores_option(help: str) -> Any:
    """``--stores``: the older spelling of the positional STORES, still accepted (repeatable)."""
    return typer.Option(None, "--stores", help=f"{help} Same as the positional STORES.")


def merged_stores(positional: list[Path] | None, option: list[Path] | None) -> list[Path]:
    """Stores given positionally and with ``--stores``; a usage error when there are none."""
    stores = [*(positional or []), *(option or [])]
    if not stores:
        raise ConfigError(
            "no patch stores given",
            hint="pass store folders as arguments, e.g. `... OUT/stores` (or with --stores)",
        )
    return stores


def output_file(out: Path, default_name: str) -> Path:
    """``--out`` as a folder (then ``default_name`` inside it) or, for compatibility, a file with a suffix."""
    if out.suffix and not out.is_dir():
        return out
    out.mkdir(parents=True, exist_ok=True)
    return out / default_name


# ---------------------------------------------------------------- settings: --config and --set
CONFIG_FILE = typer.Option(
    None,
    "--config",
    help="YAML file of settings: the keys --set takes (docs/configuration.md) \\[none].",
)
SET = typer.Option(
    [],
    "--set",
    help="Setting KEY=VALUE (dotted keys, YAML values; repeatable): beats --config, "
    "loses to an option given here.",
)

_GIVEN = {"COMMANDLINE", "ENVIRONMENT", "PROMPT"}


def _plain(value: Any) -> Any:
    """Paths as strings (settings models hold text), lists and tuples item by item."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def command_settings(
    ctx: typer.Context,
    model: type[M],
    flags: dict[str, str],
    *,
    file: str | Path | None = None,
    sets: list[str] | None = None,
    base: dict[str, Any] | None = None,
    convert: dict[str, Callable[[Any], Any]] | None = None,
    catch_all: str | None = None,
) -> M:
    """The command's ``model``: defaults (``base``, option defaults) < ``file`` (``--config``) <
    ``sets`` (``--set``) < options given on the command line.

    ``flags`` maps the command's parameter names to (dotted) keys of ``model``; ``convert``
    turns a parameter's text into the key's value (``--shots 1,4`` → ``[1, 4]``). An option left
    at its default counts only where neither the file nor ``--set`` gives the key.
    """
    from wsi_engine.config.overrides import layered_settings, parse_sets

    explicit: dict[str, Any] = {}
    fallback: dict[str, Any] = {}
    for name, key in flags.items():
        value = ctx.params.get(name)
        if value is None:
            continue
        value = (convert or {}).get(name, _plain)(value)
        source = ctx.get_parameter_source(name)
        (explicit if source is not None and source.name in _GIVEN else fallback)[key] = value
    return layered_settings(
        model,
        base=base,
        file=file,
        sets=parse_sets(sets or []),
        explicit=explicit,
        fallback=fallback,
        catch_all=catch_all,
    )
