"""Strict YAML configuration: presets, unknown keys, wrong types, overrides, provenance."""

from __future__ import annotations

import pytest
import yaml

from wsi_engine.config import list_presets, load_config, write_effective_config
from wsi_engine.config.overrides import layered_settings
from wsi_engine.errors import ConfigError
from wsi_engine.tiling.config import TilingConfig


def test_every_shipped_tiling_preset_validates():
    names = list_presets("tiling")
    assert "default" in names
    for name in names:
        config = load_config(TilingConfig, name, "tiling")
        assert config.patch_size > config.overlap


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("patch_size: 256\ntissue:\n  seg_mpp: 8\n  colour: red\n")
    with pytest.raises(ConfigError) as info:
        load_config(TilingConfig, path, "tiling")
    message = str(info.value)
    assert "tissue.colour" in message and str(path) in message
    assert len(message.splitlines()) == 1


def test_wrong_type_names_key_and_value(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("patch_size: big\n")
    with pytest.raises(ConfigError, match=r"key 'patch_size'.*'big'"):
        load_config(TilingConfig, path, "tiling")


def test_invalid_yaml_syntax_reports_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("patch_size: 256\ntissue: [unclosed\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+"):
        load_config(TilingConfig, path, "tiling")


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError, match="known presets: .*default"):
        load_config(TilingConfig, "no-such-preset", "tiling")


def test_cross_field_rule_is_enforced(tmp_path):
    path = tmp_path / "overlap.yaml"
    path.write_text("patch_size: 64\noverlap: 64\n")
    with pytest.raises(ConfigError, match="overlap"):
        load_config(TilingConfig, path, "tiling")


def test_overrides_win_and_none_keeps_file_value():
    base = load_config(TilingConfig, "default", "tiling")
    changed = layered_settings(
        TilingConfig,
        base=base.model_dump(),
        explicit={
            "patch_size": 224,
            "target_mpp": None,
            "tissue.method": "fixed",
            "tissue.threshold": 20,
        },
    )
    assert changed.patch_size == 224
    assert changed.target_mpp == base.target_mpp
    assert changed.tissue.method == "fixed"
    with pytest.raises(ConfigError, match="command line"):
        layered_settings(TilingConfig, base=base.model_dump(), explicit={"pixel_mode": "png"})


def test_effective_config_written_with_provenance(tmp_path):
    config = load_config(TilingConfig, "default", "tiling")
    path = write_effective_config(
        tmp_path, "tiling_config", {"tiling": config, "inputs": ["a.svs"]}
    )
    data = yaml.safe_load(path.read_text())
    assert data["tiling"]["patch_size"] == config.patch_size
    assert data["inputs"] == ["a.svs"]
    assert {"engine_version", "created", "command"} <= set(data)
