"""A synthetic low-resolution slide image drawn in µm: tissue with holes, a speck, pen strokes, black borders."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

FIELD_UM = (8000.0, 6000.0)  # width, height of the drawn slide in µm
DRAW_MPP = 4.0  # µm/px the scene is drawn at; coarser versions are block means of it
PINK, PURPLE, PALE_PINK = (228, 150, 200), (140, 80, 170), (235, 190, 220)
BLUE_PEN, GREEN_PEN, BLACK_INK, BORDER = (30, 60, 170), (40, 150, 80), (55, 55, 65), (12, 12, 12)

BIG_HOLE = (2300.0, 2800.0, 350.0)  # x, y, radius in µm: 385 000 µm², kept
SMALL_HOLE = (3400.0, 3500.0, 45.0)  # 6 400 µm², filled
SPECK = (7300.0, 700.0, 60.0)  # 11 300 µm² of tissue colour, dropped
LANDMARKS = {"big_hole": BIG_HOLE[:2], "small_hole": SMALL_HOLE[:2], "speck": SPECK[:2]}


@dataclass
class Scene:
    """RGB image at ``mpp`` µm/px, the drawn tissue (holes under the minimum counted as tissue) and the artefacts."""

    rgb: np.ndarray
    truth: np.ndarray
    artefacts: np.ndarray
    mpp: float
    _views: dict[float, Scene] = field(default_factory=dict, repr=False, compare=False)

    def at(self, mpp: float) -> Scene:
        """The scene at a coarser ``mpp`` (an integer multiple), by block means; cached."""
        if mpp == self.mpp:
            return self
        if mpp not in self._views:
            self._views[mpp] = self._pooled(mpp)
        return self._views[mpp]

    def _pooled(self, mpp: float) -> Scene:
        k = round(mpp / self.mpp)
        h, w = self.truth.shape[0] // k, self.truth.shape[1] // k

        def pool(a: np.ndarray) -> np.ndarray:
            return a[: h * k, : w * k].reshape(h, k, w, k, *a.shape[2:]).mean(axis=(1, 3))

        return Scene(
            np.rint(pool(self.rgb.astype(np.float32))).astype(np.uint8),
            pool(self.truth.astype(np.float32)) > 0.5,
            pool(self.artefacts.astype(np.float32)) > 0,
            mpp,
        )

    def px(self, landmark: str) -> tuple[int, int]:
        """(row, col) of the centre of a landmark: ``big_hole``, ``small_hole`` or ``speck``."""
        x_um, y_um = LANDMARKS[landmark]
        return int(y_um / self.mpp), int(x_um / self.mpp)


def _disc(x, y, cx, cy, r):
    return (x - cx) ** 2 + (y - cy) ** 2 <= r**2


def _ellipse(x, y, cx, cy, rx, ry):
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1


def _stroke(x, y, start, end, width):
    """Pixels within width/2 µm of the segment start–end."""
    (x0, y0), (x1, y1) = start, end
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0, 1)
    return (x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2 <= (width / 2) ** 2


def draw_scene(seed: int = 0) -> Scene:
    """The synthetic slide at 4 µm/px (2000 × 1500 px)."""
    rng = np.random.default_rng(seed)
    w, h = round(FIELD_UM[0] / DRAW_MPP), round(FIELD_UM[1] / DRAW_MPP)
    y, x = (np.mgrid[0:h, 0:w].astype(np.float32) + 0.5) * DRAW_MPP

    def noise(n: int, sigma: float) -> np.ndarray:
        return sigma * rng.standard_normal((n, 3), dtype=np.float32)

    rgb = 238 + noise(h * w, 3).reshape(h, w, 3)
    tissue_a = _ellipse(x, y, 2600, 3000, 1700, 1300) & ~_disc(x, y, *BIG_HOLE)
    drawn_a = tissue_a & ~_disc(x, y, *SMALL_HOLE)
    for cx, cy in rng.uniform(
        (1500, 2200), (3700, 3800), (30, 2)
    ):  # fat vacuoles, 1 300-5 000 µm²: filled
        window = np.s_[
            int(cy / DRAW_MPP) - 12 : int(cy / DRAW_MPP) + 12,
            int(cx / DRAW_MPP) - 12 : int(cx / DRAW_MPP) + 12,
        ]
        drawn_a[window] &= ~_disc(x[window], y[window], cx, cy, rng.uniform(20, 40))
    nuclei = rng.uniform(0, 0.7, (int(drawn_a.sum()), 1)).astype(np.float32)
    rgb[drawn_a] = (
        np.float32(PINK) * (1 - nuclei) + np.float32(PURPLE) * nuclei + noise(len(nuclei), 6)
    )
    tissue_b = _ellipse(x, y, 6300, 4200, 1000, 800)
    rgb[tissue_b] = np.float32(PALE_PINK) + noise(int(tissue_b.sum()), 5)
    rgb[_disc(x, y, *SPECK)] = PURPLE

    artefacts = np.zeros((h, w), dtype=bool)
    for colour, mask in (
        (BLUE_PEN, _stroke(x, y, (4700, 300), (7800, 2600), 150)),
        (GREEN_PEN, _stroke(x, y, (800, 5500), (4500, 5000), 150)),
        (BLACK_INK, _stroke(x, y, (4500, 1300), (5400, 2300), 120)),
        (BORDER, (x < 250) | (y > 5800)),
    ):
        rgb[mask] = np.float32(colour) + noise(
            int(mask.sum()), 4
        )  # noisy: dark pixels get random saturation
        artefacts |= mask
    truth = tissue_a | tissue_b
    assert not (truth & artefacts).any(), "scene layout: artefacts must lie on background"
    return Scene(np.clip(rgb, 0, 255).astype(np.uint8), truth, artefacts, DRAW_MPP)


@pytest.fixture(scope="session")
def scene() -> Scene:
    """The synthetic slide at 4 µm/px; ``scene.at(8.0)`` gives it at 8 µm/px."""
    return draw_scene()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks."""
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="session")
def mask_iou():
    """The IoU function (fixtures are how test modules share helpers under importlib imports)."""
    return iou
