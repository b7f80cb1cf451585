"""``--formats dicom`` on a non-DICOM slide: SEG pyramids and bulk annotations read back equal, dciodvfy clean."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from wsi_engine.heatmap import make_heatmaps, make_scale
from wsi_engine.heatmap.dicom_source import stable_uid
from wsi_engine.heatmap.gallery import extremes
from wsi_engine.heatmap.geojson import patch_measurements
from wsi_engine.heatmap.scoremap import canvas_shape, mask_on_canvas, score_canvas
from wsi_engine.store.patch_store import PatchStore

from .conftest import CLASSES, HEIGHT, MPP, PATCH0, WIDTH, build_store, plant_scores
from .dicom_checks import (
    annotation_polygons_level0,
    assert_dciodvfy_clean,
    extent_mm,
    quantised,
    read_segmentation,
    referenced_instances,
    spacing_mm,
)

SLIDE_EXTENT_MM = (HEIGHT * MPP / 1000, WIDTH * MPP / 1000)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(store, dicom folder, stored scores) after `make_heatmaps(formats=["dicom"])` with top-k 3."""
    root = tmp_path_factory.mktemp("dicom")
    store = build_store(root / "stores", "slide-d", pixels=False)
    plant_scores(store)
    arrays, _ = PatchStore.open(store).read_scores("run1")  # float32, as the writer reads them
    report = make_heatmaps([store], "run1", root / "out", formats=["dicom"], top_k=3)
    assert not report.failed
    return store, root / "out" / "slide-d" / "dicom", arrays


def _expected_levels(
    store_path: Path, arrays: dict
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per level (16 and 32 level-0 px per pixel): fractions (rows, cols, C), tissue, scored."""
    store = PatchStore.open(store_path)
    levels = []
    for downsample in (16.0, 32.0):
        shape = canvas_shape((WIDTH, HEIGHT), downsample)
        canvases = [
            score_canvas(store.coords(), arrays["probs"][:, i], PATCH0, shape, downsample,
                         tissue=store.tissue_mask())
            for i in range(len(CLASSES))
        ]  # fmt: skip
        fractions = np.stack([quantised(c) for c in canvases], axis=-1)
        tissue = mask_on_canvas(*store.tissue_mask(), shape, downsample)
        levels.append((fractions, tissue, np.isfinite(canvases[0])))
    return levels


def test_score_segmentation_pyramid_round_trips_with_the_slide_extent(written) -> None:
    store_path, folder, arrays = written
    expected = _expected_levels(store_path, arrays)
    pyramid_uids, series_uids = set(), set()
    for level, (fractions, _, _) in enumerate(expected):
        path = folder / f"seg_scores_L{level}.dcm"
        seg, ds = read_segmentation(path)
        assert seg.SegmentationType == "FRACTIONAL" and int(ds.MaximumFractionalValue) == 255
        assert [s.SegmentLabel for s in ds.SegmentSequence] == CLASSES
        assert all("fraction = P(" in s.SegmentDescription for s in ds.SegmentSequence)
        assert (int(ds.TotalPixelMatrixRows), int(ds.TotalPixelMatrixColumns)) == fractions.shape[
            :2
        ]
        assert extent_mm(ds) == pytest.approx(SLIDE_EXTENT_MM, rel=1e-9)
        assert spacing_mm(ds)[0] == pytest.approx(MPP * 16 * 2**level / 1000, rel=1e-9)
        pixels = seg.get_total_pixel_matrix(rescale_fractional=True)
        np.testing.assert_allclose(pixels, fractions, atol=1e-6)
        assert pixels[..., 1].max() > 0.8  # the planted lesion
        pyramid_uids.add(ds.PyramidUID)
        series_uids.add(ds.SeriesInstanceUID)
        assert_dciodvfy_clean(path)
    assert len(pyramid_uids) == len(series_uids) == 1


def test_tissue_segmentation_is_binary_with_tissue_and_scored_area(written) -> None:
    store_path, folder, arrays = written
    for level, (_, tissue, scored) in enumerate(_expected_levels(store_path, arrays)):
        path = folder / f"seg_tissue_L{level}.dcm"
        seg, ds = read_segmentation(path)
        assert seg.SegmentationType == "BINARY"
        assert [s.SegmentLabel for s in ds.SegmentSequence] == ["tissue", "scored area"]
        pixels = seg.get_total_pixel_matrix()
        np.testing.assert_array_equal(pixels[..., 0].astype(bool), tissue)
        np.testing.assert_array_equal(pixels[..., 1].astype(bool), scored)
        assert extent_mm(ds) == pytest.approx(SLIDE_EXTENT_MM, rel=1e-9)
        assert_dciodvfy_clean(path)


def test_new_study_uids_derive_from_the_fingerprint_and_are_stable(written, tmp_path: Path) -> None:
    store_path, folder, _ = written
    fingerprint = PatchStore.open(store_path).attrs["slide"]["fingerprint"]
    first = {p.name: pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))}
    assert len(first) == 5
    for ds in first.values():
        assert ds.StudyInstanceUID == stable_uid(fingerprint, "study")
        assert ds.FrameOfReferenceUID == stable_uid(fingerprint, "frame-of-reference")
        assert ds.ContainerIdentifier == "slide-d"
        assert referenced_instances(ds) == {stable_uid(fingerprint, "slide-image")}
    make_heatmaps([store_path], "run1", tmp_path / "again", formats=["dicom"], top_k=3)
    for name, ds in first.items():
        again = pydicom.dcmread(tmp_path / "again" / "slide-d" / "dicom" / name)
        assert (again.SOPInstanceUID, again.SeriesInstanceUID, again.StudyInstanceUID) == (
            ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID,
        )  # fmt: skip
    assert len({ds.SOPInstanceUID for ds in first.values()}) == 5


def test_bulk_annotations_hold_every_patch_and_the_top_k(written) -> None:
    store_path, folder, arrays = written
    store = PatchStore.open(store_path)
    path = folder / "ann_patches.dcm"
    annotations = hd.ann.annread(path)
    source = pydicom.dcmread(folder / "seg_scores_L0.dcm")  # same frame of reference
    header = _level0_header(store)
    coords = store.coords().astype(np.float64)
    squares = np.stack(
        [coords, coords + (PATCH0, 0), coords + (PATCH0, PATCH0), coords + (0, PATCH0)], axis=1
    )
    np.testing.assert_allclose(
        annotation_polygons_level0(annotations, "patches", header), squares, atol=1e-6
    )
    (patches,) = annotations.get_annotation_groups(label="patches")
    expected = patch_measurements(arrays, CLASSES)
    for name, values in expected.items():
        names, table, _ = patches.get_measurements()
        column = [n.meaning for n in names].index(name)
        np.testing.assert_allclose(table[:, column], values.astype(np.float32))
    scale = make_scale("fixed", "probs", "tumor")
    top, _ = extremes(scale.values(arrays["probs"][:, 1]), 3)
    np.testing.assert_allclose(
        annotation_polygons_level0(annotations, "top-3 tumor", header), squares[top], atol=1e-6
    )
    assert annotations.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert_dciodvfy_clean(path)


def _level0_header(store: PatchStore) -> pydicom.Dataset:
    """The notional level-0 header the writer used (same code path, UIDs from the fingerprint)."""
    from wsi_engine.heatmap.dicom_source import slide_source

    return slide_source(store).dataset


def test_no_patches_writes_segmentations_and_a_note(tmp_path: Path) -> None:
    store = build_store(tmp_path / "stores", "empty", pixels=False, stride=10**6)
    plant_scores(store)
    report = make_heatmaps([store], "run1", tmp_path / "out", formats=["dicom"])
    (slide,) = report.slides
    assert slide.error is None and any("no bulk annotations" in n for n in slide.notes)
    assert sorted(p.name for p in slide.files)[0] == "seg_scores_L0.dcm"


def test_a_dicom_store_whose_source_is_gone_fails_with_a_slide_error(
    tmp_path: Path, capsys
) -> None:
    from wsi_engine.cli import main
    from wsi_engine.store import layout

    store_path = build_store(tmp_path / "stores", "gone", pixels=False)
    plant_scores(store_path)
    store = PatchStore.open(store_path, mode="r+")
    attrs = dict(store.root.attrs[layout.ATTRS_KEY])
    attrs["slide"] = {**attrs["slide"], "format": "dicom", "path": str(tmp_path / "moved.dcm")}
    store.root.attrs[layout.ATTRS_KEY] = attrs
    args = [
        "heatmap",
        "--stores",
        str(store_path),
        "--scores",
        "run1",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main([*args, "--formats", "dicom"]) == 4
    assert "moved.dcm" in capsys.readouterr().err


def test_attention_percentile_and_non_ascii_class_names_stay_valid(tmp_path: Path) -> None:
    store_path = build_store(tmp_path / "stores", "slide-u", pixels=False)
    arrays = plant_scores(store_path, kind="bag")
    store = PatchStore.open(store_path, mode="r+")
    store.write_scores("run1", arrays, {"kind": "bag", "class_names": ["normal", "tumör × 2"]})
    report = make_heatmaps(
        [store_path], "run1", tmp_path / "o", formats=["dicom"], scale="percentile"
    )
    (slide,) = report.slides
    assert slide.error is None
    ds = pydicom.dcmread(tmp_path / "o" / "slide-u" / "dicom" / "seg_scores_L0.dcm")
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["normal", "tumor x 2"]
    assert "percentile within this slide" in ds.SegmentSequence[1].SegmentDescription
    assert "NOT comparable" in ds.SegmentSequence[1].SegmentDescription
    for path in slide.files:
        assert_dciodvfy_clean(path)
