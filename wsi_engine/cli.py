"""The ``wsi-engine`` command line: global options, error handling, subcommands.

Each subcommand lives in :mod:`wsi_engine.commands` as a thin layer over one
stage's API and imports heavy libraries (torch, zarr...) only when it runs, so
``wsi-engine --help`` stays fast. A :class:`~wsi_engine.errors.WsiEngineError`
is printed as one line and exits with its documented code; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import logging
import sys

import click
import typer
from rich.console import Console
from typer._click.exceptions import ClickException

from wsi_engine import __version__
from wsi_engine.commands import (
    demo,
    embed,
    features,
    fit,
    heatmap,
    info,
    patches,
    predict,
    reports,
    run,
    synth,
    tasks,
    tile,
    verify,
    view,
)
from wsi_engine.commands.help_text import prepare_help
from wsi_engine.errors import INTERNAL_ERROR_EXIT_CODE, WsiEngineError, as_user_error

app = typer.Typer(
    name="wsi-engine",
    help="Whole-slide images to patch stores, CLIP features, few-shot MIL and heatmaps.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.command("synth")(synth.synth_command)
app.command("run")(run.run_command)
app.command("demo")(demo.demo_command)
app.command("info")(info.info_command)
app.command("heatmap")(heatmap.heatmap_command)
app.command("tile")(tile.tile_command)
app.command("embed")(embed.embed_command)
app.command("import-features")(features.import_features_command)
app.command("export-features")(features.export_features_command)
app.command("fit-patches")(patches.fit_patches_command)
app.command("predict-patches")(patches.predict_patches_command)
app.command("fit")(fit.fit_command)
app.command("predict")(predict.predict_command)
app.command("tasks")(tasks.tasks_command)
app.add_typer(reports.app, name="reports")
app.command("verify")(verify.verify_command)
app.command("view")(view.view_command)

_state = {"debug": False}
err_console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"wsi-engine {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
    log_level: str = typer.Option(
        "WARNING",
        "--log-level",
        help="Logging level: DEBUG, INFO, WARNING or ERROR.",
        case_sensitive=False,
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks instead of one-line errors."
    ),
) -> None:
    """Global options apply to every subcommand."""
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise WsiEngineError(
            f"unknown --log-level {log_level!r}", hint="use DEBUG, INFO, WARNING or ERROR"
        )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _state["debug"] = debug


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the process exit code."""
    args = argv if argv is not None else sys.argv[1:]
    _state["debug"] = "--debug" in args
    prepare_help(app, with_defaults="--help" in args or "-h" in args)
    try:
        app(args=argv, prog_name="wsi-engine", standalone_mode=False)
    except WsiEngineError as error:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        return error.exit_code
    except typer.Exit as done:
        return done.exit_code
    except (
        ClickException,
        click.ClickException,
    ) as error:  # usage errors (typer vendors its own click)
        error.show()
        return error.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        err_console.print("aborted")
        return 130
    except Exception as error:
        if _state["debug"]:
            raise
        known = as_user_error(error)  # disk full, read-only, permission denied: exit 8
        if known is not None:
            err_console.print(f"[bold red]error:[/] {known}", highlight=False, soft_wrap=True)
            return known.exit_code
        err_console.print(
            f"[bold red]internal error:[/] {type(error).__name__}: {error} "
            "(a bug: rerun with --debug and report the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        return INTERNAL_ERROR_EXIT_CODE
    return 0


def run() -> None:
    """Entry point used by ``python -m wsi_engine``."""
    sys.exit(main())
