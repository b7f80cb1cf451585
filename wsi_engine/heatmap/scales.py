"""Colour scales: which per-patch number is shown, how it maps to colours, what the colour bar says.

Two quantities come from ``scores/<run_id>`` (docs/store.md):

``probs``
    per-patch class probability (patch classifiers), already in [0, 1].
``attention``
    per-class attention of a bag model; each column sums to 1 over the bag, so
    raw values shrink as bags grow and are not comparable between slides.
    Shown as ``attention × N`` (N = patches in the bag), i.e. relative to a
    uniform bag, on a log2 scale: 0 means "an average patch", +1 twice the
    average, -1 half of it.

Two modes:

``fixed`` (default)
    the same limits on every slide of a cohort, so one colour means one value
    everywhere: probabilities 0..1 (``viridis``), attention ratios 1/16×..16×
    (``RdBu_r``, diverging around 1×; values beyond are clipped to the end
    colours, the colour bar shows arrows).
``percentile``
    the CLAM convention: each patch shows the percentage of the slide's patches
    whose value is <= its own (0..100, ``viridis``). It always spreads the full
    colour range over each slide, so colours are NOT comparable between slides;
    the colour bar says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Colormap, Normalize
from scipy.stats import rankdata

QUANTITIES = ("probs", "attention")
MODES = ("fixed", "percentile")

ATTENTION_LOG2_LIMIT = 4.0
"""Fixed attention scale: log2(attention × N) from -4 to +4, i.e. 1/16× to 16× the uniform weight."""

_LOG2_FLOOR = -30.0  # log2 of a zero attention weight, far below the colour range


@dataclass(frozen=True)
class ColourScale:
    """How one class's per-patch ``quantity`` is displayed (see the module docstring).

    ``values`` turns raw scores into displayed values, which ``norm`` maps from
    [vmin, vmax] onto the colormap ``cmap_name``. ``label`` is the colour-bar
    text: first line what the number is, second line whether colours compare
    between slides; ``ticks`` (displayed values) carry ``tick_labels``.
    """

    mode: str
    quantity: str
    class_name: str
    vmin: float
    vmax: float
    cmap_name: str
    label: str
    ticks: tuple[float, ...]
    tick_labels: tuple[str, ...]

    @property
    def colormap(self) -> Colormap:
        return colormaps[self.cmap_name]

    @property
    def norm(self) -> Normalize:
        return Normalize(vmin=self.vmin, vmax=self.vmax, clip=True)

    @property
    def clips(self) -> bool:
        """Whether displayed values can fall outside [vmin, vmax] (colour bar gets arrows)."""
        return self.mode == "fixed" and self.quantity == "attention"

    def values(self, raw: np.ndarray) -> np.ndarray:
        """(N,) float64 displayed values of one slide's (N,) raw per-patch scores."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.mode == "percentile":
            return rankdata(raw, method="max") * (100.0 / max(len(raw), 1))
        if self.quantity == "attention":
            with np.errstate(divide="ignore"):
                return np.maximum(np.log2(raw * len(raw)), _LOG2_FLOOR)
        return raw

    def colours(self, values: np.ndarray) -> np.ndarray:
        """(..., 4) uint8 RGBA of displayed ``values``; NaN becomes fully transparent black."""
        values = np.asarray(values, dtype=np.float64)
        rgba = self.colormap(self.norm(np.nan_to_num(values, nan=self.vmin)), bytes=True)
        rgba[np.isnan(values)] = 0
        return rgba

    def explain(self) -> str:
        """The colour scale in plain words, for a pathologist reading a page."""
        cls = self.class_name
        if self.mode == "percentile":
            return (f"Colour ranks each patch within its own slide for {cls}: yellow is the slide's "
                    "highest-scoring tenth of the tissue, dark blue its lowest. Every slide uses the full "
                    "range, so a yellow area on one slide is not comparable with one on another.")  # fmt: skip
        if self.quantity == "probs":
            return (f"Colour is the model's probability that a patch shows {cls}: dark blue 0, green 0.5, "
                    "yellow 1. The scale is the same on every slide.")  # fmt: skip
        low, high = self.tick_labels[0], self.tick_labels[-1]
        return (f"Colour shows how much weight the model gave each patch when it decided on {cls}, compared "
                f"with an average patch of the same slide: white is average, red up to {high} the average, blue "
                f"down to {low} of it. The scale is the same on every slide; it says where the model looked, not "
                "whether the tissue there is {cls}.".replace("{cls}", cls))  # fmt: skip

    def format(self, value: float) -> str:
        """A displayed value with its unit, for captions (e.g. ``P=0.93``, ``4.2× avg``, ``pct 97``)."""
        if self.mode == "percentile":
            return f"pct {value:.0f}"
        if self.quantity == "attention":
            return f"{2.0**value:.3g}× avg"
        return f"P={value:.3f}"


def make_scale(mode: str, quantity: str, class_name: str) -> ColourScale:
    """The colour scale of ``quantity`` (``probs`` | ``attention``) for ``class_name`` in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"unknown scale mode {mode!r} (use {' or '.join(MODES)})")
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r} (use {' or '.join(QUANTITIES)})")
    what = f"P({class_name})" if quantity == "probs" else f"{class_name} attention"
    if mode == "percentile":
        ticks = (0.0, 25.0, 50.0, 75.0, 100.0)
        return ColourScale(
            mode, quantity, class_name, 0.0, 100.0, "viridis",
            f"{what}: percentile within this slide (100 = its highest patch)\n"
            "colours are NOT comparable between slides",
            ticks, tuple(f"{t:.0f}" for t in ticks),
        )  # fmt: skip
    if quantity == "probs":
        ticks = (0.0, 0.25, 0.5, 0.75, 1.0)
        return ColourScale(
            mode, quantity, class_name, 0.0, 1.0, "viridis",
            f"{what} per patch (probability)\nsame scale on every slide",
            ticks, tuple(f"{t:g}" for t in ticks),
        )  # fmt: skip
    limit = ATTENTION_LOG2_LIMIT
    ticks = tuple(float(t) for t in np.arange(-limit, limit + 1, 2))
    return ColourScale(
        mode, quantity, class_name, -limit, limit, "RdBu_r",
        f"{what} relative to an average patch (× uniform weight, log scale)\nsame scale on every slide",
        ticks, tuple(_ratio_label(t) for t in ticks),
    )  # fmt: skip


def _ratio_label(log2_value: float) -> str:
    """``-4`` → ``1/16×``, ``0`` → ``1×``, ``2`` → ``4×``."""
    ratio = 2.0**log2_value
    return f"{ratio:g}×" if ratio >= 1 else f"1/{1 / ratio:g}×"
