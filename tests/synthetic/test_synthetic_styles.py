"""The tissue styles shipped as YAML render exactly what the hard-coded styles rendered."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from wsi_engine.errors import ConfigError
from wsi_engine.synthetic.render import design_slide
from wsi_engine.synthetic.styles import NORMAL_STYLE, PATTERNS, STYLES_FILE, load_styles

STYLES_SHA256 = "a30bbfb3b39ea6dca02d03a93ab24cf908c7748a336942500d3a5ee2e9e17840"
"""sha256 of ``repr((NORMAL_STYLE, PATTERNS))`` when the styles were Python literals."""

TILES_SHA256 = {
    None: "760a26479866399c89c9b5e483658f39709587388cbec1f87bd321746b590711",
    "tumor": "05daa0809b7ea7fdab96a36d831a3ce6b278d14b172832734f2bcd8a182bc9ea",
    "necrosis": "a3a2a9ecac7c905caf95642513c18976e42adb12739970acf38415c096cca067",
    "gland": "b611895ea02abed02104607bfc0d4b296deb4e23bd16a47866382f73289e02f8",
}
"""sha256 of six rendered tiles per class, computed with the Python-literal styles."""


def test_yaml_styles_equal_the_former_literals():
    assert hashlib.sha256(repr((NORMAL_STYLE, PATTERNS)).encode()).hexdigest() == STYLES_SHA256
    assert list(PATTERNS) == ["tumor", "necrosis", "gland"]


@pytest.mark.parametrize("label", list(TILES_SHA256))
def test_rendered_tiles_are_pixel_identical(label):
    model = design_slide(
        width=2048,
        height=2048,
        mpp=0.5,
        tile_size=256,
        seed=3,
        pattern=None if label is None else PATTERNS[label],
        artefacts=(),
    )
    digest = hashlib.sha256()
    for x, y in [(768, 768), (1024, 1024), (512, 1280)]:
        for downsample in (1.0, 4.0):
            tile = model.render(int(x / downsample), int(y / downsample), 256, 256, downsample)
            digest.update(b"none" if tile is None else np.ascontiguousarray(tile).tobytes())
    assert digest.hexdigest() == TILES_SHA256[label]


def test_a_misspelt_style_key_is_a_config_error(tmp_path):
    bad = tmp_path / "styles.yaml"
    bad.write_text(
        STYLES_FILE.read_text(encoding="utf-8").replace("granularity: 0.5", "granularty: 0.5")
    )
    with pytest.raises(ConfigError, match="granularty"):
        load_styles(bad)
