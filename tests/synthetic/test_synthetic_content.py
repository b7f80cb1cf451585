"""Procedural content: tiles render independently, classes differ, artefacts show, memory stays flat."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import tracemalloc

import numpy as np
import pytest
from scipy import ndimage

from wsi_engine.synthetic.artefacts import Artefacts
from wsi_engine.synthetic.lesions import PATTERNS
from wsi_engine.synthetic.render import design_slide
from wsi_engine.synthetic.truth import compute_masks


@functools.cache
def _model(pattern=None, artefacts=(), size=4096, seed=2):
    return design_slide(
        width=size,
        height=size,
        mpp=0.5,
        tile_size=256,
        seed=seed,
        pattern=None if pattern is None else PATTERNS[pattern],
        artefacts=artefacts,
    )


def _deep_tissue_point(model, avoid_lesions=True):
    """A level-0 point well inside the tissue (and outside lesions if asked)."""
    xs = np.arange(128, model.width, 256, dtype=np.float32)
    ys = np.arange(128, model.height, 256, dtype=np.float32)
    rows, cols = np.nonzero(model.layout.field(xs, ys) > model.layout.threshold + 0.3)
    for r, c in zip(rows, cols, strict=True):
        x, y = float(xs[c]), float(ys[r])
        if not avoid_lesions or all(
            np.hypot(x - s.cx, y - s.cy) > s.reach + 300 for s in model.lesions
        ):
            return x, y
    raise AssertionError("no deep tissue point")


def _patch(model, x, y, size=256, downsample=1.0):
    """Patch of ``size`` level pixels centred on level-0 point (x, y)."""
    tile = model.render(
        int(x / downsample) - size // 2, int(y / downsample) - size // 2, size, size, downsample
    )
    assert tile is not None
    return tile.astype(float)


@pytest.mark.parametrize("downsample", [1.0, 4.0])
def test_tiles_render_the_same_alone_or_as_part_of_a_region(downsample):
    model = _model("tumor", ("pen", "blur"))
    x, y = _deep_tissue_point(model, avoid_lesions=False)
    x0 = min(int(x / downsample) // 256 * 256, int(model.width / downsample) - 512)
    y0 = min(int(y / downsample) // 256 * 256, int(model.height / downsample) - 512)

    def tile(dx, dy):
        pixels = model.render(x0 + dx, y0 + dy, 256, 256, downsample)
        return model.background if pixels is None else pixels

    whole = model.render(x0, y0, 512, 512, downsample)
    parts = np.concatenate(
        [np.concatenate([tile(dx, dy) for dx in (0, 256)], axis=1) for dy in (0, 256)]
    )
    assert whole is not None and whole.std() > 5
    assert np.array_equal(whole, parts)


def test_glass_renders_as_the_plain_background_tile():
    model = _model()
    assert model.render(0, 0, 256, 256, 1.0) is None
    glass = model.background.astype(float)
    assert 236 <= glass.mean() <= 244
    assert 0.3 < glass.std() < 4


def test_lesion_classes_differ_clearly_in_patch_colour():
    means = {}
    for name in ("normal", "tumor", "necrosis", "gland"):
        model = _model(None if name == "normal" else name)
        if name == "normal":
            x, y = _deep_tissue_point(model)
        else:
            x, y = model.lesions[0].cx, model.lesions[0].cy
        means[name] = _patch(model, x, y).reshape(-1, 3).mean(axis=0)
    for a, b in itertools.combinations(means, 2):
        assert np.linalg.norm(means[a] - means[b]) > 25, (a, b, means[a], means[b])
    r, g, b = means["tumor"]
    assert b > g and r > g and (r + g + b) / 3 < 150  # dark violet
    r, g, b = means["necrosis"]
    assert r > g + 60 and r > b + 60  # red-orange


def test_tumour_is_densely_nucleated_compared_with_normal_tissue():
    model = _model("tumor")
    tumour = _patch(model, model.lesions[0].cx, model.lesions[0].cy).mean(axis=2)
    normal = _patch(model, *_deep_tissue_point(model)).mean(axis=2)
    assert (tumour < 110).mean() > 0.25
    assert (normal < 110).mean() < 0.08


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lesions_are_wide_enough_and_cover_a_tenth_to_a_third_of_the_tissue(seed):
    model = _model("tumor", size=8192, seed=seed)
    theta = np.linspace(0.0, 2.0 * np.pi, 512, endpoint=False)
    for shape in model.lesions:
        narrowest = (shape.radius_at(theta) + shape.radius_at(theta + np.pi)).min()
        assert narrowest * model.mpp >= 600  # µm
    tissue, lesion = compute_masks(model, 16)
    assert 0.3 <= tissue.mean() <= 0.6
    assert 0.1 <= lesion.sum() / tissue.sum() <= 0.3
    assert not (lesion & ~tissue).any()


def test_black_edges_are_dark_bars_along_their_side():
    model = _model(artefacts=("black_edge",))
    edge = model.artefacts.edges[0]
    assert edge.width < model.layout.margin  # bars stay off the tissue
    point = {
        "left": (edge.width * 0.3, model.height / 2),
        "right": (model.width - edge.width * 0.3, model.height / 2),
        "top": (model.width / 2, edge.width * 0.3),
        "bottom": (model.width / 2, model.height - edge.width * 0.3),
    }[edge.side]
    bar = model.render(int(point[0]) - 8, int(point[1]) - 8, 16, 16, 1.0)
    assert bar is not None and bar.mean() < 40


def test_pen_strokes_cross_glass_and_tissue_in_ink_colour():
    model = _model(artefacts=("pen",))
    stroke = model.artefacts.pens[0]
    start, middle = stroke.points[0], stroke.points[len(stroke.points) // 2]
    on_glass = _patch(model, *start, size=16).reshape(-1, 3).mean(axis=0)
    assert on_glass.mean() < 200  # inked glass is no longer white
    field = model.layout.field(np.float32([middle[0]]), np.float32([middle[1]]))
    assert field[0, 0] > model.layout.threshold  # the stroke passes over tissue
    clean = dataclasses.replace(model, artefacts=Artefacts())
    assert _patch(model, *middle, size=16).mean() < _patch(clean, *middle, size=16).mean() - 30


def test_blur_removes_fine_detail():
    model = _model("tumor", artefacts=("blur",))
    blur = model.artefacts.blur
    sharp = dataclasses.replace(model, artefacts=Artefacts())

    def detail(m):
        return ndimage.laplace(_patch(m, blur.cx, blur.cy).mean(axis=2)).var()

    assert detail(model) < 0.3 * detail(sharp)


def test_a_gigapixel_design_renders_tiles_in_small_memory():
    tracemalloc.start()
    try:
        model = _model("tumor", ("pen", "black_edge", "blur"), size=100_000, seed=5)
        x, y = model.lesions[0].cx, model.lesions[0].cy
        tile = model.render(int(x) - 128, int(y) - 128, 256, 256, 1.0)
        low = model.render(0, 0, 256, 256, 256.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tile is not None and low is not None
    assert peak < 96 * 2**20


@pytest.mark.parametrize("downsample", [1.0, 2.0])
def test_tissue_bounds_never_misjudge_a_tile(downsample):
    model = _model()
    layout = model.layout
    span = 256 * downsample
    decided = {"glass": 0, "tissue": 0}
    for y0 in np.arange(0, model.height, span):
        for x0 in np.arange(0, model.width, span):
            xs = np.arange(x0, x0 + span, downsample, dtype=np.float32) + downsample / 2
            ys = np.arange(y0, y0 + span, downsample, dtype=np.float32) + downsample / 2
            box = (x0, y0, x0 + span, y0 + span)
            alpha = layout.alpha(layout.field(xs, ys, downsample), downsample)
            if not layout.may_contain_tissue(box, downsample):
                assert alpha.max() == 0
                decided["glass"] += 1
            if layout.is_all_tissue(box, downsample):
                assert alpha.min() == 1
                decided["tissue"] += 1
    assert decided["glass"] > 0 and decided["tissue"] > 0
