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

# ---------------------------------------------------------------- options of several commands
MPP = typer.Option(None, "--mpp", help="µm/px of level 0 for every slide (overrides metadata).")
MPP_TABLE = typer.Option(
    None, "--mpp-table", help="CSV of per-slide µm/px: slide_id,mpp (or slide_id,mpp_x,mpp_y)."
)
SCHEDULER = typer.Option(
    None,
    "--scheduler",
    help="Address of a running Dask scheduler to use instead of a local cluster "
    "(one task per slide or store on its workers; docs/scaling.md).",
)
ENCODER_CHECKPOINT = typer.Option(
    None,
    "--checkpoint",
    help="Encoder weights file instead of the preset's (or set WSI_ENGINE_WEIGHTS_DIR).",
)
OVERWRITE_RUN = typer.Option(False, "--overwrite", help="Replace a run already in --out.")
PRIVILEGED_WEIGHT = typer.Option(
    None, "--privileged-weight", help="λ of the 1 − cos text term [1.0]."
)
LORA = typer.Option(None, "--lora/--no-lora", help="LoRA (peft) in the CLIP-IT stage \\[on].")
IMAGES_DEVICE = typer.Option("cpu", "--device", help="Device that encodes --images.")
SLIDE_LABELS = typer.Option(
    None, "--labels", help="labels.csv (slide_id,label) to show true labels."
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


def with_settings(
    command: Callable[..., Any] | None = None, *, rule: Callable[[Any], None] | None = None
) -> Any:
    """``command`` with ``--config FILE`` and ``--set KEY=VALUE`` over its own options.

    For commands without a settings model of their own: the keys are the option names (``_`` for
    ``-``, e.g. ``top_k``), typed and checked by a strict model built from the options (an
    unknown key fails with exit 3 and the closest key); precedence as :func:`command_settings`.
    ``rule(settings)`` raises ValueError when options contradict each other (the model's
    validator: a one-line ConfigError). Arguments (the inputs) stay on the command line.
    """
    if command is None:
        return lambda function: with_settings(function, rule=rule)
    import functools
    import inspect
    import typing

    from typer.models import OptionInfo

    hints = typing.get_type_hints(command)
    signature = inspect.signature(command)
    options = {
        name: (hints[name], ... if p.default.default is ... else p.default.default)
        for name, p in signature.parameters.items()
        if isinstance(p.default, OptionInfo)
    }

    @functools.cache
    def settings_model() -> type[BaseModel]:
        """The strict model of the options (built on first use: ``--help`` needs no pydantic)."""
        from pydantic import create_model, model_validator

        from wsi_engine.config.loader import StrictModel

        def check(settings: Any) -> Any:
            if rule is not None:
                rule(settings)
            return settings

        return create_model(
            f"{command.__name__}_settings",
            __base__=StrictModel,
            __validators__={"rule": model_validator(mode="after")(check)},
            **options,
        )

    @functools.wraps(command)
    def wrapper(
        ctx: typer.Context, config_file: Path | None, set_options: list[str], **kwargs: Any
    ) -> Any:
        settings = command_settings(
            ctx, settings_model(), {n: n for n in options}, file=config_file, sets=set_options
        )
        return command(**{**kwargs, **dict(settings)})

    keyword = inspect.Parameter.KEYWORD_ONLY
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            inspect.Parameter("ctx", keyword, annotation=typer.Context),
            *(
                p.replace(kind=keyword, annotation=hints[p.name])
                for p in signature.parameters.values()
            ),
            inspect.Parameter("config_file", keyword, default=CONFIG_FILE, annotation=Path | None),
            inspect.Parameter("set_options", keyword, default=SET, annotation=list[str]),
        ]
    )
    wrapper.__annotations__ = {
        **hints,
        "ctx": typer.Context,
        "config_file": Path | None,
        "set_options": list[str],
    }
    return wrapper
