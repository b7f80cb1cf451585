"""Tissue masks as PNG files: saving, loading user masks of any size, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wsi_engine.errors import ConfigError, OutputError
from wsi_engine.tissue import TissueMask, load_tissue_mask_png, save_mask_png

LEVEL0 = (32000, 24000)


def disc_mask(h: int, w: int) -> np.ndarray:
    rows, cols = np.mgrid[0:h, 0:w]
    return (rows - h / 2) ** 2 + (cols - w / 3) ** 2 <= (h / 3) ** 2


def test_save_then_load_gives_the_same_mask(tmp_path):
    saved = TissueMask.spanning(disc_mask(75, 100), LEVEL0, 0.25, "detected")
    path = tmp_path / "slide.tissue.png"
    save_mask_png(saved, path)
    with Image.open(path) as image:
        assert image.mode == "L" and set(np.unique(np.asarray(image))) == {0, 255}
    loaded = load_tissue_mask_png(path, LEVEL0, 0.25)
    assert np.array_equal(loaded.mask, saved.mask)
    assert (
        loaded.downsample == (320.0, 320.0)
        and loaded.mpp == 80.0
        and loaded.source == "mask:slide.tissue.png"
    )


@pytest.mark.parametrize(
    "pixels",
    [lambda m: m.astype(np.uint8), lambda m: np.stack([m * 200] * 3, axis=-1).astype(np.uint8)],
    ids=["zero-one-grey", "rgb"],
)
def test_user_mask_of_any_size_and_kind(tmp_path, pixels):
    mask = disc_mask(301, 401)  # about 80 µm/px, not the segmentation size
    path = tmp_path / "user.png"
    Image.fromarray(pixels(mask)).save(path)
    loaded = load_tissue_mask_png(path, LEVEL0, 0.25)
    assert np.array_equal(loaded.mask, mask)
    assert loaded.downsample == pytest.approx((32000 / 401, 24000 / 301))


def test_mask_with_another_aspect_ratio_is_refused(tmp_path):
    path = tmp_path / "square.png"
    Image.fromarray(np.zeros((100, 100), dtype=np.uint8)).save(path)
    with pytest.raises(ConfigError, match="aspect ratio") as caught:
        load_tissue_mask_png(path, LEVEL0, 0.25)
    assert "square.png" in str(caught.value)


@pytest.mark.parametrize("content", [None, b"not an image"], ids=["missing", "garbage"])
def test_unreadable_mask_raises_config_error_naming_the_file(tmp_path, content):
    path = tmp_path / "mask.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_tissue_mask_png(path, LEVEL0, 0.25)
    assert "mask.png" in str(caught.value)


def test_unwritable_mask_path_raises_output_error(tmp_path):
    mask = TissueMask.spanning(disc_mask(3, 4), LEVEL0, 0.25, "detected")
    with pytest.raises(OutputError, match="cannot write"):
        save_mask_png(mask, tmp_path / "no-such-folder" / "mask.png")
