"""Colour scales: fixed scales compare between slides, percentiles do not pretend to."""

from __future__ import annotations

import numpy as np

from wsi_engine.heatmap import make_scale


def test_fixed_probability_scale_gives_same_colour_on_every_slide() -> None:
    scale = make_scale("fixed", "probs", "tumor")
    slide_a = scale.colours(scale.values(np.array([0.1, 0.7, 0.9])))
    slide_b = scale.colours(scale.values(np.array([0.7, 0.2])))
    np.testing.assert_array_equal(slide_a[1], slide_b[0])
    assert not np.array_equal(slide_a[0], slide_a[1])
    assert "same scale on every slide" in scale.label and "P(tumor)" in scale.label


def test_fixed_attention_is_relative_to_uniform_whatever_the_bag_size() -> None:
    scale = make_scale("fixed", "attention", "tumor")
    small, large = np.full(10, 0.1), np.full(1000, 0.001)  # uniform bags of different sizes
    np.testing.assert_allclose(scale.values(small), 0.0)
    np.testing.assert_array_equal(
        scale.colours(scale.values(small))[0], scale.colours(scale.values(large))[0]
    )
    doubled = scale.values(np.array([0.4, 0.2, 0.2, 0.2]))  # first patch: 1.6× uniform
    assert np.isclose(doubled[0], np.log2(1.6)) and scale.format(doubled[0]) == "1.6× avg"
    assert scale.tick_labels[0] == "1/16×" and scale.tick_labels[-1] == "16×" and scale.clips
    assert np.isfinite(scale.values(np.array([0.0, 1.0]))).all()


def test_percentile_mode_ranks_within_the_slide() -> None:
    scale = make_scale("percentile", "attention", "tumor")
    np.testing.assert_allclose(scale.values(np.array([0.5, 0.1, 0.3, 0.1])), [100, 50, 75, 50])
    # two slides with very different values get the same colours for the same ranks
    a, b = scale.values(np.array([0.01, 0.02])), scale.values(np.array([0.5, 0.9]))
    np.testing.assert_array_equal(scale.colours(a), scale.colours(b))
    assert "NOT comparable" in scale.label


def test_nan_is_transparent() -> None:
    rgba = make_scale("fixed", "probs", "x").colours(np.array([np.nan, 0.5]))
    assert rgba[0].tolist() == [0, 0, 0, 0] and rgba[1, 3] == 255
