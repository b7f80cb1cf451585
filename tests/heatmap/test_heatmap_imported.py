"""Heatmaps of stores made by import-features (no thumbnail, no pixels): with and without the slide."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from wsi_engine.cli import main
from wsi_engine.heatmap import make_heatmaps
from wsi_engine.store.interop import import_features

from .conftest import plant_scores


@pytest.fixture(scope="module")
def clam_files(tmp_path_factory):
    """(feature folder, slide folder): a synthetic slide and CLAM h5_files with patches on its grid."""
    from wsi_engine.synthetic import generate_slide

    root = tmp_path_factory.mktemp("imported")
    slides = root / "slides"
    slides.mkdir()
    generate_slide(slides / "slide-i.tiff", width=2048, height=1536, mpp=0.5, seed=4)
    xs, ys = np.meshgrid(np.arange(0, 2048 - 128 + 1, 128), np.arange(0, 1536 - 128 + 1, 128))
    coords = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int32)
    (root / "feat" / "h5_files").mkdir(parents=True)
    with h5py.File(root / "feat" / "h5_files" / "slide-i.h5", "w") as handle:
        handle.create_dataset("features", data=np.ones((len(coords), 8), np.float32))
        handle.create_dataset("coords", data=coords)
    return root / "feat", slides


def _imported(tmp_path, clam_files, **options):
    feat, _ = clam_files
    (result,) = import_features([feat], tmp_path / "stores", "r50", patch_size=128, **options)
    assert result.status == "done", result.reason
    plant_scores(result.store)
    return result.store


def test_imported_store_with_its_slide_gets_every_format(tmp_path, clam_files):
    store = _imported(tmp_path, clam_files, slides=clam_files[1])  # the slide path is recorded
    report = make_heatmaps([store], "run1", tmp_path / "out")
    (slide,) = report.slides
    assert slide.error is None and not any("skipped" in n for n in slide.notes)
    names = {p.name for p in slide.files}
    for name in ("thumbnail.png", "overlay_tumor.png", "topk_tumor.png", "tiles.geojson",
                 "scoremap_tumor.tiff"):  # fmt: skip
        assert name in names
    assert report.report_path is not None and report.report_path.is_file()
    assert not any("no pixels" in n for n in slide.notes)  # the gallery read the slide


def test_slides_folder_replaces_a_moved_slide(tmp_path, clam_files):
    moved = tmp_path / "moved"
    shutil.copytree(clam_files[1], moved)
    store = _imported(tmp_path, clam_files, slides=moved)
    shutil.rmtree(moved)  # the recorded path is gone
    without = make_heatmaps([store], "run1", tmp_path / "a", formats=["png", "geojson"])
    assert any("skipped png" in n and "--slides" in n for n in without.slides[0].notes)
    with_slides = make_heatmaps([store], "run1", tmp_path / "b", slides=clam_files[1])
    names = {p.name for p in with_slides.slides[0].files}
    assert {"overlay_tumor.png", "topk_tumor.png", "thumbnail.png"} <= names


def test_without_any_slide_geojson_and_tiff_are_written_and_skips_named(
    tmp_path, clam_files, capsys
):
    store = _imported(tmp_path, clam_files, mpp=0.5)  # no slide recorded
    code = main(
        ["heatmap", "--stores", str(store), "--scores", "run1", "--out", str(tmp_path / "o")]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "skipped png, html" in out and "--slides" in out
    folder = tmp_path / "o" / "slide-i"
    assert (folder / "tiles.geojson").is_file() and (folder / "scoremap_tumor.tiff").is_file()
    assert not (folder / "overlay_tumor.png").exists() and not (folder / "thumbnail.png").exists()
    features = json.loads((folder / "tiles.geojson").read_text())["features"]
    assert len(features) == 12 * 16
