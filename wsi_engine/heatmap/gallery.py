"""Top-k and bottom-k patches of one class as a captioned PNG grid.

Pixels come from the store's ``patches`` array when it has one, else from the
slide file (if it is still at the path recorded at tiling time), through the
one pixel reader of later stages (:class:`wsi_engine.tiling.PatchSource`);
without either the tiles are drawn blank and the figure says why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

from wsi_engine.errors import SlideError, StoreError
from wsi_engine.heatmap.files import atomic_output
from wsi_engine.heatmap.scales import ColourScale
from wsi_engine.store.patch_store import PatchStore

DPI = 110
CAPTION_KEY = (
    "under each patch: its score, then x, y of its top-left corner in level-0 slide pixels"
)
_TILE_IN = 1.9  # side of one patch tile, inches
_ROW_TITLE_IN = 0.4
_CAPTION_IN = 0.65
_MARGIN_IN = 0.3
_FONT_PT = 13


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
    store: PatchStore, indices: np.ndarray, slide_path: Path | None = None
) -> tuple[dict[int, np.ndarray], str | None]:
    """({patch index: (S, S, 3) uint8}, note) for ``indices``; the note says why pixels are missing.

    Pixels come from :class:`~wsi_engine.tiling.PatchSource`: the store's own, or for a
    coordinates-only store the patches cut from the slide as tiling would have stored them.
    ``slide_path``: the slide to read when the store has no pixels (default: the recorded one).
    """
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        return {}, None
    if not store.has_pixels:
        recorded = store.sections.slide.path
        slide_path = slide_path or (Path(recorded) if recorded else None)
        if slide_path is None or not slide_path.is_file():
            return (
                {},
                f"no pixels: the store keeps coordinates only and the slide is not at {slide_path}",
            )
    from wsi_engine.tiling import PatchSource  # Dask and slide readers only when needed

    source = PatchSource(store, slide_path=slide_path)
    try:
        return {i: source.read(i, i + 1)[0] for i in wanted}, None
    except (SlideError, StoreError) as error:
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
    header = 1.2 + (0.4 if note else 0.0)  # inches above the first row
    row_h = _ROW_TITLE_IN + _TILE_IN + _CAPTION_IN
    fig_w = max(2 * _MARGIN_IN + columns * _TILE_IN, 9.0)  # room for the title and caption key
    fig_h = header + len(rows) * row_h + 0.1
    with rc_context({"font.size": _FONT_PT}):
        fig = Figure(figsize=(fig_w, fig_h), dpi=DPI)

        def text(x_in: float, y_in: float, content: str, **kwargs) -> None:
            """Text at ``x_in`` inches from the left, ``y_in`` inches from the top."""
            fig.text(x_in / fig_w, 1 - y_in / fig_h, content, va="center", **kwargs)

        text(fig_w / 2, 0.35, title, ha="center", fontsize=_FONT_PT + 4, weight="bold")
        text(fig_w / 2, 0.8, CAPTION_KEY, ha="center", color="#444444")
        if note:
            text(fig_w / 2, 1.2, note, ha="center", color="firebrick")
        for r, (row_title, indices) in enumerate(rows):
            row_top = header + r * row_h
            text(
                _MARGIN_IN,
                row_top + _ROW_TITLE_IN / 2,
                row_title,
                ha="left",
                fontsize=_FONT_PT + 1,
                weight="bold",
            )
            for c, index in enumerate(indices):
                left, top = _MARGIN_IN + c * _TILE_IN + 0.05, row_top + _ROW_TITLE_IN
                ax = fig.add_axes(
                    (
                        left / fig_w,
                        1 - (top + _TILE_IN - 0.1) / fig_h,
                        (_TILE_IN - 0.1) / fig_w,
                        (_TILE_IN - 0.1) / fig_h,
                    )
                )
                patch = pixels.get(int(index))
                ax.imshow(patch if patch is not None else np.full((8, 8, 3), 235, np.uint8))
                ax.set_xticks([])
                ax.set_yticks([])
                x, y = coords[index]
                ax.set_xlabel(
                    f"{scale.format(values[index])}\nx={x}, y={y}", labelpad=3, linespacing=1.15
                )
        with atomic_output(out_path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
