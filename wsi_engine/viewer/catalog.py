"""What the viewer shows: the slides of a ``run``/``heatmap`` output folder and their score maps.

:func:`load_catalog` accepts

* a heatmap folder (``heatmap.yaml`` beside ``report.html``): its stores, run id, scale and quantity;
* a ``run`` output folder (``OUT/heatmaps/heatmap.yaml``): every store of ``OUT/stores``;
* any folder of stores, with ``--scores RUN_ID`` or stores holding a single score run.

:class:`SlideView` opens one store lazily: the slide file through
:func:`~wsi_engine.slide.open_slide` (or the store's thumbnail when the file
has moved), and one RGBA score canvas per class drawn with the same fixed
cohort colour scale as the static heatmaps.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from wsi_engine.errors import ConfigError, SlideError, StoreError
from wsi_engine.heatmap.gallery import extremes
from wsi_engine.heatmap.provenance import shown_classes, training_roles
from wsi_engine.heatmap.pyramid_tiff import tiff_downsample
from wsi_engine.heatmap.scales import MODES, QUANTITIES, ColourScale, make_scale
from wsi_engine.heatmap.scoremap import canvas_shape, score_canvas
from wsi_engine.store.layout import TISSUE_MASK, find_stores, store_slide_id
from wsi_engine.store.patch_store import PatchStore
from wsi_engine.viewer.deepzoom import ImageSource, SlideSource, TileSource

HEATMAP_CONFIG = "heatmap.yaml"
TOP_PATCHES = 10


@dataclass(frozen=True)
class Catalog:
    """The slides to serve and how to colour them."""

    root: Path
    run_id: str
    stores: dict[str, Path]
    scale_mode: str = "fixed"
    quantity: str = "auto"
    smooth_um: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    report: Path | None = None


def load_catalog(
    path: str | Path, *, run_id: str | None = None, labels: dict[str, str] | None = None
) -> Catalog:
    """The :class:`Catalog` of ``path`` (see the module docstring); errors name the folder and what to pass."""
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(
            "not a folder",
            path=root,
            hint="pass the --out folder of `wsi-engine run` or of `wsi-engine heatmap`",
        )
    config_path = next(
        (p for p in (root / HEATMAP_CONFIG, root / "heatmaps" / HEATMAP_CONFIG) if p.is_file()),
        None,
    )
    options: dict[str, Any] = {}
    store_paths: list[Path] = []
    if config_path is not None:
        try:
            payload = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
            options = dict(payload.get("heatmap") or {})
            listed = [Path(p) for p in payload.get("stores") or []]
        except (OSError, yaml.YAMLError, TypeError, ValueError) as error:
            raise ConfigError(
                f"cannot read heatmap settings ({error})", path=config_path
            ) from error
        # heatmap.yaml lists only the stores of its last call: in a run folder (OUT/heatmaps beside
        # OUT/stores) take every store of the run
        run_stores = config_path.parent.parent / "stores"
        in_run = run_stores.is_dir() and all(
            p.parent.resolve() == run_stores.resolve() for p in listed
        )
        store_paths = find_stores([run_stores]) if in_run else listed
    if not store_paths:
        store_paths = find_stores([root, root / "stores"])
    if not store_paths:
        raise StoreError(
            "no patch stores found",
            path=root,
            hint="pass the --out folder of `wsi-engine run` or `wsi-engine heatmap`, or a folder of <slide_id>.zarr stores",
        )
    stores = {store_slide_id(p): p for p in store_paths}
    chosen = run_id or options.get("run_id") or _only_run(store_paths)
    report = config_path.parent / "report.html" if config_path is not None else None
    return Catalog(
        root=root,
        run_id=str(chosen),
        stores=stores,
        scale_mode=str(options.get("scale", "fixed")) if options.get("scale") in MODES else "fixed",
        quantity=str(options.get("quantity", "auto")),
        smooth_um=float(options.get("smooth_um") or 0.0),
        labels=dict(labels or {}),
        report=report if report is not None and report.is_file() else None,
    )


def _only_run(store_paths: list[Path]) -> str:
    runs = sorted({r for p in store_paths for r in PatchStore.open(p).score_runs()})
    if len(runs) != 1:
        raise StoreError(
            f"the stores hold {len(runs)} score runs ({', '.join(runs) or 'none'})",
            path=store_paths[0].parent,
            hint="choose one with --scores RUN_ID"
            if runs
            else "run `wsi-engine predict` (or `run --run FITTED_RUN`) first",
        )
    return runs[0]


class SlideView:
    """One slide of the catalog: pyramids and scores, opened on first use and kept."""

    def __init__(self, catalog: Catalog, slide_id: str):
        self.catalog, self.slide_id = catalog, slide_id
        self.store = PatchStore.open(catalog.stores[slide_id])
        arrays, self.attrs = self.store.read_scores(catalog.run_id)
        self.class_names = [str(c) for c in self.attrs.get("class_names", [])]
        self.quantity = _quantity(catalog.quantity, arrays, self.store.path)
        self.raw = np.asarray(arrays[self.quantity], dtype=np.float64)
        self.coords = self.store.coords()
        self.note: str | None = None
        self.slide = self._slide_source()
        self._overlays: dict[int, ImageSource] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ pyramids
    def _slide_source(self) -> TileSource:
        from wsi_engine.slide import open_slide

        path = self.store.slide_path
        try:
            return SlideSource(open_slide(path, require_mpp=False))
        except SlideError as error:
            self.note = (
                f"slide file unavailable ({error}); showing the store's low-resolution thumbnail"
            )
        thumbnail, downsample = self.store.thumbnail()
        return ImageSource(thumbnail, downsample, self.store.slide_dimensions)

    def scale(self, index: int) -> ColourScale:
        return make_scale(self.catalog.scale_mode, self.quantity, self.class_names[index])

    def overlay(self, index: int) -> ImageSource:
        """RGBA score map of class ``index`` (transparent outside scored tissue)."""
        with self._lock:
            if index not in self._overlays:
                scale = self.scale(index)
                downsample = tiff_downsample(self.store.patch_size_level0)
                shape = canvas_shape(self.store.slide_dimensions, downsample)
                mpp = self.store.attrs["slide"].get("mpp")
                sigma = (
                    self.catalog.smooth_um / (float(np.mean(mpp)) * downsample)
                    if mpp and self.catalog.smooth_um
                    else 0.0
                )
                canvas = score_canvas(
                    self.coords,
                    scale.values(self.raw[:, index]),
                    self.store.patch_size_level0,
                    shape,
                    downsample,
                    tissue=self.store.tissue_mask() if TISSUE_MASK in self.store.root else None,
                    smooth_sigma_px=sigma,
                )
                self._overlays[index] = ImageSource(
                    scale.colours(canvas),
                    downsample,
                    self.store.slide_dimensions,
                    image_format="png",
                )
            return self._overlays[index]

    # ------------------------------------------------------------ JSON
    def summary(self) -> dict[str, Any]:
        """One row of the slide list."""
        probs = self.attrs.get("slide_probs")
        return {
            "id": self.slide_id,
            "predicted": self.attrs.get("predicted_class"),
            "probs": [float(p) for p in probs] if probs else None,
            "true_label": self.catalog.labels.get(self.slide_id),
            "seen_in_training": training_roles(self.attrs).get(self.slide_id),
            "classes": self.class_names,
        }

    def detail(self) -> dict[str, Any]:
        """Everything the page needs for this slide: geometry, per-class scales, patch values, top patches."""
        mpp = self.store.attrs["slide"].get("mpp")
        classes = []
        for index, name in enumerate(self.class_names):
            scale = self.scale(index)
            values = scale.values(self.raw[:, index])
            top, _ = extremes(values, TOP_PATCHES)
            lut = scale.colormap(np.linspace(0, 1, 256), bytes=True)[:, :3]
            classes.append(
                {
                    "name": name,
                    "values": [None if not np.isfinite(v) else round(float(v), 4) for v in values],
                    "top": [int(i) for i in top],
                    "scale": {
                        "vmin": scale.vmin,
                        "vmax": scale.vmax,
                        "mode": scale.mode,
                        "quantity": scale.quantity,
                        "label": scale.label,
                        "explain": scale.explain(),
                        "ticks": list(scale.ticks),
                        "tick_labels": list(scale.tick_labels),
                        "lut": ["#" + bytes(rgb.tolist()).hex() for rgb in lut],
                    },
                }
            )
        return {
            **self.summary(),
            "width": self.store.slide_dimensions[0],
            "height": self.store.slide_dimensions[1],
            "mpp": float(np.mean(mpp)) if mpp else None,
            "patch_size_level0": self.store.patch_size_level0,
            "coords": self.coords.astype(int).tolist(),
            "default_class": shown_classes(self.class_names)[0] if self.class_names else 0,
            "run_id": self.catalog.run_id,
            "note": self.note,
            "class_data": classes,
        }


def _quantity(wanted: str, arrays: dict[str, np.ndarray], store: Path) -> str:
    """``wanted`` (probs | attention), or for ``auto`` the first of those the run wrote."""
    choice = wanted if wanted in QUANTITIES else next((q for q in QUANTITIES if q in arrays), None)
    if choice is None or choice not in arrays:
        raise StoreError(
            f"the scores have no per-patch {choice or 'probs or attention'}",
            path=store,
            hint="rerun `wsi-engine predict` on this store",
        )
    return choice


class ViewerState:
    """The catalog and its slides, opened on first request (thread-safe)."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._lock = threading.Lock()
        self._views: dict[str, SlideView] = {}

    def view(self, slide_id: str) -> SlideView | None:
        if slide_id not in self.catalog.stores:
            return None
        with self._lock:
            if slide_id not in self._views:
                self._views[slide_id] = SlideView(self.catalog, slide_id)
            return self._views[slide_id]

    @functools.cached_property
    def slide_ids(self) -> list[str]:
        return sorted(self.catalog.stores)
