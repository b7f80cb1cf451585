"""make_heatmaps end to end: a generated and tiled slide, failures per store, galleries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import tifffile
from scipy.stats import rankdata

from wsi_engine.heatmap import make_heatmaps
from wsi_engine.heatmap.gallery import extremes, load_patches
from wsi_engine.store.patch_store import PatchStore
from wsi_engine.tissue import patch_truth_fraction

from .conftest import CLASSES, build_store, patch_colour, plant_scores


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    ranks = rankdata(scores)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_heatmaps_of_a_tiled_synthetic_slide_follow_its_lesion(real_store, tmp_path: Path) -> None:
    store_path, truth_path = real_store
    store = PatchStore.open(store_path, mode="r+")
    fraction = patch_truth_fraction(store.coords(), store.patch_size_level0, truth_path)
    lesion = fraction >= 0.5
    assert 3 <= lesion.sum() < len(fraction) - 3
    noise = np.random.default_rng(0).normal(0, 0.1, len(fraction))
    tumour = np.clip(0.15 + 0.7 * fraction + noise, 0, 1)
    store.write_scores(
        "truthlike",
        {"probs": np.stack([1 - tumour, tumour], axis=1)},
        {"kind": "patch", "class_names": CLASSES, "predicted_class": "tumor"},
    )
    report = make_heatmaps([store_path], "truthlike", tmp_path / "out", class_name="tumor", top_k=4)
    assert not report.failed
    assert (
        _auc(PatchStore.open(store_path).read_scores("truthlike")[0]["probs"][:, 1], lesion) >= 0.85
    )

    folder = tmp_path / "out" / "tum-1"
    names = {p.name for p in folder.iterdir()}
    assert {
        "overlay_tumor.png",
        "topk_tumor.png",
        "tiles.geojson",
        "scoremap_tumor.tiff",
        "thumbnail.png",
    } <= names
    assert (tmp_path / "out" / "report.html").is_file() and (
        tmp_path / "out" / "heatmap.yaml"
    ).is_file()

    # the TIFF score map is high where the ground truth says lesion, low far from it
    record = json.loads((folder / "scoremap_tumor.tiff.json").read_text())
    values = tifffile.imread(folder / "scoremap_tumor.values.tiff")
    width, height = store.slide_dimensions
    assert values.shape == (
        math.ceil(height / record["downsample"]),
        math.ceil(width / record["downsample"]),
    )
    corners = (store.coords() / record["downsample"]).astype(int) + 1
    inside = values[corners[lesion, 1], corners[lesion, 0]]
    outside = values[corners[fraction == 0, 1], corners[fraction == 0, 0]]
    assert np.nanmean(inside) > 0.6 > 0.3 > np.nanmean(outside)


def test_a_store_without_the_run_fails_alone_with_a_clear_error(tmp_path: Path) -> None:
    scored = build_store(tmp_path / "stores", "scored")
    plant_scores(scored, kind="bag")
    build_store(tmp_path / "stores", "unscored")
    report = make_heatmaps(
        [tmp_path / "stores"], "run1", tmp_path / "out", formats=["html"], top_k=2
    )
    assert [s.slide_id for s in report.failed] == ["unscored"]
    message = str(report.failed[0].error)
    assert "no scores for run 'run1'" in message and "wsi-engine predict" in message
    assert report.failed[0].error.exit_code == 5
    assert (tmp_path / "out" / "scored" / "overlay_tumor.png").is_file()
    html = (tmp_path / "out" / "report.html").read_text()
    assert "unscored" in html and "wsi-engine predict" in html


def test_percentile_scale_smoothing_and_one_class(tmp_path: Path, scored_store: Path) -> None:
    report = make_heatmaps(
        [scored_store], "run1", tmp_path / "out", class_name="tumor", formats=["png"],
        scale="percentile", smooth_um=60, top_k=3,
    )  # fmt: skip
    assert not report.failed
    names = sorted(p.name for p in (tmp_path / "out" / "slide-a").iterdir())
    assert names == ["overlay_tumor.png", "topk_tumor.png"]


def test_gallery_picks_the_true_extremes_and_their_pixels(scored_store: Path) -> None:
    values = np.array([0.5, 0.9, np.nan, 0.1, 0.7, 0.3])
    top, bottom = extremes(values, 2)
    assert top.tolist() == [1, 4] and bottom.tolist() == [3, 5]
    top, bottom = extremes(values, 4)  # fewer than 2k values: rows do not repeat patches
    assert top.tolist() == [1, 4, 0, 5] and bottom.tolist() == [3]
    store = PatchStore.open(scored_store)
    probs = store.read_scores("run1")[0]["probs"][:, 1]
    top, _ = extremes(probs, 3)
    assert set(top) <= set(np.flatnonzero(probs >= np.sort(probs)[-3]))
    pixels, note = load_patches(store, top)
    assert note is None
    for index in top:
        assert (pixels[index] == patch_colour(int(index))).all()


def test_gallery_says_when_no_pixels_can_be_found(tmp_path: Path) -> None:
    store = PatchStore.open(build_store(tmp_path, "bare", pixels=False))
    pixels, note = load_patches(store, np.array([0, 1]))
    assert pixels == {} and "coordinates only" in note and "bare.tiff" in note


def test_gallery_reads_the_slide_when_the_store_has_no_pixels(real_store) -> None:
    store = PatchStore.open(real_store[0])
    stored = {i: store.read_patches(i, i + 1)[0] for i in (0, 5)}
    tiling = store.sections.tiling.model_copy(update={"pixel_mode": "none"})
    store.sections = store.sections.model_copy(update={"tiling": tiling})  # as a coords-only store
    assert not store.has_pixels
    pixels, note = load_patches(store, np.array([0, 5]))
    assert note is None
    for index, patch in stored.items():
        assert pixels[index].shape == patch.shape  # the stored patch size, as tiling cut it
        assert np.abs(pixels[index].astype(int) - patch).mean() < 8
