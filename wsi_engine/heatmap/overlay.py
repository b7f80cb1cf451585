"""The overlay PNG: slide thumbnail, scores blended inside the tissue, colour bar, title, scale bar.

Both images are drawn in level-0 pixel coordinates (``extent``), so the score
canvas lands exactly on the thumbnail whatever their two downsamples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from wsi_engine.heatmap.files import atomic_output
from wsi_engine.heatmap.scales import ColourScale

OVERLAY_ALPHA = 0.6
"""Opacity of the score colours over the thumbnail."""

DPI = 110
_MAX_IMAGE_IN = 7.5  # longest side of the slide image in inches (≈ 825 px at DPI)
_FONT_PT = 14
_SCALE_BAR_MM = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20)


def render_overlay(
    out_path: Path,
    thumbnail: np.ndarray,
    thumbnail_downsample: float,
    canvas: np.ndarray,
    canvas_downsample: float,
    scale: ColourScale,
    *,
    title: str,
    subtitle: str,
    mpp: float | None,
) -> None:
    """Write the overlay PNG of one slide and class to ``out_path``.

    ``thumbnail`` (h, w, 3) uint8 at ``thumbnail_downsample`` level-0 px per px;
    ``canvas`` (H, W) displayed values at ``canvas_downsample`` (NaN = no colour);
    ``mpp`` µm per level-0 px for the scale bar (omitted when ``None``).
    """
    rgba = scale.colours(canvas)
    rgba[..., 3] = np.where(np.isnan(canvas), 0, round(255 * OVERLAY_ALPHA))
    thumb_extent = _extent(thumbnail.shape, thumbnail_downsample)
    width0, height0 = thumb_extent[1], thumb_extent[2]

    ratio = _MAX_IMAGE_IN / max(width0, height0)
    image_w, image_h = max(width0 * ratio, 2.0), max(height0 * ratio, 2.0)
    fig_w = max(image_w, 8.0) + 0.6
    top, colourbar, bottom = 1.0, 1.35, 0.25
    fig_h = top + image_h + colourbar + bottom
    with rc_context({"font.size": _FONT_PT}):
        fig = Figure(figsize=(fig_w, fig_h), dpi=DPI)
        ax = fig.add_axes(
            (
                (fig_w - image_w) / 2 / fig_w,
                (bottom + colourbar) / fig_h,
                image_w / fig_w,
                image_h / fig_h,
            )
        )
        ax.imshow(thumbnail, extent=thumb_extent, interpolation="antialiased")
        ax.imshow(rgba, extent=_extent(canvas.shape, canvas_downsample), interpolation="nearest")
        ax.set_xlim(0, width0)
        ax.set_ylim(height0, 0)
        ax.set_axis_off()
        if mpp:
            ax.add_artist(_scale_bar(ax, width0, mpp))
        fig.text(
            0.5,
            1 - 0.32 / fig_h,
            title,
            ha="center",
            va="center",
            fontsize=_FONT_PT + 3,
            weight="bold",
        )
        fig.text(0.5, 1 - 0.72 / fig_h, subtitle, ha="center", va="center", wrap=True)
        cax = fig.add_axes((0.12, (bottom + 0.75) / fig_h, 0.76, 0.22 / fig_h))
        bar = fig.colorbar(
            ScalarMappable(norm=scale.norm, cmap=scale.colormap),
            cax=cax,
            orientation="horizontal",
            extend="both" if scale.clips else "neither",
            ticks=list(scale.ticks),
        )
        bar.ax.set_xticklabels(list(scale.tick_labels))
        bar.set_label(scale.label, fontsize=_FONT_PT, wrap=True)
        with atomic_output(out_path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")


def _extent(shape: tuple[int, ...], downsample: float) -> tuple[float, float, float, float]:
    """imshow extent (left, right, bottom, top) of an image in level-0 px."""
    return (0.0, shape[1] * downsample, shape[0] * downsample, 0.0)


def _scale_bar(ax: Axes, width0: float, mpp: float) -> AnchoredSizeBar:
    """A bar of a round length near a fifth of the image width, labelled in mm or µm."""
    target_mm = width0 * mpp / 1000 / 5
    length_mm = max((mm for mm in _SCALE_BAR_MM if mm <= target_mm), default=_SCALE_BAR_MM[0])
    label = f"{length_mm:g} mm" if length_mm >= 1 else f"{length_mm * 1000:g} µm"
    return AnchoredSizeBar(
        ax.transData, length_mm * 1000 / mpp, label, "lower right",
        pad=0.4, color="black", frameon=True, size_vertical=width0 / 150,
        fontproperties=FontProperties(size=_FONT_PT),
    )  # fmt: skip
