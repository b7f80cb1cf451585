"""One configuration path: every command with settings takes --config FILE and --set KEY=VALUE.

Precedence (lowest first): defaults < --config < --set < options given on the command line; an
unknown key fails with exit 3, naming the key (and the closest one); rules across options are
model validators (one line, exit 3).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from wsi_engine.cli import main
from wsi_engine.commands.options import CONFIG_FILE, SET, command_settings
from wsi_engine.tiling.config import TilingConfig


def _argv(tmp_path: Path, make: bool = True) -> dict[str, list[str]]:
    """Each command with the inputs it needs to reach its settings (nothing is computed)."""
    stores = tmp_path / "stores"
    labels = tmp_path / "labels.csv"
    if make:
        stores.mkdir(exist_ok=True)
        labels.write_text("slide_id,label\na,normal\n", encoding="utf-8")
    out = str(tmp_path / "out")
    lines = {
        "tile": f"tile {tmp_path}/slides --out {out}",
        "run": f"run {tmp_path}/slides --out {out}",
        "embed": f"embed {stores} --encoder tiny-clip",
        "predict": f"predict {stores} --run {tmp_path} --out {out}",
        "fit": f"fit {stores} --labels {labels} --task synthetic-demo --encoder tiny-clip --out {out}",
        "fit-patches": f"fit-patches --from-run {tmp_path} --stores {stores} --out {out}",
        "predict-patches": f"predict-patches --run {tmp_path} {stores}",
        "heatmap": f"heatmap {stores} --scores r --out {out}",
        "import-features": f"import-features {stores} --out {out} --encoder e",
        "export-features": f"export-features {stores} --encoder e --out {out}",
        "reports import": f"reports import {labels} --task synthetic-demo --encoder tiny-clip --out {out}",
        "reports pair": f"reports pair --corpus {tmp_path} --stores {stores}",
        "reports quality": f"reports quality --corpus {tmp_path} --stores {out}",
        "reports ablation": f"reports ablation --images {tmp_path} --privileged-text {tmp_path} --encoder tiny-clip",
        "view": f"view {tmp_path}",
        "synth": f"synth {out}",
        "demo": f"demo --out {out}",
    }
    return {name: line.split() for name, line in lines.items()}


COMMANDS = sorted(_argv(Path("/nonexistent"), make=False))


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_set_key_fails_with_exit_3_naming_it(command, tmp_path, capsys) -> None:
    argv = _argv(tmp_path)[command]
    assert main([*argv, "--set", "no_such_key=1"]) == 3
    err = capsys.readouterr().err.strip()
    assert "unknown key 'no_such_key'" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_config_key_fails_with_exit_3_naming_it_and_the_file(
    command, tmp_path, capsys
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("seeed: 3\n", encoding="utf-8")
    assert main([*_argv(tmp_path)[command], "--config", str(config)]) == 3
    err = capsys.readouterr().err.strip()
    assert "unknown key 'seeed'" in err and str(config) in err, err


@pytest.mark.parametrize(
    ("command", "pair", "closest"),
    [
        ("tile", "pach_size=128", "patch_size"),
        ("fit", "train.lrr=0.1", "lr"),
        ("heatmap", "topk=3", "top_k"),
        ("run", "tiling.overlapp=2", "overlap"),
    ],
)
def test_an_unknown_key_names_the_closest(command, pair, closest, tmp_path, capsys) -> None:
    assert main([*_argv(tmp_path)[command], "--set", pair]) == 3
    assert f"did you mean '{closest}'?" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("fit", ["--model", "abmil", "--set", "fusion=none"], "apply to --model libra only"),
        ("fit", ["--privileged-weight", "2"], "--privileged-weight needs --privileged-text"),
        ("fit-patches", ["--set", "source.images=x"], "give exactly one of --from-run"),
        ("fit-patches", ["--lora-r", "4"], "the --lora options need --privileged-text"),
        ("reports pair", ["--images", "x"], "give exactly one of --stores and --images"),
        ("heatmap", ["--set", "formats=[]"], "no output format given"),
    ],
)
def test_rules_across_options_are_one_line_config_errors(
    command, extra, message, tmp_path, capsys
) -> None:
    assert main([*_argv(tmp_path)[command], *extra]) == 3
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_set_values_are_yaml_and_model_options_keep_their_short_form(tmp_path, capsys) -> None:
    argv = _argv(tmp_path)["fit"]
    assert main([*argv, "--set", "shots=[one]"]) == 3  # a YAML list, checked by the model
    assert "shots" in capsys.readouterr().err
    # a key fit does not have is a model option (issue 15's `--set marginal_tau=0.1` style)
    assert main([*argv, "--set", "marginal_taux=0.1"]) == 3
    assert "unknown key 'marginal_taux'" in capsys.readouterr().err


def _probe_app(seen: list[TilingConfig]) -> typer.Typer:
    """A command resolving TilingConfig the way every command does (real click parameter sources)."""
    app = typer.Typer()

    @app.command()
    def probe(
        ctx: typer.Context,
        patch_size: int = typer.Option(256, "--patch-size"),
        overlap: int | None = typer.Option(None, "--overlap"),
        config: Path | None = CONFIG_FILE,
        set_options: list[str] = SET,
    ) -> None:
        flags = {"patch_size": "patch_size", "overlap": "overlap"}
        seen.append(command_settings(ctx, TilingConfig, flags, file=config, sets=set_options))

    return app


@pytest.mark.parametrize(
    ("config", "sets", "flags", "expected"),
    [
        ({}, [], [], (256, 0, 0.5)),  # defaults (the option's own default counts)
        ({"patch_size": 128, "target_mpp": 1.0}, [], [], (128, 0, 1.0)),  # file beats defaults
        ({"patch_size": 128}, ["patch_size=64"], [], (64, 0, 0.5)),  # --set beats the file
        ({"patch_size": 128}, ["patch_size=64"], ["--patch-size", "32"], (32, 0, 0.5)),
        ({"overlap": 8}, [], ["--patch-size", "256"], (256, 8, 0.5)),  # flag = default, given
    ],
)
def test_precedence_defaults_file_set_flags(tmp_path, config, sets, flags, expected) -> None:
    import yaml

    path = tmp_path / "tiling.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    seen: list[TilingConfig] = []
    argv = ["--config", str(path), *(a for s in sets for a in ("--set", s)), *flags]
    result = CliRunner().invoke(_probe_app(seen), argv)
    assert result.exit_code == 0, result.output
    got = seen[0]
    assert (got.patch_size, got.overlap, got.target_mpp) == expected
