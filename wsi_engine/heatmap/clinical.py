"""Heatmap formats that clinical and archive viewers read natively: ``dicom`` and ``dsa``.

``dicom`` writes, per slide, into ``OUT/<slide_id>/dicom/``: the FRACTIONAL
score and BINARY tissue segmentation pyramids (:mod:`.dicom_seg`) and the
patch bulk annotations (:mod:`.dicom_ann`), all derived from the slide's
level-0 DICOM header (:mod:`.dicom_source`). ``dsa`` writes
``OUT/<slide_id>/dsa_annotation.json`` (:mod:`.dsa`). Every format shows the
same number per class as the overlays: the colour scale's displayed value,
mapped onto [0, 1] by the scale's limits (:func:`fraction_note` says how).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsi_engine import __version__
from wsi_engine.heatmap import dicom_ann, dicom_seg, dsa, gallery
from wsi_engine.heatmap.dicom_source import slide_source
from wsi_engine.heatmap.files import ensure_dir
from wsi_engine.heatmap.geojson import patch_measurements
from wsi_engine.heatmap.pyramid_tiff import tiff_downsample
from wsi_engine.heatmap.scales import ColourScale, make_scale
from wsi_engine.heatmap.scoremap import canvas_shape, mask_on_canvas
from wsi_engine.store.patch_store import PatchStore

FORMATS = ("dicom", "dsa")

Canvas = Callable[[np.ndarray, tuple[int, int], float], np.ndarray]
"""(per-patch displayed values, (rows, cols), level-0 px per pixel) → canvas, NaN where no score."""


@dataclass(frozen=True)
class SlideScores:
    """What the clinical formats need of one slide's scores (built by the heatmap renderer)."""

    store: PatchStore
    arrays: dict[str, np.ndarray]
    class_names: list[str]
    classes: list[tuple[int, str]]
    quantity: str
    scale_mode: str
    run_id: str
    scores_created: str
    top_k: int
    smooth_um: float
    canvas: Canvas
    tissue: tuple[np.ndarray, float] | None


def write_formats(
    slide_dir: Path, scores: SlideScores, formats: Sequence[str]
) -> tuple[list[Path], list[str]]:
    """Write the requested clinical ``formats`` for one slide; returns (files written, notes)."""
    written: list[Path] = []
    notes: list[str] = []
    if "dicom" in formats:
        written += write_dicom(ensure_dir(slide_dir / "dicom"), scores)
        if not scores.store.n_patches:
            notes.append("no patches: DICOM segmentations only, no bulk annotations")
    if "dsa" in formats:
        written.append(write_dsa(slide_dir / "dsa_annotation.json", scores))
    return written, notes


def fraction_note(scale: ColourScale) -> str:
    """How a fraction in [0, 1] was computed from the scores, for segment and element descriptions."""
    what = scale.label.splitlines()[0]
    if scale.mode == "fixed" and scale.quantity == "probs":
        core = f"fraction = {what} (0..1)"
    elif scale.mode == "percentile":
        core = f"fraction = ({what}) / 100"
    else:
        core = (
            f"fraction = (log2(attention x N) - ({scale.vmin:g})) / ({scale.vmax:g} - ({scale.vmin:g})), "
            f"clipped to [0, 1], where attention x N is {what}: 0 = 1/{2**-scale.vmin:g}x, "
            f"0.5 = an average patch, 1 = {2**scale.vmax:g}x"
        )
    comparable = (
        "comparable between slides" if scale.mode == "fixed" else "NOT comparable between slides"
    )
    return f"{core}; {comparable}"


def write_dicom(out_dir: Path, scores: SlideScores) -> list[Path]:
    """Segmentation pyramids and bulk annotations of one slide."""
    store = scores.store
    source = slide_source(store)
    scales = {
        name: make_scale(scores.scale_mode, scores.quantity, name) for _, name in scores.classes
    }
    shown = {
        name: scales[name].values(scores.arrays[scores.quantity][:, index])
        for index, name in scores.classes
    }
    seed = (
        str(source.dataset.SOPInstanceUID), scores.run_id, scores.scores_created, scores.quantity,
        scores.scale_mode, f"{scores.smooth_um:g}", ",".join(name for _, name in scores.classes),
    )  # fmt: skip
    label = f"{store.slide_id} {scores.run_id}"
    levels = [
        _seg_level(scores, scales, shown, shape, downsample)
        for shape, downsample in pyramid_grid(store.slide_dimensions, store.patch_size_level0)
    ]
    segments = [
        dicom_seg.ScoreSegment(
            name,
            f"{fraction_note(scales[name])}; stored as round({dicom_seg.MAX_FRACTIONAL} x fraction)",
        )
        for _, name in scores.classes
    ]
    tissue_note = (
        "tissue mask of the tiling"
        if scores.tissue is not None
        else "the store has no tissue mask: the scored area"
    )
    written = dicom_seg.write_segmentations(
        out_dir, source, levels, segments, uid_seed=seed, label=label, tissue_note=tissue_note
    )
    polygons = dicom_ann.patch_polygons(
        store.coords(), store.patch_size_level0, store.slide_dimensions
    )
    if not len(polygons):
        return written
    measurements = patch_measurements(scores.arrays, scores.class_names)
    written.append(
        dicom_ann.write_bulk_annotations(
            out_dir / "ann_patches.dcm",
            source,
            polygons,
            measurements,
            _patch_groups(scores, scales, shown, len(polygons)),
            uid_seed=seed,
            label=label,
        )
    )
    return written


def _patch_groups(
    scores: SlideScores,
    scales: dict[str, ColourScale],
    shown: dict[str, np.ndarray],
    n_patches: int,
) -> list[dicom_ann.PatchGroup]:
    """Every patch, then the top-k patches of each class by displayed value."""
    groups = [dicom_ann.PatchGroup("patches", "every scored patch", np.arange(n_patches))]
    for _, name in scores.classes:
        top, _ = gallery.extremes(shown[name], scores.top_k)
        what = scales[name].label.splitlines()[0]
        groups.append(
            dicom_ann.PatchGroup(
                f"top-{scores.top_k} {name}", f"the {len(top)} patches with the highest {what}", top
            )
        )
    return groups


def pyramid_grid(
    dimensions: tuple[int, int], patch_size_level0: float
) -> list[tuple[tuple[int, int], float]]:
    """[((rows, cols), level-0 px per pixel)] of each segmentation level, finest first.

    Level 0 uses the pyramidal TIFF's downsample (>= 8 px per patch side); each
    next level doubles it, while the previous level is larger than one tile and
    the new one is strictly smaller in both directions (at least two levels
    whenever the canvas is larger than 1 × 1 px).
    """
    downsample = float(tiff_downsample(patch_size_level0))
    grid = [(canvas_shape(dimensions, downsample), downsample)]
    while len(grid) < 2 or max(grid[-1][0]) > dicom_seg.TILE:
        downsample *= 2
        shape = canvas_shape(dimensions, downsample)
        if shape[0] >= grid[-1][0][0] or shape[1] >= grid[-1][0][1]:
            break
        grid.append((shape, downsample))
    return grid


def _seg_level(
    scores: SlideScores,
    scales: dict[str, ColourScale],
    shown: dict[str, np.ndarray],
    shape: tuple[int, int],
    downsample: float,
) -> dicom_seg.SegLevel:
    canvases = [scores.canvas(shown[name], shape, downsample) for _, name in scores.classes]
    fractions = np.stack(
        [
            np.asarray(scales[name].norm(c))
            for (_, name), c in zip(scores.classes, canvases, strict=True)
        ],
        axis=-1,
    )
    scored = np.isfinite(canvases[0])
    tissue = (
        mask_on_canvas(scores.tissue[0], scores.tissue[1], shape, downsample)
        if scores.tissue is not None
        else scored.copy()
    )
    return dicom_seg.SegLevel(np.where(np.isfinite(fractions), fractions, 0.0), tissue, scored)


def write_dsa(path: Path, scores: SlideScores) -> Path:
    """The DSA annotation JSON of one slide: one griddata heatmap element per class."""
    store = scores.store
    tiling = store.attrs["tiling"]
    step = store.patch_size_level0 * (
        1 - float(tiling.get("overlap", 0)) / float(tiling["patch_size"])
    )
    grid = dsa.patch_grid(store.coords(), step, store_path=store.path)
    layers = []
    for index, name in scores.classes:
        scale = make_scale(scores.scale_mode, scores.quantity, name)
        fractions = np.asarray(scale.norm(scale.values(scores.arrays[scores.quantity][:, index])))
        layers.append(dsa.GridLayer(name, fractions, scale, fraction_note(scale)))
    document = dsa.annotation_document(
        grid, store.patch_size_level0, layers,
        name=f"wsi-engine {scores.run_id}"[:200],
        description=f"per-patch scores of run {scores.run_id} on slide {store.slide_id}, one heatmap per class",
        attributes={"wsi_engine": {
            "software": f"wsi-engine {__version__}", "slide_id": store.slide_id,
            "run_id": scores.run_id, "quantity": scores.quantity, "scale_mode": scores.scale_mode,
            "slide_dimensions": list(store.slide_dimensions), "slide_mpp": store.attrs["slide"].get("mpp"),
            "patch_size_level0": store.patch_size_level0, "grid_step_level0": step,
        }},
    )  # fmt: skip
    return dsa.write_annotation(path, document)
