"""``--formats dicom`` on the DICOM fixtures (boxes_0.dcm level 0, boxes_1.dcm its thumbnail).

The derived objects join the source's study and frame of reference, reference
its level-0 SOP Instance UID, span its extent, read back equal and pass
dciodvfy. Skipped without ../shared/data/slides.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from wsi_engine.heatmap import make_heatmaps
from wsi_engine.heatmap.scoremap import canvas_shape, score_canvas
from wsi_engine.store.patch_store import PatchStore
from wsi_engine.tiling import TilingConfig, tile_slides

from . import dicom_checks as dc
from .conftest import plant_scores

pytestmark = pytest.mark.real_slides
FIXTURES = "openslide-python-fixtures"


@pytest.fixture(scope="module")
def dicom_heatmaps(shared_slides: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{file name: (store, dicom folder)} for boxes_0.dcm and boxes_1.dcm, tiled for real (4-px patches)."""
    from distributed import Client

    root = tmp_path_factory.mktemp("dicom-src")
    # 16 x 16 px slides: 16-px patches at a quarter of the slide's µm/px are 4 level-0 px
    config = TilingConfig(
        patch_size=16, target_mpp=0.499 / 4, min_tissue_fraction=0.0, pixel_mode="none"
    )
    slides = [shared_slides / FIXTURES / name for name in ("boxes_0.dcm", "boxes_1.dcm")]
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
        report = tile_slides(slides, root / "stores", config, scheduler=c)
    assert not report.failed
    out = {}
    for result in report.results:
        plant_scores(result.store)
        heatmaps = make_heatmaps([result.store], "run1", root / "out", formats=["dicom"], top_k=2)
        assert not heatmaps.failed, heatmaps.slides[0].error
        slide_id = result.store.name.removesuffix(".zarr")
        out[slide_id] = (result.store, root / "out" / slide_id / "dicom")
    return out


@pytest.mark.parametrize("slide_id", ["boxes_0", "boxes_1"])
def test_dicom_source_uids_geometry_and_pixels(dicom_heatmaps, shared_slides, slide_id) -> None:
    store_path, folder = dicom_heatmaps[slide_id]
    level0 = pydicom.dcmread(shared_slides / FIXTURES / "boxes_0.dcm", stop_before_pixels=True)
    store = PatchStore.open(store_path)
    arrays, _ = store.read_scores("run1")
    files = sorted(folder.glob("*.dcm"))
    assert [p.name for p in files] == [
        "ann_patches.dcm", "seg_scores_L0.dcm", "seg_scores_L1.dcm",
        "seg_tissue_L0.dcm", "seg_tissue_L1.dcm",
    ]  # fmt: skip
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.StudyInstanceUID == level0.StudyInstanceUID
        assert ds.FrameOfReferenceUID == level0.FrameOfReferenceUID
        assert dc.referenced_instances(ds) == {level0.SOPInstanceUID}  # the VOLUME instance
        assert ds.SeriesInstanceUID != level0.SeriesInstanceUID
        dc.assert_dciodvfy_clean(path)
    slide_extent = dc.extent_mm(level0)
    for level, downsample in enumerate((1.0, 2.0)):
        seg, ds = dc.read_segmentation(folder / f"seg_scores_L{level}.dcm")
        assert dc.extent_mm(ds) == pytest.approx(slide_extent, rel=1e-9)
        shape = canvas_shape((16, 16), downsample)
        expected = np.stack(
            [dc.quantised(score_canvas(store.coords(), arrays["probs"][:, i], 4.0, shape, downsample,
                                    tissue=store.tissue_mask())) for i in range(2)],
            axis=-1,
        )  # fmt: skip
        np.testing.assert_allclose(seg.get_total_pixel_matrix(), expected, atol=1e-6)
        assert ds.ContainerIdentifier == level0.ContainerIdentifier
    annotations = hd.ann.annread(folder / "ann_patches.dcm")
    coords = store.coords().astype(np.float64)
    squares = np.stack([coords, coords + (4, 0), coords + (4, 4), coords + (0, 4)], axis=1)
    np.testing.assert_allclose(
        dc.annotation_polygons_level0(annotations, "patches", level0), squares, atol=1e-6
    )
