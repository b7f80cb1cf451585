"""The tissue styles shipped as YAML are exactly the former hard-coded styles (so renders are too).

The check is on the style values, not on rendered pixels: a pixel hash would depend on the
platform's floating-point maths, the styles' ``repr`` does not.
"""

from __future__ import annotations

import hashlib

import pytest

from wsi_engine.errors import ConfigError
from wsi_engine.synthetic.styles import NORMAL_STYLE, PATTERNS, STYLES_FILE, load_styles

STYLES_SHA256 = "a30bbfb3b39ea6dca02d03a93ab24cf908c7748a336942500d3a5ee2e9e17840"
"""sha256 of ``repr((NORMAL_STYLE, PATTERNS))`` when the styles were Python literals."""


def test_yaml_styles_equal_the_former_literals():
    assert hashlib.sha256(repr((NORMAL_STYLE, PATTERNS)).encode()).hexdigest() == STYLES_SHA256
    assert list(PATTERNS) == ["tumor", "necrosis", "gland"]


def test_a_misspelt_style_key_is_a_config_error(tmp_path):
    bad = tmp_path / "styles.yaml"
    bad.write_text(
        STYLES_FILE.read_text(encoding="utf-8").replace("granularity: 0.5", "granularty: 0.5")
    )
    with pytest.raises(ConfigError, match="granularty"):
        load_styles(bad)
