"""A synthetic slide as a pure function of level-0 coordinates, and its tile renderer.

:func:`design_slide` draws everything random about a slide (tissue blobs,
lesions, artefacts, stain colours) from its seed into a :class:`SlideModel`;
:meth:`SlideModel.render` then computes any rectangle of any pyramid level on
its own, in memory proportional to the rectangle only. Colour follows
Beer-Lambert: ``rgb = background * exp(-alpha * (H·v_H + E·v_E + R·v_R))`` with
stain optical-density vectors ``v`` that vary a little from slide to slide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np
from scipy import ndimage

from wsi_engine.synthetic.artefacts import Artefacts, design_artefacts
from wsi_engine.synthetic.lesions import LesionShape, place_lesions
from wsi_engine.synthetic.noise import noise_tile, pixel_centres
from wsi_engine.synthetic.styles import NORMAL_STYLE, LesionPattern
from wsi_engine.synthetic.texture import make_canvas, render_stains
from wsi_engine.synthetic.tissue import TissueLayout, design_tissue

_STAINS = np.array(
    [
        [0.59, 0.75, 0.29],  # haematoxylin: purple-blue
        [0.11, 0.90, 0.43],  # eosin: pink
        [0.02, 0.55, 0.85],  # red: blood, necrotic debris
    ],
    dtype=np.float32,
)
"""Optical density per unit concentration in (R, G, B), one row per stain."""

_GLASS = 240.0
"""Mean background (glass) intensity, 0-255."""

_MIN_LESION_DIAMETER_UM = 600.0


@dataclass(frozen=True, eq=False)
class SlideModel:
    """Everything that determines a synthetic slide's pixels.

    Sizes in level-0 pixels, ``mpp`` in µm per level-0 pixel.
    """

    width: int
    height: int
    mpp: float
    tile_size: int
    seed: int
    layout: TissueLayout
    pattern: LesionPattern | None
    lesions: tuple[LesionShape, ...]
    artefacts: Artefacts
    stains: np.ndarray
    """(3, 3) optical densities: rows haematoxylin, eosin, red; columns R, G, B."""

    @cached_property
    def _grain(self) -> np.ndarray:
        """White noise tile in [-1, 1): glass noise, tissue grain and chromatin."""
        return noise_tile(self.tile_size, self.seed)

    @cached_property
    def _fine(self) -> np.ndarray:
        """Periodic smooth noise tile (features ~2 level-0 px), about [-1, 1]."""
        smooth = ndimage.gaussian_filter(
            noise_tile(self.tile_size, self.seed + 1), 1.2, mode="wrap"
        )
        return (0.5 / smooth.std()) * smooth

    @cached_property
    def background(self) -> np.ndarray:
        """The plain glass tile, uint8 ``(tile, tile, 3)``, faintly noisy around 240."""
        glass = _GLASS + 1.5 * self._grain[..., None] + np.array([0.0, -0.5, 1.0], dtype=np.float32)
        return np.clip(glass + 0.5, 0, 255).astype(np.uint8)

    def _periodic(self, tile: np.ndarray, x0: int, y0: int, cols: int, rows: int) -> np.ndarray:
        """``tile`` repeated over a level's pixel grid, cut to the rectangle at (x0, y0)."""
        shifted = np.roll(tile, (-(y0 % self.tile_size), -(x0 % self.tile_size)), axis=(0, 1))
        reps = (-(-rows // self.tile_size), -(-cols // self.tile_size)) + (1,) * (tile.ndim - 2)
        return np.tile(shifted, reps)[:rows, :cols]

    def render(
        self, x0: int, y0: int, cols: int, rows: int, downsample: float
    ) -> np.ndarray | None:
        """RGB uint8 ``(rows, cols, 3)`` of a level with this downsample, from pixel (x0, y0).

        ``x0, y0, cols, rows`` are in that level's pixels. Returns None when the
        rectangle is plain glass (no tissue, no artefact), so callers can reuse
        :attr:`background`.
        """
        xs = pixel_centres(x0, cols, downsample)
        ys = pixel_centres(y0, rows, downsample)
        rgb = self._periodic(self.background, x0, y0, cols, rows).astype(np.float32)
        box = (x0 * downsample, y0 * downsample, (x0 + cols) * downsample, (y0 + rows) * downsample)
        footprint_at = partial(self.artefacts.footprint, base=downsample)
        painted = False
        if self.layout.may_contain_tissue(box, footprint_at(xs, ys)):
            painted = self._stain(rgb, x0, y0, xs, ys, box, footprint_at)
        painted |= self.artefacts.paint(rgb, xs, ys, downsample, (self.width, self.height))
        if not painted:
            return None
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)

    def _stain(
        self,
        rgb: np.ndarray,
        x0: int,
        y0: int,
        xs: np.ndarray,
        ys: np.ndarray,
        box: tuple[float, float, float, float],
        footprint_at: Callable[[np.ndarray, np.ndarray], float | np.ndarray],
    ) -> bool:
        """Attenuate ``rgb`` in place by the tissue's stains; False if no tissue is visible.

        Work is skipped where bounds allow: the tissue field inside whole
        tissue, normal tissue under a lesion, lesions away from the tile.
        """
        grain = self._periodic(self._grain, x0, y0, xs.size, ys.size)
        fine = self._periodic(self._fine, x0, y0, xs.size, ys.size)
        canvas = make_canvas(xs, ys, footprint_at, self.mpp, grain, fine, self.seed)
        footprint = canvas.footprint
        if self.layout.is_all_tissue(box, footprint):
            alpha = np.ones((ys.size, xs.size), dtype=np.float32)
        else:
            alpha = self.layout.alpha(self.layout.field(xs, ys, footprint), footprint)
        lesion = self._lesion_weight(xs, ys, box, footprint)
        if lesion is not None:
            alpha = np.maximum(alpha, lesion)
        if not alpha.any():
            return False
        if lesion is None:
            stains = render_stains(NORMAL_STYLE, canvas, self.seed)
        else:
            stains = render_stains(self.pattern.style, canvas, self.seed + 1000)
            if lesion.min() < 1:
                stains = render_stains(NORMAL_STYLE, canvas, self.seed).blend(stains, lesion)
        density = np.stack(stains.fields(), axis=-1) @ self.stains
        rgb *= np.exp(-alpha[..., None] * density)
        return True

    def _lesion_weight(
        self,
        xs: np.ndarray,
        ys: np.ndarray,
        box: tuple[float, float, float, float],
        footprint: float | np.ndarray,
    ) -> np.ndarray | None:
        """Union of soft lesion memberships at pixel centres; None if no lesion reaches the box."""
        edge = np.maximum(footprint, 4.0 / self.mpp)
        weight = None
        for shape in self.lesions:
            left, top, right, bottom = shape.bbox
            if right < box[0] or left > box[2] or bottom < box[1] or top > box[3]:
                continue
            w = shape.weight(xs, ys, edge)
            weight = w if weight is None else np.maximum(weight, w)
        return weight if weight is not None and weight.any() else None

    def render_image(self, downsample: float, cols: int, rows: int) -> np.ndarray:
        """The whole slide at ``downsample`` as one ``(rows, cols, 3)`` image, rendered tile by tile."""
        image = np.empty((rows, cols, 3), dtype=np.uint8)
        step = self.tile_size
        for y in range(0, rows, step):
            for x in range(0, cols, step):
                h, w = min(step, rows - y), min(step, cols - x)
                tile = self.render(x, y, w, h, downsample)
                image[y : y + h, x : x + w] = self.background[:h, :w] if tile is None else tile
        return image


def design_slide(
    *,
    width: int,
    height: int,
    mpp: float,
    tile_size: int,
    seed: int,
    pattern: LesionPattern | None,
    artefacts: tuple[str, ...],
) -> SlideModel:
    """Draw a slide's tissue, lesions, artefacts and stain colours from ``seed``.

    Tissue covers 35-55 % of the slide; a lesion pattern, when given, is planted
    as 1-3 lesions covering 12-28 % of the tissue, at least 600 µm wide when the
    tissue has room. Each part uses its own random stream, so e.g. adding
    artefacts does not move the tissue.
    """
    tissue_rng, lesion_rng, artefact_rng, stain_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    layout: TissueLayout = design_tissue(
        width, height, float(tissue_rng.uniform(0.35, 0.55)), tissue_rng
    )
    lesions: tuple[LesionShape, ...] = ()
    if pattern is not None:
        lesions = place_lesions(
            layout,
            float(lesion_rng.uniform(0.12, 0.28)),
            0.5 * _MIN_LESION_DIAMETER_UM / mpp,
            lesion_rng,
        )
    jitter = stain_rng.uniform(0.9, 1.1, size=(3, 1)) * stain_rng.uniform(0.93, 1.07, size=(3, 3))
    return SlideModel(
        width=width,
        height=height,
        mpp=mpp,
        tile_size=tile_size,
        seed=int(stain_rng.integers(2**31)),
        layout=layout,
        pattern=pattern,
        lesions=lesions,
        artefacts=design_artefacts(artefacts, layout, mpp, artefact_rng),
        stains=(_STAINS * jitter).astype(np.float32),
    )
