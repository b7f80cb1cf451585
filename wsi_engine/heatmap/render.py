"""``make_heatmaps``: every requested output for every store, from scores already in the stores.

Nothing is recomputed: coordinates, thumbnail, tissue mask, patch pixels and
``scores/<run_id>`` are read from each store (docs/store.md). Output layout::

    OUT/heatmap.yaml                      effective options and provenance
    OUT/report.html                       cohort page            (format html)
    OUT/<slide_id>/thumbnail.png          slide thumbnail        (format html)
    OUT/<slide_id>/overlay_<class>.png    heatmap over thumbnail (format png)
    OUT/<slide_id>/topk_<class>.png       top/bottom-k patches   (format png)
    OUT/<slide_id>/tiles.geojson          QuPath tile objects    (format geojson)
    OUT/<slide_id>/scoremap_<class>.tiff  pyramidal colour map   (format tiff)
        + scoremap_<class>.tiff.json (geometry and scale) and scoremap_<class>.values.tiff (float32)
    OUT/<slide_id>/dicom/                 DICOM SEG pyramids + bulk annotations (format dicom)
    OUT/<slide_id>/dsa_annotation.json    Digital Slide Archive griddata heatmaps (format dsa)

A store that fails (no such run, unknown class...) is reported and the
others go on.

Format tiff also writes ``scoremap_<class>.ome.tiff`` (OME pyramid whose
physical extent is the slide's, to lay over it in QuPath). Level-0
coordinates are written in the viewer frame (:mod:`wsi_engine.slide.bounds`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from wsi_engine import __version__
from wsi_engine.config.loader import validate, write_effective_config
from wsi_engine.config.names import match_name, unknown_name_hint
from wsi_engine.errors import ConfigError, StoreError, WsiEngineError
from wsi_engine.heatmap import clinical, gallery, geojson, overlay, pyramid_tiff, report
from wsi_engine.heatmap.files import atomic_output, class_file_name, ensure_dir
from wsi_engine.heatmap.ome_tiff import crop_to_frame, write_ome_tiff
from wsi_engine.heatmap.provenance import shown_classes, training_roles
from wsi_engine.heatmap.scales import QUANTITIES, ColourScale, make_scale
from wsi_engine.heatmap.scoremap import canvas_shape, score_canvas
from wsi_engine.heatmap.settings import HeatmapOptions
from wsi_engine.heatmap.slide_source import (
    PIXEL_FORMATS,
    locate_slide,
    skipped_note,
    slide_thumbnail,
)
from wsi_engine.slide.bounds import ViewerFrame
from wsi_engine.slide.ids import sanitize_name
from wsi_engine.stage import HeatmapRecord, StageObserver, StageResult
from wsi_engine.store.layout import THUMBNAIL, TISSUE_MASK, require_stores, store_slide_id
from wsi_engine.store.patch_store import PatchStore

STAGE = "heatmap"

DEFAULT_FORMATS = ("png", "geojson", "tiff", "html")
FORMATS = (*DEFAULT_FORMATS, *clinical.FORMATS)


@dataclass
class SlideResult:
    """Outcome for one store: the files written, notes for the reader, or the error that stopped it."""

    store: Path
    slide_id: str
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: WsiEngineError | None = None
    seconds: float = 0.0

    def outcome(self) -> StageResult:
        """The slide's result in the shape every stage shares (``files`` in its record)."""
        if self.error is not None:
            return StageResult.failure(STAGE, self.slide_id, self.error, self.seconds)
        return StageResult(
            STAGE,
            self.slide_id,
            "done",
            seconds=self.seconds,
            record=HeatmapRecord(files=[str(f) for f in self.files]),
        )


@dataclass
class HeatmapReport:
    """Outcome of :func:`make_heatmaps`."""

    out_dir: Path
    options: HeatmapOptions
    slides: list[SlideResult]
    report_path: Path | None
    config_path: Path

    @property
    def failed(self) -> list[SlideResult]:
        return [s for s in self.slides if s.error is not None]


def make_heatmaps(
    store_paths: Iterable[str | Path],
    run_id: str,
    out_dir: str | Path,
    *,
    class_name: str | None = None,
    formats: Iterable[str] = DEFAULT_FORMATS,
    scale: str = "fixed",
    quantity: str = "auto",
    smooth_um: float = 0.0,
    top_k: int = 8,
    labels: dict[str, str] | None = None,
    observer: StageObserver | None = None,
    slides: str | Path | None = None,
) -> HeatmapReport:
    """Write heatmaps of run ``run_id`` for every store in ``store_paths`` (stores or folders of stores).

    ``class_name``: one class (default: every class of the run). ``formats``: any
    of png, geojson, tiff, html (html implies png), dicom, dsa (default: the first four). ``scale``: ``fixed`` (same
    colours on every slide) or ``percentile`` (per slide). ``quantity``: ``probs``,
    ``attention`` or ``auto`` (probs when the run has them, else attention).
    ``smooth_um``: Gaussian sigma in µm (0 = none). ``top_k``: patches per row of
    the gallery. ``labels``: {slide_id: true label} for the report's table.
    ``slides``: folder of the slides of stores without a thumbnail (imported
    features) whose recorded slide path is gone; without a slide such a store
    gets only GeoJSON and TIFF, and a note naming what was skipped.
    """
    options = validate(
        HeatmapOptions,
        {
            "run_id": run_id,
            "class_name": class_name,
            "formats": list(formats),
            "scale": scale,
            "quantity": quantity,
            "smooth_um": smooth_um,
            "top_k": top_k,
            "slides": str(slides) if slides else None,
        },
        "heatmap options",
    )
    out_dir = ensure_dir(Path(out_dir))
    paths = require_stores(
        list(store_paths),
        hint="pass store folders (<slide_id>.zarr) or folders holding them; create them with `wsi-engine tile`",
    )
    observer = observer or StageObserver()
    observer.stage_started(STAGE, len(paths))
    results, entries, class_names = [], [], []
    for path in paths:
        began = time.perf_counter()
        result, entry, names = _render_store(path, out_dir, options, labels or {})
        result.seconds = time.perf_counter() - began
        results.append(result)
        entries.append(entry)
        class_names = class_names or names
        observer.slide_finished(result.outcome())
    report_path = None
    if "html" in options.formats:
        report_path = out_dir / "report.html"
        report.write_report(
            report_path,
            entries,
            run_id=run_id,
            class_names=class_names,
            scale_note=_scale_note(options),
        )
    config_path = write_effective_config(
        out_dir,
        "heatmap",
        {"heatmap": options, "stores": [str(p) for p in paths]},
    )
    return HeatmapReport(out_dir, options, results, report_path, config_path)


def _scale_note(options: HeatmapOptions) -> str:
    if options.scale == "fixed":
        return "Colours use one fixed scale for every slide: the same colour means the same value on every slide."
    return ("Colours are per-slide percentiles (each slide spans the full colour range): "
            "compare regions within a slide, not colours between slides.")  # fmt: skip


def _render_store(
    path: Path, out_dir: Path, options: HeatmapOptions, labels: dict[str, str]
) -> tuple[SlideResult, report.SlideEntry, list[str]]:
    slide_id = store_slide_id(path)
    result = SlideResult(path, slide_id)
    entry = report.SlideEntry(slide_id, true_label=labels.get(slide_id))
    try:
        store = PatchStore.open(path)
        result.slide_id = entry.slide_id = store.slide_id
        entry.true_label = labels.get(store.slide_id)
        arrays, attrs = store.read_scores(options.run_id)
        class_names = [str(c) for c in attrs.get("class_names", [])]
        entry.predicted_class = attrs.get("predicted_class")
        entry.slide_probs = (
            [float(p) for p in attrs["slide_probs"]] if attrs.get("slide_probs") else None
        )
        entry.seen_in_training = training_roles(attrs).get(store.slide_id)
        _SlideRenderer(store, arrays, attrs, class_names, out_dir, options, result, entry).run()
    except WsiEngineError as error:
        result.error = error
        entry.error = str(error)
        return result, entry, []
    entry.notes = result.notes
    return result, entry, class_names


class _SlideRenderer:
    """Writes one store's outputs; one method per output kind."""

    def __init__(
        self,
        store: PatchStore,
        arrays: dict[str, np.ndarray],
        attrs: dict[str, Any],
        class_names: list[str],
        out_dir: Path,
        options: HeatmapOptions,
        result: SlideResult,
        entry: report.SlideEntry,
    ):
        self.store, self.arrays, self.attrs, self.options = store, arrays, attrs, options
        self.result, self.entry = result, entry
        self.class_names = class_names
        self.out_dir = out_dir
        self.slide_dir = out_dir / sanitize_name(store.slide_id)
        self.quantity = self._quantity()
        self.coords = store.coords()
        self.mpp = self._mpp()
        self.slide_file = locate_slide(store, Path(options.slides) if options.slides else None)
        self.thumbnail = None
        if THUMBNAIL in store.root:
            self.thumbnail, self.thumbnail_downsample = store.thumbnail()
        elif self.slide_file is not None:
            self.thumbnail, self.thumbnail_downsample = slide_thumbnail(self.slide_file)
        self.tissue = store.tissue_mask() if TISSUE_MASK in store.root else None

    def run(self) -> None:
        formats = self.options.formats
        if self.thumbnail is None and set(formats) & set(PIXEL_FORMATS):
            self.result.notes.append(skipped_note(formats))
            formats = tuple(f for f in formats if f not in PIXEL_FORMATS)
        classes = self._classes()
        if "html" in formats:
            self._thumbnail()
        for index, name in classes:
            scale = make_scale(self.options.scale, self.quantity, name)
            values = scale.values(self.arrays[self.quantity][:, index])
            if self._in_report(index):
                self.entry.explanations.append(scale.explain())
            if "png" in formats:
                self._overlay(name, index, scale, values)
                self._gallery(name, scale, values)
            if "tiff" in formats:
                self._tiff(name, scale, values)
        if "geojson" in formats:
            path = self.slide_dir / "tiles.geojson"
            measurements = geojson.patch_measurements(self.arrays, self.class_names)
            slide = self.store.attrs["slide"]
            geojson.write_tiles_geojson(
                path,
                self.coords,
                self.store.patch_size_level0,
                self.store.slide_dimensions,
                measurements,
                classes=geojson.tile_classes(self.arrays, self.class_names),
                class_names=self.class_names,
                slide_key=slide.get("fingerprint") or self.store.slide_id,
                offset=ViewerFrame.of(slide).offset,
            )
            self.result.files.append(path)
        if set(clinical.FORMATS) & set(formats):
            files, notes = clinical.write_formats(self.slide_dir, self._scores(classes), formats)
            self.result.files += files
            self.result.notes += notes

    def _scores(self, classes: list[tuple[int, str]]) -> clinical.SlideScores:
        o = self.options
        return clinical.SlideScores(
            self.store, self.arrays, self.class_names, classes, self.quantity, o.scale, o.run_id,
            str(self.attrs.get("created", "")), o.top_k, o.smooth_um, self._canvas, self.tissue,
        )  # fmt: skip

    # ----------------------------------------------------------- choices
    def _quantity(self) -> str:
        wanted = self.options.quantity
        available = [q for q in QUANTITIES if q in self.arrays]
        if wanted == "auto" and available:
            wanted = available[0]
        if wanted not in self.arrays:
            raise StoreError(
                f"run '{self.options.run_id}' has no per-patch {wanted if wanted != 'auto' else 'scores'} "
                f"(it has: {', '.join(sorted(self.arrays)) or 'nothing'})",
                path=self.store.path,
                hint="choose --quantity "
                + (" or ".join(available) if available else "after rerunning `wsi-engine predict`"),
            )
        columns = self.arrays[wanted].shape[1] if self.arrays[wanted].ndim == 2 else 0
        if columns != len(self.class_names):
            raise StoreError(
                f"scores/{self.options.run_id}/{wanted} has {columns} column(s) for "
                f"{len(self.class_names)} class name(s)",
                path=self.store.path,
                hint="rerun `wsi-engine predict` to rewrite the scores",
            )
        return wanted

    def _classes(self) -> list[tuple[int, str]]:
        wanted = self.options.class_name
        if wanted is None:
            return list(enumerate(self.class_names))
        matched = match_name(wanted, self.class_names)
        if matched is None:
            raise ConfigError(
                f"run '{self.options.run_id}' has no class {wanted!r}",
                hint=unknown_name_hint(wanted, self.class_names, listing="its classes"),
            )
        return [(self.class_names.index(matched), matched)]

    def _in_report(self, index: int) -> bool:
        """Whether the page shows class ``index``: a chosen --class, else the positive class of a binary task, else all."""
        return self.options.class_name is not None or index in shown_classes(self.class_names)

    def _mpp(self) -> float | None:
        """µm per level-0 px (mean of x and y), or ``None`` when the store does not record it."""
        mpp = self.store.attrs["slide"].get("mpp")
        return float(np.mean(mpp)) if mpp else None

    # ----------------------------------------------------------- outputs
    def _canvas(self, values: np.ndarray, shape: tuple[int, int], downsample: float) -> np.ndarray:
        sigma_px = (
            self.options.smooth_um / (self.mpp * downsample)
            if self.mpp and self.options.smooth_um
            else 0.0
        )
        return score_canvas(
            self.coords, values, self.store.patch_size_level0, shape, downsample,
            tissue=self.tissue, smooth_sigma_px=sigma_px,
        )  # fmt: skip

    def _thumbnail(self) -> None:
        path = self.slide_dir / "thumbnail.png"
        with atomic_output(path) as tmp:
            Image.fromarray(self.thumbnail).save(tmp, format="PNG")
        self.entry.thumbnail = self._relative(path)
        self.result.files.append(path)

    def _overlay(self, name: str, index: int, scale: ColourScale, values: np.ndarray) -> None:
        downsample = self.thumbnail_downsample
        canvas = self._canvas(values, self.thumbnail.shape[:2], downsample)
        path = self.slide_dir / class_file_name("overlay", name, ".png")
        overlay.render_overlay(
            path, self.thumbnail, downsample, canvas, downsample, scale,
            title=f"{self.store.slide_id}  ·  heatmap for class {name}",
            subtitle=self._subtitle(name, index), mpp=self.mpp,
        )  # fmt: skip
        if self._in_report(index):
            self.entry.heatmaps.append((f"heatmap: {name}", self._relative(path)))
        self.result.files.append(path)

    def _subtitle(self, name: str, index: int) -> str:
        parts = []
        probs = self.attrs.get("slide_probs")
        if probs:
            parts.append(f"slide P({name}) = {float(probs[index]):.3f}")
        if self.attrs.get("predicted_class"):
            parts.append(f"predicted: {self.attrs['predicted_class']}")
        parts.append(f"{len(self.coords)} patches")
        parts.append(f"run {self.options.run_id}")
        return "  ·  ".join(parts)

    def _gallery(self, name: str, scale: ColourScale, values: np.ndarray) -> None:
        top, bottom = gallery.extremes(values, self.options.top_k)
        pixels, note = gallery.load_patches(
            self.store, np.concatenate([top, bottom]), self.slide_file
        )
        if note and note not in self.result.notes:
            self.result.notes.append(note)
        if not len(top):
            note = "no patches on this slide"
        what = f"P({name})" if self.quantity == "probs" else f"{name} attention"
        path = self.slide_dir / class_file_name("topk", name, ".png")
        gallery.render_gallery(
            path, [(f"highest {what}", top), (f"lowest {what}", bottom)], pixels, values, self.coords, scale,
            title=f"{self.store.slide_id} — top and bottom {self.options.top_k} patches for {name}", note=note,
        )  # fmt: skip
        if self._in_report(self.class_names.index(name)):
            self.entry.galleries.append((f"top and bottom patches: {name}", self._relative(path)))
        self.result.files.append(path)

    def _tiff(self, name: str, scale: ColourScale, values: np.ndarray) -> None:
        downsample = pyramid_tiff.tiff_downsample(self.store.patch_size_level0)
        frame = ViewerFrame.of(self.store.attrs["slide"])
        canvas = crop_to_frame(
            self._canvas(values, canvas_shape(self.store.slide_dimensions, downsample), downsample),
            frame, downsample,
        )  # fmt: skip
        record = {
            "software": f"wsi-engine {__version__}",
            "slide_id": self.store.slide_id,
            "run_id": self.options.run_id,
            "class": name,
            "quantity": self.quantity,
            "scale_mode": scale.mode,
            "vmin": scale.vmin,
            "vmax": scale.vmax,
            "colormap": scale.cmap_name,
            "colour_bar": scale.label,
            "downsample": downsample,
            "downsample_meaning": "level-0 slide px per TIFF level-0 px",
            "slide_dimensions": list(self.store.slide_dimensions),
            "mpp": None if self.mpp is None else self.mpp * downsample,
            "slide_mpp": self.mpp,
            "smooth_um": self.options.smooth_um,
            "frame": [frame.x, frame.y, frame.width, frame.height],
            "frame_meaning": "level-0 rectangle covered (OpenSlide bounds, else the whole slide)",
        }
        path = self.slide_dir / class_file_name("scoremap", name, ".tiff")
        rgba = scale.colours(canvas)
        pyramid_tiff.write_pyramid_tiff(
            path, rgba, downsample=downsample, mpp=self.mpp, record=record
        )
        ome_path = self.slide_dir / class_file_name("scoremap", name, ".ome.tiff")
        mpp = self.store.attrs["slide"].get("mpp")
        write_ome_tiff(
            ome_path, rgba, frame=frame, mpp=tuple(mpp) if mpp else None,
            downsample=downsample, record=record,
        )  # fmt: skip
        values_path = self.slide_dir / class_file_name("scoremap", name, ".values.tiff")
        pyramid_tiff.write_values_tiff(
            values_path, canvas, downsample=downsample, mpp=self.mpp, record=record
        )
        self.result.files.extend([path, Path(f"{path}.json"), ome_path, values_path])

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()
