"""Every command's --help shows every default; bracketed defaults survive rich markup; shell completion exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from wsi_engine.cli import app, main
from wsi_engine.commands.help_text import prepare_help

_DEFAULT = re.compile(r"\\\[[^\]]+\]|\(default: ")


def _commands():
    prepare_help(app, with_defaults=True)
    return sorted(typer.main.get_command(app).commands.items())


def test_every_option_of_every_command_states_its_default() -> None:
    missing = []
    for name, command in _commands():
        for param in command.params:
            if param.name == "help" or param.required:
                continue
            empty = param.default is None or param.default is False or param.default in ([], ())
            typer_shows = not empty and param.show_default is not False
            if not typer_shows and not _DEFAULT.search(param.help or ""):
                missing.append(f"{name} {param.opts[0]}")
    assert not missing, missing


@pytest.mark.parametrize("name", [name for name, _ in _commands()])
def test_help_renders_for_every_command(name: str, capsys) -> None:
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: wsi-engine " + name in out
    assert "--help" in out and "Traceback" not in out


def test_bracketed_defaults_are_not_swallowed_by_markup(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["fit", "--help"]) == 0
    out = capsys.readouterr().out
    for shown in (
        "reinforced-focal [ce]",
        "[none]",
        "[random]",
        "[the --out folder name]",
        "[off]",
    ):
        assert shown in out, shown
    assert main(["predict", "--help"]) == 0
    assert "[the largest]" in capsys.readouterr().out
    assert main(["tile", "--help"]) == 0
    assert "[default: 256]" in capsys.readouterr().out  # from configs/tiling/default.yaml


def test_shell_completion_is_offered(capsys) -> None:
    assert main(["--help"]) == 0
    assert "--install-completion" in capsys.readouterr().out


def test_help_of_every_command_loads_no_heavy_module() -> None:
    """``--help`` is the start-up a user meets first: no torch, matplotlib, scipy, Dask or OpenSlide."""
    heavy = ("torch", "matplotlib", "scipy", "distributed", "openslide", "zarr")
    code = (
        "import sys\n"
        "import typer.main\n"
        "from wsi_engine.cli import app, main\n"
        "names = sorted(typer.main.get_command(app).commands)\n"
        "codes = [main([name, '--help']) for name in names]\n"
        "codes.append(main(['--help']))\n"
        f"print('heavy:', [m for m in {heavy!r} if m in sys.modules], 'codes:', set(codes))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "heavy: [] codes: {0}" in done.stdout, done.stdout[-800:]
