"""The command line's global behaviour: help, version, one-line errors and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wsi_engine import __version__
from wsi_engine.cli import main
from wsi_engine.errors import ConfigError, SlideError, WsiEngineError


def test_help_lists_subcommands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "synth" in out
    assert "--log-level" in out and "--debug" in out


def test_version_prints_package_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_unknown_option_is_usage_error(capsys):
    assert main(["synth", "--no-such-option"]) == 2
    assert "no-such-option" in capsys.readouterr().err


def test_unknown_log_level_is_one_line_config_error(capsys):
    assert main(["--log-level", "LOUD", "synth", "x"]) == ConfigError.exit_code
    err = capsys.readouterr().err.strip()
    assert "LOUD" in err and len(err.splitlines()) == 1


def test_error_message_names_path_and_hint():
    error = SlideError("no µm/px in metadata", path="/data/a.svs", hint="pass --mpp")
    assert str(error) == "/data/a.svs: no µm/px in metadata (pass --mpp)"
    assert issubclass(SlideError, WsiEngineError) and SlideError.exit_code == 4


def test_console_script_runs_in_a_subprocess():
    done = subprocess.run(
        [sys.executable, "-m", "wsi_engine", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"wsi-engine {__version__}"


@pytest.mark.parametrize("flag", ["--debug"])
def test_debug_shows_traceback(flag, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "wsi_engine", flag, "--log-level", "LOUD", "synth", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "Traceback" in done.stderr
