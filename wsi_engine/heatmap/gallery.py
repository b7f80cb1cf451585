"""Top-k and bottom-k patches of one class as a captioned PNG grid.

Pixels come from the store's ``patches`` array when it has one, else from the
slide file (if it is still at the path recorded at tiling time); without
either the tiles are drawn blank and the figure says why.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

from wsi_engine.errors import SlideError
from wsi_engine.heatmap.files import atomic_output
from wsi_engine.heatmap.scales import ColourScale
from wsi_engine.store.patch_store import PatchStore

DPI = 110
CAPTION_KEY = "under each patch: its score, then x, y of its top-left corner in level-0 slide pixels"
_TILE_IN = 1.9
_FONT_PT = 11


def extremes(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the k highest values, highest first; of the k lowest, lowest first), NaN ignored.

    When fewer than 2k patches have values, the bottom row only holds patches not already in the top row.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(-values[finite], kind="stable")]
    top = order[:k]
    bottom = order[len(top) :][::-1][:k]
    return top, bottom


def load_patches(
    store: PatchStore, indices: np.ndarray
) -> tuple[dict[int, np.ndarray], str | None]:
    """({patch index: (S, S, 3) uint8}, note) for ``indices``; the note says why pixels are missing."""
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        return {}, None
    if store.has_pixels:
        return {i: store.read_patches(i, i + 1)[0] for i in wanted}, None
    if not store.slide_path.is_file():
        return (
            {},
            f"no pixels: the store keeps coordinates only and the slide is not at {store.slide_path}",
        )
    from wsi_engine.slide import open_slide

    coords = store.coords()
    size0, size = store.patch_size_level0, store.patch_size
    try:
        with open_slide(store.slide_path, require_mpp=False) as slide:
            level = slide.best_level_for_downsample(size0 / size)
            side = max(1, math.ceil(size0 / slide.level_downsamples[level]))
            return {
                i: slide.read_region(tuple(coords[i]), level, (side, side)) for i in wanted
            }, None
    except SlideError as error:
        return {}, f"no pixels: {error}"


def render_gallery(
    out_path: Path,
    rows: list[tuple[str, np.ndarray]],
    pixels: dict[int, np.ndarray],
    values: np.ndarray,
    coords: np.ndarray,
    scale: ColourScale,
    *,
    title: str,
    note: str | None,
) -> None:
    """Write a grid with one row per (row title, patch indices); each tile captioned with value and level-0 x, y."""
    columns = max([len(indices) for _, indices in rows] + [1])
    fig_w = max(1.2 + columns * _TILE_IN, 9.0)  # room for the title and caption key
    fig_h = 1.3 + len(rows) * (_TILE_IN + 0.55) + (0.4 if note else 0)
    with rc_context({"font.size": _FONT_PT}):
        fig = Figure(figsize=(fig_w, fig_h), dpi=DPI)
        fig.text(
            0.5,
            1 - 0.35 / fig_h,
            title,
            ha="center",
            va="center",
            fontsize=_FONT_PT + 4,
            weight="bold",
        )
        fig.text(0.5, 1 - 0.75 / fig_h, CAPTION_KEY, ha="center", va="center", color="#444444")
        if note:
            fig.text(0.5, 1 - 1.15 / fig_h, note, ha="center", va="center", color="firebrick")
        top = 1.3 + (0.4 if note else 0)
        for r, (row_title, indices) in enumerate(rows):
            row_top = top + r * (_TILE_IN + 0.55)
            fig.text(0.15 / fig_w, 1 - (row_top + _TILE_IN / 2) / fig_h, row_title, rotation=90,
                     ha="left", va="center", fontsize=_FONT_PT + 1, weight="bold")  # fmt: skip
            for c, index in enumerate(indices):
                box = (
                    (1.0 + c * _TILE_IN + 0.05) / fig_w,
                    1 - (row_top + _TILE_IN - 0.1) / fig_h,
                    (_TILE_IN - 0.1) / fig_w,
                    (_TILE_IN - 0.1) / fig_h,
                )
                ax = fig.add_axes(box)
                patch = pixels.get(int(index))
                ax.imshow(patch if patch is not None else np.full((8, 8, 3), 235, np.uint8))
                ax.set_xticks([])
                ax.set_yticks([])
                x, y = coords[index]
                ax.set_xlabel(
                    f"{scale.format(values[index])}\nx={x}, y={y}", labelpad=2, linespacing=1.1
                )
        with atomic_output(out_path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
